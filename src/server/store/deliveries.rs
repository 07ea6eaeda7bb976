//! Webhook deliveries in the store: recorded once per id, claimed by one planner at a
//! time (the claim renewed while it plans), and finished with what they started.

use super::runs::{NewRun, insert_run};
use super::{Page, Result, Store, StoreError, json_list, now_ms};
use sqlx::Row;

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

/// A planning claim not renewed for this long was left by a planner that died.
pub const PLANNING_CLAIM_MS: i64 = 10_000;

impl Store {
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

    pub async fn deliveries(&self, page: &Page) -> Result<Vec<crate::rest::Delivery>> {
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
                let runs: Option<String> = r.try_get("runs")?;
                Ok(crate::rest::Delivery {
                    id: r.try_get("id")?,
                    forge: r.try_get("forge")?,
                    event: r.try_get("event")?,
                    repo: r.try_get("repo")?,
                    received_at: r.try_get("received_at")?,
                    status: r.try_get("status")?,
                    reason: r.try_get("reason")?,
                    runs: runs.map(|s| json_list(&s)).unwrap_or_default(),
                })
            })
            .collect()
    }
}
