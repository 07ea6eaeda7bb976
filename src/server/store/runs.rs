//! Runs and their jobs in the store: created with their DAG, moved forward as jobs finish
//! (`advance`), cancelled, superseded in their concurrency group, and run again.

use super::gates::{Gate, at_gate, ready_state};
use super::{
    PENDING, QUEUED, Result, Store, StoreError, WAITING, is_terminal, json_list, now_ms, random_hex,
};
use crate::engine::{Conclusion, PriorResult};
use crate::spec::gitlab::inputs::InputForm;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

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
    /// A person plays or approves it before it is queued.
    pub gate: Option<Gate>,
    /// The job inputs it declares (a play may set them).
    pub inputs: Vec<InputForm>,
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
    /// The commit's title (its message's first line).
    pub title: Option<String>,
    /// Why the planner started it (the trigger that matched).
    pub reason: Option<String>,
    /// The pipeline version its definitions are.
    pub version_id: Option<String>,
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

impl Store {
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
             cancel_on_job_failure, title, reason, version_id \
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
             allowed_failure, outputs, interruptible, gate, inputs, played \
             FROM jobs WHERE run_id = $1 ORDER BY position",
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
             created_at, concurrency_group, cancel_on_job_failure, title, reason, version_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', $9, $10, $11, $12, $13, $14, $15)",
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
        .bind(run.try_get::<Option<String>, _>(11)?)
        .bind(run.try_get::<Option<String>, _>(12)?)
        .bind(run.try_get::<Option<String>, _>(13)?)
        .execute(&mut *tx)
        .await?;
        for (position, r) in rows.iter().enumerate() {
            let key: String = r.try_get(0)?;
            let needs = json_list(&r.try_get::<String, _>(3)?);
            let runs_again = again.contains(&key);
            let gate: Option<String> = r.try_get(12)?;
            let state = match (runs_again, needs.is_empty()) {
                (true, true) => ready_state(gate.as_deref()).to_string(),
                (true, false) => WAITING.to_string(),
                (false, _) => r.try_get(7)?,
            };
            sqlx::query(
                "INSERT INTO jobs (run_id, job_key, job_id, name, position, needs, labels, has_condition, \
                 spec, state, error, allowed_failure, outputs, interruptible, queued_at, finished_at, \
                 gate, inputs, played) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                 $18, $19)",
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
            .bind(&gate)
            .bind(r.try_get::<Option<String>, _>(13)?)
            // A job run again is played (or approved) again.
            .bind(if runs_again { None } else { r.try_get::<Option<String>, _>(14)? })
            .execute(&mut *tx)
            .await?;
        }
        advance(&mut tx, &new_id).await?;
        tx.commit().await?;
        Ok(new_id)
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
}

pub(super) async fn insert_run(
    conn: &mut AnyConnection,
    run: &NewRun,
    delivery: Option<&str>,
) -> Result<()> {
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
         event_json, delivery_id, created_at, finished_at, concurrency_group, cancel_on_job_failure, \
         title, reason, version_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
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
    .bind(run.title.as_deref())
    .bind(run.reason.as_deref())
    .bind(run.version_id.as_deref())
    .execute(&mut *conn)
    .await?;
    for (position, job) in run.jobs.iter().enumerate() {
        let gate = job.gate.as_ref().map(Gate::stored);
        let state = match (&job.skipped, job.needs.is_empty() && !waits) {
            (Some(_), _) => "skipped",
            (None, true) => ready_state(gate.as_deref()),
            (None, false) => WAITING,
        };
        sqlx::query(
            "INSERT INTO jobs (run_id, job_key, job_id, name, position, needs, labels, has_condition, \
             spec, state, error, queued_at, finished_at, interruptible, gate, inputs) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
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
        .bind(gate)
        .bind((!job.inputs.is_empty()).then(|| serde_json::to_string(&job.inputs).unwrap_or_default()))
        .execute(&mut *conn)
        .await?;
    }
    if run.error.is_none() {
        supersede(conn, run).await?;
        advance(conn, &run.id).await?;
    }
    Ok(())
}

/// Cancels a run inside a transaction (see [`Store::cancel_run`]).
pub(super) async fn cancel_in(conn: &mut AnyConnection, run_id: &str) -> Result<bool> {
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
        "SELECT job_key FROM jobs WHERE run_id = $1 AND state IN ('waiting', 'queued', 'manual', 'approval')",
    )
    .bind(run_id)
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let key: String = r.try_get(0)?;
        sqlx::query(
            "UPDATE jobs SET state = 'cancelled', finished_at = $1 WHERE run_id = $2 AND job_key = $3 \
             AND state IN ('waiting', 'queued', 'manual', 'approval')",
        )
        .bind(now_ms())
        .bind(run_id)
        .bind(&key)
        .execute(&mut *conn)
        .await?;
    }
    advance(conn, run_id).await?;
    Ok(true)
}

/// A new run in a concurrency group cancels the group's older unfinished runs: all of them
/// (GitHub `cancel-in-progress: true`), or those where no started job is
/// non-interruptible (GitLab's `auto_cancel: on_new_commit: conservative`).
pub(super) async fn supersede(conn: &mut AnyConnection, run: &NewRun) -> Result<()> {
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
pub(super) async fn cancel_on_failure(
    conn: &mut AnyConnection,
    c: &crate::protocol::Complete,
) -> Result<()> {
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
pub(super) async fn advance(conn: &mut AnyConnection, run_id: &str) -> Result<usize> {
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
        "SELECT job_key, needs, state, has_condition, allowed_failure, gate FROM jobs WHERE run_id = $1 ORDER BY position",
    )
    .bind(run_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut states: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut jobs = Vec::new();
    for r in &rows {
        let job = DagJob {
            key: r.try_get(0)?,
            needs: json_list(&r.try_get::<String, _>(1)?),
            state: r.try_get(2)?,
            has_condition: r.try_get::<i64, _>(3)? != 0,
            allowed_failure: r.try_get::<i64, _>(4)? != 0,
            gate: r.try_get(5)?,
        };
        states.insert(job.key.clone(), job.state.clone());
        jobs.push(job);
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
    for job in &mut jobs {
        if job.state != WAITING {
            continue;
        }
        let need_states: Vec<&str> = job
            .needs
            .iter()
            .map(|n| states.get(n).map_or("skipped", String::as_str))
            .collect();
        if !need_states.iter().all(|s| is_terminal(s)) {
            continue;
        }
        let all_succeeded = need_states.iter().all(|s| *s == "success");
        let next = if cancel_requested {
            "cancelled"
        } else if all_succeeded || job.has_condition {
            ready_state(job.gate.as_deref())
        } else {
            "skipped"
        };
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, queued_at = $2, finished_at = $3 WHERE run_id = $4 AND job_key = $5 AND state = 'waiting'",
        )
        .bind(next)
        // A job at its gate is queued when a person starts it.
        .bind((!at_gate(next)).then_some(now))
        .bind(is_terminal(next).then_some(now))
        .bind(run_id)
        .bind(&job.key)
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 1 {
            queued += usize::from(next == QUEUED);
            job.state = next.to_string();
            states.insert(job.key.clone(), next.to_string());
        }
    }
    if finished(&jobs) {
        let failed = jobs
            .iter()
            .any(|j| j.state == "failure" && !j.allowed_failure);
        let cancelled = jobs.iter().any(|j| j.state == "cancelled");
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

/// A job as [`advance`] sees it.
struct DagJob {
    key: String,
    needs: Vec<String>,
    state: String,
    has_condition: bool,
    allowed_failure: bool,
    gate: Option<String>,
}

/// Whether the run is over: every job finished, or left waiting only for a manual job that
/// may fail and was not played (GitLab's pipeline passes without it; what needs it waits).
/// A blocking manual job or a pending approval keeps the run open.
fn finished(jobs: &[DagJob]) -> bool {
    let mut parked: std::collections::HashSet<&str> = jobs
        .iter()
        .filter(|j| j.state == super::gates::MANUAL && j.gate.as_deref() == Some("manual"))
        .map(|j| j.key.as_str())
        .collect();
    loop {
        let before = parked.len();
        for j in jobs.iter().filter(|j| j.state == WAITING) {
            if j.needs.iter().any(|n| parked.contains(n.as_str())) {
                parked.insert(&j.key);
            }
        }
        if parked.len() == before {
            break;
        }
    }
    jobs.iter()
        .all(|j| is_terminal(&j.state) || parked.contains(j.key.as_str()))
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
pub(super) async fn prior_results(
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
