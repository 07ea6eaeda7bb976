//! Pipeline versions on a real server: detected from the API and webhooks, validated (a
//! broken definition never replaces a good one), diffed, rolled back and unpinned, with
//! compare-and-set (`If-Match` → 412; two servers on one database apply a change once).

use crate::harness::{Server, on_each_database, wait_for};
use crate::server::push_main;
use serde_json::Value;
use std::time::Duration;

const V1: &str = "name: ci
on:
  push:
  schedule:
    - cron: '0 3 * * *'
jobs:
  build:
    runs-on: self-hosted
    steps:
      - run: echo build
  test:
    needs: build
    runs-on: self-hosted
    steps:
      - run: echo test
";

/// V1 with a comment and other formatting: the same version.
const V1_REFORMATTED: &str = "# the same definitions, written differently
name: \"ci\"
on: {push: null, schedule: [{cron: '0 3 * * *'}]}
jobs:
  build: {runs-on: self-hosted, steps: [{run: echo build}]}
  test:
    runs-on: self-hosted
    needs: build
    steps:
      - run: echo test
";

const V2: &str = "name: ci
on:
  push:
  pull_request:
jobs:
  build:
    runs-on: self-hosted
    steps:
      - run: echo build
  test:
    needs: build
    runs-on: [self-hosted, linux]
    steps:
      - run: cargo test
  lint:
    runs-on: self-hosted
    steps:
      - run: echo lint
";

/// `runs-on` misspelled: an error at a known place.
const BROKEN: &str = "name: ci
on: push
jobs:
  build:
    runs_on: self-hosted
    steps:
      - run: echo build
";

/// A server for `octo/hello` at `repo`.
fn start(root: &std::path::Path, repo: &crate::harness::Repo, database: &str) -> Server {
    let config = crate::harness::config("github", "octo/hello", &repo.bare, 30);
    std::fs::write(root.join("tess.toml"), config).expect("config");
    Server::start(root, database, "127.0.0.1:0")
}

fn current(server: &Server) -> Value {
    let (status, body) = server.get("/api/v1/repos/octo/hello/versions/current");
    assert_eq!(status, 200, "{body}");
    body
}

fn sync(server: &Server, if_match: Option<&str>) -> (u16, Value) {
    let quoted = if_match.map(|v| format!("\"{v}\""));
    let headers: Vec<(&str, &str)> = quoted.iter().map(|v| ("if-match", v.as_str())).collect();
    server.post_with("/api/v1/repos/octo/hello/sync", &headers)
}

/// The change of `kind` named `name` (a pipeline or file: by its path).
fn change(log: &Value, kind: &str, what: &str, name: &str) -> Value {
    let named = |c: &Value| c["name"] == name || (c["name"].is_null() && c["pipeline"] == name);
    log.as_array()
        .and_then(|l| {
            l.iter()
                .find(|c| c["kind"] == kind && c["change"] == what && named(c))
        })
        .cloned()
        .unwrap_or_else(|| panic!("no {kind} {what} `{name}` in {log:#}"))
}

#[test]
fn versions_are_detected_validated_diffed_rolled_back_and_unpinned() {
    on_each_database(|root, database| {
        let repo = crate::harness::Repo::new(root);
        repo.commit(&[(".github/workflows/ci.yml", V1)], "main");
        let server = start(root, &repo, database);
        // Read at start.
        let now = wait_for("the first version", Duration::from_secs(30), || {
            let (status, body) = server.get("/api/v1/repos/octo/hello/versions/current");
            (status == 200).then_some(body)
        });
        let v1 = now["version_id"].as_str().expect("id").to_string();
        assert_eq!(now["source"], "startup");
        assert_eq!(
            now["change_log"],
            serde_json::json!([{"kind": "pipeline", "change": "added", "pipeline": ".github/workflows/ci.yml"}])
        );
        // An API sync reads the default branch's head: nothing new.
        let (status, body) = sync(&server, None);
        assert_eq!(
            (status, &body["outcome"]),
            (200, &serde_json::json!("unchanged")),
            "{body}"
        );
        // Formatting and comments are not a change.
        repo.commit(&[(".github/workflows/ci.yml", V1_REFORMATTED)], "main");
        let (_, body) = sync(&server, None);
        assert_eq!(body["outcome"], "unchanged", "{body}");
        assert_eq!(body["version_id"], v1.as_str());

        // A push to the default branch brings V2; the change log says what changed.
        let sha = repo.commit(&[(".github/workflows/ci.yml", V2)], "main");
        push_main(&server, "v2", &sha);
        let now = wait_for("V2 to be applied", Duration::from_secs(30), || {
            let now = current(&server);
            (now["version_id"] != v1.as_str()).then_some(now)
        });
        let v2 = now["version_id"].as_str().expect("id").to_string();
        assert_eq!(now["source"], "webhook");
        assert_eq!(now["commit"], sha.as_str());
        let log = &now["change_log"];
        change(log, "job", "added", "lint");
        assert_eq!(
            change(log, "job", "changed", "test")["fields"],
            serde_json::json!(["runs-on", "steps"])
        );
        change(log, "trigger", "added", "pull_request");
        change(log, "schedule", "removed", "0 3 * * * (UTC)");
        assert_eq!(log.as_array().map(Vec::len), Some(4), "{log:#}");

        // A broken definition is recorded with its location and never applied.
        let broken = repo.commit(&[(".github/workflows/ci.yml", BROKEN)], "main");
        let (status, body) = sync(&server, None);
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["outcome"], "rejected");
        let errors = body["errors"].as_str().unwrap_or_default();
        assert!(errors.contains(".github/workflows/ci.yml:5:5"), "{errors}");
        assert!(errors.contains("runs-on"), "did-you-mean: {errors}");
        assert_eq!(current(&server)["version_id"], v2.as_str());
        let (_, history) = server.get("/api/v1/repos/octo/hello/versions");
        let history = history["versions"].as_array().cloned().unwrap_or_default();
        assert_eq!(history[0]["status"], "rejected");
        assert!(
            history[0]["error"]
                .as_str()
                .unwrap_or_default()
                .contains("ci.yml:5:5")
        );
        // Seen again, it is not recorded twice.
        sync(&server, None);
        let (_, again) = server.get("/api/v1/repos/octo/hello/versions");
        assert_eq!(
            again["versions"].as_array().map(Vec::len),
            Some(history.len())
        );
        // The commit shows why: one failed `definitions` run (a status when reporting).
        let failed: Vec<Value> = server
            .runs()
            .into_iter()
            .filter(|r| r["sha"] == broken.as_str())
            .collect();
        assert_eq!(failed.len(), 1, "{failed:#?}");
        assert_eq!(
            (failed[0]["pipeline"].as_str(), failed[0]["status"].as_str()),
            (Some("definitions"), Some("failed"))
        );

        // Compare-and-set: a stale If-Match is refused; the right one rolls back.
        let rollback = format!("/api/v1/repos/octo/hello/versions/{v1}/rollback");
        let stale = format!("\"{v1}\"");
        let (status, body) = server.post_with(&rollback, &[("if-match", &stale)]);
        assert_eq!(status, 412, "{body}");
        assert_eq!(body["current"], v2.as_str());
        let fresh = format!("\"{v2}\"");
        let (status, body) = server.post_with(&rollback, &[("if-match", &fresh)]);
        assert_eq!(status, 200, "{body}");
        change(&body["change_log"], "job", "removed", "lint");
        let now = current(&server);
        assert_eq!(now["version_id"], v1.as_str());
        assert_eq!(now["pinned"], true);
        assert_eq!(now["source"], "rollback");
        // The source shows nothing new: the pin holds (and the broken commit is not
        // reported twice).
        let (_, body) = sync(&server, None);
        assert_eq!(body["outcome"], "rejected", "{body}");
        assert_eq!(current(&server)["version_id"], v1.as_str());
        let runs = server.runs();
        assert_eq!(
            runs.iter().filter(|r| r["sha"] == broken.as_str()).count(),
            1
        );

        let (status, diff) =
            server.get(&format!("/api/v1/repos/octo/hello/versions/{v1}/diff/{v2}"));
        assert_eq!(status, 200, "{diff}");
        change(&diff["change_log"], "job", "added", "lint");

        // Unpin: back to the version the source last showed.
        let (status, body) = server.post_with("/api/v1/repos/octo/hello/versions/unpin", &[]);
        assert_eq!(status, 200, "{body}");
        let now = current(&server);
        assert_eq!(
            (now["version_id"].as_str(), now["pinned"].as_bool()),
            (Some(v2.as_str()), Some(false))
        );

        // Pinned again, then a new valid version at the source replaces the pin.
        server.post_with(&rollback, &[]);
        assert_eq!(current(&server)["pinned"], true);
        repo.commit(
            &[(
                ".github/workflows/ci.yml",
                V1_REFORMATTED.replace("echo test", "echo tested").as_str(),
            )],
            "main",
        );
        let (_, body) = sync(&server, Some("not-the-current-version"));
        assert_eq!(body["outcome"], "conflict", "{body}");
        let (_, body) = sync(&server, Some(&v1));
        assert_eq!(body["outcome"], "applied", "{body}");
        let now = current(&server);
        assert_eq!(now["pinned"], false);
        assert_eq!(
            change(&now["change_log"], "job", "changed", "test")["fields"],
            serde_json::json!(["steps"])
        );

        // The same through `tess versions`.
        let env = [
            ("TESS_SERVER", server.url.as_str()),
            ("TESS_TOKEN", crate::harness::API_TOKEN),
        ];
        let cli = |args: &[&str]| {
            let out = crate::support::tess_with_env(root, args, &env);
            (out.status.code(), crate::support::stdout(&out))
        };
        let (code, list) = cli(&["versions", "list", "octo/hello"]);
        assert_eq!(code, Some(0), "{list}");
        assert!(
            list.lines()
                .nth(1)
                .is_some_and(|l| l.contains(" applied ") && l.contains(" api ")),
            "{list}"
        );
        assert!(
            list.contains(" rejected  api ") && list.contains("ci.yml:4:3: error"),
            "{list}"
        );
        let (_, diff) = cli(&["versions", "diff", "octo/hello", &v1, &v2]);
        assert!(
            diff.contains("+ job lint (.github/workflows/ci.yml)"),
            "{diff}"
        );
        assert!(
            diff.contains("~ job test (.github/workflows/ci.yml): runs-on, steps"),
            "{diff}"
        );
        assert!(diff.contains("- schedule 0 3 * * * (UTC)"), "{diff}");
        let (code, said) = cli(&["versions", "rollback", "octo/hello", &v2, "--if-match", &v1]);
        assert_eq!(code, Some(1), "{said}");
        assert!(
            said.starts_with("conflict: the current version is"),
            "{said}"
        );
    });
}

/// Two servers sharing one database detect the same definitions at start: one applies
/// them, the other finds them applied.
#[test]
fn two_servers_apply_the_same_change_once() {
    on_each_database(|root, database| {
        let repo = crate::harness::Repo::new(root);
        repo.commit(&[(".github/workflows/ci.yml", V1)], "main");
        let first = start(root, &repo, database);
        let second = Server::start(root, database, "127.0.0.1:0");
        let history = wait_for("both to have synced", Duration::from_secs(30), || {
            let log = std::fs::read_to_string(root.join("server.log")).unwrap_or_default();
            let (_, body) = first.get("/api/v1/repos/octo/hello/versions");
            let versions = body["versions"].as_array()?.clone();
            (log.matches("definitions: startup done").count() >= 2).then_some(versions)
        });
        let applied: Vec<&Value> = history
            .iter()
            .filter(|h| h["status"] == "applied")
            .collect();
        assert_eq!(applied.len(), 1, "{history:#?}");
        assert_eq!(current(&second)["version_id"], applied[0]["version_id"]);
    });
}

/// The server's own version: its config and pipeline directory, watched. A valid change is
/// applied without a restart (a repository added to the config takes webhooks at once); a
/// broken config is rejected with its location and the running one stays; inline secrets
/// are not stored.
#[test]
fn the_config_and_pipeline_directory_are_hot_reloaded() {
    on_each_database(|root, database| {
        let repo = crate::harness::Repo::new(root);
        repo.commit(&[(".github/workflows/ci.yml", V1)], "main");
        let base = crate::harness::config("github", "octo/hello", &repo.bare, 30);
        // `pipelines_dir` is top-level: before the first table.
        let write = |extra: &str| {
            let text = format!("pipelines_dir = \"local\"\n{base}{extra}");
            let tmp = root.join("tess.toml.tmp");
            std::fs::write(&tmp, text).expect("config");
            // As editors do: a new file renamed over the old one.
            std::fs::rename(&tmp, root.join("tess.toml")).expect("rename");
        };
        std::fs::create_dir_all(root.join("local")).expect("mkdir");
        write("");
        let server = Server::start(root, database, "127.0.0.1:0");
        let server_version = || {
            let (status, body) = server.get("/api/v1/version/current");
            (status == 200).then_some(body)
        };
        let first = wait_for(
            "the server's version",
            Duration::from_secs(30),
            server_version,
        );
        assert_eq!(first["source"], "startup");
        let v0 = first["version_id"].clone();
        // A repository not configured yet: its webhook is refused.
        let body =
            crate::harness::github_push("octo/other", "refs/heads/main", None, &"a".repeat(40));
        let (status, _) = server.hook("github", "push", "before", &body, crate::harness::SECRET);
        assert_ne!(status, 202);

        write(&format!(
            "[[repo]]\nforge = \"github\"\nname = \"octo/other\"\nclone_url = \"{}\"\nwebhook_secret = \"{}\"\n",
            repo.bare.display(),
            crate::harness::SECRET
        ));
        let second = wait_for("the new config", Duration::from_secs(30), || {
            server_version().filter(|v| v["version_id"] != v0)
        });
        assert_eq!(second["source"], "file-watch");
        let changed = change(&second["change_log"], "file", "changed", "tess.toml");
        assert_eq!(changed["fields"], serde_json::json!(["repo"]));
        let (status, reply) = server.hook("github", "push", "after", &body, crate::harness::SECRET);
        assert_eq!(status, 202, "{reply}");

        // A pipeline in the server's directory is a change too.
        std::fs::write(root.join("local/housekeeping.yml"), V2).expect("write");
        let third = wait_for(
            "the pipeline directory change",
            Duration::from_secs(30),
            || server_version().filter(|v| v["version_id"] != second["version_id"]),
        );
        change(
            &third["change_log"],
            "pipeline",
            "added",
            "local/housekeeping.yml",
        );

        // A broken config is rejected, located; the running config stays.
        std::fs::write(root.join("tess.toml.tmp"), "listen = [\n").expect("write");
        std::fs::rename(root.join("tess.toml.tmp"), root.join("tess.toml")).expect("rename");
        let rejected = wait_for("the rejection", Duration::from_secs(30), || {
            let (_, body) = server.get("/api/v1/version/history");
            let last = body["versions"][0].clone();
            (last["status"] == "rejected").then_some(last)
        });
        let error = rejected["error"].as_str().unwrap_or_default();
        assert!(error.contains("tess.toml:1:11: unclosed array"), "{error}");
        assert_eq!(
            server_version().expect("version")["version_id"],
            third["version_id"]
        );
        let (status, _) = server.hook("github", "push", "still", &body, crate::harness::SECRET);
        assert_eq!(status, 202, "the applied config still serves");
        if database.starts_with("sqlite") {
            let stored = std::fs::read(root.join("tess.db")).unwrap_or_default();
            let text = String::from_utf8_lossy(&stored);
            assert!(!text.contains("hunter2-secret") && !text.contains(crate::harness::SECRET));
        }
    });
}

/// A forge that cannot send webhooks: `poll_seconds` finds new heads of the default branch;
/// each becomes a push (runs) and, when its definitions changed, a new version — or a
/// rejected one, with a failed run on that commit saying why.
#[test]
fn polling_finds_pushes_and_new_versions() {
    on_each_database(|root, database| {
        let repo = crate::harness::Repo::new(root);
        repo.commit(&[(".github/workflows/ci.yml", V1)], "main");
        let config = crate::harness::config("github", "octo/hello", &repo.bare, 30);
        let config = config.replace("[repo.secrets]", "poll_seconds = 1\n[repo.secrets]");
        std::fs::write(root.join("tess.toml"), config).expect("config");
        let server = Server::start(root, database, "127.0.0.1:0");
        let v1 = wait_for("the first version", Duration::from_secs(30), || {
            let (status, body) = server.get("/api/v1/repos/octo/hello/versions/current");
            (status == 200).then(|| body["version_id"].clone())
        });
        let sha = repo.commit(&[(".github/workflows/ci.yml", V2)], "main");
        let now = wait_for("the polled version", Duration::from_secs(30), || {
            Some(current(&server)).filter(|c| c["version_id"] != v1)
        });
        assert_eq!(
            (now["source"].as_str(), now["commit"].as_str()),
            (Some("poll"), Some(sha.as_str()))
        );
        let runs = server.runs();
        assert!(
            runs.iter()
                .any(|r| r["sha"] == sha.as_str() && r["event"] == "push"),
            "{runs:#?}"
        );

        let broken = repo.commit(&[(".github/workflows/ci.yml", BROKEN)], "main");
        let rejected = wait_for("the rejection", Duration::from_secs(30), || {
            let (_, body) = server.get("/api/v1/repos/octo/hello/versions");
            let last = body["versions"][0].clone();
            (last["status"] == "rejected").then_some(last)
        });
        assert_eq!(
            (rejected["source"].as_str(), rejected["commit"].as_str()),
            (Some("poll"), Some(broken.as_str()))
        );
        assert_eq!(current(&server)["version_id"], now["version_id"]);
        let failed = server
            .runs()
            .into_iter()
            .find(|r| r["sha"] == broken.as_str())
            .expect("a run for the broken commit");
        assert_eq!(failed["status"], "failed", "{failed:#}");
    });
}
