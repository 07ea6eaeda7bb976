//! GitLab commit statuses: `POST /projects/:id/statuses/:sha` through reqwest. GitLab runs
//! them as jobs of an external pipeline: pending → running → success / failed / canceled
//! (or skipped).

use super::github::clip;
use super::{Report, Sent, State, classify};
use std::time::Duration;

pub struct GitLab {
    client: reqwest::Client,
    /// `https://gitlab.example.com/api/v4`.
    api_url: String,
    token: crate::token::Secret,
    /// The project's path, URL-encoded as GitLab wants it in the route.
    project: String,
}

impl GitLab {
    pub fn new(api_url: &str, token: &str, project: &str) -> Result<GitLab, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("GitLab client: {e}"))?;
        Ok(GitLab {
            client,
            api_url: api_url.trim_end_matches('/').to_string(),
            token: crate::token::Secret::new(token),
            project: project.replace('/', "%2F"),
        })
    }

    pub async fn send(&self, report: &Report) -> Sent {
        // An allowed failure must not fail the external pipeline: it is shown as passed,
        // with what happened in its description.
        let state = match report.state {
            State::Pending => "pending",
            State::Running => "running",
            State::Success | State::AllowedFailure => "success",
            State::Failure => "failed",
            State::Cancelled => "canceled",
            State::Skipped => "skipped",
        };
        let mut body = serde_json::json!({
            "state": state,
            "name": report.context,
            "description": clip(&report.description, 255),
        });
        if let Some(url) = &report.target_url {
            body["target_url"] = url.clone().into();
        }
        if let Some(git_ref) = &report.git_ref {
            body["ref"] = git_ref.clone().into();
        }
        if let Some(id) = report.pipeline_id {
            body["pipeline_id"] = id.into();
        }
        let url = format!(
            "{}/projects/{}/statuses/{}",
            self.api_url, self.project, report.sha
        );
        let sent = self
            .client
            .post(&url)
            .header("PRIVATE-TOKEN", self.token.expose())
            .json(&body)
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                let text = response.text().await.unwrap_or_default();
                // GitLab answers a repeated state ("Cannot transition status via :run from
                // :running") with 400: the forge already shows it.
                if status == 400 && text.contains("Cannot transition status") {
                    return Sent::Delivered;
                }
                classify(status, &headers, &text)
            }
            Err(e) => Sent::Failed(format!("GitLab: {}", without_url(&e))),
        }
    }
}

/// reqwest's errors name the URL; ours is in the log already and may carry a token.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "");
    }
    text
}
