//! `tess run`: plan for the event, prepare the workspace, run with the engine, report.

use super::{EventArgs, event, live, signals};
use crate::engine::{self, Conclusion, RunOptions};
use crate::exec::Cancel;
use crate::load::Loaded;
use crate::plan::{PipelinePlan, plan_pipeline};
use crate::trigger::Event;
use indexmap::IndexMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(super) struct RunArgs {
    pub event: Event,
    pub jobs: Vec<String>,
    pub job_inputs: Vec<(String, String)>,
    pub parallel: Option<usize>,
    pub secrets: Vec<(String, String)>,
    pub secret_file: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub isolate: bool,
    pub executor: crate::engine::containers::ExecutorMode,
    pub json: bool,
    pub strict: bool,
    /// GitHub Actions mode: where its summary and outputs go.
    pub action: Option<super::action::Files>,
    /// GitHub Actions mode: a status per stage on the commit.
    pub statuses: Option<super::statuses::Statuses>,
    pub actions: super::actions_args::ActionsArgs,
    pub source: Arc<crate::fetch::Source>,
}

const EXIT_FAILED: u8 = 1;
const EXIT_INTERRUPTED: u8 = 130;

/// The event a local run is for: `--event`, or a push of the current branch.
pub(super) fn event_for_run(args: &EventArgs) -> Result<Event, String> {
    let mut args = args.clone();
    if args.event.is_none() {
        args.event = Some("push".into());
    }
    event::from_args(&args)?.ok_or_else(|| "no event".into())
}

pub(super) fn run(loaded: &mut Loaded, mut args: RunArgs) -> Result<u8, String> {
    let event = &args.event;
    let secrets = read_secrets(&args)?;
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    let root = crate::git::toplevel(&cwd).unwrap_or_else(|| cwd.clone());
    let cancel = Arc::new(Cancel::default());
    signals::install(Arc::clone(&cancel));
    let mut code = 0;
    let actions = Arc::new(args.actions.runtime(
        Arc::clone(&args.source),
        root.join(".tess").join("actions-cache"),
    )?);
    let pipelines = std::mem::take(&mut loaded.pipelines);
    let mut plans = Vec::new();
    for pipeline in &pipelines {
        let (plan, mut diagnostics) = plan_pipeline(pipeline, Some(event));
        loaded.diagnostics.append(&mut diagnostics);
        if loaded.has_errors() {
            anstream::eprint!("{}", loaded.render_diagnostics_styled());
            return Ok(2);
        }
        if plan.triggered != Some(true) {
            eprintln!(
                "{}: not run: {}",
                plan.file,
                plan.reason.as_deref().unwrap_or("not triggered")
            );
            continue;
        }
        plans.push((pipeline, plan));
    }
    if !args.jobs.is_empty() {
        plans = with_jobs(plans, &args.jobs)?;
    }
    for (pipeline, mut plan) in plans {
        if !args.jobs.is_empty() {
            select_jobs(&mut plan, &args.jobs, &args.job_inputs)?;
        }
        let run_id = run_id();
        let run_dir = root.join(".tess").join("runs").join(&run_id);
        std::fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
        let workspace = if args.isolate {
            isolate(&root, &run_dir)?
        } else {
            root.clone()
        };
        let repo = crate::git::repo_info(&root);
        let mut environment = engine::environment::for_pipeline(
            pipeline, event, &repo, &workspace, &run_dir, &run_id, &secrets,
        )?;
        if let Some(url) = args.actions.server_url() {
            environment.set_server_url(url);
        }
        let opts = RunOptions {
            run_id: run_id.clone(),
            workspace,
            run_dir: run_dir.clone(),
            max_jobs: args
                .parallel
                .unwrap_or_else(|| {
                    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
                })
                .max(1),
            secrets: secrets.clone(),
            env: args.env.iter().cloned().collect(),
            strict: args.strict,
            cancel: Arc::clone(&cancel),
            prior: Vec::new(),
            executor: args.executor,
            actions: Arc::clone(&actions),
            cache: None,
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(64);
        let display = live::Display {
            json: args.json,
            grouped: args.action.is_some(),
            observer: args.statuses.as_ref().map(|s| s.observer(&plan.name)),
        };
        let dir = run_dir.clone();
        let printer = std::thread::spawn(move || live::consume(rx, dir, display));
        let result = engine::run(pipeline, &plan, &environment, &opts, tx);
        let summary = printer.join().map_err(|_| "the output thread panicked")?;
        // Scripts, file-command files and RUNNER_TEMP; logs and artifacts stay.
        let _ = std::fs::remove_dir_all(run_dir.join("tmp"));
        if !args.json {
            live::print_summary(&summary, &run_id, &run_dir);
        }
        if let Some(files) = &args.action {
            super::action::report(files, &plan, &summary, &run_id)?;
        }
        code = code.max(match result {
            Conclusion::Success | Conclusion::Skipped => 0,
            Conclusion::Failure => EXIT_FAILED,
            Conclusion::Cancelled => EXIT_INTERRUPTED,
        });
        if signals::interrupted() {
            code = EXIT_INTERRUPTED;
            break;
        }
    }
    if let Some(statuses) = args.statuses.take() {
        let tally = statuses.finish();
        eprintln!("tess: {} statuses delivered", tally.delivered);
        for (context, why) in tally.given_up {
            // A warning, not a failure: the run's own result stands.
            println!("::warning title=tess::status `{context}` not delivered: {why}");
        }
    }
    Ok(code)
}

fn read_secrets(args: &RunArgs) -> Result<IndexMap<String, String>, String> {
    let mut secrets = IndexMap::new();
    if let Some(file) = &args.secret_file {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format!("{}:{}: expected KEY=VALUE", file.display(), n + 1))?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            secrets.insert(k.trim().to_string(), v.to_string());
        }
    }
    secrets.extend(args.secrets.iter().cloned());
    Ok(secrets)
}

/// The triggered plans that hold the `--job`s asked for: a job is looked for in every
/// triggered file, and an id found in several is refused with the files named.
fn with_jobs<'p>(
    plans: Vec<(&'p crate::spec::Pipeline, PipelinePlan)>,
    wanted: &[String],
) -> Result<Vec<(&'p crate::spec::Pipeline, PipelinePlan)>, String> {
    let has = |plan: &PipelinePlan, w: &String| plan.jobs.iter().any(|j| *w == j.id || *w == j.key);
    for w in wanted {
        let files: Vec<&str> = plans
            .iter()
            .filter(|(_, p)| has(p, w))
            .map(|(_, p)| p.file.as_str())
            .collect();
        if files.len() > 1 {
            return Err(format!(
                "job `{w}` is in {}: name the file (`tess run FILE --job {w}`)",
                files.join(" and ")
            ));
        }
    }
    let (with, without): (Vec<_>, Vec<_>) = plans
        .into_iter()
        .partition(|(_, p)| wanted.iter().any(|w| has(p, w)));
    if with.is_empty() {
        let ids: Vec<String> = without
            .iter()
            .flat_map(|(_, p)| p.jobs.iter().map(|j| format!("{} ({})", j.id, p.file)))
            .collect();
        return Err(format!(
            "no job named {} in the triggered workflows (jobs: {})",
            wanted.join(", "),
            ids.join(", ")
        ));
    }
    Ok(with)
}

/// Keeps the named jobs (by id or key) and everything they need.
fn select_jobs(
    plan: &mut PipelinePlan,
    wanted: &[String],
    inputs: &[(String, String)],
) -> Result<(), String> {
    let mut keep: Vec<bool> = plan
        .jobs
        .iter()
        .map(|j| wanted.iter().any(|w| *w == j.id || *w == j.key))
        .collect();
    if !keep.iter().any(|k| *k) {
        let ids: Vec<&str> = plan.jobs.iter().map(|j| j.id.as_str()).collect();
        return Err(format!(
            "no job named {} (jobs: {})",
            wanted.join(", "),
            ids.join(", ")
        ));
    }
    // Walk needs backwards until nothing changes (plans are small; this stays linear enough).
    let index: IndexMap<&str, usize> = plan
        .jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.key.as_str(), i))
        .collect();
    let mut stack: Vec<usize> = (0..keep.len()).filter(|&i| keep[i]).collect();
    while let Some(i) = stack.pop() {
        for need in &plan.jobs[i].needs {
            if let Some(&n) = index.get(need.as_str())
                && !keep[n]
            {
                keep[n] = true;
                stack.push(n);
            }
        }
    }
    let mut i = 0;
    plan.jobs.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    // Naming a manual job plays it, with the job inputs given.
    for job in &mut plan.jobs {
        if wanted.iter().any(|w| *w == job.id || *w == job.key) {
            crate::plan::play(job, inputs).map_err(|why| format!("--job-input: {why}"))?;
        }
    }
    Ok(())
}

fn run_id() -> String {
    let now = chrono::Utc::now();
    format!(
        "{}-{:04x}",
        now.format("%Y%m%d-%H%M%S"),
        (now.timestamp_subsec_nanos() ^ std::process::id()) & 0xffff
    )
}

/// `--isolate`: a private copy of the tracked and modified files.
fn isolate(root: &Path, run_dir: &Path) -> Result<PathBuf, String> {
    let files = crate::git::work_tree_files(root).ok_or("--isolate needs a git repository")?;
    let dest = run_dir.join("workspace");
    for rel in files {
        let src = root.join(&rel);
        if !src.is_file() {
            continue;
        }
        let target = dest.join(&rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::copy(&src, &target).map_err(|e| format!("{}: {e}", src.display()))?;
    }
    Ok(dest)
}
