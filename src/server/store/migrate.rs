//! Schema migrations: the SQL files of `migrations/sqlite/` and `migrations/postgres/`,
//! embedded and run by `sqlx::migrate!` (checksummed, recorded in `_sqlx_migrations`).

use super::{Backend, Result, Store};
use sqlx::Row;
use sqlx::migrate::{Migrate, Migrator};

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

impl Store {
    pub(super) async fn migrate(&self) -> Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE,
            Backend::Postgres => &POSTGRES,
        };
        self.adopt_legacy_migrations(migrator).await?;
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// A database made before the migrations were SQL files recorded what it had applied in
    /// `tess_migrations` (the same numbers as the files): those are recorded as applied,
    /// with the files' checksums, and the migrator goes on from there.
    async fn adopt_legacy_migrations(&self, migrator: &Migrator) -> Result<()> {
        let exists = match self.backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'tess_migrations'"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'tess_migrations' \
                 AND table_schema = current_schema()"
            }
        };
        if sqlx::query(exists)
            .fetch_one(&self.pool)
            .await?
            .try_get::<i64, _>(0)?
            == 0
        {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        tx.ensure_migrations_table().await?;
        let applied: Vec<i64> = sqlx::query("SELECT version FROM _sqlx_migrations")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()?;
        let legacy = sqlx::query("SELECT version FROM tess_migrations ORDER BY version")
            .fetch_all(&mut *tx)
            .await?;
        for row in legacy {
            let version: i64 = row.try_get(0)?;
            let Some(file) = migrator.iter().find(|m| m.version == version) else {
                continue;
            };
            if applied.contains(&version) {
                continue;
            }
            sqlx::query(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES ($1, $2, TRUE, $3, 0)",
            )
            .bind(version)
            .bind(file.description.as_ref())
            .bind(file.checksum.as_ref())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DROP TABLE tess_migrations")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!("the database's migrations are now recorded in _sqlx_migrations");
        Ok(())
    }
}
