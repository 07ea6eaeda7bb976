//! Which runners are polling this server right now, and how busy they are: kept in memory
//! (every poll updates it) and written to the store at most every few seconds.

use std::collections::HashMap;
use std::sync::Mutex;

/// How often a polling runner's `last_seen`, labels and load are written to the store.
pub const WRITE_EVERY_MS: i64 = 5_000;

#[derive(Debug, Clone, Default)]
struct Seen {
    written_at: i64,
    polled_at: i64,
    free_slots: u32,
    cpu: f64,
    draining: bool,
    version: String,
}

#[derive(Default)]
pub struct Presence {
    runners: Mutex<HashMap<String, Seen>>,
}

impl Presence {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Seen>) -> T) -> T {
        f(&mut self
            .runners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Records a poll; `true` when the store should be updated now (every few seconds, and
    /// at once when the runner comes back as another version: an upgrade ends a drain).
    pub fn polled(&self, runner: &str, now: i64, free_slots: u32, cpu: f64, version: &str) -> bool {
        self.with(|m| {
            let seen = m.entry(runner.to_string()).or_default();
            seen.polled_at = now;
            seen.free_slots = free_slots;
            seen.cpu = cpu;
            let upgraded = seen.version != version;
            if upgraded {
                seen.version = version.to_string();
            }
            let due = upgraded || now - seen.written_at >= WRITE_EVERY_MS;
            if due {
                seen.written_at = now;
            }
            due
        })
    }

    pub fn set_draining(&self, runner: &str, draining: bool) {
        self.with(|m| m.entry(runner.to_string()).or_default().draining = draining);
    }

    pub fn draining(&self, runner: &str) -> bool {
        self.with(|m| m.get(runner).is_some_and(|s| s.draining))
    }

    /// Another runner polled within the last 1.5 s with more free slots and a clearly
    /// lighter host.
    pub fn lighter_than(&self, runner: &str, now: i64, free_slots: u32, cpu: f64) -> bool {
        self.with(|m| {
            m.iter().any(|(id, s)| {
                id != runner
                    && s.polled_at >= now - 1500
                    && !s.draining
                    && s.free_slots > free_slots
                    && s.cpu + 0.2 < cpu
            })
        })
    }
}
