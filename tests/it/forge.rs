//! Commit statuses reach the forge: a fake GitHub / GitLab API (a small axum app over real
//! HTTP) records every call and answers as scripted — failures, rate limits, outages.

use crate::harness::{
    SECRET, Server, databases, on_each_database, setup_with, wait_for, wait_for_showing,
};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the fake forge received.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub auth: String,
    pub body: Value,
    /// What the fake answered.
    pub status: u16,
}

/// An answer to give instead of `201 Created`.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: &'static str,
}

#[derive(Default)]
struct Recorded {
    calls: Vec<Call>,
    script: VecDeque<Answer>,
    /// Every request gets 503 while set.
    down: bool,
    /// The GitHub App's public key (PKCS#1 DER): app tokens are checked with it.
    app_key: Option<Vec<u8>>,
    check_runs: i64,
    /// When set, a request with another `Authorization` gets 401 (GitHub's "Bad credentials").
    token: Option<String>,
}

pub(crate) struct FakeForge {
    pub url: String,
    state: Arc<Mutex<Recorded>>,
}

impl FakeForge {
    pub(crate) fn start() -> FakeForge {
        let state = Arc::new(Mutex::new(Recorded::default()));
        let shared = Arc::clone(&state);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("addr")).expect("send");
                let app = axum::Router::new()
                    .fallback(move |request| answer(Arc::clone(&shared), request));
                axum::serve(listener, app).await.expect("serve");
            });
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("fake forge");
        FakeForge {
            url: format!("http://{addr}"),
            state,
        }
    }

    pub(crate) fn calls(&self) -> Vec<Call> {
        self.state.lock().expect("lock").calls.clone()
    }

    pub(crate) fn script(&self, answers: Vec<Answer>) {
        self.state.lock().expect("lock").script.extend(answers);
    }

    pub(crate) fn set_app_key(&self, der: Vec<u8>) {
        self.state.lock().expect("lock").app_key = Some(der);
    }

    pub(crate) fn require_token(&self, token: &str) {
        self.state.lock().expect("lock").token = Some(format!("Bearer {token}"));
    }

    pub(crate) fn set_down(&self, down: bool) {
        self.state.lock().expect("lock").down = down;
    }

    /// The accepted statuses by context, in the order they arrived.
    pub(crate) fn accepted(
        &self,
        context_field: &str,
    ) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut by_context = std::collections::BTreeMap::<String, Vec<String>>::new();
        for c in self.calls().iter().filter(|c| c.status < 300) {
            by_context
                .entry(c.body[context_field].as_str().unwrap_or("").to_string())
                .or_default()
                .push(c.body["state"].as_str().unwrap_or("").to_string());
        }
        by_context
    }
}

async fn answer(
    state: Arc<Mutex<Recorded>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = request.uri().path().to_string();
    let method = request.method().to_string();
    let auth = request
        .headers()
        .get("authorization")
        .or_else(|| request.headers().get("private-token"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let mut recorded = state.lock().expect("lock");
    let refused = recorded.token.as_ref().is_some_and(|t| *t != auth);
    let scripted = if refused {
        Some(Answer {
            status: 401,
            headers: vec![],
            body: "{\"message\":\"Bad credentials\"}",
        })
    } else if recorded.down {
        Some(Answer {
            status: 503,
            headers: vec![],
            body: "{\"message\":\"down\"}",
        })
    } else {
        recorded.script.pop_front()
    };
    let (status, headers, text) = match scripted {
        Some(a) => (a.status, a.headers, a.body.to_string()),
        None => github_app_answer(&mut recorded, &method, &path, &auth).unwrap_or((
            201,
            vec![],
            body.to_string(),
        )),
    };
    recorded.calls.push(Call {
        at: Instant::now(),
        method,
        path,
        auth,
        body,
        status,
    });
    let mut response = (
        axum::http::StatusCode::from_u16(status).expect("status"),
        text,
    )
        .into_response();
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    response
}

type Answered = (u16, Vec<(&'static str, String)>, String);

/// GitHub's app and check-run endpoints: an installation token for a valid app JWT, ids
/// for new check runs.
fn github_app_answer(
    recorded: &mut Recorded,
    method: &str,
    path: &str,
    auth: &str,
) -> Option<Answered> {
    if path.ends_with("/installation") {
        return Some((200, vec![], "{\"id\": 42}".into()));
    }
    if path == "/app/installations/42/access_tokens" {
        let valid = recorded
            .app_key
            .as_ref()
            .is_some_and(|key| app_jwt_is_valid(auth, key));
        if !valid {
            return Some((401, vec![], "{\"message\":\"bad JWT\"}".into()));
        }
        let expires = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        let body = serde_json::json!({"token": "ghs_installation_token", "expires_at": expires});
        return Some((201, vec![], body.to_string()));
    }
    if path.ends_with("/check-runs") && method == "POST" {
        recorded.check_runs += 1;
        return Some((201, vec![], format!("{{\"id\": {}}}", recorded.check_runs)));
    }
    if path.contains("/check-runs/") && method == "PATCH" {
        let id = path.rsplit('/').next().unwrap_or("0");
        return Some((200, vec![], format!("{{\"id\": {id}}}")));
    }
    None
}

/// `Bearer <JWT>` signed (RS256) by the app's key, issued by app 1234, not expired.
fn app_jwt_is_valid(auth: &str, public_key: &[u8]) -> bool {
    use base64::Engine;
    let Some(jwt) = auth.strip_prefix("Bearer ") else {
        return false;
    };
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return false;
    };
    let decode = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()
    };
    let (Some(claims_json), Some(signature)) = (decode(claims), decode(signature)) else {
        return false;
    };
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public_key,
    );
    let signed = key
        .verify(format!("{header}.{claims}").as_bytes(), &signature)
        .is_ok();
    let claims: Value = serde_json::from_slice(&claims_json).unwrap_or(Value::Null);
    let now = chrono::Utc::now().timestamp();
    signed && claims["iss"] == "1234" && claims["exp"].as_i64().is_some_and(|e| e > now)
}

const WORKFLOW: &str = "name: ci\non: push\njobs:\n  build:\n    runs-on: self-hosted\n    steps:\n      - run: echo built\n  test:\n    needs: build\n    runs-on: self-hosted\n    steps:\n      - run: exit 3\n  lint:\n    runs-on: self-hosted\n    continue-on-error: true\n    steps:\n      - run: exit 1\n";

/// A server for `octo/hello` (GitHub) reporting to `forge`, retrying quickly.
fn github_server(
    root: &std::path::Path,
    database: &str,
    forge: &FakeForge,
) -> (crate::harness::Repo, Server) {
    let report = format!(
        "[repo.report]\napi_url = \"{}\"\ntoken = \"ghp-test-token\"\n\
         [reporting]\nbackoff_ms = 50\nmax_attempts = 4\n",
        forge.url
    );
    setup_with(root, "github", "octo/hello", 30, database, &report)
}

fn wait_for_final(forge: &FakeForge, field: &str, contexts: &[&str], within: Duration) {
    let what = || {
        format!(
            "final statuses of {contexts:?} (calls: {:#?})",
            forge.calls()
        )
    };
    wait_for_showing(what, within, || {
        let accepted = forge.accepted(field);
        contexts
            .iter()
            .all(|c| {
                accepted
                    .get(*c)
                    .and_then(|states| states.last())
                    .is_some_and(|s| s != "pending" && s != "running")
            })
            .then_some(())
    });
}

#[test]
fn every_job_and_run_becomes_a_github_commit_status() {
    on_each_database(|root, database| {
        let forge = FakeForge::start();
        let (repo, server) = github_server(root, database, &forge);
        let _runner = server.runner("r", "");
        let sha = repo.commit(&[(".github/workflows/ci.yml", WORKFLOW)], "main");
        let run_id = crate::server::push_main(&server, "p", &sha);
        let run = server.finished_run(&run_id, Duration::from_secs(30));
        assert_eq!(run["status"], "failed", "{run:#}");
        let contexts = ["tess/ci", "tess/ci/build", "tess/ci/test", "tess/ci/lint"];
        wait_for_final(&forge, "context", &contexts, Duration::from_secs(30));
        let accepted = forge.accepted("context");
        let last = |c: &str| accepted[c].last().cloned().unwrap_or_default();
        assert_eq!(last("tess/ci/build"), "success");
        assert_eq!(last("tess/ci/test"), "failure");
        // Allowed to fail: the commit is not failed by it (GitHub Actions shows it so).
        assert_eq!(last("tess/ci/lint"), "success");
        assert_eq!(last("tess/ci"), "failure");
        // A status never goes back: once final, nothing else is sent for it.
        for (context, states) in &accepted {
            let first_final = states.iter().position(|s| s != "pending");
            assert!(
                first_final.is_none_or(|i| i == states.len() - 1),
                "{context}: {states:?}"
            );
            // At most one send per state it went through (waiting, queued, running, final).
            assert!(states.len() <= 4, "{context}: {states:?}");
        }
        let calls = forge.calls();
        let call = calls
            .iter()
            .find(|c| c.body["context"] == "tess/ci/test" && c.body["state"] == "failure")
            .expect("test's failure");
        assert_eq!(call.path, format!("/repos/octo/hello/statuses/{sha}"));
        assert_eq!(call.auth, "Bearer ghp-test-token");
        assert!(
            call.body["description"]
                .as_str()
                .unwrap_or("")
                .starts_with("failed in "),
            "{:?}",
            call.body
        );
        assert_eq!(
            call.body["target_url"],
            format!("{}/api/v1/runs/{run_id}", server.url)
        );
        // The token never reaches the server's log.
        let log = std::fs::read_to_string(root.join("server.log")).unwrap_or_default();
        assert!(!log.contains("ghp-test-token"));
    });
}

#[test]
fn gitlab_statuses_follow_its_state_machine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let forge = FakeForge::start();
    let report = format!(
        "[repo.report]\napi_url = \"{}/api/v4\"\ntoken = \"glpat-test\"\n[reporting]\nbackoff_ms = 50\n",
        forge.url
    );
    let (repo, server) = setup_with(
        root,
        "gitlab",
        "group/project",
        30,
        &databases(root)[0],
        &report,
    );
    let _runner = server.runner("r", "");
    let pipeline = "build:\n  stage: build\n  script: [echo built]\ntest:\n  stage: test\n  script: [exit 1]\n  allow_failure: true\n";
    let sha = repo.commit(&[(".gitlab-ci.yml", pipeline)], "main");
    let body = serde_json::json!({
        "object_kind": "push", "ref": "refs/heads/main", "before": "0".repeat(40), "after": sha,
        "checkout_sha": sha, "project": {"path_with_namespace": "group/project", "default_branch": "main"},
        "commits": [], "total_commits_count": 0
    });
    let body = serde_json::to_vec(&body).expect("json");
    let (status, reply) = server.hook("gitlab", "Push Hook", "g-1", &body, SECRET);
    assert_eq!(status, 202, "{reply}");
    let contexts = ["tess/gitlab-ci/build", "tess/gitlab-ci/test"];
    wait_for_final(&forge, "name", &contexts, Duration::from_secs(30));
    let accepted = forge.accepted("name");
    // pending → running → success; an allowed failure does not fail the pipeline.
    let build = &accepted["tess/gitlab-ci/build"];
    assert_eq!(
        build.last().map(String::as_str),
        Some("success"),
        "{accepted:?}"
    );
    assert!(
        build
            .iter()
            .all(|s| ["pending", "running", "success"].contains(&s.as_str()))
    );
    let order = |s: &str| {
        ["pending", "running", "success"]
            .iter()
            .position(|x| *x == s)
    };
    assert!(
        build.windows(2).all(|w| order(&w[0]) <= order(&w[1])),
        "{build:?}"
    );
    assert_eq!(
        accepted["tess/gitlab-ci/test"].last().map(String::as_str),
        Some("success")
    );
    let call = forge
        .calls()
        .into_iter()
        .find(|c| c.status < 300)
        .expect("a call");
    assert_eq!(
        call.path,
        format!("/api/v4/projects/group%2Fproject/statuses/{sha}")
    );
    assert_eq!(call.auth, "glpat-test");
    assert_eq!(call.body["ref"], "main");
    assert!(call.body.get("pipeline_id").is_none());

    // A merge request's statuses join its head pipeline (`pipeline_id`).
    let mr_pipeline = "mr:\n  script: [echo checked]\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"merge_request_event\"\n";
    let head = repo.commit(&[(".gitlab-ci.yml", mr_pipeline)], "feature");
    let body = serde_json::json!({
        "object_kind": "merge_request",
        "project": {"path_with_namespace": "group/project"},
        "object_attributes": {"iid": 5, "action": "open", "source_branch": "feature",
            "target_branch": "main", "last_commit": {"id": head}, "head_pipeline_id": 777}
    });
    let body = serde_json::to_vec(&body).expect("json");
    let (status, reply) = server.hook("gitlab", "Merge Request Hook", "g-2", &body, SECRET);
    assert_eq!(status, 202, "{reply}");
    wait_for_final(
        &forge,
        "name",
        &["tess/gitlab-ci/mr"],
        Duration::from_secs(30),
    );
    let joined: Vec<Value> = forge
        .calls()
        .into_iter()
        .filter(|c| c.body["name"] == "tess/gitlab-ci/mr")
        .map(|c| c.body["pipeline_id"].clone())
        .collect();
    assert!(
        !joined.is_empty() && joined.iter().all(|p| *p == 777),
        "{joined:?}"
    );
}

#[test]
fn an_outage_and_rate_limits_delay_statuses_but_lose_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let forge = FakeForge::start();
    forge.script(vec![Answer {
        status: 429,
        headers: vec![("retry-after", "1".into())],
        body: "{\"message\":\"slow down\"}",
    }]);
    let (repo, server) = github_server(root, &databases(root)[0], &forge);
    let sha = repo.commit(&[(".github/workflows/ci.yml", WORKFLOW)], "main");
    let run_id = crate::server::push_main(&server, "p", &sha);
    wait_for("the rate limit", Duration::from_secs(10), || {
        forge.calls().iter().any(|c| c.status == 429).then_some(())
    });
    // The run goes on meanwhile and has new states to report at once; the forge said to
    // wait a second, so none is sent before it is over (the sends already on their way
    // with the limited one aside).
    let runner = server.runner("r", "");
    server.finished_run(&run_id, Duration::from_secs(30));
    let limited = forge
        .calls()
        .iter()
        .find(|c| c.status == 429)
        .expect("the 429")
        .at;
    wait_for("a send after the pause", Duration::from_secs(10), || {
        forge
            .calls()
            .iter()
            .any(|c| c.at.saturating_duration_since(limited) >= Duration::from_millis(950))
            .then_some(())
    });
    let too_soon = forge.calls().into_iter().filter(|c| {
        let after = c.at.saturating_duration_since(limited);
        after > Duration::from_millis(100) && after < Duration::from_millis(950)
    });
    assert_eq!(too_soon.count(), 0, "Retry-After not honoured");
    let contexts = ["tess/ci", "tess/ci/build", "tess/ci/test", "tess/ci/lint"];
    wait_for_final(&forge, "context", &contexts, Duration::from_secs(30));
    // Then the forge is down while a second run happens: its statuses wait, and once the
    // forge is back only the newest state of each is sent.
    forge.set_down(true);
    let sha = repo.commit(&[("README", "two\n")], "main");
    let run_id = crate::server::push_main(&server, "two", &sha);
    server.finished_run(&run_id, Duration::from_secs(30));
    drop(runner);
    wait_for("failed sends", Duration::from_secs(10), || {
        (forge.calls().iter().filter(|c| c.status == 503).count() >= 3).then_some(())
    });
    forge.set_down(false);
    let of_second = |forge: &FakeForge| {
        let mut finals = std::collections::BTreeMap::<String, Vec<String>>::new();
        for c in forge
            .calls()
            .iter()
            .filter(|c| c.status < 300 && c.path.ends_with(&sha))
        {
            let state = c.body["state"].as_str().unwrap_or("").to_string();
            finals
                .entry(c.body["context"].as_str().unwrap_or("").into())
                .or_default()
                .push(state);
        }
        finals
    };
    wait_for_showing(
        || format!("the second run's statuses: {:?}", of_second(&forge)),
        Duration::from_secs(30),
        || {
            (of_second(&forge)
                .values()
                .filter(|s| s.iter().any(|s| s != "pending"))
                .count()
                == 4)
                .then_some(())
        },
    );
    for (context, states) in of_second(&forge) {
        assert_eq!(states.len(), 1, "{context}: {states:?}");
    }
    let (_, metrics) = server.get("/metrics");
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    for result in ["delivered", "retrying", "rate limited"] {
        let line = format!("tess_forge_reports_total{{forge=\"github\",result=\"{result}\"}}");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
}

#[test]
fn statuses_left_by_a_stopped_server_are_sent_after_restart_and_refusals_are_visible() {
    on_each_database(|root, database| {
        let forge = FakeForge::start();
        forge.set_down(true);
        let (repo, mut server) = github_server(root, database, &forge);
        let runner = server.runner("r", "");
        let sha = repo.commit(&[(".github/workflows/ci.yml", WORKFLOW)], "main");
        let run_id = crate::server::push_main(&server, "p", &sha);
        server.finished_run(&run_id, Duration::from_secs(30));
        drop(runner);
        server.process.kill9();
        assert!(forge.calls().iter().all(|c| c.status == 503));
        forge.set_down(false);
        let server = Server::start(root, database, "127.0.0.1:0");
        let contexts = ["tess/ci", "tess/ci/build", "tess/ci/test", "tess/ci/lint"];
        wait_for_final(&forge, "context", &contexts, Duration::from_secs(30));
        // A status the forge refuses (a token without access) is given up and shown.
        forge.script(vec![Answer {
            status: 404,
            headers: vec![],
            body: "{\"message\":\"Not Found\"}",
        }]);
        let sha = repo.commit(&[("README", "again\n")], "main");
        crate::server::push_main(&server, "again", &sha);
        let what = || format!("a refused report (calls: {:#?})", forge.calls());
        wait_for_showing(what, Duration::from_secs(30), || {
            let (_, body) = server.get("/api/v1/reports");
            body["reports"]
                .as_array()?
                .iter()
                .find(|r| r["result"] == "refused")
                .cloned()
        });
        let (_, body) = server.get("/api/v1/reports");
        let refused = body["reports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["result"] == "refused")
            .cloned()
            .unwrap_or_default();
        assert!(
            refused["error"].as_str().unwrap_or("").contains("404"),
            "{refused}"
        );
    });
}

#[test]
fn the_example_server_config_parses_with_its_reporting_and_schedule_sections() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tess.toml");
    let config = tesseract_ci::server::config::Config::load(&path).expect("examples/tess.toml");
    assert_eq!(config.reporting.max_attempts, 12);
    let reporting: Vec<String> = config
        .repos
        .iter()
        .filter_map(|r| r.report.as_ref().map(|to| to.api_url(r.forge)))
        .collect();
    assert_eq!(
        reporting,
        [
            "https://api.github.com",
            "https://gitlab.example.com/api/v4"
        ]
    );
    // Versions and schedules.
    assert_eq!(
        config.scheduler.catch_up,
        tesseract_ci::trigger::cron::CatchUp::Latest
    );
    let gitlab = &config.repos[1];
    assert_eq!(gitlab.poll_seconds, Some(60));
    assert_eq!(gitlab.schedules[0].timezone, "Europe/Berlin");
    assert_eq!(gitlab.schedules[0].variables["NIGHTLY"], "1");
}

#[test]
fn a_pull_request_the_filters_leave_out_still_gets_a_passing_status_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let forge = FakeForge::start();
    let (repo, server) = github_server(root, &databases(root)[0], &forge);
    let workflow = "name: code\non:\n  pull_request:\n    paths: ['src/**']\njobs:\n  build:\n    runs-on: self-hosted\n    steps:\n      - run: 'true'\n";
    let base = repo.commit(&[(".github/workflows/code.yml", workflow)], "main");
    let head = repo.commit(&[("docs/guide.md", "words\n")], "docs");
    let pr = serde_json::json!({
        "action": "opened",
        "number": 9,
        "pull_request": {"number": 9, "head": {"ref": "docs", "sha": head}, "base": {"ref": "main", "sha": base}},
        "repository": {"full_name": "octo/hello"},
    });
    let body = serde_json::to_vec(&pr).expect("json");
    let (status, reply) = server.hook("github", "pull_request", "pr-9", &body, SECRET);
    assert_eq!(status, 202, "{reply}");
    wait_for_final(&forge, "context", &["tess/code"], Duration::from_secs(30));
    let call = forge
        .calls()
        .into_iter()
        .find(|c| c.body["context"] == "tess/code")
        .expect("the pipeline's status");
    assert_eq!(call.path, format!("/repos/octo/hello/statuses/{head}"));
    assert_eq!(call.body["state"], "success");
    let description = call.body["description"].as_str().unwrap_or_default();
    assert!(description.starts_with("skipped: "), "{description}");
    assert!(description.contains("src/**"), "{description}");
    // The run is recorded as skipped, with no jobs.
    let runs = server.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "skipped");
}

#[test]
fn a_github_app_gets_check_runs_with_annotations_in_batches_of_fifty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(root)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // A key like the one GitHub gives an app (PKCS#1 PEM).
    openssl(&["genrsa", "-traditional", "-out", "app.pem", "2048"]);
    openssl(&[
        "rsa",
        "-in",
        "app.pem",
        "-RSAPublicKey_out",
        "-outform",
        "DER",
        "-out",
        "app.der",
    ]);
    let forge = FakeForge::start();
    forge.set_app_key(std::fs::read(root.join("app.der")).expect("public key"));
    let report = format!(
        "[repo.report]\napi_url = \"{}\"\napp_id = 1234\nprivate_key = {{ file = \"app.pem\" }}\n\
         [reporting]\nbackoff_ms = 50\n",
        forge.url
    );
    let (repo, server) = setup_with(
        root,
        "github",
        "octo/hello",
        30,
        &databases(root)[0],
        &report,
    );
    let _runner = server.runner("r", "");
    let workflow = "name: ci\non: push\njobs:\n  build:\n    runs-on: self-hosted\n    steps:\n      - run: |\n          for i in $(seq 1 60); do echo \"::error file=src/lib.rs,line=$i::bad $i\"; done\n          echo '::warning::no file for this one'\n          exit 1\n  lint:\n    runs-on: self-hosted\n    continue-on-error: true\n    steps:\n      - run: exit 1\n  deploy:\n    needs: build\n    runs-on: self-hosted\n    steps:\n      - run: 'true'\n";
    let sha = repo.commit(&[(".github/workflows/ci.yml", workflow)], "main");
    let run_id = crate::server::push_main(&server, "p", &sha);
    server.finished_run(&run_id, Duration::from_secs(30));
    let concluded = |name: &str| {
        forge
            .calls()
            .into_iter()
            .filter(|c| c.path.contains("/check-runs") && c.body["name"] == name)
            .filter_map(|c| c.body["conclusion"].as_str().map(str::to_string))
            .next_back()
    };
    let what = || format!("check runs concluded (calls: {:#?})", forge.calls());
    let annotations_sent = || -> usize {
        forge
            .calls()
            .iter()
            .filter_map(|c| c.body["output"]["annotations"].as_array().map(Vec::len))
            .sum()
    };
    wait_for_showing(what, Duration::from_secs(30), || {
        let all = ["tess/ci", "tess/ci/build", "tess/ci/lint", "tess/ci/deploy"]
            .iter()
            .all(|name| concluded(name).is_some());
        (all && annotations_sent() >= 60).then_some(())
    });
    assert_eq!(concluded("tess/ci/build").as_deref(), Some("failure"));
    assert_eq!(concluded("tess/ci/lint").as_deref(), Some("neutral"));
    assert_eq!(concluded("tess/ci/deploy").as_deref(), Some("skipped"));
    assert_eq!(concluded("tess/ci").as_deref(), Some("failure"));
    let calls = forge.calls();
    // The installation was looked up and its token minted with a valid app JWT, once.
    let minted: Vec<&Call> = calls
        .iter()
        .filter(|c| c.path.ends_with("/access_tokens"))
        .collect();
    assert_eq!(minted.len(), 1, "{minted:#?}");
    assert_eq!(minted[0].status, 201);
    let checks: Vec<&Call> = calls
        .iter()
        .filter(|c| c.path.contains("/check-runs"))
        .collect();
    assert!(
        checks
            .iter()
            .all(|c| c.auth == "Bearer ghs_installation_token")
    );
    // One check run per job and run: made once, updated after.
    for name in ["tess/ci", "tess/ci/build", "tess/ci/lint", "tess/ci/deploy"] {
        let made = checks
            .iter()
            .filter(|c| c.method == "POST" && c.body["name"] == name)
            .count();
        assert_eq!(made, 1, "{name}");
    }
    // build's 60 located annotations went 50 + 10; the one without a file is in the summary.
    let batches: Vec<usize> = checks
        .iter()
        .filter_map(|c| c.body["output"]["annotations"].as_array().map(Vec::len))
        .filter(|n| *n > 0)
        .collect();
    assert_eq!(batches, [50, 10], "{checks:#?}");
    let annotated = checks
        .iter()
        .find(|c| {
            c.body["output"]["annotations"]
                .as_array()
                .is_some_and(|a| a.len() == 50)
        })
        .expect("the first batch");
    let first = &annotated.body["output"]["annotations"][0];
    assert_eq!(first["path"], "src/lib.rs");
    assert_eq!(first["start_line"], 1);
    assert_eq!(first["annotation_level"], "failure");
    assert_eq!(first["message"], "bad 1");
    let summary = annotated.body["output"]["summary"]
        .as_str()
        .unwrap_or_default();
    assert!(summary.contains("no file for this one"), "{summary}");
    assert!(summary.contains(&run_id), "{summary}");
}

#[test]
fn statuses_of_repositories_without_reporting_are_cleared_not_kept_pending() {
    on_each_database(|root, database| {
        let (repo, server) = crate::harness::setup(root, "github", "octo/hello", 30, database);
        let _runner = server.runner("r", "");
        let sha = repo.commit(&[(".github/workflows/ci.yml", WORKFLOW)], "main");
        let run_id = crate::server::push_main(&server, "p", &sha);
        server.finished_run(&run_id, Duration::from_secs(30));
        let metrics = || {
            server
                .get("/metrics")
                .1
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        wait_for_showing(metrics, Duration::from_secs(15), || {
            let text = metrics();
            (text.contains("tess_forge_reports_pending 0\n")
                && text.contains("tess_forge_reports_given_up 0\n"))
            .then_some(())
        });
    });
}

/// `tess run --event-path` reads a real GitHub event payload (as a GitHub Actions job finds
/// at `$GITHUB_EVENT_PATH`) the way the server reads the webhook.
#[test]
fn github_event_payloads_become_the_run_s_event() {
    let Some(webhooks) = corpus_dir("webhooks/github") else {
        return;
    };
    use crate::support::{corpus_dir, stderr, stdout, tess};
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let workflow = "on: [push, pull_request, workflow_dispatch]\njobs:\n  show:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo \"seen ${{ github.event_name }} ${{ github.ref }} ${{ github.base_ref }}\"\n";
    std::fs::create_dir_all(root.join(".github/workflows")).expect("mkdir");
    std::fs::write(root.join(".github/workflows/ci.yml"), workflow).expect("write");
    let cases = [
        (
            "push",
            "push__branch-create-push__octokit__webhooks__with-new-branch.payload.json",
            "seen push refs/heads/",
        ),
        (
            "tag",
            "push__tag-push__drone__go-scm__push_tag.json",
            "seen push refs/tags/",
        ),
        (
            "pull_request",
            "pull_request__opened__octokit__webhooks__opened.payload.json",
            "seen pull_request refs/pull/",
        ),
        (
            "manual",
            "workflow_dispatch__manual__octokit__webhooks__payload.json",
            "seen workflow_dispatch refs/heads/",
        ),
    ];
    for (event, file, expected) in cases {
        let path = webhooks.join(file);
        let out = tess(
            root,
            &[
                "run",
                "--event",
                event,
                "--event-path",
                path.to_str().expect("utf-8"),
            ],
        );
        let text = stdout(&out);
        assert!(out.status.success(), "{event}: {text}\n{}", stderr(&out));
        assert!(
            text.contains(expected),
            "{event}: expected `{expected}` in\n{text}"
        );
    }
    // A payload that starts nothing, and one that is not JSON, say so with the file.
    let deleted = webhooks.join("push__tag-delete__octokit__webhooks__payload.json");
    let out = tess(
        root,
        &[
            "run",
            "--event",
            "push",
            "--event-path",
            deleted.to_str().expect("utf-8"),
        ],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("starts no run"), "{}", stderr(&out));
    std::fs::write(root.join("bad.json"), "{\n  \"ref\": ,\n}").expect("write");
    let out = tess(
        root,
        &["run", "--event", "push", "--event-path", "bad.json"],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("bad.json:2:"), "{}", stderr(&out));
}
