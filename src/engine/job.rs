//! One job on this host: its steps in order, with step `if`s, `continue-on-error`, timeouts,
//! env and path files carried between steps, built-in and composite actions, outputs.

use super::actions::{self, ActionStep};
use super::context::{RunContext, StatusView, object, strings};
use super::events::{Conclusion, RunEvent, now};
use crate::exec::{self, Cancel, Masker, Outcome, StepEvent, StepRequest, Stream, kill_group};
use crate::expr::Value;
use crate::plan::interpolate;
use crate::spec::{Job, RunDefaults, Step};
use indexmap::IndexMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

/// Everything one job needs, prepared by the scheduler.
pub(super) struct JobRun {
    pub key: String,
    pub name: String,
    pub spec: Arc<Job>,
    pub ctx: RunContext,
    pub workflow_env: IndexMap<String, String>,
    pub workflow_defaults: RunDefaults,
    /// Base process environment (PATH, HOME, GITHUB_*, RUNNER_*, CI, …).
    pub base_env: IndexMap<String, String>,
    pub workspace: PathBuf,
    pub run_dir: PathBuf,
    pub temp: PathBuf,
    pub masker: Masker,
    pub cancel: Arc<Cancel>,
    pub events: SyncSender<RunEvent>,
    pub strict: bool,
    /// GitLab jobs: expand `$VAR` references inside variable values before the job runs.
    pub expand_variables: bool,
    pub executor: super::containers::ExecutorMode,
    /// The job's containers while it runs (`None`: steps on the host, no services).
    pub containers: Option<Arc<exec::container::JobContainers>>,
    /// `job.services`: each service's `id`, `network` and mapped `ports`.
    pub services_context: Value,
    /// Where actions come from and what runs them (shared by the run's jobs).
    pub actions: Arc<actions::runtime::ActionsRuntime>,
    /// The cache service of this run when it is given (a runner's server).
    pub cache: Option<crate::cache_service::Endpoint>,
}

pub(super) struct JobOutcome {
    pub result: Conclusion,
    pub outputs: IndexMap<String, String>,
    /// Failed, but `continue-on-error` / `allow_failure` lets the run pass.
    pub allowed_failure: bool,
}

/// Accumulated state of a running job.
pub(super) struct JobState {
    pub env: IndexMap<String, String>,
    pub path: Vec<String>,
    pub steps: IndexMap<String, Value>,
    pub failed: bool,
    pub groups: Vec<i32>,
    pub summary: String,
    pub deadline: Option<Instant>,
    pub step_index: usize,
    pub post: Vec<actions::PostStep>,
    /// Actions by `uses:`, read once per job (an error: why it cannot run).
    pub resolved: std::collections::HashMap<String, Result<Arc<actions::Resolved>, String>>,
    pub composite_depth: usize,
    /// `GITHUB_STATE` of each action step (by [`actions`]' key), for its pre/main/post.
    pub action_state: std::collections::HashMap<String, IndexMap<String, String>>,
    /// What the last process saved with `GITHUB_STATE` / `::save-state::`.
    pub last_state: IndexMap<String, String>,
    /// Steps that could not run (`--skip-unavailable`), by name.
    pub not_run: Vec<String>,
    /// `background: true` steps not waited for yet.
    pub background: super::background::Background,
    /// A step was skipped because the run or job was cancelled.
    pub cut_short: bool,
    /// The outcome of the first failed step.
    pub first_failure: Option<Outcome>,
}

const DEFAULT_JOB_TIMEOUT_MINUTES: f64 = 360.0;

impl JobRun {
    pub(super) fn run(mut self) -> JobOutcome {
        let started = Instant::now();
        self.emit(RunEvent::JobStarted {
            job: self.key.clone(),
            name: self.name.clone(),
            ts: now(),
        });
        // Workflow-level `env` may hold expressions too (`github`, `secrets`, `inputs`, `vars`).
        let mut env = self.interpolate_map(&self.workflow_env.clone());
        let job_env = self.interpolate_map(&self.spec.env.clone());
        env.extend(job_env);
        if self.expand_variables {
            // In order, so a variable sees the predefined ones and those defined before it.
            let mut known = self.base_env.clone();
            for (k, v) in &mut env {
                if !self.spec.raw_variables.contains(k) {
                    *v = crate::trigger::gitlab::expand(v, &known);
                }
                known.insert(k.clone(), v.clone());
            }
            // Variables of the needed jobs' `artifacts:reports:dotenv` win over the YAML's
            // (GitLab's precedence), and lose to pipeline variables.
            if let Value::Object(needs) = &self.ctx.needs {
                for need in needs.values() {
                    if let Some(Value::Object(vars)) = need.property_ref("outputs") {
                        for (k, v) in vars {
                            env.insert(k.clone(), v.to_display());
                        }
                    }
                }
            }
            // Pipeline variables (a schedule's, a manual run's) win over the YAML's, as in
            // GitLab; they are the run's `inputs`.
            if let Some(crate::expr::Value::Object(vars)) = self.ctx.shared.get("inputs") {
                for (k, v) in vars {
                    if let crate::expr::Value::String(s) = v {
                        env.insert(k.clone(), s.clone());
                    }
                }
            }
        }
        let timeout = self
            .minutes(self.spec.timeout_minutes.as_ref())
            .unwrap_or(DEFAULT_JOB_TIMEOUT_MINUTES);
        let mut state = JobState {
            env,
            path: Vec::new(),
            steps: IndexMap::new(),
            failed: false,
            groups: Vec::new(),
            summary: String::new(),
            deadline: Some(started + Duration::from_secs_f64(timeout * 60.0)),
            step_index: 0,
            post: Vec::new(),
            cut_short: false,
            first_failure: None,
            resolved: Default::default(),
            composite_depth: 0,
            action_state: Default::default(),
            last_state: IndexMap::new(),
            not_run: Vec::new(),
            background: Default::default(),
        };
        let steps = self.spec.steps.clone();
        if let Some(call) = &self.spec.call {
            // Resolved calls are inlined by the planner; this one was not fetched.
            let why = format!(
                "the reusable workflow `{}` was not fetched, so its jobs cannot run here \
                 (`tess run` fetches remote reusable workflows; `tess server` plans them as one job)",
                call.uses
            );
            if self.actions.skip_unavailable {
                self.log(None, Stream::Stderr, &format!("##[warning]{why}; not run"));
                state.not_run.push(why);
            } else {
                self.log(None, Stream::Stderr, &format!("##[error]{why}"));
                state.failed = true;
                state.first_failure = Some(Outcome::Unavailable(why));
            }
        }
        if let Some(message) = self.other_os() {
            if self.strict {
                self.log(
                    None,
                    Stream::Stderr,
                    &format!("##[error]{message} (--strict)"),
                );
                state.failed = true;
                state.first_failure = Some(Outcome::NotRun(message));
            } else {
                self.log(None, Stream::Stderr, &format!("##[warning]{message}"));
            }
        }
        let timed_out = match self.start_containers_unless(state.failed, &state.env) {
            None => false,
            Some(Ok(())) => {
                actions::run_pre(&mut self, &steps, &mut state);
                self.run_steps(&steps, &mut state, None)
            }
            Some(Err(message)) => {
                // The job cannot run as its pipeline says: it fails, saying why.
                self.log(None, Stream::Stderr, &format!("##[error]{message}"));
                state.failed = true;
                state.first_failure = Some(Outcome::FailedToSpawn(message));
                false
            }
        };
        // Background steps still running end before the post steps (GitHub's implicit
        // `wait-all`).
        self.wait_all_background(&mut state);
        // Post steps, the last registered first (GitHub's order), before the containers go.
        while let Some(post) = state.post.pop() {
            match post {
                actions::PostStep::CacheSave(save) if !state.failed => {
                    save.run(&self.workspace, &mut |msg| {
                        self.log(None, Stream::Stdout, msg);
                    });
                }
                actions::PostStep::CacheSave(_) => {}
                actions::PostStep::Node(post) => post.run(&mut self, &mut state),
            }
        }
        // Containers, services and the network go with the job, however it ended.
        self.containers = None;
        // No orphans: whatever the steps left running in their process groups ends with the job.
        for group in &state.groups {
            kill_group(*group, libc::SIGKILL);
            exec::reaper::untrack(*group);
        }
        if !state.summary.is_empty() {
            let _ = std::fs::write(
                self.run_dir
                    .join(format!("{}.summary.md", file_name(&self.key))),
                &state.summary,
            );
        }
        let cancelled = self.cancel.level() > exec::CancelLevel::None;
        let result = if cancelled && (state.failed || state.cut_short) {
            Conclusion::Cancelled
        } else if state.failed || timed_out {
            Conclusion::Failure
        } else {
            Conclusion::Success
        };
        self.ctx.steps = Value::Object(state.steps.clone());
        let mut outputs: IndexMap<String, String> = self
            .spec
            .outputs
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    self.masker.mask(&self.interpolate(v)).into_owned(),
                )
            })
            .collect();
        if result == Conclusion::Success {
            outputs.extend(self.dotenv_reports());
        }
        let exit_code_allowed = match (&self.spec.allow_exit_codes[..], &state.first_failure) {
            ([], _) => true,
            (codes, Some(Outcome::ExitCode(code))) => codes.contains(code),
            _ => false,
        };
        let allowed_failure = result == Conclusion::Failure
            && exit_code_allowed
            && self
                .spec
                .continue_on_error
                .as_ref()
                .and_then(|v| interpolate::json(v, &self.ctx))
                .is_some_and(|v| Value::from_json(&v).truthy() == Some(true));
        self.emit(RunEvent::JobFinished {
            job: self.key.clone(),
            name: self.name.clone(),
            result,
            not_run: state.not_run.clone(),
            allowed_failure,
            outputs: outputs.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
            ts: now(),
        });
        JobOutcome {
            result,
            outputs,
            allowed_failure,
        }
    }

    /// GitLab's `artifacts:reports:dotenv`: `KEY=VALUE` lines (blank lines and `#`
    /// comments skipped) of the job's report files, read from the workspace.
    fn dotenv_reports(&mut self) -> IndexMap<String, String> {
        let files = self
            .spec
            .gitlab
            .as_ref()
            .map(|g| g.dotenv.clone())
            .unwrap_or_default();
        let mut vars = IndexMap::new();
        for file in files {
            let path = workspace_relative(&self.workspace, &file);
            let Ok(text) = std::fs::read_to_string(&path) else {
                self.log(
                    None,
                    Stream::Stderr,
                    &format!("##[warning]dotenv report {file} was not written by the job"),
                );
                continue;
            };
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                match line.split_once('=') {
                    Some((k, v)) if !k.trim().is_empty() => {
                        vars.insert(k.trim().to_string(), v.to_string());
                    }
                    _ => self.log(
                        None,
                        Stream::Stderr,
                        &format!("##[warning]dotenv report {file}: `{line}` is not KEY=VALUE"),
                    ),
                }
            }
        }
        vars
    }

    fn start_containers_unless(
        &mut self,
        failed: bool,
        env: &IndexMap<String, String>,
    ) -> Option<Result<(), String>> {
        (!failed).then(|| self.start_containers(env))
    }

    /// A `runs-on` label for another OS than this host's (GitHub's `windows-*`, `macos-*`).
    fn other_os(&self) -> Option<String> {
        let runs_on = interpolate::json(self.spec.runs_on.as_ref()?, &self.ctx)?;
        let labels: Vec<String> = match &runs_on {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(items) => items
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            serde_json::Value::Object(map) => map
                .get("labels")
                .map(|l| match l {
                    serde_json::Value::String(s) => vec![s.clone()],
                    serde_json::Value::Array(items) => items
                        .iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect(),
                    _ => Vec::new(),
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let host = std::env::consts::OS;
        labels.iter().find_map(|label| {
            let lower = label.to_ascii_lowercase();
            let os = if lower.starts_with("windows") {
                "windows"
            } else if lower.starts_with("macos") {
                "macos"
            } else {
                return None;
            };
            (os != host).then(|| {
                format!(
                    "job `{}` asks for `runs-on: {label}` and runs on this {host} host instead",
                    self.name
                )
            })
        })
    }

    /// Runs a list of steps (the job's, or a composite action's). `scope` is the composite's
    /// `inputs`. Returns true when the job's time ran out.
    pub(super) fn run_steps(
        &mut self,
        steps: &[Step],
        state: &mut JobState,
        scope: Option<&Value>,
    ) -> bool {
        for step in steps {
            let index = state.step_index;
            state.step_index += 1;
            self.ctx.steps = Value::Object(state.steps.clone());
            self.ctx.env = strings(&state.env);
            self.ctx.status =
                StatusView::of_job(state.failed, self.cancel.level() > exec::CancelLevel::None);
            self.ctx.job = object([
                (
                    "status".to_string(),
                    Value::String(job_status(&self.ctx.status).into()),
                ),
                ("services".to_string(), self.services_context.clone()),
            ]);
            let mut ctx = self.ctx.clone();
            if let Some(inputs) = scope {
                let mut shared = (*ctx.shared).clone();
                shared.insert("inputs".into(), inputs.clone());
                ctx.shared = Arc::new(shared);
            }
            // The step's own `env` is part of the `env` context everywhere in the step.
            if !step.env.is_empty() {
                let mut env = state.env.clone();
                env.extend(evaluate_env(&step.env, &ctx));
                ctx.env = strings(&env);
            }
            let name = self.masker.mask(&step_name(step, &ctx)).into_owned();
            // `wait`, `wait-all`, `cancel` and `parallel` always run.
            if let Some(control) = &step.control {
                self.run_control(control, state, &ctx, index, name);
                continue;
            }
            let run_it = interpolate::condition(step.condition.as_deref(), &ctx)
                .overall
                .unwrap_or(false);
            if !run_it {
                state.cut_short |= ctx.status.cancelled;
                let why = match step.condition.as_deref() {
                    _ if ctx.status.cancelled => "the job was cancelled".to_string(),
                    None => "an earlier step failed".to_string(),
                    Some(condition) => format!("`if: {condition}` is false"),
                };
                self.emit(RunEvent::StepFinished {
                    job: self.key.clone(),
                    step: index,
                    name,
                    outcome: Conclusion::Skipped,
                    conclusion: Conclusion::Skipped,
                    detail: Outcome::NotRun(why),
                    annotations: Vec::new(),
                    duration_ms: 0,
                    ts: now(),
                });
                self.record_step(
                    step,
                    state,
                    Conclusion::Skipped,
                    Conclusion::Skipped,
                    IndexMap::new(),
                );
                continue;
            }
            if state.deadline.is_some_and(|d| Instant::now() >= d) {
                self.log(
                    Some(index),
                    Stream::Stderr,
                    "##[error]The job exceeded its timeout",
                );
                state.failed = true;
                return true;
            }
            if step.background && step.run.is_some() {
                self.start_background(step, state, &ctx, index, name);
                continue;
            }
            if step.background {
                self.log(
                    Some(index),
                    Stream::Stderr,
                    "##[warning]a `background: true` `uses:` step runs in the foreground here",
                );
            }
            self.emit(RunEvent::StepStarted {
                job: self.key.clone(),
                step: index,
                name: name.clone(),
                background: false,
                ts: now(),
            });
            let started = Instant::now();
            let _span = tracing::debug_span!("step", index, name = %name).entered();
            let (outcome, outputs, annotations) = match (&step.run, &step.uses) {
                (Some(script), _) => self.run_script(step, script, state, &ctx, index),
                (None, Some(uses)) => {
                    let action = ActionStep {
                        step,
                        uses,
                        ctx: &ctx,
                        index,
                    };
                    actions::run(self, action, state)
                }
                (None, None) => (
                    Outcome::FailedToSpawn("step has neither run nor uses".into()),
                    IndexMap::new(),
                    Vec::new(),
                ),
            };
            let outcome_c = conclusion_of(&outcome);
            let continue_on_error = step
                .continue_on_error
                .as_ref()
                .and_then(|v| interpolate::json(v, &ctx))
                .is_some_and(|v| Value::from_json(&v).truthy() == Some(true));
            let conclusion = if outcome_c == Conclusion::Failure && continue_on_error {
                Conclusion::Success
            } else {
                outcome_c
            };
            if conclusion != Conclusion::Success && conclusion != Conclusion::Skipped {
                state.failed = true;
                state.first_failure.get_or_insert_with(|| outcome.clone());
            }
            if let Outcome::Unavailable(why) = &outcome {
                state.not_run.push(format!("{name}: {why}"));
            }
            self.emit(RunEvent::StepFinished {
                job: self.key.clone(),
                step: index,
                name,
                outcome: outcome_c,
                conclusion,
                detail: outcome.clone(),
                annotations,
                duration_ms: started.elapsed().as_millis() as u64,
                ts: now(),
            });
            self.record_step(step, state, outcome_c, conclusion, outputs);
            if matches!(outcome, Outcome::TimedOut)
                && state.deadline.is_some_and(|d| Instant::now() >= d)
            {
                return true;
            }
        }
        false
    }

    pub(super) fn record_step(
        &self,
        step: &Step,
        state: &mut JobState,
        outcome: Conclusion,
        conclusion: Conclusion,
        outputs: IndexMap<String, String>,
    ) {
        if let Some(id) = &step.id {
            let value = object([
                (
                    "outcome".to_string(),
                    Value::String(outcome.as_str().into()),
                ),
                (
                    "conclusion".to_string(),
                    Value::String(conclusion.as_str().into()),
                ),
                ("outputs".to_string(), strings(&outputs)),
            ]);
            state.steps.insert(id.clone(), value);
        }
    }

    fn run_script(
        &mut self,
        step: &Step,
        script: &str,
        state: &mut JobState,
        ctx: &RunContext,
        index: usize,
    ) -> (Outcome, IndexMap<String, String>, Vec<exec::Annotation>) {
        let process = Process {
            script,
            argv: None,
            executor: None,
            extra_env: &IndexMap::new(),
        };
        self.run_on(step, state, ctx, index, process)
    }

    /// Runs a step's process (see [`Process`]).
    pub(super) fn run_on(
        &mut self,
        step: &Step,
        state: &mut JobState,
        ctx: &RunContext,
        index: usize,
        process: Process,
    ) -> (Outcome, IndexMap<String, String>, Vec<exec::Annotation>) {
        let executor = process.executor;
        let prepared = self.prepare(step, state, ctx, &process);
        let containers = self.containers.clone();
        let executor: &dyn exec::Executor = match (executor, &containers) {
            (Some(e), _) => e,
            (None, Some(c)) => c.as_ref(),
            (None, None) => &exec::Host,
        };
        let temp = self.temp.clone();
        let events = self.events.clone();
        let result = prepared.run(
            executor,
            &temp,
            &mut self.masker,
            &self.cancel,
            LogBatch::new(self.key.clone(), index, events),
        );
        self.apply(state, index, result)
    }

    /// Everything a step's process needs, resolved now: its script or argv, shell, env
    /// (the job's, the step's, `extra_env`, `GITHUB_PATH` additions), directory, timeout.
    pub(super) fn prepare(
        &self,
        step: &Step,
        state: &JobState,
        ctx: &RunContext,
        process: &Process,
    ) -> Prepared {
        let script = interpolate_lossy(process.script, ctx);
        let mut env = self.base_env.clone();
        env.extend(state.env.clone());
        env.extend(evaluate_env(&step.env, ctx));
        env.extend(
            process
                .extra_env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        if !state.path.is_empty() {
            let base = env.get("PATH").cloned().unwrap_or_default();
            let mut parts: Vec<String> = state.path.iter().rev().cloned().collect();
            parts.push(base);
            env.insert("PATH".into(), parts.join(":"));
        }
        let defaults = |pick: fn(&RunDefaults) -> &Option<String>| {
            pick(&self.spec.defaults)
                .clone()
                .or_else(|| pick(&self.workflow_defaults).clone())
        };
        let shell = step
            .shell
            .clone()
            .or_else(|| defaults(|d| &d.shell))
            .map(|s| interpolate_lossy(&s, ctx))
            // A GitLab runner's shell executor falls back to sh on hosts without bash.
            .map(|s| match s.as_str() {
                "bash" if self.spec.gitlab.is_some() && !self.has_program("bash") => "sh".into(),
                _ => s,
            });
        // `defaults.run` and `working-directory` are for `run:` steps; actions start in the
        // workspace.
        let cwd = match step
            .working_directory
            .clone()
            .or_else(|| defaults(|d| &d.working_directory))
        {
            Some(dir) if process.argv.is_none() => {
                self.workspace.join(interpolate_lossy(&dir, ctx))
            }
            _ => self.workspace.clone(),
        };
        let step_timeout = self
            .minutes(step.timeout_minutes.as_ref())
            .map(|m| Duration::from_secs_f64(m * 60.0));
        let remaining = state
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        let timeout = match (step_timeout, remaining) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Prepared {
            script,
            argv: process.argv.clone(),
            shell,
            env,
            cwd,
            timeout,
        }
    }

    /// What a finished process changes for the job's later steps.
    pub(super) fn apply(
        &mut self,
        state: &mut JobState,
        index: usize,
        result: exec::StepResult,
    ) -> (Outcome, IndexMap<String, String>, Vec<exec::Annotation>) {
        for w in &result.warnings {
            self.log(Some(index), Stream::Stderr, &format!("##[warning]{w}"));
        }
        if let Some(group) = result.process_group {
            state.groups.push(group);
        }
        state.env.extend(result.env);
        state.path.extend(result.path);
        state.last_state = result.state;
        state.summary.push_str(&result.summary);
        (result.outcome, result.outputs, result.annotations)
    }

    pub(super) fn emit(&self, event: RunEvent) {
        let _ = self.events.send(event);
    }

    pub(super) fn log(&self, step: Option<usize>, stream: Stream, text: &str) {
        self.emit(RunEvent::Log {
            job: self.key.clone(),
            step,
            stream,
            text: self.masker.mask(text).into_owned(),
            ts: now(),
        });
    }

    pub(super) fn interpolate(&self, text: &str) -> String {
        interpolate_lossy(text, &self.ctx)
    }

    fn interpolate_map(&self, map: &IndexMap<String, String>) -> IndexMap<String, String> {
        evaluate_env(map, &self.ctx)
    }

    fn minutes(&self, value: Option<&serde_json::Value>) -> Option<f64> {
        let v = interpolate::json(value?, &self.ctx)?;
        Value::from_json(&v)
            .to_number()
            .is_finite()
            .then(|| Value::from_json(&v).to_number())
    }
}

/// A step's process with everything resolved (owned: a background step takes it to its
/// own thread).
pub(super) struct Prepared {
    script: String,
    argv: Option<Vec<String>>,
    shell: Option<String>,
    env: IndexMap<String, String>,
    cwd: PathBuf,
    timeout: Option<Duration>,
}

impl Prepared {
    /// Runs it on `executor`, its lines sent through `batch`.
    pub(super) fn run(
        &self,
        executor: &dyn exec::Executor,
        temp: &Path,
        masker: &mut Masker,
        cancel: &Cancel,
        mut batch: LogBatch,
    ) -> exec::StepResult {
        let request = StepRequest {
            executor,
            argv: self.argv.as_deref(),
            script: &self.script,
            shell: self.shell.as_deref(),
            env: &self.env,
            cwd: &self.cwd,
            timeout: self.timeout,
            temp,
        };
        let result = exec::run_step(&request, masker, cancel, &mut |event| match event {
            StepEvent::Line(stream, line) => batch.push(stream, line),
            StepEvent::GroupStart(title) => batch.push(Stream::Stdout, &format!("▸ {title}")),
            StepEvent::GroupEnd => {}
            StepEvent::Flush => batch.flush(),
            StepEvent::Annotation(a) => {
                batch.push(Stream::Stderr, &format!("##[{}]{}", a.level, a.message));
            }
        });
        batch.flush();
        result
    }
}

/// What a step runs: `script` in the step's shell, or `argv` as it is (a JavaScript
/// action); on `executor` (default: the job's), with `extra_env` after the step's own env
/// (an action's `INPUT_*`, `runs.env`).
pub(super) struct Process<'a> {
    pub script: &'a str,
    pub argv: Option<Vec<String>>,
    pub executor: Option<&'a dyn exec::Executor>,
    pub extra_env: &'a IndexMap<String, String>,
}

type HookBody<'a> = dyn FnMut(
        &mut JobRun,
        &mut JobState,
        &RunContext,
        usize,
    ) -> (Outcome, IndexMap<String, String>, Vec<exec::Annotation>)
    + 'a;

impl JobRun {
    /// A step of an action's own (`Pre …`, `Post …`) when `condition` holds for the job's
    /// status now: shown and counted as a step; a failure fails the job, as on GitHub.
    pub(super) fn run_hook(
        &mut self,
        state: &mut JobState,
        name: String,
        condition: &str,
        body: &mut HookBody,
    ) {
        let cancelled = self.cancel.level() > exec::CancelLevel::None;
        self.ctx.steps = Value::Object(state.steps.clone());
        self.ctx.env = strings(&state.env);
        self.ctx.status = StatusView::of_job(state.failed, cancelled);
        let ctx = self.ctx.clone();
        if !interpolate::condition(Some(condition), &ctx)
            .overall
            .unwrap_or(false)
        {
            return;
        }
        let index = state.step_index;
        state.step_index += 1;
        self.emit(RunEvent::StepStarted {
            job: self.key.clone(),
            step: index,
            name: name.clone(),
            background: false,
            ts: now(),
        });
        let started = Instant::now();
        let (outcome, _, annotations) = body(self, state, &ctx, index);
        let ms = started.elapsed().as_millis() as u64;
        self.finish_own_step(state, index, name, outcome, annotations, ms);
    }

    /// The end of a step tess adds (`Pre`/`Post`, `wait`, …): its outcome is its conclusion,
    /// and a failure fails the job.
    pub(super) fn finish_own_step(
        &mut self,
        state: &mut JobState,
        index: usize,
        name: String,
        outcome: Outcome,
        annotations: Vec<exec::Annotation>,
        duration_ms: u64,
    ) {
        let conclusion = conclusion_of(&outcome);
        if conclusion == Conclusion::Failure || conclusion == Conclusion::Cancelled {
            state.failed = true;
            state.first_failure.get_or_insert_with(|| outcome.clone());
        }
        self.emit(RunEvent::StepFinished {
            job: self.key.clone(),
            step: index,
            name,
            outcome: conclusion,
            conclusion,
            detail: outcome,
            annotations,
            duration_ms,
            ts: now(),
        });
    }
}

/// An `env` mapping evaluated: keys and values may hold expressions, and a whole-mapping
/// expression (`env: ${{ fromJSON(…) }}`, kept under the empty key) gives its object's entries.
pub(super) fn evaluate_env(
    map: &IndexMap<String, String>,
    ctx: &RunContext,
) -> IndexMap<String, String> {
    let mut out = IndexMap::new();
    for (k, v) in map {
        if k.is_empty() {
            let whole = serde_json::Value::String(v.clone());
            if let Some(serde_json::Value::Object(entries)) = interpolate::json(&whole, ctx) {
                for (k, v) in entries {
                    let text = v.as_str().map_or_else(|| v.to_string(), String::from);
                    out.insert(k, text);
                }
            }
            continue;
        }
        out.insert(interpolate_lossy(k, ctx), interpolate_lossy(v, ctx));
    }
    out
}

/// Interpolates `${{ }}`; anything unknown at run time becomes an empty string, as on GitHub.
pub(super) fn interpolate_lossy(text: &str, ctx: &RunContext) -> String {
    interpolate::string(text, ctx).unwrap_or_else(|| {
        let parts = crate::expr::parse_template(text).unwrap_or_default();
        parts
            .into_iter()
            .map(|seg| match seg {
                crate::expr::Segment::Text(t) => t,
                crate::expr::Segment::Expr { expr, .. } => {
                    crate::expr::evaluate(&expr, ctx).to_display()
                }
            })
            .collect()
    })
}

fn job_status(s: &StatusView) -> &'static str {
    if s.cancelled {
        "cancelled"
    } else if s.failure {
        "failure"
    } else {
        "success"
    }
}

pub(super) fn conclusion_of(outcome: &Outcome) -> Conclusion {
    match outcome {
        Outcome::Success => Conclusion::Success,
        Outcome::Cancelled => Conclusion::Cancelled,
        Outcome::Unavailable(_) => Conclusion::Skipped,
        _ => Conclusion::Failure,
    }
}

/// A step's name as the log shows it: its `name:` interpolated, or GitHub's default.
pub(super) fn step_name(step: &Step, ctx: &RunContext) -> String {
    match &step.name {
        Some(n) => interpolate_lossy(n, ctx),
        None => step.default_name(),
    }
}

/// A safe file name for a job key (`test (a, b)` → `test__a__b_`).
pub fn file_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Collects a step's lines and sends them in batches (one event per read, not per line).
pub(super) struct LogBatch {
    job: String,
    step: usize,
    events: SyncSender<RunEvent>,
    stream: Stream,
    text: String,
}

impl LogBatch {
    pub(super) fn new(job: String, step: usize, events: SyncSender<RunEvent>) -> LogBatch {
        LogBatch {
            job,
            step,
            events,
            stream: Stream::Stdout,
            text: String::new(),
        }
    }

    fn push(&mut self, stream: Stream, line: &str) {
        if stream != self.stream || self.text.len() > 32 * 1024 {
            self.flush();
            self.stream = stream;
        }
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        self.text.push_str(line);
    }

    fn flush(&mut self) {
        if self.text.is_empty() {
            return;
        }
        let _ = self.events.send(RunEvent::Log {
            job: self.job.clone(),
            step: Some(self.step),
            stream: self.stream,
            text: std::mem::take(&mut self.text),
            ts: now(),
        });
    }
}

pub(super) fn workspace_relative(workspace: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        workspace.join(path)
    }
}
