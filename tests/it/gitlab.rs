//! The GitLab front end: the real-world corpus (with its local includes placed where the
//! projects keep them), `extends` / `!reference` / include merging, stages as a DAG.

use crate::support::{corpus_dir, stderr, stdout, tess};
use std::path::Path;
use tesseract_ci::load;
use tesseract_ci::plan::plan_pipeline;

/// Lays a corpus file out as its project: `.gitlab-ci.yml` plus its local includes
/// (`includes/<owner>__<repo>__<path with / as __>`).
fn project(main: &Path, dir: &Path) {
    let name = main.file_name().and_then(|n| n.to_str()).expect("name");
    let prefix = name.trim_end_matches(".gitlab-ci.yml");
    std::fs::copy(main, dir.join(".gitlab-ci.yml")).expect("copy");
    for entry in std::fs::read_dir(corpus_dir("gitlab").join("includes"))
        .expect("includes")
        .flatten()
    {
        let file = entry.file_name().to_string_lossy().into_owned();
        if let Some(rest) = file.strip_prefix(prefix) {
            let target = dir.join(rest.replace("__", "/"));
            std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
            std::fs::copy(entry.path(), target).expect("copy include");
        }
    }
}

fn corpus() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(corpus_dir("gitlab"))
        .expect("corpus")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= 30, "{} files", files.len());
    files
}

#[test]
fn every_gitlab_corpus_file_validates_and_plans() {
    for main in corpus() {
        let dir = tempfile::tempdir().expect("tempdir");
        project(&main, dir.path());
        let loaded = load::load(&[dir.path().join(".gitlab-ci.yml")]).expect("load");
        let errors: Vec<String> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.render(None))
            .collect();
        assert!(
            errors.is_empty(),
            "{}:\n{}",
            main.display(),
            errors.join("")
        );
        let p = &loaded.pipelines[0];
        let (plan, diags) = plan_pipeline(p, None);
        assert!(diags.is_empty(), "{diags:?}");
        let name = main
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("x")
            .trim_end_matches(".gitlab-ci.yml")
            .to_string();
        let jobs: Vec<serde_json::Value> = plan
            .jobs
            .iter()
            .map(|j| serde_json::json!([j.key, j.level, j.needs, j.condition]))
            .collect();
        insta::assert_json_snapshot!(format!("gitlab__{name}"), jobs);
    }
}

#[test]
fn extends_reference_and_stages() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("ci")).expect("mkdir");
    std::fs::write(
        dir.path().join("ci/common.yml"),
        ".base:\n  variables: {A: base, B: base}\n  before_script: [echo base-before]\n  tags: [docker]\n.setup:\n  script: [echo setup-one, echo setup-two]\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join(".gitlab-ci.yml"),
        r#"include:
  - local: ci/common.yml
stages: [build, test, deploy]
variables:
  GLOBAL: g
.middle:
  extends: .base
  variables: {B: middle}
build:
  stage: build
  extends: .middle
  variables: {C: job}
  script:
    - !reference [.setup, script]
    - echo "$A $B $C $GLOBAL"
lint:
  stage: build
  script: echo lint
test:
  stage: test
  script: echo "test $CI_JOB_NAME $CI_JOB_STAGE $CI_PIPELINE_SOURCE $GITLAB_CI"
  after_script: [echo cleanup]
deploy:
  stage: deploy
  needs: [build]
  script: echo deploy
  when: manual
early:
  stage: test
  needs: []
  allow_failure: true
  script: exit 1
"#,
    )
    .expect("write");
    let loaded = load::load(&[dir.path().join(".gitlab-ci.yml")]).expect("load");
    assert!(
        loaded.diagnostics.is_empty(),
        "{}",
        loaded.render_diagnostics()
    );
    let p = &loaded.pipelines[0];
    let build = &p.jobs["build"];
    assert_eq!(build.env.get("A").map(String::as_str), Some("base"));
    assert_eq!(build.env.get("B").map(String::as_str), Some("middle"));
    assert_eq!(build.env.get("C").map(String::as_str), Some("job"));
    assert_eq!(
        build.steps[0].run.as_deref(),
        Some("echo base-before\necho setup-one\necho setup-two\necho \"$A $B $C $GLOBAL\"")
    );
    assert_eq!(build.runs_on, Some(serde_json::json!(["docker"])));
    assert_eq!(p.jobs["test"].needs, ["build", "lint"]);
    assert_eq!(p.jobs["deploy"].needs, ["build"]);
    assert!(p.jobs["early"].needs.is_empty());
    assert_eq!(
        p.jobs["test"].steps[1].condition.as_deref(),
        Some("always()")
    );
    // Run it: stage order, allow_failure, manual jobs wait, after_script always runs.
    std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir.path())
        .status()
        .expect("git");
    let out = tess(dir.path(), &["run", "--json", ".gitlab-ci.yml"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let events: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let log = |job: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["type"] == "log" && e["job"] == job)
            .map(|e| e["line"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(
        log("build"),
        ["base-before", "setup-one", "setup-two", "base middle job g"]
    );
    assert_eq!(log("test"), ["test test test push true", "cleanup"]);
    let result = |job: &str| {
        events
            .iter()
            .find(|e| e["type"] == "job_finished" && e["job"] == job)
            .map(|e| e["result"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(result("deploy").as_deref(), Some("skipped"));
    assert_eq!(result("early").as_deref(), Some("failure"));
}

#[test]
fn gitlab_errors_are_located_with_help() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(".gitlab-ci.yml"),
        "stages: [build, test]\nbuild:\n  stage: biuld\n  script: make\ntest:\n  extends: .nope\n  scirpt: make\ncycle-a:\n  extends: cycle-b\n  script: a\ncycle-b:\n  extends: cycle-a\n  script: b\nuses-missing:\n  stage: build\n  needs: [bulid]\n  script: x\ninclude: missing.yml\n",
    )
    .expect("write");
    let out = tess(dir.path(), &["validate", ".gitlab-ci.yml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for expected in [
        ".gitlab-ci.yml:3:10: error: job `build`: stage `biuld` is not defined in `stages`",
        "help: did you mean `build`?",
        ".gitlab-ci.yml:6:12: error: `test` extends `.nope`, which does not exist",
        ".gitlab-ci.yml:7:3: error: unknown key `scirpt` in job `test`",
        "help: did you mean `script`?",
        "error: `extends` cycle:",
        "error: job `uses-missing` needs `bulid`, which does not exist",
        ".gitlab-ci.yml:18:10: error: local include `missing.yml` does not exist",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}
