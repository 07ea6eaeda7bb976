//! Docker actions: `docker://IMAGE` steps and `runs.using: docker` actions (local or
//! fetched), their image built from the action's Dockerfile or pulled, run as the step.

use super::{ActionStep, Resolved, StepReturn, failed, input_values};
use crate::engine::context::object;
use crate::engine::job::{JobRun, JobState, interpolate_lossy};
use crate::exec::Stream;
use crate::expr::Value;
use indexmap::IndexMap;
use std::path::PathBuf;

enum DockerImage {
    Pull(String),
    /// A Dockerfile (relative to the context) built in the action's directory.
    Build {
        context: PathBuf,
        dockerfile: String,
    },
}

struct DockerRun {
    image: DockerImage,
    entrypoint: Option<Vec<String>>,
    args: Vec<String>,
    env: IndexMap<String, String>,
}

/// A `docker://IMAGE` step: `with.args` and `with.entrypoint` split as a shell would.
pub(super) fn image_step(
    job: &mut JobRun,
    a: &ActionStep,
    image: &str,
    with: &IndexMap<String, String>,
    state: &mut JobState,
) -> StepReturn {
    let split = |key: &str| {
        with.get(key)
            .map(|v| crate::exec::container::shell_words(v))
            .transpose()
    };
    match (split("args"), split("entrypoint")) {
        (Ok(args), Ok(entrypoint)) => {
            let run = DockerRun {
                image: DockerImage::Pull(image.to_string()),
                entrypoint,
                args: args.unwrap_or_default(),
                env: IndexMap::new(),
            };
            docker_action(job, a, state, run)
        }
        (Err(e), _) | (_, Err(e)) => failed(job, a.index, format!("`{}`: {e}", a.uses)),
    }
}

/// A `runs.using: docker` action (local or fetched): inputs as `INPUT_<NAME>` (and the
/// `inputs` context of `args` and `env`), its image built from its Dockerfile or pulled.
pub(super) fn action(
    job: &mut JobRun,
    a: &ActionStep,
    resolved: &Resolved,
    with: &IndexMap<String, String>,
    state: &mut JobState,
) -> StepReturn {
    let action = &resolved.action;
    let dir = &resolved.dir;
    let values = input_values(job, a, action, with);
    let mut env = super::input_env(&values);
    let inputs: IndexMap<String, Value> = values
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let mut ctx = a.ctx.clone();
    let mut shared = (*ctx.shared).clone();
    shared.insert("inputs".into(), object(inputs));
    ctx.shared = std::sync::Arc::new(shared);
    for (k, v) in &action.env {
        env.insert(k.clone(), interpolate_lossy(v, &ctx));
    }
    let image = action.image.clone().unwrap_or_default();
    let image = match image.strip_prefix("docker://") {
        Some(pulled) => DockerImage::Pull(pulled.to_string()),
        None => DockerImage::Build {
            context: dir.clone(),
            dockerfile: image,
        },
    };
    let args = match with.get("args") {
        Some(text) => match crate::exec::container::shell_words(text) {
            Ok(words) => words,
            Err(e) => return failed(job, a.index, format!("`{}`: {e}", a.uses)),
        },
        None => action
            .args
            .iter()
            .map(|arg| interpolate_lossy(arg, &ctx))
            .collect(),
    };
    let entrypoint = with
        .get("entrypoint")
        .or(action.entrypoint.as_ref())
        .map(|e| vec![e.clone()]);
    let run = DockerRun {
        image,
        entrypoint,
        args,
        env,
    };
    docker_action(job, a, state, run)
}

/// Runs a Docker action's container as the step, on the job's network when it has one.
fn docker_action(
    job: &mut JobRun,
    a: &ActionStep,
    state: &mut JobState,
    run: DockerRun,
) -> StepReturn {
    let docker = match crate::exec::container::connect() {
        Ok(d) => d,
        Err(e) => {
            return failed(
                job,
                a.index,
                format!(
                    "`{}` is a Docker action, and no Docker API answers: {e}",
                    a.uses
                ),
            );
        }
    };
    let mut messages = Vec::new();
    let image = match &run.image {
        DockerImage::Pull(image) => Ok(image.clone()),
        DockerImage::Build {
            context,
            dockerfile,
        } => {
            crate::exec::container::ActionContainer::build(&docker, context, dockerfile, &mut |l| {
                messages.push(l.to_string());
            })
        }
    };
    for line in messages.drain(..) {
        job.log(Some(a.index), Stream::Stdout, &line);
    }
    let image = match image {
        Ok(image) => image,
        Err(e) => return failed(job, a.index, e),
    };
    let mut container = match crate::exec::container::ActionContainer::new(docker, image, &job.key)
    {
        Ok(c) => c,
        Err(e) => return failed(job, a.index, e),
    };
    if let Err(e) = container.pull(&mut |l| messages.push(l.to_string())) {
        for line in messages.drain(..) {
            job.log(Some(a.index), Stream::Stdout, &line);
        }
        return failed(job, a.index, e);
    }
    for line in messages {
        job.log(Some(a.index), Stream::Stdout, &line);
    }
    container.entrypoint = run.entrypoint;
    container.args = run.args;
    container.mounts = vec![job.workspace.clone(), job.run_dir.clone()];
    container.network = job
        .containers
        .as_ref()
        .and_then(|c| c.network().map(String::from));
    job.run_on(
        a.step,
        state,
        a.ctx,
        a.index,
        crate::engine::job::Process {
            script: "",
            argv: None,
            executor: Some(&container),
            extra_env: &run.env,
        },
    )
}
