//! The durable run store: SQLite (WAL) or PostgreSQL through one set of SQL statements.
//! Every state change is a compare-and-set on the row's current state and writes an
//! outbox row in the same transaction, so a reporter can publish it (at least once).

use crate::engine::{Conclusion, PriorResult};
use sqlx::AnyConnection;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};
use std::collections::HashMap;
use std::sync::Arc;

mod schedules;
mod versions;

pub use schedules::SlotClaim;
pub use versions::{Applied, CurrentVersion, HistoryEntry, NewVersion};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug)]
pub enum StoreError {
    /// The row is not in the state the change expects (stale lease, gap in a log, …).
    Conflict(String),
    /// A log chunk starts past the stored log's end (the runner resends from there).
    LogGap {
        stored: u64,
        offset: u64,
    },
    NotFound(String),
    Db(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Conflict(m) | StoreError::NotFound(m) | StoreError::Db(m) => f.write_str(m),
            StoreError::LogGap { stored, offset } => write!(
                f,
                "gap in the log: the server has {stored} bytes, the chunk starts at {offset}"
            ),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Db(e.to_string())
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

/// The run's part of a lease.
struct RunOfLease {
    repo: String,
    forge: String,
    file: String,
    sha: String,
    event_json: String,
}

const LEASED_RUNS_KEPT: usize = 256;

/// Takes the first queued job (in queue order) all of whose labels are among the runner's
/// ($5, a JSON list in lower case), returning the lease's job columns. PostgreSQL's is a
/// function (see the migrations).
const CLAIM_SQLITE: &str = "UPDATE jobs SET state = 'running', attempt = attempt + 1, \
     runner_id = $1, lease_token = $2, lease_expires = $3, started_at = $4, log_length = 0 \
     WHERE rowid = (SELECT q.rowid FROM jobs q \
     WHERE q.state = 'queued' AND NOT EXISTS (SELECT 1 FROM json_each(q.labels) l \
     WHERE lower(l.value) NOT IN (SELECT r.value FROM json_each($5) r)) \
     ORDER BY q.queued_at, q.position LIMIT 1) AND state = 'queued' \
     RETURNING run_id, job_key, name, attempt, spec, needs, queued_at";
const CLAIM_POSTGRES: &str = "SELECT * FROM tess_claim($1, $2, $3, $4, $5)";

/// Stores a result with the log's tail ($10 offset, $11 text, $12 end; all NULL when there
/// is none) when the tail starts where the stored log ends; returns the job's times and
/// whether the run has waiting jobs or other open ones (as before this statement).
const COMPLETE_POSTGRES: &str = "WITH appended AS (INSERT INTO logs \
     (run_id, job_key, attempt, start_at, data) SELECT $6, $7, $8, $10, $11 \
     WHERE $11::text IS NOT NULL AND EXISTS (SELECT 1 FROM jobs WHERE run_id = $6 \
     AND job_key = $7 AND attempt = $8 AND lease_token = $9 AND state = 'running' \
     AND log_length = $10) RETURNING 1), \
     done AS (UPDATE jobs SET state = $1, allowed_failure = $2, outputs = $3, error = $4, \
     finished_at = $5, log_length = COALESCE($12, log_length), annotations = $13, steps = $14 \
     WHERE run_id = $6 AND job_key = $7 AND attempt = $8 AND lease_token = $9 \
     AND state = 'running' AND ($11::text IS NULL OR EXISTS (SELECT 1 FROM appended)) \
     RETURNING started_at, finished_at) \
     SELECT started_at, finished_at, \
     EXISTS (SELECT 1 FROM jobs WHERE run_id = $6 AND state = 'waiting'), \
     EXISTS (SELECT 1 FROM jobs WHERE run_id = $6 AND state IN ('queued', 'running') \
     AND job_key <> $7) FROM done";

/// A planning claim not renewed for this long was left by a planner that died.
pub const PLANNING_CLAIM_MS: i64 = 10_000;

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

/// A schema change: the same SQL for both databases (`;`-separated), or each its own
/// statements.
enum Migration {
    Shared(&'static str),
    PerBackend {
        sqlite: &'static [&'static str],
        postgres: &'static [&'static str],
    },
}

const MIGRATIONS: &[Migration] = &[
    Migration::Shared(
        r#"
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    forge TEXT NOT NULL,
    event TEXT NOT NULL,
    repo TEXT,
    received_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    runs TEXT,
    payload TEXT NOT NULL,
    claimed_at BIGINT
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    repo TEXT NOT NULL,
    forge TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    file TEXT NOT NULL,
    event TEXT NOT NULL,
    git_ref TEXT NOT NULL,
    sha TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    event_json TEXT NOT NULL,
    delivery_id TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    concurrency_group TEXT
);
CREATE INDEX IF NOT EXISTS runs_group ON runs (concurrency_group, status);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at);
CREATE TABLE IF NOT EXISTS jobs (
    run_id TEXT NOT NULL,
    job_key TEXT NOT NULL,
    job_id TEXT NOT NULL,
    name TEXT NOT NULL,
    position BIGINT NOT NULL,
    needs TEXT NOT NULL,
    labels TEXT NOT NULL,
    has_condition BIGINT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    attempt BIGINT NOT NULL DEFAULT 0,
    runner_id TEXT,
    lease_token TEXT,
    lease_expires BIGINT,
    log_length BIGINT NOT NULL DEFAULT 0,
    allowed_failure BIGINT NOT NULL DEFAULT 0,
    interruptible BIGINT NOT NULL DEFAULT 0,
    outputs TEXT,
    error TEXT,
    queued_at BIGINT,
    started_at BIGINT,
    finished_at BIGINT,
    PRIMARY KEY (run_id, job_key)
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, queued_at, position);
CREATE INDEX IF NOT EXISTS jobs_run_state ON jobs (run_id, state);
CREATE TABLE IF NOT EXISTS logs (
    run_id TEXT NOT NULL,
    job_key TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    start_at BIGINT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, job_key, attempt, start_at)
);
CREATE TABLE IF NOT EXISTS runners (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    labels TEXT NOT NULL,
    version TEXT NOT NULL,
    registered_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    free_slots BIGINT NOT NULL DEFAULT 0,
    load TEXT,
    draining BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS outbox (
    id {SERIAL},
    run_id TEXT NOT NULL,
    job_key TEXT,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
"#,
    ),
    // The queue on its own: claims walk it in order without sorting or skipping the
    // table's finished jobs, whatever the planner's statistics say.
    Migration::Shared(
        "CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (queued_at, position) WHERE state = 'queued'",
    ),
    // Every state a job or run is given is in the outbox, written by the statement that
    // gives it: no code path can forget it, and a claim is a single statement.
    Migration::PerBackend {
        sqlite: &[
            "CREATE TRIGGER outbox_job_inserted AFTER INSERT ON jobs BEGIN \
             INSERT INTO outbox (run_id, job_key, state, created_at) \
             VALUES (NEW.run_id, NEW.job_key, NEW.state, CAST(unixepoch('subsec') * 1000 AS INTEGER)); END",
            "CREATE TRIGGER outbox_job_changed AFTER UPDATE OF state ON jobs \
             WHEN NEW.state IS NOT OLD.state BEGIN \
             INSERT INTO outbox (run_id, job_key, state, created_at) \
             VALUES (NEW.run_id, NEW.job_key, NEW.state, CAST(unixepoch('subsec') * 1000 AS INTEGER)); END",
            "CREATE TRIGGER outbox_run_inserted AFTER INSERT ON runs BEGIN \
             INSERT INTO outbox (run_id, job_key, state, created_at) \
             VALUES (NEW.id, NULL, NEW.status, CAST(unixepoch('subsec') * 1000 AS INTEGER)); END",
            "CREATE TRIGGER outbox_run_changed AFTER UPDATE OF status ON runs \
             WHEN NEW.status IS NOT OLD.status BEGIN \
             INSERT INTO outbox (run_id, job_key, state, created_at) \
             VALUES (NEW.id, NULL, NEW.status, CAST(unixepoch('subsec') * 1000 AS INTEGER)); END",
        ],
        postgres: &[
            "CREATE FUNCTION tess_outbox_job() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state THEN \
             INSERT INTO outbox (run_id, job_key, state, created_at) VALUES (NEW.run_id, \
             NEW.job_key, NEW.state, (extract(epoch FROM clock_timestamp()) * 1000)::bigint); \
             END IF; RETURN NULL; END $$",
            "CREATE TRIGGER outbox_job AFTER INSERT OR UPDATE OF state ON jobs \
             FOR EACH ROW EXECUTE FUNCTION tess_outbox_job()",
            "CREATE FUNCTION tess_outbox_run() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN \
             INSERT INTO outbox (run_id, job_key, state, created_at) VALUES (NEW.id, NULL, \
             NEW.status, (extract(epoch FROM clock_timestamp()) * 1000)::bigint); \
             END IF; RETURN NULL; END $$",
            "CREATE TRIGGER outbox_run AFTER INSERT OR UPDATE OF status ON runs \
             FOR EACH ROW EXECUTE FUNCTION tess_outbox_run()",
        ],
    },
    // PostgreSQL's claim. Its settings keep the plan on the queue index: right after a big
    // run is queued the statistics still say the queue is tiny, and a plan that sorts the
    // whole queue for every claim would be chosen.
    Migration::PerBackend {
        sqlite: &[],
        postgres: &[
            "CREATE FUNCTION tess_claim(p_runner TEXT, p_token TEXT, p_expires BIGINT, \
             p_now BIGINT, p_labels TEXT) RETURNS TABLE (run_id TEXT, job_key TEXT, name TEXT, \
             attempt BIGINT, spec TEXT, needs TEXT, queued_at BIGINT) LANGUAGE sql \
             SET enable_sort = off SET enable_bitmapscan = off SET enable_seqscan = off AS $$ \
             WITH picked AS (SELECT q.run_id, q.job_key FROM jobs q WHERE q.state = 'queued' \
             AND lower(q.labels)::jsonb <@ p_labels::jsonb ORDER BY q.queued_at, q.position \
             LIMIT 1 FOR UPDATE SKIP LOCKED) \
             UPDATE jobs j SET state = 'running', attempt = j.attempt + 1, runner_id = p_runner, \
             lease_token = p_token, lease_expires = p_expires, started_at = p_now, log_length = 0 \
             FROM picked WHERE j.run_id = picked.run_id AND j.job_key = picked.job_key \
             AND j.state = 'queued' \
             RETURNING j.run_id, j.job_key, j.name, j.attempt, j.spec, j.needs, j.queued_at $$",
        ],
    },
    // Delivering the outbox to the forges: `result` is delivered, superseded (a newer
    // state of the same status was sent instead), unreported (no forge reporting for the
    // repository), refused or failed (given up); the others are still to be sent.
    Migration::Shared(
        "ALTER TABLE outbox ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
         ALTER TABLE outbox ADD COLUMN next_attempt_at BIGINT;
         ALTER TABLE outbox ADD COLUMN claimed_until BIGINT;
         ALTER TABLE outbox ADD COLUMN result TEXT;
         ALTER TABLE outbox ADD COLUMN last_error TEXT;
         CREATE INDEX IF NOT EXISTS outbox_undelivered ON outbox (id) WHERE delivered_at IS NULL;
         CREATE INDEX IF NOT EXISTS outbox_status ON outbox (run_id, job_key, id)",
    ),
    // Annotations for check runs, and the check run made for each run and job (`''` for
    // the run) so later states update it.
    Migration::Shared(
        "ALTER TABLE jobs ADD COLUMN annotations TEXT;
         CREATE TABLE IF NOT EXISTS check_runs (
             run_id TEXT NOT NULL,
             job_key TEXT NOT NULL,
             check_run_id BIGINT NOT NULL,
             PRIMARY KEY (run_id, job_key)
         )",
    ),
    // Pipeline versions per scope (`server`, `<forge>:<repo>`): their definitions, the
    // history of what was applied or rejected, and the current one (compare-and-set on
    // `generation`); `detected` is the newest version the source showed, so a rollback
    // (`pinned`) lasts until the source changes again.
    Migration::Shared(
        "CREATE TABLE IF NOT EXISTS versions (
             scope TEXT NOT NULL,
             version_id TEXT NOT NULL,
             definitions TEXT NOT NULL,
             created_at BIGINT NOT NULL,
             PRIMARY KEY (scope, version_id)
         );
         CREATE TABLE IF NOT EXISTS version_history (
             id {SERIAL},
             scope TEXT NOT NULL,
             version_id TEXT NOT NULL,
             status TEXT NOT NULL,
             source TEXT NOT NULL,
             commit_sha TEXT,
             previous TEXT,
             at BIGINT NOT NULL,
             change_log TEXT NOT NULL,
             error TEXT
         );
         CREATE INDEX IF NOT EXISTS version_history_scope ON version_history (scope, id);
         CREATE TABLE IF NOT EXISTS current_versions (
             scope TEXT PRIMARY KEY,
             version_id TEXT NOT NULL,
             detected TEXT NOT NULL,
             pinned BIGINT NOT NULL DEFAULT 0,
             applied_at BIGINT NOT NULL,
             generation BIGINT NOT NULL
         );
         CREATE TABLE IF NOT EXISTS schedule_slots (
             scope TEXT NOT NULL,
             schedule TEXT NOT NULL,
             slot BIGINT NOT NULL,
             status TEXT NOT NULL,
             runs TEXT,
             at BIGINT NOT NULL,
             PRIMARY KEY (scope, schedule, slot)
         )",
    ),
    // How each step of a job ended (exit code, signal, timeout, not run and why).
    Migration::Shared("ALTER TABLE jobs ADD COLUMN steps TEXT"),
    // One row `/readyz` writes: ready means a write commits, not just that a read answers.
    Migration::Shared(
        "CREATE TABLE IF NOT EXISTS tess_health (id BIGINT PRIMARY KEY, checked_at BIGINT NOT NULL)",
    ),
    // GitLab `workflow:auto_cancel`: a running job asked to stop on its own
    // (`on_new_commit: interruptible`), and a run whose failed job cancels the rest
    // (`on_job_failure: all`).
    Migration::Shared(
        "ALTER TABLE jobs ADD COLUMN cancel_requested BIGINT NOT NULL DEFAULT 0;\
         ALTER TABLE runs ADD COLUMN cancel_on_job_failure BIGINT NOT NULL DEFAULT 0",
    ),
];

/// A webhook delivery as received.
pub struct Delivery<'a> {
    pub id: &'a str,
    pub forge: &'a str,
    pub event: &'a str,
    pub repo: Option<&'a str>,
    /// `received` (to plan), `ignored`, `rejected`.
    pub status: &'a str,
    pub reason: Option<&'a str>,
    pub payload: &'a str,
}

/// A job to create with its run.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub key: String,
    pub id: String,
    pub name: String,
    pub needs: Vec<String>,
    pub labels: Vec<String>,
    /// An `if:` remains to be evaluated at run time (on the runner).
    pub has_condition: bool,
    pub spec: serde_json::Value,
    /// Skipped at plan time (with why).
    pub skipped: Option<String>,
    /// GitLab `interruptible`.
    pub interruptible: bool,
}

#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub repo: String,
    pub forge: String,
    pub pipeline: String,
    pub file: String,
    pub event: String,
    pub git_ref: String,
    pub sha: String,
    pub event_json: String,
    /// Set for a pipeline that does not validate: the run is `failed` at once.
    pub error: Option<String>,
    /// Set (to the trigger's reason) for a pull request the pipeline's filters leave out,
    /// recorded so the forge can show it as skipped rather than never started.
    pub skipped: Option<String>,
    pub jobs: Vec<NewJob>,
    /// The concurrency group (scoped to the repository) and what a newer run does to
    /// older ones in it.
    pub concurrency: Option<(String, Supersede)>,
    /// GitLab `workflow:auto_cancel:on_job_failure: all`: a failed job cancels the run.
    pub cancel_on_job_failure: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supersede {
    /// GitHub `concurrency` with `cancel-in-progress: true`.
    CancelInProgress,
    /// GitLab `on_new_commit: conservative`: cancel when every started job is
    /// `interruptible`.
    Interruptible,
    /// GitLab `on_new_commit: interruptible`: cancel the `interruptible` jobs only, the
    /// others run on.
    InterruptibleJobs,
    /// GitHub `concurrency` without `cancel-in-progress`: a newer run waits while one is in
    /// progress, with at most this many waiting (`queue: single` 1, the default; `queue: max`
    /// 100), the oldest waiting one cancelled beyond it.
    Queue(usize),
}

/// A job a runner just leased, with what the lease message needs from the store.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub run_id: String,
    pub job_key: String,
    pub job_name: String,
    pub attempt: i64,
    pub lease_token: String,
    pub repo: String,
    pub forge: String,
    pub file: String,
    pub sha: String,
    pub event_json: String,
    pub spec: serde_json::Value,
    pub needs: Vec<PriorResult>,
    pub queued_at: i64,
}

/// An outbox row to report, with what the forge is told about it.
#[derive(Debug, Clone)]
pub struct DueReport {
    pub id: i64,
    pub run_id: String,
    /// `None` for the run's own status.
    pub job_key: Option<String>,
    pub state: String,
    pub attempts: i64,
    pub repo: String,
    pub forge: String,
    pub pipeline: String,
    pub sha: String,
    pub git_ref: String,
    pub job_name: Option<String>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub allowed_failure: bool,
    /// The run's error (or, for a skipped run, why it was skipped).
    pub run_error: Option<String>,
    pub annotations: Vec<crate::exec::Annotation>,
    /// The GitHub check run already made for this run or job.
    pub check_run_id: Option<i64>,
    /// GitLab merge requests: the pipeline the statuses join.
    pub forge_pipeline: Option<i64>,
}

/// How long a job took, from a row starting with its `started_at, finished_at`.
fn took(row: &AnyRow) -> Result<Option<i64>> {
    Ok(
        match (
            row.try_get::<Option<i64>, _>(0)?,
            row.try_get::<Option<i64>, _>(1)?,
        ) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        },
    )
}

/// `($first, $first+1), ($first+2, $first+3), …`: `n` pairs of parameters.
fn pairs(n: usize, first: usize) -> String {
    (0..n)
        .map(|i| format!("(${}, ${})", first + 2 * i, first + 2 * i + 1))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A completion statement with the result bound as both forms expect it: $1 state,
/// $2 allowed failure, $3 outputs, $4 error, $5 finished at, and the attempt $6–$9.
fn with_result<'q>(
    sql: &'q str,
    c: &'q crate::protocol::Complete,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    sqlx::query(sql)
        .bind(c.result.as_str())
        .bind(c.allowed_failure as i64)
        .bind(serde_json::to_string(&c.outputs).unwrap_or_default())
        .bind(c.error.as_deref())
        .bind(now_ms())
        .bind(&c.job.run_id)
        .bind(&c.job.job_key)
        .bind(c.job.attempt)
        .bind(&c.job.lease_token)
}

/// A completion's annotations as stored (`NULL` when there are none).
fn annotations_json(c: &crate::protocol::Complete) -> Option<String> {
    (!c.annotations.is_empty()).then(|| serde_json::to_string(&c.annotations).unwrap_or_default())
}

fn steps_json(c: &crate::protocol::Complete) -> Option<String> {
    (!c.steps.is_empty()).then(|| serde_json::to_string(&c.steps).unwrap_or_default())
}

fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

impl Store {
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let options = AnyPoolOptions::new()
            // SQLite has one writer: one connection serializes transactions instead of
            // failing them with SQLITE_BUSY when a read turns into a write.
            .max_connections(if backend == Backend::Sqlite { 1 } else { 16 })
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

    async fn migrate(&self) -> Result<()> {
        self.pool
            .execute("CREATE TABLE IF NOT EXISTS tess_migrations (version BIGINT PRIMARY KEY)")
            .await?;
        let serial = match self.backend {
            Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Backend::Postgres => "BIGSERIAL PRIMARY KEY",
        };
        for (i, migration) in MIGRATIONS.iter().enumerate() {
            let version = i as i64 + 1;
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query("SELECT version FROM tess_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
            if done.is_some() {
                continue;
            }
            let statements: Vec<String> = match (migration, self.backend) {
                (Migration::Shared(sql), _) => sql
                    .replace("{SERIAL}", serial)
                    .split(';')
                    .filter(|s| !s.trim().is_empty())
                    .map(str::to_string)
                    .collect(),
                (Migration::PerBackend { sqlite, .. }, Backend::Sqlite) => {
                    sqlite.iter().map(|s| s.to_string()).collect()
                }
                (Migration::PerBackend { postgres, .. }, Backend::Postgres) => {
                    postgres.iter().map(|s| s.to_string()).collect()
                }
            };
            for statement in statements {
                tx.execute(statement.as_str()).await?;
            }
            sqlx::query("INSERT INTO tess_migrations (version) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind(version)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
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

    // ---- deliveries ----

    /// Records a delivery; `false` when this id was recorded before (a redelivery).
    /// Records a delivery once: `false` when its id is already recorded (a redelivery). A
    /// `rejected` record (a repository not configured) never holds an id against a delivery
    /// that is accepted later: that one replaces it.
    pub async fn insert_delivery(&self, d: &Delivery<'_>) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO deliveries (id, forge, event, repo, received_at, status, reason, payload) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET \
             forge = excluded.forge, event = excluded.event, repo = excluded.repo, \
             received_at = excluded.received_at, status = excluded.status, \
             reason = excluded.reason, payload = excluded.payload \
             WHERE deliveries.status = 'rejected' AND excluded.status <> 'rejected'",
        )
        .bind(d.id)
        .bind(d.forge)
        .bind(d.event)
        .bind(d.repo)
        .bind(now_ms())
        .bind(d.status)
        .bind(d.reason)
        .bind(d.payload)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes a received delivery for planning (compare-and-set, so one replica plans it),
    /// or one whose planner stopped renewing its claim (it died).
    pub async fn claim_delivery(&self, id: &str) -> Result<Option<(String, String, String)>> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'planning', claimed_at = $1 \
             WHERE id = $2 AND (status = 'received' OR (status = 'planning' AND claimed_at < $3))",
        )
        .bind(now)
        .bind(id)
        .bind(now - PLANNING_CLAIM_MS)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let row = sqlx::query("SELECT forge, event, payload FROM deliveries WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        Ok(Some((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
    }

    /// Keeps a planning claim alive while the planner works on it.
    pub async fn renew_delivery_claim(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE deliveries SET claimed_at = $1 WHERE id = $2 AND status = 'planning'")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deliveries left unplanned by a crash (or by another replica that died): claims not
    /// renewed for [`PLANNING_CLAIM_MS`], and received ones older than `received_before`
    /// (at start: all of them).
    pub async fn unplanned_deliveries(&self, received_before: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT id FROM deliveries WHERE (status = 'received' AND received_at < $2) \
             OR (status = 'planning' AND claimed_at < $1) ORDER BY received_at",
        )
        .bind(now_ms() - PLANNING_CLAIM_MS)
        .bind(received_before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// After a start, runners get a full lease to heartbeat before their leases lapse:
    /// the time the server was down must not expire them.
    pub async fn grant_lease_grace(&self, ttl_ms: i64) -> Result<u64> {
        let until = now_ms() + ttl_ms;
        let done = sqlx::query(
            "UPDATE jobs SET lease_expires = $1 WHERE state = 'running' AND lease_expires < $1",
        )
        .bind(until)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Stores the runs planned for a delivery and its outcome, in one transaction.
    pub async fn finish_delivery(
        &self,
        id: &str,
        status: &str,
        reason: Option<&str>,
        runs: &[NewRun],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let run_ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
        let done = sqlx::query(
            "UPDATE deliveries SET status = $1, reason = $2, runs = $3 WHERE id = $4 AND status = 'planning'",
        )
        .bind(status)
        .bind(reason)
        .bind(serde_json::to_string(&run_ids).unwrap_or_default())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "delivery {id} is not being planned"
            )));
        }
        for run in runs {
            insert_run(&mut tx, run, Some(id)).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn create_run(&self, run: &NewRun) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_run(&mut tx, run, None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A new run of the same commit, pipeline and event. With `failed_only`, jobs that
    /// succeeded (or were skipped) keep their results and outputs, and only the failed or
    /// cancelled ones run again, with everything that needs them (GitHub's "re-run failed
    /// jobs"). Returns the new run's id.
    pub async fn rerun(&self, run_id: &str, failed_only: bool) -> Result<String> {
        let mut tx = self.pool.begin().await?;
        let run = sqlx::query(
            "SELECT repo, forge, pipeline, file, event, git_ref, sha, event_json, status, concurrency_group, \
             cancel_on_job_failure \
             FROM runs WHERE id = $1",
        )
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no run `{run_id}`")))?;
        let status: String = run.try_get(8)?;
        if ["queued", "running"].contains(&status.as_str()) {
            return Err(StoreError::Conflict(format!(
                "run `{run_id}` has not finished"
            )));
        }
        let rows = sqlx::query(
            "SELECT job_key, job_id, name, needs, labels, has_condition, spec, state, error, \
             allowed_failure, outputs, interruptible FROM jobs WHERE run_id = $1 ORDER BY position",
        )
        .bind(run_id)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Err(StoreError::Conflict(format!(
                "run `{run_id}` has no jobs to run again (an invalid pipeline is fixed by a new commit)"
            )));
        }
        // Which jobs run again: all planned ones, or the failed ones and their dependents.
        let mut again: std::collections::HashSet<String> = std::collections::HashSet::new();
        let planned = |r: &AnyRow| r.try_get::<String, _>(6).is_ok_and(|s| s != "null");
        for r in &rows {
            let state: String = r.try_get(7)?;
            if planned(r) && (!failed_only || state == "failure" || state == "cancelled") {
                again.insert(r.try_get(0)?);
            }
        }
        loop {
            let before = again.len();
            for r in &rows {
                let needs = json_list(&r.try_get::<String, _>(3)?);
                if planned(r) && needs.iter().any(|n| again.contains(n)) {
                    again.insert(r.try_get(0)?);
                }
            }
            if again.len() == before {
                break;
            }
        }
        let new_id = format!("{run_id}-r{}", random_hex(2));
        let now = now_ms();
        sqlx::query(
            "INSERT INTO runs (id, repo, forge, pipeline, file, event, git_ref, sha, status, event_json, \
             created_at, concurrency_group, cancel_on_job_failure) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', $9, $10, $11, $12)",
        )
        .bind(&new_id)
        .bind(run.try_get::<String, _>(0)?)
        .bind(run.try_get::<String, _>(1)?)
        .bind(run.try_get::<String, _>(2)?)
        .bind(run.try_get::<String, _>(3)?)
        .bind(run.try_get::<String, _>(4)?)
        .bind(run.try_get::<String, _>(5)?)
        .bind(run.try_get::<String, _>(6)?)
        .bind(run.try_get::<String, _>(7)?)
        .bind(now)
        .bind(run.try_get::<Option<String>, _>(9)?)
        .bind(run.try_get::<i64, _>(10)?)
        .execute(&mut *tx)
        .await?;
        for (position, r) in rows.iter().enumerate() {
            let key: String = r.try_get(0)?;
            let needs = json_list(&r.try_get::<String, _>(3)?);
            let runs_again = again.contains(&key);
            let state = match (runs_again, needs.is_empty()) {
                (true, true) => QUEUED.to_string(),
                (true, false) => WAITING.to_string(),
                (false, _) => r.try_get(7)?,
            };
            sqlx::query(
                "INSERT INTO jobs (run_id, job_key, job_id, name, position, needs, labels, has_condition, \
                 spec, state, error, allowed_failure, outputs, interruptible, queued_at, finished_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            )
            .bind(&new_id)
            .bind(&key)
            .bind(r.try_get::<String, _>(1)?)
            .bind(r.try_get::<String, _>(2)?)
            .bind(position as i64)
            .bind(r.try_get::<String, _>(3)?)
            .bind(r.try_get::<String, _>(4)?)
            .bind(r.try_get::<i64, _>(5)?)
            .bind(r.try_get::<String, _>(6)?)
            .bind(&state)
            .bind(if runs_again { None } else { r.try_get::<Option<String>, _>(8)? })
            .bind(if runs_again { 0 } else { r.try_get::<i64, _>(9)? })
            .bind(if runs_again { None } else { r.try_get::<Option<String>, _>(10)? })
            .bind(r.try_get::<i64, _>(11)?)
            .bind((state == QUEUED).then_some(now))
            .bind(is_terminal(&state).then_some(now))
            .execute(&mut *tx)
            .await?;
        }
        advance(&mut tx, &new_id).await?;
        tx.commit().await?;
        Ok(new_id)
    }

    pub async fn deliveries(&self, page: &Page) -> Result<Vec<serde_json::Value>> {
        let rows = sqlx::query(
            "SELECT id, forge, event, repo, received_at, status, reason, runs FROM deliveries \
             WHERE ($2 IS NULL OR received_at < $2 OR (received_at = $2 AND id < $3)) \
             ORDER BY received_at DESC, id DESC LIMIT $1",
        )
        .bind(page.limit)
        .bind(page.before.as_ref().map(|c| c.0))
        .bind(page.before.as_ref().map(|c| c.1.clone()))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let runs: Option<String> = r.try_get(7)?;
                Ok(serde_json::json!({
                    "id": r.try_get::<String, _>(0)?,
                    "forge": r.try_get::<String, _>(1)?,
                    "event": r.try_get::<String, _>(2)?,
                    "repo": r.try_get::<Option<String>, _>(3)?,
                    "received_at": r.try_get::<i64, _>(4)?,
                    "status": r.try_get::<String, _>(5)?,
                    "reason": r.try_get::<Option<String>, _>(6)?,
                    "runs": runs.map(|s| json_list(&s)).unwrap_or_default(),
                }))
            })
            .collect()
    }

    // ---- runners ----

    pub async fn register_runner(
        &self,
        name: &str,
        labels: &[String],
        version: &str,
    ) -> Result<(String, String)> {
        let id = format!("runner-{}", random_hex(6));
        let token = random_hex(24);
        let now = now_ms();
        sqlx::query(
            "INSERT INTO runners (id, name, token_hash, labels, version, registered_at, last_seen) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(name)
        .bind(sha256_hex(token.as_bytes()))
        .bind(serde_json::to_string(labels).unwrap_or_default())
        .bind(version)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok((id, token))
    }

    /// The runner a token belongs to (tokens are stored hashed).
    pub async fn runner_by_token(&self, token: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT id FROM runners WHERE token_hash = $1")
            .bind(sha256_hex(token.as_bytes()))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Records a runner's poll: labels, free slots and load; returns whether it must drain.
    pub async fn runner_seen(
        &self,
        id: &str,
        labels: &[String],
        free_slots: u32,
        load: &crate::protocol::Load,
        version: &str,
    ) -> Result<bool> {
        let row = sqlx::query(
            // A drained runner that comes back as another version was upgraded: it takes
            // jobs again (a rolling upgrade).
            "UPDATE runners SET last_seen = $1, labels = $2, free_slots = $3, load = $4, \
             draining = CASE WHEN version <> $5 THEN 0 ELSE draining END, version = $5 \
             WHERE id = $6 RETURNING draining",
        )
        .bind(now_ms())
        .bind(serde_json::to_string(labels).unwrap_or_default())
        .bind(free_slots as i64)
        .bind(serde_json::to_string(load).unwrap_or_default())
        .bind(version)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no runner `{id}`")))?;
        Ok(row.try_get::<i64, _>(0)? != 0)
    }

    pub async fn set_draining(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE runners SET draining = 1 WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// `(id, name, labels, version, last_seen, free_slots, load, draining)` of every runner.
    /// Runners in id order; `page.before` holds the last id of the previous page.
    pub async fn runners(&self, page: &Page) -> Result<Vec<RunnerRow>> {
        let rows = sqlx::query(
            "SELECT id, name, labels, version, last_seen, free_slots, load, draining FROM runners \
             WHERE ($2 IS NULL OR id > $2) ORDER BY id LIMIT $1",
        )
        .bind(page.limit)
        .bind(page.before.as_ref().map(|c| c.1.clone()))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RunnerRow {
                    id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    labels: json_list(&r.try_get::<String, _>(2)?),
                    version: r.try_get(3)?,
                    last_seen: r.try_get(4)?,
                    free_slots: r.try_get(5)?,
                    load: r
                        .try_get::<Option<String>, _>(6)?
                        .and_then(|s| serde_json::from_str::<crate::protocol::Load>(&s).ok()),
                    draining: r.try_get::<i64, _>(7)? != 0,
                })
            })
            .collect()
    }

    // ---- scheduling ----

    /// Leases the oldest queued job whose labels the runner has (compare-and-set on the
    /// job's state, so two pollers on two replicas never get the same attempt).
    pub async fn claim(
        &self,
        runner_id: &str,
        labels: &[String],
        ttl_ms: i64,
    ) -> Result<Option<Claimed>> {
        // The first queued job whose labels the runner has, taken in one statement: a
        // compare-and-set on its state (the outbox row is the trigger's). On PostgreSQL
        // rows another poller is taking are skipped, not waited for. Should reading the
        // rest of the lease fail, the lease expires and the job is retried.
        let now = now_ms();
        let token = random_hex(16);
        let runner_labels: Vec<String> = labels.iter().map(|l| l.to_ascii_lowercase()).collect();
        let runner_labels = serde_json::to_string(&runner_labels).unwrap_or_default();
        let claim = match self.backend {
            Backend::Postgres => CLAIM_POSTGRES,
            Backend::Sqlite => CLAIM_SQLITE,
        };
        let mut conn = self.pool.acquire().await?;
        let taken = sqlx::query(claim)
            .bind(runner_id)
            .bind(&token)
            .bind(now + ttl_ms)
            .bind(now)
            .bind(&runner_labels)
            .fetch_optional(&mut *conn)
            .await?;
        match taken {
            Some(job) => Ok(Some(self.lease_of(&mut conn, job, token).await?)),
            None => Ok(None),
        }
    }

    /// A taken job's lease: the job's row as the claim returned it, its run and needs.
    async fn lease_of(
        &self,
        conn: &mut AnyConnection,
        job: AnyRow,
        lease_token: String,
    ) -> Result<Claimed> {
        let run_id: String = job.try_get(0)?;
        let run = self.run_of_lease(conn, &run_id).await?;
        let needs = json_list(&job.try_get::<String, _>(5)?);
        Ok(Claimed {
            needs: prior_results(conn, &run_id, needs).await?,
            run_id,
            job_key: job.try_get(1)?,
            job_name: job.try_get(2)?,
            attempt: job.try_get(3)?,
            lease_token,
            repo: run.repo.clone(),
            forge: run.forge.clone(),
            file: run.file.clone(),
            sha: run.sha.clone(),
            event_json: run.event_json.clone(),
            spec: serde_json::from_str(&job.try_get::<String, _>(4)?).unwrap_or_default(),
            queued_at: job.try_get::<Option<i64>, _>(6)?.unwrap_or_default(),
        })
    }

    /// The run's part of a lease; the first lease of a run also marks it running.
    async fn run_of_lease(&self, tx: &mut AnyConnection, run_id: &str) -> Result<Arc<RunOfLease>> {
        let cached = {
            let runs = self.leased_runs.lock().unwrap_or_else(|e| e.into_inner());
            runs.get(run_id).cloned()
        };
        if let Some(run) = cached {
            return Ok(run);
        }
        let row = sqlx::query(
            "SELECT repo, forge, file, sha, event_json, status FROM runs WHERE id = $1",
        )
        .bind(run_id)
        .fetch_one(&mut *tx)
        .await?;
        if row.try_get::<String, _>(5)? == QUEUED {
            sqlx::query("UPDATE runs SET status = 'running' WHERE id = $1 AND status = 'queued'")
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
        }
        let run = Arc::new(RunOfLease {
            repo: row.try_get(0)?,
            forge: row.try_get(1)?,
            file: row.try_get(2)?,
            sha: row.try_get(3)?,
            event_json: row.try_get(4)?,
        });
        let mut runs = self.leased_runs.lock().unwrap_or_else(|e| e.into_inner());
        if runs.len() >= LEASED_RUNS_KEPT {
            runs.clear();
        }
        runs.insert(run_id.to_string(), Arc::clone(&run));
        Ok(run)
    }

    /// Extends a lease; `Ok(cancel requested)`, or a conflict when the lease is not this one.
    pub async fn heartbeat(&self, job: &crate::protocol::JobRef, ttl_ms: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_expires = $1 WHERE run_id = $2 AND job_key = $3 \
             AND attempt = $4 AND lease_token = $5 AND state = 'running'",
        )
        .bind(now_ms() + ttl_ms)
        .bind(&job.run_id)
        .bind(&job.job_key)
        .bind(job.attempt)
        .bind(&job.lease_token)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "the lease is no longer held by this attempt".into(),
            ));
        }
        let row = sqlx::query(
            "SELECT r.cancel_requested + j.cancel_requested FROM runs r JOIN jobs j \
             ON j.run_id = r.id WHERE r.id = $1 AND j.job_key = $2",
        )
        .bind(&job.run_id)
        .bind(&job.job_key)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>(0)? != 0)
    }

    /// Appends `data` at byte `offset` of the attempt's log. A chunk sent again is not
    /// stored twice; a chunk past the end (a gap) is refused. Returns the new length.
    pub async fn append_log(&self, chunk: &crate::protocol::LogChunk) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let length = append_in(&mut tx, &chunk.job, chunk.offset, &chunk.data).await?;
        tx.commit().await?;
        Ok(length)
    }

    /// Records an attempt's result (idempotent for the same attempt and lease; a stale one
    /// is refused) and advances the run's DAG in the same transaction. Returns how long the
    /// attempt ran (ms, `None` for a repeated completion) and how many jobs it queued.
    pub async fn complete(&self, c: &crate::protocol::Complete) -> Result<(Option<i64>, usize)> {
        if self.backend == Backend::Postgres
            && let Some(done) = self.complete_at_once(c).await?
        {
            return Ok(done);
        }
        let job = &c.job;
        let mut tx = self.pool.begin().await?;
        // The end of the log, sent with the result (one request instead of two). Usually
        // it starts where the stored log ends and is appended together with the result;
        // otherwise (a resend, say) the careful path decides. A stale attempt's tail is
        // refused below with its result.
        let mut log_end = None;
        if let Some(tail) = &c.log {
            let appended = sqlx::query(
                "INSERT INTO logs (run_id, job_key, attempt, start_at, data) \
                 SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM jobs WHERE run_id = $1 \
                 AND job_key = $2 AND attempt = $3 AND lease_token = $6 AND state = 'running' \
                 AND log_length = $4)",
            )
            .bind(&job.run_id)
            .bind(&job.job_key)
            .bind(job.attempt)
            .bind(tail.offset as i64)
            .bind(&tail.data)
            .bind(&job.lease_token)
            .execute(&mut *tx)
            .await?;
            if appended.rows_affected() == 1 {
                log_end = Some(tail.offset as i64 + tail.data.len() as i64);
            } else {
                match append_in(&mut tx, job, tail.offset, &tail.data).await {
                    Ok(_) | Err(StoreError::Conflict(_)) => {}
                    // The stored log ends before the tail starts (bytes were lost here):
                    // the tail follows on from the stored end, saying what is missing,
                    // as a runner's resync does for its other chunks.
                    Err(StoreError::LogGap { stored, offset }) => {
                        let data = format!(
                            "##[warning]{} bytes of this log were lost by the server\n{}",
                            offset - stored,
                            tail.data
                        );
                        match append_in(&mut tx, job, stored, &data).await {
                            Ok(_) | Err(StoreError::Conflict(_)) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let done = with_result(
            "UPDATE jobs SET state = $1, allowed_failure = $2, outputs = $3, error = $4, finished_at = $5, \
             log_length = COALESCE($10, log_length), annotations = $11, steps = $12 \
             WHERE run_id = $6 AND job_key = $7 AND attempt = $8 AND lease_token = $9 AND state = 'running' \
             RETURNING started_at, finished_at",
            c,
        )
        .bind(log_end)
        .bind(annotations_json(c))
        .bind(steps_json(c))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(times) = done else {
            // The same completion sent again is fine; anything else is a stale attempt.
            let row = sqlx::query(
                "SELECT state FROM jobs WHERE run_id = $1 AND job_key = $2 AND attempt = $3 AND lease_token = $4",
            )
            .bind(&job.run_id)
            .bind(&job.job_key)
            .bind(job.attempt)
            .bind(&job.lease_token)
            .fetch_optional(&mut *tx)
            .await?;
            return match row.map(|r| r.try_get::<String, _>(0)).transpose()? {
                Some(state) if state == c.result.as_str() => Ok((None, 0)),
                _ => Err(StoreError::Conflict(
                    "this attempt no longer holds the job (its lease expired or it was retried)"
                        .into(),
                )),
            };
        };
        cancel_on_failure(&mut tx, c).await?;
        let queued = advance(&mut tx, &job.run_id).await?;
        let duration = took(&times)?;
        tx.commit().await?;
        Ok((duration, queued))
    }

    /// PostgreSQL's usual completion in one statement (one round trip instead of five):
    /// the log's tail appended where the stored log ends, the result stored, and whether
    /// the run may need advancing. `None` when the careful path must decide (a resend, a
    /// stale attempt, a tail that does not start where the log ends).
    async fn complete_at_once(
        &self,
        c: &crate::protocol::Complete,
    ) -> Result<Option<(Option<i64>, usize)>> {
        let job = &c.job;
        let row = with_result(COMPLETE_POSTGRES, c)
            .bind(c.log.as_ref().map(|t| t.offset as i64))
            .bind(c.log.as_ref().map(|t| t.data.as_str()))
            .bind(
                c.log
                    .as_ref()
                    .map(|t| (t.offset + t.data.len() as u64) as i64),
            )
            .bind(annotations_json(c))
            .bind(steps_json(c))
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let duration = took(&row)?;
        // The statement saw the run as it was before this job finished; this job aside,
        // nothing waits and something still runs: no other job changes now.
        let (waiting, others_open): (bool, bool) = (row.try_get(2)?, row.try_get(3)?);
        let failed = c.result == Conclusion::Failure && !c.allowed_failure;
        if !waiting && others_open && !failed {
            return Ok(Some((duration, 0)));
        }
        let mut tx = self.pool.begin().await?;
        cancel_on_failure(&mut tx, c).await?;
        let queued = advance(&mut tx, &job.run_id).await?;
        tx.commit().await?;
        Ok(Some((duration, queued)))
    }

    /// Expired leases: the job is queued again for another runner (attempt + 1 when it is
    /// taken), or failed as "runner lost" after `max_attempts`. Returns how many expired.
    pub async fn expire_leases(&self, max_attempts: i64) -> Result<usize> {
        let now = now_ms();
        let rows = sqlx::query(
            "SELECT run_id, job_key, attempt FROM jobs WHERE state = 'running' AND lease_expires < $1",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut expired = 0;
        for r in rows {
            let (run_id, key, attempt): (String, String, i64) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            let mut tx = self.pool.begin().await?;
            let retry = attempt < max_attempts;
            let sql = if retry {
                "UPDATE jobs SET state = 'queued', queued_at = $1, runner_id = NULL, lease_token = NULL, \
                 error = 'runner lost; retried' WHERE run_id = $2 AND job_key = $3 AND attempt = $4 \
                 AND state = 'running' AND lease_expires < $1"
            } else {
                "UPDATE jobs SET state = 'failure', finished_at = $1, lease_token = NULL, \
                 error = 'runner lost' WHERE run_id = $2 AND job_key = $3 AND attempt = $4 \
                 AND state = 'running' AND lease_expires < $1"
            };
            let done = sqlx::query(sql)
                .bind(now)
                .bind(&run_id)
                .bind(&key)
                .bind(attempt)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                continue;
            }
            expired += 1;
            if !retry {
                advance(&mut tx, &run_id).await?;
            }
            tx.commit().await?;
        }
        Ok(expired)
    }

    /// Re-checks unfinished runs (a dependent whose needs finished in two concurrent
    /// transactions may have been missed by both).
    pub async fn advance_open_runs(&self) -> Result<()> {
        let rows = sqlx::query("SELECT id FROM runs WHERE status IN ('queued', 'running')")
            .fetch_all(&self.pool)
            .await?;
        for r in rows {
            let id: String = r.try_get(0)?;
            let mut tx = self.pool.begin().await?;
            advance(&mut tx, &id).await?;
            tx.commit().await?;
        }
        let groups =
            sqlx::query("SELECT DISTINCT concurrency_group FROM runs WHERE status = 'pending'")
                .fetch_all(&self.pool)
                .await?;
        for g in groups {
            let group: String = g.try_get(0)?;
            let mut tx = self.pool.begin().await?;
            start_pending(&mut tx, &group).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Cancels a run: jobs not started are cancelled, running ones are told at their next
    /// heartbeat. `false` when the run is already finished.
    pub async fn cancel_run(&self, run_id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let cancelled = cancel_in(&mut tx, run_id).await?;
        tx.commit().await?;
        Ok(cancelled)
    }

    // ---- forge reports ----

    /// Outbox rows due to be reported, each the newest of its status (older ones are
    /// superseded by it), taken for `claim_ms` so another replica does not send them too.
    pub async fn due_reports(
        &self,
        limit: i64,
        claim_ms: i64,
        reporting: &[(String, String)],
    ) -> Result<Vec<DueReport>> {
        if reporting.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        // "Newest of its status" is asked twice so each probe is an index range (a run's
        // status has no job key).
        let sql = format!(
            "SELECT o.id, o.run_id, o.job_key, o.state, o.attempts, r.repo, r.forge, r.pipeline, \
             r.sha, r.git_ref, r.created_at, r.finished_at, j.name, j.started_at, j.finished_at, \
             j.allowed_failure, r.error, j.annotations, \
             (SELECT c.check_run_id FROM check_runs c WHERE c.run_id = o.run_id \
             AND c.job_key = COALESCE(o.job_key, '')), \
             CASE WHEN r.forge = 'gitlab' AND r.event = 'pull_request' THEN r.event_json END \
             FROM outbox o JOIN runs r ON r.id = o.run_id \
             LEFT JOIN jobs j ON j.run_id = o.run_id AND j.job_key = o.job_key \
             WHERE o.delivered_at IS NULL AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= $1) \
             AND (o.claimed_until IS NULL OR o.claimed_until < $1) \
             AND NOT EXISTS (SELECT 1 FROM outbox n WHERE n.run_id = o.run_id \
             AND n.job_key = o.job_key AND n.id > o.id) \
             AND (o.job_key IS NOT NULL OR NOT EXISTS (SELECT 1 FROM outbox n \
             WHERE n.run_id = o.run_id AND n.job_key IS NULL AND n.id > o.id)) \
             AND (r.forge, r.repo) IN ({}) ORDER BY o.id LIMIT $2",
            pairs(reporting.len(), 3)
        );
        let mut query = sqlx::query(&sql).bind(now).bind(limit);
        for (forge, repo) in reporting {
            query = query.bind(forge).bind(repo);
        }
        let rows = query.fetch_all(&self.pool).await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        // All taken at once; what another replica took in between is left to it.
        let ids: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<i64, _>(0).map(|id| id.to_string()))
            .collect::<std::result::Result<_, _>>()?;
        let taken = sqlx::query(&format!(
            "UPDATE outbox SET claimed_until = $1 WHERE id IN ({}) AND delivered_at IS NULL \
             AND (claimed_until IS NULL OR claimed_until < $2) RETURNING id",
            ids.join(", ")
        ))
        .bind(now + claim_ms)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let taken: std::collections::HashSet<i64> = taken
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()?;
        let mut due = Vec::new();
        for r in rows {
            let id: i64 = r.try_get(0)?;
            if !taken.contains(&id) {
                continue;
            }
            due.push(DueReport {
                id,
                run_id: r.try_get(1)?,
                job_key: r.try_get(2)?,
                state: r.try_get(3)?,
                attempts: r.try_get(4)?,
                repo: r.try_get(5)?,
                forge: r.try_get(6)?,
                pipeline: r.try_get(7)?,
                sha: r.try_get(8)?,
                git_ref: r.try_get(9)?,
                started_at: r
                    .try_get::<Option<i64>, _>(13)?
                    .or(Some(r.try_get::<i64, _>(10)?)),
                finished_at: r
                    .try_get::<Option<i64>, _>(14)?
                    .or(r.try_get::<Option<i64>, _>(11)?),
                job_name: r.try_get(12)?,
                allowed_failure: r.try_get::<Option<i64>, _>(15)?.unwrap_or(0) != 0,
                run_error: r.try_get(16)?,
                annotations: r
                    .try_get::<Option<String>, _>(17)?
                    .and_then(|a| serde_json::from_str(&a).ok())
                    .unwrap_or_default(),
                check_run_id: r.try_get(18)?,
                forge_pipeline: r
                    .try_get::<Option<String>, _>(19)?
                    .and_then(|e| serde_json::from_str::<crate::trigger::Event>(&e).ok())
                    .and_then(|e| e.forge_pipeline),
            });
        }
        Ok(due)
    }

    /// Marks what is undelivered of repositories that do not report to a forge (all but
    /// `reporting`) as not reported, in one statement.
    pub async fn mark_unreported(&self, reporting: &[(String, String)]) -> Result<()> {
        let others = if reporting.is_empty() {
            String::new()
        } else {
            format!(
                "AND run_id IN (SELECT id FROM runs WHERE (forge, repo) NOT IN ({}))",
                pairs(reporting.len(), 2)
            )
        };
        let sql = format!(
            "UPDATE outbox SET delivered_at = $1, result = 'unreported' \
             WHERE delivered_at IS NULL {others}"
        );
        let mut query = sqlx::query(&sql).bind(now_ms());
        for (forge, repo) in reporting {
            query = query.bind(forge).bind(repo);
        }
        query.execute(&self.pool).await?;
        Ok(())
    }

    /// Records how reporting an outbox row went. `retry_at` keeps it to be sent again;
    /// otherwise it is done with `result`, and older rows of its status are superseded.
    pub async fn reported(
        &self,
        report: &DueReport,
        result: &str,
        retry_at: Option<i64>,
        error: Option<&str>,
        count_attempt: bool,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE outbox SET claimed_until = NULL, next_attempt_at = $1, result = $2, \
             last_error = $3, attempts = attempts + $4, delivered_at = $5 WHERE id = $6",
        )
        .bind(retry_at)
        .bind(result)
        .bind(error)
        .bind(count_attempt as i64)
        .bind(retry_at.is_none().then_some(now))
        .bind(report.id)
        .execute(&mut *tx)
        .await?;
        if retry_at.is_none() {
            let same_status = match report.job_key {
                Some(_) => "job_key = $3",
                None => "job_key IS NULL AND $3 IS NULL",
            };
            sqlx::query(&format!(
                "UPDATE outbox SET delivered_at = $1, result = 'superseded' WHERE run_id = $2 \
                 AND {same_status} AND id < $4 AND delivered_at IS NULL"
            ))
            .bind(now)
            .bind(&report.run_id)
            .bind(report.job_key.as_deref())
            .bind(report.id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Reports not delivered: still to be sent, or given up (`refused`, `failed`), newest
    /// first.
    pub async fn undelivered_reports(&self, page: &Page) -> Result<Vec<serde_json::Value>> {
        let rows = sqlx::query(
            "SELECT id, run_id, job_key, state, attempts, result, last_error, next_attempt_at, \
             created_at FROM outbox WHERE (delivered_at IS NULL OR result IN ('refused', 'failed')) \
             AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $1",
        )
        .bind(page.limit)
        .bind(page.before.as_ref().map(|c| c.0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(serde_json::json!({
                    "id": r.try_get::<i64, _>(0)?,
                    "run_id": r.try_get::<String, _>(1)?,
                    "job_key": r.try_get::<Option<String>, _>(2)?,
                    "state": r.try_get::<String, _>(3)?,
                    "attempts": r.try_get::<i64, _>(4)?,
                    "result": r.try_get::<Option<String>, _>(5)?,
                    "error": r.try_get::<Option<String>, _>(6)?,
                    "next_attempt_at": r.try_get::<Option<i64>, _>(7)?,
                    "created_at": r.try_get::<i64, _>(8)?,
                }))
            })
            .collect()
    }

    /// Remembers the check run made for a run (`job_key` `None`) or job.
    pub async fn set_check_run(&self, run_id: &str, job_key: Option<&str>, id: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO check_runs (run_id, job_key, check_run_id) VALUES ($1, $2, $3) \
             ON CONFLICT (run_id, job_key) DO UPDATE SET check_run_id = $3",
        )
        .bind(run_id)
        .bind(job_key.unwrap_or(""))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How many reports are still to be sent, and how many were given up.
    pub async fn report_counts(&self) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL), \
             (SELECT COUNT(*) FROM outbox WHERE result IN ('refused', 'failed'))",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    // ---- reading ----

    pub async fn runs(
        &self,
        repo: Option<&str>,
        status: Option<&str>,
        git_ref: Option<&str>,
        page: &Page,
    ) -> Result<Vec<serde_json::Value>> {
        let rows = sqlx::query(
            "SELECT id, repo, forge, pipeline, file, event, git_ref, sha, status, error, created_at, finished_at \
             FROM runs WHERE ($1 IS NULL OR repo = $1) AND ($2 IS NULL OR status = $2) \
             AND ($3 IS NULL OR git_ref = $3) \
             AND ($5 IS NULL OR created_at < $5 OR (created_at = $5 AND id < $6)) \
             ORDER BY created_at DESC, id DESC LIMIT $4",
        )
        .bind(repo)
        .bind(status)
        .bind(git_ref)
        .bind(page.limit)
        .bind(page.before.as_ref().map(|c| c.0))
        .bind(page.before.as_ref().map(|c| c.1.clone()))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_json).collect()
    }

    pub async fn run(&self, id: &str) -> Result<Option<serde_json::Value>> {
        let row = sqlx::query(
            "SELECT id, repo, forge, pipeline, file, event, git_ref, sha, status, error, created_at, finished_at \
             FROM runs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut run = run_json(&row)?;
        let jobs = sqlx::query(
            "SELECT job_key, job_id, name, needs, labels, state, attempt, runner_id, error, \
             queued_at, started_at, finished_at, allowed_failure, outputs, steps FROM jobs WHERE run_id = $1 ORDER BY position",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let jobs: Vec<serde_json::Value> = jobs
            .iter()
            .map(|r| {
                Ok(serde_json::json!({
                    "key": r.try_get::<String, _>(0)?,
                    "id": r.try_get::<String, _>(1)?,
                    "name": r.try_get::<String, _>(2)?,
                    "needs": json_list(&r.try_get::<String, _>(3)?),
                    "labels": json_list(&r.try_get::<String, _>(4)?),
                    "state": r.try_get::<String, _>(5)?,
                    "attempt": r.try_get::<i64, _>(6)?,
                    "runner": r.try_get::<Option<String>, _>(7)?,
                    "error": r.try_get::<Option<String>, _>(8)?,
                    "queued_at": r.try_get::<Option<i64>, _>(9)?,
                    "started_at": r.try_get::<Option<i64>, _>(10)?,
                    "finished_at": r.try_get::<Option<i64>, _>(11)?,
                    "allowed_failure": r.try_get::<i64, _>(12)? != 0,
                    "outputs": r.try_get::<Option<String>, _>(13)?
                        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok()),
                    "steps": r.try_get::<Option<String>, _>(14)?
                        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                        .unwrap_or_else(|| serde_json::json!([])),
                }))
            })
            .collect::<Result<_>>()?;
        run["jobs"] = serde_json::Value::Array(jobs);
        Ok(Some(run))
    }

    /// The log of a job's latest attempt from byte `offset`: `(text, attempt, finished)`.
    pub async fn log(
        &self,
        run_id: &str,
        key: &str,
        offset: u64,
    ) -> Result<Option<(String, i64, bool)>> {
        let Some(row) =
            sqlx::query("SELECT attempt, state FROM jobs WHERE run_id = $1 AND job_key = $2")
                .bind(run_id)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        let attempt: i64 = row.try_get(0)?;
        let state: String = row.try_get(1)?;
        let chunks = sqlx::query(
            "SELECT start_at, data FROM logs WHERE run_id = $1 AND job_key = $2 AND attempt = $3 ORDER BY start_at",
        )
        .bind(run_id)
        .bind(key)
        .bind(attempt)
        .fetch_all(&self.pool)
        .await?;
        let mut text = String::new();
        for c in chunks {
            let start = c.try_get::<i64, _>(0)? as u64;
            let data: String = c.try_get(1)?;
            let end = start + data.len() as u64;
            if end <= offset {
                continue;
            }
            let skip = offset.saturating_sub(start) as usize;
            text.push_str(data.get(skip..).unwrap_or_default());
        }
        Ok(Some((text, attempt, is_terminal(&state))))
    }

    /// Queued jobs by label set, for `/metrics` and for spotting labels no runner has.
    pub async fn queued_labels(&self) -> Result<Vec<(Vec<String>, i64)>> {
        let rows =
            sqlx::query("SELECT labels, COUNT(*) FROM jobs WHERE state = 'queued' GROUP BY labels")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    json_list(&r.try_get::<String, _>(0)?),
                    r.try_get::<i64, _>(1)?,
                ))
            })
            .collect()
    }

    /// `(status, count)` of runs, for `/metrics`.
    pub async fn run_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT status, COUNT(*) FROM runs GROUP BY status")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
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

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunnerRow {
    pub id: String,
    pub name: String,
    pub labels: Vec<String>,
    pub version: String,
    pub last_seen: i64,
    pub free_slots: i64,
    pub load: Option<crate::protocol::Load>,
    pub draining: bool,
}

/// A job's labels are all among the runner's (GitHub `runs-on`, GitLab `tags`).
pub fn labels_match(job: &[String], runner: &[String]) -> bool {
    job.iter()
        .all(|l| runner.iter().any(|r| r.eq_ignore_ascii_case(l)))
}

fn run_json(r: &AnyRow) -> Result<serde_json::Value> {
    Ok(serde_json::json!({
        "id": r.try_get::<String, _>(0)?,
        "repo": r.try_get::<String, _>(1)?,
        "forge": r.try_get::<String, _>(2)?,
        "pipeline": r.try_get::<String, _>(3)?,
        "file": r.try_get::<String, _>(4)?,
        "event": r.try_get::<String, _>(5)?,
        "ref": r.try_get::<String, _>(6)?,
        "sha": r.try_get::<String, _>(7)?,
        "status": r.try_get::<String, _>(8)?,
        "error": r.try_get::<Option<String>, _>(9)?,
        "created_at": r.try_get::<i64, _>(10)?,
        "finished_at": r.try_get::<Option<i64>, _>(11)?,
    }))
}

async fn insert_run(conn: &mut AnyConnection, run: &NewRun, delivery: Option<&str>) -> Result<()> {
    let now = now_ms();
    let waits = match &run.concurrency {
        Some((group, Supersede::Queue(_))) if run.error.is_none() => {
            group_busy(conn, group).await?
        }
        _ => false,
    };
    let status = match (&run.error, &run.skipped, waits) {
        (Some(_), _, _) => "failed",
        (None, Some(_), _) => "skipped",
        (None, None, true) => PENDING,
        (None, None, false) => QUEUED,
    };
    let error = run.error.as_ref().or(run.skipped.as_ref());
    sqlx::query(
        "INSERT INTO runs (id, repo, forge, pipeline, file, event, git_ref, sha, status, error, \
         event_json, delivery_id, created_at, finished_at, concurrency_group, cancel_on_job_failure) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(&run.id)
    .bind(&run.repo)
    .bind(&run.forge)
    .bind(&run.pipeline)
    .bind(&run.file)
    .bind(&run.event)
    .bind(&run.git_ref)
    .bind(&run.sha)
    .bind(status)
    .bind(error.map(String::as_str))
    .bind(&run.event_json)
    .bind(delivery)
    .bind(now)
    .bind(error.map(|_| now))
    .bind(run.concurrency.as_ref().map(|(g, _)| g.as_str()))
    .bind(run.cancel_on_job_failure as i64)
    .execute(&mut *conn)
    .await?;
    for (position, job) in run.jobs.iter().enumerate() {
        let state = match (&job.skipped, job.needs.is_empty() && !waits) {
            (Some(_), _) => "skipped",
            (None, true) => QUEUED,
            (None, false) => WAITING,
        };
        sqlx::query(
            "INSERT INTO jobs (run_id, job_key, job_id, name, position, needs, labels, has_condition, \
             spec, state, error, queued_at, finished_at, interruptible) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&run.id)
        .bind(&job.key)
        .bind(&job.id)
        .bind(&job.name)
        .bind(position as i64)
        .bind(serde_json::to_string(&job.needs).unwrap_or_default())
        .bind(serde_json::to_string(&job.labels).unwrap_or_default())
        .bind(job.has_condition as i64)
        .bind(job.spec.to_string())
        .bind(state)
        .bind(job.skipped.as_deref())
        .bind((state == QUEUED).then_some(now))
        .bind((state == "skipped").then_some(now))
        .bind(job.interruptible as i64)
        .execute(&mut *conn)
        .await?;
    }
    if run.error.is_none() {
        supersede(conn, run).await?;
        advance(conn, &run.id).await?;
    }
    Ok(())
}

/// Appends `data` at byte `offset` of a running attempt's log (see [`Store::append_log`]).
async fn append_in(
    conn: &mut AnyConnection,
    job: &crate::protocol::JobRef,
    offset: u64,
    data: &str,
) -> Result<u64> {
    let row = sqlx::query(
        "SELECT log_length FROM jobs WHERE run_id = $1 AND job_key = $2 AND attempt = $3 \
         AND lease_token = $4 AND state = 'running'",
    )
    .bind(&job.run_id)
    .bind(&job.job_key)
    .bind(job.attempt)
    .bind(&job.lease_token)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::Conflict("the lease is no longer held by this attempt".into()))?;
    let length = row.try_get::<i64, _>(0)? as u64;
    let end = offset + data.len() as u64;
    if offset > length {
        return Err(StoreError::LogGap {
            stored: length,
            offset,
        });
    }
    if end <= length {
        return Ok(length); // already stored
    }
    let Some(tail) = data.get((length - offset) as usize..) else {
        return Err(StoreError::Conflict(
            "the chunk overlaps the stored log inside a character".into(),
        ));
    };
    sqlx::query(
        "INSERT INTO logs (run_id, job_key, attempt, start_at, data) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&job.run_id)
    .bind(&job.job_key)
    .bind(job.attempt)
    .bind(length as i64)
    .bind(tail)
    .execute(&mut *conn)
    .await?;
    let done = sqlx::query(
        "UPDATE jobs SET log_length = $1 WHERE run_id = $2 AND job_key = $3 AND attempt = $4 AND log_length = $5",
    )
    .bind(end as i64)
    .bind(&job.run_id)
    .bind(&job.job_key)
    .bind(job.attempt)
    .bind(length as i64)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict("the log changed concurrently".into()));
    }
    Ok(end)
}

/// Cancels a run inside a transaction (see [`Store::cancel_run`]).
async fn cancel_in(conn: &mut AnyConnection, run_id: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE runs SET cancel_requested = 1 WHERE id = $1 AND status IN ('queued', 'running', 'pending')",
    )
    .bind(run_id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    let rows = sqlx::query(
        "SELECT job_key FROM jobs WHERE run_id = $1 AND state IN ('waiting', 'queued')",
    )
    .bind(run_id)
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let key: String = r.try_get(0)?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', finished_at = $1 WHERE run_id = $2 AND job_key = $3 \
             AND state IN ('waiting', 'queued')",
        )
        .bind(now_ms())
        .bind(run_id)
        .bind(&key)
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 1 {}
    }
    advance(conn, run_id).await?;
    Ok(true)
}

/// A new run in a concurrency group cancels the group's older unfinished runs: all of them
/// (GitHub `cancel-in-progress: true`), or those where no started job is
/// non-interruptible (GitLab's `auto_cancel: on_new_commit: conservative`).
async fn supersede(conn: &mut AnyConnection, run: &NewRun) -> Result<()> {
    let Some((group, policy)) = &run.concurrency else {
        return Ok(());
    };
    let older = sqlx::query(
        "SELECT id, status FROM runs WHERE concurrency_group = $1 AND id <> $2 \
         AND status IN ('queued', 'running', 'pending') ORDER BY created_at DESC, id DESC",
    )
    .bind(group)
    .bind(&run.id)
    .fetch_all(&mut *conn)
    .await?;
    // Waiting runs seen so far, newest first (the new run is one of the queue's places).
    let mut waiting = 0;
    for row in older {
        let id: String = row.try_get(0)?;
        let status: String = row.try_get(1)?;
        let cancel = match policy {
            Supersede::CancelInProgress => true,
            Supersede::Interruptible => {
                let blocking = sqlx::query(
                    "SELECT COUNT(*) FROM jobs WHERE run_id = $1 AND started_at IS NOT NULL AND interruptible = 0",
                )
                .bind(&id)
                .fetch_one(&mut *conn)
                .await?
                .try_get::<i64, _>(0)?;
                blocking == 0
            }
            Supersede::InterruptibleJobs => {
                cancel_interruptible_jobs(conn, &id).await?;
                false
            }
            // `queue: single`: the newer replaces an older waiting one; `queue: max`: the
            // oldest beyond the limit goes.
            Supersede::Queue(limit) => {
                if status == PENDING {
                    waiting += 1;
                }
                status == PENDING && waiting >= *limit
            }
        };
        if cancel {
            tracing::info!(run_id = %id, by = %run.id, %group, "superseded by a newer run");
            cancel_in(conn, &id).await?;
        }
    }
    Ok(())
}

/// GitLab `on_new_commit: interruptible`: the run's unfinished `interruptible` jobs stop
/// (those not started at once, running ones at their next heartbeat); the rest run on.
async fn cancel_interruptible_jobs(conn: &mut AnyConnection, run_id: &str) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET state = 'cancelled', finished_at = $1 WHERE run_id = $2 \
         AND interruptible = 1 AND state IN ('waiting', 'queued')",
    )
    .bind(now_ms())
    .bind(run_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE jobs SET cancel_requested = 1 WHERE run_id = $1 AND interruptible = 1 \
         AND state = 'running'",
    )
    .bind(run_id)
    .execute(&mut *conn)
    .await?;
    advance(conn, run_id).await?;
    Ok(())
}

/// GitLab `on_job_failure: all`: a job that failed (not allowed to) cancels its run when
/// the run asks for it.
async fn cancel_on_failure(conn: &mut AnyConnection, c: &crate::protocol::Complete) -> Result<()> {
    if c.result != Conclusion::Failure || c.allowed_failure {
        return Ok(());
    }
    let asks = sqlx::query("SELECT cancel_on_job_failure FROM runs WHERE id = $1")
        .bind(&c.job.run_id)
        .fetch_one(&mut *conn)
        .await?
        .try_get::<i64, _>(0)?;
    if asks != 0 {
        tracing::info!(run_id = %c.job.run_id, job = %c.job.job_key, "a failed job cancels the run");
        cancel_in(conn, &c.job.run_id).await?;
    }
    Ok(())
}

/// Moves the run's DAG forward: a waiting job whose needs have all finished is queued, or
/// skipped at once when it has no `if:` and a need did not succeed (what `success()` says;
/// jobs with an `if:` go to a runner, which evaluates it with the needs' results). A run
/// whose jobs have all finished gets its result.
async fn advance(conn: &mut AnyConnection, run_id: &str) -> Result<usize> {
    // Most completions change nothing else: no job is waiting, and others still run.
    // (Two index probes, not a scan: runs can have thousands of jobs.)
    let probes = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE run_id = $1 AND state = 'waiting' LIMIT 1) w), \
         (SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE run_id = $1 AND state IN ('queued', 'running') LIMIT 1) o)",
    )
    .bind(run_id)
    .fetch_one(&mut *conn)
    .await?;
    let (waiting, open): (i64, i64) = (probes.try_get(0)?, probes.try_get(1)?);
    if waiting == 0 && open > 0 {
        return Ok(0);
    }
    let rows = sqlx::query(
        "SELECT job_key, needs, state, has_condition, allowed_failure FROM jobs WHERE run_id = $1 ORDER BY position",
    )
    .bind(run_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut states: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut jobs = Vec::new();
    for r in &rows {
        let key: String = r.try_get(0)?;
        let state: String = r.try_get(2)?;
        states.insert(key.clone(), state.clone());
        jobs.push((
            key,
            json_list(&r.try_get::<String, _>(1)?),
            state,
            r.try_get::<i64, _>(3)? != 0,
            r.try_get::<i64, _>(4)? != 0,
        ));
    }
    let run =
        sqlx::query("SELECT cancel_requested, status, concurrency_group, cancel_on_job_failure FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_one(&mut *conn)
            .await?;
    let cancel_requested = run.try_get::<i64, _>(0)? != 0;
    let cancels_on_failure = run.try_get::<i64, _>(3)? != 0;
    let group: Option<String> = run.try_get(2)?;
    // A run waiting for its concurrency group starts when the group's running one ends.
    if run.try_get::<String, _>(1)? == PENDING && !cancel_requested {
        return Ok(0);
    }
    let mut queued = 0;
    // Dependents are decided in order, so a chain of skips resolves in one pass.
    for (key, needs, state, has_condition, _) in &mut jobs {
        if state != WAITING {
            continue;
        }
        let need_states: Vec<&str> = needs
            .iter()
            .map(|n| states.get(n).map_or("skipped", String::as_str))
            .collect();
        if !need_states.iter().all(|s| is_terminal(s)) {
            continue;
        }
        let all_succeeded = need_states.iter().all(|s| *s == "success");
        let next = if cancel_requested {
            "cancelled"
        } else if all_succeeded || *has_condition {
            QUEUED
        } else {
            "skipped"
        };
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, queued_at = $2, finished_at = $3 WHERE run_id = $4 AND job_key = $5 AND state = 'waiting'",
        )
        .bind(next)
        .bind(now)
        .bind((next != QUEUED).then_some(now))
        .bind(run_id)
        .bind(&*key)
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 1 {
            queued += usize::from(next == QUEUED);
            *state = next.to_string();
            states.insert(key.clone(), next.to_string());
        }
    }
    if jobs.iter().all(|(_, _, s, _, _)| is_terminal(s)) {
        let failed = jobs
            .iter()
            .any(|(_, _, s, _, allowed)| s == "failure" && !allowed);
        let cancelled = jobs.iter().any(|(_, _, s, _, _)| s == "cancelled");
        // GitLab: a pipeline a failed job cancelled (`on_job_failure: all`) is `failed`.
        let status = if cancel_requested && !(failed && cancels_on_failure) {
            "cancelled"
        } else if failed {
            "failed"
        } else if cancelled {
            "cancelled"
        } else {
            "success"
        };
        let done = sqlx::query(
            "UPDATE runs SET status = $1, finished_at = $2 WHERE id = $3 AND status IN ('queued', 'running', 'pending')",
        )
        .bind(status)
        .bind(now_ms())
        .bind(run_id)
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 1
            && let Some(group) = group
        {
            queued += Box::pin(start_pending(conn, &group)).await?;
        }
    }
    Ok(queued)
}

/// Whether a run of the concurrency group is queued or running.
async fn group_busy(conn: &mut AnyConnection, group: &str) -> Result<bool> {
    let row = sqlx::query(
        "SELECT 1 FROM runs WHERE concurrency_group = $1 AND status IN ('queued', 'running') LIMIT 1",
    )
    .bind(group)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.is_some())
}

/// Starts the run waiting in a concurrency group once nothing else in it is unfinished.
async fn start_pending(conn: &mut AnyConnection, group: &str) -> Result<usize> {
    if group_busy(conn, group).await? {
        return Ok(0);
    }
    let Some(next) = sqlx::query(
        "SELECT id FROM runs WHERE concurrency_group = $1 AND status = 'pending' ORDER BY created_at LIMIT 1",
    )
    .bind(group)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(0);
    };
    let id: String = next.try_get(0)?;
    let done =
        sqlx::query("UPDATE runs SET status = 'queued' WHERE id = $1 AND status = 'pending'")
            .bind(&id)
            .execute(&mut *conn)
            .await?;
    if done.rows_affected() == 0 {
        return Ok(0);
    }
    advance(conn, &id).await
}

/// The lease's data for a claimed job, and its run's status.
/// The results and outputs of a leased job's needs.
async fn prior_results(
    conn: &mut AnyConnection,
    run_id: &str,
    needs: Vec<String>,
) -> Result<Vec<PriorResult>> {
    let mut prior = Vec::new();
    for need in needs {
        let Some(r) = sqlx::query(
            "SELECT job_id, state, outputs FROM jobs WHERE run_id = $1 AND job_key = $2",
        )
        .bind(run_id)
        .bind(&need)
        .fetch_optional(&mut *conn)
        .await?
        else {
            continue;
        };
        let state: String = r.try_get(1)?;
        prior.push(PriorResult {
            key: need,
            id: r.try_get(0)?,
            result: Conclusion::parse(&state).unwrap_or(Conclusion::Skipped),
            outputs: r
                .try_get::<Option<String>, _>(2)?
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default(),
        });
    }
    Ok(prior)
}
