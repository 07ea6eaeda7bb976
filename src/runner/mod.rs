//! `tess runner`: a self-hosted agent. Registers once, long-polls the server for jobs that
//! match its labels, and runs each in a fresh workspace with the shared engine.

pub mod checkout;
pub mod client;
pub mod config;
mod heartbeat;
pub mod job;
mod scratch;
mod sync;

use crate::exec::{Cancel, CancelLevel};
use crate::protocol::{Load, PollRequest, RegisterRequest};
use client::{CallError, Client};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub struct Options {
    pub server: String,
    pub token: Option<String>,
    pub registration_token: Option<String>,
    pub labels: Vec<String>,
    pub concurrency: usize,
    pub workdir: PathBuf,
    pub name: Option<String>,
    /// How long one poll waits for a job (the server caps it at 30 s).
    pub poll_seconds: u64,
    /// GitHub-hosted runner labels this runner answers to (default: [`hosted_aliases`]).
    pub hosted_labels: Vec<String>,
    /// Takes GitLab jobs without `tags` (gitlab-runner's `run_untagged`).
    pub run_untagged: bool,
    /// After SIGTERM, running jobs get this long to finish before they are cancelled.
    pub drain_timeout: Duration,
    pub executor: crate::engine::containers::ExecutorMode,
    /// Where `uses:` actions come from and what runs them (one cache for every job).
    pub actions: std::sync::Arc<crate::engine::ActionsRuntime>,
    /// The actions server when it is not github.com (`GITHUB_SERVER_URL` of jobs).
    pub actions_server_url: Option<String>,
}

/// The label a runner reports when it takes GitLab jobs without `tags`; the server gives
/// such jobs this label (never shown as a missing label).
pub const UNTAGGED: &str = "tess:untagged";
/// The label of runners that run container jobs, which the planner gives jobs with a
/// `container:`, `services:` or GitLab `image:`.
pub const CONTAINER: &str = "tess:container";

/// What registration returned, kept for restarts (mode 0600: it holds the token).
#[derive(Serialize, Deserialize)]
struct Credentials {
    server: String,
    runner_id: String,
    token: String,
}

/// The labels every runner has: `self-hosted`, the OS and the architecture (GitHub's names).
pub fn default_labels() -> Vec<String> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    };
    vec![
        "self-hosted".into(),
        std::env::consts::OS.into(),
        arch.into(),
    ]
}

/// The GitHub-hosted runner labels a runner on this OS serves by default, so that a
/// workflow written for hosted runners (`runs-on: ubuntu-latest`) runs on a fresh runner.
pub fn hosted_aliases() -> Vec<String> {
    let names: &[&str] = match std::env::consts::OS {
        "linux" => &["ubuntu-latest", "ubuntu-24.04", "ubuntu-22.04"],
        "macos" => &["macos-latest", "macos-15", "macos-14"],
        "windows" => &["windows-latest", "windows-2025", "windows-2022"],
        _ => &[],
    };
    names.iter().map(std::string::ToString::to_string).collect()
}

/// Every label the runner reports: the implied ones, the hosted aliases, the extra ones.
pub fn all_labels(opts: &Options) -> Vec<String> {
    let mut labels = default_labels();
    let untagged = opts.run_untagged.then(|| UNTAGGED.to_string());
    // Container jobs only come to a runner whose Docker API answers (checked once, here).
    use crate::engine::containers::ExecutorMode;
    let containers = match opts.executor {
        ExecutorMode::Host => None,
        ExecutorMode::Auto | ExecutorMode::Container => match crate::exec::container::connect() {
            Ok(_) => Some(CONTAINER.to_string()),
            Err(e) => {
                tracing::warn!(error = %e, "no Docker API: container jobs go to other runners");
                None
            }
        },
    };
    for l in opts
        .hosted_labels
        .iter()
        .chain(&opts.labels)
        .chain(&untagged)
        .chain(&containers)
        .map(|l| l.trim())
        // `--labels ""` (or `a,,b`) names no label.
        .filter(|l| !l.is_empty())
    {
        if !labels.iter().any(|x| x.eq_ignore_ascii_case(l)) {
            labels.push(l.to_string());
        }
    }
    labels
}

fn credentials(opts: &Options, labels: &[String], stop: &Cancel) -> Result<Credentials, String> {
    let file = opts.workdir.join("runner.json");
    if let Some(token) = &opts.token {
        return Ok(Credentials {
            server: opts.server.clone(),
            runner_id: String::new(),
            token: token.clone(),
        });
    }
    if let Ok(text) = std::fs::read_to_string(&file)
        && let Ok(saved) = serde_json::from_str::<Credentials>(&text)
        && saved.server == opts.server
    {
        return Ok(saved);
    }
    let registration = opts
        .registration_token
        .as_ref()
        .ok_or("no runner token: pass --token, or --registration-token to register")?;
    let name = opts.name.clone().unwrap_or_else(hostname);
    tracing::info!(server = %opts.server, %name, "registering");
    let reply = Client::new(&opts.server, "")
        .register(
            &RegisterRequest {
                registration_token: registration.clone(),
                name,
                labels: labels.to_vec(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            stop,
        )
        .map_err(|e| format!("registration failed: {e}"))?;
    let saved = Credentials {
        server: opts.server.clone(),
        runner_id: reply.runner_id,
        token: reply.token,
    };
    std::fs::create_dir_all(&opts.workdir)
        .map_err(|e| format!("{}: {e}", opts.workdir.display()))?;
    write_private(
        &file,
        &serde_json::to_string_pretty(&saved).unwrap_or_default(),
    )?;
    tracing::info!(runner = %saved.runner_id, "registered");
    Ok(saved)
}

fn write_private(path: &std::path::Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "runner".into())
}

/// One-minute load per CPU and used memory, from /proc.
/// The host's CPU and memory load, read from /proc at most once a second (every poll asks).
fn host_load(running: u32) -> Load {
    static LAST: std::sync::Mutex<Option<(std::time::Instant, f64, f64)>> =
        std::sync::Mutex::new(None);
    let mut last = LAST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (cpu, memory) = match *last {
        Some((at, cpu, memory)) if at.elapsed() < Duration::from_secs(1) => (cpu, memory),
        _ => {
            let (cpu, memory) = read_host_load();
            *last = Some((std::time::Instant::now(), cpu, memory));
            (cpu, memory)
        }
    };
    Load {
        cpu,
        memory,
        running_jobs: running,
    }
}

/// Load average per CPU and the fraction of memory in use.
fn read_host_load() -> (f64, f64) {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get) as f64;
    let load1 = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        meminfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
    };
    let memory = match (field("MemTotal:"), field("MemAvailable:")) {
        (Some(total), Some(available)) if total > 0.0 => 1.0 - available / total,
        _ => 0.0,
    };
    (load1 / cpus, memory)
}

pub fn run(mut opts: Options, stop: Arc<Cancel>) -> Result<(), String> {
    // Absolute, because git's alternates written into workspaces point into it.
    std::fs::create_dir_all(&opts.workdir)
        .and_then(|()| opts.workdir.canonicalize())
        .map(|dir| opts.workdir = dir)
        .map_err(|e| format!("{}: {e}", opts.workdir.display()))?;
    // Step processes die with this runner, however it ends.
    crate::exec::reaper::start()?;
    let labels = all_labels(&opts);
    let creds = match credentials(&opts, &labels, &stop) {
        Err(_) if stop.level() != CancelLevel::None => {
            tracing::info!("stopped before registering");
            return Ok(());
        }
        other => other?,
    };
    let client = Client::new(&creds.server, &creds.token);
    let slots = opts.concurrency.max(1);
    let busy = Arc::new(AtomicU32::new(0));
    let workers_left = Arc::new(AtomicU32::new(slots as u32));
    // Jobs are cancelled only by a second signal or the drain timeout, not by draining.
    let job_stop = Arc::new(Cancel::default());
    let shared = Arc::new(job::Shared::new(
        opts.workdir.clone(),
        opts.executor,
        Arc::clone(&opts.actions),
        opts.actions_server_url.clone(),
        opts.server.clone(),
    ));
    let shown: Vec<&String> = labels.iter().filter(|l| *l != UNTAGGED).collect();
    let shown: Vec<&str> = shown.iter().map(|s| s.as_str()).collect();
    println!(
        "tess runner {} polling {} with labels [{}]{}",
        creds.runner_id,
        creds.server,
        shown.join(", "),
        if opts.run_untagged {
            " (and GitLab jobs without tags)"
        } else {
            ""
        }
    );
    tracing::info!(runner = %creds.runner_id, server = %creds.server, slots, "polling for jobs");
    let opts = Arc::new(opts);
    for worker in 0..slots {
        let (client, labels, busy, stop, job_stop, opts, shared, left) = (
            client.clone(),
            labels.clone(),
            Arc::clone(&busy),
            Arc::clone(&stop),
            Arc::clone(&job_stop),
            Arc::clone(&opts),
            Arc::clone(&shared),
            Arc::clone(&workers_left),
        );
        std::thread::spawn(move || {
            poll_loop(
                worker, slots, &client, &labels, &busy, &stop, &job_stop, &opts, &shared,
            );
            left.fetch_sub(1, Ordering::SeqCst);
        });
    }
    // Waits for the workers; once a stop is asked, an idle runner exits at once (a poll in
    // flight is abandoned: a lease it might bring expires and is retried), a busy one when
    // its jobs end, or cancels them after the drain timeout (or at a second signal).
    let mut stop_seen: Option<std::time::Instant> = None;
    while workers_left.load(Ordering::SeqCst) > 0 {
        if stop.level() != CancelLevel::None {
            let since = *stop_seen.get_or_insert_with(|| {
                tracing::info!(
                    running = busy.load(Ordering::SeqCst),
                    "stopping: no new jobs; running jobs finish"
                );
                std::time::Instant::now()
            });
            if busy.load(Ordering::SeqCst) == 0 {
                break;
            }
            if stop.level() >= CancelLevel::Kill || since.elapsed() >= opts.drain_timeout {
                if job_stop.level() == CancelLevel::None {
                    tracing::warn!("cancelling the running jobs");
                }
                job_stop.request(CancelLevel::Graceful);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::info!("stopped");
    Ok(())
}

/// One slot: poll, run, report, until the runner stops.
#[allow(clippy::too_many_arguments)]
fn poll_loop(
    worker: usize,
    slots: usize,
    client: &Client,
    labels: &[String],
    busy: &AtomicU32,
    stop: &Cancel,
    job_stop: &Arc<Cancel>,
    opts: &Options,
    shared: &job::Shared,
) {
    let mut failures = 0;
    // `running` counts the other slots' jobs.
    let poll_request = |running: u32, wait_seconds| PollRequest {
        labels: labels.to_vec(),
        free_slots: slots as u32 - running,
        load: host_load(running),
        version: env!("CARGO_PKG_VERSION").into(),
        wait_seconds,
    };
    // The next job comes with the last one's result when one is queued.
    let next_poll = || {
        (stop.level() == CancelLevel::None)
            .then(|| poll_request(busy.load(Ordering::SeqCst).saturating_sub(1), None))
    };
    let mut next = None;
    let mut slot = job::Slot::new(client.clone(), shared, worker);
    while stop.level() == CancelLevel::None {
        let polled = match next.take() {
            Some(lease) => Ok(Some(lease)),
            None => client.poll(&poll_request(
                busy.load(Ordering::SeqCst),
                Some(opts.poll_seconds),
            )),
        };
        match polled {
            Ok(Some(lease)) => {
                if failures > 0 {
                    tracing::info!(worker, "server reachable again");
                }
                failures = 0;
                busy.fetch_add(1, Ordering::SeqCst);
                next = job::execute(client, lease, shared, job_stop, &mut slot, &next_poll);
                busy.fetch_sub(1, Ordering::SeqCst);
            }
            Ok(None) => {
                if failures > 0 {
                    tracing::info!(worker, "server reachable again");
                }
                failures = 0;
            }
            Err(e) => {
                let wait = client::backoff(failures.min(6));
                match &e {
                    CallError::Refused(code, m) => {
                        tracing::error!(worker, code, message = %m, "poll refused; retrying in {:.1} s", wait.as_secs_f64());
                    }
                    CallError::Unavailable(m) => {
                        tracing::warn!(worker, error = %m, "server unreachable; retrying in {:.1} s", wait.as_secs_f64());
                    }
                }
                client::sleep_unless(wait, &|| stop.level() != CancelLevel::None);
                failures += 1;
            }
        }
    }
}
