//! `tess runner`: a self-hosted agent. Registers once, long-polls the server for jobs that
//! match its labels, and runs each in a fresh workspace with the shared engine.

pub mod checkout;
pub mod client;
pub mod config;
pub mod job;
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
}

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

fn credentials(opts: &Options, labels: &[String]) -> Result<Credentials, String> {
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
    let reply = Client::new(&opts.server, "")
        .register(&RegisterRequest {
            registration_token: registration.clone(),
            name,
            labels: labels.to_vec(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
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
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
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
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
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
    let mut labels = default_labels();
    for l in &opts.labels {
        if !labels.iter().any(|x| x.eq_ignore_ascii_case(l)) {
            labels.push(l.clone());
        }
    }
    let creds = credentials(&opts, &labels)?;
    let client = Client::new(&creds.server, &creds.token);
    let slots = opts.concurrency.max(1);
    let busy = Arc::new(AtomicU32::new(0));
    // Jobs are cancelled only by a second signal (Kill), not by draining.
    let job_stop = Arc::new(Cancel::default());
    let shared = job::Shared::new(opts.workdir.clone());
    println!(
        "tess runner {} polling {} with labels [{}]",
        creds.runner_id,
        creds.server,
        labels.join(", ")
    );
    std::thread::scope(|s| {
        for worker in 0..slots {
            let (client, labels, busy, stop, job_stop, opts, shared) =
                (&client, &labels, &busy, &stop, &job_stop, &opts, &shared);
            s.spawn(move || {
                let mut failures = 0;
                // `running` counts the other slots' jobs.
                let poll_request = |running: u32, wait_seconds| PollRequest {
                    labels: labels.clone(),
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
                            failures = 0;
                            busy.fetch_add(1, Ordering::SeqCst);
                            next = job::execute(client, lease, shared, job_stop, &next_poll);
                            busy.fetch_sub(1, Ordering::SeqCst);
                        }
                        Ok(None) => failures = 0,
                        Err(CallError::Refused(code, m)) => {
                            tracing::error!(worker, code, message = %m, "poll refused");
                            std::thread::sleep(client::backoff(failures.min(6)));
                            failures += 1;
                        }
                        Err(e) => {
                            tracing::warn!(worker, error = %e, "poll failed; backing off");
                            std::thread::sleep(client::backoff(failures.min(6)));
                            failures += 1;
                        }
                    }
                    if stop.level() >= CancelLevel::Kill {
                        job_stop.request(CancelLevel::Graceful);
                    }
                }
            });
        }
        // A second signal cancels running jobs (they still report as cancelled).
        s.spawn(|| {
            while busy.load(Ordering::SeqCst) > 0 || stop.level() == CancelLevel::None {
                if stop.level() >= CancelLevel::Kill {
                    job_stop.request(CancelLevel::Graceful);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
    });
    tracing::info!("drained; exiting");
    Ok(())
}
