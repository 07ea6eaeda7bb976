//! What every job of a run sees: the `github`/`runner`/`secrets`/`inputs` contexts, the
//! synthesized event payload (`GITHUB_EVENT_PATH`) and the `GITHUB_*`/`RUNNER_*` variables.

use crate::expr::Value;
use crate::trigger::{Event, EventKind};
use indexmap::IndexMap;
use serde_json::json;
use std::path::Path;

/// Facts about the checkout, read by the caller (the CLI from the local git repository).
#[derive(Debug, Clone, Default)]
pub struct RepoInfo {
    pub sha: String,
    /// `owner/name`.
    pub repository: String,
    pub actor: String,
}

pub struct Environment {
    pub contexts: IndexMap<String, Value>,
    pub base_env: IndexMap<String, String>,
}

impl Environment {
    /// Another GitHub server (an actions server given to `tess run`): `github.server_url`
    /// and `GITHUB_SERVER_URL`, from which actions/checkout clones.
    pub fn set_server_url(&mut self, url: &str) {
        if let Some(Value::Object(github)) = self.contexts.get_mut("github") {
            github.insert("server_url".into(), Value::String(url.to_string()));
        }
        self.base_env
            .insert("GITHUB_SERVER_URL".into(), url.to_string());
    }
}

/// The event payload GitHub would send, with what a local run knows.
pub fn event_payload(event: &Event, repo: &RepoInfo) -> serde_json::Value {
    let (owner, name) = repo
        .repository
        .split_once('/')
        .unwrap_or(("local", &repo.repository));
    let repository = json!({"full_name": repo.repository, "name": name, "owner": {"login": owner}});
    match event.kind {
        EventKind::Push => json!({
            "ref": event.git_ref, "before": "0000000000000000000000000000000000000000", "after": repo.sha,
            "created": false, "deleted": false, "forced": false,
            "head_commit": {"id": repo.sha}, "pusher": {"name": repo.actor}, "repository": repository,
        }),
        EventKind::PullRequest => json!({
            "action": event.action.as_deref().unwrap_or("opened"), "number": 1,
            "pull_request": {
                "number": 1, "draft": false, "labels": [],
                "head": {"ref": event.head.as_deref().unwrap_or(""), "sha": repo.sha},
                "base": {"ref": event.base.as_deref().unwrap_or("main")},
            },
            "repository": repository,
        }),
        EventKind::Schedule => {
            json!({"schedule": event.cron.as_deref().unwrap_or(""), "repository": repository})
        }
        EventKind::Manual => {
            json!({"inputs": event.inputs, "ref": event.git_ref, "repository": repository})
        }
    }
}

/// The environment of one run of `pipeline`: contexts, `GITHUB_*` or GitLab's `CI_*`
/// variables, and the inputs of a manual run (declared defaults, overridden by the event's).
pub fn for_pipeline(
    pipeline: &crate::spec::Pipeline,
    event: &Event,
    repo: &RepoInfo,
    workspace: &Path,
    run_dir: &Path,
    run_id: &str,
    secrets: &IndexMap<String, String>,
) -> Result<Environment, String> {
    // Given as text (`--input`, a dispatch's payload), typed as declared: a boolean input
    // is `true`, not `"true"`.
    let mut inputs: IndexMap<String, Value> = event
        .inputs
        .iter()
        .map(|(k, v)| {
            let kind = pipeline.inputs.get(k).map_or("string", |i| i.kind.as_str());
            let value = super::context::typed_input(kind, serde_json::Value::String(v.clone()));
            (k.clone(), value)
        })
        .collect();
    for (name, input) in &pipeline.inputs {
        if !inputs.contains_key(name)
            && let Some(d) = &input.default
        {
            inputs.insert(name.clone(), Value::from_json(d));
        }
    }
    let inputs = Value::Object(inputs);
    let mut environment = build(event, repo, workspace, run_dir, run_id, inputs, secrets)
        .map_err(|e| format!("preparing the run: {e}"))?;
    if pipeline.dialect == crate::spec::Dialect::GitLab {
        environment
            .base_env
            .extend(gitlab_variables(event, repo, workspace));
    }
    Ok(environment)
}

pub fn build(
    event: &Event,
    repo: &RepoInfo,
    workspace: &Path,
    run_dir: &Path,
    run_id: &str,
    inputs: Value,
    secrets: &IndexMap<String, String>,
) -> std::io::Result<Environment> {
    let payload = event_payload(event, repo);
    let event_path = run_dir.join("event.json");
    std::fs::create_dir_all(run_dir)?;
    std::fs::write(
        &event_path,
        serde_json::to_vec_pretty(&payload).unwrap_or_default(),
    )?;
    let temp = run_dir.join("tmp");
    std::fs::create_dir_all(&temp)?;
    let (base_ref, head_ref) = match event.kind {
        EventKind::PullRequest => (
            event.base.clone().unwrap_or_default(),
            event.head.clone().unwrap_or_default(),
        ),
        _ => (String::new(), String::new()),
    };
    let ref_type = if event.tag().is_some() {
        "tag"
    } else {
        "branch"
    };
    let owner = repo
        .repository
        .split('/')
        .next()
        .unwrap_or("local")
        .to_string();
    let ws = workspace.display().to_string();
    // Never empty on GitHub (actions require it): the given GITHUB_TOKEN, else one of this
    // run's own that grants nothing beyond it.
    let token = secrets
        .get("GITHUB_TOKEN")
        .filter(|t| !t.is_empty())
        .cloned()
        .unwrap_or_else(|| format!("tess_{}", crate::token::random_hex(16)));
    let github = json!({
        "event_name": event.github_name(), "event": payload, "event_path": event_path.display().to_string(),
        "ref": event.git_ref, "ref_name": event.ref_name(), "ref_type": ref_type,
        "base_ref": base_ref, "head_ref": head_ref, "sha": repo.sha,
        "repository": repo.repository, "repository_owner": owner, "actor": repo.actor,
        "triggering_actor": repo.actor, "workspace": ws, "run_id": run_id, "run_number": "1",
        "run_attempt": "1", "server_url": "https://github.com", "api_url": "https://api.github.com",
        "graphql_url": "https://api.github.com/graphql", "token": token, "job": "", "action": "",
        "retention_days": "0", "workflow": "",
    });
    let runner = json!({
        "os": "Linux", "arch": arch(), "name": "tess", "environment": "self-hosted",
        "temp": temp.display().to_string(), "tool_cache": temp.display().to_string(), "debug": "",
    });
    let mut contexts = IndexMap::new();
    contexts.insert("github".into(), Value::from_json(&github));
    contexts.insert("runner".into(), Value::from_json(&runner));
    contexts.insert("vars".into(), Value::Object(IndexMap::new()));
    contexts.insert("inputs".into(), inputs);
    let mut secret_values: IndexMap<String, Value> = secrets
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    secret_values
        .entry("GITHUB_TOKEN".into())
        .or_insert(Value::String(String::new()));
    contexts.insert("secrets".into(), Value::Object(secret_values));

    let mut env: IndexMap<String, String> = IndexMap::new();
    for key in [
        "PATH", "HOME", "USER", "LANG", "TERM", "SHELL", "TMPDIR", "LOGNAME",
    ] {
        if let Some(v) = std::env::var_os(key) {
            env.insert(key.into(), v.to_string_lossy().into_owned());
        }
    }
    let scalar = |v: &serde_json::Value| {
        v.as_str()
            .map(String::from)
            .unwrap_or_else(|| v.to_string())
    };
    env.insert("CI".into(), "true".into());
    env.insert("GITHUB_ACTIONS".into(), "true".into());
    for (var, key) in [
        ("GITHUB_EVENT_NAME", "event_name"),
        ("GITHUB_EVENT_PATH", "event_path"),
        ("GITHUB_REF", "ref"),
        ("GITHUB_REF_NAME", "ref_name"),
        ("GITHUB_REF_TYPE", "ref_type"),
        ("GITHUB_BASE_REF", "base_ref"),
        ("GITHUB_HEAD_REF", "head_ref"),
        ("GITHUB_SHA", "sha"),
        ("GITHUB_REPOSITORY", "repository"),
        ("GITHUB_REPOSITORY_OWNER", "repository_owner"),
        ("GITHUB_ACTOR", "actor"),
        ("GITHUB_TRIGGERING_ACTOR", "triggering_actor"),
        ("GITHUB_WORKSPACE", "workspace"),
        ("GITHUB_RUN_ID", "run_id"),
        ("GITHUB_RUN_NUMBER", "run_number"),
        ("GITHUB_RUN_ATTEMPT", "run_attempt"),
        ("GITHUB_SERVER_URL", "server_url"),
        ("GITHUB_API_URL", "api_url"),
        ("GITHUB_GRAPHQL_URL", "graphql_url"),
    ] {
        env.insert(var.into(), scalar(&github[key]));
    }
    for (var, key) in [
        ("RUNNER_OS", "os"),
        ("RUNNER_ARCH", "arch"),
        ("RUNNER_NAME", "name"),
        ("RUNNER_TEMP", "temp"),
        ("RUNNER_TOOL_CACHE", "tool_cache"),
        ("RUNNER_ENVIRONMENT", "environment"),
    ] {
        env.insert(var.into(), scalar(&runner[key]));
    }
    Ok(Environment {
        contexts,
        base_env: env,
    })
}

/// GitLab's predefined variables for the event (a subset a local run can know), added to the
/// environment of GitLab pipelines.
pub fn gitlab_variables(
    event: &Event,
    repo: &RepoInfo,
    workspace: &Path,
) -> IndexMap<String, String> {
    let mut v = IndexMap::new();
    let mut set = |k: &str, val: &str| {
        v.insert(k.to_string(), val.to_string());
    };
    set("CI", "true");
    set("GITLAB_CI", "true");
    let source = match event.kind {
        EventKind::Push => "push",
        EventKind::PullRequest => "merge_request_event",
        EventKind::Schedule => "schedule",
        EventKind::Manual => "web",
    };
    set("CI_PIPELINE_SOURCE", source);
    set("CI_COMMIT_SHA", &repo.sha);
    set("CI_COMMIT_SHORT_SHA", &repo.sha[..repo.sha.len().min(8)]);
    set("CI_COMMIT_REF_NAME", event.ref_name());
    set("CI_COMMIT_REF_SLUG", &slug(event.ref_name()));
    match (event.kind, event.tag(), event.branch()) {
        (EventKind::PullRequest, _, _) => {
            set(
                "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME",
                event.head.as_deref().unwrap_or(""),
            );
            set(
                "CI_MERGE_REQUEST_TARGET_BRANCH_NAME",
                event.base.as_deref().unwrap_or("main"),
            );
            set("CI_MERGE_REQUEST_IID", event.change_number().unwrap_or("1"));
            set("CI_COMMIT_REF_NAME", event.head.as_deref().unwrap_or(""));
        }
        (_, Some(tag), _) => set("CI_COMMIT_TAG", tag),
        (_, _, Some(branch)) => set("CI_COMMIT_BRANCH", branch),
        _ => {}
    }
    set("CI_DEFAULT_BRANCH", "main");
    set("CI_PROJECT_DIR", &workspace.display().to_string());
    set(
        "CI_BUILDS_DIR",
        &workspace
            .parent()
            .unwrap_or(workspace)
            .display()
            .to_string(),
    );
    set("CI_PROJECT_PATH", &repo.repository);
    let (namespace, name) = repo
        .repository
        .rsplit_once('/')
        .unwrap_or(("local", &repo.repository));
    set("CI_PROJECT_NAMESPACE", namespace);
    set("CI_PROJECT_NAME", name);
    set("CI_SERVER", "yes");
    set("GITLAB_USER_NAME", &repo.actor);
    v
}

/// GitLab's `*_SLUG`: lower case, non-alphanumerics as `-`, at most 63 bytes, no edge dashes.
fn slug(text: &str) -> String {
    let s: String = text
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    s.trim_matches('-').to_string()
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "X64",
        "aarch64" => "ARM64",
        "x86" => "X86",
        "arm" => "ARM",
        other => other,
    }
}
