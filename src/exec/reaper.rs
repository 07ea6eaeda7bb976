//! Step processes die with their runner: a small watcher process (`tess __reap`) is told
//! every step's process group over a pipe, and kills the groups still listed when the pipe
//! closes — which the kernel does however the runner ends, `kill -9` included.
//!
//! A parent-death signal alone would reach only each group's leader (the shell), not the
//! children it started; a cgroup needs privileges a runner may not have.

use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

static WATCHER: OnceLock<Mutex<ChildStdin>> = OnceLock::new();

/// The hidden subcommand that runs the watcher.
pub const SUBCOMMAND: &str = "__reap";

/// Starts the watcher for this process (once; later calls do nothing).
pub fn start() -> Result<(), String> {
    if WATCHER.get().is_some() {
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| format!("the tess binary: {e}"))?;
    let mut child = Command::new(exe)
        .arg(SUBCOMMAND)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        // Its own group: a Ctrl-C or a signal to the runner's group does not end it first.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the process watcher: {e}"))?;
    let stdin = child
        .stdin
        .take()
        .ok_or("the process watcher has no stdin")?;
    // Reaped by nobody: it outlives the runner by design and exits on its own.
    std::mem::forget(child);
    let _ = WATCHER.set(Mutex::new(stdin));
    Ok(())
}

fn send(line: String) {
    if let Some(w) = WATCHER.get() {
        let mut w = w.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = w.write_all(line.as_bytes());
    }
}

/// A step's process group started.
pub fn track(group: i32) {
    send(format!("+{group}\n"));
}

/// A step's process group was killed by its job (nothing left to watch).
pub fn untrack(group: i32) {
    send(format!("-{group}\n"));
}

/// The watcher: keeps the groups it is told, kills them all with SIGKILL at end of input.
pub fn watch() -> ! {
    // SAFETY: setting signal dispositions before any thread exists.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let mut groups = std::collections::HashSet::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (sign, rest) = line.split_at(line.len().min(1));
        let Ok(group) = rest.parse::<i32>() else {
            continue;
        };
        match sign {
            "+" => {
                groups.insert(group);
            }
            "-" => {
                groups.remove(&group);
            }
            _ => {}
        }
    }
    for group in groups {
        super::kill_group(group, libc::SIGKILL);
    }
    std::process::exit(0)
}
