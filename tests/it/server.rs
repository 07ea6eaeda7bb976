//! `tess server` + `tess runner` as real processes over real HTTP, with real git
//! repositories and real databases (SQLite, and PostgreSQL when available).

use crate::harness::{
    API_TOKEN, REGISTRATION, Repo, SECRET, Server, config, databases, github_push,
    on_each_database, setup, wait_for, wait_for_showing,
};
use crate::support::corpus_dir;
use serde_json::json;
use std::time::Duration;
use tesseract_ci::forge::payload::{Parsed, parse};
use tesseract_ci::server::config::Forge;
use tesseract_ci::server::hooks::github_signature_ok;

const WORKFLOW: &str = r#"name: ci
on:
  push:
    branches: [main]
    tags: ['v*']
  pull_request:
jobs:
  build:
    runs-on: self-hosted
    outputs:
      artifact: ${{ steps.b.outputs.artifact }}
    steps:
      - id: b
        run: |
          echo "building ${{ github.ref }} with token $DEPLOY_TOKEN"
          echo "artifact=app-1.0" >> "$GITHUB_OUTPUT"
        env:
          DEPLOY_TOKEN: ${{ secrets.DEPLOY_TOKEN }}
  test:
    needs: build
    runs-on: [self-hosted, linux]
    steps:
      - run: echo "testing ${{ needs.build.outputs.artifact }}"
  release:
    needs: test
    if: startsWith(github.ref, 'refs/tags/v')
    runs-on: self-hosted
    steps:
      - run: echo "releasing ${{ github.ref_name }}"
"#;

pub(crate) fn job<'a>(run: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    run["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["key"] == key))
        .unwrap_or_else(|| panic!("no job {key} in {run:#}"))
}

/// Sends a signed push of `sha` to `main` of octo/hello; the run it made.
pub(crate) fn push_main(server: &Server, delivery: &str, sha: &str) -> String {
    let body = github_push("octo/hello", "refs/heads/main", None, sha);
    let (status, reply) = server.hook("github", "push", delivery, &body, SECRET);
    assert_eq!(status, 202, "{reply}");
    run_of_delivery(server, &format!("github:{delivery}"))
}

/// A delivery as the API shows it, once the planner is done with it.
pub(crate) fn planned_delivery(server: &Server, delivery: &str) -> serde_json::Value {
    wait_for(
        "the delivery to be planned",
        Duration::from_secs(30),
        || {
            let (_, body) = server.get("/api/v1/deliveries");
            let d = body["deliveries"]
                .as_array()?
                .iter()
                .find(|d| d["id"] == delivery)?
                .clone();
            (!["received", "planning"].contains(&d["status"].as_str()?)).then_some(d)
        },
    )
}

/// The run a delivery produced, once it is planned.
pub(crate) fn run_of_delivery(server: &Server, delivery: &str) -> String {
    let d = planned_delivery(server, delivery);
    assert_eq!(d["status"], "planned", "delivery {delivery}: {d}");
    d["runs"][0].as_str().expect("a run").to_string()
}

#[test]
fn github_push_tag_and_pull_request_run_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (n, database) in databases(dir.path()).iter().enumerate() {
        let root = dir.path().join(format!("db{n}"));
        std::fs::create_dir_all(&root).expect("mkdir");
        let (repo, server) = setup(&root, "github", "octo/hello", 30, database);
        let _runner = server.runner("r1", "");
        let sha = repo.commit(&[(".github/workflows/ci.yml", WORKFLOW)], "main");

        // A push to main: build → test run, release is skipped by its `if`.
        let body = github_push("octo/hello", "refs/heads/main", None, &sha);
        let (status, reply) = server.hook("github", "push", "push-1", &body, SECRET);
        assert_eq!(status, 202, "{reply}");
        let run_id = run_of_delivery(&server, "github:push-1");
        let run = server.finished_run(&run_id, Duration::from_secs(60));
        assert_eq!(run["status"], "success", "{run:#}");
        assert_eq!(run["sha"], sha.as_str());
        assert_eq!(job(&run, "build")["state"], "success");
        assert_eq!(job(&run, "build")["outputs"]["artifact"], "app-1.0");
        assert_eq!(job(&run, "test")["state"], "success");
        assert_eq!(job(&run, "release")["state"], "skipped");
        let log = server.log(&run_id, "test");
        assert!(log.contains("testing app-1.0"), "{log}");
        // The secret reached the job and never the log.
        let log = server.log(&run_id, "build");
        assert!(log.contains("with token ***"), "{log}");
        assert!(!log.contains("hunter2-secret"), "{log}");

        // A tag `v1.2.3`: the release job runs too.
        let tag_sha = repo.tag("v1.2.3");
        let body = github_push("octo/hello", "refs/tags/v1.2.3", None, &tag_sha);
        server.hook("github", "push", "tag-1", &body, SECRET);
        let run_id = run_of_delivery(&server, "github:tag-1");
        let run = server.finished_run(&run_id, Duration::from_secs(60));
        assert_eq!(job(&run, "release")["state"], "success", "{run:#}");
        assert!(server.log(&run_id, "release").contains("releasing v1.2.3"));

        // A pull request from a branch.
        let head = repo.commit(&[("README.md", "change")], "feature");
        let pr = json!({
            "action": "opened",
            "number": 7,
            "pull_request": {"number": 7, "head": {"ref": "feature", "sha": head}, "base": {"ref": "main", "sha": sha}},
            "repository": {"full_name": "octo/hello"},
        });
        let body = serde_json::to_vec(&pr).expect("json");
        server.hook("github", "pull_request", "pr-1", &body, SECRET);
        let run_id = run_of_delivery(&server, "github:pr-1");
        let run = server.finished_run(&run_id, Duration::from_secs(60));
        assert_eq!(run["status"], "success", "{run:#}");
        assert_eq!(run["ref"], "refs/pull/7/merge");
        assert_eq!(run["event"], "pull_request");
    }
}

#[test]
fn gitlab_pipelines_run_by_stage_and_merge_requests() {
    on_each_database(|root, database| {
        let (repo, server) = setup(root, "gitlab", "group/app", 30, database);
        let _runner = server.runner("r1", "docker");
        let ci = "stages: [build, test]\nbuild:\n  stage: build\n  tags: [docker]\n  script:\n    - echo \"built $CI_COMMIT_REF_NAME from $CI_PIPELINE_SOURCE\"\nunit:\n  stage: test\n  script:\n    - echo unit\nmr-only:\n  stage: test\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"merge_request_event\"\n  script:\n    - echo \"mr $CI_MERGE_REQUEST_IID\"\nx-changed:\n  stage: test\n  rules:\n    - changes:\n        paths: [x.txt]\n        compare_to: refs/heads/main\n  script:\n    - echo x\n";
        let sha = repo.commit(&[(".gitlab-ci.yml", ci)], "main");
        let push = json!({
            "object_kind": "push", "ref": "refs/heads/main", "before": "0000000000000000000000000000000000000000",
            "after": sha, "checkout_sha": sha, "project": {"path_with_namespace": "group/app"},
        });
        let (status, reply) = server.hook(
            "gitlab",
            "Push Hook",
            "gl-1",
            &serde_json::to_vec(&push).expect("json"),
            SECRET,
        );
        assert_eq!(status, 202, "{reply}");
        let run_id = run_of_delivery(&server, "gitlab:gl-1");
        let run = server.finished_run(&run_id, Duration::from_secs(60));
        assert_eq!(run["status"], "success", "{run:#}");
        assert_eq!(job(&run, "mr-only")["state"], "skipped");
        assert_eq!(
            job(&run, "x-changed")["state"],
            "skipped",
            "nothing changed since main"
        );
        // `unit` waited for the build stage.
        let built = job(&run, "build")["finished_at"]
            .as_i64()
            .expect("finished");
        let unit = job(&run, "unit")["started_at"].as_i64().expect("started");
        assert!(unit >= built, "{run:#}");
        assert!(
            server
                .log(&run_id, "build")
                .contains("built main from push")
        );

        let head = repo.commit(&[("x.txt", "x")], "feature");
        let mr = json!({
            "object_kind": "merge_request",
            "object_attributes": {"action": "open", "iid": 3, "source_branch": "feature", "target_branch": "main", "last_commit": {"id": head}},
            "project": {"path_with_namespace": "group/app"},
        });
        server.hook(
            "gitlab",
            "Merge Request Hook",
            "gl-2",
            &serde_json::to_vec(&mr).expect("json"),
            SECRET,
        );
        let run_id = run_of_delivery(&server, "gitlab:gl-2");
        let run = server.finished_run(&run_id, Duration::from_secs(60));
        assert_eq!(job(&run, "mr-only")["state"], "success", "{run:#}");
        // `changes:compare_to` is diffed in the server's mirror: x.txt changed since main.
        assert_eq!(job(&run, "x-changed")["state"], "success", "{run:#}");
        assert!(server.log(&run_id, "mr-only").contains("mr 3"));
        // Jobs without rules are not in merge request pipelines (implicit `only: [branches, tags]`).
        assert_eq!(job(&run, "build")["state"], "skipped");
    });
}

#[test]
fn bad_deliveries_get_clear_answers_and_redeliveries_are_deduplicated() {
    on_each_database(|root, database| {
        let (repo, server) = setup(root, "github", "octo/hello", 30, database);
        let sha = repo.commit(&[(".github/workflows/ci.yml", WORKFLOW)], "main");
        let body = github_push("octo/hello", "refs/heads/main", None, &sha);

        // Wrong secret: 401, nothing stored.
        let (status, _) = server.hook("github", "push", "bad-sig", &body, "wrong secret");
        assert_eq!(status, 401);
        // Malformed JSON: 400 with the reason.
        let (status, reply) = server.hook("github", "push", "bad-json", b"{not json", SECRET);
        assert_eq!(status, 400);
        assert!(
            reply["error"]
                .as_str()
                .unwrap_or_default()
                .contains("not JSON"),
            "{reply}"
        );
        // Over 25 MB: 413.
        let huge = vec![b' '; 26 * 1024 * 1024];
        let (status, _) = server.hook("github", "push", "huge", &huge, SECRET);
        assert_eq!(status, 413);
        // An unknown repository: 404, recorded.
        let other = github_push("someone/else", "refs/heads/main", None, &sha);
        let (status, _) = server.hook("github", "push", "unknown", &other, SECRET);
        assert_eq!(status, 404);
        // The same delivery three times: one run.
        for _ in 0..3 {
            let (status, _) = server.hook("github", "push", "same", &body, SECRET);
            assert!(status == 202 || status == 200);
        }
        run_of_delivery(&server, "github:same");
        assert_eq!(server.runs().len(), 1);
        let (_, deliveries) = server.get("/api/v1/deliveries");
        let ids: Vec<&str> = deliveries["deliveries"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|d| d["id"].as_str())
            .collect();
        assert!(!ids.contains(&"github:bad-sig"), "{ids:?}");
        assert!(ids.contains(&"github:unknown"), "{ids:?}");
        // Ping and closed pull requests are recorded as ignored, with why.
        let (status, _) = server.hook(
            "github",
            "ping",
            "ping-1",
            br#"{"zen":"hi","repository":{"full_name":"octo/hello"}}"#,
            SECRET,
        );
        assert_eq!(status, 202);
        // No token, no data.
        let mut r = crate::harness::agent()
            .get(&format!("{}/api/v1/runs", server.url))
            .call()
            .expect("GET");
        assert_eq!(r.status().as_u16(), 401);
        assert!(
            r.body_mut()
                .read_to_string()
                .unwrap_or_default()
                .contains("token")
        );
    });
}

#[test]
fn invalid_pipelines_fail_with_located_errors_and_filtered_events_say_why() {
    on_each_database(|root, database| {
        let (repo, server) = setup(root, "github", "octo/hello", 30, database);
        let broken =
            "on: push\njobs:\n  a:\n    runs-on: self-hosted\n    stepz:\n      - run: echo\n";
        let sha = repo.commit(&[(".github/workflows/broken.yml", broken)], "main");
        let run_id = push_main(&server, "broken", &sha);
        let run = server.run(&run_id);
        assert_eq!(run["status"], "failed");
        let error = run["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(".github/workflows/broken.yml:5:5"),
            "{error}"
        );
        assert!(error.contains("steps"), "did-you-mean in {error}");

        // Only `v*` tags and main start this workflow: a push to another branch is recorded
        // with the planner's reason.
        let sha = repo.commit(&[(".github/workflows/broken.yml", WORKFLOW)], "topic");
        server.hook(
            "github",
            "push",
            "topic",
            &github_push("octo/hello", "refs/heads/topic", None, &sha),
            SECRET,
        );
        let d = planned_delivery(&server, "github:topic");
        assert_eq!(d["status"], "ignored", "{d}");
        let reason = d["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("topic"), "{reason}");
    });
}

#[test]
fn leases_are_fenced_logs_are_idempotent_and_expired_leases_retry() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (n, database) in databases(dir.path()).iter().enumerate() {
        let root = dir.path().join(format!("db{n}"));
        std::fs::create_dir_all(&root).expect("mkdir");
        let repo = Repo::new(&root);
        // A 1-second lease so that expiry is quick.
        std::fs::write(
            root.join("tess.toml"),
            config("github", "octo/hello", &repo.bare, 1),
        )
        .expect("config");
        let server = Server::start(&root, database, "127.0.0.1:0");
        let sha = repo.commit(&[(".github/workflows/ci.yml", WORKFLOW)], "main");
        let run_id = push_main(&server, "p", &sha);

        let register = |name: &str| {
            let (status, reply) = server.post(
                "/api/v1/runner/register",
                None,
                &json!({"registration_token": REGISTRATION, "name": name, "labels": ["self-hosted", "linux"], "version": "0"}),
            );
            assert_eq!(status, 200, "{reply}");
            reply["token"].as_str().expect("token").to_string()
        };
        let (bad, _) = server.post(
            "/api/v1/runner/register",
            None,
            &json!({"registration_token": "nope", "name": "x", "labels": [], "version": "0"}),
        );
        assert_eq!(bad, 401);
        let first = register("first");
        let second = register("second");
        let poll_waiting = |token: &str, wait: u64| {
            server.post(
                "/api/v1/runner/poll",
                Some(token),
                &json!({"labels": ["self-hosted", "linux"], "free_slots": 1, "load": {"cpu": 0.1, "memory": 0.2, "running_jobs": 0}, "version": "0", "wait_seconds": wait}),
            )
        };
        let poll = |token: &str| poll_waiting(token, 5);
        let (status, lease) = poll(&first);
        assert_eq!(status, 200, "{lease}");
        assert_eq!(lease["job_key"], "build");
        assert_eq!(lease["attempt"], 1);
        assert_eq!(lease["secrets"]["DEPLOY_TOKEN"], "hunter2-secret");
        let job_ref = json!({"run_id": run_id, "job_key": "build", "attempt": 1, "lease_token": lease["lease_token"]});
        let chunk = |offset: u64, data: &str| {
            let mut c = job_ref.clone();
            c["offset"] = json!(offset);
            c["data"] = json!(data);
            server.post("/api/v1/runner/logs", Some(&first), &c)
        };
        assert_eq!(chunk(0, "hello ").1["length"], 6);
        // The same chunk again is not stored twice; an overlapping one adds only its tail.
        assert_eq!(chunk(0, "hello ").1["length"], 6);
        assert_eq!(chunk(0, "hello world\n").1["length"], 12);
        // A gap is refused.
        assert_eq!(chunk(20, "later").0, 409);
        assert_eq!(server.log(&run_id, "build"), "hello world\n");
        // Nothing else is queued yet (test needs build).
        let (status, _) = poll_waiting(&second, 0);
        assert_eq!(status, 204);

        // The first runner goes silent: its lease expires and the job is leased again.
        let (status, retry) = wait_for("the lease to expire", Duration::from_secs(20), || {
            let (status, body) = poll(&second);
            (status == 200).then_some((status, body))
        });
        assert_eq!(status, 200);
        assert_eq!(retry["job_key"], "build");
        assert_eq!(retry["attempt"], 2);
        // The stale runner's heartbeat, logs and result are refused.
        let (status, _) = server.post("/api/v1/runner/heartbeat", Some(&first), &job_ref);
        assert_eq!(status, 409);
        let mut stale = job_ref.clone();
        stale["result"] = json!("success");
        let (status, _) = server.post("/api/v1/runner/complete", Some(&first), &stale);
        assert_eq!(status, 409);
        // The new attempt completes; completing twice is fine; the log is the new attempt's.
        let mut done = json!({"run_id": run_id, "job_key": "build", "attempt": 2, "lease_token": retry["lease_token"], "result": "success", "outputs": {"artifact": "x"}});
        assert_eq!(
            server
                .post("/api/v1/runner/complete", Some(&second), &done)
                .0,
            200
        );
        assert_eq!(
            server
                .post("/api/v1/runner/complete", Some(&second), &done)
                .0,
            200
        );
        done["result"] = json!("failure");
        assert_eq!(
            server
                .post("/api/v1/runner/complete", Some(&second), &done)
                .0,
            409
        );
        let run = server.run(&run_id);
        assert_eq!(job(&run, "build")["state"], "success");
        assert_eq!(job(&run, "build")["attempt"], 2);
        assert_eq!(job(&run, "test")["state"], "queued", "{run:#}");
        // `test` is handed out with build's result and outputs.
        let (status, next) = poll(&second);
        assert_eq!(status, 200);
        assert_eq!(next["job_key"], "test");
        assert_eq!(next["needs"][0]["outputs"]["artifact"], "x");
        // Without a runner token, nothing.
        let (status, _) = server.post("/api/v1/runner/heartbeat", None, &job_ref);
        assert_eq!(status, 401);
    }
}

#[test]
fn a_killed_runner_job_is_retried_elsewhere_and_a_killed_server_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (n, database) in databases(dir.path()).iter().enumerate() {
        let root = dir.path().join(format!("db{n}"));
        std::fs::create_dir_all(&root).expect("mkdir");
        let (repo, mut server) = setup(&root, "github", "octo/hello", 2, database);
        // The job waits for a file, so the test decides when it may finish.
        let gate = root.join("gate");
        let workflow = format!(
            "on: push\njobs:\n  slow:\n    runs-on: self-hosted\n    steps:\n      - run: |\n          echo started >> {marks}\n          while [ ! -e {gate} ]; do sleep 0.05; done\n          echo done\n",
            marks = root.join("marks").display(),
            gate = gate.display()
        );
        let sha = repo.commit(&[(".github/workflows/ci.yml", &workflow)], "main");
        let mut first = server.runner("first", "");
        let run_id = push_main(&server, "p", &sha);
        wait_for("the job to start", Duration::from_secs(30), || {
            std::fs::read_to_string(root.join("marks"))
                .ok()
                .filter(|m| m.lines().count() == 1)
        });
        // kill -9 the runner mid-job; its process group's step may linger, so the gate
        // stays closed until the second attempt runs.
        first.kill9();
        let _second = server.runner("second", "");
        wait_for("the retry to start", Duration::from_secs(30), || {
            std::fs::read_to_string(root.join("marks"))
                .ok()
                .filter(|m| m.lines().count() == 2)
        });
        // kill -9 the server mid-run, restart it on the same database and port.
        let url = server.url.clone();
        let listen = url.trim_start_matches("http://").to_string();
        server.process.kill9();
        let server = Server::start(&root, database, &listen);
        std::fs::write(&gate, "").expect("open the gate");
        let run = server.finished_run(&run_id, Duration::from_secs(60));
        assert_eq!(run["status"], "success", "{run:#}");
        let slow = job(&run, "slow");
        // Attempt 2 unless the restart outlasted the 2-second lease (then the job was
        // leased once more); either way exactly one attempt succeeded.
        assert!(slow["attempt"].as_i64() >= Some(2), "{run:#}");
        assert_eq!(slow["state"], "success");
        assert!(server.log(&run_id, "slow").contains("done"));
        // Exactly once: one run, one successful attempt.
        assert_eq!(server.runs().len(), 1);
    }
}

#[test]
fn many_concurrent_deliveries_each_make_one_run_and_unmatched_labels_are_reported() {
    on_each_database(|root, database| {
        let (repo, server) = setup(root, "github", "octo/hello", 30, database);
        let workflow = "on: push\njobs:\n  gpu:\n    runs-on: [self-hosted, gpu]\n    steps:\n      - run: echo\n";
        let sha = repo.commit(&[(".github/workflows/ci.yml", workflow)], "main");
        let _runner = server.runner("cpu-only", "");
        let body = github_push("octo/hello", "refs/heads/main", None, &sha);
        std::thread::scope(|s| {
            for t in 0..8 {
                let (server, body) = (&server, &body);
                s.spawn(move || {
                    for i in 0..25 {
                        let (status, reply) =
                            server.hook("github", "push", &format!("d-{t}-{i}"), body, SECRET);
                        assert_eq!(status, 202, "{reply}");
                    }
                });
            }
        });
        let runs = wait_for("200 runs", Duration::from_secs(120), || {
            let (_, body) = server.get("/api/v1/runs?limit=1000");
            let runs = body["runs"].as_array()?.clone();
            (runs.len() == 200).then_some(runs)
        });
        // No registered runner has `gpu`: the API says so instead of queueing silently.
        let run = server.run(runs[0]["id"].as_str().expect("id"));
        let gpu = job(&run, "gpu");
        assert_eq!(gpu["state"], "queued");
        assert!(
            gpu["waiting_reason"]
                .as_str()
                .unwrap_or_default()
                .contains("gpu"),
            "{gpu}"
        );
        let (_, metrics) = server.get("/metrics");
        let text = metrics.as_str().unwrap_or_default();
        assert!(
            text.contains("tess_queue_depth{labels=\"self-hosted,gpu\"} 200"),
            "{text}"
        );
        assert!(
            text.contains("tess_webhook_deliveries_total{result=\"received\"} 200"),
            "{text}"
        );
        // Cancelling a run cancels its queued jobs.
        let id = runs[0]["id"].as_str().expect("id");
        let (status, _) = server.post(
            &format!("/api/v1/runs/{id}/cancel"),
            Some(API_TOKEN),
            &json!({}),
        );
        assert_eq!(status, 200);
        assert_eq!(server.run(id)["status"], "cancelled");
    });
}

#[test]
fn github_signature_test_vector_and_every_corpus_webhook_parses() {
    // GitHub's documented example (docs: "Validating webhook deliveries").
    let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert!(github_signature_ok(
        SECRET.as_bytes(),
        b"Hello, World!",
        Some(sig)
    ));
    assert!(!github_signature_ok(
        SECRET.as_bytes(),
        b"Hello, World?",
        Some(sig)
    ));
    assert!(!github_signature_ok(
        SECRET.as_bytes(),
        b"Hello, World!",
        None
    ));
    assert!(!github_signature_ok(
        SECRET.as_bytes(),
        b"Hello, World!",
        Some("sha256=zz")
    ));

    let Some(dir) = corpus_dir("webhooks") else {
        return;
    };
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).expect("index"))
            .expect("index json");
    let mut outcomes = Vec::new();
    for entry in index.as_array().expect("list") {
        let file = entry["file"].as_str().expect("file");
        let body: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(file)).expect("payload"))
                .expect("payload json");
        let header = entry["event_header"].as_str().expect("header");
        let (_, event) = header.split_once(": ").expect("Name: value");
        let forge = if entry["provider"] == "github" {
            Forge::Github
        } else {
            Forge::Gitlab
        };
        let parsed = parse(forge, event, &body).unwrap_or_else(|e| panic!("{file}: {e}"));
        let what = match parsed {
            Parsed::Ping { .. } => "ping".to_string(),
            Parsed::Ignored { .. } => "ignored".to_string(),
            Parsed::Trigger(t) => format!("{:?} {}", t.event.kind, t.event.git_ref),
        };
        outcomes.push(format!(
            "{} {}: {what}",
            entry["provider"].as_str().unwrap_or_default(),
            entry["case"].as_str().unwrap_or_default()
        ));
    }
    insta::assert_snapshot!(outcomes.join("\n"));
}

#[test]
fn sigterm_drains_a_runner_after_its_running_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (repo, server) = setup(root, "github", "octo/hello", 30, &databases(root)[0]);
    let gate = root.join("gate");
    let started = root.join("started");
    let workflow = format!(
        "on: push\njobs:\n  slow:\n    runs-on: self-hosted\n    steps:\n      - run: |\n          touch {started}\n          while [ ! -e {gate} ]; do sleep 0.05; done\n          echo finished\n",
        started = started.display(),
        gate = gate.display()
    );
    let sha = repo.commit(&[(".github/workflows/ci.yml", &workflow)], "main");
    let mut runner = server.runner("r", "");
    let run_id = push_main(&server, "p", &sha);
    wait_for("the job to start", Duration::from_secs(30), || {
        started.exists().then_some(())
    });
    // SIGTERM: the runner keeps going until its job is done (had it stopped the job, the
    // run would not succeed with the job's last line), then exits 0.
    runner.terminate();
    std::fs::write(&gate, "").expect("open the gate");
    assert_eq!(runner.exit_status(Duration::from_secs(30)).code(), Some(0));
    let run = server.finished_run(&run_id, Duration::from_secs(10));
    assert_eq!(run["status"], "success", "{run:#}");
    assert!(server.log(&run_id, "slow").contains("finished"));
}

#[test]
fn two_replicas_on_one_database_run_every_job_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let databases = databases(dir.path());
    // Replicas share state only through the database: PostgreSQL when available, else the
    // same SQLite file (WAL works across processes).
    let database = databases.last().expect("a database");
    let repo = Repo::new(dir.path());
    let roots: Vec<_> = ["a", "b"].iter().map(|n| dir.path().join(n)).collect();
    for root in &roots {
        std::fs::create_dir_all(root).expect("mkdir");
        std::fs::write(
            root.join("tess.toml"),
            config("github", "octo/hello", &repo.bare, 30),
        )
        .expect("config");
    }
    let replicas: Vec<Server> = roots
        .iter()
        .map(|root| Server::start(root, database, "127.0.0.1:0"))
        .collect();
    let _runners: Vec<_> = replicas
        .iter()
        .enumerate()
        .map(|(i, s)| s.runner(&format!("r{i}"), ""))
        .collect();
    let workflow = "on: push\njobs:\n  a:\n    runs-on: self-hosted\n    steps:\n      - run: echo a\n  b:\n    runs-on: self-hosted\n    steps:\n      - run: echo b\n  c:\n    needs: [a, b]\n    runs-on: self-hosted\n    steps:\n      - run: echo c\n";
    let sha = repo.commit(&[(".github/workflows/ci.yml", workflow)], "main");
    let body = github_push("octo/hello", "refs/heads/main", None, &sha);
    // Every delivery goes to both replicas (as behind a load balancer that retries).
    for i in 0..10 {
        for server in &replicas {
            let (status, reply) = server.hook("github", "push", &format!("d{i}"), &body, SECRET);
            assert!(status == 202 || status == 200, "{reply}");
        }
    }
    let runs = wait_for("10 finished runs", Duration::from_secs(120), || {
        let runs = replicas[0].runs();
        let done = runs.iter().all(|r| r["status"] == "success");
        (runs.len() == 10 && done).then_some(runs)
    });
    for run in runs {
        let run = replicas[1].run(run["id"].as_str().expect("id"));
        for key in ["a", "b", "c"] {
            let j = job(&run, key);
            assert_eq!(j["state"], "success", "{run:#}");
            assert_eq!(j["attempt"], 1, "ran more than once: {run:#}");
        }
    }
}

#[test]
fn a_newer_run_cancels_the_older_one_in_its_concurrency_group() {
    on_each_database(|root, database| {
        let (repo, server) = setup(root, "github", "octo/hello", 30, database);
        let gate = root.join("gate");
        let marks = root.join("marks");
        let workflow = |n: u32| {
            format!(
                "on: push\nconcurrency:\n  group: ${{{{ github.workflow }}}}-${{{{ github.ref }}}}\n  cancel-in-progress: true\njobs:\n  slow:\n    runs-on: self-hosted\n    steps:\n      - run: |\n          echo {n} >> {marks}\n          while [ ! -e {gate} ]; do sleep 0.05; done\n",
                marks = marks.display(),
                gate = gate.display()
            )
        };
        let _runners = [server.runner("r1", ""), server.runner("r2", "")];
        let first = repo.commit(&[(".github/workflows/ci.yml", &workflow(1))], "main");
        let older = push_main(&server, "one", &first);
        wait_for(
            "the first run's job to start",
            Duration::from_secs(30),
            || {
                std::fs::read_to_string(&marks)
                    .ok()
                    .filter(|m| m.contains('1'))
            },
        );
        let second = repo.commit(&[(".github/workflows/ci.yml", &workflow(2))], "main");
        server.hook(
            "github",
            "push",
            "two",
            &github_push("octo/hello", "refs/heads/main", Some(&first), &second),
            SECRET,
        );
        let newer = run_of_delivery(&server, "github:two");
        // The older run is cancelled while its job runs (the runner hears it at its heartbeat).
        let run = server.finished_run(&older, Duration::from_secs(30));
        assert_eq!(run["status"], "cancelled", "{run:#}");
        assert_eq!(job(&run, "slow")["state"], "cancelled");
        std::fs::write(&gate, "").expect("open the gate");
        let run = server.finished_run(&newer, Duration::from_secs(30));
        assert_eq!(run["status"], "success", "{run:#}");
    });
}

#[test]
fn rerun_failed_jobs_keeps_the_successful_ones() {
    on_each_database(|root, database| {
        let (repo, server) = setup(root, "github", "octo/hello", 30, database);
        let _runner = server.runner("r", "");
        let marker = root.join("broken");
        std::fs::write(&marker, "").expect("marker");
        let workflow = format!(
            "on: push\njobs:\n  steady:\n    runs-on: self-hosted\n    steps:\n      - run: echo steady\n  flaky:\n    runs-on: self-hosted\n    steps:\n      - run: test ! -e {}\n  after:\n    needs: flaky\n    runs-on: self-hosted\n    steps:\n      - run: echo after\n",
            marker.display()
        );
        let sha = repo.commit(&[(".github/workflows/ci.yml", &workflow)], "main");
        let first = push_main(&server, "p", &sha);
        let run = server.finished_run(&first, Duration::from_secs(30));
        assert_eq!(run["status"], "failed");
        assert_eq!(job(&run, "after")["state"], "skipped");
        // The fix is in; run the failed jobs again.
        std::fs::remove_file(&marker).expect("fix");
        let (status, reply) = server.post(
            &format!("/api/v1/runs/{first}/rerun?failed=1"),
            Some(API_TOKEN),
            &json!({}),
        );
        assert_eq!(status, 201, "{reply}");
        let second = reply["id"].as_str().expect("id").to_string();
        let run = server.finished_run(&second, Duration::from_secs(30));
        assert_eq!(run["status"], "success", "{run:#}");
        assert_eq!(job(&run, "flaky")["attempt"], 1);
        assert_eq!(job(&run, "after")["state"], "success");
        // `steady` kept its result without running again.
        assert_eq!(job(&run, "steady")["state"], "success");
        assert_eq!(job(&run, "steady")["attempt"], 0);
        let (status, _) = server.post("/api/v1/runs/nope/rerun", Some(API_TOKEN), &json!({}));
        assert_eq!(status, 404);
    });
}

#[test]
fn the_runs_client_lists_shows_and_follows_logs() {
    use crate::support::{stdout, tess_with_env};
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (repo, server) = setup(root, "github", "octo/hello", 30, &databases(root)[0]);
    let _runner = server.runner("r", "");
    let gate = root.join("gate");
    let workflow = format!(
        "on: push\njobs:\n  talk:\n    runs-on: self-hosted\n    steps:\n      - run: |\n          echo first line\n          while [ ! -e {gate} ]; do sleep 0.05; done\n          echo last line\n",
        gate = gate.display()
    );
    let sha = repo.commit(&[(".github/workflows/ci.yml", &workflow)], "main");
    let run_id = push_main(&server, "p", &sha);
    wait_for("the first line", Duration::from_secs(30), || {
        server
            .log(&run_id, "talk")
            .contains("first line")
            .then_some(())
    });
    let env = [
        ("TESS_SERVER", server.url.as_str()),
        ("TESS_TOKEN", API_TOKEN),
    ];
    // `logs -f` streams while the job runs: the first line arrives, then the gate opens,
    // then the rest arrives and the client exits when the job ends.
    let mut follower = std::process::Command::new(env!("CARGO_BIN_EXE_tess"))
        .args(["runs", "logs", &run_id, "talk", "-f"])
        .envs(env)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn tess runs logs -f");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::io::BufReader::new(follower.stdout.take().expect("stdout"));
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in reader.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen: Vec<String> = Vec::new();
    let mut wait_line = |text: &str| {
        while !seen.iter().any(|l| l.contains(text)) {
            seen.push(
                rx.recv_timeout(Duration::from_secs(30))
                    .expect("a streamed line"),
            );
        }
    };
    wait_line("first line");
    std::fs::write(&gate, "").expect("open the gate");
    wait_line("last line");
    let mut follower = crate::harness::Process { child: follower };
    assert!(follower.exit_status(Duration::from_secs(30)).success());
    let listed = stdout(&tess_with_env(root, &["runs", "list"], &env));
    assert!(
        listed.contains(&run_id) && listed.contains("octo/hello"),
        "{listed}"
    );
    let shown = stdout(&tess_with_env(root, &["runs", "show", &run_id], &env));
    assert!(
        shown.contains("talk") && shown.contains("success"),
        "{shown}"
    );
    let refused = tess_with_env(root, &["runs", "cancel", &run_id], &env);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "a finished run cannot be cancelled"
    );
}

#[test]
fn the_openapi_document_is_generated_from_the_routes_and_their_types() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (repo, server) = setup(
        dir.path(),
        "github",
        "octo/hello",
        30,
        &databases(dir.path())[0],
    );
    let (status, doc) = server.get("/api/v1/openapi.json");
    assert_eq!(status, 200);
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{doc:#}"
    );
    let paths = doc["paths"].as_object().expect("paths");
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    // Every `$ref` in the document names a schema it defines.
    let text = doc.to_string();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().expect("name");
        assert!(
            schemas.contains_key(name),
            "{name} is referenced, not defined"
        );
    }
    let mut operations = 0;
    // Every documented operation is served (an unknown route is an empty 404) and says
    // what it answers.
    for (path, ops) in paths {
        let url = format!(
            "{}{}",
            server.url,
            path.replace("{id}", "x").replace("{key}", "y")
        );
        for (method, op) in ops.as_object().expect("operations") {
            operations += 1;
            assert!(op["summary"].is_string(), "{method} {path}: no summary");
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}: no responses"
            );
            let agent = crate::harness::agent();
            let mut r = match method.as_str() {
                "get" => agent.get(&url).call(),
                "post" => agent.post(&url).send_empty(),
                other => panic!("{other}"),
            }
            .expect("request");
            let status = r.status().as_u16();
            let body = r.body_mut().read_to_string().unwrap_or_default();
            assert!(
                !(status == 404 && body.is_empty()) && status != 405,
                "{method} {path}: {status}"
            );
        }
    }
    assert!(operations >= 30, "{operations} operations");
    // A served answer has exactly the fields its schema documents.
    let _runner = server.runner("r1", "");
    let sha = repo.commit(&[(".github/workflows/ci.yml", WORKFLOW)], "main");
    let body = github_push("octo/hello", "refs/heads/main", None, &sha);
    let (status, reply) = server.hook("github", "push", "openapi-1", &body, SECRET);
    assert_eq!(status, 202, "{reply}");
    let id = run_of_delivery(&server, "github:openapi-1");
    server.finished_run(&id, Duration::from_secs(60));
    let fields = |schema: &str| -> std::collections::BTreeSet<String> {
        schemas[schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{schema}: {:#}", schemas[schema]))
            .keys()
            .cloned()
            .collect()
    };
    let (_, list) = server.get("/api/v1/runs");
    let run = &list["runs"][0];
    let keys: std::collections::BTreeSet<String> =
        run.as_object().expect("run").keys().cloned().collect();
    assert_eq!(keys, fields("RunSummary"));
    let detail = server.run(&id);
    let job_keys: std::collections::BTreeSet<String> = detail["jobs"][0]
        .as_object()
        .expect("job")
        .keys()
        .cloned()
        .collect();
    assert!(job_keys.is_subset(&fields("Job")), "{job_keys:?}");
    // Typed: the answers deserialize into the API's own types.
    let _: tesseract_ci::rest::RunList = serde_json::from_value(list).expect("RunList");
    let detail: tesseract_ci::rest::RunDetail = serde_json::from_value(detail).expect("RunDetail");
    assert_eq!(detail.run.id, id);
}

#[test]
fn a_concurrency_group_holds_one_pending_run_until_the_running_one_ends() {
    on_each_database(|root, database| {
        let (repo, server) = setup(root, "github", "octo/hello", 30, database);
        let gate = root.join("gate");
        let workflow = |n: u32| {
            format!(
                "on: push\nconcurrency: deploy-${{{{ github.ref }}}}\njobs:\n  deploy:\n    runs-on: self-hosted\n    steps:\n      - run: |\n          echo deploying {n}\n          while [ ! -e {gate} ]; do sleep 0.05; done\n",
                gate = gate.display()
            )
        };
        let _runners = [server.runner("r1", ""), server.runner("r2", "")];
        let runs: Vec<String> = (1..=3)
            .map(|n| {
                let sha = repo.commit(&[(".github/workflows/ci.yml", &workflow(n))], "main");
                push_main(&server, &format!("d{n}"), &sha)
            })
            .collect();
        // The first runs, the second waits, the third replaces the second.
        let status = |id: &str| {
            server.run(id)["status"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        // On a timeout, what the three runs were doing (the first one once took longer
        // than this under a loaded CI machine: this says why, next time).
        let seen = || {
            let states: Vec<String> = runs.iter().map(|id| status(id)).collect();
            format!(
                "the first deploy to start; runs {states:?}, first {:#}",
                server.run(&runs[0])
            )
        };
        wait_for_showing(seen, Duration::from_secs(30), || {
            (status(&runs[0]) == "running").then_some(())
        });
        assert_eq!(status(&runs[1]), "cancelled");
        assert_eq!(status(&runs[2]), "pending");
        std::fs::write(&gate, "").expect("open the gate");
        for id in [&runs[0], &runs[2]] {
            let run = server.finished_run(id, Duration::from_secs(30));
            assert_eq!(run["status"], "success", "{run:#}");
        }
        assert!(server.log(&runs[2], "deploy").contains("deploying 3"));
        // The third started only after the first had finished.
        let first = server.run(&runs[0]);
        let third = server.run(&runs[2]);
        assert!(
            job(&third, "deploy")["started_at"].as_i64()
                >= job(&first, "deploy")["finished_at"].as_i64()
        );
        std::fs::remove_file(&gate).expect("close the gate");
    });
}

#[test]
fn concurrency_queue_max_keeps_every_waiting_run_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (repo, server) = setup(root, "github", "octo/hello", 30, &databases(root)[0]);
    let gate = root.join("gate");
    let workflow = |n: u32| {
        format!(
            "on: push\nconcurrency:\n  group: deploy\n  queue: max\njobs:\n  deploy:\n    runs-on: self-hosted\n    steps:\n      - run: |\n          echo deploying {n}\n          while [ ! -e {gate} ]; do sleep 0.05; done\n",
            gate = gate.display()
        )
    };
    let _runners = [server.runner("r1", ""), server.runner("r2", "")];
    let runs: Vec<String> = (1..=3)
        .map(|n| {
            let sha = repo.commit(&[(".github/workflows/ci.yml", &workflow(n))], "main");
            push_main(&server, &format!("q{n}"), &sha)
        })
        .collect();
    let status = |id: &str| {
        server.run(id)["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    wait_for("the first deploy to start", Duration::from_secs(30), || {
        (status(&runs[0]) == "running").then_some(())
    });
    // `queue: max`: both newer runs wait (with `single`, the third replaces the second).
    assert_eq!(status(&runs[1]), "pending");
    assert_eq!(status(&runs[2]), "pending");
    std::fs::write(&gate, "").expect("open the gate");
    let finished: Vec<serde_json::Value> = runs
        .iter()
        .map(|id| server.finished_run(id, Duration::from_secs(60)))
        .collect();
    for run in &finished {
        assert_eq!(run["status"], "success", "{run:#}");
    }
    // One at a time, oldest first.
    for pair in finished.windows(2) {
        assert!(
            job(&pair[1], "deploy")["started_at"].as_i64()
                >= job(&pair[0], "deploy")["finished_at"].as_i64()
        );
    }
}

/// Pushes `ci` as `.gitlab-ci.yml` of `group/app` to `main` and sends GitLab's push hook
/// (delivery `delivery`); the run it starts.
pub(crate) fn gitlab_push(
    server: &Server,
    repo: &crate::harness::Repo,
    ci: &str,
    delivery: &str,
) -> String {
    let sha = repo.commit(&[(".gitlab-ci.yml", ci)], "main");
    let body = json!({
        "object_kind": "push", "ref": "refs/heads/main", "before": "0000000000000000000000000000000000000000",
        "after": sha, "checkout_sha": sha, "project": {"path_with_namespace": "group/app"},
    });
    let (status, reply) = server.hook(
        "gitlab",
        "Push Hook",
        delivery,
        &serde_json::to_vec(&body).expect("json"),
        SECRET,
    );
    assert_eq!(status, 202, "{reply}");
    run_of_delivery(server, &format!("gitlab:{delivery}"))
}

/// A GitLab repository and server in `root` with two runners, and the files the gated
/// jobs of the auto-cancel tests use: each appends its pipeline's number to `started`,
/// then waits for `gate` to exist.
struct Gated {
    repo: crate::harness::Repo,
    server: Server,
    _runners: [crate::harness::Process; 2],
    gate: std::path::PathBuf,
    started: std::path::PathBuf,
}

impl Gated {
    fn new(root: &std::path::Path, database: &str) -> Gated {
        let (repo, server) = setup(root, "gitlab", "group/app", 30, database);
        let _runners = [server.runner("r1", ""), server.runner("r2", "")];
        Gated {
            repo,
            server,
            _runners,
            gate: root.join("gate"),
            started: root.join("started"),
        }
    }

    /// The script lines of a gated job of pipeline `n`.
    fn script(&self, n: u32) -> String {
        format!(
            "    - echo {n} >> {}\n    - while [ ! -e {} ]; do sleep 0.05; done\n",
            self.started.display(),
            self.gate.display()
        )
    }

    fn wait_started(&self, count: usize) {
        wait_for("jobs to start", Duration::from_secs(30), || {
            std::fs::read_to_string(&self.started)
                .ok()
                .filter(|s| s.lines().count() >= count)
                .map(drop)
        });
    }

    fn open(&self) {
        std::fs::write(&self.gate, "").expect("open the gate");
    }
}

#[test]
fn gitlab_auto_cancels_older_pipelines_only_when_their_started_jobs_are_interruptible() {
    on_each_database(|root, database| {
        let g = Gated::new(root, database);
        let ci = |interruptible: bool, n: u32| {
            format!(
                "default:\n  interruptible: {interruptible}\nslow:\n  script:\n{}",
                g.script(n)
            )
        };
        let push = |n: u32, interruptible: bool| {
            gitlab_push(
                &g.server,
                &g.repo,
                &ci(interruptible, n),
                &format!("gl-{n}"),
            )
        };
        // An interruptible job is cancelled by the next pipeline of its branch...
        let first = push(1, true);
        g.wait_started(1);
        let second = push(2, false);
        let run = g.server.finished_run(&first, Duration::from_secs(30));
        assert_eq!(run["status"], "cancelled", "{run:#}");
        // ...a job that is not interruptible keeps running (and so does its pipeline).
        g.wait_started(2);
        let third = push(3, false);
        g.wait_started(3);
        assert_eq!(g.server.run(&second)["status"], "running");
        g.open();
        for id in [&second, &third] {
            let run = g.server.finished_run(id, Duration::from_secs(30));
            assert_eq!(run["status"], "success", "{run:#}");
        }
    });
}

#[test]
fn gitlab_auto_cancel_on_new_commit_none_keeps_older_pipelines_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let g = Gated::new(dir.path(), &databases(dir.path())[0]);
    let ci = |n: u32| {
        format!(
            "workflow:\n  auto_cancel:\n    on_new_commit: none\ndefault:\n  interruptible: true\nslow:\n  script:\n{}",
            g.script(n)
        )
    };
    let push = |n: u32| gitlab_push(&g.server, &g.repo, &ci(n), &format!("gl-none-{n}"));
    let first = push(1);
    let second = push(2);
    // Both interruptible jobs start: the newer pipeline cancelled nothing.
    g.wait_started(2);
    g.open();
    for id in [&first, &second] {
        let run = g.server.finished_run(id, Duration::from_secs(30));
        assert_eq!(run["status"], "success", "{run:#}");
    }
}

#[test]
fn gitlab_auto_cancel_on_new_commit_interruptible_cancels_only_interruptible_jobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let g = Gated::new(dir.path(), &databases(dir.path())[0]);
    let ci = |n: u32| {
        format!(
            "workflow:\n  auto_cancel:\n    on_new_commit: interruptible\n\
             tests:\n  interruptible: true\n  script:\n{script}\
             release:\n  interruptible: false\n  script:\n{script}",
            script = g.script(n)
        )
    };
    let first = gitlab_push(&g.server, &g.repo, &ci(1), "gl-int-1");
    g.wait_started(2);
    let second = gitlab_push(&g.server, &g.repo, &ci(2), "gl-int-2");
    // The older pipeline's interruptible job stops while the gate is still shut...
    wait_for(
        "the interruptible job to stop",
        Duration::from_secs(30),
        || (job(&g.server.run(&first), "tests")["state"] == "cancelled").then_some(()),
    );
    // ...and its other job runs on (GitLab's `interruptible`, unlike `conservative`).
    assert_eq!(job(&g.server.run(&first), "release")["state"], "running");
    g.open();
    let run = g.server.finished_run(&first, Duration::from_secs(30));
    assert_eq!(job(&run, "release")["state"], "success", "{run:#}");
    assert_eq!(run["status"], "cancelled", "{run:#}");
    let run = g.server.finished_run(&second, Duration::from_secs(30));
    assert_eq!(run["status"], "success", "{run:#}");
}

#[test]
fn gitlab_auto_cancel_on_job_failure_all_cancels_the_rest_of_the_run_on_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (repo, server) = setup(root, "gitlab", "group/app", 30, &databases(root)[0]);
    let _runners = [server.runner("r1", ""), server.runner("r2", "")];
    let never = root.join("never");
    let ci = format!(
        "workflow:\n  auto_cancel:\n    on_job_failure: all\nstages: [test, deploy]\n\
         breaks:\n  stage: test\n  script: exit 1\n\
         slow:\n  stage: test\n  script:\n    - while [ ! -e {never} ]; do sleep 0.05; done\n\
         deploy:\n  stage: deploy\n  when: always\n  script: echo deployed\n",
        never = never.display()
    );
    let id = gitlab_push(&server, &repo, &ci, "gl-fail-all");
    let run = server.finished_run(&id, Duration::from_secs(30));
    assert_eq!(run["status"], "failed", "{run:#}");
    assert_eq!(job(&run, "breaks")["state"], "failure", "{run:#}");
    assert_eq!(job(&run, "slow")["state"], "cancelled", "{run:#}");
    assert_eq!(job(&run, "deploy")["state"], "cancelled", "{run:#}");
}

#[test]
fn a_reused_workspace_and_scratch_hold_exactly_what_the_next_job_starts_with() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (repo, server) = setup(root, "github", "octo/hello", 30, &databases(root)[0]);
    // One slot: every job below runs in the same (reused) workspace.
    let _runner = server.runner("r", "");
    // `dirty` changes everything it can; `check`, after it, must see the commit as is.
    let workflow = r#"on: push
jobs:
  dirty:
    runs-on: self-hosted
    steps:
      - run: |
          echo changed > tracked.txt
          chmod +x tracked.txt
          echo new > untracked.txt
          mkdir -p made/deeper && echo x > made/deeper/file
          rm -r dir && ln -s /etc dir
          ln -sf /etc/hostname link-to-file
          git -c user.name=t -c user.email=t@t commit -qam local
          git tag local-tag
          echo left > "$RUNNER_TEMP/left-behind" && mkdir -p "$RUNNER_TEMP/made/deeper"
          echo left > "$(dirname "$GITHUB_ENV")/left-behind"
          echo FROM_DIRTY=1 >> "$GITHUB_ENV"
  check:
    needs: dirty
    runs-on: self-hosted
    steps:
      # One check a line: under `bash -e` a failure before a `&&` does not end the step.
      - run: |
          test "$(cat tracked.txt)" = original
          test ! -x tracked.txt
          test ! -e untracked.txt
          test ! -e made
          test ! -e link-to-file
          test -d dir
          test ! -L dir
          test "$(cat dir/inner.txt)" = inner
          test "$(git rev-parse HEAD)" = "$GITHUB_SHA"
          test -z "$(git status --porcelain)"
          test -z "$(git tag --list local-tag)"
          # RUNNER_TEMP starts empty but for this job's own files.
          test ! -e "$RUNNER_TEMP/left-behind"
          test ! -e "$RUNNER_TEMP/made"
          test ! -e "$(dirname "$GITHUB_ENV")/left-behind"
          test ! -s "$GITHUB_ENV"
          test -z "${FROM_DIRTY:-}"
  # Changes nothing: the workspace is then as its restore left it, and the next commit's
  # restore must still look for what that commit no longer has.
  settle:
    needs: check
    runs-on: self-hosted
    steps:
      - run: "true"
"#;
    let files = [
        (".github/workflows/ci.yml", workflow),
        ("tracked.txt", "original\n"),
        ("dir/inner.txt", "inner\n"),
        ("old.txt", "old\n"),
    ];
    let sha = repo.commit(&files, "main");
    let first = push_main(&server, "one", &sha);
    let run = server.finished_run(&first, Duration::from_secs(30));
    assert_eq!(
        run["status"],
        "success",
        "{run:#}\n{}",
        server.log(&first, "check")
    );
    // The next commit deletes a file: the reused workspace must not keep it.
    std::fs::remove_file(repo.work.join("old.txt")).expect("rm");
    let workflow = "on: push\njobs:\n  later:\n    runs-on: self-hosted\n    steps:\n      - run: test ! -e old.txt; test \"$(cat tracked.txt)\" = original; test -z \"$(git status --porcelain)\"; echo secret > \"$RUNNER_TEMP/credentials\"\n";
    let sha = repo.commit(&[(".github/workflows/ci.yml", workflow)], "main");
    let second = push_main(&server, "two", &sha);
    let run = server.finished_run(&second, Duration::from_secs(30));
    assert_eq!(
        run["status"],
        "success",
        "{run:#}\n{}",
        server.log(&second, "later")
    );
    // Both runs used one workspace: it was restored, not made anew.
    let workspaces = std::fs::read_dir(root.join("runner-r/cache/workspaces"))
        .expect("workspaces")
        .count();
    assert_eq!(workspaces, 1);
    // RUNNER_TEMP is emptied at the end of a job too (the slot's scratch, see runner/job.rs).
    let workdir = root.join("runner-r").canonicalize().expect("workdir");
    let scratch = if std::path::Path::new("/dev/shm").is_dir() {
        use sha2::Digest;
        let hash = sha2::Sha256::digest(workdir.to_string_lossy().as_bytes());
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        std::path::PathBuf::from(format!("/dev/shm/tess-runner-{}", &hex[..16]))
    } else {
        workdir.join("jobs")
    };
    let temp = scratch.join("slot-0/run/tmp");
    assert!(
        temp.is_dir(),
        "{} is not the slot's RUNNER_TEMP",
        temp.display()
    );
    assert!(
        !temp.join("credentials").exists(),
        "RUNNER_TEMP kept what the last job wrote"
    );
}

#[test]
fn a_github_push_is_planned_from_the_mirror_objects_with_git_s_commit_title() {
    on_each_database(|root, database| {
        let (repo, server) = setup(root, "github", "octo/hello", 30, database);
        let _runner = server.runner("r1", "");
        let workflow = "on: push\njobs:\n  build:\n    runs-on: self-hosted\n    steps:\n      - run: echo built\n";
        let sha = repo.commit_titled(
            &[
                (".github/workflows/ci.yml", workflow),
                // GitHub reads neither a subdirectory's files nor other files than YAML.
                (".github/workflows/nested/broken.yml", "jobs: ["),
                (".github/workflows/README.md", "notes"),
            ],
            "main",
            "Fix the login\npage redirect\n\nThe body is not part of the title.",
        );
        let id = push_main(&server, "objects-1", &sha);
        let run = server.finished_run(&id, Duration::from_secs(60));
        assert_eq!(run["status"], "success", "{run:#}");
        // `%s`: the first paragraph, on one line.
        assert_eq!(run["title"], "Fix the login page redirect", "{run:#}");
        // A commit pushed after the mirror's object reader started is found by it.
        let again = workflow.replace("built", "built again");
        let next = repo.commit_titled(&[(".github/workflows/ci.yml", &again)], "main", "Second");
        let id = push_main(&server, "objects-2", &next);
        let run = server.finished_run(&id, Duration::from_secs(60));
        assert_eq!(run["title"], "Second", "{run:#}");
        assert!(server.log(&id, "build").contains("built again"), "{run:#}");
    });
}
