//! Builds the `Event` from `--event/--ref/--base/...`, defaulting the ref from the local
//! git checkout (read from `.git/HEAD` directly: no process spawn on the hot path).

use super::EventArgs;
use crate::trigger::{Event, EventKind};
use std::path::Path;

pub(super) fn from_args(args: &EventArgs) -> Result<Option<Event>, String> {
    let Some(name) = args.event.as_deref() else {
        return Ok(None);
    };
    if let Some(path) = &args.event_path {
        return from_payload(args, name, path).map(Some);
    }
    let kind = match name {
        "push" | "tag" => EventKind::Push,
        "pull_request" => EventKind::PullRequest,
        "schedule" => EventKind::Schedule,
        _ => EventKind::Manual,
    };
    let is_tag = name == "tag";
    let git_ref = match &args.git_ref {
        Some(r) => Event::full_ref(is_tag, r),
        None if is_tag => return Err("`--event tag` needs `--ref <TAG>`".into()),
        None => current_ref(Path::new(".")).unwrap_or_else(|| "refs/heads/main".into()),
    };
    if is_tag && !git_ref.starts_with("refs/tags/") {
        return Err(format!("`--event tag` needs a tag ref, got `{git_ref}`"));
    }
    let mut event = Event::new(kind, git_ref);
    if kind == EventKind::PullRequest {
        event.head = Some(event.ref_name().to_string());
        event.base = Some(
            args.base
                .clone()
                .or_else(|| crate::git::default_branch(Path::new(".")))
                .unwrap_or_else(|| "main".into()),
        );
        event.action = Some(args.action.clone().unwrap_or_else(|| "opened".into()));
        event.git_ref = "refs/pull/1/merge".into();
    }
    if !args.changed.is_empty() {
        event.changed = Some(args.changed.clone());
    }
    event.inputs = args.input.iter().cloned().collect();
    event.project = crate::git::project_path(Path::new("."));
    Ok(Some(event))
}

/// The event a GitHub event payload describes (the same reading as the server's webhooks).
fn from_payload(args: &EventArgs, name: &str, path: &Path) -> Result<Event, String> {
    use crate::forge::payload::{Parsed, parse};
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}:{}:{}: {e}", path.display(), e.line(), e.column()))?;
    if let (Some((git_ref, sha)), Some(object)) = (&args.payload_defaults, json.as_object_mut()) {
        object
            .entry("ref")
            .or_insert_with(|| git_ref.clone().into());
        object.entry("after").or_insert_with(|| sha.clone().into());
        if let Ok(repo) = std::env::var("GITHUB_REPOSITORY") {
            object
                .entry("repository")
                .or_insert_with(|| serde_json::json!({ "full_name": repo }));
        }
    }
    let github_name = match name {
        "push" | "tag" => "push",
        "manual" | "workflow_dispatch" => "workflow_dispatch",
        other => other,
    };
    let mut event = match parse(crate::forge::Forge::Github, github_name, &json)
        .map_err(|e| format!("{}: {e}", path.display()))?
    {
        Parsed::Trigger(trigger) => trigger.event,
        Parsed::Ignored { reason, .. } => {
            return Err(format!("{}: starts no run: {reason}", path.display()));
        }
        Parsed::Ping { .. } => return Err(format!("{}: a ping starts no run", path.display())),
    };
    // `--ref` overrides the payload's (the action's `ref` input).
    if let Some(r) = &args.git_ref {
        event.git_ref = Event::full_ref(name == "tag", r);
    }
    if !args.changed.is_empty() {
        event.changed = Some(args.changed.clone());
    }
    event.inputs.extend(args.input.iter().cloned());
    if event.project.is_none() {
        event.project = crate::git::project_path(Path::new("."));
    }
    Ok(event)
}

/// The checked-out branch of the repository containing `dir`, as a full ref.
pub(super) fn current_ref(dir: &Path) -> Option<String> {
    let abs = dir.canonicalize().ok()?;
    let git = abs
        .ancestors()
        .map(|a| a.join(".git"))
        .find(|g| g.exists())?;
    let git_dir = if git.is_file() {
        // Worktrees: `.git` is a file saying `gitdir: PATH`.
        let text = std::fs::read_to_string(&git).ok()?;
        let rel = text.strip_prefix("gitdir:")?.trim().to_string();
        git.parent()?.join(rel)
    } else {
        git
    };
    let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    head.strip_prefix("ref:").map(|r| r.trim().to_string())
}
