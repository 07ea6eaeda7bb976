//! One leased job: check the commit out into a fresh workspace, re-plan the pipeline there
//! for the run's event, run just this job with the shared engine (the needs' results come
//! from the server), stream its log, heartbeat, and report the result.

use super::client::{CallError, Client};
use crate::engine::{self, Conclusion, RunEvent, RunOptions};
use crate::exec::{Cancel, CancelLevel};
use crate::plan::PipelinePlan;
use crate::protocol::{Complete, JobRef, Lease, LogChunk};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Log bytes not yet acknowledged by the server, from `offset`.
struct LogUpload {
    job: JobRef,
    acked: u64,
    pending: String,
    last_sent: Instant,
}

impl LogUpload {
    fn new(job: JobRef) -> LogUpload {
        LogUpload {
            job,
            acked: 0,
            pending: String::new(),
            last_sent: Instant::now(),
        }
    }

    /// Adds `text`, sending what is pending when it is due (every 250 ms, or a batch).
    fn push(&mut self, client: &Client, text: &str) {
        self.pending.push_str(text);
        if self.last_sent.elapsed() >= Duration::from_millis(250)
            || self.pending.len() > LOG_BATCH_BYTES
        {
            self.flush(client);
        }
    }

    /// Sends what is pending; on failure keeps it (a resend of the same bytes is harmless).
    fn flush(&mut self, client: &Client) {
        if self.pending.is_empty() {
            return;
        }
        self.last_sent = Instant::now();
        let chunk = LogChunk {
            job: self.job.clone(),
            offset: self.acked,
            data: self.pending.clone(),
        };
        match client.logs(&chunk) {
            Ok(ack) => {
                let taken =
                    (ack.length.saturating_sub(self.acked) as usize).min(self.pending.len());
                if self.pending.is_char_boundary(taken) {
                    self.pending.drain(..taken);
                    self.acked += taken as u64;
                }
            }
            Err(CallError::Refused(409, text)) => {
                // A gap: the server holds less than it acknowledged (it lost bytes). Go on
                // from its end at once, saying what is missing, instead of resending for ever.
                let stored = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["length"].as_u64());
                if let Some(stored) = stored.filter(|&s| s < self.acked) {
                    tracing::warn!(
                        stored,
                        acked = self.acked,
                        "the server lost log bytes; resyncing"
                    );
                    self.pending.insert_str(
                        0,
                        &format!(
                            "##[warning]{} bytes of this log were lost by the server\n",
                            self.acked - stored
                        ),
                    );
                    self.acked = stored;
                } else {
                    tracing::warn!(message = %text, "log chunk refused");
                }
            }
            Err(e) => tracing::warn!(error = %e, "log upload failed; will resend"),
        }
    }
}

/// Log text uploaded at once; a job's last bytes up to this size ride with its result.
const LOG_BATCH_BYTES: usize = 256 * 1024;

/// What a runner process keeps between jobs.
pub struct Shared {
    pub workdir: std::path::PathBuf,
    /// Where jobs' scratch directories go; this runner's own, emptied at its start (a
    /// predecessor killed mid-job leaves its scratch there).
    scratch: std::path::PathBuf,
    pub checkouts: super::checkout::Checkouts,
    pub executor: crate::engine::containers::ExecutorMode,
    pub actions: Arc<crate::engine::ActionsRuntime>,
    heartbeats: super::heartbeat::Heartbeats,
    actions_server_url: Option<String>,
    /// The server's URL as this runner reaches it.
    server_url: String,
    /// What every slot's scratch directory starts a job as (made at the first job).
    scratch_template: std::sync::OnceLock<Result<super::scratch::Template, String>>,
    /// The pipeline and plan of recent runs: every job of a run plans the same commit for
    /// the same event, so it is loaded and planned once per runner.
    plans: Mutex<VecDeque<(String, Arc<Prepared>)>>,
}

struct Prepared {
    pipeline: crate::spec::Pipeline,
    plan: PipelinePlan,
    /// What the commit's workspace says of the repository (every workspace of the commit
    /// has the same `.git`), named as the server names it.
    repo: engine::environment::RepoInfo,
}

const PLANS_KEPT: usize = 16;

impl Shared {
    pub fn new(
        workdir: std::path::PathBuf,
        executor: crate::engine::containers::ExecutorMode,
        actions: Arc<crate::engine::ActionsRuntime>,
        actions_server_url: Option<String>,
        server_url: String,
    ) -> Shared {
        // The job's small scratch files (event payload, file commands, scripts) go to
        // memory when the host has a tmpfs: creating and deleting them per job is costly
        // on ext4. One directory per work directory: runners on one host never share it.
        let memory = Path::new("/dev/shm");
        let scratch = if memory.is_dir() {
            let absolute = std::path::absolute(&workdir).unwrap_or_else(|_| workdir.clone());
            let key = crate::token::sha256_hex(absolute.to_string_lossy().as_bytes());
            memory.join(format!("tess-runner-{}", &key[..16]))
        } else {
            workdir.join("jobs")
        };
        let _ = std::fs::remove_dir_all(&scratch);
        Shared {
            checkouts: super::checkout::Checkouts::new(workdir.join("cache")),
            workdir,
            executor,
            actions,
            actions_server_url,
            server_url,
            scratch,
            heartbeats: Default::default(),
            scratch_template: std::sync::OnceLock::new(),
            plans: Mutex::new(VecDeque::new()),
        }
    }

    fn prepared(&self, lease: &Lease, workspace: &Path) -> Result<Arc<Prepared>, String> {
        let key = format!("{}@{}", lease.run_id, lease.sha);
        let mut plans = self
            .plans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, p)) = plans.iter().find(|(k, _)| *k == key) {
            return Ok(Arc::clone(p));
        }
        let file = workspace.join(&lease.pipeline_file);
        let mut loaded = crate::load::load_with(&[file], None, Some(&lease.event))?;
        if loaded.has_errors() {
            return Err(format!(
                "the pipeline does not validate:\n{}",
                loaded.render_diagnostics()
            ));
        }
        let pipeline = loaded
            .pipelines
            .pop()
            .ok_or("the pipeline file defines no pipeline")?;
        let (plan, _) = crate::plan::plan_pipeline(&pipeline, Some(&lease.event));
        let mut repo = crate::git::repo_info(workspace);
        // The workspace's remote is the runner's mirror: the name comes from the server.
        if !lease.repo.is_empty() {
            repo.repository = lease.repo.clone();
        }
        let prepared = Arc::new(Prepared {
            pipeline,
            plan,
            repo,
        });
        if plans.len() >= PLANS_KEPT {
            plans.pop_front();
        }
        plans.push_back((key, Arc::clone(&prepared)));
        Ok(prepared)
    }
}

/// Runs the leased job to its end and reports it. Returns when the server has the result
/// (or has refused it because the lease was lost), with the slot's next job when
/// `next_poll` asked for one along with the result and one was queued.
pub fn execute(
    client: &Client,
    lease: Lease,
    shared: &Shared,
    stop_everything: &Arc<Cancel>,
    slot: &mut Slot,
    next_poll: &dyn Fn() -> Option<crate::protocol::PollRequest>,
) -> Option<Lease> {
    let span = tracing::info_span!("job", run_id = %lease.run_id, job = %lease.job_key, attempt = lease.attempt);
    let _enter = span.enter();
    let job_ref = JobRef::of(&lease);
    let cancel = Arc::new(Cancel::child_of(stop_everything));
    // Dropping `beating` (when the job has ended) ends its heartbeats.
    let beating = shared.heartbeats.register(
        client,
        job_ref.clone(),
        Duration::from_secs(lease.heartbeat_seconds.max(1)),
        Arc::clone(&cancel),
    );
    let lease_lost = Arc::clone(&beating.lost);
    let mut upload = LogUpload::new(job_ref.clone());
    let outcome = run(&lease, shared, &cancel, client, slot, &mut upload);
    let outcome = outcome.unwrap_or_else(|e| {
        upload.pending.push_str(&format!("##[error]{e}\n"));
        Outcome {
            result: Conclusion::Failure,
            error: Some(e),
            ..Outcome::default()
        }
    });
    // Everything the job printed reaches the server with or before its result: a short
    // rest rides along with the result, a long one is uploaded first.
    let mut tries = 0;
    while upload.pending.len() > LOG_BATCH_BYTES && !lease_lost.load(Ordering::SeqCst) && tries < 50
    {
        upload.flush(client);
        if !upload.pending.is_empty() {
            std::thread::sleep(super::client::backoff(tries.min(5)));
        }
        tries += 1;
    }
    drop(beating);
    if lease_lost.load(Ordering::SeqCst) {
        tracing::warn!("the lease was lost; the result is not reported");
        return None;
    }
    let log = (!upload.pending.is_empty()).then(|| crate::protocol::LogTail {
        offset: upload.acked,
        data: std::mem::take(&mut upload.pending),
    });
    let result = outcome.result;
    let done = Complete {
        job: job_ref,
        result,
        allowed_failure: outcome.allowed_failure,
        outputs: outcome.outputs,
        error: outcome.error,
        log,
        annotations: outcome.annotations,
        steps: outcome.steps,
        next: next_poll(),
    };
    // Given up only when the runner must stop now (drain timeout, second signal).
    match client.complete(&done, &|| stop_everything.level() != CancelLevel::None) {
        Ok(next) => {
            tracing::info!(result = result.as_str(), "job reported");
            next
        }
        Err(CallError::Refused(code, m)) => {
            tracing::warn!(code, message = %m, "result refused");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot report the result");
            None
        }
    }
}

/// The end of a step's section in the stored log, then its result on a line of its own (seen
/// with the section folded); a failure also as GitHub's runner words it.
fn step_end_lines(step: &crate::protocol::StepRecord, section_open: bool) -> String {
    let secs = step.duration_ms as f64 / 1000.0;
    let mut text = String::from(if section_open { "##[endgroup]\n" } else { "" });
    match (step.outcome, step.conclusion) {
        (Conclusion::Success, _) => text.push_str(&format!("✓ {} ({secs:.1}s)\n", step.name)),
        (Conclusion::Skipped, _) => text.push_str(&format!("○ {}: {}\n", step.name, step.detail)),
        (outcome, conclusion) => {
            if let Some(code) = step.detail.strip_prefix("exit code ") {
                text.push_str(&format!(
                    "##[error]Process completed with exit code {code}.\n"
                ));
            }
            let allowed = if conclusion == Conclusion::Success {
                " (continue-on-error)"
            } else {
                ""
            };
            text.push_str(&format!(
                "✗ {}: {} — {}{allowed} ({secs:.1}s)\n",
                step.name,
                outcome.as_str(),
                step.detail
            ));
        }
    }
    text
}

/// How the job ended, as the server is told.
struct Outcome {
    result: Conclusion,
    allowed_failure: bool,
    outputs: indexmap::IndexMap<String, String>,
    error: Option<String>,
    annotations: Vec<crate::exec::Annotation>,
    steps: Vec<crate::protocol::StepRecord>,
}

impl Default for Outcome {
    fn default() -> Self {
        Outcome {
            result: Conclusion::Skipped,
            allowed_failure: false,
            outputs: Default::default(),
            error: None,
            annotations: Vec::new(),
            steps: Vec::new(),
        }
    }
}

fn run(
    lease: &Lease,
    shared: &Shared,
    cancel: &Arc<Cancel>,
    client: &Client,
    slot: &mut Slot,
    upload: &mut LogUpload,
) -> Result<Outcome, String> {
    let template = shared
        .scratch_template
        .get_or_init(|| {
            let dir = shared.scratch.join("template");
            super::scratch::Template::make(dir)
                .map_err(|e| format!("{}: {e}", shared.scratch.display()))
        })
        .as_ref()
        .map_err(|e| format!("job scratch directory: {e}"))?;
    let run_dir = slot.scratch.restore(template)?;
    upload.push(
        client,
        &format!(
            "checking out {} at {}\n",
            crate::git::Remote::display(&lease.clone_url),
            lease.sha
        ),
    );
    // Held until the job ends: then the workspace goes back to the pool.
    let lent = shared.checkouts.workspace(&lease.clone_url, &lease.sha)?;
    let workspace = lent.path.clone();
    let prepared = shared.prepared(lease, &workspace)?;
    let pipeline = &prepared.pipeline;
    let full = &prepared.plan;
    let job = full
        .jobs
        .iter()
        .find(|j| j.key == lease.job_key)
        .ok_or_else(|| {
            format!(
                "job `{}` is not in the plan at {}",
                lease.job_key, lease.sha
            )
        })?;
    let mut job = job.clone();
    if let Some(inputs) = &lease.played {
        let inputs: Vec<(String, String)> =
            inputs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        crate::plan::play(&mut job, &inputs)?;
    }
    let plan = PipelinePlan {
        file: full.file.clone(),
        name: full.name.clone(),
        dialect: full.dialect,
        triggered: full.triggered,
        reason: full.reason.clone(),
        jobs: vec![job],
        skipped: Vec::new(),
        skipped_includes: Vec::new(),
    };
    let mut environment = engine::environment::for_pipeline(
        pipeline,
        &lease.event,
        &prepared.repo,
        &workspace,
        &run_dir,
        &lease.run_id,
        &lease.secrets,
    )?;
    if let Some(url) = &shared.actions_server_url {
        environment.set_server_url(url);
    }
    let opts = RunOptions {
        run_id: lease.run_id.clone(),
        workspace: workspace.clone(),
        run_dir: run_dir.clone(),
        max_jobs: 1,
        secrets: lease.secrets.clone(),
        env: lease.env.clone(),
        strict: false,
        cancel: Arc::clone(cancel),
        prior: lease.needs.clone(),
        executor: shared.executor,
        actions: Arc::clone(&shared.actions),
        // The server's cache service, at the URL this runner reaches the server by.
        cache: lease
            .cache_token
            .clone()
            .map(|token| crate::cache_service::Endpoint {
                url: format!("{}/", shared.server_url.trim_end_matches('/')),
                token,
            }),
    };
    // The engine runs the job on this thread; the slot's pump takes its events meanwhile.
    let (tx, rx) = std::sync::mpsc::sync_channel(256);
    let (done_tx, done) = std::sync::mpsc::channel();
    slot.pump.send(Pumped {
        events: rx,
        job_key: lease.job_key.clone(),
        upload: std::mem::replace(upload, LogUpload::new(upload.job.clone())),
        done: done_tx,
    });
    engine::run(pipeline, &plan, &environment, &opts, tx);
    // `RUNNER_TEMP` is emptied at the end of a job too, as GitHub's runner does: what the
    // job left there (credentials an action wrote, say) does not wait for the next job.
    if let Err(e) = slot.scratch.restore(template) {
        tracing::warn!(error = %e, "cannot empty the job's scratch");
    }
    let (outcome, taken) = done
        .recv()
        .map_err(|_| "the job's log was lost (its event pump ended)".to_string())?;
    *upload = taken;
    Ok(outcome)
}

/// What one slot keeps from job to job: its event pump and its scratch directory.
pub struct Slot {
    pump: EventPump,
    scratch: super::scratch::Scratch,
}

impl Slot {
    /// Slot number `index` of this runner.
    pub fn new(client: Client, shared: &Shared, index: usize) -> Slot {
        Slot {
            pump: EventPump::new(client),
            scratch: super::scratch::Scratch::new(super::scratch::slot_dir(&shared.scratch, index)),
        }
    }
}

/// A slot's helper thread: it takes a job's events while the engine runs the job on the
/// slot's own thread, and uploads the log as it comes (a thread per job was 3% of a
/// one-step job's cost).
struct EventPump {
    client: Client,
    work: Option<std::sync::mpsc::Sender<Pumped>>,
}

/// One job's events for the pump, and where its outcome and log go when they end.
struct Pumped {
    events: std::sync::mpsc::Receiver<RunEvent>,
    job_key: String,
    upload: LogUpload,
    done: std::sync::mpsc::Sender<(Outcome, LogUpload)>,
}

impl EventPump {
    fn new(client: Client) -> EventPump {
        EventPump { client, work: None }
    }

    /// Hands a job's events to the thread (started on first use, again if it is gone).
    fn send(&mut self, mut job: Pumped) {
        loop {
            let work = self.work.get_or_insert_with(|| {
                let (tx, rx) = std::sync::mpsc::channel::<Pumped>();
                let client = self.client.clone();
                std::thread::spawn(move || {
                    for Pumped {
                        events,
                        job_key,
                        mut upload,
                        done,
                    } in rx
                    {
                        let outcome = consume(&events, &job_key, &mut |text| {
                            upload.push(&client, text);
                        });
                        let _ = done.send((outcome, upload));
                    }
                });
                tx
            });
            match work.send(job) {
                Ok(()) => return,
                Err(std::sync::mpsc::SendError(back)) => {
                    job = back;
                    self.work = None;
                }
            }
        }
    }
}

/// What the job's events say, in the order they come; `log` gets the log's text.
fn consume(
    rx: &std::sync::mpsc::Receiver<RunEvent>,
    job_key: &str,
    log: &mut dyn FnMut(&str),
) -> Outcome {
    let mut outcome = Outcome::default();
    // A skipped step has no section: it never started.
    let mut section_open = false;
    loop {
        // A quiet job still gets what it printed uploaded (the log callback flushes).
        let event = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(event) => event,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                log("");
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match event {
            RunEvent::StepStarted { name, .. } => {
                section_open = true;
                log(&format!("##[group]{name}\n"));
            }
            RunEvent::StepFinished {
                name,
                outcome: step_outcome,
                conclusion,
                detail,
                duration_ms,
                annotations,
                ..
            } => {
                outcome.annotations.extend(annotations);
                let record = crate::protocol::StepRecord {
                    name,
                    outcome: step_outcome,
                    conclusion,
                    detail: detail.describe(),
                    duration_ms,
                };
                log(&step_end_lines(&record, std::mem::take(&mut section_open)));
                if step_outcome == Conclusion::Failure && conclusion == Conclusion::Failure {
                    outcome.error.get_or_insert_with(|| {
                        format!("step `{}` failed: {}", record.name, record.detail)
                    });
                }
                outcome.steps.push(record);
            }
            RunEvent::Log { text, .. } => {
                log(&text);
                log("\n");
            }
            RunEvent::JobFinished {
                job,
                result,
                allowed_failure,
                outputs,
                ..
            } if job == job_key => {
                outcome.result = result;
                outcome.allowed_failure = allowed_failure;
                outcome.outputs = outputs;
            }
            _ => {}
        }
    }
    outcome
}
