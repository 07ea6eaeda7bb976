//! JavaScript actions (`runs.using: node12…node24`) as GitHub's runner runs them: `pre` at
//! the job's start, `main` as the step, `post` after the job's steps (last first), each
//! `node FILE` with the inputs, `GITHUB_ACTION_*`, the cache service and `STATE_*`.

use super::{ActionStep, PostStep, Resolved, StepReturn, input_env, input_values};
use crate::engine::context::RunContext;
use crate::engine::job::{JobRun, JobState, Process, step_name};
use crate::exec::Stream;
use crate::spec::Step;
use indexmap::IndexMap;
use std::path::PathBuf;
use std::sync::Arc;

pub(super) fn is_node(using: &str) -> bool {
    matches!(using, "node12" | "node16" | "node20" | "node24")
}

/// A `post` to run after the job's steps.
pub(crate) struct Post {
    name: String,
    file: PathBuf,
    /// `post-if`, default `always()`.
    condition: String,
    step: Step,
    ctx: RunContext,
    env: IndexMap<String, String>,
    state_key: String,
}

/// The key of a step's action state (`GITHUB_STATE`), shared by its pre, main and post.
fn state_key(step: &Step) -> String {
    format!("{}:{}", step.pos.line, step.pos.col)
}

/// Everything the action's processes see besides the step's own env: `INPUT_*`, where the
/// action is, the tool cache, the cache service.
fn action_env(
    job: &JobRun,
    a: &ActionStep,
    resolved: &Resolved,
    with: &IndexMap<String, String>,
) -> IndexMap<String, String> {
    let values = input_values(job, a, &resolved.action, with);
    let mut env = input_env(&values);
    env.insert(
        "GITHUB_ACTION_PATH".into(),
        resolved.dir.display().to_string(),
    );
    env.insert(
        "GITHUB_ACTION_REPOSITORY".into(),
        resolved.repository.clone(),
    );
    env.insert("GITHUB_ACTION_REF".into(), resolved.git_ref.clone());
    env.insert(
        "GITHUB_ACTION".into(),
        a.step
            .id
            .clone()
            .unwrap_or_else(|| format!("__{}", resolved.repository.replace(['/', '-'], "_"))),
    );
    env.insert(
        "RUNNER_TOOL_CACHE".into(),
        job.actions.tool_cache.display().to_string(),
    );
    let endpoint = match &job.cache {
        Some(given) => Ok(given.clone()),
        None => job.actions.cache(&cache_scopes(a.ctx)),
    };
    match endpoint {
        Ok(endpoint) => {
            // Both APIs: `@actions/cache` picks the twirp one when ACTIONS_CACHE_SERVICE_V2
            // is set (in the workflow's env), the REST one otherwise.
            env.insert("ACTIONS_RESULTS_URL".into(), endpoint.url.clone());
            env.insert("ACTIONS_CACHE_URL".into(), endpoint.url);
            env.insert("ACTIONS_RUNTIME_TOKEN".into(), endpoint.token);
        }
        Err(e) => {
            if job.actions.first_time("cache service") {
                job.log(Some(a.index), Stream::Stderr, &format!("##[warning]{e}"));
            }
        }
    }
    env
}

/// The branch a cache is saved for, then those it may restore from: a pull request's base
/// branch and the repository's default branch (GitHub's cache access rules).
fn cache_scopes(ctx: &RunContext) -> Vec<String> {
    let github = ctx.shared.get("github");
    let field = |path: &[&str]| {
        let mut v = github.cloned().unwrap_or(crate::expr::Value::Null);
        for p in path {
            v = v.property(p);
        }
        v.to_display()
    };
    let mut scopes = vec![field(&["ref"])];
    for branch in [
        field(&["base_ref"]),
        field(&["event", "repository", "default_branch"]),
    ] {
        let scope = format!("refs/heads/{branch}");
        if !branch.is_empty() && !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    scopes
}

/// The node program, or why the action cannot run; a version other than the action's is
/// warned about once.
fn node_for(job: &JobRun, a: &ActionStep, using: &str) -> Result<String, String> {
    let (program, major) = job.actions.node();
    let Some(major) = major else {
        return Err(format!(
            "`{}` is a JavaScript action ({using}) and `{program}` does not run (install node or pass --node PATH)",
            a.uses
        ));
    };
    let wanted: u32 = using.trim_start_matches("node").parse().unwrap_or(major);
    if major != wanted && job.actions.first_time(&format!("node{major}/{using}")) {
        job.log(
            Some(a.index),
            Stream::Stderr,
            &format!(
                "##[warning]`{}` asks for {using}; running it with node {major} ({program})",
                a.uses
            ),
        );
    }
    Ok(program)
}

#[allow(clippy::too_many_arguments)]
fn run_file(
    job: &mut JobRun,
    step: &Step,
    state: &mut JobState,
    ctx: &RunContext,
    index: usize,
    (node, file): (&str, PathBuf),
    env: &IndexMap<String, String>,
    state_key: &str,
) -> StepReturn {
    let mut env = env.clone();
    if let Some(saved) = state.action_state.get(state_key) {
        for (k, v) in saved {
            env.insert(format!("STATE_{k}"), v.clone());
        }
    }
    let argv = vec![node.to_string(), file.display().to_string()];
    let result = job.run_on(
        step,
        state,
        ctx,
        index,
        Process {
            script: "",
            argv: Some(argv),
            executor: Some(&crate::exec::Host),
            extra_env: &env,
        },
    );
    let saved = std::mem::take(&mut state.last_state);
    if !saved.is_empty() {
        state
            .action_state
            .entry(state_key.to_string())
            .or_default()
            .extend(saved);
    }
    result
}

/// The step: `main`, after registering `post`.
pub(super) fn run(
    job: &mut JobRun,
    a: &ActionStep,
    with: &IndexMap<String, String>,
    resolved: &Resolved,
    state: &mut JobState,
) -> StepReturn {
    let action = &resolved.action;
    let node = match node_for(job, a, &action.using) {
        Ok(node) => node,
        Err(why) => return super::unavailable(job, a.index, why),
    };
    let env = action_env(job, a, resolved, with);
    let key = state_key(a.step);
    if let Some(post) = &action.post {
        // Registered once the main step starts: GitHub runs the post of every action whose
        // main ran, whatever its result (subject to `post-if`).
        state.post.push(PostStep::Node(Box::new(Post {
            name: format!("Post {}", step_name(a.step, a.ctx)),
            file: resolved.dir.join(post),
            condition: action.post_if.clone().unwrap_or_else(|| "always()".into()),
            step: a.step.clone(),
            ctx: a.ctx.clone(),
            env: env.clone(),
            state_key: key.clone(),
        })));
    }
    let main = resolved
        .dir
        .join(action.main.as_deref().unwrap_or_default());
    run_file(
        job,
        a.step,
        state,
        a.ctx,
        a.index,
        (&node, main),
        &env,
        &key,
    )
}

/// The `pre` of every JavaScript action among the job's steps, before the first step (as
/// GitHub's "Set up job" does), each subject to its `pre-if` (default `always()`). Resolving
/// them here also fetches every remote action once, at the start.
pub(crate) fn run_pre(job: &mut JobRun, steps: &[Step], state: &mut JobState) {
    for step in steps {
        let Some(uses) = step.uses.as_deref() else {
            continue;
        };
        if uses.starts_with("docker://") || super::builtin_name(job, uses, step, &job.ctx).is_some()
        {
            continue;
        }
        let Ok(resolved) = super::resolve(job, uses, state) else {
            // Reported when the step is reached.
            continue;
        };
        let resolved: Arc<Resolved> = resolved;
        let action = &resolved.action;
        let Some(pre) = action.pre.as_ref().filter(|_| is_node(&action.using)) else {
            continue;
        };
        let condition = action.pre_if.clone().unwrap_or_else(|| "always()".into());
        let name = format!("Pre {}", step_name(step, &job.ctx));
        let file = resolved.dir.join(pre);
        job.run_hook(state, name, &condition, &mut |job, state, ctx, index| {
            let with = super::step_with(step, ctx);
            let a = ActionStep {
                step,
                uses,
                ctx,
                index,
            };
            let node = match node_for(job, &a, &action.using) {
                Ok(node) => node,
                Err(why) => return super::unavailable(job, index, why),
            };
            let env = action_env(job, &a, &resolved, &with);
            run_file(
                job,
                step,
                state,
                ctx,
                index,
                (&node, file.clone()),
                &env,
                &state_key(step),
            )
        });
    }
}

impl Post {
    pub(crate) fn run(self: Box<Self>, job: &mut JobRun, state: &mut JobState) {
        let node = job.actions.node().0;
        let Post {
            name,
            file,
            condition,
            step,
            ctx,
            env,
            state_key,
        } = *self;
        job.run_hook(state, name, &condition, &mut |job, state, _, index| {
            run_file(
                job,
                &step,
                state,
                &ctx,
                index,
                (&node, file.clone()),
                &env,
                &state_key,
            )
        });
    }
}
