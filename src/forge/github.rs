//! GitHub commit statuses: `POST /repos/{owner}/{repo}/statuses/{sha}` through octocrab
//! (its raw calls: the reporter needs the status code and rate-limit headers).

use super::{Report, Sent, State, classify};
use std::time::Duration;

pub struct GitHub {
    client: octocrab::Octocrab,
    /// `owner/name`.
    repo: String,
}

impl GitHub {
    /// `api_url` is `https://api.github.com` or a GitHub Enterprise / test server's API root.
    pub fn new(api_url: &str, token: &str, repo: &str) -> Result<GitHub, String> {
        let client = octocrab::Octocrab::builder()
            .base_uri(api_url.trim_end_matches('/'))
            .map_err(|e| format!("GitHub API URL `{api_url}`: {e}"))?
            .personal_token(token.to_string())
            .set_connect_timeout(Some(Duration::from_secs(5)))
            .set_read_timeout(Some(Duration::from_secs(10)))
            .set_write_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| format!("GitHub client: {e}"))?;
        Ok(GitHub {
            client,
            repo: repo.to_string(),
        })
    }

    pub async fn send(&self, report: &Report) -> Sent {
        // Commit statuses have four states: allowed failures and skipped jobs do not fail
        // the commit (as GitHub Actions shows them), a cancelled one is an error.
        let state = match report.state {
            State::Pending | State::Running => "pending",
            State::Success | State::AllowedFailure | State::Skipped => "success",
            State::Failure => "failure",
            State::Cancelled => "error",
        };
        let body = serde_json::json!({
            "state": state,
            "context": report.context,
            "description": clip(&report.description, 140),
            "target_url": report.target_url,
        });
        let path = format!("/repos/{}/statuses/{}", self.repo, report.sha);
        match self.client._post(path, Some(&body)).await {
            Ok(response) => {
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                let text = self
                    .client
                    .body_to_string(response)
                    .await
                    .unwrap_or_default();
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                classify(status, &header, &text)
            }
            Err(e) => Sent::Failed(format!("GitHub: {e}")),
        }
    }
}

/// At most `max` characters (the forges refuse longer descriptions).
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut clipped: String = text.chars().take(max - 1).collect();
    clipped.push('…');
    clipped
}
