//! `tess versions`: a repository's pipeline versions on a `tess server` — history, the
//! current one, diffs, sync, rollback and unpin.

use super::runs::{agent, json, segment};
use crate::rest::{CurrentVersion, VersionDiff, VersionHistory};
use serde_json::Value;
use std::fmt::Write as _;

pub(super) enum Action {
    List,
    Show(Option<String>),
    Diff(String, String),
    Sync,
    Rollback {
        id: String,
        if_match: Option<String>,
    },
    Unpin,
}

/// `owner/name` (nested GitLab groups: the last part is the name) as two path segments.
fn repo_path(repo: &str) -> Result<String, super::CliError> {
    let (owner, name) = repo
        .rsplit_once('/')
        .ok_or_else(|| format!("`{repo}`: expected OWNER/NAME"))?;
    Ok(format!("{}/{}", segment(owner), segment(name)))
}

pub(super) use crate::versions::change_line;

fn change_log(value: &Value) -> String {
    let lines: Vec<String> = value
        .as_array()
        .map(|l| l.iter().map(change_line).collect())
        .unwrap_or_default();
    if lines.is_empty() {
        "  (no changes)\n".into()
    } else {
        lines.iter().map(|l| format!("  {l}\n")).collect()
    }
}

/// POSTs and reads the outcome, which is JSON for 200, 412 and 422 alike.
fn post(url: &str, token: &str, if_match: Option<&str>) -> Result<(u16, Value), super::CliError> {
    let mut request = agent().post(url).bearer_auth(token);
    if let Some(v) = if_match {
        request = request.header("if-match", format!("\"{v}\""));
    }
    let response = request
        .send()
        .map_err(|e| super::CliError::Runtime(format!("{url}: {e}")))?;
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, body))
}

fn outcome(status: u16, body: &Value) -> Result<(String, u8), super::CliError> {
    let text = |k: &str| body[k].as_str().unwrap_or_default().to_string();
    match body["outcome"].as_str() {
        Some("applied") => Ok((
            format!(
                "applied {}\n{}",
                text("version_id"),
                change_log(&body["change_log"])
            ),
            0,
        )),
        Some("unchanged") => Ok((format!("unchanged: {} is current\n", text("version_id")), 0)),
        Some("rejected") => Ok((
            format!("rejected {}:\n{}\n", text("version_id"), text("errors")),
            1,
        )),
        Some("conflict") => Ok((
            format!(
                "conflict: the current version is {} (someone changed it first)\n",
                body["current"].as_str().unwrap_or("none")
            ),
            1,
        )),
        _ => Err(super::CliError::Invalid(format!(
            "{status}: {}",
            body["error"].as_str().unwrap_or(&body.to_string())
        ))),
    }
}

pub(super) fn run(
    server: &str,
    token: &str,
    repo: &str,
    action: Action,
) -> Result<u8, super::CliError> {
    let base = format!(
        "{}/api/v1/repos/{}",
        server.trim_end_matches('/'),
        repo_path(repo)?
    );
    let mut out = String::new();
    let mut code = 0;
    match action {
        Action::List => {
            let body: VersionHistory = json("GET", &format!("{base}/versions"), token)?;
            let _ = writeln!(
                out,
                "{:<34} {:<9} {:<10} {:<12} {:<20} CHANGES",
                "VERSION", "STATUS", "SOURCE", "COMMIT", "AT"
            );
            for v in &body.versions {
                let at = chrono::DateTime::from_timestamp_millis(v.at)
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default();
                let commit: String = v
                    .commit
                    .as_deref()
                    .unwrap_or("-")
                    .chars()
                    .take(12)
                    .collect();
                let changes = match &v.error {
                    Some(e) => e.lines().next().unwrap_or_default().to_string(),
                    None => v.change_log.as_array().map_or(0, Vec::len).to_string(),
                };
                let _ = writeln!(
                    out,
                    "{:<34} {:<9} {:<10} {:<12} {:<20} {changes}",
                    v.version_id, v.status, v.source, commit, at
                );
            }
        }
        Action::Show(None) => {
            let v: CurrentVersion = json("GET", &format!("{base}/versions/current"), token)?;
            let _ = writeln!(
                out,
                "current {}{} (source {}, commit {})",
                v.version_id,
                if v.pinned {
                    ", pinned by a rollback"
                } else {
                    ""
                },
                v.source.as_deref().unwrap_or("-"),
                v.commit.as_deref().unwrap_or("-")
            );
            out.push_str(&change_log(&v.change_log));
        }
        Action::Show(Some(id)) => {
            let body: VersionHistory = json("GET", &format!("{base}/versions"), token)?;
            let v = body
                .versions
                .into_iter()
                .find(|v| v.version_id == id)
                .ok_or_else(|| format!("no version `{id}` in {repo}'s history"))?;
            let _ = writeln!(
                out,
                "{} {} (source {}, commit {})",
                v.status,
                id,
                v.source,
                v.commit.as_deref().unwrap_or("-")
            );
            match &v.error {
                Some(e) => out.push_str(e),
                None => out.push_str(&change_log(&v.change_log)),
            }
        }
        Action::Diff(a, b) => {
            let body: VersionDiff = json("GET", &format!("{base}/versions/{a}/diff/{b}"), token)?;
            let _ = writeln!(out, "{a} → {b}");
            out.push_str(&change_log(&body.change_log));
        }
        Action::Sync => {
            let (status, body) = post(&format!("{base}/sync"), token, None)?;
            (out, code) = outcome(status, &body)?;
        }
        Action::Rollback { id, if_match } => {
            let url = format!("{base}/versions/{}/rollback", segment(&id));
            let (status, body) = post(&url, token, if_match.as_deref())?;
            (out, code) = outcome(status, &body)?;
        }
        Action::Unpin => {
            let (status, body) = post(&format!("{base}/versions/unpin"), token, None)?;
            (out, code) = outcome(status, &body)?;
        }
    }
    print!("{out}");
    Ok(code)
}
