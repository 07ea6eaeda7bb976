//! The forges: their webhook payloads (`payload.rs`), and results shown on them — GitHub
//! commit statuses and check runs, GitLab commit statuses (both through reqwest).

pub mod github;
pub mod github_app;
pub mod gitlab;
pub mod payload;

use serde::Deserialize;
use std::time::Duration;

/// The forges Tesseract knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Forge {
    Github,
    Gitlab,
}

impl Forge {
    /// As stored and shown: `github`, `gitlab`.
    pub fn as_str(self) -> &'static str {
        match self {
            Forge::Github => "github",
            Forge::Gitlab => "gitlab",
        }
    }

    /// Back from [`Forge::as_str`] (what the store holds; GitHub unless `gitlab`).
    pub fn from_stored(name: &str) -> Forge {
        if name == Forge::Gitlab.as_str() {
            Forge::Gitlab
        } else {
            Forge::Github
        }
    }
}

/// One commit status as Tesseract wants it shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub sha: String,
    /// The branch or tag (GitLab attaches the status to that ref's pipeline).
    pub git_ref: Option<String>,
    /// `tess/<pipeline>` for a run, `tess/<pipeline>/<job>` for a job.
    pub context: String,
    pub state: State,
    pub description: String,
    pub target_url: Option<String>,
    /// GitLab: the pipeline to join (a merge request's head pipeline).
    pub pipeline_id: Option<i64>,
}

/// The status context: `tess/<pipeline>` for a run, `tess/<pipeline>/<job>` for a job. A
/// pipeline without a name is named by its file (`.gitlab-ci.yml` → `gitlab-ci`).
pub fn context(pipeline: &str, job: Option<&str>) -> String {
    let pipeline = pipeline.trim_start_matches('.');
    let pipeline = pipeline
        .strip_suffix(".yml")
        .or_else(|| pipeline.strip_suffix(".yaml"))
        .unwrap_or(pipeline);
    match job {
        Some(job) => format!("tess/{pipeline}/{job}"),
        None => format!("tess/{pipeline}"),
    }
}

/// A report's description: the state, and how long it took once it is final.
pub fn description(state: State, took_ms: Option<i64>) -> String {
    match took_ms {
        Some(ms) if state.is_final() => {
            format!("{} in {:.1}s", state.words(), ms.max(0) as f64 / 1000.0)
        }
        _ => state.words().to_string(),
    }
}

/// A run's or job's state in forge-neutral terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Running,
    Success,
    Failure,
    /// Failed, and allowed to (`continue-on-error`, `allow_failure`).
    AllowedFailure,
    Cancelled,
    Skipped,
}

impl State {
    /// From a job's or run's stored state; `None` for states nobody is told about.
    pub fn of_stored(state: &str, allowed_failure: bool) -> Option<State> {
        Some(match state {
            // `manual`/`approval`: waiting for a person to play or approve it.
            "waiting" | "queued" | "pending" | "manual" | "approval" => State::Pending,
            "running" => State::Running,
            "success" => State::Success,
            "failure" | "failed" if allowed_failure => State::AllowedFailure,
            "failure" | "failed" => State::Failure,
            "cancelled" => State::Cancelled,
            "skipped" => State::Skipped,
            _ => return None,
        })
    }

    /// Whether nothing comes after this state (a final report).
    pub fn is_final(self) -> bool {
        !matches!(self, State::Pending | State::Running)
    }

    pub fn words(self) -> &'static str {
        match self {
            State::Pending => "queued",
            State::Running => "running",
            State::Success => "succeeded",
            State::Failure => "failed",
            State::AllowedFailure => "failed (allowed to fail)",
            State::Cancelled => "cancelled",
            State::Skipped => "skipped",
        }
    }
}

/// How a send went; the reporter decides from it whether and when to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    Delivered,
    /// Rate limited (or asked to come back): not before this long.
    Later(Duration, String),
    /// The forge failed or could not be reached: try again with backoff.
    Failed(String),
    /// The forge refused the report itself (bad token, unknown repository, …): trying
    /// again will not help.
    Refused(String),
}

/// Classifies a forge's answer the way GitHub and GitLab document them: 2xx done; 429,
/// and 403 with the primary (`x-ratelimit-remaining: 0`) or secondary limit, wait for
/// `retry-after` / `x-ratelimit-reset`; 409 (GitLab: an update of the same commit is in
/// progress) and 5xx again later; any other 4xx is final.
pub fn classify(status: u16, headers: &http::HeaderMap, body: &str) -> Sent {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let seconds = |name: &str| header(name).and_then(|v| v.trim().parse::<u64>().ok());
    let short = |body: &str| {
        let text: String = body.chars().take(300).collect();
        format!("{status}: {}", text.trim())
    };
    match status {
        200..=299 => Sent::Delivered,
        429 | 403 => {
            let primary = header("x-ratelimit-remaining").is_some_and(|v| v.trim() == "0");
            let secondary = body.to_ascii_lowercase().contains("secondary rate limit");
            if status == 403 && !primary && !secondary && seconds("retry-after").is_none() {
                return Sent::Refused(short(body));
            }
            let wait = if let Some(after) = seconds("retry-after") {
                after
            } else if primary && let Some(reset) = seconds("x-ratelimit-reset") {
                let now = chrono::Utc::now().timestamp().max(0) as u64;
                reset.saturating_sub(now) + 1
            } else {
                // GitHub: "wait at least one minute" when no header says how long.
                60
            };
            Sent::Later(Duration::from_secs(wait.min(3600)), short(body))
        }
        409 | 500..=599 => Sent::Failed(short(body)),
        _ => Sent::Refused(short(body)),
    }
}
