//! Planning: DAG levels, matrix instances, plan-time `if`, inputs, reusable workflows.

use crate::support::{plan, stdout, tess};
use tesseract_ci::trigger::{Event, EventKind};

fn keys(p: &tesseract_ci::plan::PipelinePlan) -> Vec<(String, usize, Vec<String>)> {
    p.jobs
        .iter()
        .map(|j| (j.key.clone(), j.level, j.needs.clone()))
        .collect()
}

const DIAMOND: &str = r#"
on: [push, pull_request, workflow_dispatch]
jobs:
  build:
    runs-on: ubuntu-latest
    steps: [{run: make}]
  test:
    needs: build
    runs-on: ${{ matrix.os }}
    strategy:
      matrix:
        os: [ubuntu-latest, macos-latest]
    steps: [{run: make test}]
  lint:
    runs-on: ubuntu-latest
    steps: [{run: make lint}]
  deploy:
    needs: [test, lint]
    if: github.event_name == 'push' && github.ref == 'refs/heads/main'
    runs-on: ubuntu-latest
    steps: [{run: make deploy}]
  notify:
    needs: deploy
    if: always()
    runs-on: ubuntu-latest
    steps: [{run: echo done}]
  report:
    needs: deploy
    runs-on: ubuntu-latest
    steps: [{run: echo report}]
"#;

#[test]
fn levels_are_longest_paths_and_matrix_needs_wait_for_all_instances() {
    let p = plan(
        DIAMOND,
        Some(&Event::new(EventKind::Push, "refs/heads/main")),
    );
    assert_eq!(p.triggered, Some(true));
    let s = |v: &[&str]| {
        v.iter()
            .map(std::string::ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(&p),
        vec![
            ("build".into(), 0, vec![]),
            ("lint".into(), 0, vec![]),
            ("test (ubuntu-latest)".into(), 1, s(&["build"])),
            ("test (macos-latest)".into(), 1, s(&["build"])),
            (
                "deploy".into(),
                2,
                s(&["test (ubuntu-latest)", "test (macos-latest)", "lint"])
            ),
            ("notify".into(), 3, s(&["deploy"])),
            ("report".into(), 3, s(&["deploy"])),
        ]
    );
    assert_eq!(p.jobs[3].runs_on, serde_json::json!("macos-latest"));
    assert_eq!(p.jobs[3].name, "test (macos-latest)");
    // The condition was settled at plan time, so it is not left for run time.
    assert_eq!(p.jobs[4].condition, None);
    assert!(p.skipped.is_empty());
}

#[test]
fn false_if_skips_the_job_and_default_success_skips_its_dependents() {
    let mut e = Event::new(EventKind::PullRequest, "refs/pull/1/merge");
    e.base = Some("main".into());
    let p = plan(DIAMOND, Some(&e));
    let run: Vec<&str> = p.jobs.iter().map(|j| j.key.as_str()).collect();
    assert_eq!(
        run,
        [
            "build",
            "lint",
            "test (ubuntu-latest)",
            "test (macos-latest)",
            "notify"
        ]
    );
    assert_eq!(
        p.jobs[4].needs,
        Vec::<String>::new(),
        "skipped needs are dropped"
    );
    let skipped: Vec<(&str, &str)> = p
        .skipped
        .iter()
        .map(|s| (s.key.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(
        skipped,
        [
            (
                "deploy",
                "`if: github.event_name == 'push' && github.ref == 'refs/heads/main'` is false for this event"
            ),
            ("report", "needs `deploy`, which is skipped"),
        ]
    );
}

#[test]
fn without_an_event_every_job_is_listed_and_conditions_are_deferred() {
    let p = plan(DIAMOND, None);
    assert_eq!(p.triggered, None);
    assert_eq!(p.jobs.len(), 7);
    assert_eq!(
        p.jobs[4].condition.as_deref(),
        Some("github.event_name == 'push' && github.ref == 'refs/heads/main'")
    );
}

#[test]
fn untriggered_pipelines_plan_no_jobs() {
    let p = plan(
        DIAMOND,
        Some(&Event::new(EventKind::Schedule, "refs/heads/main")),
    );
    assert_eq!(p.triggered, Some(false));
    assert!(p.jobs.is_empty());
    assert!(
        p.reason
            .as_deref()
            .unwrap_or_default()
            .contains("no `schedule` trigger")
    );
}

#[test]
fn dynamic_matrix_from_inputs_and_names_with_expressions() {
    let yaml = r#"
on:
  workflow_dispatch:
    inputs:
      targets: {default: '["a","b"]'}
      verbose: {type: boolean, default: false}
jobs:
  build:
    name: Build ${{ matrix.target }}
    runs-on: ubuntu-latest
    strategy:
      matrix:
        target: ${{ fromJSON(inputs.targets) }}
    steps: [{run: make}]
  extra:
    if: inputs.verbose
    runs-on: ubuntu-latest
    steps: [{run: make}]
  later:
    needs: build
    strategy:
      matrix: ${{ fromJSON(needs.build.outputs.m) }}
    runs-on: ubuntu-latest
    steps: [{run: make}]
"#;
    let mut e = Event::new(EventKind::Manual, "refs/heads/main");
    e.inputs.insert("targets".into(), r#"["x","y","z"]"#.into());
    let p = plan(yaml, Some(&e));
    let names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["Build x", "Build y", "Build z", "later"]);
    assert_eq!(
        p.jobs[3].matrix, None,
        "a matrix from job outputs is only known at run time"
    );
    assert_eq!(p.skipped[0].key, "extra");
}

#[test]
fn local_reusable_workflows_expand_into_the_dag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wf = dir.path().join(".github/workflows");
    std::fs::create_dir_all(&wf).expect("mkdir");
    std::process::Command::new("git")
        .arg("init")
        .arg("-q")
        .arg(dir.path())
        .status()
        .expect("git init");
    std::fs::write(
        wf.join("ci.yml"),
        r#"
on: push
jobs:
  prep:
    runs-on: ubuntu-latest
    steps: [{run: make}]
  call:
    needs: prep
    uses: ./.github/workflows/reusable.yml
    with:
      flavor: fast
  after:
    needs: call
    runs-on: ubuntu-latest
    steps: [{run: make}]
"#,
    )
    .expect("write");
    std::fs::write(
        wf.join("reusable.yml"),
        r#"
name: Reusable
on:
  workflow_call:
    inputs:
      flavor: {type: string, required: true}
jobs:
  one:
    name: One ${{ inputs.flavor }}
    runs-on: ubuntu-latest
    steps: [{run: make}]
  two:
    needs: one
    if: inputs.flavor == 'slow'
    runs-on: ubuntu-latest
    steps: [{run: make}]
  three:
    needs: one
    runs-on: ubuntu-latest
    steps: [{run: make}]
"#,
    )
    .expect("write");
    let out = tess(
        dir.path(),
        &[
            "plan",
            ".github/workflows/ci.yml",
            "--event",
            "push",
            "--ref",
            "main",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let jobs = &json["pipelines"][0]["jobs"];
    let got: Vec<(String, String, Vec<String>, u64)> = jobs
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| {
            (
                j["key"].as_str().unwrap_or_default().to_string(),
                j["name"].as_str().unwrap_or_default().to_string(),
                j["needs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|n| n.as_str().unwrap_or_default().to_string())
                    .collect(),
                j["level"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    let s = |x: &str| x.to_string();
    assert_eq!(
        got,
        vec![
            (s("prep"), s("prep"), vec![], 0),
            (s("call/one"), s("call / One fast"), vec![s("prep")], 1),
            (
                s("call/three"),
                s("call / three"),
                vec![s("prep"), s("call/one")],
                2
            ),
            (
                s("after"),
                s("after"),
                vec![s("call/one"), s("call/three")],
                3
            ),
        ]
    );
    let skipped = &json["pipelines"][0]["skipped"][0];
    assert_eq!(skipped["key"], "call/two");
}

#[test]
fn missing_and_cyclic_reusable_workflows_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wf = dir.path().join(".github/workflows");
    std::fs::create_dir_all(&wf).expect("mkdir");
    std::fs::write(wf.join("a.yml"), "on: [push, workflow_call]\njobs:\n  x:\n    uses: ./.github/workflows/b.yml\n  y:\n    uses: ./.github/workflows/nope.yml\n").expect("write");
    std::fs::write(
        wf.join("b.yml"),
        "on: workflow_call\njobs:\n  z:\n    uses: ./.github/workflows/a.yml\n",
    )
    .expect("write");
    let out = tess(dir.path(), &["validate", ".github/workflows/a.yml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("b.yml:3:3: error: reusable workflow cycle"),
        "{err}"
    );
    assert!(
        err.contains(
            "a.yml:5:3: error: reusable workflow `./.github/workflows/nope.yml` does not exist"
        ),
        "{err}"
    );
}
