//! Read models of the store: run lists, one run with its jobs, logs, and the counts the
//! metrics show.

use super::{Page, Result, Store, is_terminal, json_list};
use crate::rest::{Job, RunDetail, RunSummary};
use sqlx::Row;

impl Store {
    pub async fn runs(
        &self,
        repo: Option<&str>,
        status: Option<&str>,
        git_ref: Option<&str>,
        page: &Page,
        visible: Option<&[String]>,
    ) -> Result<Vec<RunSummary>> {
        // `visible`: only these repositories (a visitor sees the public ones).
        let only = visible.map_or(String::new(), |repos| {
            let marks: Vec<String> = (0..repos.len()).map(|i| format!("${}", i + 7)).collect();
            format!(
                "AND repo IN ({}) ",
                if marks.is_empty() {
                    "NULL".into()
                } else {
                    marks.join(", ")
                }
            )
        });
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE ($1 IS NULL OR repo = $1) \
             AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR git_ref = $3) \
             AND ($5 IS NULL OR created_at < $5 OR (created_at = $5 AND id < $6)) {only}\
             ORDER BY created_at DESC, id DESC LIMIT $4",
        );
        let mut query = sqlx::query_as::<_, RunSummary>(&sql)
            .bind(repo)
            .bind(status)
            .bind(git_ref)
            .bind(page.limit)
            .bind(page.before.as_ref().map(|c| c.0))
            .bind(page.before.as_ref().map(|c| c.1.clone()));
        for name in visible.unwrap_or_default() {
            query = query.bind(name);
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    pub async fn run(&self, id: &str) -> Result<Option<RunDetail>> {
        let run = sqlx::query_as::<_, RunSummary>(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(run) = run else { return Ok(None) };
        let jobs = sqlx::query_as::<_, JobRow>(
            "SELECT job_key, job_id, name, needs, labels, state, attempt, runner_id, error, \
             queued_at, started_at, finished_at, allowed_failure, outputs, steps, gate, inputs, played \
             FROM jobs \
             WHERE run_id = $1 ORDER BY position",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(RunDetail {
            run,
            jobs: jobs.into_iter().map(Job::from).collect(),
        }))
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

const RUN_COLUMNS: &str = "id, repo, forge, pipeline, file, event, git_ref, sha, status, error, created_at, finished_at, \
     title, reason, version_id";

/// A `jobs` row as stored (JSON lists and maps as text, flags as integers).
#[derive(sqlx::FromRow)]
struct JobRow {
    job_key: String,
    job_id: String,
    name: String,
    needs: String,
    labels: String,
    state: String,
    attempt: i64,
    runner_id: Option<String>,
    error: Option<String>,
    queued_at: Option<i64>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    allowed_failure: i64,
    outputs: Option<String>,
    steps: Option<String>,
    gate: Option<String>,
    inputs: Option<String>,
    played: Option<String>,
}

impl From<JobRow> for Job {
    fn from(r: JobRow) -> Job {
        let json = |text: Option<String>| {
            text.and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        };
        let gate = r.gate.as_deref().and_then(super::Gate::parse);
        Job {
            key: r.job_key,
            id: r.job_id,
            name: r.name,
            needs: json_list(&r.needs),
            labels: json_list(&r.labels),
            state: r.state,
            attempt: r.attempt,
            runner: r.runner_id,
            error: r.error,
            queued_at: r.queued_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            allowed_failure: r.allowed_failure != 0,
            outputs: json(r.outputs),
            steps: json(r.steps).unwrap_or_else(|| serde_json::json!([])),
            waiting_reason: None,
            gate: gate.as_ref().map(|g| g.kind().to_string()),
            environment: match gate {
                Some(super::Gate::Approval(environment)) => Some(environment),
                _ => None,
            },
            inputs: r
                .inputs
                .and_then(|text| serde_json::from_str(&text).ok())
                .unwrap_or_default(),
            played: r.played.and_then(|text| serde_json::from_str(&text).ok()),
        }
    }
}
