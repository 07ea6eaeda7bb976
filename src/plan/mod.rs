//! Planner: `Pipeline` × `Event` → `Plan`, the DAG of job instances that run for the event
//! (matrix expanded, reusable workflows inlined), with the reason for every decision.

mod context;
mod dag;
pub mod gitlab;
pub mod interpolate;
pub mod matrix;
mod play;
mod steps;

pub use context::{NeedsState, PlanContext};
pub use dag::{find_cycle, levels, topological_order};
pub use play::{input_forms, play};
pub use steps::{PlannedStep, StepGroup};

use crate::diag::Diagnostic;
use crate::expr::Value;
use crate::spec::{Dialect, Job, Pipeline};
use crate::trigger::{Event, EventKind, decide};
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value as Json;
use std::rc::Rc;
use std::sync::Arc;

/// Job ids and keys are hashed in every pass: foldhash, as for [`crate::spec::JobMap`].
type Hasher = foldhash::fast::RandomState;
/// Each job's plan keys (matrix instances) and whether each is skipped.
type KeysByJob = IndexMap<String, Vec<(String, bool)>, Hasher>;

/// GitHub allows reusable workflows nested this deep.
const MAX_CALL_DEPTH: usize = 10;

#[derive(Debug, Clone, Serialize)]
pub struct PipelinePlan {
    pub file: String,
    pub name: String,
    pub dialect: Dialect,
    /// `None` when planned without an event (every job listed).
    pub triggered: Option<bool>,
    pub reason: Option<String>,
    pub jobs: Vec<PlannedJob>,
    /// Jobs that will not run for this event, with why.
    pub skipped: Vec<SkippedJob>,
    /// GitLab includes whose `rules:` left them out for this event, with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_includes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedJob {
    /// The job id in its workflow.
    pub id: String,
    /// Unique per instance: `test (stable, ubuntu-latest)`, `call/inner`.
    pub key: String,
    /// As GitHub displays it.
    pub name: String,
    pub needs: Vec<String>,
    pub runs_on: Json,
    pub matrix: Option<Json>,
    /// The condition still to evaluate at run time (`None` if none or settled now).
    #[serde(rename = "if")]
    pub condition: Option<String>,
    pub level: usize,
    /// Which steps run at the same time; only for jobs with parallel steps.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub step_groups: Vec<StepGroup>,
    /// The job definition, for the engine.
    #[serde(skip)]
    pub spec: Arc<Job>,
    /// Needed jobs that are skipped for this event (they count as `skipped` at run time).
    #[serde(skip)]
    pub needs_skipped: Vec<String>,
    /// The reusable-workflow call this job was inlined from (innermost first).
    #[serde(skip)]
    pub call: Option<Arc<CallFrame>>,
}

/// A job that calls a reusable workflow, as its inlined jobs see it at run time: their
/// `inputs` and `secrets` come from it, and its dependents see it as one job whose outputs
/// are the called workflow's `on.workflow_call.outputs`.
#[derive(Debug, Clone)]
pub struct CallFrame {
    /// The calling job's id and key (its inner jobs' keys start with `key/`).
    pub caller_id: String,
    pub caller_key: String,
    pub with: IndexMap<String, Json>,
    /// `inherit`, a map of expressions, or none.
    pub secrets: Option<Json>,
    /// The called workflow's inputs (types, defaults) and outputs.
    pub inputs: IndexMap<String, crate::spec::Input>,
    pub outputs: IndexMap<String, String>,
    /// What the calling job needs (`needs` of its `with:` and `secrets:`), by key.
    pub caller_needs: Vec<String>,
    pub caller_matrix: Option<Json>,
    pub parent: Option<Arc<CallFrame>>,
}

impl CallFrame {
    /// Whether this frame is `other` or is inside it.
    pub fn within(self: &Arc<Self>, other: &Arc<CallFrame>) -> bool {
        let mut frame = Some(self);
        while let Some(f) = frame {
            if Arc::ptr_eq(f, other) {
                return true;
            }
            frame = f.parent.as_ref();
        }
        false
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SkippedJob {
    pub id: String,
    pub key: String,
    pub name: String,
    pub reason: String,
}

/// Plans one pipeline. Without an event, every job is listed and nothing is decided.
pub fn plan_pipeline(p: &Pipeline, event: Option<&Event>) -> (PipelinePlan, Vec<Diagnostic>) {
    if let (Dialect::GitLab, Some(e)) = (p.dialect, event) {
        let (selected, decision, skipped, mut diagnostics) = gitlab::for_event(p, e);
        let (mut plan, mut more) = plan_with(&selected, event, Some(decision));
        plan.skipped.splice(0..0, skipped);
        diagnostics.append(&mut more);
        return (plan, diagnostics);
    }
    plan_with(p, event, event.map(|e| decide(&p.on, e)))
}

fn plan_with(
    p: &Pipeline,
    event: Option<&Event>,
    decision: Option<crate::trigger::Decision>,
) -> (PipelinePlan, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    tracing::debug!(file = %p.file, decision = ?decision, "planning");
    let mut out = PipelinePlan {
        file: p.file.clone(),
        name: p.name.clone(),
        dialect: p.dialect,
        triggered: decision.as_ref().map(|d| d.triggered),
        reason: decision.as_ref().map(|d| d.reason.clone()),
        jobs: Vec::new(),
        skipped: Vec::new(),
        skipped_includes: p.skipped_includes.clone(),
    };
    if decision.as_ref().is_some_and(|d| !d.triggered) {
        return (out, diagnostics);
    }
    let inputs = event.map_or(Value::Unknown, |e| input_context(p, e, &mut diagnostics));
    let base = PlanContext::for_event(event, inputs);
    let mut planner = Planner {
        diagnostics: &mut diagnostics,
        // One instance per job unless matrices or called workflows add more.
        instances: Vec::with_capacity(p.jobs.len()),
    };
    planner.expand(p, &base, &Scope::default(), 0);
    let Planner { instances, .. } = planner;
    finish(&mut out, instances);
    if let Some(run_name) = &p.run_name {
        out.name = interpolate::string_or_source(run_name, &base);
    }
    (out, diagnostics)
}

/// `inputs.*`: declared defaults, overridden by the event's values (typed per declaration).
fn input_context(p: &Pipeline, e: &Event, diagnostics: &mut Vec<Diagnostic>) -> Value {
    let mut map = IndexMap::new();
    if e.kind != EventKind::Manual {
        // Only manual (and called) runs have inputs; elsewhere the context is empty.
        return Value::Object(map);
    }
    for (name, input) in &p.inputs {
        let given = e.inputs.get(name);
        let value = match (given, &input.default) {
            (Some(v), _) => typed_input(&input.kind, v),
            (None, Some(d)) => Value::from_json(d),
            (None, None) if input.required => {
                let msg = format!("required input `{name}` is missing (pass --input {name}=VALUE)");
                diagnostics.push(Diagnostic::error(&p.file, crate::diag::Pos::new(1, 1), msg));
                Value::Null
            }
            (None, None) => match input.kind.as_str() {
                "boolean" => Value::Bool(false),
                _ => Value::String(String::new()),
            },
        };
        if let (Some(v), false) = (given, input.options.is_empty())
            && !input.options.contains(v)
        {
            let msg = format!(
                "input `{name}` must be one of: {}",
                input.options.join(", ")
            );
            diagnostics.push(Diagnostic::error(&p.file, crate::diag::Pos::new(1, 1), msg));
        }
        map.insert(name.clone(), value);
    }
    for (name, v) in &e.inputs {
        if !p.inputs.contains_key(name) {
            map.insert(name.clone(), Value::String(v.clone()));
        }
    }
    Value::Object(map)
}

fn typed_input(kind: &str, v: &str) -> Value {
    match kind {
        "boolean" => Value::Bool(v == "true"),
        "number" => v.parse().map_or(Value::String(v.into()), Value::Number),
        _ => Value::String(v.into()),
    }
}

/// Where a (possibly nested) workflow's jobs land in the plan.
#[derive(Default, Clone)]
struct Scope {
    key_prefix: String,
    name_prefix: String,
    /// Keys every root job of this workflow waits for (the caller's needs).
    outer_needs: Vec<(String, bool)>,
    outer_skipped: bool,
    frame: Option<Arc<CallFrame>>,
}

/// A job instance before levels are computed.
struct Instance {
    job: PlannedJob,
    /// Keys of needed instances, with whether each is skipped.
    needs: Vec<(String, bool)>,
    skipped: Option<String>,
}

struct Planner<'d> {
    diagnostics: &'d mut Vec<Diagnostic>,
    instances: Vec<Instance>,
}

impl Planner<'_> {
    /// Expands every job of `p` into instances; returns, per job id, its instance keys.
    fn expand(
        &mut self,
        p: &Pipeline,
        base: &PlanContext,
        scope: &Scope,
        depth: usize,
    ) -> KeysByJob {
        let mut by_job = KeysByJob::default();
        let edges = p.need_edges();
        let Some(order) = topological_order(&edges) else {
            return by_job; // The spec layer reports the cycle.
        };
        for index in order {
            let job = &p.jobs[index];
            let mut needs: Vec<(String, bool)> = scope.outer_needs.clone();
            for need in &job.needs {
                needs.extend(by_job.get(need).cloned().unwrap_or_default());
            }
            let any_skipped = scope.outer_skipped || needs.iter().any(|(_, skipped)| *skipped);
            let mut ctx = base.clone();
            ctx.needs = match (needs.is_empty() && !scope.outer_skipped, any_skipped) {
                (true, _) => NeedsState::None,
                (false, true) => NeedsState::SomeSkipped,
                (false, false) => NeedsState::Pending,
            };
            let keys = self.expand_job(p, job, &ctx, scope, needs, depth);
            by_job.insert(job.id.clone(), keys);
        }
        by_job
    }

    fn expand_job(
        &mut self,
        p: &Pipeline,
        job: &Arc<Job>,
        ctx: &PlanContext,
        scope: &Scope,
        needs: Vec<(String, bool)>,
        depth: usize,
    ) -> Vec<(String, bool)> {
        let combos: Vec<Option<matrix::Combination>> = match &job.strategy.matrix {
            None => vec![None],
            Some(raw) => match interpolate::json(raw, ctx) {
                // Known only at run time (e.g. from another job's outputs): one placeholder.
                None => vec![None],
                Some(Json::Object(m)) => match matrix::expand(&m) {
                    Ok(combos) => combos.into_iter().map(Some).collect(),
                    Err(msg) => {
                        self.diagnostics.push(Diagnostic::error(
                            &p.file,
                            job.pos,
                            format!("job `{}`: {msg}", job.id),
                        ));
                        return Vec::new();
                    }
                },
                Some(other) => {
                    let msg = format!(
                        "job `{}`: matrix must evaluate to an object, got {other}",
                        job.id
                    );
                    self.diagnostics
                        .push(Diagnostic::error(&p.file, job.pos, msg));
                    return Vec::new();
                }
            },
        };
        let total = combos.len();
        let mut keys = Vec::new();
        for (index, combo) in combos.into_iter().enumerate() {
            let mut ctx = ctx.clone();
            if let Some(c) = &combo {
                ctx.matrix = Value::from_json(&Json::Object(c.clone().into_iter().collect()));
                ctx.strategy = strategy_context(job, &ctx, index, total);
            }
            let suffix = combo.as_ref().map(matrix::display_values);
            let key = match &suffix {
                Some(s) => format!("{}{} {s}", scope.key_prefix, job.id),
                None => format!("{}{}", scope.key_prefix, job.id),
            };
            let name = match (&job.name, &suffix) {
                (Some(n), _) if n.contains("${{") => interpolate::string_or_source(n, &ctx),
                (_, Some(s)) => format!("{} {s}", job.display_name()),
                _ => job.display_name().to_string(),
            };
            let name = format!("{}{name}", scope.name_prefix);
            let verdict = interpolate::condition(job.condition.as_deref(), &ctx);
            let skipped = match verdict.overall {
                Some(false) => Some(skip_reason(job, &ctx, &needs)),
                _ => None,
            };
            let runs_on = job.runs_on.as_ref().map_or(Json::Null, |r| {
                interpolate::json(r, &ctx).unwrap_or_else(|| r.clone())
            });
            // Settled conditions are not shown; the rest is decided at run time.
            let condition = match verdict.own {
                Some(_) => None,
                None => job.condition.clone(),
            };
            if let (Some(call), None) = (&job.call, &skipped)
                && let Some(callee) = &call.workflow
            {
                if depth >= MAX_CALL_DEPTH {
                    let msg =
                        format!("reusable workflows nest deeper than {MAX_CALL_DEPTH} levels");
                    self.diagnostics
                        .push(Diagnostic::error(&p.file, job.pos, msg));
                    continue;
                }
                let frame = Arc::new(CallFrame {
                    caller_id: job.id.clone(),
                    caller_key: key.clone(),
                    with: call.with.clone(),
                    secrets: call.secrets.clone(),
                    inputs: callee.inputs.clone(),
                    outputs: callee.call_outputs.clone(),
                    caller_needs: needs.iter().map(|(k, _)| k.clone()).collect(),
                    caller_matrix: combo
                        .as_ref()
                        .map(|c| Json::Object(c.clone().into_iter().collect())),
                    parent: scope.frame.clone(),
                });
                let inner_scope = Scope {
                    key_prefix: format!("{key}/"),
                    name_prefix: format!("{name} / "),
                    outer_needs: needs.clone(),
                    outer_skipped: ctx.needs == NeedsState::SomeSkipped,
                    frame: Some(frame),
                };
                let mut inner =
                    PlanContext::for_event(None, called_inputs(callee, &call.with, &ctx));
                inner.github = Rc::clone(&ctx.github);
                let inner_jobs = self.expand(callee, &inner, &inner_scope, depth + 1);
                // A called workflow succeeds when its inner jobs are skipped, so dependents
                // of the caller wait only for the inner jobs that run.
                keys.extend(
                    inner_jobs
                        .into_values()
                        .flatten()
                        .filter(|(_, skipped)| !skipped),
                );
                continue;
            }
            keys.push((key.clone(), skipped.is_some()));
            self.instances.push(Instance {
                job: PlannedJob {
                    id: job.id.clone(),
                    key,
                    name,
                    needs: Vec::new(),
                    runs_on,
                    matrix: combo.map(|c| Json::Object(c.into_iter().collect())),
                    condition,
                    level: 0,
                    step_groups: steps::groups(&job.steps),
                    spec: Arc::clone(job),
                    needs_skipped: Vec::new(),
                    call: scope.frame.clone(),
                },
                needs: needs.clone(),
                skipped,
            });
        }
        keys
    }
}

fn strategy_context(job: &Job, ctx: &PlanContext, index: usize, total: usize) -> Value {
    let flag = |v: &Option<Json>, default: Json| {
        v.as_ref()
            .and_then(|v| interpolate::json(v, ctx))
            .map_or_else(|| Value::from_json(&default), |j| Value::from_json(&j))
    };
    let mut map = IndexMap::new();
    map.insert(
        "fail-fast".into(),
        flag(&job.strategy.fail_fast, Json::Bool(true)),
    );
    map.insert("job-index".into(), Value::Number(index as f64));
    map.insert("job-total".into(), Value::Number(total as f64));
    map.insert(
        "max-parallel".into(),
        flag(&job.strategy.max_parallel, Json::from(total)),
    );
    Value::Object(map)
}

/// `inputs` of a called workflow: its defaults, overridden by the caller's `with:`.
fn called_inputs(callee: &Pipeline, with: &IndexMap<String, Json>, ctx: &PlanContext) -> Value {
    let mut map = IndexMap::new();
    for (name, input) in &callee.inputs {
        let v = match with.get(name) {
            Some(v) => interpolate::json(v, ctx).map_or(Value::Unknown, |j| Value::from_json(&j)),
            None => input.default.as_ref().map_or(Value::Null, Value::from_json),
        };
        map.insert(name.clone(), v);
    }
    Value::Object(map)
}

fn skip_reason(job: &Job, ctx: &PlanContext, needs: &[(String, bool)]) -> String {
    let explicit = job.condition.as_deref();
    if ctx.needs == NeedsState::SomeSkipped && explicit.is_none_or(|c| !c.contains('(')) {
        let skipped: Vec<&str> = needs
            .iter()
            .filter(|(_, s)| *s)
            .map(|(k, _)| k.as_str())
            .collect();
        if !skipped.is_empty() {
            return format!("needs `{}`, which is skipped", skipped.join("`, `"));
        }
        return "its caller is skipped".into();
    }
    match explicit {
        Some(c) => format!("`if: {c}` is false for this event"),
        None => "skipped".into(),
    }
}

/// Drops skipped instances from `needs`, makes keys unique and computes levels.
fn finish(out: &mut PipelinePlan, instances: Vec<Instance>) {
    let mut seen: IndexMap<String, usize, Hasher> =
        IndexMap::with_capacity_and_hasher(instances.len(), Hasher::default());
    let mut run = Vec::with_capacity(instances.len());
    for mut inst in instances {
        let count = seen.entry(inst.job.key.clone()).or_insert(0);
        *count += 1;
        if *count > 1 {
            inst.job.key = format!("{} #{}", inst.job.key, count);
        }
        match inst.skipped.take() {
            Some(reason) => out.skipped.push(SkippedJob {
                id: inst.job.id,
                key: inst.job.key,
                name: inst.job.name,
                reason,
            }),
            None => {
                let (skipped, running): (Vec<_>, Vec<_>) =
                    inst.needs.into_iter().partition(|(_, skipped)| *skipped);
                inst.job.needs = running.into_iter().map(|(k, _)| k).collect();
                inst.job.needs_skipped = skipped.into_iter().map(|(k, _)| k).collect();
                run.push(inst.job);
            }
        }
    }
    let index: IndexMap<&str, usize, Hasher> = run
        .iter()
        .enumerate()
        .map(|(i, j)| (j.key.as_str(), i))
        .collect();
    let edges: Vec<Vec<usize>> = run
        .iter()
        .map(|j| {
            j.needs
                .iter()
                .filter_map(|k| index.get(k.as_str()).copied())
                .collect()
        })
        .collect();
    let levels = levels(&edges);
    for (job, level) in run.iter_mut().zip(levels) {
        job.level = level;
    }
    out.jobs = run;
}
