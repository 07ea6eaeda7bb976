//! GitHub: commit statuses (`POST /repos/{owner}/{repo}/statuses/{sha}`) with a token, or
//! check runs (`POST`/`PATCH /repos/{owner}/{repo}/check-runs`) as a GitHub App, through
//! reqwest (the reporter needs status codes and rate-limit headers, which a typed client
//! hides).

use super::github_app::AppAuth;
use super::{Report, Sent, State, classify};
use crate::exec::Annotation;
use http::Method;
use serde_json::{Value, json};
use std::time::Duration;

pub struct GitHub {
    client: reqwest::Client,
    /// `https://api.github.com` or a GitHub Enterprise / test server's API root.
    api_url: String,
    /// `owner/name`.
    repo: String,
    auth: Auth,
}

enum Auth {
    Token(crate::token::Secret),
    App(Box<AppAuth>),
}

/// GitHub takes at most this many annotations per request.
const ANNOTATIONS_PER_REQUEST: usize = 50;

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    text: String,
}

impl Answer {
    fn sent(&self) -> Sent {
        classify(self.status, &self.headers, &self.text)
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// The body of a delivered answer; otherwise what the send came to.
    fn delivered_json(&self) -> Result<Value, Sent> {
        match self.sent() {
            Sent::Delivered => Ok(self.json()),
            other => Err(other),
        }
    }
}

/// A check run's part of a report: what it says beyond the status.
pub struct CheckDetails<'a> {
    pub summary: String,
    pub annotations: &'a [Annotation],
}

impl<'a> CheckDetails<'a> {
    /// The summary (Markdown): what happened, a link to the run, and the annotations that
    /// name no file (the others are shown on the code).
    pub fn new(report: &Report, run_id: &str, annotations: &'a [Annotation]) -> CheckDetails<'a> {
        let mut summary = format!("**{}** {}\n", report.context, report.description);
        if let Some(url) = &report.target_url {
            summary.push_str(&format!("\nRun [{run_id}]({url})\n"));
        }
        let unlocated: Vec<_> = annotations
            .iter()
            .filter(|a| a.file.is_none() || a.line.is_none())
            .collect();
        if !unlocated.is_empty() {
            summary.push('\n');
            for a in unlocated {
                summary.push_str(&format!("- **{}**: {}\n", a.level, a.message));
            }
        }
        CheckDetails {
            summary,
            annotations,
        }
    }
}

impl GitHub {
    /// Commit statuses with a token. `api_url` is `https://api.github.com` or a GitHub
    /// Enterprise / test server's API root.
    pub fn with_token(api_url: &str, token: &str, repo: &str) -> Result<GitHub, String> {
        GitHub::new(api_url, repo, Auth::Token(crate::token::Secret::new(token)))
    }

    /// Check runs as a GitHub App installed on the repository.
    pub fn as_app(api_url: &str, app: AppAuth, repo: &str) -> Result<GitHub, String> {
        GitHub::new(api_url, repo, Auth::App(Box::new(app)))
    }

    fn new(api_url: &str, repo: &str, auth: Auth) -> Result<GitHub, String> {
        let api_url = api_url.trim_end_matches('/').to_string();
        reqwest::Url::parse(&api_url).map_err(|e| format!("GitHub API URL `{api_url}`: {e}"))?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            // GitHub refuses requests without a User-Agent.
            .user_agent(concat!("tesseract-ci/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("GitHub client: {e}"))?;
        Ok(GitHub {
            client,
            api_url,
            repo: repo.to_string(),
            auth,
        })
    }

    pub fn makes_check_runs(&self) -> bool {
        matches!(self.auth, Auth::App(_))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        authorization: &str,
        body: Option<&Value>,
    ) -> Result<Answer, Sent> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.api_url))
            .header(http::header::AUTHORIZATION, authorization)
            .header(http::header::ACCEPT, "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28");
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Sent::Failed(format!("GitHub: {e}")))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        Ok(Answer {
            status,
            headers,
            text,
        })
    }

    /// The `Authorization` header: the token, or the app installation's token (minted
    /// when there is none or it expires within five minutes).
    async fn authorization(&self) -> Result<String, Sent> {
        let app = match &self.auth {
            Auth::Token(token) => return Ok(format!("Bearer {}", token.expose())),
            Auth::App(app) => app,
        };
        let mut token = app.token.lock().await;
        let now = chrono::Utc::now().timestamp();
        if let Some((value, expires)) = token.as_ref()
            && *expires - 300 > now
        {
            return Ok(format!("Bearer {value}"));
        }
        let jwt = format!("Bearer {}", app.jwt().map_err(Sent::Refused)?);
        let mut installation = app.installation_id.lock().await;
        let id = match *installation {
            Some(id) => id,
            None => {
                let path = format!("/repos/{}/installation", self.repo);
                let body = self
                    .call(Method::GET, &path, &jwt, None)
                    .await?
                    .delivered_json()?;
                body["id"]
                    .as_u64()
                    .ok_or_else(|| Sent::Failed("no installation id in GitHub's answer".into()))?
            }
        };
        *installation = Some(id);
        let path = format!("/app/installations/{id}/access_tokens");
        let body = self
            .call(Method::POST, &path, &jwt, None)
            .await?
            .delivered_json()?;
        let value = body["token"]
            .as_str()
            .ok_or_else(|| Sent::Failed("no token in GitHub's answer".into()))?;
        let expires = body["expires_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or(now + 3600, |t| t.timestamp());
        *token = Some((value.to_string(), expires));
        Ok(format!("Bearer {value}"))
    }

    /// Whether the token is accepted and sees the repository (`GET /repos/{owner}/{repo}`):
    /// checked before anything runs, so a bad token fails at once and clearly. A refusal
    /// says why in words; failures and rate limits may be tried again.
    pub async fn check_access(&self) -> Sent {
        let authorization = match self.authorization().await {
            Ok(a) => a,
            Err(sent) => return sent,
        };
        let path = format!("/repos/{}", self.repo);
        let answer = match self.call(Method::GET, &path, &authorization, None).await {
            Ok(answer) => answer,
            Err(sent) => return sent,
        };
        let message = answer.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match (answer.sent(), answer.status) {
            (Sent::Refused(_), 401) => {
                Sent::Refused(format!("GitHub refused the token (401 {message})"))
            }
            (Sent::Refused(_), status @ (403 | 404)) => Sent::Refused(format!(
                "the token cannot see `{}` ({status} {message})",
                self.repo
            )),
            (sent, _) => sent,
        }
    }

    /// A commit status.
    pub async fn send(&self, report: &Report) -> Sent {
        // Commit statuses have four states: allowed failures and skipped jobs do not fail
        // the commit (as GitHub Actions shows them), a cancelled one is an error.
        let state = match report.state {
            State::Pending | State::Running => "pending",
            State::Success | State::AllowedFailure | State::Skipped => "success",
            State::Failure => "failure",
            State::Cancelled => "error",
        };
        let body = json!({
            "state": state,
            "context": report.context,
            "description": clip(&report.description, 140),
            "target_url": report.target_url,
        });
        let authorization = match self.authorization().await {
            Ok(a) => a,
            Err(sent) => return sent,
        };
        let path = format!("/repos/{}/statuses/{}", self.repo, report.sha);
        match self
            .call(Method::POST, &path, &authorization, Some(&body))
            .await
        {
            Ok(answer) => answer.sent(),
            Err(sent) => sent,
        }
    }

    /// A check run: made the first time (its id is returned to be kept), updated after.
    /// Annotations go 50 to a request, as GitHub requires; later requests add to them.
    pub async fn check(
        &self,
        report: &Report,
        details: &CheckDetails<'_>,
        existing: Option<i64>,
    ) -> (Sent, Option<i64>) {
        let authorization = match self.authorization().await {
            Ok(a) => a,
            Err(sent) => return (sent, existing),
        };
        let mut body = json!({
            "name": report.context,
            "head_sha": report.sha,
            "details_url": report.target_url,
            "external_id": report.context,
        });
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        match report.state {
            State::Pending => body["status"] = "queued".into(),
            State::Running => {
                body["status"] = "in_progress".into();
                body["started_at"] = now.into();
            }
            done => {
                body["status"] = "completed".into();
                body["completed_at"] = now.into();
                body["conclusion"] = match done {
                    State::Success => "success",
                    State::AllowedFailure => "neutral",
                    State::Cancelled => "cancelled",
                    State::Skipped => "skipped",
                    _ => "failure",
                }
                .into();
            }
        }
        // Annotations need a file and a line; the others are listed in the summary.
        let located: Vec<Value> = details
            .annotations
            .iter()
            .filter_map(|a| {
                let line = a.line?;
                let mut v = json!({
                    "path": a.file.as_ref()?,
                    "start_line": line,
                    "end_line": a.end_line.unwrap_or(line),
                    "annotation_level": match a.level.as_str() {
                        "error" => "failure",
                        "warning" => "warning",
                        _ => "notice",
                    },
                    "message": a.message,
                });
                if let Some(title) = &a.title {
                    v["title"] = title.clone().into();
                }
                Some(v)
            })
            .collect();
        let mut batches = located.chunks(ANNOTATIONS_PER_REQUEST);
        let output = |annotations: &[Value]| {
            json!({
                "title": clip(&report.description, 255),
                "summary": details.summary,
                "annotations": annotations,
            })
        };
        body["output"] = output(batches.next().unwrap_or(&[]));
        let (method, path) = match existing {
            Some(id) => (
                Method::PATCH,
                format!("/repos/{}/check-runs/{id}", self.repo),
            ),
            None => (Method::POST, format!("/repos/{}/check-runs", self.repo)),
        };
        let answer = match self.call(method, &path, &authorization, Some(&body)).await {
            Ok(answer) => answer,
            Err(sent) => return (sent, existing),
        };
        let sent = answer.sent();
        let id = existing.or_else(|| answer.json()["id"].as_i64());
        let (Sent::Delivered, Some(id)) = (&sent, id) else {
            return (sent, id);
        };
        for batch in batches {
            let more = json!({ "output": output(batch) });
            let path = format!("/repos/{}/check-runs/{id}", self.repo);
            match self
                .call(Method::PATCH, &path, &authorization, Some(&more))
                .await
            {
                Ok(answer) if answer.sent() == Sent::Delivered => {}
                Ok(answer) => return (answer.sent(), Some(id)),
                Err(sent) => return (sent, Some(id)),
            }
        }
        (Sent::Delivered, Some(id))
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
