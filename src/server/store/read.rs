//! Read models of the store: run lists, one run with its jobs, logs, and the counts the
//! metrics show.

use super::{Page, Result, Store, is_terminal, json_list};
use sqlx::Row;
use sqlx::any::AnyRow;

impl Store {
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
