//! Heartbeats for every running job of a runner, from one thread: a job registers its lease
//! when it starts and is dropped from the list when it ends (no thread per job).

use super::client::{CallError, Client};
use crate::exec::{Cancel, CancelLevel};
use crate::protocol::JobRef;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

struct Beat {
    id: u64,
    job: JobRef,
    every: Duration,
    due: Instant,
    cancel: Arc<Cancel>,
    lost: Arc<AtomicBool>,
}

#[derive(Default)]
struct State {
    beats: Vec<Beat>,
    started: bool,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    changed: Condvar,
    next_id: AtomicU64,
}

/// The runner's heartbeat list; its thread starts with the first job.
#[derive(Clone, Default)]
pub(super) struct Heartbeats {
    inner: Arc<Inner>,
}

/// A job's place in the list: dropping it stops that job's heartbeats.
pub(super) struct Registered {
    inner: Arc<Inner>,
    id: u64,
    /// Set when the server said another attempt holds the job now.
    pub(super) lost: Arc<AtomicBool>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut state = lock(&self.inner.state);
        state.beats.retain(|b| b.id != self.id);
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Heartbeats {
    /// Beats for `job` every `every` until the returned handle is dropped; a cancel asked
    /// by the server goes to `cancel`, a lost lease kills the job.
    pub(super) fn register(
        &self,
        client: &Client,
        job: JobRef,
        every: Duration,
        cancel: Arc<Cancel>,
    ) -> Registered {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let lost = Arc::new(AtomicBool::new(false));
        let mut state = lock(&self.inner.state);
        state.beats.push(Beat {
            id,
            job,
            every,
            due: Instant::now() + every,
            cancel,
            lost: Arc::clone(&lost),
        });
        if !state.started {
            state.started = true;
            let (inner, client) = (Arc::clone(&self.inner), client.clone());
            std::thread::Builder::new()
                .name("heartbeats".into())
                .spawn(move || beat_forever(&inner, &client))
                .expect("a runner thread");
        }
        self.inner.changed.notify_one();
        Registered {
            inner: Arc::clone(&self.inner),
            id,
            lost,
        }
    }
}

fn beat_forever(inner: &Inner, client: &Client) {
    let mut state = lock(&inner.state);
    loop {
        let now = Instant::now();
        let Some(next) = state.beats.iter().map(|b| b.due).min() else {
            state = inner
                .changed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            continue;
        };
        if next > now {
            state = inner
                .changed
                .wait_timeout(state, next - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
            continue;
        }
        let due: Vec<(JobRef, Arc<Cancel>, Arc<AtomicBool>)> = state
            .beats
            .iter_mut()
            .filter(|b| b.due <= now)
            .map(|b| {
                b.due = now + b.every;
                (b.job.clone(), Arc::clone(&b.cancel), Arc::clone(&b.lost))
            })
            .collect();
        // The calls are made without the list held: jobs start and end meanwhile.
        drop(state);
        for (job, cancel, lost) in &due {
            beat(client, job, cancel, lost);
        }
        state = lock(&inner.state);
    }
}

fn beat(client: &Client, job: &JobRef, cancel: &Cancel, lost: &AtomicBool) {
    match client.heartbeat(job) {
        Ok(reply) if reply.cancel => cancel.request(CancelLevel::Graceful),
        Ok(_) => {}
        Err(CallError::Refused(409, _)) => {
            // Someone else holds the job now: stop at once, report nothing.
            lost.store(true, Ordering::SeqCst);
            cancel.request(CancelLevel::Kill);
        }
        Err(e) => {
            tracing::warn!(run_id = %job.run_id, job = %job.job_key, error = %e, "heartbeat failed");
        }
    }
}
