//! The server under bad input and faults: webhooks authenticated before anything is read or
//! stored, bounded memory, credentials in clone URLs, leases across server downtime,
//! planning claims of dead planners, processes of a killed runner, log gaps and masking.

use crate::harness::{
    Process, Repo, SECRET, Server, agent, databases, github_push, github_signature,
    on_each_database, setup, setup_with, sql, wait_for, wait_for_showing,
};
use crate::server::{job, planned_delivery, push_main, run_of_delivery};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const ONE_JOB: &str =
    "on: push\njobs:\n  build:\n    runs-on: self-hosted\n    steps:\n      - run: echo built\n";

fn metrics(server: &Server) -> String {
    let mut r = agent()
        .get(&format!("{}/metrics", server.url))
        .call()
        .expect("GET /metrics");
    r.body_mut().read_to_string().unwrap_or_default()
}

fn delivery_ids(server: &Server) -> Vec<String> {
    let (status, body) = server.get("/api/v1/deliveries");
    assert_eq!(status, 200, "{body}");
    body["deliveries"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|d| d["id"].as_str().map(String::from))
        .collect()
}

/// Sends raw bytes on a fresh connection and reads the answer until the server closes it
/// (or `timeout`); `None` when nothing came back in time.
fn raw_exchange(server: &Server, request: &[u8], timeout: Duration) -> Option<String> {
    let addr = server.url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(timeout)).expect("timeout");
    s.write_all(request).expect("write");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    (!answer.is_empty()).then(|| String::from_utf8_lossy(&answer).into_owned())
}

#[test]
fn webhooks_authenticate_before_parsing_or_storing_and_ids_cannot_be_squatted() {
    on_each_database(|root, database| {
        let (repo, server) = setup(root, "github", "octo/hello", 30, database);
        let sha = repo.commit(&[(".github/workflows/ci.yml", ONE_JOB)], "main");
        let _runner = server.runner("r", "");

        // Finding 4: an unsigned body that is not JSON is refused for its missing
        // signature (401), never parsed (400).
        let answer = raw_exchange(
            &server,
            b"POST /hooks/github HTTP/1.1\r\nhost: x\r\nx-github-event: push\r\ncontent-type: application/json\r\ncontent-length: 9\r\n\r\n{not json",
            Duration::from_secs(10),
        )
        .expect("an answer");
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        // A wrong signature is 401 too, before the body is parsed.
        let (status, _) = server.hook("github", "push", "bad", b"{not json", "wrong");
        assert_eq!(status, 401);
        // An unsigned request declaring a 100 MB body gets its 401 at once, the body
        // never read (finding 6: nothing is buffered for it).
        let started = Instant::now();
        let answer = raw_exchange(
            &server,
            b"POST /hooks/github HTTP/1.1\r\nhost: x\r\nx-github-event: push\r\ncontent-length: 100000000\r\n\r\n",
            Duration::from_secs(10),
        )
        .expect("an answer");
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(5));

        // Finding 3: unsigned and badly signed requests for unknown repositories, with
        // a 2 MB repository name, store nothing; they are counted in /metrics.
        let huge_name = "x".repeat(2 * 1024 * 1024);
        let body = github_push(&huge_name, "refs/heads/main", None, &sha);
        for n in 0..5 {
            let (status, _) = server.hook("github", "push", &format!("spam-{n}"), &body, "guess");
            assert_eq!(status, 401);
        }
        assert!(
            delivery_ids(&server).iter().all(|id| !id.contains("spam")),
            "rejected requests were stored"
        );
        let metrics = metrics(&server);
        assert!(
            metrics.contains("tess_webhook_deliveries_total{result=\"unauthorized\"} 8"),
            "{metrics}"
        );
        // Signed, but the name is over the bound: refused, not stored.
        let (status, reply) = server.hook("github", "push", "long", &body, SECRET);
        assert_eq!(status, 400, "{reply}");
        assert!(!delivery_ids(&server).contains(&"github:long".to_string()));

        // Finding 2: a request carrying the id of a delivery still to come — unsigned,
        // or signed for a repository that is not configured — does not make the genuine
        // delivery a duplicate.
        let genuine = github_push("octo/hello", "refs/heads/main", None, &sha);
        let (status, _) = server.hook("github", "push", "D-1", &genuine, "attacker");
        assert_eq!(status, 401);
        let elsewhere = github_push("someone/else", "refs/heads/main", None, &sha);
        let (status, _) = server.hook("github", "push", "D-1", &elsewhere, SECRET);
        assert_eq!(status, 404);
        let run = push_main(&server, "D-1", &sha);
        let run = server.finished_run(&run, Duration::from_secs(60));
        assert_eq!(run["repo"], "octo/hello", "{run:#}");
        // A redelivery of an accepted one is still a duplicate.
        let (status, reply) = server.hook("github", "push", "D-1", &genuine, SECRET);
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["duplicate"], true);
    });
}

#[test]
fn github_form_encoded_deliveries_are_accepted_with_the_signature_over_the_raw_body() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (repo, server) = setup(root, "github", "octo/hello", 30, &databases(root)[0]);
    let sha = repo.commit(&[(".github/workflows/ci.yml", ONE_JOB)], "main");
    let json = github_push("octo/hello", "refs/heads/main", None, &sha);
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", std::str::from_utf8(&json).expect("utf-8"))
        .finish();
    let post = |signature: &str| {
        let mut r = agent()
            .post(&format!("{}/hooks/github", server.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-github-event", "push")
            .header("x-github-delivery", "form-1")
            .header("x-hub-signature-256", signature)
            .send(form.as_bytes())
            .expect("POST");
        (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        )
    };
    // Signed over the decoded JSON instead of the raw body: not GitHub's signature.
    let (status, _) = post(&github_signature(SECRET, &json));
    assert_eq!(status, 401);
    let (status, reply) = post(&github_signature(SECRET, form.as_bytes()));
    assert_eq!(status, 202, "{reply}");
    let mut runner = server.runner("r", "");
    let run = run_of_delivery(&server, "github:form-1");
    let run = server.finished_run(&run, Duration::from_secs(60));
    assert_eq!(run["status"], "success", "{run:#}");
    runner.kill9();
}

/// The resident set high-water mark of a process, in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM");
    kib / 1024
}

#[test]
fn concurrent_large_bodies_keep_memory_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (_repo, server) = setup(root, "github", "octo/hello", 30, &databases(root)[0]);
    let pid = server.process.child.id();
    // 32 concurrent 24 MB bodies with a (wrong) signature header: they must be read to be
    // checked, so only the in-flight budget bounds them. Before: 780 MB peak.
    let body = std::sync::Arc::new(vec![b'x'; 24 * 1024 * 1024]);
    let threads: Vec<_> = (0..32)
        .map(|n| {
            let (url, body) = (server.url.clone(), std::sync::Arc::clone(&body));
            std::thread::spawn(move || {
                let r = agent()
                    .post(&format!("{url}/hooks/github"))
                    .header("x-github-event", "push")
                    .header("x-github-delivery", &format!("big-{n}"))
                    .header("x-hub-signature-256", "sha256=00")
                    .send(&body[..]);
                r.map(|r| r.status().as_u16()).unwrap_or(0)
            })
        })
        .collect();
    for t in threads {
        let status = t.join().expect("thread");
        assert!(
            status == 401 || status == 503 || status == 408,
            "status {status}"
        );
    }
    let peak = peak_rss_mib(pid);
    assert!(peak < 300, "peak RSS {peak} MiB");
    let (status, _) = server.get("/api/v1/runs");
    assert_eq!(status, 200);
}

/// A git server on 127.0.0.1 speaking git's "dumb" HTTP protocol that answers only a
/// request carrying `user:token` as Basic credentials (as a forge does for a private
/// repository); it serves the bare repository's files.
struct AuthGitServer {
    url: String,
    _runtime: tokio::runtime::Runtime,
}

impl AuthGitServer {
    fn start(bare: &std::path::Path, user: &str, token: &str) -> AuthGitServer {
        use axum::extract::{Path, State};
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::IntoResponse;
        use base64::Engine;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"))
        );
        let root = std::sync::Arc::new((bare.to_path_buf(), expected));
        async fn file(
            State(root): State<std::sync::Arc<(std::path::PathBuf, String)>>,
            headers: HeaderMap,
            Path(path): Path<String>,
        ) -> axum::response::Response {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if auth != root.1 {
                return (
                    StatusCode::UNAUTHORIZED,
                    [("www-authenticate", "Basic realm=\"git\"")],
                )
                    .into_response();
            }
            let Some(rel) = path.strip_prefix("repo.git/") else {
                return StatusCode::NOT_FOUND.into_response();
            };
            if rel.contains("..") {
                return StatusCode::NOT_FOUND.into_response();
            }
            match std::fs::read(root.0.join(rel)) {
                Ok(bytes) => bytes.into_response(),
                Err(_) => StatusCode::NOT_FOUND.into_response(),
            }
        }
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::get(file))
            .with_state(root);
        let (addr, runtime) = crate::harness::serve_on_loopback(app, 1);
        AuthGitServer {
            url: format!("http://{addr}/repo.git"),
            _runtime: runtime,
        }
    }
}

#[test]
fn credentials_in_clone_urls_reach_git_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let token = "ghp_S3cr3tT0ken9f8e7d6c";
    let repo = Repo::new(root);
    let sha = repo.commit(&[(".github/workflows/ci.yml", ONE_JOB)], "main");
    // The dumb protocol serves files: the refs and packs listed by update-server-info.
    crate::harness::git(&repo.bare, &["update-server-info"]);
    let git = AuthGitServer::start(&repo.bare, "ci", token);
    let clone_url = git.url.replace("http://", &format!("http://ci:{token}@"));
    let config = crate::harness::config("github", "octo/hello", std::path::Path::new("X"), 30)
        .replace("clone_url = \"X\"", &format!("clone_url = \"{clone_url}\""));
    std::fs::write(root.join("tess.toml"), config).expect("config");
    let server = Server::start(root, &databases(root)[0], "127.0.0.1:0");
    let mut runner = server.runner("r", "");
    let run = push_main(&server, "private-1", &sha);
    let run_json = server.finished_run(&run, Duration::from_secs(60));
    // The server's mirror and the runner's checkout both authenticated: the job ran.
    assert_eq!(run_json["status"], "success", "{run_json:#}");
    let log = server.log(&run, "build");
    assert!(log.contains("checking out http://***@127.0.0.1"), "{log}");
    // A wrong token: planning fails, and its error names the URL without credentials.
    let wrong = clone_url.replace(token, "ghp_Wr0ngT0ken1234");
    let config = std::fs::read_to_string(root.join("tess.toml"))
        .expect("config")
        .replace(&clone_url, &wrong);
    std::fs::write(root.join("tess.toml"), config).expect("config");
    wait_for("the new config", Duration::from_secs(20), || {
        let (_, v) = server.get("/api/v1/version/history");
        (v.to_string().matches("\"applied\"").count() >= 2).then_some(())
    });
    let sha2 = repo.commit(&[("more.txt", "more")], "main");
    crate::harness::git(&repo.bare, &["update-server-info"]);
    let body = github_push("octo/hello", "refs/heads/main", Some(&sha), &sha2);
    let (status, _) = server.hook("github", "push", "private-2", &body, SECRET);
    assert_eq!(status, 202);
    let delivery = planned_delivery(&server, "github:private-2");
    assert_ne!(delivery["status"], "planned", "{delivery}");
    runner.kill9();
    let (_, deliveries) = server.get("/api/v1/deliveries");
    let mut seen = vec![
        ("the job log", log),
        ("GET /api/v1/deliveries", deliveries.to_string()),
        ("GET /api/v1/runs", server.get("/api/v1/runs").1.to_string()),
        (
            "the server's log",
            std::fs::read_to_string(root.join("server.log")).expect("log"),
        ),
        (
            "the runner's log",
            std::fs::read_to_string(root.join("runner-r.log")).expect("log"),
        ),
    ];
    // The runner's and the server's mirrors keep no credentials in their git config.
    for entry in walk(root) {
        if entry.ends_with("config") && entry.to_string_lossy().contains(".git") {
            seen.push((
                "a git config",
                std::fs::read_to_string(&entry).unwrap_or_default(),
            ));
        }
    }
    for (place, text) in seen {
        for secret in [token, "ghp_Wr0ngT0ken1234"] {
            assert!(!text.contains(secret), "{place} shows the token:\n{text}");
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_server_down_longer_than_the_lease_does_not_run_a_live_job_twice() {
    on_each_database(|root, database| {
        let (repo, mut server) = setup(root, "github", "octo/hello", 3, database);
        let (started, gate, count) = (root.join("started"), root.join("gate"), root.join("count"));
        let workflow = format!(
            "on: push\njobs:\n  slow:\n    runs-on: self-hosted\n    steps:\n      - run: |\n          echo x >> {count}\n          touch {started}\n          while [ ! -e {gate} ]; do sleep 0.05; done\n",
            count = count.display(),
            started = started.display(),
            gate = gate.display()
        );
        let sha = repo.commit(&[(".github/workflows/ci.yml", &workflow)], "main");
        let _runner = server.runner("r", "");
        let run = push_main(&server, "p", &sha);
        wait_for("the job to start", Duration::from_secs(30), || {
            started.exists().then_some(())
        });
        // Down for more than twice the 3 s lease (the scenario itself, not a wait).
        server.process.kill9();
        std::thread::sleep(Duration::from_secs(7));
        let server = Server::start(root, database, &server.url.replace("http://", ""));
        std::fs::write(&gate, "").expect("gate");
        let run = server.finished_run(&run, Duration::from_secs(60));
        assert_eq!(run["status"], "success", "{run:#}");
        assert_eq!(job(&run, "slow")["attempt"], 1, "{run:#}");
        let runs = std::fs::read_to_string(&count).expect("count");
        assert_eq!(
            runs.lines().count(),
            1,
            "the job ran {} times",
            runs.lines().count()
        );
    });
}

#[test]
fn a_dead_planners_claim_is_taken_back_within_seconds_at_start_and_while_running() {
    on_each_database(|root, database| {
        let (repo, mut server) = setup(root, "github", "octo/hello", 30, database);
        let sha = repo.commit(&[(".github/workflows/ci.yml", ONE_JOB)], "main");
        let body = github_push("octo/hello", "refs/heads/main", None, &sha);
        let (status, _) = server.hook("github", "push", "c-1", &body, SECRET);
        assert_eq!(status, 202);
        run_of_delivery(&server, "github:c-1");
        server.process.kill9();
        // What a planner killed mid-planning leaves: a claim it no longer renews, on two
        // deliveries (one for the start to find, one for the running server's sweep).
        let stale = tesseract_ci::server::store::now_ms() - 11_000;
        for id in ["github:c-2", "github:c-3"] {
            sql(
                database,
                &format!(
                    "INSERT INTO deliveries (id, forge, event, repo, received_at, status, payload, claimed_at) \
                     SELECT '{id}', forge, event, repo, {stale}, 'planning', payload, {} FROM deliveries WHERE id = 'github:c-1'",
                    if id.ends_with('2') {
                        stale
                    } else {
                        i64::MAX / 2
                    }
                ),
            );
        }
        let server = Server::start(root, database, "127.0.0.1:0");
        let started = Instant::now();
        run_of_delivery(&server, "github:c-2");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        // While the server runs: a claim whose holder stops renewing it (here: made stale)
        // is taken back by the sweep.
        sql(
            database,
            &format!("UPDATE deliveries SET claimed_at = {stale} WHERE id = 'github:c-3'"),
        );
        let started = Instant::now();
        run_of_delivery(&server, "github:c-3");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    });
}

/// Whether any process's command line holds `marker`.
fn process_with(marker: &str) -> bool {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .any(|cmdline| String::from_utf8_lossy(&cmdline).contains(marker))
}

#[test]
fn the_processes_of_a_killed_runner_die_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (repo, server) = setup(root, "github", "octo/hello", 30, &databases(root)[0]);
    let (started, effect) = (root.join("started"), root.join("side-effect"));
    let marker = format!("orphan-marker-{}", std::process::id());
    // A step that leaves a background process behind as well as its own.
    let workflow = format!(
        "on: push\njobs:\n  slow:\n    runs-on: self-hosted\n    steps:\n      - run: |\n          (exec -a {marker}-bg sleep 30) &\n          echo \"$GITHUB_EVENT_PATH\" > {started}\n          exec -a {marker} sh -c 'sleep 8; touch {effect}'\n",
        started = started.display(),
        effect = effect.display(),
    );
    let sha = repo.commit(&[(".github/workflows/ci.yml", &workflow)], "main");
    let mut runner = server.runner("r", "");
    push_main(&server, "p", &sha);
    wait_for("the job to start", Duration::from_secs(30), || {
        started.exists().then_some(())
    });
    wait_for("the step processes", Duration::from_secs(10), || {
        process_with(&marker).then_some(())
    });
    runner.kill9();
    wait_for(
        "the step processes to die with their runner",
        Duration::from_secs(5),
        || (!process_with(&marker)).then_some(()),
    );
    assert!(
        !effect.exists(),
        "an orphan of the killed runner did its work"
    );
}

#[test]
fn failed_steps_record_their_outcome_in_the_api_and_the_rendered_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (repo, server) = setup(root, "github", "octo/hello", 30, &databases(root)[0]);
    let workflow = "on: push\njobs:\n  build:\n    runs-on: self-hosted\n    steps:\n      - name: prepare\n        run: echo ready\n      - name: compile\n        run: |\n          echo compiling\n          exit 3\n      - name: package\n        run: echo never\n      - name: report\n        if: failure()\n        run: echo reporting\n";
    let sha = repo.commit(&[(".github/workflows/ci.yml", workflow)], "main");
    let _runner = server.runner("r", "");
    let run = push_main(&server, "p", &sha);
    let run_json = server.finished_run(&run, Duration::from_secs(60));
    let build = job(&run_json, "build");
    assert_eq!(build["state"], "failure", "{run_json:#}");
    assert_eq!(
        build["error"], "step `compile` failed: exit code 3",
        "{build:#}"
    );
    let steps: Vec<(String, String)> = build["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                s["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let names: Vec<(&str, &str)> = steps.iter().map(|(a, b)| (&a[..], &b[..])).collect();
    assert_eq!(
        names,
        [
            ("prepare", "success"),
            ("compile", "failure"),
            ("package", "skipped"),
            ("report", "success")
        ],
        "{build:#}"
    );
    let package = &build["steps"][2];
    assert_eq!(
        package["detail"], "not run: an earlier step failed",
        "{package}"
    );
    // `tess runs logs`: sections, no raw markers; `--raw` keeps them.
    let token_args = [
        "--server",
        &server.url,
        "--token",
        crate::harness::API_TOKEN,
    ];
    let rendered = crate::support::tess(
        root,
        &[&["runs"][..], &token_args[..], &["logs", &run, "build"][..]].concat(),
    );
    let text = crate::support::stdout(&rendered);
    assert!(!text.contains("##["), "{text}");
    assert!(text.contains("▸ compile"), "{text}");
    assert!(text.contains("exit code 3"), "{text}");
    assert!(
        text.contains("package: not run: an earlier step failed"),
        "{text}"
    );
    let raw = crate::support::tess(
        root,
        &[
            &["runs"][..],
            &token_args[..],
            &["logs", &run, "build", "--raw"][..],
        ]
        .concat(),
    );
    assert!(crate::support::stdout(&raw).contains("##[group]compile"));
    let shown = crate::support::tess(
        root,
        &[&["runs"][..], &token_args[..], &["show", &run][..]].concat(),
    );
    assert!(
        crate::support::stdout(&shown).contains("step compile: exit code 3"),
        "{}",
        crate::support::stdout(&shown)
    );
}

#[test]
fn a_secret_is_masked_where_a_long_line_is_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (repo, server) = setup(root, "github", "octo/hello", 30, &databases(root)[0]);
    // Lines of 1 MiB minus a few bytes, then the secret: the 1 MiB cut falls inside it,
    // at a different place on each line.
    let workflow = "on: push\njobs:\n  build:\n    runs-on: self-hosted\n    steps:\n      - run: |\n          for n in 3 7 11; do\n            head -c $((1048576 - n)) /dev/zero | tr '\\0' a\n            echo \"$T\"\n          done\n        env:\n          T: ${{ secrets.DEPLOY_TOKEN }}\n";
    let sha = repo.commit(&[(".github/workflows/ci.yml", workflow)], "main");
    let _runner = server.runner("r", "");
    let run = push_main(&server, "p", &sha);
    let run_json = server.finished_run(&run, Duration::from_secs(60));
    assert_eq!(run_json["status"], "success", "{run_json:#}");
    let log = server.log(&run, "build");
    assert!(log.len() > 3 * 1024 * 1024, "the lines are in the log");
    for piece in ["hunter2", "unter2-s", "2-secret", "nter2", "r2-sec"] {
        assert!(
            !log.contains(piece),
            "`{piece}` of the secret is in the log"
        );
    }
    assert!(log.matches("***").count() >= 3);
}

#[test]
fn a_gap_in_the_stored_log_is_resynced_at_once() {
    on_each_database(|root, database| {
        let (repo, server) = setup(root, "github", "octo/hello", 30, database);
        let mark = |name: &str| root.join(name).display().to_string();
        let workflow = format!(
            "on: push\njobs:\n  build:\n    runs-on: self-hosted\n    steps:\n      - run: |\n          echo first-part\n          while [ ! -e {g1} ]; do sleep 0.05; done\n          echo second-part\n          while [ ! -e {g2} ]; do sleep 0.05; done\n          echo last-part\n",
            g1 = mark("gate1"),
            g2 = mark("gate2"),
        );
        let sha = repo.commit(&[(".github/workflows/ci.yml", &workflow)], "main");
        let _runner = server.runner("r", "");
        let run = push_main(&server, "p", &sha);
        let stored = |text: &str| {
            let log = server.log(&run, "build");
            log.contains(text).then_some(log)
        };
        // The stored log loses what it had acknowledged (a restore from an older backup):
        // the runner's next chunk no longer follows on.
        let lose_the_log = || {
            sql(
                database,
                &format!("DELETE FROM logs WHERE run_id = '{run}'"),
            );
            sql(
                database,
                &format!("UPDATE jobs SET log_length = 0 WHERE run_id = '{run}'"),
            );
        };
        wait_for("the first part", Duration::from_secs(30), || {
            stored("first-part")
        });
        lose_the_log();
        // A chunk sent while the job runs: refused (409 with the stored length), resent at
        // once from there. Before: retried for minutes.
        let released = Instant::now();
        std::fs::write(root.join("gate1"), "").expect("gate");
        let log = wait_for("the second part", Duration::from_secs(30), || {
            stored("second-part")
        });
        assert!(
            released.elapsed() < Duration::from_secs(5),
            "took {:?}",
            released.elapsed()
        );
        assert!(log.contains("bytes of this log were lost"), "{log}");
        // The last chunk, sent with the result: the server follows on from its end.
        lose_the_log();
        std::fs::write(root.join("gate2"), "").expect("gate");
        let run_json = server.finished_run(&run, Duration::from_secs(30));
        assert_eq!(run_json["status"], "success", "{run_json:#}");
        let log = server.log(&run, "build");
        assert!(log.contains("last-part"), "{log}");
        assert!(log.contains("bytes of this log were lost"), "{log}");
    });
}

#[test]
fn jobs_for_hosted_runners_run_on_a_fresh_runner_and_untagged_gitlab_jobs_on_untagged_runners() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (repo, server) = setup(root, "github", "octo/hello", 30, &databases(root)[0]);
    let workflow = "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo hosted\n";
    let sha = repo.commit(&[(".github/workflows/ci.yml", workflow)], "main");
    // Without the aliases the job waits, and the API says which flag gives them.
    let mut plain = server.runner_with("plain", "", &["--hosted-labels", "none"]);
    let run = push_main(&server, "p", &sha);
    let reason = wait_for("a waiting reason", Duration::from_secs(30), || {
        let run = server.run(&run);
        job(&run, "build")["waiting_reason"]
            .as_str()
            .map(String::from)
    });
    assert!(reason.contains("ubuntu-latest"), "{reason}");
    assert!(reason.contains("--hosted-labels"), "{reason}");
    plain.kill9();
    // A runner started as the README shows serves `ubuntu-latest`.
    let _fresh = server.runner("fresh", "");
    let run = server.finished_run(&run, Duration::from_secs(60));
    assert_eq!(run["status"], "success", "{run:#}");

    // GitLab: a job without tags needs an untagged runner (`run_untagged`, the default).
    let root = &root.join("gitlab");
    std::fs::create_dir_all(root).expect("mkdir");
    let (repo, server) =
        crate::harness::setup(root, "gitlab", "group/project", 30, &databases(root)[0]);
    let ci = "build:\n  script: echo untagged\n";
    let sha = repo.commit(&[(".gitlab-ci.yml", ci)], "main");
    let mut tagged_only = server.runner_with("tagged", "gpu", &["--run-untagged", "false"]);
    let body = serde_json::to_vec(&serde_json::json!({
        "object_kind": "push", "ref": "refs/heads/main",
        "before": "0000000000000000000000000000000000000000", "after": sha, "checkout_sha": sha,
        "project": {"path_with_namespace": "group/project"}
    }))
    .expect("json");
    let (status, reply) = server.hook("gitlab", "Push Hook", "g-1", &body, SECRET);
    assert_eq!(status, 202, "{reply}");
    let run = run_of_delivery(&server, "gitlab:g-1");
    let reason = wait_for("a waiting reason", Duration::from_secs(30), || {
        let run = server.run(&run);
        job(&run, "build")["waiting_reason"]
            .as_str()
            .map(String::from)
    });
    assert!(reason.contains("--run-untagged"), "{reason}");
    tagged_only.kill9();
    let _untagged = server.runner("untagged", "");
    let run = server.finished_run(&run, Duration::from_secs(60));
    assert_eq!(run["status"], "success", "{run:#}");
}

#[test]
fn list_endpoints_are_paginated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (repo, server) = setup(root, "github", "octo/hello", 30, &databases(root)[0]);
    let sha = repo.commit(&[(".github/workflows/ci.yml", ONE_JOB)], "main");
    for n in 0..5 {
        let body = github_push("octo/hello", "refs/heads/main", None, &sha);
        let (status, _) = server.hook("github", "push", &format!("page-{n}"), &body, SECRET);
        assert_eq!(status, 202);
        run_of_delivery(&server, &format!("github:page-{n}"));
    }
    for (path, key) in [
        ("/api/v1/runs", "runs"),
        ("/api/v1/deliveries", "deliveries"),
    ] {
        let mut seen = Vec::new();
        let mut next = format!("{path}?limit=2");
        loop {
            let (status, page) = server.get(&next);
            assert_eq!(status, 200, "{page}");
            let rows = page[key].as_array().expect("rows");
            assert!(rows.len() <= 2);
            seen.extend(
                rows.iter()
                    .map(|r| r["id"].as_str().expect("id").to_string()),
            );
            match page["next"].as_str() {
                Some(cursor) => next = format!("{path}?limit=2&before={cursor}"),
                None => break,
            }
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 5, "{path}: {seen:?}");
        assert_eq!(seen.len(), 5, "{path}: {seen:?}");
    }
    // The version history pages the same way (its cursor is the entry's id).
    let (status, first) = server.get("/api/v1/version/history?limit=1");
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        first["versions"].as_array().map(Vec::len),
        Some(1),
        "{first}"
    );
    let cursor = first["next"]
        .as_str()
        .expect("a next cursor on a full page");
    let (status, rest) = server.get(&format!("/api/v1/version/history?limit=1&before={cursor}"));
    assert_eq!(status, 200, "{rest}");
    assert_ne!(
        rest["versions"][0]["id"], first["versions"][0]["id"],
        "{rest}"
    );
    let (status, reply) = server.get("/api/v1/runs?before=nonsense");
    assert_eq!(status, 400, "{reply}");
}

#[test]
fn a_runner_stops_on_sigterm_while_its_server_is_unreachable_and_says_what_it_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let log = dir.path().join("runner.log");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_tess"))
        .args(["runner", "--server", &format!("http://127.0.0.1:{port}")])
        .args(["--registration-token", "t", "--workdir"])
        .arg(dir.path().join("work"))
        .env_remove("TESS_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn");
    let mut runner = Process { child };
    // Logged at info by default: the server is unreachable, and when it is retried.
    wait_for_showing(
        || std::fs::read_to_string(&log).unwrap_or_default(),
        Duration::from_secs(20),
        || {
            let text = std::fs::read_to_string(&log).ok()?;
            (text.contains("unreachable") && text.contains("retrying in")).then_some(())
        },
    );
    let sent = Instant::now();
    runner.terminate();
    let status = runner.exit_status(Duration::from_secs(10));
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(status.code(), Some(0), "{status:?}");
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.lines().all(|l| l.len() < 400),
        "one line each:\n{text}"
    );
}

/// A tmpfs of `mib` MiB mounted at `dir` (unmounted when dropped): a filesystem that fills
/// up. Needs root; `None` (said loudly) without it, outside CI.
struct SmallFs(std::path::PathBuf);

impl SmallFs {
    fn mount(dir: &std::path::Path, mib: u32) -> Option<SmallFs> {
        std::fs::create_dir_all(dir).expect("mkdir");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallFs(dir.to_path_buf())),
            other => {
                let why = format!("cannot mount a tmpfs (needs root): {other:?}");
                crate::support::skip_or_fail(&why);
                None
            }
        }
    }

    /// Fills the filesystem; returns the filler file (remove it to make room).
    fn fill(&self) -> std::path::PathBuf {
        let filler = self.0.join("filler");
        let mut f = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        // What is left below a chunk goes too.
        while f.write_all(&[0u8; 512]).is_ok() {}
        filler
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_gets_503_and_every_202_survives_a_kill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let Some(fs) = SmallFs::mount(&root.join("small"), 8) else {
        return;
    };
    let database = format!("sqlite://{}/tess.db", fs.0.display());
    let (repo, mut server) = setup(root, "github", "octo/hello", 30, &database);
    let sha = repo.commit(&[(".github/workflows/ci.yml", ONE_JOB)], "main");
    let send = |server: &Server, id: &str| {
        let body = github_push("octo/hello", "refs/heads/main", None, &sha);
        server.hook("github", "push", id, &body, SECRET).0
    };
    let mut acknowledged = Vec::new();
    for n in 0..5 {
        let id = format!("before-{n}");
        assert_eq!(send(&server, &id), 202);
        acknowledged.push(format!("github:{id}"));
    }
    let filler = fs.fill();
    let mut refused = 0;
    for n in 0..60 {
        let id = format!("full-{n}");
        match send(&server, &id) {
            202 => acknowledged.push(format!("github:{id}")),
            503 => refused += 1,
            other => panic!("delivery {id}: {other}"),
        }
    }
    assert!(refused > 0, "the disk never filled up");
    let ready = |server: &Server| {
        agent()
            .get(&format!("{}/readyz", server.url))
            .call()
            .expect("GET /readyz")
            .status()
            .as_u16()
    };
    assert_eq!(ready(&server), 503, "/readyz while the disk is full");
    std::fs::remove_file(&filler).expect("make room");
    wait_for("a delivery accepted again", Duration::from_secs(20), || {
        (send(&server, "after-0") == 202).then_some(())
    });
    acknowledged.push("github:after-0".into());
    assert_eq!(ready(&server), 200, "/readyz once there is room");
    // What the server acknowledged is on disk: it is all there after a `kill -9`.
    server.process.kill9();
    let server = Server::start(root, &database, "127.0.0.1:0");
    let (status, body) = server.get("/api/v1/deliveries?limit=1000");
    assert_eq!(status, 200, "{body}");
    let stored: Vec<&str> = body["deliveries"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(&id.as_str()))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
}

/// Whether the server closed `stream` (a read returns end of file or a reset).
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an answer (408, …) before the close
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(std::iter::Iterator::count)
        .unwrap_or(0)
}

#[test]
fn slow_and_idle_connections_are_closed_and_health_answers_under_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let limits = "[http]\nheader_timeout_seconds = 2\nbody_timeout_seconds = 2\nidle_timeout_seconds = 3\nmax_connections = 300\n";
    let (_repo, server) = setup_with(
        root,
        "github",
        "octo/hello",
        30,
        &databases(root)[0],
        limits,
    );
    let addr = server.url.trim_start_matches("http://").to_string();
    let pid = server.process.child.id();
    let connect = || TcpStream::connect(&addr).expect("connect");
    // 50 slow headers, 50 slow bodies (signed-looking, so the body is read), a keep-alive
    // connection left idle after a request, and 600 connections that send nothing — twice
    // the connection limit.
    let mut slow_headers: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = connect();
            s.write_all(b"POST /hooks/github HTTP/1.1\r\nhost: x\r\n")
                .expect("write");
            s
        })
        .collect();
    let mut slow_bodies: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = connect();
            s.write_all(b"POST /hooks/github HTTP/1.1\r\nhost: x\r\nx-github-event: push\r\nx-hub-signature-256: sha256=00\r\ncontent-length: 1000\r\n\r\n{\"a\":")
                .expect("write");
            s
        })
        .collect();
    let mut keep_alive = connect();
    keep_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("write");
    let mut idle: Vec<TcpStream> = (0..600).map(|_| connect()).collect();
    // The server still answers its health check at once, and holds fewer descriptors than
    // its limit allows.
    let started = Instant::now();
    wait_for(
        "/healthz to answer under load",
        Duration::from_secs(3),
        || {
            let mut r = agent()
                .get(&format!("{}/healthz", server.url))
                .call()
                .ok()?;
            (r.body_mut().read_to_string().ok()? == "ok").then_some(())
        },
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let fds = open_fds(pid);
    assert!(fds < 300 + 200, "{fds} descriptors open");
    // Every slow or idle connection is closed by the server within its timeout (+ slack).
    let deadline = Duration::from_secs(8);
    for (what, streams) in [
        ("slow headers", &mut slow_headers),
        ("slow bodies", &mut slow_bodies),
        ("idle connections", &mut idle),
    ] {
        for s in streams.iter_mut() {
            wait_for(&format!("{what} to be closed"), deadline, || {
                closed_by_server(s).then_some(())
            });
        }
    }
    wait_for(
        "the idle keep-alive connection to be closed",
        deadline,
        || closed_by_server(&mut keep_alive).then_some(()),
    );
    let (status, _) = server.get("/api/v1/runs");
    assert_eq!(status, 200);
}
