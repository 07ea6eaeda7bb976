//! The REST API's request and response types (`/api/v1/…` for people and tools), shared by
//! the server, the `tess runs` / `tess versions` clients and the tests; the OpenAPI
//! document is generated from them. The runner protocol's messages are in `protocol`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every error answer: `{"error": "…"}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// A run as listed (and the head of [`RunDetail`]).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct RunSummary {
    pub id: String,
    /// `owner/name` (GitHub) or `group/project` (GitLab).
    pub repo: String,
    /// `github` or `gitlab`.
    pub forge: String,
    pub pipeline: String,
    pub file: String,
    /// The event's GitHub name (`push`, `pull_request`, `schedule`, `workflow_dispatch`, …).
    pub event: String,
    #[serde(rename = "ref")]
    #[sqlx(rename = "git_ref")]
    pub git_ref: String,
    pub sha: String,
    /// `queued`, `pending` (waits for its concurrency group), `running`, `success`,
    /// `failed`, `cancelled` or `skipped`.
    pub status: String,
    /// Why the run failed at once (an invalid pipeline) or was skipped.
    pub error: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub finished_at: Option<i64>,
    /// The commit's title (the first line of its message).
    pub title: Option<String>,
    /// Why the pipeline started (the trigger that matched).
    pub reason: Option<String>,
    /// The pipeline version it ran (see the repository's versions).
    pub version_id: Option<String>,
}

/// `GET /api/v1/runs`: newest first; `next` is the cursor of the next page (`?before=`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<RunSummary>,
    pub next: Option<String>,
}

/// One job of a run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Job {
    /// Unique in the run (a matrix instance: `test (stable, ubuntu-latest)`).
    pub key: String,
    pub id: String,
    pub name: String,
    /// Keys of the jobs it needs.
    pub needs: Vec<String>,
    /// What a runner must have to take it.
    pub labels: Vec<String>,
    /// `waiting`, `queued`, `running`, `success`, `failure`, `cancelled` or `skipped`.
    pub state: String,
    pub attempt: i64,
    pub runner: Option<String>,
    pub error: Option<String>,
    pub queued_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Failed, but allowed to (`continue-on-error`, `allow_failure`).
    pub allowed_failure: bool,
    #[schema(value_type = Option<Object>)]
    pub outputs: Option<serde_json::Value>,
    /// How each step ended (see the runner protocol's `StepRecord`).
    #[schema(value_type = Vec<Object>)]
    pub steps: serde_json::Value,
    /// Set on a queued job no registered runner can take, saying why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_reason: Option<String>,
    /// Who starts it: `manual` (GitLab `when: manual`; state `manual` until played),
    /// `manual-blocking` (the same with `allow_failure: false`: the run waits for it) or
    /// `approval` (a deployment to a protected environment; state `approval` until reviewed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
    /// The protected environment an `approval` gate is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The job inputs a play may set, as declared (name, type, default, options, regex).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub inputs: Vec<crate::spec::gitlab::inputs::InputForm>,
    /// The job inputs it was played with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub played: Option<indexmap::IndexMap<String, String>>,
}

/// `POST /api/v1/runs/{id}/jobs/{key}/play`: the job inputs (name → value as text).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct PlayJob {
    #[serde(default)]
    pub inputs: indexmap::IndexMap<String, String>,
}

/// `POST /api/v1/runs/{id}/jobs/{key}/approve` or `…/decline`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobStarted {
    pub run: String,
    pub job: String,
    /// The job's state now (`queued`, or `failure` when declined).
    pub state: String,
}

/// `GET /api/v1/runs/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunSummary,
    pub jobs: Vec<Job>,
}

/// `POST /api/v1/runs`: a manual run (`workflow_dispatch` / GitLab `web`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ManualRun {
    pub repo: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default)]
    pub inputs: indexmap::IndexMap<String, String>,
}

/// What a manual run started, and why any pipeline did not start.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ManualRunStarted {
    pub runs: Vec<String>,
    pub not_started: Vec<String>,
}

/// `POST /api/v1/runs/{id}/cancel`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CancelRequested {
    pub id: String,
    pub cancel_requested: bool,
}

/// `POST /api/v1/runs/{id}/rerun`: the new run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Rerun {
    pub id: String,
    pub rerun_of: String,
}

/// A registered runner as stored: what it last said of itself.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisteredRunner {
    pub id: String,
    pub name: String,
    pub labels: Vec<String>,
    pub version: String,
    pub last_seen: i64,
    pub free_slots: i64,
    #[schema(value_type = Option<Object>)]
    pub load: Option<crate::protocol::Load>,
    pub draining: bool,
}

/// A registered runner, with what the server makes of it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Runner {
    #[serde(flatten)]
    pub registered: RegisteredRunner,
    /// Seen within three lease TTLs.
    pub online: bool,
    /// Its version is not the server's.
    pub outdated: bool,
}

/// `GET /api/v1/runners`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunnerList {
    pub runners: Vec<Runner>,
    pub next: Option<String>,
}

/// `POST /api/v1/runners/{id}/drain`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Draining {
    pub id: String,
    pub draining: bool,
}

/// A webhook's answer: the delivery recorded (202), or already recorded before (200).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryReceived {
    /// `<forge>:<the forge's delivery id>`.
    pub delivery: String,
    /// A redelivery of a recorded id: nothing new was stored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// `received` (to plan), `ignored` or `rejected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A webhook delivery as received.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    /// `<forge>:<the forge's delivery id>`.
    pub id: String,
    pub forge: String,
    pub event: String,
    pub repo: Option<String>,
    pub received_at: i64,
    /// `received`, `planning`, `planned`, `ignored` or `rejected`.
    pub status: String,
    pub reason: Option<String>,
    /// The runs it started.
    pub runs: Vec<String>,
}

/// `GET /api/v1/deliveries`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<Delivery>,
    pub next: Option<String>,
}

/// One entry of a pipeline-version history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VersionEntry {
    /// The entry's place in the history (the cursor of `?before=`).
    pub id: i64,
    pub version_id: String,
    /// `applied` or `rejected`.
    pub status: String,
    /// `webhook`, `api`, `poll`, `file-watch`, `startup` or `rollback`.
    pub source: String,
    pub commit: Option<String>,
    pub previous: Option<String>,
    pub at: i64,
    /// The structured change log (pipelines, jobs, triggers, schedules).
    #[schema(value_type = Vec<Object>)]
    pub change_log: serde_json::Value,
    /// A rejected version's `file:line:col` errors.
    pub error: Option<String>,
}

/// `GET …/versions`: newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VersionHistory {
    pub versions: Vec<VersionEntry>,
    pub next: Option<String>,
}

/// `GET …/versions/current` (its `ETag` is the version id).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CurrentVersion {
    /// `server` or `<forge>:<repo>`.
    pub scope: String,
    pub version_id: String,
    pub applied_at: i64,
    /// A rollback holds it until the source shows a new version (or an unpin).
    pub pinned: bool,
    /// The newest version the source showed.
    pub detected: String,
    pub source: Option<String>,
    pub commit: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub change_log: serde_json::Value,
}

/// `GET …/versions/{a}/diff/{b}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VersionDiff {
    pub from: String,
    pub to: String,
    #[schema(value_type = Vec<Object>)]
    pub change_log: serde_json::Value,
}

/// A forge status not delivered: still to be sent, or given up.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Report {
    pub id: i64,
    pub run_id: String,
    /// `None` for the run's own status.
    pub job_key: Option<String>,
    pub state: String,
    pub attempts: i64,
    /// `refused` or `failed` once given up; `None` while still to be sent.
    pub result: Option<String>,
    /// The forge's last answer.
    pub error: Option<String>,
    pub next_attempt_at: Option<i64>,
    pub created_at: i64,
}

/// `GET /api/v1/reports`: newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReportList {
    pub reports: Vec<Report>,
    pub next: Option<String>,
}

/// A schedule slot as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScheduleSlot {
    pub schedule: String,
    /// The slot's time (ms since the epoch).
    pub slot: i64,
    /// `fired`, `missed` (left out by the catch-up policy) or `origin` (first seen).
    pub status: String,
    pub runs: Vec<String>,
    pub at: i64,
}

/// One schedule of a repository and its next fire times.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Schedule {
    /// Names the schedule (to switch it on or off).
    pub key: String,
    /// Off: its slots start nothing (`POST …/schedules/switch`).
    pub enabled: bool,
    /// The pipeline file, or `tess.toml` for a pipeline schedule of the config.
    pub file: String,
    pub cron: String,
    pub timezone: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// RFC 3339, UTC.
    pub next: Vec<String>,
}

/// `POST …/schedules/switch`: a schedule on or off.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScheduleSwitch {
    /// The schedule's `key`.
    pub schedule: String,
    pub enabled: bool,
}

/// `GET …/schedules`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Schedules {
    pub schedules: Vec<Schedule>,
    /// The slots recorded lately, newest first.
    pub slots: Vec<ScheduleSlot>,
}
