//! What one request may hold: request bodies are read with a deadline and within a budget
//! of bytes shared by every request in flight, so slow or large bodies cannot hold memory
//! or connections for long.

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of request bodies held in memory at once, over all requests (KiB permits).
const BUDGET_KIB: usize = 96 * 1024;
/// A body must arrive within this long.
pub const BODY_DEADLINE: Duration = Duration::from_secs(20);
/// What is left of a body refused as too slow is read and dropped for at most this long,
/// so the sender gets the answer instead of a reset connection.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

pub struct BodyBudget(Arc<Semaphore>);

impl Default for BodyBudget {
    fn default() -> Self {
        BodyBudget(Arc::new(Semaphore::new(BUDGET_KIB)))
    }
}

/// A body read whole; its share of the budget is given back when it is dropped.
pub struct Held {
    pub bytes: Bytes,
    _permits: Vec<OwnedSemaphorePermit>,
}

#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    TooSlow,
    Broken(String),
}

impl BodyError {
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::TooSlow => StatusCode::REQUEST_TIMEOUT,
            BodyError::Broken(_) => StatusCode::BAD_REQUEST,
        }
    }

    pub fn message(&self) -> String {
        match self {
            BodyError::TooLarge => format!("the body is over {} bytes", super::MAX_BODY),
            BodyError::TooSlow => format!(
                "the body did not arrive within {} s",
                BODY_DEADLINE.as_secs()
            ),
            BodyError::Broken(e) => format!("the body could not be read: {e}"),
        }
    }
}

async fn discard(mut body: Body, limit: usize) {
    let mut seen = 0;
    while let Some(Ok(frame)) = body.frame().await {
        seen += frame.data_ref().map_or(0, axum::body::Bytes::len);
        if seen > limit {
            return;
        }
    }
}

fn kib(bytes: usize) -> u32 {
    bytes.div_ceil(1024).max(1) as u32
}

impl BodyBudget {
    /// Reads `body` (at most `max` bytes; `declared` is its Content-Length when given),
    /// waiting for budget when other bodies hold it, all within [`BODY_DEADLINE`].
    pub async fn read(
        &self,
        body: Body,
        declared: Option<usize>,
        max: usize,
    ) -> Result<Held, BodyError> {
        if declared.is_some_and(|n| n > max) {
            // Read and dropped (nothing held), so that the sender gets the answer instead
            // of a broken pipe; bounded by the deadline.
            let _ = tokio::time::timeout(BODY_DEADLINE, discard(body, 2 * max)).await;
            return Err(BodyError::TooLarge);
        }
        let mut body = body;
        match tokio::time::timeout(BODY_DEADLINE, self.read_within(&mut body, declared, max)).await
        {
            Ok(read) => read,
            Err(_) => {
                // Nothing of it is held any more: the rest is read and dropped (bounded).
                let _ = tokio::time::timeout(DRAIN_DEADLINE, discard(body, 2 * max)).await;
                Err(BodyError::TooSlow)
            }
        }
    }

    async fn read_within(
        &self,
        body: &mut Body,
        declared: Option<usize>,
        max: usize,
    ) -> Result<Held, BodyError> {
        let mut permits = Vec::new();
        let mut reserved = 0usize;
        // A declared length is reserved at once: bodies never hold half a budget each
        // while they all wait for the rest.
        if let Some(n) = declared {
            let p = Arc::clone(&self.0)
                .acquire_many_owned(kib(n))
                .await
                .map_err(|e| BodyError::Broken(e.to_string()))?;
            permits.push(p);
            reserved = kib(n) as usize * 1024;
        }
        let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(max));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if buf.len() + data.len() > max {
                return Err(BodyError::TooLarge);
            }
            if buf.len() + data.len() > reserved {
                let more = kib(buf.len() + data.len() - reserved);
                let p = Arc::clone(&self.0)
                    .acquire_many_owned(more)
                    .await
                    .map_err(|e| BodyError::Broken(e.to_string()))?;
                permits.push(p);
                reserved += more as usize * 1024;
            }
            buf.extend_from_slice(&data);
        }
        Ok(Held {
            bytes: Bytes::from(buf),
            _permits: permits,
        })
    }
}
