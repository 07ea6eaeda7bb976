//! `tess.toml`: repositories, tokens, storage and lease timings. Secrets are read from the
//! environment or from files, so the config itself can be committed.

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// `sqlite://PATH` or `postgres://…`; default: `tess.db` next to the config.
    pub database_url: Option<String>,
    /// PostgreSQL connections this replica holds at most (SQLite always uses one: it has
    /// one writer). Replicas × this must stay below the server's `max_connections`.
    #[serde(default = "default_database_connections")]
    pub database_connections: u32,
    /// Git mirrors and scratch space; default: `tess-data/` next to the config.
    pub data_dir: Option<PathBuf>,
    /// Runners register with this.
    pub registration_token: Option<Secret>,
    /// Tokens for the API (`Authorization: Bearer …`).
    #[serde(default)]
    pub api_tokens: Vec<Secret>,
    #[serde(default)]
    pub lease: LeaseConfig,
    /// Where people reach this server: the forge statuses link to runs under it
    /// (default: `http://` + the listen address).
    pub public_url: Option<String>,
    #[serde(default)]
    pub reporting: ReportingConfig,
    #[serde(default)]
    pub scheduler: SchedulerConfig,
    /// HTTP timeouts and the connection limit (read at start).
    #[serde(default)]
    pub http: super::connections::HttpLimits,
    /// The server's own pipeline directory: validated and versioned with this config (the
    /// `server` version), watched for changes.
    pub pipelines_dir: Option<PathBuf>,
    #[serde(default, rename = "repo")]
    pub repos: Vec<Repo>,
}

pub use crate::trigger::cron::CatchUp;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    #[serde(default = "default_catch_up")]
    pub catch_up: CatchUp,
    #[serde(default = "default_catch_up_max")]
    pub catch_up_max: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            catch_up: default_catch_up(),
            catch_up_max: default_catch_up_max(),
        }
    }
}

fn default_catch_up() -> CatchUp {
    CatchUp::Latest
}
fn default_catch_up_max() -> usize {
    10
}

/// A pipeline schedule kept by the server (GitLab's pipeline schedules: cron, ref,
/// variables), beside the `on.schedule` entries of the pipelines themselves.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSchedule {
    pub cron: String,
    /// IANA time zone (default UTC).
    #[serde(default = "utc")]
    pub timezone: String,
    /// Branch or tag (default: the default branch).
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    #[serde(default)]
    pub variables: indexmap::IndexMap<String, String>,
    pub description: Option<String>,
}

fn utc() -> String {
    "UTC".into()
}

/// A secret value: inline (`"…"`), `{ env = "NAME" }` or `{ file = "path" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Secret {
    Inline(String),
    Env { env: String },
    File { file: PathBuf },
}

impl Secret {
    pub fn resolve(&self, base: &Path) -> Result<String, String> {
        match self {
            Secret::Inline(s) => Ok(s.clone()),
            Secret::Env { env } => {
                std::env::var(env).map_err(|_| format!("environment variable `{env}` is not set"))
            }
            Secret::File { file } => {
                let path = base.join(file);
                std::fs::read_to_string(&path)
                    .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                    .map_err(|e| format!("{}: {e}", path.display()))
            }
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseConfig {
    #[serde(default = "default_ttl")]
    pub ttl_seconds: u64,
    #[serde(default = "default_heartbeat")]
    pub heartbeat_seconds: u64,
    /// Attempts per job when runners are lost (1 = never retried).
    #[serde(default = "default_attempts")]
    pub max_attempts: i64,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            ttl_seconds: default_ttl(),
            heartbeat_seconds: default_heartbeat(),
            max_attempts: default_attempts(),
        }
    }
}

/// How results are delivered to the forges.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportingConfig {
    /// The first retry after a forge failed comes after this long; each next one waits
    /// twice as long (with jitter), up to ten minutes.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    /// Sends of one status before it is given up (rate-limit waits do not count).
    #[serde(default = "default_report_attempts")]
    pub max_attempts: i64,
}

impl Default for ReportingConfig {
    fn default() -> Self {
        ReportingConfig {
            backoff_ms: default_backoff_ms(),
            max_attempts: default_report_attempts(),
        }
    }
}

/// Commit statuses for one repository.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportTo {
    /// The forge's API root (default `https://api.github.com`, `https://gitlab.com/api/v4`).
    pub api_url: Option<String>,
    /// A GitHub token with `repo:status` (or a fine-grained one with commit statuses: write),
    /// or a GitLab token with the `api` scope.
    pub token: Option<Secret>,
    /// GitHub App (instead of a token): check runs instead of commit statuses. Needs the
    /// app's id and private key (PEM); the installation is looked up when not given.
    pub app_id: Option<u64>,
    pub private_key: Option<Secret>,
    pub installation_id: Option<u64>,
    /// A pull request a pipeline's trigger filters leave out still gets that pipeline's
    /// status — passed, "skipped" with the reason — so a required check does not wait
    /// forever (default: true).
    #[serde(default = "yes")]
    pub skipped_pull_requests: bool,
}

fn default_database_connections() -> u32 {
    16
}

fn yes() -> bool {
    true
}

impl ReportTo {
    pub fn api_url(&self, forge: Forge) -> String {
        self.api_url.clone().unwrap_or_else(|| {
            match forge {
                Forge::Github => "https://api.github.com",
                Forge::Gitlab => "https://gitlab.com/api/v4",
            }
            .to_string()
        })
    }
}

pub use crate::forge::Forge;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repo {
    pub forge: Forge,
    /// `owner/name` (GitHub) or `group/project` (GitLab), as webhooks name it.
    pub name: String,
    /// A URL or a local path `git` can clone.
    pub clone_url: String,
    pub webhook_secret: Option<Secret>,
    /// `main` unless set.
    pub default_branch: Option<String>,
    /// Environment given to every job.
    #[serde(default)]
    pub env: indexmap::IndexMap<String, String>,
    /// Secrets given to jobs (masked in logs), by name.
    #[serde(default)]
    pub secrets: indexmap::IndexMap<String, Secret>,
    /// Commit statuses on the forge for every run and job (none when absent).
    pub report: Option<ReportTo>,
    /// For forges that cannot send webhooks: look for a new default-branch commit
    /// (`git ls-remote`) this often, in seconds.
    pub poll_seconds: Option<u64>,
    #[serde(default, rename = "schedule")]
    pub schedules: Vec<PipelineSchedule>,
    /// Environments whose jobs wait for a person's approval before they start (GitHub's
    /// required reviewers, GitLab's deployment approvals).
    #[serde(default)]
    pub protected_environments: Vec<String>,
    /// The web UI shows this repository's runs, logs, versions and schedules to visitors
    /// without a session (read-only; every button still needs a login).
    #[serde(default)]
    pub public: bool,
}

impl Repo {
    pub fn default_branch(&self) -> &str {
        self.default_branch.as_deref().unwrap_or("main")
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_ttl() -> u64 {
    30
}
fn default_heartbeat() -> u64 {
    10
}
fn default_attempts() -> i64 {
    3
}
fn default_backoff_ms() -> u64 {
    1000
}
fn default_report_attempts() -> i64 {
    12
}

impl Config {
    /// Reads and checks a config file; errors name the file, line and column.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Config::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, file: &str) -> Result<Config, String> {
        let config: Config = crate::diag::from_toml(text, file)?;
        for repo in &config.repos {
            for schedule in &repo.schedules {
                crate::trigger::cron::Cron::parse(&schedule.cron).map_err(|e| {
                    format!(
                        "{file}: repository `{}`: schedule `{}`: {}",
                        repo.name, schedule.cron, e.message
                    )
                })?;
                schedule.timezone.parse::<chrono_tz::Tz>().map_err(|_| {
                    format!(
                        "{file}: repository `{}`: unknown time zone `{}`",
                        repo.name, schedule.timezone
                    )
                })?;
            }
        }
        for (i, a) in config.repos.iter().enumerate() {
            if config.repos[..i]
                .iter()
                .any(|b| b.forge == a.forge && b.name == a.name)
            {
                return Err(format!(
                    "{file}: repository `{}` is configured twice",
                    a.name
                ));
            }
        }
        Ok(config)
    }

    pub fn repo(&self, forge: Forge, name: &str) -> Option<&Repo> {
        self.repos
            .iter()
            .find(|r| r.forge == forge && r.name.eq_ignore_ascii_case(name))
    }
}
