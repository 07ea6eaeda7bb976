//! Engine: drives a `PipelinePlan` on this host. One scheduler owns all scheduling state
//! (ready queue, caps, fail-fast); each job runs on its own thread and reports back by channel.

mod actions;
mod background;
mod calls;
pub use actions::runtime::ActionsRuntime;
pub mod containers;
mod context;
pub mod environment;
mod events;
mod job;

pub use context::hash_files;
pub use environment::{Environment, RepoInfo};
pub use events::{Conclusion, JobInfo, RunEvent, now};
pub use job::file_name;

use crate::exec::{Cancel, CancelLevel, Masker};
use crate::expr::Value;
use crate::plan::{PipelinePlan, PlannedJob, interpolate};
use crate::spec::Pipeline;
use context::{RunContext, StatusView, object};
use indexmap::IndexMap;
use job::{JobOutcome, JobRun};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, SyncSender};
use std::time::{Duration, Instant};

pub struct RunOptions {
    pub run_id: String,
    pub workspace: PathBuf,
    /// `.tess/runs/<run-id>`: logs, artifacts, the event payload, temp files.
    pub run_dir: PathBuf,
    /// At most this many jobs at once.
    pub max_jobs: usize,
    pub secrets: IndexMap<String, String>,
    /// `--env K=V`: added to the workflow's `env`.
    pub env: IndexMap<String, String>,
    pub strict: bool,
    /// Cancels the whole run (Ctrl-C).
    pub cancel: Arc<Cancel>,
    /// Results of needed jobs that ran elsewhere (a runner runs one job of a server's run).
    pub prior: Vec<PriorResult>,
    /// Host or containers for jobs that ask for a container or services.
    pub executor: containers::ExecutorMode,
    /// Where `uses:` actions come from and what runs them.
    pub actions: Arc<ActionsRuntime>,
    /// The cache service given for this run (a runner's server); else the runtime's own.
    pub cache: Option<crate::cache_service::Endpoint>,
}

/// A job that finished outside this run, as its dependents see it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PriorResult {
    pub key: String,
    /// The job id (`needs.<id>` groups matrix instances by it).
    pub id: String,
    pub result: Conclusion,
    #[serde(default)]
    pub outputs: IndexMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Waiting,
    Ready,
    Running,
    Done,
}

struct Finished {
    id: String,
    result: Conclusion,
    outputs: IndexMap<String, String>,
}

/// The scheduler's state, owned by the one thread that runs [`run`]; workers only send
/// their outcome back over a channel.
struct Dag<'p> {
    jobs: &'p [PlannedJob],
    slots: Vec<Slot>,
    /// `dependents[i]`: the jobs that need job `i`.
    dependents: Vec<Vec<usize>>,
    /// How many needs of each job are not done yet.
    waiting_on: Vec<usize>,
    ready: VecDeque<usize>,
    /// Results by job key (statically skipped jobs included).
    finished: HashMap<String, Finished>,
    events: SyncSender<RunEvent>,
}

impl<'p> Dag<'p> {
    fn new(plan: &'p PipelinePlan, prior: &[PriorResult], events: SyncSender<RunEvent>) -> Dag<'p> {
        let jobs = &plan.jobs;
        let index: HashMap<&str, usize> = jobs
            .iter()
            .enumerate()
            .map(|(i, j)| (j.key.as_str(), i))
            .collect();
        let mut dependents = vec![Vec::new(); jobs.len()];
        let mut waiting_on = vec![0; jobs.len()];
        for (i, j) in jobs.iter().enumerate() {
            for need in &j.needs {
                if let Some(&d) = index.get(need.as_str()) {
                    dependents[d].push(i);
                    waiting_on[i] += 1;
                }
            }
        }
        let skipped = plan.skipped.iter().map(|s| {
            let f = Finished {
                id: s.id.clone(),
                result: Conclusion::Skipped,
                outputs: IndexMap::new(),
            };
            (s.key.clone(), f)
        });
        let elsewhere = prior.iter().map(|p| {
            let f = Finished {
                id: p.id.clone(),
                result: p.result,
                outputs: p.outputs.clone(),
            };
            (p.key.clone(), f)
        });
        let finished = skipped.chain(elsewhere).collect();
        let slots: Vec<Slot> = waiting_on
            .iter()
            .map(|&w| if w == 0 { Slot::Ready } else { Slot::Waiting })
            .collect();
        let ready = (0..jobs.len())
            .filter(|&i| slots[i] == Slot::Ready)
            .collect();
        Dag {
            jobs,
            slots,
            dependents,
            waiting_on,
            ready,
            finished,
            events,
        }
    }

    /// Records a job's end and moves dependents whose needs are all done to the ready queue.
    fn finish(&mut self, i: usize, result: Conclusion, outputs: IndexMap<String, String>) {
        if self.slots[i] == Slot::Done {
            return;
        }
        let job = &self.jobs[i];
        if self.slots[i] != Slot::Running {
            // Never started: report it as finished so every job has a result.
            self.ready.retain(|&r| r != i);
            let _ = self.events.send(RunEvent::JobFinished {
                not_run: Vec::new(),
                job: job.key.clone(),
                name: job.name.clone(),
                result,
                allowed_failure: false,
                outputs: IndexMap::new(),
                duration_ms: 0,
                ts: now(),
            });
        }
        self.slots[i] = Slot::Done;
        let f = Finished {
            id: job.id.clone(),
            result,
            outputs,
        };
        self.finished.insert(job.key.clone(), f);
        for &d in &self.dependents[i] {
            self.waiting_on[d] -= 1;
            if self.waiting_on[d] == 0 && self.slots[d] == Slot::Waiting {
                self.slots[d] = Slot::Ready;
                self.ready.push_back(d);
            }
        }
    }
}

/// The temporary directory of the plan's `index`th job (under the run's `tmp`, which is
/// `RUNNER_TEMP`): its scripts and file-command files.
pub fn job_temp_dir(run_dir: &std::path::Path, index: usize) -> PathBuf {
    run_dir.join("tmp").join(format!("job-{index}"))
}

/// Runs every job of the plan; returns the run's conclusion.
pub fn run(
    pipeline: &Pipeline,
    plan: &PipelinePlan,
    env: &Environment,
    opts: &RunOptions,
    events: SyncSender<RunEvent>,
) -> Conclusion {
    let started = Instant::now();
    let jobs = &plan.jobs;
    let _span = tracing::info_span!("run", run_id = %opts.run_id, pipeline = %plan.name).entered();
    tracing::debug!(jobs = jobs.len(), max_jobs = opts.max_jobs, "run started");
    let _ = events.send(RunEvent::RunStarted {
        run_id: opts.run_id.clone(),
        pipeline: plan.name.clone(),
        jobs: jobs
            .iter()
            .map(|j| JobInfo {
                key: j.key.clone(),
                name: j.name.clone(),
            })
            .collect(),
        ts: now(),
    });
    // Jobs skipped for this event still get a result, so the summary shows every job.
    for s in &plan.skipped {
        let _ = events.send(RunEvent::JobFinished {
            not_run: Vec::new(),
            job: s.key.clone(),
            name: s.name.clone(),
            result: Conclusion::Skipped,
            allowed_failure: false,
            outputs: IndexMap::new(),
            duration_ms: 0,
            ts: now(),
        });
    }
    let mut dag = Dag::new(plan, &opts.prior, events.clone());
    let cancels: Vec<Arc<Cancel>> = jobs
        .iter()
        .map(|_| Arc::new(Cancel::child_of(&opts.cancel)))
        .collect();
    let mut running_per_spec: HashMap<usize, usize> = HashMap::new();
    let mut running = 0;
    let mut failed = false;
    let mut retries_used = vec![0u32; jobs.len()];
    let shared = Arc::new(env.contexts.clone());
    let mut workflow_env = pipeline.env.clone();
    workflow_env.extend(opts.env.clone());
    let masker = Masker::default();
    for secret in opts.secrets.values() {
        masker.add(secret);
    }
    let (done_tx, done_rx) = mpsc::channel::<(usize, JobOutcome)>();
    loop {
        let run_cancelled = opts.cancel.level() > CancelLevel::None;
        let mut blocked = VecDeque::new();
        while let Some(i) = dag.ready.pop_front() {
            let job = &jobs[i];
            let calls = calls::Calls {
                jobs,
                finished: &dag.finished,
                shared: &shared,
            };
            let mut ctx = RunContext::new(calls.shared_for(job));
            let need_keys: Vec<String> = job
                .needs
                .iter()
                .chain(&job.needs_skipped)
                .cloned()
                .collect();
            let needs = calls.needs(&need_keys, job.call.as_ref());
            ctx.status = needs_status(&needs, run_cancelled);
            ctx.needs = needs;
            ctx.matrix = job
                .matrix
                .as_ref()
                .map_or(Value::Object(IndexMap::new()), Value::from_json);
            if job.spec.gitlab.as_ref().is_some_and(|g| g.when == "manual") {
                // GitLab's manual job: in the pipeline, started only when played (`tess run
                // --job ID`); what needs it waits, which a run that ends here shows as skipped.
                let _ = events.send(RunEvent::Log {
                    job: job.key.clone(),
                    step: None,
                    stream: crate::exec::Stream::Stdout,
                    text: format!(
                        "manual job: not started (play it with `tess run --job {}`)",
                        job.id
                    ),
                    ts: now(),
                });
                dag.finish(i, Conclusion::Skipped, IndexMap::new());
                continue;
            }
            let go = interpolate::condition(job.spec.condition.as_deref(), &ctx)
                .overall
                .unwrap_or(false);
            if !go {
                let result = if run_cancelled {
                    Conclusion::Cancelled
                } else {
                    Conclusion::Skipped
                };
                dag.finish(i, result, IndexMap::new());
                continue;
            }
            let spec_id = Arc::as_ptr(&job.spec) as usize;
            let cap = max_parallel(job, &ctx);
            if running >= opts.max_jobs
                || running_per_spec.get(&spec_id).copied().unwrap_or(0) >= cap
            {
                blocked.push_back(i);
                continue;
            }
            ctx.strategy = strategy_context(job, jobs, &ctx);
            let mut base_env = env.base_env.clone();
            base_env.insert("GITHUB_JOB".into(), job.id.clone());
            let job_masker = job_masker(&masker, job, &ctx);
            let worker = JobRun {
                key: job.key.clone(),
                name: job.name.clone(),
                spec: crate::spec::gitlab::inputs::with_job_inputs(&job.spec),
                ctx,
                workflow_env: workflow_env.clone(),
                workflow_defaults: pipeline.defaults.clone(),
                base_env,
                workspace: opts.workspace.clone(),
                run_dir: opts.run_dir.clone(),
                temp: job_temp_dir(&opts.run_dir, i),
                masker: job_masker,
                cancel: Arc::clone(&cancels[i]),
                events: events.clone(),
                strict: opts.strict,
                expand_variables: pipeline.dialect == crate::spec::Dialect::GitLab,
                executor: opts.executor,
                containers: None,
                services_context: Value::Object(IndexMap::new()),
                actions: Arc::clone(&opts.actions),
                cache: opts.cache.clone(),
            };
            let tx = done_tx.clone();
            tracing::debug!(job = %job.key, running, "job started");
            dag.slots[i] = Slot::Running;
            running += 1;
            *running_per_spec.entry(spec_id).or_insert(0) += 1;
            let span = tracing::info_span!("job", run_id = %opts.run_id, job = %job.key);
            let run_job = move || {
                let _span = span.entered();
                // A panicking job must still report, or the run would wait for it forever.
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.run()))
                        .unwrap_or_else(|_| JobOutcome {
                            result: Conclusion::Failure,
                            outputs: IndexMap::new(),
                            allowed_failure: false,
                        });
                let _ = tx.send((i, outcome));
            };
            if jobs.len() == 1 {
                // The only job (a runner's lease, `tess run --job`): nothing to schedule
                // beside it, so it runs on this thread (its cancel is the run's child).
                run_job();
            } else {
                std::thread::spawn(run_job);
            }
        }
        dag.ready = blocked;
        if running == 0 && dag.ready.is_empty() {
            break;
        }
        let Ok((i, outcome)) = done_rx.recv_timeout(Duration::from_millis(50)) else {
            continue;
        };
        running -= 1;
        let job = &jobs[i];
        tracing::debug!(job = %job.key, result = outcome.result.as_str(), "job finished");
        if let Some(n) = running_per_spec.get_mut(&(Arc::as_ptr(&job.spec) as usize)) {
            *n -= 1;
        }
        let run_cancelled = opts.cancel.level() > CancelLevel::None;
        if outcome.result == Conclusion::Failure
            && retries_used[i] < job.spec.retry
            && !run_cancelled
        {
            retries_used[i] += 1;
            let text = format!(
                "##[notice]job failed; retrying (attempt {} of {})",
                retries_used[i] + 1,
                job.spec.retry + 1
            );
            let _ = events.send(RunEvent::Log {
                job: job.key.clone(),
                step: None,
                stream: crate::exec::Stream::Stderr,
                text,
                ts: now(),
            });
            dag.slots[i] = Slot::Ready;
            dag.ready.push_front(i);
            continue;
        }
        let mut ctx = RunContext::new(Arc::clone(&shared));
        ctx.matrix = job.matrix.as_ref().map_or(Value::Null, Value::from_json);
        if outcome.result == Conclusion::Failure && !outcome.allowed_failure {
            failed = true;
            // GitLab `workflow:auto_cancel:on_job_failure: all`: the rest of the pipeline
            // is cancelled.
            if pipeline.auto_cancel.on_job_failure == "all" {
                for (j, slot) in dag.slots.clone().into_iter().enumerate() {
                    match slot {
                        _ if j == i => {}
                        Slot::Running => cancels[j].request(CancelLevel::Graceful),
                        Slot::Waiting | Slot::Ready => {
                            dag.finish(j, Conclusion::Cancelled, IndexMap::new());
                        }
                        Slot::Done => {}
                    }
                }
            }
            if job.matrix.is_some() && fail_fast(job, &ctx) {
                // fail-fast: cancel the running siblings, never start the others.
                for (j, other) in jobs.iter().enumerate() {
                    if j == i || !Arc::ptr_eq(&other.spec, &job.spec) {
                        continue;
                    }
                    match dag.slots[j] {
                        Slot::Running => cancels[j].request(CancelLevel::Graceful),
                        Slot::Waiting | Slot::Ready => {
                            dag.finish(j, Conclusion::Cancelled, IndexMap::new());
                        }
                        Slot::Done => {}
                    }
                }
            }
        }
        dag.finish(i, outcome.result, outcome.outputs);
    }
    let result = if opts.cancel.level() > CancelLevel::None {
        Conclusion::Cancelled
    } else if failed {
        Conclusion::Failure
    } else {
        Conclusion::Success
    };
    let _ = events.send(RunEvent::RunFinished {
        result,
        duration_ms: started.elapsed().as_millis() as u64,
        ts: now(),
    });
    result
}

/// The run's masker, plus the secrets a reusable-workflow call passes to this job (values
/// written in the caller's YAML are secrets inside the called workflow too).
fn job_masker(masker: &Masker, job: &PlannedJob, ctx: &RunContext) -> Masker {
    let masker = masker.fork();
    if job.call.is_some()
        && let Some(Value::Object(secrets)) = ctx.shared.get("secrets")
    {
        for value in secrets.values() {
            if let Value::String(s) = value {
                masker.add(s);
            }
        }
    }
    masker
}

/// Status functions in a job's `if`: `success()` needs every need to have succeeded.
fn needs_status(needs: &Value, cancelled: bool) -> StatusView {
    let results: Vec<String> = match needs {
        Value::Object(map) => map
            .values()
            .map(|v| v.property("result").to_display())
            .collect(),
        _ => Vec::new(),
    };
    StatusView {
        success: !cancelled && results.iter().all(|r| r == "success"),
        failure: results.iter().any(|r| r == "failure"),
        cancelled,
    }
}

fn max_parallel(job: &PlannedJob, ctx: &RunContext) -> usize {
    job.spec
        .strategy
        .max_parallel
        .as_ref()
        .and_then(|v| interpolate::json(v, ctx))
        .and_then(|v| v.as_f64())
        .filter(|n| *n >= 1.0)
        .map_or(usize::MAX, |n| n as usize)
}

fn fail_fast(job: &PlannedJob, ctx: &RunContext) -> bool {
    job.spec
        .strategy
        .fail_fast
        .as_ref()
        .and_then(|v| interpolate::json(v, ctx))
        .is_none_or(|v| Value::from_json(&v).truthy() != Some(false))
}

fn strategy_context(job: &PlannedJob, jobs: &[PlannedJob], ctx: &RunContext) -> Value {
    let siblings: Vec<&PlannedJob> = jobs
        .iter()
        .filter(|o| Arc::ptr_eq(&o.spec, &job.spec))
        .collect();
    let position = siblings.iter().position(|o| o.key == job.key).unwrap_or(0);
    object([
        ("fail-fast".to_string(), Value::Bool(fail_fast(job, ctx))),
        ("job-index".to_string(), Value::Number(position as f64)),
        (
            "job-total".to_string(),
            Value::Number(siblings.len() as f64),
        ),
        (
            "max-parallel".to_string(),
            Value::Number(max_parallel(job, ctx).min(siblings.len()) as f64),
        ),
    ])
}
