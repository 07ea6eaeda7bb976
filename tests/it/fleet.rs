//! The runner fleet assets in `runners/`: every file parses, says what operators rely on
//! (drain on stop, a stop timeout, credentials), and every metric the KEDA query and the
//! alerts use is served by a real server; a drained runner that comes back as a new
//! version takes jobs again (a rolling upgrade).

use crate::harness::{REGISTRATION, agent, on_each_database, setup, wait_for};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn asset(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("runners")
        .join(path)
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read(asset(path)).expect("asset");
    let (node, diagnostics) = tesseract_ci::spec::yaml::parse(path, &text);
    assert!(diagnostics.is_empty(), "{path}: {diagnostics:#?}");
    node.expect("a document").to_json()
}

/// `tess_…` metric names in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let re = regex::Regex::new(r"\btess_[a-z0-9_]+").expect("regex");
    re.find_iter(expr).map(|m| m.as_str().to_string()).collect()
}

#[test]
fn the_fleet_assets_parse_and_use_metrics_the_server_serves() {
    let deployment = yaml("kubernetes/deployment.yaml");
    assert_eq!(deployment["kind"], "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert!(
        pod["terminationGracePeriodSeconds"]
            .as_i64()
            .is_some_and(|s| s >= 600)
    );
    let container = &pod["containers"][0];
    let pre_stop = container["lifecycle"]["preStop"]["exec"]["command"].to_string();
    assert!(pre_stop.contains("kill -TERM 1"), "{pre_stop}");
    assert_eq!(container["env"][0]["name"], "TESS_REGISTRATION_TOKEN_FILE");
    assert_eq!(
        deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        0
    );

    let scaled = yaml("kubernetes/keda-scaledobject.yaml");
    assert_eq!(scaled["kind"], "ScaledObject");
    assert_eq!(
        scaled["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    let trigger = &scaled["spec"]["triggers"][0];
    assert_eq!(trigger["type"], "prometheus");
    let mut expressions = vec![
        trigger["metadata"]["query"]
            .as_str()
            .expect("query")
            .to_string(),
    ];

    let alerts = yaml("prometheus/alerts.yaml");
    let rules = alerts["groups"][0]["rules"].as_array().expect("rules");
    let names: Vec<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    assert!(names.contains(&"TessQueueWaitP95High") && names.contains(&"TessJobErrorRateHigh"));
    expressions.extend(
        rules
            .iter()
            .filter_map(|r| r["expr"].as_str().map(String::from)),
    );

    // runner.toml is what `tess runner --config` reads.
    let file =
        tesseract_ci::runner::config::RunnerFile::load(&asset("runner.toml")).expect("runner.toml");
    assert_eq!(
        file.workdir.as_deref(),
        Some(Path::new("/var/lib/tess-runner"))
    );
    assert!(file.registration_token_file.is_some() && file.concurrency == Some(4));

    // A bad one is located, before anything starts.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("runner.toml"),
        "server = \"http://x\"\nconcurrency = \"four\"\n",
    )
    .expect("write");
    let out = crate::support::tess(dir.path(), &["runner", "--config", "runner.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::support::stderr(&out).contains("runner.toml:2:15: invalid type"),
        "{}",
        crate::support::stderr(&out)
    );

    // The systemd unit: drain on stop, a stop timeout, restart, the token as a credential.
    let unit = std::fs::read_to_string(asset("systemd/tess-runner.service")).expect("unit");
    let mut section = String::new();
    let mut service = std::collections::HashMap::new();
    for line in unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if line.starts_with('[') {
            section = line.to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            assert!(!k.contains(' '), "not `Key=Value`: {line}");
            if section == "[Service]" {
                service.insert(k.to_string(), v.to_string());
            }
        } else {
            panic!("not `Key=Value`: {line}");
        }
    }
    assert_eq!(service["KillSignal"], "SIGTERM");
    assert_eq!(service["Restart"], "always");
    assert!(
        service["TimeoutStopSec"]
            .parse::<u64>()
            .is_ok_and(|s| s >= 600)
    );
    assert!(service["ExecStart"].ends_with("tess runner --config /etc/tess/runner.toml"));
    assert!(service["LoadCredential"].starts_with("registration-token:"));

    // The image copies files that exist.
    let containerfile = std::fs::read_to_string(asset("Containerfile")).expect("Containerfile");
    for line in containerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for source in &parts[1..parts.len() - 1] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(source);
            assert!(path.exists(), "{line}: {source} does not exist");
        }
    }

    // Every metric used is one the server serves.
    on_each_database(|root, database| {
        let (repo, server) = setup(root, "github", "octo/hello", 30, database);
        // One job waits for a runner (none is registered), so the queue's series exist
        // (OpenMetrics leaves out a family with no series).
        let sha = repo.commit(
            &[(
                ".github/workflows/ci.yml",
                "on: push\njobs:\n  a:\n    runs-on: self-hosted\n    steps: [{run: 'true'}]\n",
            )],
            "main",
        );
        let body = crate::harness::github_push("octo/hello", "refs/heads/main", None, &sha);
        let (status, reply) =
            server.hook("github", "push", "queued-1", &body, crate::harness::SECRET);
        assert_eq!(status, 202, "{reply}");
        crate::server::run_of_delivery(&server, "github:queued-1");
        let mut response = agent()
            .get(&format!("{}/metrics", server.url))
            .call()
            .expect("metrics");
        let text = response.body_mut().read_to_string().expect("text");
        let served: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        for expr in &expressions {
            for name in metric_names(expr) {
                // OpenMetrics names a counter's family without its `_total` sample suffix.
                let base = ["_bucket", "_sum", "_count", "_total"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(&name);
                assert!(
                    served.contains(&base),
                    "`{name}` in `{expr}` is not in /metrics:\n{text}"
                );
            }
        }
        assert!(
            text.contains("tess_queue_wait_seconds_bucket{le="),
            "{text}"
        );
    });
}

/// A runner told to drain gets no jobs; when it comes back as another version (upgraded),
/// the drain ends and the server lists it as up to date or outdated by its version.
#[test]
fn an_upgraded_runner_comes_back_from_a_drain() {
    on_each_database(|root, database| {
        let (_repo, server) = setup(root, "github", "octo/hello", 30, database);
        let (status, registered) = server.post(
            "/api/v1/runner/register",
            None,
            &json!({"registration_token": REGISTRATION, "name": "old", "labels": ["self-hosted"], "version": "0.0.1"}),
        );
        assert_eq!(status, 200, "{registered}");
        let token = registered["token"].as_str().expect("token").to_string();
        let id = registered["runner_id"].as_str().expect("id").to_string();
        let poll = |version: &str| {
            let body = json!({"labels": ["self-hosted"], "free_slots": 1, "load": {"cpu": 0.0, "memory": 0.0, "running_jobs": 0}, "version": version, "wait_seconds": 0});
            server.post("/api/v1/runner/poll", Some(&token), &body).0
        };
        let runner = || -> Value {
            let (_, list) = server.get("/api/v1/runners");
            list["runners"]
                .as_array()
                .and_then(|l| l.iter().find(|r| r["id"] == id.as_str()).cloned())
                .expect("the runner")
        };
        assert_eq!(poll("0.0.1"), 204);
        assert_eq!(runner()["outdated"], true);
        let (status, _) = server.post(
            &format!("/api/v1/runners/{id}/drain"),
            Some(crate::harness::API_TOKEN),
            &json!({}),
        );
        assert_eq!(status, 200);
        assert_eq!(runner()["draining"], true);
        // The same version polling again stays drained.
        assert_eq!(poll("0.0.1"), 204);
        assert_eq!(runner()["draining"], true);
        // Upgraded: the drain is over.
        let current = env!("CARGO_PKG_VERSION");
        poll(current);
        let now = wait_for("the drain to end", Duration::from_secs(10), || {
            let r = runner();
            (r["draining"] == false).then_some(r)
        });
        assert_eq!(now["version"], current);
        assert_eq!(now["outdated"], false);
    });
}

#[test]
fn metrics_are_openmetrics_with_help_type_and_escaped_labels() {
    use tesseract_ci::server::metrics::{Gauges, Metrics};
    let metrics = Metrics::default();
    metrics.delivery("received");
    metrics.delivery("received");
    metrics.queue_wait(0.02);
    let gauges = Gauges {
        queue_depth: vec![(vec!["self-hosted".into(), "gpu \"a100\"\\x".into()], 3)],
        ..Gauges::default()
    };
    let text = metrics.render(&gauges);
    for line in [
        "# HELP tess_queue_depth Queued jobs by the label set they need.",
        "# TYPE tess_queue_depth gauge",
        r#"tess_queue_depth{labels="self-hosted,gpu \"a100\"\\x"} 3"#,
        "# TYPE tess_webhook_deliveries counter",
        r#"tess_webhook_deliveries_total{result="received"} 2"#,
        "# TYPE tess_queue_wait_seconds histogram",
        "# UNIT tess_queue_wait_seconds seconds",
        r#"tess_queue_wait_seconds_bucket{le="0.025"} 1"#,
        r#"tess_queue_wait_seconds_bucket{le="0.01"} 0"#,
        "tess_queue_wait_seconds_count 1",
        "# EOF",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
}
