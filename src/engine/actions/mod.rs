//! `uses:` steps, as GitHub runs them: actions resolved (`./local`, `owner/repo[/path]@ref`
//! fetched by [`crate::fetch`]) and run by kind — JavaScript, composite, Docker — with the
//! built-in fast path for checkout, artifacts and cache; an action that cannot run is never
//! shown as passed.

mod builtin;
mod composite;
mod docker;
mod node;
pub(super) mod runtime;

pub(crate) use node::run_pre;

use super::job::{JobRun, JobState, interpolate_lossy};
use crate::engine::context::RunContext;
use crate::exec::{Annotation, Outcome, Stream};
use crate::spec::Step;
use crate::spec::action::Action;
use indexmap::IndexMap;
use std::path::PathBuf;
use std::sync::Arc;

pub(super) struct ActionStep<'a> {
    pub step: &'a Step,
    pub uses: &'a str,
    pub ctx: &'a RunContext,
    pub index: usize,
}

type StepReturn = (Outcome, IndexMap<String, String>, Vec<Annotation>);

/// Work done after the job's steps, last registered first (GitHub's order).
pub(super) enum PostStep {
    /// The built-in `actions/cache` saving its paths (when the job succeeded).
    CacheSave(builtin::CacheSave),
    /// A JavaScript action's `post`.
    Node(Box<node::Post>),
}

/// An action's metadata and where its files are.
pub(super) struct Resolved {
    pub dir: PathBuf,
    /// `GITHUB_ACTION_REPOSITORY` / `GITHUB_ACTION_REF` (empty for a local action).
    pub repository: String,
    pub git_ref: String,
    pub action: Action,
}

/// Why an action did not resolve: it cannot run here.
pub(super) type Unresolved = String;

/// A step's `with:`, evaluated in `ctx`.
fn step_with(step: &Step, ctx: &RunContext) -> IndexMap<String, String> {
    step.with
        .iter()
        .map(|(k, v)| (k.clone(), interpolate_lossy(v, ctx)))
        .collect()
}

pub(super) fn run(job: &mut JobRun, a: ActionStep, state: &mut JobState) -> StepReturn {
    let with = step_with(a.step, a.ctx);
    if let Some(name) = builtin_name(job, a.uses, a.step, a.ctx) {
        return match name.as_str() {
            "actions/checkout" => builtin::checkout(job, a.index),
            "actions/upload-artifact" => builtin::upload(job, &with, a.index),
            "actions/download-artifact" => builtin::download(job, &with, a.index),
            _ => builtin::cache(job, &with, a.index, state, &name),
        };
    }
    if let Some(image) = a.uses.strip_prefix("docker://") {
        return docker::image_step(job, &a, image, &with, state);
    }
    match resolve(job, a.uses, state) {
        Ok(resolved) => run_resolved(job, &a, with, &resolved, state),
        Err(why) => unavailable(job, a.index, why),
    }
}

/// The built-in that runs for `uses` (unless `--no-builtin-actions`): checkout of the
/// run's own repository into the workspace, the artifact actions, the cache actions.
fn builtin_name(job: &JobRun, uses: &str, step: &Step, ctx: &RunContext) -> Option<String> {
    if !job.actions.builtins {
        return None;
    }
    let name = uses.split('@').next().unwrap_or(uses).to_ascii_lowercase();
    let known = match name.as_str() {
        "actions/checkout" => builtin::checkout_is_the_workspace(&step_with(step, ctx), ctx),
        "actions/upload-artifact"
        | "actions/download-artifact"
        | "actions/cache"
        | "actions/cache/restore"
        | "actions/cache/save" => true,
        _ => false,
    };
    known.then_some(name)
}

fn run_resolved(
    job: &mut JobRun,
    a: &ActionStep,
    with: IndexMap<String, String>,
    resolved: &Resolved,
    state: &mut JobState,
) -> StepReturn {
    match resolved.action.using.as_str() {
        "composite" => composite::run(job, a, with, resolved, state),
        "docker" => docker::action(job, a, resolved, &with, state),
        using if node::is_node(using) => node::run(job, a, &with, resolved, state),
        using => unavailable(
            job,
            a.index,
            format!(
                "`{}` uses `runs.using: {using}`, which tess does not run",
                a.uses
            ),
        ),
    }
}

/// The action a step's `uses:` names, read once per job.
pub(super) fn resolve(
    job: &JobRun,
    uses: &str,
    state: &mut JobState,
) -> Result<Arc<Resolved>, Unresolved> {
    if let Some(known) = state.resolved.get(uses) {
        return known.clone();
    }
    let started = std::time::Instant::now();
    let resolved = resolve_uncached(job, uses).map(Arc::new);
    tracing::debug!(
        action = uses,
        micros = started.elapsed().as_micros() as u64,
        ok = resolved.is_ok(),
        "action resolved"
    );
    state.resolved.insert(uses.to_string(), resolved.clone());
    resolved
}

fn resolve_uncached(job: &JobRun, uses: &str) -> Result<Resolved, Unresolved> {
    let (dir, repository, git_ref) = if let Some(local) = uses.strip_prefix("./") {
        (job.workspace.join(local), String::new(), String::new())
    } else {
        let Some(action) = crate::fetch::ActionRef::parse(uses) else {
            return Err(format!(
                "`{uses}` is not an action reference (owner/repo[/path]@ref, ./path or docker://image)"
            ));
        };
        let fetched = job
            .actions
            .source
            .fetch(&action)
            .map_err(|e| e.to_string())?;
        if fetched.fetched {
            job.log(
                None,
                Stream::Stdout,
                &format!(
                    "Download action repository '{action}' (SHA:{})",
                    fetched.commit
                ),
            );
        }
        (fetched.path, action.repository(), action.git_ref)
    };
    let Some(file) = ["action.yml", "action.yaml"]
        .iter()
        .map(|f| dir.join(f))
        .find(|f| f.is_file())
    else {
        return Err(format!("`{uses}`: no action.yml in {}", dir.display()));
    };
    let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let action = crate::spec::action::parse_action(&file.display().to_string(), &bytes).map_err(
        |diagnostics| {
            let text: String = diagnostics
                .iter()
                .map(|d| d.render(std::str::from_utf8(&bytes).ok()))
                .collect();
            format!("invalid action `{uses}`:\n{text}")
        },
    )?;
    Ok(Resolved {
        dir,
        repository,
        git_ref,
        action,
    })
}

/// An action that cannot run here: a failure saying why, or with `--skip-unavailable` a
/// visible "not run" (the job's result then says `skipped-steps`). Never a green ✓.
pub(super) fn unavailable(job: &JobRun, index: usize, why: String) -> StepReturn {
    if job.actions.skip_unavailable {
        job.log(
            Some(index),
            Stream::Stderr,
            &format!("##[warning]{why}; not run (--skip-unavailable)"),
        );
        (Outcome::Unavailable(why), IndexMap::new(), Vec::new())
    } else {
        job.log(Some(index), Stream::Stderr, &format!("##[error]{why}"));
        (Outcome::FailedToSpawn(why), IndexMap::new(), Vec::new())
    }
}

fn failed(job: &JobRun, index: usize, message: String) -> StepReturn {
    job.log(Some(index), Stream::Stderr, &format!("##[error]{message}"));
    (Outcome::ExitCode(1), IndexMap::new(), Vec::new())
}

/// The action's inputs: `with:` values, else the defaults of `action.yml` (interpolated in
/// the step's context); a required input with neither, and inputs the action does not
/// declare, are warned about.
fn input_values(
    job: &JobRun,
    a: &ActionStep,
    action: &Action,
    with: &IndexMap<String, String>,
) -> IndexMap<String, String> {
    let mut values = IndexMap::new();
    for (name, input) in &action.inputs {
        let given = with
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone());
        let value = given.or_else(|| input.default.as_ref().map(|d| interpolate_lossy(d, a.ctx)));
        match value {
            Some(v) => {
                values.insert(name.clone(), v);
            }
            None if input.required => {
                // GitHub does not enforce `required` itself (the action does, as
                // `@actions/core` and most composite actions do): a warning, then the action.
                job.log(
                    Some(a.index),
                    Stream::Stderr,
                    &format!(
                        "##[warning]`{}`: input required and not supplied: {name}",
                        a.uses
                    ),
                );
                values.insert(name.clone(), String::new());
            }
            None => {
                values.insert(name.clone(), String::new());
            }
        }
    }
    let unexpected: Vec<&str> = with
        .keys()
        .filter(|k| !action.inputs.keys().any(|n| n.eq_ignore_ascii_case(k)))
        .map(String::as_str)
        .collect();
    if !unexpected.is_empty() && !action.inputs.is_empty() {
        let valid: Vec<&str> = action.inputs.keys().map(String::as_str).collect();
        job.log(
            Some(a.index),
            Stream::Stderr,
            &format!(
                "##[warning]Unexpected input(s) '{}', valid inputs are ['{}']",
                unexpected.join("', '"),
                valid.join("', '")
            ),
        );
    }
    values
}

/// `INPUT_<NAME>`: upper case, spaces as `_` (what `@actions/core` reads).
fn input_env(values: &IndexMap<String, String>) -> IndexMap<String, String> {
    values
        .iter()
        .map(|(k, v)| {
            (
                format!("INPUT_{}", k.replace(' ', "_").to_ascii_uppercase()),
                v.clone(),
            )
        })
        .collect()
}
