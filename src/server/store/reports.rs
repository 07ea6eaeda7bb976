//! The forge-report outbox in the store: states due for the forge (one per status, the
//! newest), claimed by one reporter, and what each delivery attempt gave.

use super::{Backend, Page, Result, Store, now_ms};
use sqlx::Row;

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

/// A `due_reports` row as the query returns it (JSON as text, flags as integers).
#[derive(sqlx::FromRow)]
struct DueRow {
    id: i64,
    run_id: String,
    job_key: Option<String>,
    state: String,
    attempts: i64,
    repo: String,
    forge: String,
    pipeline: String,
    sha: String,
    git_ref: String,
    run_created_at: i64,
    run_finished_at: Option<i64>,
    job_name: Option<String>,
    job_started_at: Option<i64>,
    job_finished_at: Option<i64>,
    allowed_failure: Option<i64>,
    run_error: Option<String>,
    annotations: Option<String>,
    check_run_id: Option<i64>,
    merge_request_event: Option<String>,
}

impl From<DueRow> for DueReport {
    fn from(r: DueRow) -> DueReport {
        DueReport {
            id: r.id,
            run_id: r.run_id,
            job_key: r.job_key,
            state: r.state,
            attempts: r.attempts,
            repo: r.repo,
            forge: r.forge,
            pipeline: r.pipeline,
            sha: r.sha,
            git_ref: r.git_ref,
            started_at: r.job_started_at.or(Some(r.run_created_at)),
            finished_at: r.job_finished_at.or(r.run_finished_at),
            job_name: r.job_name,
            allowed_failure: r.allowed_failure.unwrap_or(0) != 0,
            run_error: r.run_error,
            annotations: r
                .annotations
                .and_then(|a| serde_json::from_str(&a).ok())
                .unwrap_or_default(),
            check_run_id: r.check_run_id,
            forge_pipeline: r
                .merge_request_event
                .and_then(|e| serde_json::from_str::<crate::trigger::Event>(&e).ok())
                .and_then(|e| e.forge_pipeline),
        }
    }
}

/// `($first, $first+1), ($first+2, $first+3), …`: `n` pairs of parameters.
fn pairs(n: usize, first: usize) -> String {
    (0..n)
        .map(|i| format!("(${}, ${})", first + 2 * i, first + 2 * i + 1))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
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
             r.sha, r.git_ref, r.created_at AS run_created_at, r.finished_at AS run_finished_at, \
             j.name AS job_name, j.started_at AS job_started_at, \
             j.finished_at AS job_finished_at, j.allowed_failure, r.error AS run_error, \
             j.annotations, (SELECT c.check_run_id FROM check_runs c WHERE c.run_id = o.run_id \
             AND c.job_key = COALESCE(o.job_key, '')) AS check_run_id, \
             CASE WHEN r.forge = 'gitlab' AND r.event = 'pull_request' THEN r.event_json END \
             AS merge_request_event \
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
        let mut query = sqlx::query_as::<_, DueRow>(&sql).bind(now).bind(limit);
        for (forge, repo) in reporting {
            query = query.bind(forge).bind(repo);
        }
        // PostgreSQL's statistics lag behind an outbox that grows by thousands of rows a
        // minute; with them it estimated one row and scanned the whole backlog per run
        // (95 ms a call in `benches/scale.py`). Walking the undelivered index in id order
        // and stopping at `limit` is always right here: 1.4 ms on the same rows.
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            for setting in [
                "SET LOCAL enable_sort = off",
                "SET LOCAL enable_bitmapscan = off",
            ] {
                sqlx::query(setting).execute(&mut *tx).await?;
            }
        }
        let rows = query.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        // All taken at once; what another replica took in between is left to it.
        let ids: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
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
        let due: Vec<DueReport> = rows
            .into_iter()
            .filter(|r| taken.contains(&r.id))
            .map(DueReport::from)
            .collect();
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
    pub async fn undelivered_reports(&self, page: &Page) -> Result<Vec<crate::rest::Report>> {
        Ok(sqlx::query_as::<_, crate::rest::Report>(
            "SELECT id, run_id, job_key, state, attempts, result, last_error AS error, \
             next_attempt_at, created_at FROM outbox WHERE (delivered_at IS NULL OR result IN ('refused', 'failed')) \
             AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $1",
        )
        .bind(page.limit)
        .bind(page.before.as_ref().map(|c| c.0))
        .fetch_all(&self.pool)
        .await?)
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
}
