//! What changed between two versions, as data: pipelines, jobs, triggers and schedules
//! added, removed or changed — and for a change, which fields.

use super::{Definitions, PipelineModel};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// `pipeline`, `job`, `trigger`, `schedule` or `file` (an included file).
    pub kind: String,
    /// `added`, `removed` or `changed`.
    pub change: String,
    pub pipeline: String,
    /// The job id, trigger event or cron expression it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For `changed`: the fields that differ.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

fn change(kind: &str, what: &str, pipeline: &str, name: Option<&str>) -> Change {
    Change {
        kind: kind.into(),
        change: what.into(),
        pipeline: pipeline.into(),
        name: name.map(String::from),
        fields: Vec::new(),
    }
}

/// The keys whose values differ between two JSON objects (the whole value when either is
/// not an object).
fn changed_fields(old: &Json, new: &Json) -> Vec<String> {
    match (old.as_object(), new.as_object()) {
        (Some(a), Some(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .filter(|k| a.get(*k) != b.get(*k))
                .cloned()
                .collect()
        }
        _ if old != new => vec!["(value)".into()],
        _ => Vec::new(),
    }
}

/// Added, removed and changed entries of two keyed collections.
fn compare<'a, T: PartialEq + 'a>(
    old: impl IntoIterator<Item = (&'a str, &'a T)>,
    new: impl IntoIterator<Item = (&'a str, &'a T)>,
    mut on: impl FnMut(&'a str, Option<&'a T>, Option<&'a T>),
) {
    let old: Vec<(&str, &T)> = old.into_iter().collect();
    let new: Vec<(&str, &T)> = new.into_iter().collect();
    for (key, value) in &old {
        match new.iter().find(|(k, _)| k == key) {
            None => on(key, Some(value), None),
            Some((_, now)) if now != value => on(key, Some(value), Some(now)),
            Some(_) => {}
        }
    }
    for (key, value) in &new {
        if !old.iter().any(|(k, _)| k == key) {
            on(key, None, Some(value));
        }
    }
}

fn added_removed(old: Option<impl Sized>, new: Option<impl Sized>) -> &'static str {
    match (old.is_some(), new.is_some()) {
        (false, _) => "added",
        (_, false) => "removed",
        _ => "changed",
    }
}

/// What `new` changes relative to `old`.
pub(crate) fn diff(old: &Definitions, new: &Definitions) -> Vec<Change> {
    let mut changes = Vec::new();
    compare(
        old.pipelines.iter().map(|(k, v)| (k.as_str(), v)),
        new.pipelines.iter().map(|(k, v)| (k.as_str(), v)),
        |file, a, b| match (a, b) {
            (Some(a), Some(b)) => changes.extend(pipeline_changes(file, a, b)),
            _ => changes.push(change("pipeline", added_removed(a, b), file, None)),
        },
    );
    // Included files that are not pipelines themselves.
    compare(
        old.files
            .iter()
            .filter(|(k, _)| !old.pipelines.contains_key(*k))
            .map(|(k, v)| (k.as_str(), v)),
        new.files
            .iter()
            .filter(|(k, _)| !new.pipelines.contains_key(*k))
            .map(|(k, v)| (k.as_str(), v)),
        |file, a, b| {
            let mut c = change("file", added_removed(a, b), file, None);
            if let (Some(a), Some(b)) = (a, b) {
                c.fields = changed_fields(a, b);
            }
            changes.push(c);
        },
    );
    changes
}

fn pipeline_changes(file: &str, old: &PipelineModel, new: &PipelineModel) -> Vec<Change> {
    let mut changes = Vec::new();
    if old.name != new.name {
        let mut c = change("pipeline", "changed", file, None);
        c.fields = vec!["name".into()];
        changes.push(c);
    }
    let events = |t: &Json| -> Vec<(String, Json)> {
        match t {
            Json::Object(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Json::Array(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(|s| (s.to_string(), Json::Null)))
                .collect(),
            Json::String(s) => vec![(s.clone(), Json::Null)],
            _ => Vec::new(),
        }
    };
    // Schedules are listed one by one below.
    let events = |t: &Json| -> Vec<(String, Json)> {
        let mut list = events(t);
        list.retain(|(event, _)| event != "schedule");
        list
    };
    let (old_events, new_events) = (events(&old.triggers), events(&new.triggers));
    compare(
        old_events.iter().map(|(k, v)| (k.as_str(), v)),
        new_events.iter().map(|(k, v)| (k.as_str(), v)),
        |event, a, b| {
            let mut c = change("trigger", added_removed(a, b), file, Some(event));
            if let (Some(a), Some(b)) = (a, b) {
                c.fields = changed_fields(a, b);
            }
            changes.push(c);
        },
    );
    let key = |s: &super::ScheduleDef| format!("{} ({})", s.cron, s.timezone);
    let (old_crons, new_crons): (Vec<String>, Vec<String>) = (
        old.schedules.iter().map(key).collect(),
        new.schedules.iter().map(key).collect(),
    );
    compare(
        old_crons.iter().map(|k| (k.as_str(), k)),
        new_crons.iter().map(|k| (k.as_str(), k)),
        |cron, a, b| changes.push(change("schedule", added_removed(a, b), file, Some(cron))),
    );
    compare(
        old.jobs.iter().map(|(k, v)| (k.as_str(), v)),
        new.jobs.iter().map(|(k, v)| (k.as_str(), v)),
        |job, a, b| {
            let mut c = change("job", added_removed(a, b), file, Some(job));
            if let (Some(a), Some(b)) = (a, b) {
                c.fields = changed_fields(a, b);
            }
            changes.push(c);
        },
    );
    changes
}

/// One change as a line: `+` added, `-` removed, `~` changed (with the fields).
pub(crate) fn change_line(change: &Json) -> String {
    use std::fmt::Write as _;
    let text = |k: &str| change[k].as_str().unwrap_or_default().to_string();
    let mark = match change["change"].as_str() {
        Some("added") => "+",
        Some("removed") => "-",
        _ => "~",
    };
    let mut line = format!("{mark} {}", text("kind"));
    if let Some(name) = change["name"].as_str() {
        let _ = write!(line, " {name}");
    }
    let _ = write!(line, " ({})", text("pipeline"));
    if let Some(fields) = change["fields"].as_array().filter(|f| !f.is_empty()) {
        let fields: Vec<&str> = fields.iter().filter_map(Json::as_str).collect();
        let _ = write!(line, ": {}", fields.join(", "));
    }
    line
}
