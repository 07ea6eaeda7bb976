//! The `needs` context, and reusable-workflow calls at run time: the `inputs` and `secrets`
//! an inlined job sees, and a calling job as its dependents see it (one result, the called
//! workflow's `on.workflow_call.outputs` evaluated over its `jobs`).

use super::Finished;
use super::context::{RunContext, object, strings, typed_input};
use super::events::Conclusion;
use crate::expr::Value;
use crate::plan::{CallFrame, PlannedJob, interpolate};
use indexmap::IndexMap;
use std::collections::HashMap;
use std::sync::Arc;

type Shared = Arc<IndexMap<String, Value>>;

/// What every job's contexts are built from.
pub(super) struct Calls<'a> {
    pub jobs: &'a [PlannedJob],
    pub finished: &'a HashMap<String, Finished>,
    pub shared: &'a Shared,
}

/// Results and outputs grouped by job id (matrix instances merged), as `needs` and `jobs`
/// present them.
#[derive(Default)]
struct Grouped(IndexMap<String, (Vec<Conclusion>, IndexMap<String, String>)>);

impl Grouped {
    fn add(&mut self, id: &str, result: Conclusion, outputs: &IndexMap<String, String>) {
        let entry = self.0.entry(id.to_string()).or_default();
        entry.0.push(result);
        entry.1.extend(outputs.clone());
    }

    fn value(self) -> Value {
        object(self.0.into_iter().map(|(id, (results, outputs))| {
            let value = object([
                (
                    "result".to_string(),
                    Value::String(combined(&results).as_str().into()),
                ),
                ("outputs".to_string(), strings(&outputs)),
            ]);
            (id, value)
        }))
    }
}

fn combined(results: &[Conclusion]) -> Conclusion {
    if results.contains(&Conclusion::Failure) {
        Conclusion::Failure
    } else if results.contains(&Conclusion::Cancelled) {
        Conclusion::Cancelled
    } else if results.iter().all(|r| *r == Conclusion::Skipped) {
        Conclusion::Skipped
    } else {
        Conclusion::Success
    }
}

impl Calls<'_> {
    fn planned(&self, key: &str) -> Option<&PlannedJob> {
        self.jobs.iter().find(|j| j.key == key)
    }

    /// `needs` of a job inside `inside` (or at the top level): a needed job inlined from a
    /// call the job is not part of is seen as that calling job.
    pub(super) fn needs(&self, keys: &[String], inside: Option<&Arc<CallFrame>>) -> Value {
        let mut grouped = Grouped::default();
        let mut callers_done: Vec<*const CallFrame> = Vec::new();
        for key in keys {
            let Some(f) = self.finished.get(key) else {
                continue;
            };
            match self.outermost_foreign_frame(key, inside) {
                Some(frame) => {
                    if !callers_done.contains(&Arc::as_ptr(&frame)) {
                        callers_done.push(Arc::as_ptr(&frame));
                        let (result, outputs) = self.call_result(&frame);
                        grouped.add(&frame.caller_id, result, &outputs);
                    }
                }
                None => grouped.add(&f.id, f.result, &f.outputs),
            }
        }
        grouped.value()
    }

    /// The outermost call `key`'s job is inlined from that does not also hold `inside`.
    fn outermost_foreign_frame(
        &self,
        key: &str,
        inside: Option<&Arc<CallFrame>>,
    ) -> Option<Arc<CallFrame>> {
        let mut frame = self.planned(key)?.call.clone();
        let mut found = None;
        while let Some(f) = frame {
            let shared = inside.is_some_and(|i| i.within(&f));
            if !shared {
                found = Some(Arc::clone(&f));
            }
            frame = f.parent.clone();
        }
        found
    }

    /// A calling job's result (all its inlined jobs) and outputs.
    fn call_result(&self, frame: &Arc<CallFrame>) -> (Conclusion, IndexMap<String, String>) {
        let mut jobs = Grouped::default();
        let mut results = Vec::new();
        let mut nested_done: Vec<*const CallFrame> = Vec::new();
        for job in self.jobs {
            let Some(own) = &job.call else { continue };
            if !own.within(frame) {
                continue;
            }
            let Some(f) = self.finished.get(&job.key) else {
                continue;
            };
            results.push(f.result);
            if Arc::ptr_eq(own, frame) {
                jobs.add(&f.id, f.result, &f.outputs);
                continue;
            }
            // A job of a call inside this one: seen as that call.
            let mut child = Arc::clone(own);
            while let Some(parent) = child.parent.clone() {
                if Arc::ptr_eq(&parent, frame) {
                    break;
                }
                child = parent;
            }
            if !nested_done.contains(&Arc::as_ptr(&child)) {
                nested_done.push(Arc::as_ptr(&child));
                let (result, outputs) = self.call_result(&child);
                jobs.add(&child.caller_id, result, &outputs);
            }
        }
        let (inputs, _) = self.frame_contexts(frame);
        let mut shared = (**self.shared).clone();
        shared.insert("jobs".into(), jobs.value());
        shared.insert("inputs".into(), inputs);
        let ctx = RunContext::new(Arc::new(shared));
        let outputs = frame
            .outputs
            .iter()
            .map(|(k, v)| (k.clone(), super::job::interpolate_lossy(v, &ctx)))
            .collect();
        (combined(&results), outputs)
    }

    /// The contexts a job runs with: for a job inlined from a call, its `inputs` and
    /// `secrets` replaced by the call's.
    pub(super) fn shared_for(&self, job: &PlannedJob) -> Shared {
        let Some(frame) = &job.call else {
            return Arc::clone(self.shared);
        };
        let (inputs, secrets) = self.frame_contexts(frame);
        let mut shared = (**self.shared).clone();
        shared.insert("inputs".into(), inputs);
        shared.insert("secrets".into(), secrets);
        Arc::new(shared)
    }

    /// A call's `inputs` (its `with:` evaluated where the caller stands, typed and
    /// defaulted as the called workflow declares) and `secrets` (`inherit`, or the named
    /// ones; `GITHUB_TOKEN` always).
    fn frame_contexts(&self, frame: &Arc<CallFrame>) -> (Value, Value) {
        let caller_shared = match &frame.parent {
            Some(parent) => {
                let (inputs, secrets) = self.frame_contexts(parent);
                let mut shared = (**self.shared).clone();
                shared.insert("inputs".into(), inputs);
                shared.insert("secrets".into(), secrets);
                Arc::new(shared)
            }
            None => Arc::clone(self.shared),
        };
        let mut ctx = RunContext::new(Arc::clone(&caller_shared));
        ctx.needs = self.needs(&frame.caller_needs, frame.parent.as_ref());
        if let Some(matrix) = &frame.caller_matrix {
            ctx.matrix = Value::from_json(matrix);
        }
        let mut inputs = IndexMap::new();
        for (name, input) in &frame.inputs {
            let given = frame
                .with
                .get(name)
                .and_then(|v| interpolate::json(v, &ctx))
                .or_else(|| input.default.clone());
            let value = match given {
                Some(v) => typed_input(&input.kind, v),
                None => Value::Null,
            };
            inputs.insert(name.clone(), value);
        }
        let caller_secrets = caller_shared
            .get("secrets")
            .cloned()
            .unwrap_or(Value::Object(IndexMap::new()));
        let mut secrets = IndexMap::new();
        match &frame.secrets {
            Some(serde_json::Value::String(s)) if s == "inherit" => {
                if let Value::Object(all) = &caller_secrets {
                    secrets.extend(all.clone());
                }
            }
            Some(serde_json::Value::Object(map)) => {
                for (name, v) in map {
                    let value = interpolate::json(v, &ctx).map_or(Value::Null, |j| {
                        Value::String(j.as_str().map_or_else(|| j.to_string(), String::from))
                    });
                    secrets.insert(name.clone(), value);
                }
            }
            _ => {}
        }
        if let Some(token) = caller_secrets.property_ref("GITHUB_TOKEN") {
            secrets.insert("GITHUB_TOKEN".into(), token.clone());
        }
        (Value::Object(inputs), Value::Object(secrets))
    }
}
