//! Composite actions (`runs.using: composite`), local or fetched, nested at most
//! [`MAX_DEPTH`] deep as on GitHub: their steps run in the job with their own `steps` context.

use super::{ActionStep, Resolved, StepReturn, failed, input_values};
use crate::engine::context::object;
use crate::engine::job::{JobRun, JobState, interpolate_lossy};
use crate::exec::Outcome;
use crate::expr::Value;
use indexmap::IndexMap;

/// GitHub's limit on composite actions inside composite actions.
pub(super) const MAX_DEPTH: usize = 10;

pub(super) fn run(
    job: &mut JobRun,
    a: &ActionStep,
    with: IndexMap<String, String>,
    resolved: &Resolved,
    state: &mut JobState,
) -> StepReturn {
    if state.composite_depth >= MAX_DEPTH {
        return failed(
            job,
            a.index,
            format!(
                "`{}`: composite actions are nested more than {MAX_DEPTH} levels deep",
                a.uses
            ),
        );
    }
    let action = &resolved.action;
    let values = input_values(job, a, action, &with);
    let inputs = object(
        values
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect::<IndexMap<_, _>>(),
    );
    // The caller step's `env` and `GITHUB_ACTION_PATH` are seen by every inner step; what
    // the inner steps write to `GITHUB_ENV` stays for the job's later steps.
    let mut scoped = crate::engine::job::evaluate_env(&a.step.env, a.ctx);
    scoped.insert(
        "GITHUB_ACTION_PATH".into(),
        resolved.dir.display().to_string(),
    );
    if !resolved.repository.is_empty() {
        scoped.insert(
            "GITHUB_ACTION_REPOSITORY".into(),
            resolved.repository.clone(),
        );
        scoped.insert("GITHUB_ACTION_REF".into(), resolved.git_ref.clone());
    }
    let before: IndexMap<String, Option<String>> = scoped
        .keys()
        .map(|k| (k.clone(), state.env.get(k).cloned()))
        .collect();
    state.env.extend(scoped.clone());
    // The composite's steps see their own `steps` context; the caller's is restored after.
    let outer_steps = std::mem::take(&mut state.steps);
    let outer_failed = std::mem::replace(&mut state.failed, false);
    state.composite_depth += 1;
    job.run_steps(&action.steps, state, Some(&inputs));
    state.composite_depth -= 1;
    for (key, old) in before {
        // Restored unless an inner step set it anew.
        if state.env.get(&key) == scoped.get(&key) {
            match old {
                Some(v) => state.env.insert(key, v),
                None => state.env.shift_remove(&key),
            };
        }
    }
    let mut ctx = a.ctx.clone();
    ctx.steps = Value::Object(state.steps.clone());
    let mut shared = (*ctx.shared).clone();
    shared.insert("inputs".into(), inputs);
    ctx.shared = std::sync::Arc::new(shared);
    let outputs: IndexMap<String, String> = action
        .outputs
        .iter()
        .map(|(k, v)| (k.clone(), interpolate_lossy(v, &ctx)))
        .collect();
    let inner_failed = state.failed;
    state.steps = outer_steps;
    state.failed = outer_failed;
    let outcome = if inner_failed {
        Outcome::ExitCode(1)
    } else {
        Outcome::Success
    };
    (outcome, outputs, Vec::new())
}
