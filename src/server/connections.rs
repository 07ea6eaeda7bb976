//! The server's HTTP connections: accepted here rather than by `axum::serve`, which has no
//! timeouts, so that slow headers, slow bodies and idle keep-alive connections are closed,
//! the number of connections stays below the file descriptor limit, and `/healthz` still
//! answers when clients hold many connections open.

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Timeouts and limits of the HTTP server (`[http]` in `tess.toml`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpLimits {
    /// A request's headers must arrive within this long of its first byte (or of the
    /// connection's opening).
    #[serde(default = "default_header_timeout")]
    pub header_timeout_seconds: u64,
    /// A request's whole body must arrive within this long.
    #[serde(default = "default_body_timeout")]
    pub body_timeout_seconds: u64,
    /// A keep-alive connection with no request for this long is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_seconds: u64,
    /// Connections held at once (default: below the file descriptor limit, at most 10,000).
    pub max_connections: Option<usize>,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout_seconds: default_header_timeout(),
            body_timeout_seconds: default_body_timeout(),
            idle_timeout_seconds: default_idle_timeout(),
            max_connections: None,
        }
    }
}

fn default_header_timeout() -> u64 {
    10
}
fn default_body_timeout() -> u64 {
    30
}
fn default_idle_timeout() -> u64 {
    60
}

/// At the connection limit, connections without a request for this long are closed to
/// make room (a client sends its request within a round trip of connecting).
const SHED_IDLE: Duration = Duration::from_millis(250);

/// File descriptors kept free of connections: the database, git processes, log files.
const RESERVED_FDS: u64 = 128;

/// Raises the soft file descriptor limit to the hard one (as Go's runtime does) and
/// returns how many connections fit below it.
fn connection_capacity(configured: Option<usize>) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a struct we own.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit.rlim_cur = limit.rlim_max;
                }
            }
            limit.rlim_cur
        } else {
            1024
        }
    };
    let fit = soft.saturating_sub(RESERVED_FDS).clamp(16, 10_000) as usize;
    configured.map_or(fit, |n| n.min(fit))
}

/// What every connection shares: how many are open, and the signal to close idle ones.
struct Shared {
    open: AtomicUsize,
    /// Bumped when the server is at its limit: connections idle for [`SHED_IDLE`] close.
    shed: watch::Sender<u64>,
}

/// One connection's activity, for the idle check.
struct Activity {
    in_flight: AtomicUsize,
    /// When the last request started or ended (ms since the connection's start).
    last: AtomicI64,
    born: Instant,
}

impl Activity {
    fn touch(&self) {
        self.last
            .store(self.born.elapsed().as_millis() as i64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let since = self.born.elapsed().as_millis() as i64 - self.last.load(Ordering::Relaxed);
        match self.in_flight.load(Ordering::Relaxed) {
            0 => Duration::from_millis(since.max(0) as u64),
            _ => Duration::ZERO,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let capacity = connection_capacity(limits.max_connections);
    tracing::info!(
        max_connections = capacity,
        header_timeout_s = limits.header_timeout_seconds,
        idle_timeout_s = limits.idle_timeout_seconds,
        "accepting connections"
    );
    let shared = Arc::new(Shared {
        open: AtomicUsize::new(0),
        shed: watch::channel(0).0,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and the like: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let open = shared.open.load(Ordering::Relaxed);
        if open >= capacity {
            // Full: idle connections make room; past the reserve the new one is refused.
            shared.shed.send_modify(|n| *n += 1);
            if open >= capacity + RESERVED_FDS as usize / 2 {
                drop(stream);
                continue;
            }
        }
        let _ = stream.set_nodelay(true);
        shared.open.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(connection(
            stream,
            router.clone(),
            limits.clone(),
            Arc::clone(&shared),
            stop_rx.clone(),
        ));
    }
    // Graceful: in-flight requests finish, idle connections close.
    let _ = stop_tx.send(true);
    let deadline = Instant::now() + Duration::from_secs(10);
    while shared.open.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    router: Router,
    limits: HttpLimits,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity {
        in_flight: AtomicUsize::new(0),
        last: AtomicI64::new(0),
        born: Instant::now(),
    });
    let body_timeout = Duration::from_secs(limits.body_timeout_seconds);
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let (router, activity) = (router.clone(), Arc::clone(&activity));
            activity.in_flight.fetch_add(1, Ordering::Relaxed);
            activity.touch();
            async move {
                let req = req.map(|body| Body::new(timed(body, body_timeout)));
                let response = tower::ServiceExt::oneshot(router, req).await;
                activity.in_flight.fetch_sub(1, Ordering::Relaxed);
                activity.touch();
                response
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_timeout_seconds))
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let idle_limit = Duration::from_secs(limits.idle_timeout_seconds);
    let mut shed = shared.shed.subscribe();
    let mut check = tokio::time::interval(Duration::from_millis(500));
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended");
                }
                break;
            }
            _ = check.tick(), if !closing => {
                if activity.idle_for() >= idle_limit {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            Ok(()) = shed.changed(), if !closing => {
                if activity.idle_for() >= SHED_IDLE {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            Ok(()) = stop.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
    shared.open.fetch_sub(1, Ordering::Relaxed);
}

/// A request body that fails when it has not fully arrived within `limit`.
fn timed(
    body: Incoming,
    limit: Duration,
) -> impl hyper::body::Body<Data = axum::body::Bytes, Error = BodyTimeout> {
    TimedBody {
        inner: body,
        deadline: Box::pin(tokio::time::sleep(limit)),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BodyTimeout {
    #[error("the request body did not arrive in time")]
    Elapsed,
    #[error(transparent)]
    Read(#[from] hyper::Error),
}

struct TimedBody {
    inner: Incoming,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for TimedBody {
    type Data = axum::body::Bytes;
    type Error = BodyTimeout;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        if let Poll::Ready(frame) = std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(BodyTimeout::Read)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimeout::Elapsed))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
