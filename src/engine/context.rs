//! The expression contexts while a run executes: everything is known now, so unknown
//! values only come from contexts that are really empty (`vars`).

use crate::expr::{Context, Status, Value};
use indexmap::IndexMap;
use std::sync::Arc;

/// Status functions' inputs: how the job (or, for a job's `if`, its needs) went so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StatusView {
    pub success: bool,
    pub failure: bool,
    pub cancelled: bool,
}

impl StatusView {
    /// For steps: the job so far.
    pub(super) fn of_job(failed: bool, cancelled: bool) -> StatusView {
        StatusView {
            success: !failed && !cancelled,
            failure: failed,
            cancelled,
        }
    }
}

#[derive(Clone)]
pub(super) struct RunContext {
    /// `github`, `inputs`, `vars`, `secrets`, `runner`: the same for every job of the run.
    pub shared: Arc<IndexMap<String, Value>>,
    pub env: Value,
    pub matrix: Value,
    pub strategy: Value,
    pub needs: Value,
    pub steps: Value,
    pub job: Value,
    pub status: StatusView,
}

impl RunContext {
    pub(super) fn new(shared: Arc<IndexMap<String, Value>>) -> RunContext {
        let empty = Value::Object(IndexMap::new());
        RunContext {
            shared,
            env: empty.clone(),
            matrix: empty.clone(),
            strategy: empty.clone(),
            needs: empty.clone(),
            steps: empty.clone(),
            job: empty,
            status: StatusView::of_job(false, false),
        }
    }
}

impl Context for RunContext {
    fn named(&self, name: &str) -> Option<&Value> {
        match name {
            "env" => Some(&self.env),
            "matrix" => Some(&self.matrix),
            "strategy" => Some(&self.strategy),
            "needs" => Some(&self.needs),
            "steps" => Some(&self.steps),
            "job" => Some(&self.job),
            other => self.shared.get(other),
        }
    }

    fn hash_files(&self, patterns: &[String]) -> Value {
        let workspace = self
            .shared
            .get("github")
            .map(|g| g.property("workspace").to_display());
        match workspace {
            Some(ws) if !ws.is_empty() => {
                Value::String(hash_files(std::path::Path::new(&ws), patterns))
            }
            _ => Value::String(String::new()),
        }
    }

    fn status(&self, f: Status) -> Value {
        Value::Bool(match f {
            Status::Always => true,
            Status::Cancelled => self.status.cancelled,
            Status::Failure => self.status.failure,
            Status::Success => self.status.success,
        })
    }
}

pub(super) fn object(pairs: impl IntoIterator<Item = (String, Value)>) -> Value {
    Value::Object(pairs.into_iter().collect())
}

pub(super) fn strings(map: &IndexMap<String, String>) -> Value {
    object(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone()))),
    )
}

/// GitHub's `hashFiles`: the SHA-256 of the SHA-256s of every matching file, in path order;
/// empty when nothing matches. Patterns are relative to the workspace; `!` excludes.
pub fn hash_files(workspace: &std::path::Path, patterns: &[String]) -> String {
    use crate::trigger::glob::{Pattern, PatternList};
    use sha2::{Digest, Sha256};
    let list = PatternList {
        patterns: patterns
            .iter()
            .filter_map(|p| Pattern::new(p.trim_start_matches("./")).ok())
            .collect(),
    };
    let mut files = Vec::new();
    let mut stack = vec![workspace.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == ".git" || name == ".tess" {
                continue;
            }
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => {
                    let rel = path
                        .strip_prefix(workspace)
                        .unwrap_or(&path)
                        .to_string_lossy()
                        .into_owned();
                    if list.selects(&rel) {
                        files.push((rel, path));
                    }
                }
                _ => {}
            }
        }
    }
    if files.is_empty() {
        return String::new();
    }
    files.sort();
    let mut outer = Sha256::new();
    for (_, path) in files {
        if let Ok(bytes) = std::fs::read(&path) {
            outer.update(Sha256::digest(&bytes));
        }
    }
    outer
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An input (`workflow_dispatch`, `workflow_call`) as its declared `type` makes it (`number`: `"3"` → 3; `boolean`: `"true"`).
pub(super) fn typed_input(kind: &str, value: serde_json::Value) -> Value {
    match (kind, &value) {
        ("number", serde_json::Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .map_or_else(|_| Value::from_json(&value), Value::Number),
        ("boolean", serde_json::Value::String(s)) => match s.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::from_json(&value),
        },
        _ => Value::from_json(&value),
    }
}
