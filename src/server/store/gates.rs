//! Jobs a person starts: a GitLab manual job waits in `manual` until played (with its job
//! inputs), a deployment to a protected environment in `approval` until approved or declined.

use super::runs::advance;
use super::{QUEUED, Result, Store, StoreError, now_ms};
use crate::spec::gitlab::inputs::InputForm;
use indexmap::IndexMap;
use sqlx::{AnyConnection, Row};

/// Who must start a job before it is queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// GitLab `when: manual` that may fail: the pipeline finishes without it.
    Manual,
    /// GitLab `when: manual` with `allow_failure: false`: the pipeline waits for it.
    ManualBlocking,
    /// A deployment to this protected environment waits for an approval.
    Approval(String),
}

pub(super) const MANUAL: &str = "manual";
pub(super) const APPROVAL: &str = "approval";

impl Gate {
    pub(super) fn stored(&self) -> String {
        match self {
            Gate::Approval(environment) => format!("approval:{environment}"),
            other => other.kind().into(),
        }
    }

    /// `manual`, `manual-blocking` or `approval` (the API's `gate`).
    pub fn kind(&self) -> &'static str {
        match self {
            Gate::Manual => "manual",
            Gate::ManualBlocking => "manual-blocking",
            Gate::Approval(_) => "approval",
        }
    }

    pub fn parse(text: &str) -> Option<Gate> {
        Some(match text {
            "manual" => Gate::Manual,
            "manual-blocking" => Gate::ManualBlocking,
            other => Gate::Approval(other.strip_prefix("approval:")?.to_string()),
        })
    }
}

/// The state a job whose needs are met goes to: queued, or waiting at its gate.
pub(super) fn ready_state(gate: Option<&str>) -> &'static str {
    match gate.and_then(Gate::parse) {
        None => QUEUED,
        Some(Gate::Approval(_)) => APPROVAL,
        Some(_) => MANUAL,
    }
}

/// Whether a job in `state` waits for a person.
pub(super) fn at_gate(state: &str) -> bool {
    state == MANUAL || state == APPROVAL
}

impl Store {
    /// Plays a manual job with `inputs` (name → text, checked against its declarations):
    /// it is queued, and a run that had finished without it runs again (as GitLab's does).
    pub async fn play(
        &self,
        run_id: &str,
        job_key: &str,
        inputs: &IndexMap<String, String>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let (state, _, declared) = gate_of(&mut tx, run_id, job_key).await?;
        if state != MANUAL {
            return Err(StoreError::Conflict(format!(
                "job `{job_key}` is {state}, not a manual job waiting to be played"
            )));
        }
        let mut values = serde_json::Map::new();
        for (name, text) in inputs {
            let Some(form) = declared.iter().find(|f| f.name == *name) else {
                let names: Vec<&str> = declared.iter().map(|f| f.name.as_str()).collect();
                return Err(StoreError::Invalid(format!(
                    "job `{job_key}` has no input `{name}` (its inputs: {})",
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                )));
            };
            form.value(text)
                .map_err(|why| StoreError::Invalid(format!("input `{name}`: {why}")))?;
            values.insert(name.clone(), serde_json::Value::String(text.clone()));
        }
        reopen(&mut tx, run_id).await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'queued', played = $1, queued_at = $2 \
             WHERE run_id = $3 AND job_key = $4 AND state = 'manual'",
        )
        .bind(serde_json::Value::Object(values).to_string())
        .bind(now_ms())
        .bind(run_id)
        .bind(job_key)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "job `{job_key}` was played already"
            )));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Approves (the job is queued) or declines (it fails, as GitHub fails a rejected
    /// deployment, and what needs it is skipped) a job waiting for an approval.
    pub async fn review(&self, run_id: &str, job_key: &str, approve: bool) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let (state, gate, _) = gate_of(&mut tx, run_id, job_key).await?;
        let environment = match gate {
            Some(Gate::Approval(environment)) if state == APPROVAL => environment,
            _ => {
                return Err(StoreError::Conflict(format!(
                    "job `{job_key}` is {state}, not waiting for an approval"
                )));
            }
        };
        let now = now_ms();
        let done = if approve {
            sqlx::query(
                "UPDATE jobs SET state = 'queued', queued_at = $1 \
                 WHERE run_id = $2 AND job_key = $3 AND state = 'approval'",
            )
            .bind(now)
            .bind(run_id)
            .bind(job_key)
            .execute(&mut *tx)
            .await?
        } else {
            sqlx::query(
                "UPDATE jobs SET state = 'failure', error = $1, finished_at = $2 \
                 WHERE run_id = $3 AND job_key = $4 AND state = 'approval'",
            )
            .bind(format!("the deployment to `{environment}` was rejected"))
            .bind(now)
            .bind(run_id)
            .bind(job_key)
            .execute(&mut *tx)
            .await?
        };
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "job `{job_key}` was reviewed already"
            )));
        }
        advance(&mut tx, run_id).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// A job's state, gate and declared inputs; `NotFound` without the job.
async fn gate_of(
    conn: &mut AnyConnection,
    run_id: &str,
    job_key: &str,
) -> Result<(String, Option<Gate>, Vec<InputForm>)> {
    let row =
        sqlx::query("SELECT state, gate, inputs FROM jobs WHERE run_id = $1 AND job_key = $2")
            .bind(run_id)
            .bind(job_key)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(format!("run `{run_id}` has no job `{job_key}`"))
            })?;
    let gate: Option<String> = row.try_get(1)?;
    let inputs: Option<String> = row.try_get(2)?;
    Ok((
        row.try_get(0)?,
        gate.as_deref().and_then(Gate::parse),
        inputs
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default(),
    ))
}

/// A finished run gets a played job: it is running again. A cancelled one is not reopened.
async fn reopen(conn: &mut AnyConnection, run_id: &str) -> Result<()> {
    let row = sqlx::query("SELECT status, cancel_requested FROM runs WHERE id = $1")
        .bind(run_id)
        .fetch_one(&mut *conn)
        .await?;
    let status: String = row.try_get(0)?;
    if status == "cancelled" || row.try_get::<i64, _>(1)? != 0 {
        return Err(StoreError::Conflict(format!(
            "run `{run_id}` was cancelled: its manual jobs can no longer be played"
        )));
    }
    sqlx::query(
        "UPDATE runs SET status = 'running', finished_at = NULL \
         WHERE id = $1 AND status IN ('success', 'failed')",
    )
    .bind(run_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
