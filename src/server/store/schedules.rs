//! Schedule slots in the store: one row per schedule and fire time, so a slot fires once
//! across replicas and restarts, and the last slot seen is where catching up starts.

use super::{Result, Store, now_ms};
use sqlx::Row;

/// A slot as recorded (the API's type).
pub use crate::rest::ScheduleSlot as SlotClaim;

impl Store {
    /// Claims a slot; `false` when another replica (or an earlier run) already did.
    pub async fn claim_slot(
        &self,
        scope: &str,
        schedule: &str,
        slot: i64,
        status: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO schedule_slots (scope, schedule, slot, status, at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(scope)
        .bind(schedule)
        .bind(slot)
        .bind(status)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The runs a fired slot started.
    pub async fn set_slot_runs(
        &self,
        scope: &str,
        schedule: &str,
        slot: i64,
        runs: &[String],
    ) -> Result<()> {
        sqlx::query(
            "UPDATE schedule_slots SET runs = $1 WHERE scope = $2 AND schedule = $3 AND slot = $4",
        )
        .bind(serde_json::to_string(runs).unwrap_or_default())
        .bind(scope)
        .bind(schedule)
        .bind(slot)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The latest slot recorded for a schedule.
    pub async fn last_slot(&self, scope: &str, schedule: &str) -> Result<Option<i64>> {
        let row =
            sqlx::query("SELECT MAX(slot) FROM schedule_slots WHERE scope = $1 AND schedule = $2")
                .bind(scope)
                .bind(schedule)
                .fetch_one(&self.pool)
                .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?)
    }

    /// A scope's recorded slots, newest first.
    pub async fn slots(&self, scope: &str, limit: i64) -> Result<Vec<SlotClaim>> {
        let rows = sqlx::query(
            "SELECT schedule, slot, status, runs, at FROM schedule_slots WHERE scope = $1 \
             ORDER BY slot DESC, schedule LIMIT $2",
        )
        .bind(scope)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let runs: Option<String> = r.try_get(3)?;
                Ok(SlotClaim {
                    schedule: r.try_get(0)?,
                    slot: r.try_get(1)?,
                    status: r.try_get(2)?,
                    runs: runs
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or_default(),
                    at: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Switches a schedule on or off (a switched-off schedule's slots are recorded as
    /// `disabled` and start nothing, and are not caught up when it is switched on again).
    pub async fn switch_schedule(&self, scope: &str, schedule: &str, enabled: bool) -> Result<()> {
        sqlx::query(
            "INSERT INTO schedule_switches (scope, schedule, enabled, changed_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (scope, schedule) DO UPDATE SET enabled = excluded.enabled, changed_at = excluded.changed_at",
        )
        .bind(scope)
        .bind(schedule)
        .bind(i64::from(enabled))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The scope's switched-off schedules.
    pub async fn disabled_schedules(
        &self,
        scope: &str,
    ) -> Result<std::collections::HashSet<String>> {
        let rows =
            sqlx::query("SELECT schedule FROM schedule_switches WHERE scope = $1 AND enabled = 0")
                .bind(scope)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }
}
