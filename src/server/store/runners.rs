//! Self-hosted runners in the store: registration (a hashed token), what each last said
//! (free slots, load), and draining.

use super::{Page, Result, Store, StoreError, json_list, now_ms, random_hex, sha256_hex};
use sqlx::Row;

impl Store {
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

    /// Drains a runner (it takes no new job) or resumes it; `false` without the runner.
    pub async fn set_draining(&self, id: &str, draining: bool) -> Result<bool> {
        let done = sqlx::query("UPDATE runners SET draining = $2 WHERE id = $1")
            .bind(id)
            .bind(i64::from(draining))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every runner, in id order; `page.before` holds the last id of the previous page.
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
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    labels: json_list(&r.try_get::<String, _>("labels")?),
                    version: r.try_get("version")?,
                    last_seen: r.try_get("last_seen")?,
                    free_slots: r.try_get("free_slots")?,
                    load: r
                        .try_get::<Option<String>, _>("load")?
                        .and_then(|s| serde_json::from_str::<crate::protocol::Load>(&s).ok()),
                    draining: r.try_get::<i64, _>("draining")? != 0,
                })
            })
            .collect()
    }
}

/// A registered runner as stored (the API's type).
pub use crate::rest::RegisteredRunner as RunnerRow;

/// A job's labels are all among the runner's (GitHub `runs-on`, GitLab `tags`).
pub fn labels_match(job: &[String], runner: &[String]) -> bool {
    job.iter()
        .all(|l| runner.iter().any(|r| r.eq_ignore_ascii_case(l)))
}
