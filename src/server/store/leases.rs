//! Leases in the store: a runner claims a queued job (fenced by attempt and token), keeps it
//! by heartbeats, streams its log, and completes it; leases not renewed expire.

use super::runs::{advance, cancel_on_failure, prior_results};
use super::{Backend, QUEUED, Result, Store, StoreError, json_list, now_ms, random_hex};
use crate::engine::{Conclusion, PriorResult};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::sync::Arc;

/// The run's part of a lease.
pub(super) struct RunOfLease {
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
     RETURNING run_id, job_key, name, attempt, spec, needs, queued_at, played";

const CLAIM_POSTGRES: &str = "SELECT * FROM tess_claim($1, $2, $3, $4, $5)";

/// Stores a result with the log's tail ($10 offset, $11 text, $12 end; all NULL when there
/// is none) when the tail starts where the stored log ends; returns the job's times,
/// whether the run has waiting jobs or other open ones (as before this statement), and —
/// only when the result was stored and $15 names a runner — the claim of its next job
/// (`tess_claim`'s columns, NULL when none is queued).
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
     AND job_key <> $7), next.* FROM done LEFT JOIN LATERAL \
     (SELECT * FROM tess_claim($15, $16, $17, $18, $19) WHERE $15::text IS NOT NULL) next ON true";

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
    /// A played manual job: the job inputs it was given.
    pub played: Option<indexmap::IndexMap<String, String>>,
}

/// A runner's labels as the claims match them: a JSON list in lower case.
fn claim_labels(labels: &[String]) -> String {
    let lower: Vec<String> = labels.iter().map(|l| l.to_ascii_lowercase()).collect();
    serde_json::to_string(&lower).unwrap_or_default()
}

/// Who asks for a job: the runner, its labels and how long its lease lasts.
pub struct NextClaim<'a> {
    pub runner_id: &'a str,
    pub labels: &'a [String],
    pub ttl_ms: i64,
}

/// A stored result.
pub struct Completed {
    /// How long the attempt ran (ms); `None` for a repeated completion.
    pub duration: Option<i64>,
    /// How many jobs it queued.
    pub queued: usize,
    /// The next job's claim when it was made with the result (`Some(None)`: none queued).
    pub next: Option<Option<Claimed>>,
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

impl Store {
    /// Leases the oldest queued job whose labels the runner has (compare-and-set on the
    /// job's state, so two pollers on two replicas never get the same attempt).
    pub async fn claim(&self, next: &NextClaim<'_>) -> Result<Option<Claimed>> {
        let mut conn = self.pool.acquire().await?;
        self.claim_on(&mut conn, next).await
    }

    /// [`Store::claim`] on `conn` (in a completion's transaction, say).
    async fn claim_on(
        &self,
        conn: &mut AnyConnection,
        &NextClaim {
            runner_id,
            labels,
            ttl_ms,
        }: &NextClaim<'_>,
    ) -> Result<Option<Claimed>> {
        // The first queued job whose labels the runner has, taken in one statement: a
        // compare-and-set on its state (the outbox row is the trigger's). On PostgreSQL
        // rows another poller is taking are skipped, not waited for. Should reading the
        // rest of the lease fail, the lease expires and the job is retried.
        let now = now_ms();
        let token = random_hex(16);
        let runner_labels = claim_labels(labels);
        let claim = match self.backend {
            Backend::Postgres => CLAIM_POSTGRES,
            Backend::Sqlite => CLAIM_SQLITE,
        };
        let taken = sqlx::query(claim)
            .bind(runner_id)
            .bind(&token)
            .bind(now + ttl_ms)
            .bind(now)
            .bind(&runner_labels)
            .fetch_optional(&mut *conn)
            .await?;
        match taken {
            Some(job) => Ok(Some(self.lease_of(conn, &job, 0, token).await?)),
            None => Ok(None),
        }
    }

    /// A taken job's lease: the job's row as the claim returned it (from column `at`), its
    /// run and needs.
    async fn lease_of(
        &self,
        conn: &mut AnyConnection,
        job: &AnyRow,
        at: usize,
        lease_token: String,
    ) -> Result<Claimed> {
        let run_id: String = job.try_get(at)?;
        let run = self.run_of_lease(conn, &run_id).await?;
        let needs = json_list(&job.try_get::<String, _>(at + 5)?);
        Ok(Claimed {
            needs: prior_results(conn, &run_id, needs).await?,
            run_id,
            job_key: job.try_get(at + 1)?,
            job_name: job.try_get(at + 2)?,
            attempt: job.try_get(at + 3)?,
            lease_token,
            repo: run.repo.clone(),
            forge: run.forge.clone(),
            file: run.file.clone(),
            sha: run.sha.clone(),
            event_json: run.event_json.clone(),
            spec: serde_json::from_str(&job.try_get::<String, _>(at + 4)?).unwrap_or_default(),
            queued_at: job.try_get::<Option<i64>, _>(at + 6)?.unwrap_or_default(),
            played: job
                .try_get::<Option<String>, _>(at + 7)?
                .and_then(|text| serde_json::from_str(&text).ok()),
        })
    }

    /// The run's part of a lease; the first lease of a run also marks it running.
    async fn run_of_lease(&self, tx: &mut AnyConnection, run_id: &str) -> Result<Arc<RunOfLease>> {
        let cached = {
            let runs = self
                .leased_runs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
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
        let mut runs = self
            .leased_runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
    /// is refused) and advances the run's DAG in the same transaction; the runner's `next`
    /// job is claimed with it (SQLite: in that transaction; PostgreSQL: in the statement).
    pub async fn complete(
        &self,
        c: &crate::protocol::Complete,
        next: Option<&NextClaim<'_>>,
    ) -> Result<Completed> {
        if self.backend == Backend::Postgres
            && let Some(done) = self.complete_at_once(c, next).await?
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
                Some(state) if state == c.result.as_str() => Ok(Completed {
                    duration: None,
                    queued: 0,
                    next: None,
                }),
                _ => Err(StoreError::Conflict(
                    "this attempt no longer holds the job (its lease expired or it was retried)"
                        .into(),
                )),
            };
        };
        cancel_on_failure(&mut tx, c).await?;
        let queued = advance(&mut tx, &job.run_id).await?;
        let duration = took(&times)?;
        let next = match next {
            Some(next) => Some(self.claim_on(&mut tx, next).await?),
            None => None,
        };
        tx.commit().await?;
        Ok(Completed {
            duration,
            queued,
            next,
        })
    }

    /// PostgreSQL's usual completion in one statement (one round trip instead of five):
    /// the log's tail appended where the stored log ends, the result stored, whether the
    /// run may need advancing, and the runner's next job claimed. `None` when the careful
    /// path must decide (a resend, a stale attempt, a tail that does not start where the
    /// log ends).
    async fn complete_at_once(
        &self,
        c: &crate::protocol::Complete,
        next: Option<&NextClaim<'_>>,
    ) -> Result<Option<Completed>> {
        let job = &c.job;
        let token = random_hex(16);
        let now = now_ms();
        let labels = next.map(|n| claim_labels(n.labels));
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
            .bind(next.map(|n| n.runner_id))
            .bind(&token)
            .bind(next.map(|n| now + n.ttl_ms))
            .bind(now)
            .bind(labels)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let duration = took(&row)?;
        let claimed = match row.try_get::<Option<String>, _>(4)? {
            Some(_) => {
                let mut conn = self.pool.acquire().await?;
                Some(self.lease_of(&mut conn, &row, 4, token).await?)
            }
            None => None,
        };
        // The statement saw the run as it was before this job finished; this job aside,
        // nothing waits and something still runs: no other job changes now.
        let (waiting, others_open): (bool, bool) = (row.try_get(2)?, row.try_get(3)?);
        let failed = c.result == Conclusion::Failure && !c.allowed_failure;
        let queued = if !waiting && others_open && !failed {
            0
        } else {
            let mut tx = self.pool.begin().await?;
            cancel_on_failure(&mut tx, c).await?;
            let queued = advance(&mut tx, &job.run_id).await?;
            tx.commit().await?;
            queued
        };
        Ok(Some(Completed {
            duration,
            queued,
            next: next.map(|_| claimed),
        }))
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
