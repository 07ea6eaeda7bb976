//! A database made by the previous release (its own migration table, schema version 9)
//! opens with this one: its migrations adopted by `sqlx::migrate!`, the new ones applied,
//! its rows kept, and the server runs on it.

use crate::harness::{SECRET, databases, github_push, setup, sql};
use crate::server::{job, run_of_delivery};
use std::path::Path;
use std::time::Duration;

const OLD_RUN: &str = "20261201120000000-abc123";

/// Puts the previous release's database where `database` points.
fn restore_old_release(database: &str) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store");
    match database.strip_prefix("sqlite://") {
        Some(rest) => {
            let path = rest.split('?').next().expect("path");
            std::fs::copy(fixtures.join("release-0.1.sqlite"), path).expect("copy the database");
        }
        None => {
            let out = std::process::Command::new("psql")
                .args([database, "-q", "-v", "ON_ERROR_STOP=1", "-f"])
                .arg(fixtures.join("release-0.1-postgres.sql"))
                .output()
                .expect("psql");
            assert!(
                out.status.success(),
                "restoring the dump: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn a_database_made_by_the_previous_release_upgrades_in_place() {
    let migrations =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite"))
            .expect("migrations")
            .count();
    let dir = tempfile::tempdir().expect("tempdir");
    for (n, database) in databases(dir.path()).iter().enumerate() {
        restore_old_release(database);
        assert_eq!(sql(database, "SELECT COUNT(*) FROM tess_migrations"), "9");
        let root = dir.path().join(format!("db{n}"));
        std::fs::create_dir_all(&root).expect("mkdir");
        let (repo, server) = setup(&root, "github", "octo/hello", 30, database);
        // The old rows are all there.
        let run = server.run(OLD_RUN);
        assert_eq!(run["status"], "success", "{run:#}");
        assert_eq!(job(&run, "build")["state"], "success", "{run:#}");
        assert_eq!(job(&run, "build")["outputs"]["v"], "1", "{run:#}");
        assert_eq!(server.log(OLD_RUN, "build"), "made before 0.2\n");
        // Its versions are recorded by sqlx (every file applied, checksums kept), the old
        // table is gone.
        assert_eq!(
            sql(
                database,
                "SELECT COUNT(*) FROM _sqlx_migrations WHERE success"
            ),
            migrations.to_string()
        );
        assert_eq!(
            sql(
                database,
                "SELECT COUNT(*) FROM _sqlx_migrations WHERE version = 10"
            ),
            "1"
        );
        // The new schema is in use: a push runs to the end (heartbeats read the new
        // per-job cancel column).
        let _runner = server.runner("r1", "");
        let sha = repo.commit(
            &[(
                ".github/workflows/ci.yml",
                "on: push\njobs:\n  after:\n    runs-on: self-hosted\n    steps:\n      - run: echo upgraded\n",
            )],
            "main",
        );
        let body = github_push("octo/hello", "refs/heads/main", None, &sha);
        let (status, reply) = server.hook("github", "push", "after-upgrade", &body, SECRET);
        assert_eq!(status, 202, "{reply}");
        let id = run_of_delivery(&server, "github:after-upgrade");
        let run = server.finished_run(&id, Duration::from_secs(60));
        assert_eq!(run["status"], "success", "{run:#}");
        // A second start finds nothing to do and every checksum matching.
        drop(_runner);
        drop(server);
        let server = crate::harness::Server::start(&root, database, "127.0.0.1:0");
        assert_eq!(server.run(OLD_RUN)["status"], "success");
    }
}
