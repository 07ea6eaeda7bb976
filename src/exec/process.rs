//! One process in its own process group; stdout and stderr drained together with poll(2)
//! (no pipe deadlock), timeouts and cancellation escalating SIGINT → SIGTERM → SIGKILL.

use super::Stream;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// How a step (or process) ended. Data, never an error.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum Outcome {
    #[default]
    Success,
    ExitCode(i32),
    Signal(i32),
    TimedOut,
    Cancelled,
    FailedToSpawn(String),
    /// Never started, and why (its `if:` was false, an earlier step failed, …).
    NotRun(String),
    /// Could not run here (an action not fetchable, of an unsupported kind) and
    /// `--skip-unavailable` made that a visible "not run" instead of a failure.
    Unavailable(String),
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        *self == Outcome::Success
    }

    pub fn describe(&self) -> String {
        match self {
            Outcome::Success => "succeeded".into(),
            Outcome::ExitCode(c) => format!("exit code {c}"),
            Outcome::Signal(s) => format!("killed by signal {s}"),
            Outcome::TimedOut => "timed out".into(),
            Outcome::Cancelled => "cancelled".into(),
            Outcome::FailedToSpawn(e) => format!("failed to start: {e}"),
            Outcome::NotRun(why) => format!("not run: {why}"),
            Outcome::Unavailable(why) => format!("not run: {why}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CancelLevel {
    None = 0,
    /// SIGINT now, SIGTERM after 2.5 s, SIGKILL after 10 s.
    Graceful = 1,
    /// SIGKILL now.
    Kill = 2,
}

/// A cancellation request shared between the engine and running steps. A child (one job)
/// is cancelled when it or its parent (the run) is.
#[derive(Debug, Default)]
pub struct Cancel {
    level: AtomicU8,
    parent: Option<Arc<Cancel>>,
}

impl Cancel {
    pub fn child_of(parent: &Arc<Cancel>) -> Cancel {
        Cancel {
            level: AtomicU8::new(0),
            parent: Some(Arc::clone(parent)),
        }
    }

    /// Raises the level (never lowers it). Async-signal-safe: one atomic operation.
    pub fn request(&self, level: CancelLevel) {
        self.level.fetch_max(level as u8, Ordering::SeqCst);
    }

    pub fn level(&self) -> CancelLevel {
        let own = self.level.load(Ordering::SeqCst);
        let parent = self.parent.as_ref().map_or(0, |p| p.level() as u8);
        match own.max(parent) {
            0 => CancelLevel::None,
            1 => CancelLevel::Graceful,
            _ => CancelLevel::Kill,
        }
    }
}

pub struct Spawn {
    pub program: String,
    pub args: Vec<String>,
    /// The complete environment (nothing is inherited).
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

const GRACE_TERM: Duration = Duration::from_millis(2500);
const GRACE_KILL: Duration = Duration::from_secs(10);
/// How often a quiet process is checked for timeout, cancellation and exit.
const TICK: Duration = Duration::from_millis(20);

/// Sends `signal` to every process in the group (ignoring a group that is already gone).
pub fn kill_group(group: i32, signal: i32) {
    if group > 0 {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is touched.
        unsafe {
            libc::kill(-group, signal);
        }
    }
}

fn set_nonblocking(fd: i32) {
    // SAFETY: fcntl on a pipe fd we own; failure leaves it blocking, which poll tolerates.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// Runs the process to completion, feeding its output to `on_output` as it arrives.
/// Returns the outcome and the process group id (when it started).
pub fn run_process(
    spawn: &Spawn,
    deadline: Option<Instant>,
    cancel: &Cancel,
    on_output: &mut dyn FnMut(Stream, &[u8]),
) -> (Outcome, Option<i32>) {
    let mut cmd = Command::new(&spawn.program);
    cmd.args(&spawn.args)
        .env_clear()
        .envs(spawn.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spawn.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // No `pre_exec`: without one the standard library starts the step with posix_spawn
    // (vfork), not fork, which copied the runner's page tables for every step — a third
    // of a one-step job's cost (benches/server.py dispatch: 425 → 620 jobs/s). The
    // step dies with the runner through the reaper, which kills its whole group.
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return (
                Outcome::FailedToSpawn(format!("{}: {e}", spawn.program)),
                None,
            );
        }
    };
    let group = child.id() as i32;
    super::reaper::track(group);
    let mut pipes: Vec<(Stream, Box<dyn Read>, i32)> = Vec::new();
    if let Some(out) = child.stdout.take() {
        let fd = out.as_raw_fd();
        pipes.push((Stream::Stdout, Box::new(out), fd));
    }
    if let Some(err) = child.stderr.take() {
        let fd = err.as_raw_fd();
        pipes.push((Stream::Stderr, Box::new(err), fd));
    }
    for (_, _, fd) in &pipes {
        set_nonblocking(*fd);
    }
    let mut escalation = Escalation::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut exit = None;
    let mut last_check = Instant::now();
    let mut idle = Duration::ZERO;
    loop {
        // Stop conditions: the main process exited and no pipe is left (or they only stay
        // open because background children hold them).
        if exit.is_some() && pipes.is_empty() {
            break;
        }
        let mut fds: Vec<libc::pollfd> = pipes
            .iter()
            .map(|(_, _, fd)| libc::pollfd {
                fd: *fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ready = if fds.is_empty() {
            // Output is done but the process has not been reaped yet: back off briefly.
            idle = (idle * 2).clamp(Duration::from_micros(50), TICK);
            std::thread::sleep(idle);
            0
        } else {
            // SAFETY: `fds` is a valid array of pollfd for the duration of the call.
            unsafe {
                libc::poll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    TICK.as_millis() as i32,
                )
            }
        };
        if ready > 0 {
            let mut closed = Vec::new();
            for (i, pfd) in fds.iter().enumerate() {
                if pfd.revents == 0 {
                    continue;
                }
                let (stream, reader, _) = &mut pipes[i];
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) => {
                            closed.push(i);
                            break;
                        }
                        Ok(n) => on_output(*stream, &buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(_) => {
                            closed.push(i);
                            break;
                        }
                    }
                }
            }
            for i in closed.into_iter().rev() {
                pipes.remove(i);
            }
        }
        let now = Instant::now();
        if ready <= 0 || pipes.is_empty() || now - last_check >= TICK {
            last_check = now;
            if exit.is_none() {
                exit = child.try_wait().ok().flatten();
                if exit.is_some() && !pipes.is_empty() {
                    // Background children keep the pipes open: take what is buffered, then stop.
                    drain_available(&mut pipes, &mut buf, on_output);
                    pipes.clear();
                }
            }
            if exit.is_none() {
                escalation.step(group, deadline, cancel, now);
            }
        }
    }
    let status = match exit {
        Some(s) => s,
        None => match child.wait() {
            Ok(s) => s,
            Err(e) => return (Outcome::FailedToSpawn(format!("wait: {e}")), Some(group)),
        },
    };
    let outcome = if escalation.timed_out {
        Outcome::TimedOut
    } else if escalation.cancelled {
        Outcome::Cancelled
    } else if let Some(code) = status.code() {
        if code == 0 {
            Outcome::Success
        } else {
            Outcome::ExitCode(code)
        }
    } else {
        Outcome::Signal(status.signal().unwrap_or(0))
    };
    (outcome, Some(group))
}

fn drain_available(
    pipes: &mut [(Stream, Box<dyn Read>, i32)],
    buf: &mut [u8],
    on_output: &mut dyn FnMut(Stream, &[u8]),
) {
    for (stream, reader, _) in pipes.iter_mut() {
        while let Ok(n) = reader.read(buf) {
            if n == 0 {
                break;
            }
            on_output(*stream, &buf[..n]);
        }
    }
}

/// Signal escalation for one process group after a timeout or a cancellation request.
#[derive(Default)]
struct Escalation {
    started: Option<Instant>,
    sent: u8,
    timed_out: bool,
    cancelled: bool,
}

impl Escalation {
    fn step(&mut self, group: i32, deadline: Option<Instant>, cancel: &Cancel, now: Instant) {
        let level = cancel.level();
        if self.started.is_none() {
            if deadline.is_some_and(|d| now >= d) {
                self.timed_out = true;
            } else if level >= CancelLevel::Graceful {
                self.cancelled = true;
            } else {
                return;
            }
            self.started = Some(now);
        }
        if level == CancelLevel::Kill {
            self.cancelled |= !self.timed_out;
            if self.sent < 3 {
                kill_group(group, libc::SIGKILL);
                self.sent = 3;
            }
            return;
        }
        let elapsed = now - self.started.unwrap_or(now);
        let (due, signal) = if elapsed >= GRACE_KILL {
            (3, libc::SIGKILL)
        } else if elapsed >= GRACE_TERM {
            (2, libc::SIGTERM)
        } else {
            (1, libc::SIGINT)
        };
        if self.sent < due {
            kill_group(group, signal);
            self.sent = due;
        }
    }
}
