//! The expression contexts while a run executes: everything is known now, so unknown
//! values only come from contexts that are really empty (`vars`).

use crate::expr::{Context, Status, Value};
use indexmap::IndexMap;
use std::sync::Arc;

/// Status functions' inputs: how the job (or, for a job's `if`, its needs) went so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusView {
    pub success: bool,
    pub failure: bool,
    pub cancelled: bool,
}

impl StatusView {
    /// For steps: the job so far.
    pub fn of_job(failed: bool, cancelled: bool) -> StatusView {
        StatusView {
            success: !failed && !cancelled,
            failure: failed,
            cancelled,
        }
    }
}

#[derive(Clone)]
pub struct RunContext {
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
    pub fn new(shared: Arc<IndexMap<String, Value>>) -> RunContext {
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

    fn status(&self, f: Status) -> Value {
        Value::Bool(match f {
            Status::Always => true,
            Status::Cancelled => self.status.cancelled,
            Status::Failure => self.status.failure,
            Status::Success => self.status.success,
        })
    }
}

pub fn object(pairs: impl IntoIterator<Item = (String, Value)>) -> Value {
    Value::Object(pairs.into_iter().collect())
}

pub fn strings(map: &IndexMap<String, String>) -> Value {
    object(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone()))),
    )
}
