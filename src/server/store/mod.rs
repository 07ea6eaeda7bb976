//! The durable run store: SQLite (WAL) or PostgreSQL through one set of SQL statements.
//! Every state change is a compare-and-set on the row's current state and writes an
//! outbox row in the same transaction, so a reporter can publish it (at least once).

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};
use std::collections::HashMap;
use std::sync::Arc;

mod deliveries;
mod gates;
mod leases;
mod migrate;
mod read;
mod reports;
mod runners;
mod runs;
mod schedules;
mod versions;

pub use deliveries::{Delivery, PLANNING_CLAIM_MS};
pub use gates::Gate;
use leases::RunOfLease;
pub use leases::{Claimed, NextClaim};
pub use reports::DueReport;
pub use runners::{RunnerRow, labels_match};
pub use runs::{NewJob, NewRun, Supersede};
pub use schedules::SlotClaim;
pub use versions::{Applied, CurrentVersion, HistoryEntry, NewVersion};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row is not in the state the change expects (stale lease, gap in a log, …).
    #[error("{0}")]
    Conflict(String),
    /// A log chunk starts past the stored log's end (the runner resends from there).
    #[error("gap in the log: the server has {stored} bytes, the chunk starts at {offset}")]
    LogGap { stored: u64, offset: u64 },
    #[error("{0}")]
    NotFound(String),
    /// What the caller asked for does not fit (a job input of the wrong type, …).
    #[error("{0}")]
    Invalid(String),
    /// The database failed (unreachable, full, a statement refused): not the caller's fault.
    #[error("{0}")]
    Db(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Db(format!("migrating the database: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    pub backend: Backend,
    /// What a lease needs of its run (never changes once stored), for runs already seen
    /// running: a lease then reads only its job.
    leased_runs: Arc<std::sync::Mutex<HashMap<String, Arc<RunOfLease>>>>,
}

/// Job states; the last four are terminal and match [`Conclusion`]'s names.
pub const WAITING: &str = "waiting";
pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
/// A run waiting for the older run of its concurrency group.
pub const PENDING: &str = "pending";
const TERMINAL: [&str; 4] = ["success", "failure", "cancelled", "skipped"];

pub fn is_terminal(state: &str) -> bool {
    TERMINAL.contains(&state)
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub use crate::token::{random_hex, sha256_hex};

fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

impl Store {
    /// `connections`: the PostgreSQL pool's size (SQLite always has one).
    pub async fn connect(url: &str, connections: u32) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let options = AnyPoolOptions::new()
            // SQLite has one writer: one connection serializes transactions instead of
            // failing them with SQLITE_BUSY when a read turns into a write.
            .max_connections(if backend == Backend::Sqlite {
                1
            } else {
                connections.max(1)
            })
            // An unreachable database fails the start in seconds, not half a minute.
            .acquire_timeout(std::time::Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            })
            // A SQLite connection must never go back to the pool inside a transaction. When
            // a commit fails (SQLITE_FULL, an I/O error) SQLite may keep the transaction
            // open while the driver counts it as ended; every later statement then runs
            // inside it, is answered as done and is never written to the file. A
            // `ROLLBACK` that succeeds here finds such a transaction: that connection is
            // closed and a fresh one opened, so what the server reports is what is on disk.
            .after_release(move |conn, _| {
                Box::pin(async move {
                    if backend != Backend::Sqlite {
                        return Ok(true);
                    }
                    match conn.execute("ROLLBACK").await {
                        Ok(_) => {
                            tracing::warn!(
                                "a database connection was left inside a transaction; reopened"
                            );
                            Ok(false)
                        }
                        Err(_) => Ok(true),
                    }
                })
            });
        let pool = options.connect(url).await?;
        if backend == Backend::Sqlite {
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        let store = Store {
            pool,
            backend,
            leased_runs: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Whether the database takes a write now (a full disk answers reads but not this).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query(
            "INSERT INTO tess_health (id, checked_at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
        )
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// One page of a list: at most `limit` rows past `before`, the sort key and id of the
/// previous page's last row (keyset pagination: pages stay stable while rows are added).
pub struct Page {
    pub limit: i64,
    pub before: Option<(i64, String)>,
}

impl Page {
    pub const ALL: Page = Page {
        limit: i64::MAX,
        before: None,
    };
}
