//! What a run reports, in order: the event types `tess run --json` prints and the server
//! will store.

use crate::exec::{Annotation, Outcome, Stream};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// A job's or step's conclusion, as GitHub names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Conclusion {
    Success,
    Failure,
    Cancelled,
    Skipped,
}

impl Conclusion {
    pub fn parse(text: &str) -> Option<Conclusion> {
        Some(match text {
            "success" => Conclusion::Success,
            "failure" => Conclusion::Failure,
            "cancelled" => Conclusion::Cancelled,
            "skipped" => Conclusion::Skipped,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Conclusion::Success => "success",
            Conclusion::Failure => "failure",
            Conclusion::Cancelled => "cancelled",
            Conclusion::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct JobInfo {
    pub key: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    RunStarted {
        run_id: String,
        pipeline: String,
        jobs: Vec<JobInfo>,
        ts: String,
    },
    JobStarted {
        job: String,
        name: String,
        ts: String,
    },
    StepStarted {
        job: String,
        step: usize,
        name: String,
        /// A `background: true` step: its lines interleave with the job's other steps.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        background: bool,
        ts: String,
    },
    /// One or more complete lines (joined with `\n`), already masked.
    Log {
        job: String,
        step: Option<usize>,
        stream: Stream,
        text: String,
        ts: String,
    },
    StepFinished {
        job: String,
        step: usize,
        name: String,
        /// The result before `continue-on-error`.
        outcome: Conclusion,
        /// The result after `continue-on-error`.
        conclusion: Conclusion,
        detail: Outcome,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        annotations: Vec<Annotation>,
        duration_ms: u64,
        ts: String,
    },
    JobFinished {
        job: String,
        name: String,
        result: Conclusion,
        /// Steps that could not run (`--skip-unavailable`): the job's result is then shown
        /// as `skipped-steps`.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        not_run: Vec<String>,
        /// A failure that `continue-on-error` / `allow_failure` allows (a warning, not an error).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        allowed_failure: bool,
        /// The job's `outputs`, for jobs that need it.
        #[serde(skip_serializing_if = "IndexMap::is_empty")]
        outputs: IndexMap<String, String>,
        duration_ms: u64,
        ts: String,
    },
    RunFinished {
        result: Conclusion,
        duration_ms: u64,
        ts: String,
    },
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
