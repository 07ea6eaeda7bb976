//! Forge webhook payloads (GitHub and GitLab) normalized into the planner's [`Event`], or
//! the reason the delivery starts nothing.

use super::Forge;
use crate::trigger::{Event, EventKind};
use serde_json::Value as Json;

/// What a delivery asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Ping {
        repo: Option<String>,
    },
    Ignored {
        repo: Option<String>,
        reason: String,
    },
    Trigger(Box<Trigger>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub repo: String,
    pub event: Event,
    /// Pushes: the commit before the push, when the branch existed (for changed files).
    pub before: Option<String>,
    /// Pull/merge requests: what the change is compared with (a SHA or a branch).
    pub base: Option<String>,
}

const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

fn text<'a>(v: &'a Json, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, k| v.get(*k))
        .and_then(Json::as_str)
}

fn real_sha(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty() && *s != ZERO_SHA)
        .map(String::from)
}

/// Parses a delivery of `event` (the `X-GitHub-Event` / `X-Gitlab-Event` header).
pub fn parse(forge: Forge, event: &str, body: &Json) -> Result<Parsed, String> {
    match forge {
        Forge::Github => github(event, body),
        Forge::Gitlab => gitlab(event, body),
    }
}

fn github(event: &str, body: &Json) -> Result<Parsed, String> {
    let repo = text(body, &["repository", "full_name"]).map(String::from);
    let need_repo = || {
        repo.clone()
            .ok_or("the payload has no `repository.full_name`")
    };
    let ignored = |reason: String| Parsed::Ignored {
        repo: repo.clone(),
        reason,
    };
    match event {
        "ping" => Ok(Parsed::Ping { repo: repo.clone() }),
        "push" => {
            let git_ref = text(body, &["ref"]).ok_or("a push payload without `ref`")?;
            if body.get("deleted").and_then(Json::as_bool) == Some(true) {
                return Ok(ignored(format!("`{git_ref}` was deleted")));
            }
            let sha = real_sha(text(body, &["after"])).ok_or("a push payload without `after`")?;
            let mut e = Event::new(EventKind::Push, git_ref);
            e.sha = Some(sha);
            let created = body.get("created").and_then(Json::as_bool) == Some(true);
            Ok(Parsed::Trigger(Box::new(Trigger {
                repo: need_repo()?,
                event: e,
                before: if created {
                    None
                } else {
                    real_sha(text(body, &["before"]))
                },
                base: None,
            })))
        }
        "pull_request" => {
            let action = text(body, &["action"]).unwrap_or_default();
            if !["opened", "synchronize", "reopened"].contains(&action) {
                return Ok(ignored(format!(
                    "pull request `{action}`: only opened, synchronize and reopened start pipelines"
                )));
            }
            let pr = body.get("pull_request").ok_or("no `pull_request` object")?;
            let number = body
                .get("number")
                .or_else(|| pr.get("number"))
                .and_then(Json::as_u64)
                .ok_or("a pull request without `number`")?;
            let mut e = Event::new(EventKind::PullRequest, format!("refs/pull/{number}/merge"));
            e.base = text(pr, &["base", "ref"]).map(String::from);
            e.head = text(pr, &["head", "ref"]).map(String::from);
            e.action = Some(action.to_string());
            e.sha = Some(
                real_sha(text(pr, &["head", "sha"])).ok_or("a pull request without `head.sha`")?,
            );
            Ok(Parsed::Trigger(Box::new(Trigger {
                repo: need_repo()?,
                event: e,
                before: None,
                base: real_sha(text(pr, &["base", "sha"])),
            })))
        }
        "workflow_dispatch" => {
            let git_ref = text(body, &["ref"]).ok_or("a workflow_dispatch without `ref`")?;
            let mut e = Event::new(EventKind::Manual, git_ref);
            if let Some(inputs) = body.get("inputs").and_then(Json::as_object) {
                for (k, v) in inputs {
                    let v = v.as_str().map_or_else(|| v.to_string(), String::from);
                    e.inputs.insert(k.clone(), v);
                }
            }
            Ok(Parsed::Trigger(Box::new(Trigger {
                repo: need_repo()?,
                event: e,
                before: None,
                base: None,
            })))
        }
        other => Ok(ignored(format!("`{other}` events do not start pipelines"))),
    }
}

fn gitlab(event: &str, body: &Json) -> Result<Parsed, String> {
    let repo = text(body, &["project", "path_with_namespace"]).map(String::from);
    let need_repo = || {
        repo.clone()
            .ok_or("the payload has no `project.path_with_namespace`")
    };
    let ignored = |reason: String| Parsed::Ignored {
        repo: repo.clone(),
        reason,
    };
    let kind = text(body, &["object_kind"]).unwrap_or_default();
    match (event, kind) {
        ("Push Hook" | "Tag Push Hook", "push" | "tag_push") => {
            let git_ref = text(body, &["ref"]).ok_or("a push payload without `ref`")?;
            let Some(sha) = real_sha(text(body, &["checkout_sha"]))
                .or_else(|| real_sha(text(body, &["after"])))
            else {
                return Ok(ignored(format!("`{git_ref}` was deleted")));
            };
            let mut e = Event::new(EventKind::Push, git_ref);
            e.sha = Some(sha);
            e.project = repo.clone();
            Ok(Parsed::Trigger(Box::new(Trigger {
                repo: need_repo()?,
                event: e,
                before: real_sha(text(body, &["before"])),
                base: None,
            })))
        }
        ("Merge Request Hook", "merge_request") => {
            let attrs = body
                .get("object_attributes")
                .ok_or("no `object_attributes` object")?;
            let action = text(attrs, &["action"]).unwrap_or_default();
            // `update` without `oldrev` is a title/label/description edit: no new commits.
            let new_commits = attrs.get("oldrev").is_some_and(|v| !v.is_null());
            let starts = matches!(action, "open" | "reopen") || (action == "update" && new_commits);
            if !starts {
                return Ok(ignored(format!(
                    "merge request `{action}`: only open, reopen and updates with new commits start pipelines"
                )));
            }
            let iid = attrs
                .get("iid")
                .and_then(Json::as_u64)
                .ok_or("a merge request without `iid`")?;
            let mut e = Event::new(
                EventKind::PullRequest,
                format!("refs/merge-requests/{iid}/head"),
            );
            e.base = text(attrs, &["target_branch"]).map(String::from);
            e.head = text(attrs, &["source_branch"]).map(String::from);
            e.action = Some(action.to_string());
            e.project = repo.clone();
            e.forge_pipeline = attrs.get("head_pipeline_id").and_then(Json::as_i64);
            e.sha = Some(
                real_sha(text(attrs, &["last_commit", "id"]))
                    .ok_or("a merge request without `last_commit.id`")?,
            );
            let base = e.base.as_ref().map(|b| format!("refs/heads/{b}"));
            Ok(Parsed::Trigger(Box::new(Trigger {
                repo: need_repo()?,
                event: e,
                before: None,
                base,
            })))
        }
        (other, _) => Ok(ignored(format!("`{other}` events do not start pipelines"))),
    }
}
