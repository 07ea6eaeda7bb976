//! `uses:` steps: built-ins for `actions/checkout`, `actions/upload-artifact`,
//! `actions/download-artifact` and `actions/cache`, local composite actions, and Docker
//! actions (`docker://IMAGE` and local `runs.using: docker`) in containers.

use super::context::object;
use super::job::{JobRun, JobState, interpolate_lossy, workspace_relative};
use crate::engine::context::RunContext;
use crate::exec::{Annotation, Outcome, Stream};
use crate::expr::Value;
use crate::spec::Step;
use indexmap::IndexMap;
use std::path::{Path, PathBuf};

pub struct ActionStep<'a> {
    pub step: &'a Step,
    pub uses: &'a str,
    pub ctx: &'a RunContext,
    pub index: usize,
}

type StepReturn = (Outcome, IndexMap<String, String>, Vec<Annotation>);

/// Work done after the job's steps (saving a cache).
pub struct PostAction {
    key_dir: PathBuf,
    paths: Vec<PathBuf>,
}

impl PostAction {
    pub fn run(&self, workspace: &Path, log: &mut dyn FnMut(&str)) {
        let _ = std::fs::remove_dir_all(&self.key_dir);
        for (i, p) in self.paths.iter().enumerate() {
            if p.exists() {
                let _ = copy_tree(p, &self.key_dir.join(i.to_string()));
            }
        }
        let shown = self
            .key_dir
            .strip_prefix(workspace)
            .unwrap_or(&self.key_dir);
        log(&format!("cache saved to {}", shown.display()));
    }
}

pub fn run(job: &mut JobRun, a: ActionStep, state: &mut JobState) -> StepReturn {
    let with: IndexMap<String, String> = a
        .step
        .with
        .iter()
        .map(|(k, v)| (k.clone(), interpolate_lossy(v, a.ctx)))
        .collect();
    let name = a
        .uses
        .split('@')
        .next()
        .unwrap_or(a.uses)
        .to_ascii_lowercase();
    let ok = |outputs| (Outcome::Success, outputs, Vec::new());
    match name.as_str() {
        "actions/checkout" => {
            job.log(
                Some(a.index),
                Stream::Stdout,
                &format!("checkout: the workspace is {}", job.workspace.display()),
            );
            ok(IndexMap::new())
        }
        "actions/upload-artifact" => upload(job, &with, a.index),
        "actions/download-artifact" => download(job, &with, a.index),
        "actions/cache" | "actions/cache/restore" => {
            cache(job, &with, a.index, state, name == "actions/cache")
        }
        _ if a.uses.starts_with("docker://") => {
            let image = a.uses.trim_start_matches("docker://").to_string();
            let split = |key: &str| {
                with.get(key)
                    .map(|v| crate::exec::container::shell_words(v))
                    .transpose()
            };
            match (split("args"), split("entrypoint")) {
                (Ok(args), Ok(entrypoint)) => {
                    let run = DockerRun {
                        image: DockerImage::Pull(image),
                        entrypoint,
                        args: args.unwrap_or_default(),
                        env: IndexMap::new(),
                    };
                    docker_action(job, &a, state, run)
                }
                (Err(e), _) | (_, Err(e)) => failed(job, a.index, format!("`{}`: {e}", a.uses)),
            }
        }
        _ if a.uses.starts_with("./") => composite(job, &a, with, state),
        _ => {
            let message = format!("`{}` is not available in local runs; step skipped", a.uses);
            if job.strict {
                job.log(
                    Some(a.index),
                    Stream::Stderr,
                    &format!("##[error]{message} (--strict)"),
                );
                (Outcome::FailedToSpawn(message), IndexMap::new(), Vec::new())
            } else {
                job.log(
                    Some(a.index),
                    Stream::Stderr,
                    &format!("##[warning]{message}"),
                );
                ok(IndexMap::new())
            }
        }
    }
}

fn failed(job: &JobRun, index: usize, message: String) -> StepReturn {
    job.log(Some(index), Stream::Stderr, &format!("##[error]{message}"));
    (Outcome::ExitCode(1), IndexMap::new(), Vec::new())
}

fn lines(value: Option<&String>) -> Vec<String> {
    value
        .map(|v| {
            v.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn upload(job: &JobRun, with: &IndexMap<String, String>, index: usize) -> StepReturn {
    let name = with
        .get("name")
        .cloned()
        .unwrap_or_else(|| "artifact".into());
    let dest = job
        .run_dir
        .join("artifacts")
        .join(super::job::file_name(&name));
    let mut copied = 0;
    for p in lines(with.get("path")) {
        let src = workspace_relative(&job.workspace, &p);
        if !src.exists() {
            continue;
        }
        let rel = src
            .strip_prefix(&job.workspace)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| PathBuf::from(src.file_name().unwrap_or_default()));
        match copy_tree(&src, &dest.join(&rel)) {
            Ok(n) => copied += n,
            Err(e) => return failed(job, index, format!("upload-artifact: {e}")),
        }
    }
    if copied == 0 {
        let policy = with
            .get("if-no-files-found")
            .map(String::as_str)
            .unwrap_or("warn");
        let message = format!("upload-artifact: no files found for `{name}`");
        match policy {
            "error" => return failed(job, index, message),
            "ignore" => {}
            _ => job.log(
                Some(index),
                Stream::Stderr,
                &format!("##[warning]{message}"),
            ),
        }
    } else {
        job.log(
            Some(index),
            Stream::Stdout,
            &format!("uploaded {copied} file(s) as artifact `{name}`"),
        );
    }
    (
        Outcome::Success,
        IndexMap::from([("artifact-id".to_string(), name)]),
        Vec::new(),
    )
}

fn download(job: &JobRun, with: &IndexMap<String, String>, index: usize) -> StepReturn {
    let root = job.run_dir.join("artifacts");
    let target = with.get("path").map_or_else(
        || job.workspace.clone(),
        |p| workspace_relative(&job.workspace, p),
    );
    let result = match with.get("name") {
        Some(name) => {
            let src = root.join(super::job::file_name(name));
            if !src.is_dir() {
                return failed(
                    job,
                    index,
                    format!("download-artifact: artifact `{name}` not found in this run"),
                );
            }
            copy_tree(&src, &target)
        }
        None => std::fs::read_dir(&root).map(|entries| {
            entries
                .flatten()
                .map(|e| copy_tree(&e.path(), &target.join(e.file_name())).unwrap_or(0))
                .sum()
        }),
    };
    match result {
        Ok(n) => {
            job.log(
                Some(index),
                Stream::Stdout,
                &format!("downloaded {n} file(s) to {}", target.display()),
            );
            (
                Outcome::Success,
                IndexMap::from([("download-path".to_string(), target.display().to_string())]),
                Vec::new(),
            )
        }
        Err(e) => failed(job, index, format!("download-artifact: {e}")),
    }
}

fn cache(
    job: &JobRun,
    with: &IndexMap<String, String>,
    index: usize,
    state: &mut JobState,
    save: bool,
) -> StepReturn {
    let Some(key) = with.get("key").filter(|k| !k.is_empty()) else {
        return failed(job, index, "cache: `key` is required".into());
    };
    let root = job.workspace.join(".tess").join("cache");
    let paths: Vec<PathBuf> = lines(with.get("path"))
        .iter()
        .map(|p| workspace_relative(&job.workspace, p))
        .collect();
    let exact = root.join(super::job::file_name(key));
    let mut hit = None;
    if exact.is_dir() {
        hit = Some((exact.clone(), true));
    } else {
        for prefix in lines(with.get("restore-keys")) {
            let prefix = super::job::file_name(&prefix);
            let newest = std::fs::read_dir(&root).ok().and_then(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
            });
            if let Some(entry) = newest {
                hit = Some((entry.path(), false));
                break;
            }
        }
    }
    if let Some((dir, _)) = &hit {
        for (i, p) in paths.iter().enumerate() {
            let _ = copy_tree(&dir.join(i.to_string()), p);
        }
        job.log(
            Some(index),
            Stream::Stdout,
            &format!(
                "cache restored from {}",
                dir.file_name().unwrap_or_default().to_string_lossy()
            ),
        );
    } else {
        job.log(
            Some(index),
            Stream::Stdout,
            &format!("cache not found for key `{key}`"),
        );
    }
    let exact_hit = hit.as_ref().is_some_and(|(_, exact)| *exact);
    if save && !exact_hit {
        state.post.push(PostAction {
            key_dir: exact,
            paths,
        });
    }
    (
        Outcome::Success,
        IndexMap::from([("cache-hit".to_string(), exact_hit.to_string())]),
        Vec::new(),
    )
}

fn composite(
    job: &mut JobRun,
    a: &ActionStep,
    with: IndexMap<String, String>,
    state: &mut JobState,
) -> StepReturn {
    let dir = job.workspace.join(a.uses.trim_start_matches("./"));
    let Some(file) = ["action.yml", "action.yaml"]
        .iter()
        .map(|f| dir.join(f))
        .find(|f| f.is_file())
    else {
        return failed(
            job,
            a.index,
            format!("`{}`: no action.yml in {}", a.uses, dir.display()),
        );
    };
    let bytes = std::fs::read(&file).unwrap_or_default();
    let action = match crate::spec::action::parse_action(&file.display().to_string(), &bytes) {
        Ok(action) => action,
        Err(diagnostics) => {
            let text: String = diagnostics
                .iter()
                .map(|d| d.render(std::str::from_utf8(&bytes).ok()))
                .collect();
            return failed(
                job,
                a.index,
                format!("invalid action `{}`:\n{text}", a.uses),
            );
        }
    };
    if action.using == "docker" {
        return local_docker(job, a, &dir, &action, &with, state);
    }
    if action.using != "composite" {
        let message = format!(
            "`{}` uses `{}`; only composite local actions run locally",
            a.uses, action.using
        );
        if job.strict {
            return failed(job, a.index, message);
        }
        job.log(
            Some(a.index),
            Stream::Stderr,
            &format!("##[warning]{message}; step skipped"),
        );
        return (Outcome::Success, IndexMap::new(), Vec::new());
    }
    let mut inputs = IndexMap::new();
    for (name, default) in &action.inputs {
        let value = with
            .get(name)
            .cloned()
            .or_else(|| default.as_ref().map(|d| interpolate_lossy(d, a.ctx)));
        inputs.insert(name.clone(), Value::String(value.unwrap_or_default()));
    }
    // The composite's steps see their own `steps` context; the caller's is restored after.
    let outer_steps = std::mem::take(&mut state.steps);
    let outer_failed = std::mem::replace(&mut state.failed, false);
    let inputs = object(inputs);
    job.run_steps(&action.steps, state, Some(&inputs));
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

/// A local `runs.using: docker` action: inputs as `INPUT_<NAME>` (and the `inputs`
/// context of `args` and `env`), its image built from its Dockerfile or pulled.
fn local_docker(
    job: &mut JobRun,
    a: &ActionStep,
    dir: &Path,
    action: &crate::spec::action::Action,
    with: &IndexMap<String, String>,
    state: &mut JobState,
) -> StepReturn {
    let mut inputs = IndexMap::new();
    let mut env = IndexMap::new();
    for (name, default) in &action.inputs {
        let value = with
            .get(name)
            .cloned()
            .or_else(|| default.as_ref().map(|d| interpolate_lossy(d, a.ctx)))
            .unwrap_or_default();
        env.insert(
            format!("INPUT_{}", name.replace(' ', "_").to_ascii_uppercase()),
            value.clone(),
        );
        inputs.insert(name.clone(), Value::String(value));
    }
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
            context: dir.to_path_buf(),
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
                messages.push(l.to_string())
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
        "",
        state,
        a.ctx,
        a.index,
        Some(&container),
        &run.env,
    )
}

/// Copies a file or directory tree; returns the number of files copied.
fn copy_tree(src: &Path, dest: &Path) -> std::io::Result<usize> {
    if src.is_file() {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(src, dest)?;
        return Ok(1);
    }
    let mut count = 0;
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        count += copy_tree(&entry.path(), &dest.join(entry.file_name()))?;
    }
    Ok(count)
}
