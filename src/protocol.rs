//! The runner protocol (HTTP + JSON under `/api/v1/runner/`): the messages `server/` and
//! `runner/` exchange, defined once so that both ends agree by construction.

use crate::engine::{Conclusion, PriorResult};
use crate::trigger::Event;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/v1/runner/register`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterRequest {
    pub registration_token: String,
    pub name: String,
    pub labels: Vec<String>,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterResponse {
    pub runner_id: String,
    /// Shown once; the server keeps only its hash.
    pub token: String,
}

/// What a runner can take and how busy its host is.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Load {
    /// One-minute load average divided by the number of CPUs.
    pub cpu: f64,
    /// Used memory, 0.0 to 1.0.
    pub memory: f64,
    pub running_jobs: u32,
}

/// `POST /api/v1/runner/poll`: answered with a [`Lease`], or 204 when nothing came within
/// `wait_seconds` (at most 30).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PollRequest {
    pub labels: Vec<String>,
    pub free_slots: u32,
    pub load: Load,
    pub version: String,
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

/// One job handed to one runner for one attempt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Lease {
    pub run_id: String,
    pub job_key: String,
    pub job_name: String,
    pub attempt: i64,
    pub lease_token: String,
    pub lease_ttl_seconds: u64,
    pub heartbeat_seconds: u64,
    /// The repository's `owner/name` (`github.repository`, `CI_PROJECT_PATH`).
    #[serde(default)]
    pub repo: String,
    /// Where to check the commit out from (a URL or a path the runner can reach).
    pub clone_url: String,
    pub sha: String,
    /// The pipeline file in the repository, re-planned by the runner from the checkout.
    pub pipeline_file: String,
    #[schema(value_type = Object)]
    pub event: Event,
    /// Results and outputs of the jobs this one needs.
    #[schema(value_type = Vec<Object>)]
    pub needs: Vec<PriorResult>,
    pub env: IndexMap<String, String>,
    /// Masked wherever they would appear in a log.
    pub secrets: IndexMap<String, String>,
    /// The planned job as the server stored it.
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
    /// `ACTIONS_RUNTIME_TOKEN` for the server's cache service (at the server's URL).
    #[serde(default)]
    pub cache_token: Option<String>,
    /// A GitLab manual job someone played, with the job inputs they gave (name → text).
    #[serde(default)]
    pub played: Option<IndexMap<String, String>>,
}

/// Identifies an attempt; every call about it is fenced by `attempt` + `lease_token`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobRef {
    pub run_id: String,
    pub job_key: String,
    pub attempt: i64,
    pub lease_token: String,
}

impl JobRef {
    pub fn of(lease: &Lease) -> JobRef {
        JobRef {
            run_id: lease.run_id.clone(),
            job_key: lease.job_key.clone(),
            attempt: lease.attempt,
            lease_token: lease.lease_token.clone(),
        }
    }
}

/// `POST /api/v1/runner/heartbeat` (body: [`JobRef`]).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatResponse {
    /// The run was cancelled: stop the job and complete it as cancelled.
    pub cancel: bool,
    /// Stop taking new jobs (the operator is rolling runners).
    #[serde(default)]
    pub drain: bool,
}

/// `POST /api/v1/runner/logs`: bytes `offset..offset+data.len()` of the attempt's log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogChunk {
    #[serde(flatten)]
    pub job: JobRef,
    pub offset: u64,
    pub data: String,
}

/// The log length the server has; the runner resumes from it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogAck {
    pub length: u64,
}

/// `POST /api/v1/runner/complete`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Complete {
    #[serde(flatten)]
    pub job: JobRef,
    /// `success`, `failure`, `cancelled` or `skipped`.
    #[schema(value_type = String)]
    pub result: Conclusion,
    #[serde(default)]
    pub allowed_failure: bool,
    #[serde(default)]
    pub outputs: IndexMap<String, String>,
    /// Why the job could not run (checkout failed, the pipeline no longer plans it, …).
    #[serde(default)]
    pub error: Option<String>,
    /// The rest of the log, from `offset` (saves a `logs` call at the end of short jobs).
    #[serde(default)]
    pub log: Option<LogTail>,
    /// `::error file=…,line=…::` and the like, for the forge's check run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub annotations: Vec<crate::exec::Annotation>,
    /// The slot's next poll, answered in the same call when a job is queued for it (one
    /// request per job instead of two; no waiting: otherwise the runner polls as usual).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<PollRequest>,
    /// How each step ended, as `tess run` shows it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepRecord>,
}

/// One step's end: its result before and after `continue-on-error`, and how the process
/// ended (exit code, signal, timeout, cancelled, failed to start, not run and why).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct StepRecord {
    pub name: String,
    #[schema(value_type = String)]
    pub outcome: Conclusion,
    #[schema(value_type = String)]
    pub conclusion: Conclusion,
    /// `exit code 3`, `killed by signal 9`, `timed out`, `skipped: if: … is false`, …
    pub detail: String,
    pub duration_ms: u64,
}

/// The answer to `complete`: the slot's next job, when it asked and one was queued.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub(crate) struct CompleteReply {
    #[serde(default)]
    pub next: Option<Lease>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogTail {
    pub offset: u64,
    pub data: String,
}
