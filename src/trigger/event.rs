//! An event that may start pipelines, normalized from the CLI, a webhook or the scheduler.

use indexmap::IndexMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Push,
    PullRequest,
    Schedule,
    Manual,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub kind: EventKind,
    /// Full ref: `refs/heads/main`, `refs/tags/v1.0`, `refs/pull/1/merge`.
    pub git_ref: String,
    /// Pull requests: the base branch name (`main`).
    pub base: Option<String>,
    /// Pull requests: the head branch name.
    pub head: Option<String>,
    /// Pull requests: the activity type (`opened`, `synchronize`, …).
    pub action: Option<String>,
    /// Changed files, when known; path filters are only evaluated when they are.
    pub changed: Option<Vec<String>>,
    pub inputs: IndexMap<String, String>,
    /// Schedules: the cron expression that fired, if one did.
    pub cron: Option<String>,
    pub sha: Option<String>,
    /// The project path (`group/project`) when known (GitLab's `CI_PROJECT_PATH`).
    pub project: Option<String>,
    /// GitLab merge requests: the MR's head pipeline (`head_pipeline_id`), which the
    /// commit statuses join (`pipeline_id`) instead of starting another pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge_pipeline: Option<i64>,
}

impl Event {
    pub fn new(kind: EventKind, git_ref: impl Into<String>) -> Event {
        Event {
            kind,
            git_ref: git_ref.into(),
            base: None,
            head: None,
            action: None,
            changed: None,
            inputs: IndexMap::new(),
            cron: None,
            sha: None,
            project: None,
            forge_pipeline: None,
        }
    }

    /// Normalizes a short ref for the event (`main` → `refs/heads/main`, `v1` → `refs/tags/v1`
    /// for tag events).
    pub fn full_ref(kind_is_tag: bool, r: &str) -> String {
        if r.starts_with("refs/") {
            r.to_string()
        } else if kind_is_tag {
            format!("refs/tags/{r}")
        } else {
            format!("refs/heads/{r}")
        }
    }

    /// The GitHub event name (`github.event_name`).
    pub fn github_name(&self) -> &'static str {
        match self.kind {
            EventKind::Push => "push",
            EventKind::PullRequest => "pull_request",
            EventKind::Schedule => "schedule",
            EventKind::Manual => "workflow_dispatch",
        }
    }

    /// The pull/merge request number in `refs/pull/N/merge` or `refs/merge-requests/N/head`.
    pub fn change_number(&self) -> Option<&str> {
        let rest = self
            .git_ref
            .strip_prefix("refs/pull/")
            .or_else(|| self.git_ref.strip_prefix("refs/merge-requests/"))?;
        let (n, _) = rest.split_once('/')?;
        n.bytes().all(|b| b.is_ascii_digit()).then_some(n)
    }

    pub fn branch(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/heads/")
    }

    pub fn tag(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/tags/")
    }

    /// `github.ref_name`: the short branch or tag name, or `N/merge` for pull requests.
    pub fn ref_name(&self) -> &str {
        self.branch()
            .or_else(|| self.tag())
            .or_else(|| self.git_ref.strip_prefix("refs/pull/"))
            .unwrap_or(&self.git_ref)
    }
}
