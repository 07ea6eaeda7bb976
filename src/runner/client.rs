//! The runner's side of the protocol: blocking HTTP calls that ride out a server restart
//! (exponential backoff with jitter) and tell a refused call (409: the lease is gone) apart
//! from an unreachable server.

use crate::protocol::{
    Complete, HeartbeatResponse, JobRef, Lease, LogAck, LogChunk, PollRequest, RegisterRequest,
    RegisterResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

#[derive(Debug)]
pub enum CallError {
    /// The server refused the call for good (stale lease, bad token, …).
    Refused(u16, String),
    /// Not answered (connection refused, timeout, 5xx); worth retrying.
    Unavailable(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Refused(code, m) => write!(f, "refused ({code}): {m}"),
            CallError::Unavailable(m) => write!(f, "server unavailable: {m}"),
        }
    }
}

#[derive(Clone)]
pub struct Client {
    base: String,
    /// `Bearer <token>`, made once.
    authorization: String,
    /// A synchronous client: the call runs on the slot's own thread (reqwest's blocking
    /// client hands every call to a runtime thread and back — 5% of a one-step job).
    http: ureq::Agent,
}

/// Answers larger than this are refused (a lease with its event payload is far smaller).
const ANSWER_LIMIT: u64 = 64 * 1024 * 1024;

/// Backoff before retry `n` (0-based): 200 ms doubling to 10 s, ±50% jitter.
pub fn backoff(n: u32) -> Duration {
    let base = (200u64 << n.min(6)).min(10_000);
    let r = (crate::token::random_unit() * base as f64) as u64;
    Duration::from_millis(base / 2 + r)
}

/// Sleeps for `wait`, or less when `stopped` turns true meanwhile.
pub fn sleep_unless(wait: Duration, stopped: &dyn Fn() -> bool) {
    let deadline = std::time::Instant::now() + wait;
    while !stopped() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

impl Client {
    pub fn new(base: &str, token: &str) -> Client {
        let http = ureq::Agent::config_builder()
            // Statuses are answers here (409: the lease is gone), not transport errors.
            .http_status_as_error(false)
            // A long poll waits up to 30 s for a job: 45 s covers it and a slow answer.
            .timeout_global(Some(Duration::from_secs(45)))
            // Every slot and the heartbeats keep a connection open to the one server.
            .max_idle_connections_per_host(64)
            .build()
            .into();
        Client {
            base: base.trim_end_matches('/').to_string(),
            authorization: format!("Bearer {token}"),
            http,
        }
    }

    /// One POST; `Ok(None)` for 204.
    fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<Option<R>, CallError> {
        let url = format!("{}/api/v1/runner/{path}", self.base);
        let mut response = self
            .http
            .post(&url)
            .header("authorization", &self.authorization)
            .send_json(body)
            .map_err(|e| CallError::Unavailable(e.to_string()))?;
        let status = response.status().as_u16();
        if status == 204 {
            return Ok(None);
        }
        let text = response
            .body_mut()
            .with_config()
            .limit(ANSWER_LIMIT)
            .read_to_string()
            .map_err(|e| CallError::Unavailable(e.to_string()))?;
        match status {
            200..=299 if text.is_empty() => Ok(None),
            200..=299 => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| CallError::Unavailable(format!("bad answer from {url}: {e}"))),
            500..=599 => Err(CallError::Unavailable(format!("{status}: {text}"))),
            _ => Err(CallError::Refused(status, text)),
        }
    }

    /// Retries while the server is unavailable, until `give_up` says stop.
    fn post_retrying<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        give_up: &dyn Fn() -> bool,
    ) -> Result<Option<R>, CallError> {
        let mut attempt = 0;
        loop {
            match self.post(path, body) {
                Err(CallError::Unavailable(e)) if !give_up() => {
                    let wait = backoff(attempt.min(6));
                    tracing::warn!(call = path, error = %e, attempt, "server unreachable; retrying in {:.1} s", wait.as_secs_f64());
                    sleep_unless(wait, give_up);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Registers, retrying while the server is unreachable until `stop` is asked.
    pub fn register(
        &self,
        req: &RegisterRequest,
        stop: &crate::exec::Cancel,
    ) -> Result<RegisterResponse, CallError> {
        let stopped = || stop.level() != crate::exec::CancelLevel::None;
        self.post_retrying("register", req, &stopped)?
            .ok_or_else(|| CallError::Unavailable("empty answer to register".into()))
    }

    pub fn poll(&self, req: &PollRequest) -> Result<Option<Lease>, CallError> {
        self.post("poll", req)
    }

    pub fn heartbeat(&self, job: &JobRef) -> Result<HeartbeatResponse, CallError> {
        self.post("heartbeat", job)?
            .ok_or_else(|| CallError::Unavailable("empty answer to heartbeat".into()))
    }

    pub fn logs(&self, chunk: &LogChunk) -> Result<LogAck, CallError> {
        self.post("logs", chunk)?
            .ok_or_else(|| CallError::Unavailable("empty answer to logs".into()))
    }

    /// Completes an attempt, retrying until the server answers (completion is idempotent);
    /// returns the next job when `done.next` asked for one and one was queued.
    pub fn complete(
        &self,
        done: &Complete,
        give_up: &dyn Fn() -> bool,
    ) -> Result<Option<Lease>, CallError> {
        self.post_retrying::<_, crate::protocol::CompleteReply>("complete", done, give_up)
            .map(|reply| reply.and_then(|r| r.next))
    }
}
