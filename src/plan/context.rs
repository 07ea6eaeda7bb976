//! The expression context available while planning: what the event tells us (`github`,
//! `inputs`), the matrix instance, and the static status of a job's needs.

use crate::expr::{Context, Status, Value};
use crate::trigger::{Event, EventKind};
use indexmap::IndexMap;
use std::rc::Rc;

/// Cheap to clone: one per job instance; the event-wide parts are shared.
#[derive(Clone)]
pub struct PlanContext {
    pub github: Rc<Value>,
    pub inputs: Rc<Value>,
    pub matrix: Value,
    pub strategy: Value,
    /// No needs: status functions are known. Some need skipped: `success()` is false.
    pub needs: NeedsState,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NeedsState {
    None,
    /// Will run (their result is only known at run time).
    Pending,
    /// At least one need is skipped for this event, so `success()` is false.
    SomeSkipped,
}

impl PlanContext {
    /// Without an event nothing is known; with one, `github.*` describes it.
    pub fn for_event(event: Option<&Event>, inputs: Value) -> PlanContext {
        let github = event.map_or(Value::Unknown, github_context);
        PlanContext {
            github: Rc::new(github),
            inputs: Rc::new(inputs),
            matrix: Value::Null,
            strategy: Value::Unknown,
            needs: NeedsState::None,
        }
    }
}

fn obj(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn s(text: &str) -> Value {
    Value::String(text.to_string())
}

/// `github.*` for an event. Fields a local plan cannot know (repository, actor, sha) are
/// absent from the object and evaluate as unknown via [`PlanContext::named`].
fn github_context(e: &Event) -> Value {
    let mut event: IndexMap<String, Value> = IndexMap::new();
    let ref_type = if e.tag().is_some() { "tag" } else { "branch" };
    let (base_ref, head_ref) = match e.kind {
        EventKind::PullRequest => (
            s(e.base.as_deref().unwrap_or("main")),
            s(e.head.as_deref().unwrap_or("")),
        ),
        _ => (s(""), s("")),
    };
    match e.kind {
        EventKind::PullRequest => {
            event.insert("action".into(), s(e.action.as_deref().unwrap_or("opened")));
            let pr = obj(vec![
                ("base", obj(vec![("ref", base_ref.clone())])),
                ("head", obj(vec![("ref", head_ref.clone())])),
            ]);
            event.insert("pull_request".into(), pr);
        }
        EventKind::Manual => {
            let inputs = e.inputs.iter().map(|(k, v)| (k.clone(), s(v))).collect();
            event.insert("inputs".into(), Value::Object(inputs));
        }
        EventKind::Schedule => {
            if let Some(c) = &e.cron {
                event.insert("schedule".into(), s(c));
            }
        }
        EventKind::Push => {
            event.insert("ref".into(), s(&e.git_ref));
            event.insert("created".into(), Value::Unknown);
            event.insert("deleted".into(), Value::Bool(false));
        }
    }
    let mut github = vec![
        ("event_name", s(e.github_name())),
        ("ref", s(&e.git_ref)),
        ("ref_name", s(e.ref_name())),
        ("ref_type", s(ref_type)),
        ("base_ref", base_ref),
        ("head_ref", head_ref),
        ("event", Value::partial_object(event)),
    ];
    if let Some(sha) = &e.sha {
        github.push(("sha", s(sha)));
    }
    Value::partial_object(
        github
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

impl Context for PlanContext {
    fn named(&self, name: &str) -> Option<&Value> {
        match name {
            "github" => Some(&self.github),
            "inputs" => Some(&self.inputs),
            "matrix" => Some(&self.matrix),
            "strategy" => Some(&self.strategy),
            _ => None,
        }
    }

    fn status(&self, f: Status) -> Value {
        match (f, self.needs) {
            (Status::Always, _) => Value::Bool(true),
            (Status::Success, NeedsState::None) => Value::Bool(true),
            (Status::Success, NeedsState::SomeSkipped) => Value::Bool(false),
            (Status::Failure, NeedsState::None) => Value::Bool(false),
            _ => Value::Unknown,
        }
    }
}
