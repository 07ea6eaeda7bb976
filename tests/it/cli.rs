//! The CLI contract, run as a real process: exit codes, JSON shapes, graph and schedule
//! output, default paths, and hostile input.

use crate::support::{stderr, stdout, tess};
use std::path::Path;

fn write(dir: &Path, rel: &str, text: &[u8]) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

const CI: &str = r#"name: CI
on:
  push:
    branches: [main]
    tags: ['v*']
  pull_request:
  schedule:
    - cron: '0 6 * * 1'
jobs:
  build:
    runs-on: ubuntu-latest
    steps: [{run: make}]
  test:
    needs: build
    strategy:
      matrix:
        rust: [stable, beta]
        os: [ubuntu-latest]
    runs-on: ${{ matrix.os }}
    steps: [{run: make test}]
  release:
    needs: test
    if: startsWith(github.ref, 'refs/tags/v')
    runs-on: ubuntu-latest
    steps: [{run: make release}]
"#;

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

#[test]
fn plan_json_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), ".github/workflows/ci.yml", CI.as_bytes());
    let out = tess(dir.path(), &["plan", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    let keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["pipelines", "diagnostics"]);
    let p = &v["pipelines"][0];
    assert_eq!(p["file"], ".github/workflows/ci.yml");
    assert_eq!(p["name"], "CI");
    assert_eq!(p["dialect"], "github");
    assert_eq!(p["triggered"], serde_json::Value::Null);
    let job = &p["jobs"][1];
    let fields: Vec<&str> = job
        .as_object()
        .expect("job")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        [
            "id", "key", "name", "needs", "runs_on", "matrix", "if", "level"
        ]
    );
    assert_eq!(job["id"], "test");
    assert_eq!(job["key"], "test (stable, ubuntu-latest)");
    assert_eq!(job["name"], "test (stable, ubuntu-latest)");
    assert_eq!(job["needs"], serde_json::json!(["build"]));
    assert_eq!(job["runs_on"], "ubuntu-latest");
    assert_eq!(
        job["matrix"],
        serde_json::json!({"rust": "stable", "os": "ubuntu-latest"})
    );
    assert_eq!(job["level"], 1);
    assert_eq!(p["jobs"][3]["if"], "startsWith(github.ref, 'refs/tags/v')");
    assert_eq!(
        p["jobs"][3]["needs"],
        serde_json::json!(["test (stable, ubuntu-latest)", "test (beta, ubuntu-latest)"])
    );
    assert_eq!(p["jobs"][3]["level"], 2);
}

#[test]
fn plan_for_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), ".github/workflows/ci.yml", CI.as_bytes());
    let run = |args: &[&str]| {
        let mut all = vec!["plan", "--json"];
        all.extend_from_slice(args);
        json(&tess(dir.path(), &all))["pipelines"][0].clone()
    };
    let tag = run(&["--event", "tag", "--ref", "v1.0"]);
    assert_eq!(tag["triggered"], true);
    assert_eq!(
        tag["reason"],
        "push to refs/tags/v1.0: tag filter [v*] matches `v1.0`"
    );
    assert_eq!(tag["jobs"].as_array().map(Vec::len), Some(4));
    assert_eq!(
        tag["jobs"][3]["if"],
        serde_json::Value::Null,
        "settled at plan time"
    );
    let dev = run(&["--event", "push", "--ref", "dev"]);
    assert_eq!(dev["triggered"], false);
    assert_eq!(
        dev["reason"],
        "push to refs/heads/dev: branch filter [main] does not match `dev`"
    );
    assert_eq!(dev["jobs"], serde_json::json!([]));
    let main = run(&["--event", "push", "--ref", "main"]);
    assert_eq!(main["jobs"].as_array().map(Vec::len), Some(3));
    assert_eq!(main["skipped"][0]["key"], "release");
    let manual = run(&["--event", "manual"]);
    assert_eq!(manual["triggered"], false);
    assert!(
        manual["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("no `workflow_dispatch` trigger")
    );
    let schedule = run(&["--event", "schedule"]);
    assert_eq!(schedule["triggered"], true);
    // Human output names the reason and the skipped job.
    let human = stdout(&tess(
        dir.path(),
        &["plan", "--event", "push", "--ref", "main"],
    ));
    assert!(
        human.contains("runs: push to refs/heads/main: branch filter [main] matches `main`"),
        "{human}"
    );
    assert!(
        human.contains(
            "skipped release: `if: startsWith(github.ref, 'refs/tags/v')` is false for this event"
        ),
        "{human}"
    );
}

#[test]
fn validate_exit_codes_and_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "pipelines/ok.yml", CI.as_bytes());
    let ok = tess(dir.path(), &["validate"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("1 pipeline file(s) valid"));
    write(dir.path(), "pipelines/bad.yml", b"on: push\njobs:\n  a:\n    runs-on: x\n    needs: [bb]\n    steps: [{run: a}]\n  b:\n    runs-on: x\n    steps: [{run: a}]\n");
    let bad = tess(dir.path(), &["validate", "pipelines"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = stderr(&bad);
    assert!(
        err.contains("pipelines/bad.yml:3:3: error: job `a` needs `bb`, which does not exist"),
        "{err}"
    );
    assert!(err.contains("= help: did you mean `b`?"), "{err}");
    let v = json(&tess(
        dir.path(),
        &["validate", "--json", "pipelines/bad.yml"],
    ));
    assert_eq!(v["valid"], false);
    assert_eq!(v["diagnostics"][0]["line"], 3);
    assert_eq!(v["diagnostics"][0]["col"], 3);
    assert_eq!(v["diagnostics"][0]["severity"], "error");
    assert_eq!(v["diagnostics"][0]["help"], "did you mean `b`?");
    // Plans are not made from invalid files, and the exit code says so.
    let plan = tess(dir.path(), &["plan", "--json", "pipelines"]);
    assert_eq!(plan.status.code(), Some(2));
    assert_eq!(json(&plan)["pipelines"].as_array().map(Vec::len), Some(1));
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "pipelines/ok.yml", CI.as_bytes());
    for args in [
        &["plan", "--event", "nope"][..],
        &["plan", "--event", "tag"],
        &["validate", "missing.yml"],
        &["schedule", "--from", "yesterday"],
        &["frobnicate"],
    ] {
        let out = tess(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{args:?}");
    }
    let empty = tempfile::tempdir().expect("tempdir");
    let out = tess(empty.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no pipeline files found"));
}

#[test]
fn graph_formats() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "ci.yml", CI.as_bytes());
    let dot = stdout(&tess(dir.path(), &["graph", "ci.yml", "--format", "dot"]));
    assert!(dot.starts_with("digraph tess {"), "{dot}");
    assert!(dot.contains("p0_j0 [label=\"build\"];"), "{dot}");
    assert!(
        dot.contains("p0_j0 -> p0_j1;") && dot.contains("p0_j2 -> p0_j3;"),
        "{dot}"
    );
    let mermaid = stdout(&tess(
        dir.path(),
        &["graph", "ci.yml", "--format", "mermaid"],
    ));
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    assert!(
        mermaid.contains("p0_j1[\"test (stable, ubuntu-latest)\"]"),
        "{mermaid}"
    );
    assert!(mermaid.contains("p0_j1 --> p0_j3"), "{mermaid}");
}

#[test]
fn schedule_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "pipelines/nightly.yml",
        b"on:\n  schedule:\n    - cron: '0 6 * * 1'\n    - cron: '30 2 * * *'\n      timezone: America/New_York\njobs:\n  a:\n    runs-on: x\n    steps: [{run: a}]\n",
    );
    let out = tess(
        dir.path(),
        &[
            "schedule",
            "--from",
            "2026-03-07T12:00:00Z",
            "--count",
            "2",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(
        v["schedules"],
        serde_json::json!([
            {"file": "pipelines/nightly.yml", "cron": "0 6 * * 1", "timezone": "UTC", "next": ["2026-03-09T06:00:00Z", "2026-03-16T06:00:00Z"]},
            {"file": "pipelines/nightly.yml", "cron": "30 2 * * *", "timezone": "America/New_York", "next": ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]},
        ])
    );
}

#[test]
fn hostile_input_gets_a_clear_error_and_no_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Billion laughs: 2 MB of anchors and aliases.
    let mut bomb = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..30 {
        bomb.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 9].join(",")
        ));
    }
    let mut i = 0;
    while bomb.len() < 2_000_000 {
        bomb.push_str(&format!("p{i}: [*a29, *a29]\n"));
        i += 1;
    }
    write(dir.path(), "bomb.yml", bomb.as_bytes());
    write(
        dir.path(),
        "deep.yml",
        format!("a: {}{}\n", "[".repeat(10_000), "]".repeat(10_000)).as_bytes(),
    );
    let nested: String = (0..10_000)
        .map(|i| format!("{}k:\n", " ".repeat(i % 300)))
        .collect();
    write(dir.path(), "nested.yml", nested.as_bytes());
    write(
        dir.path(),
        "binary.yml",
        b"on: push\njobs:\n  a: \xc3\x28\xff\n",
    );
    let huge = std::fs::File::create(dir.path().join("huge.yml")).expect("create");
    huge.set_len(50 * 1024 * 1024).expect("50 MB");
    let table = [
        (
            "bomb.yml",
            "error: YAML aliases expand to more than 200000 nodes",
        ),
        ("deep.yml", "deep.yml:1:"),
        (
            "nested.yml",
            "error: YAML nesting is deeper than 256 levels",
        ),
        ("binary.yml", "binary.yml:3:6: error: invalid UTF-8"),
        (
            "huge.yml",
            "huge.yml:1:1: error: file is 50.0 MiB; pipeline files are limited to 10 MiB",
        ),
    ];
    for (file, expected) in table {
        let out = tess(dir.path(), &["validate", file]);
        assert_eq!(out.status.code(), Some(2), "{file}");
        let err = stderr(&out);
        assert!(err.contains(expected), "{file}: {err}");
        assert!(!err.contains("panicked"), "{file}: {err}");
    }
}

#[test]
fn invalid_input_exits_2_and_a_failing_environment_exits_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "tess.toml", b"listen = 3\n");
    // A config file that does not parse is the operator's input: 2, located.
    let out = tess(dir.path(), &["server", "--config", "tess.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("tess.toml:1:10:"), "{}", stderr(&out));
    // Nothing listens on port 1: the environment failed, not the input.
    let out = tess(
        dir.path(),
        &[
            "runs",
            "--server",
            "http://127.0.0.1:1",
            "--token",
            "t",
            "list",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    write(
        dir.path(),
        "ok.toml",
        b"api_tokens = [\"t\"]\nregistration_token = \"r\"\n",
    );
    let out = tess(
        dir.path(),
        &[
            "server",
            "--config",
            "ok.toml",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "postgres://tess:tess@127.0.0.1:1/tess",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("tess:***@127.0.0.1:1"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn validate_is_coloured_like_rustc_when_asked_and_plain_otherwise() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "bad.yml",
        b"on: push\njobs:\n  a:\n    runs-on: x\n    stepz: []\n",
    );
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = crate::support::tess_with_env(dir.path(), args, env);
        assert_eq!(out.status.code(), Some(2));
        stderr(&out)
    };
    let red_error = "\x1b[1m\x1b[31merror\x1b[0m";
    let coloured = run(
        &["--color", "always", "validate", "bad.yml"],
        &[("NO_COLOR", "1")],
    );
    assert!(coloured.contains(red_error), "{coloured:?}");
    // The same text once the styles are gone.
    let plain = run(&["validate", "bad.yml"], &[]);
    assert!(!plain.contains('\x1b'), "{plain:?}");
    assert_eq!(
        anstream::adapter::strip_str(&coloured).to_string(),
        plain,
        "styles only"
    );
    assert!(plain.contains("bad.yml:5:5: error: unknown key `stepz` in job `a`"));
    // `auto`: CLICOLOR_FORCE forces colours on a pipe, NO_COLOR wins over it.
    assert!(run(&["validate", "bad.yml"], &[("CLICOLOR_FORCE", "1")]).contains(red_error));
    let no_color = run(
        &["validate", "bad.yml"],
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")],
    );
    assert!(!no_color.contains('\x1b'), "{no_color:?}");
    let never = run(
        &["--color", "never", "validate", "bad.yml"],
        &[("CLICOLOR_FORCE", "1")],
    );
    assert!(!never.contains('\x1b'), "{never:?}");
}
