//! Jobs a person starts, on a real server with real runners: a GitLab manual job played with
//! its job inputs (checked by the server first), a blocking one holding its pipeline, and a
//! deployment to a protected environment approved or declined.

use crate::harness::{
    API_TOKEN, Repo, Server, config, databases, on_each_database, setup, wait_for_showing,
};
use crate::server::{job, push_main};
use serde_json::{Value, json};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

/// A build, then a manual `deploy` with two job inputs; `stages` and what follows are the
/// caller's (the web UI test's pipeline uses it too).
pub(crate) const BUILD_AND_MANUAL_DEPLOY: &str = r#"build:
  stage: build
  script: echo built
deploy:
  stage: deploy
  when: manual
  inputs:
    target_env:
      default: staging
      options: [staging, production]
    replicas:
      type: number
      default: 3
  script:
    - echo "deploying ${{ job.inputs.target_env }} x${{ job.inputs.replicas }}"
"#;

fn manual_pipeline() -> String {
    format!(
        "stages: [build, deploy, verify]\n{BUILD_AND_MANUAL_DEPLOY}\
         verify:\n  stage: verify\n  needs: [deploy]\n  script: echo verified\n\
         later:\n  stage: verify\n  script: echo later-ran\n"
    )
}

fn play(server: &Server, run: &str, key: &str, inputs: Value) -> (u16, Value) {
    server.post(
        &format!("/api/v1/runs/{run}/jobs/{key}/play"),
        Some(API_TOKEN),
        &json!({ "inputs": inputs }),
    )
}

/// The run once `key` is in `state`.
fn when_job_is(server: &Server, run: &str, key: &str, state: &str) -> Value {
    wait_for_showing(
        || format!("{key} to be {state}: {:#}", server.run(run)),
        TIMEOUT,
        || {
            let now = server.run(run);
            (job(&now, key)["state"] == state).then_some(now)
        },
    )
}

#[test]
fn gitlab_manual_jobs_are_played_on_the_server_with_their_job_inputs() {
    on_each_database(|root, database| {
        let (repo, server) = setup(root, "gitlab", "group/app", 30, database);
        let _runner = server.runner("r1", "");
        let ci = manual_pipeline();
        let sha = repo.commit_titled(&[(".gitlab-ci.yml", &ci)], "main", "Ship the login page");
        let body = json!({
            "object_kind": "push", "ref": "refs/heads/main",
            "before": "0000000000000000000000000000000000000000", "after": sha,
            "checkout_sha": sha, "project": {"path_with_namespace": "group/app"},
        });
        let (status, reply) = server.hook(
            "gitlab",
            "Push Hook",
            "manual-1",
            &serde_json::to_vec(&body).expect("json"),
            crate::harness::SECRET,
        );
        assert_eq!(status, 202, "{reply}");
        let id = crate::server::run_of_delivery(&server, "gitlab:manual-1");
        // The pipeline passes without the manual job (it may fail): GitLab's "passed" with
        // `deploy` waiting to be played, what needs it waiting, `later` not held up.
        let run = server.finished_run(&id, TIMEOUT);
        assert_eq!(run["status"], "success", "{run:#}");
        assert_eq!(run["title"], "Ship the login page", "{run:#}");
        assert!(
            run["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{run:#}"
        );
        let deploy = job(&run, "deploy");
        assert_eq!(deploy["state"], "manual", "{run:#}");
        assert_eq!(deploy["gate"], "manual");
        assert_eq!(deploy["inputs"][0]["name"], "target_env");
        assert_eq!(
            deploy["inputs"][0]["options"],
            json!(["staging", "production"])
        );
        assert_eq!(deploy["inputs"][1]["type"], "number");
        assert_eq!(job(&run, "verify")["state"], "waiting");
        assert_eq!(job(&run, "later")["state"], "success");
        // The run's pipeline version is the one the version sync finds for the commit.
        let (status, synced) = server.post_with("/api/v1/repos/group/app/sync", &[]);
        assert!(status < 300, "{synced}");
        let (_, current) = server.get("/api/v1/repos/group/app/versions/current");
        assert_eq!(run["version_id"], current["version_id"], "{current:#}");

        // Values that do not fit, an input it does not have, a job that is not manual:
        // refused before anything runs.
        for (inputs, status, expected) in [
            (
                json!({"replicas": "many"}),
                422,
                "input `replicas`: `many` is not a number",
            ),
            (
                json!({"target_env": "prod"}),
                422,
                "`prod` is not one of the options (staging, production)",
            ),
            (
                json!({"region": "eu"}),
                422,
                "job `deploy` has no input `region` (its inputs: target_env, replicas)",
            ),
        ] {
            let (got, body) = play(&server, &id, "deploy", inputs);
            assert_eq!(got, status, "{body}");
            assert!(body.to_string().contains(expected), "{body}");
        }
        let (got, body) = play(&server, &id, "build", json!({}));
        assert_eq!(got, 409, "{body}");
        assert_eq!(server.run(&id)["status"], "success", "nothing was played");

        // Played: it runs with the inputs given, then what needs it; the run passes again.
        let (got, body) = play(
            &server,
            &id,
            "deploy",
            json!({"target_env": "production", "replicas": "5"}),
        );
        assert_eq!(got, 202, "{body}");
        let run = when_job_is(&server, &id, "verify", "success");
        assert_eq!(job(&run, "deploy")["state"], "success", "{run:#}");
        assert_eq!(
            job(&run, "deploy")["played"],
            json!({"target_env": "production", "replicas": "5"})
        );
        let run = server.finished_run(&id, TIMEOUT);
        assert_eq!(run["status"], "success", "{run:#}");
        let log = server.log(&id, "deploy");
        assert!(log.contains("deploying production x5"), "{log}");
        let (got, body) = play(&server, &id, "deploy", json!({}));
        assert_eq!(got, 409, "played once: {body}");
    });
}

#[test]
fn a_blocking_manual_job_holds_its_pipeline_until_played_or_cancelled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (repo, server) = setup(root, "gitlab", "group/app", 30, &databases(root)[0]);
    let _runner = server.runner("r1", "");
    let blocking = manual_pipeline().replace(
        "  when: manual\n",
        "  when: manual\n  allow_failure: false\n",
    );
    let id = crate::server::gitlab_push(&server, &repo, &blocking, "blocking-1");
    // `later` is in a later stage than the blocking job: it waits with `verify`.
    let run = when_job_is(&server, &id, "deploy", "manual");
    assert_eq!(job(&run, "deploy")["gate"], "manual-blocking");
    assert_eq!(job(&run, "build")["state"], "success", "{run:#}");
    assert_eq!(
        run["status"], "running",
        "a blocked pipeline is not finished"
    );
    assert_eq!(job(&run, "later")["state"], "waiting", "{run:#}");
    // Played with the defaults: everything runs.
    let (got, body) = play(&server, &id, "deploy", json!({}));
    assert_eq!(got, 202, "{body}");
    let run = server.finished_run(&id, TIMEOUT);
    assert_eq!(run["status"], "success", "{run:#}");
    assert!(server.log(&id, "deploy").contains("deploying staging x3"));
    assert_eq!(job(&run, "later")["state"], "success");

    // Another pipeline, cancelled while it waits: its manual job can no longer be played.
    let id = crate::server::gitlab_push(&server, &repo, &blocking, "blocking-2");
    when_job_is(&server, &id, "deploy", "manual");
    let (status, body) = server.post(
        &format!("/api/v1/runs/{id}/cancel"),
        Some(API_TOKEN),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    let run = server.finished_run(&id, TIMEOUT);
    assert_eq!(run["status"], "cancelled", "{run:#}");
    assert_eq!(job(&run, "deploy")["state"], "cancelled");
    let (got, body) = play(&server, &id, "deploy", json!({}));
    assert_eq!(got, 409, "{body}");
}

// `build` also checks that a job gets the host's huge-page policy, not the runner's own
// (the runner turns transparent huge pages off for itself).
const DEPLOY: &str = "on: push
jobs:
  build:
    runs-on: self-hosted
    steps:
      - run: echo built
      - run: \"! grep -q 'THP_enabled:[[:space:]]*0' /proc/self/status\"
  deploy:
    needs: build
    runs-on: self-hosted
    environment:
      name: production
      url: https://example.com
    steps:
      - run: echo deployed-to-production
  smoke:
    needs: deploy
    runs-on: self-hosted
    steps:
      - run: echo smoke-tested
";

#[test]
fn a_deployment_to_a_protected_environment_waits_for_an_approval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let repo = Repo::new(root);
    let text = config("github", "octo/hello", &repo.bare, 30).replace(
        "[repo.secrets]",
        "protected_environments = [\"production\"]\n[repo.secrets]",
    );
    std::fs::write(root.join("tess.toml"), text).expect("config");
    let server = Server::start(root, &databases(root)[0], "127.0.0.1:0");
    let _runner = server.runner("r1", "");
    let review = |run: &str, decision: &str| {
        server.post(
            &format!("/api/v1/runs/{run}/jobs/deploy/{decision}"),
            Some(API_TOKEN),
            &json!({}),
        )
    };

    let sha = repo.commit(&[(".github/workflows/deploy.yml", DEPLOY)], "main");
    let id = push_main(&server, "deploy-1", &sha);
    let run = when_job_is(&server, &id, "deploy", "approval");
    assert_eq!(run["status"], "running", "{run:#}");
    assert_eq!(job(&run, "deploy")["environment"], "production");
    assert_eq!(job(&run, "smoke")["state"], "waiting");
    let (got, body) = review(&id, "approve");
    assert_eq!(got, 202, "{body}");
    let run = server.finished_run(&id, TIMEOUT);
    assert_eq!(run["status"], "success", "{run:#}");
    assert!(server.log(&id, "deploy").contains("deployed-to-production"));
    let (got, body) = review(&id, "approve");
    assert_eq!(got, 409, "reviewed once: {body}");

    // Declined: the job fails without running (as GitHub fails a rejected deployment) and
    // what needs it is skipped.
    let sha = repo.commit(&[("README", "again\n")], "main");
    let id = push_main(&server, "deploy-2", &sha);
    when_job_is(&server, &id, "deploy", "approval");
    let (got, body) = review(&id, "decline");
    assert_eq!(got, 202, "{body}");
    let run = server.finished_run(&id, TIMEOUT);
    assert_eq!(run["status"], "failed", "{run:#}");
    let deploy = job(&run, "deploy");
    assert_eq!(deploy["state"], "failure");
    assert_eq!(
        deploy["error"],
        "the deployment to `production` was rejected"
    );
    assert_eq!(deploy["attempt"], 0, "it never ran");
    assert_eq!(job(&run, "smoke")["state"], "skipped");

    // A job with no gate is not reviewable.
    let (got, body) = server.post(
        &format!("/api/v1/runs/{id}/jobs/build/approve"),
        Some(API_TOKEN),
        &json!({}),
    );
    assert_eq!(got, 409, "{body}");
}
