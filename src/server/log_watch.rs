//! Who waits for a job's log to grow: the live streams of the API and the web UI wait on
//! their job's notifier (woken by the runner's upload on this replica) instead of reading
//! the store on a timer; a slower timer still covers uploads to other replicas.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;

#[derive(Default)]
pub struct LogWatch {
    jobs: Mutex<HashMap<(String, String), Arc<Notify>>>,
}

impl LogWatch {
    /// The notifier of a job's log, for a stream to wait on.
    pub fn watch(&self, run: &str, job: &str) -> Arc<Notify> {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        // Notifiers nobody waits on any more go (a stream holds its own reference).
        if jobs.len() > 64 {
            jobs.retain(|_, n| Arc::strong_count(n) > 1);
        }
        Arc::clone(jobs.entry((run.to_string(), job.to_string())).or_default())
    }

    /// The job's log grew (or the job ended): its streams look at once.
    pub fn grew(&self, run: &str, job: &str) {
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = jobs.get(&(run.to_string(), job.to_string())) {
            n.notify_waiters();
        }
    }
}
