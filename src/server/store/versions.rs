//! Pipeline versions in the store: definitions by content id, the history of what was
//! applied or rejected, and each scope's current version, changed only by compare-and-set.

use super::{Page, Result, Store, StoreError, now_ms};
use serde::Serialize;
use sqlx::Row;

/// A scope's current version.
#[derive(Debug, Clone, Serialize)]
pub struct CurrentVersion {
    pub version_id: String,
    /// The newest version its source showed (differs from `version_id` after a rollback).
    pub detected: String,
    pub pinned: bool,
    pub applied_at: i64,
    pub generation: i64,
}

/// One entry of a scope's history (the API's type).
pub use crate::rest::VersionEntry as HistoryEntry;

/// A version to make current.
pub struct NewVersion<'a> {
    pub scope: &'a str,
    pub version_id: &'a str,
    pub definitions: &'a str,
    pub source: &'a str,
    pub commit: Option<&'a str>,
    pub change_log: &'a str,
    /// A rollback: current until the source shows a new version (or an unpin).
    pub pin: bool,
    /// Shown by the source (a sync); a rollback or an unpin leaves the detected version as
    /// it was.
    pub detected: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// The current version is not the one expected: someone else changed it first.
    Conflict {
        current: Option<String>,
    },
}

impl Store {
    pub async fn current_version(&self, scope: &str) -> Result<Option<CurrentVersion>> {
        let row = sqlx::query(
            "SELECT version_id, detected, pinned, applied_at, generation FROM current_versions \
             WHERE scope = $1",
        )
        .bind(scope)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| CurrentVersion {
            version_id: r.get(0),
            detected: r.get(1),
            pinned: r.get::<i64, _>(2) != 0,
            applied_at: r.get(3),
            generation: r.get(4),
        }))
    }

    /// Every scope's current version id (one query for all, for the scheduler's loop).
    pub async fn current_version_ids(&self) -> Result<std::collections::HashMap<String, String>> {
        let rows = sqlx::query("SELECT scope, version_id FROM current_versions")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// A version's stored definitions (JSON).
    pub async fn version_definitions(&self, scope: &str, id: &str) -> Result<Option<String>> {
        let row =
            sqlx::query("SELECT definitions FROM versions WHERE scope = $1 AND version_id = $2")
                .bind(scope)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Makes `new` current if the current version is still `expected` (`None`: there is
    /// none yet): the definitions are kept, the history gets an entry, the pointer moves —
    /// one transaction, so two replicas applying the same change apply it once.
    pub async fn apply_version(
        &self,
        new: &NewVersion<'_>,
        expected: Option<&CurrentVersion>,
    ) -> Result<Applied> {
        let mut tx = self.pool.begin().await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO versions (scope, version_id, definitions, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(new.scope)
        .bind(new.version_id)
        .bind(new.definitions)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // What the source shows: the new version, unless this is a rollback or unpin.
        let detected = match (new.detected, expected) {
            (false, Some(current)) => current.detected.clone(),
            _ => new.version_id.to_string(),
        };
        let moved = match expected {
            Some(current) => {
                sqlx::query(
                    "UPDATE current_versions SET version_id = $1, detected = $2, pinned = $3, \
                     applied_at = $4, generation = generation + 1 \
                     WHERE scope = $5 AND generation = $6",
                )
                .bind(new.version_id)
                .bind(&detected)
                .bind(new.pin as i64)
                .bind(now)
                .bind(new.scope)
                .bind(current.generation)
                .execute(&mut *tx)
                .await?
            }
            None => {
                sqlx::query(
                    "INSERT INTO current_versions \
                     (scope, version_id, detected, pinned, applied_at, generation) \
                     VALUES ($1, $2, $3, $4, $5, 1) ON CONFLICT DO NOTHING",
                )
                .bind(new.scope)
                .bind(new.version_id)
                .bind(&detected)
                .bind(new.pin as i64)
                .bind(now)
                .execute(&mut *tx)
                .await?
            }
        };
        if moved.rows_affected() == 0 {
            drop(tx);
            let current = self.current_version(new.scope).await?;
            return Ok(Applied::Conflict {
                current: current.map(|c| c.version_id),
            });
        }
        sqlx::query(
            "INSERT INTO version_history \
             (scope, version_id, status, source, commit_sha, previous, at, change_log) \
             VALUES ($1, $2, 'applied', $3, $4, $5, $6, $7)",
        )
        .bind(new.scope)
        .bind(new.version_id)
        .bind(new.source)
        .bind(new.commit)
        .bind(expected.map(|c| c.version_id.as_str()))
        .bind(now)
        .bind(new.change_log)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Applied::Applied)
    }

    /// Records definitions that did not validate, once per commit (a poll or a sync seeing
    /// the same broken commit again adds nothing; without a commit, once in a row); `false`
    /// when it was recorded before.
    pub async fn reject_version(
        &self,
        scope: &str,
        version_id: &str,
        source: &str,
        commit: Option<&str>,
        error: &str,
    ) -> Result<bool> {
        let seen = match commit {
            Some(commit) => sqlx::query(
                "SELECT 1 FROM version_history WHERE scope = $1 AND version_id = $2 \
                 AND status = 'rejected' AND commit_sha = $3 LIMIT 1",
            )
            .bind(scope)
            .bind(version_id)
            .bind(commit)
            .fetch_optional(&self.pool)
            .await?
            .is_some(),
            None => sqlx::query(
                "SELECT version_id, status FROM version_history WHERE scope = $1 \
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(scope)
            .fetch_optional(&self.pool)
            .await?
            .is_some_and(|r| {
                r.get::<String, _>(0) == version_id && r.get::<String, _>(1) == "rejected"
            }),
        };
        if seen {
            return Ok(false);
        }
        let current = self.current_version(scope).await?;
        sqlx::query(
            "INSERT INTO version_history \
             (scope, version_id, status, source, commit_sha, previous, at, change_log, error) \
             VALUES ($1, $2, 'rejected', $3, $4, $5, $6, '[]', $7)",
        )
        .bind(scope)
        .bind(version_id)
        .bind(source)
        .bind(commit)
        .bind(current.map(|c| c.version_id))
        .bind(now_ms())
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(true)
    }

    /// A scope's history, newest first.
    pub async fn version_history(&self, scope: &str, page: &Page) -> Result<Vec<HistoryEntry>> {
        let rows = sqlx::query(
            "SELECT version_id, status, source, commit_sha, previous, at, change_log, error, id \
             FROM version_history WHERE scope = $1 AND ($3 IS NULL OR id < $3) \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(scope)
        .bind(page.limit)
        .bind(page.before.as_ref().map(|c| c.0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let log: String = r.try_get(6)?;
                Ok(HistoryEntry {
                    id: r.try_get(8)?,
                    version_id: r.try_get(0)?,
                    status: r.try_get(1)?,
                    source: r.try_get(2)?,
                    commit: r.try_get(3)?,
                    previous: r.try_get(4)?,
                    at: r.try_get(5)?,
                    change_log: serde_json::from_str(&log)
                        .map_err(|e| StoreError::Db(format!("change log: {e}")))?,
                    error: r.try_get(7)?,
                })
            })
            .collect()
    }
}
