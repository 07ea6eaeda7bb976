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
  DERIVED: "${GLOBAL}-$CI_PIPELINE_SOURCE-$$literal"
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
  script: echo "test $CI_JOB_NAME $CI_JOB_STAGE $CI_PIPELINE_SOURCE $GITLAB_CI $DERIVED"
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
    assert_eq!(
        log("test"),
        ["test test test push true g-push-$literal", "cleanup"]
    );
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

#[test]
fn rules_expression_language() {
    use indexmap::IndexMap;
    use tesseract_ci::trigger::gitlab::Condition;
    let vars: IndexMap<String, String> = [
        ("A", "main"),
        ("B", ""),
        ("C", "Release-1.2"),
        ("PAT", "/^rel/i"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let table = [
        ("$A", true),
        ("$B", false),
        ("$UNDEFINED", false),
        ("$A == \"main\"", true),
        ("${A} == 'main'", true),
        ("$A != \"main\"", false),
        ("$UNDEFINED == null", true),
        ("$B == null", false),
        ("$B == \"\"", true),
        ("$C =~ /^release-\\d+/i", true),
        ("$C =~ /^release/", false),
        ("$C !~ /^release/", true),
        ("$UNDEFINED =~ /x/", false),
        ("$UNDEFINED !~ /x/", true),
        ("$C =~ $PAT", true),
        ("$A =~ \"ai\"", true),
        ("$A == \"dev\" || $C =~ /1\\.2$/", true),
        ("($A == \"dev\" || $A == \"main\") && $B", false),
        ("$A && $C && $UNDEFINED == null", true),
    ];
    for (src, expected) in table {
        let c = Condition::parse(src).unwrap_or_else(|e| panic!("{src}: {e:?}"));
        assert_eq!(c.eval(&vars), expected, "{src}");
    }
    for (src, offset) in [
        ("$A == \"x", 6),
        ("$A =~ null", 6),
        ("$A ==", 5),
        ("$A && ", 6),
        ("$A == /[/", 6),
    ] {
        let e = Condition::parse(src).expect_err(src);
        assert_eq!(e.offset, offset, "{src}: {e:?}");
    }
}

#[test]
fn rules_only_except_and_workflow_per_event() {
    use tesseract_ci::trigger::{Event, EventKind};
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(".gitlab-ci.yml"),
        r#"variables:
  DEPLOY_BRANCH: main
implicit:
  script: echo
mr-only:
  script: echo
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
default-branch:
  script: echo
  rules:
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
    - if: $CI_COMMIT_BRANCH =~ /^release-/
      when: manual
never-first:
  script: echo
  rules:
    - if: $CI_COMMIT_TAG
      when: never
    - when: always
      allow_failure: true
docs-changed:
  script: echo
  rules:
    - changes: [docs/**]
tags-only:
  stage: deploy
  script: echo
  only: [tags]
not-main:
  script: echo
  except: [main]
release-branches:
  script: echo
  only:
    refs: [/^release-.*$/]
    variables: [$DEPLOY_BRANCH == "main"]
"#,
    )
    .expect("write");
    let loaded = load::load(&[dir.path().join(".gitlab-ci.yml")]).expect("load");
    assert!(!loaded.has_errors(), "{}", loaded.render_diagnostics());
    let p = &loaded.pipelines[0];
    let push = |r: &str, changed: &[&str]| {
        let mut e = Event::new(EventKind::Push, r);
        e.changed = Some(changed.iter().map(|s| s.to_string()).collect());
        e
    };
    let mut mr = Event::new(EventKind::PullRequest, "refs/pull/1/merge");
    mr.head = Some("feature".into());
    mr.base = Some("main".into());
    let cases: Vec<(Event, Vec<&str>)> = vec![
        (
            push("refs/heads/main", &["src/a.rs"]),
            vec!["implicit", "default-branch", "never-first"],
        ),
        (
            push("refs/heads/dev", &["docs/x.md"]),
            vec!["implicit", "never-first", "docs-changed", "not-main"],
        ),
        (
            push("refs/heads/release-2", &[]),
            vec!["implicit", "never-first", "not-main", "release-branches"],
        ),
        (
            push("refs/tags/v1.0", &[]),
            vec!["implicit", "docs-changed", "not-main", "tags-only"],
        ),
        (mr, vec!["mr-only", "never-first", "docs-changed"]),
    ];
    for (event, expected) in cases {
        let (plan, diags) = plan_pipeline(p, Some(&event));
        assert!(diags.is_empty(), "{diags:?}");
        let got: Vec<&str> = plan.jobs.iter().map(|j| j.key.as_str()).collect();
        assert_eq!(got, expected, "{event:?}\nskipped: {:#?}", plan.skipped);
    }
    // Reasons say which rule decided.
    let (plan, _) = plan_pipeline(p, Some(&push("refs/heads/release-2", &[])));
    let reason = |key: &str| {
        plan.skipped
            .iter()
            .find(|s| s.key == key)
            .map(|s| s.reason.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        reason("default-branch"),
        "rule 2 (`$CI_COMMIT_BRANCH =~ /^release-/`) matches; `when: manual` jobs do not start on their own"
    );
    assert_eq!(reason("mr-only"), "no rule matches");
    assert_eq!(reason("tags-only"), "only: [tags] does not match");
    let always = plan
        .jobs
        .iter()
        .find(|j| j.key == "never-first")
        .expect("job");
    assert_eq!(always.spec.continue_on_error, Some(serde_json::json!(true)));
    // Stage order is recomputed among the jobs that are added: tags-only (deploy) waits for
    // the test-stage jobs of a tag pipeline only.
    let (tag, _) = plan_pipeline(p, Some(&push("refs/tags/v1.0", &[])));
    let deploy = tag
        .jobs
        .iter()
        .find(|j| j.key == "tags-only")
        .expect("deploy job");
    assert_eq!(deploy.needs, ["implicit", "docs-changed", "not-main"]);
}

#[test]
fn workflow_rules_decide_whether_a_pipeline_exists() {
    use tesseract_ci::trigger::{Event, EventKind};
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(".gitlab-ci.yml"),
        "workflow:\n  rules:\n    - if: $CI_COMMIT_TAG\n      when: never\n    - if: $CI_COMMIT_BRANCH\nbuild:\n  script: make\n  rules:\n    - when: on_success\n",
    )
    .expect("write");
    let loaded = load::load(&[dir.path().join(".gitlab-ci.yml")]).expect("load");
    let p = &loaded.pipelines[0];
    let decide = |e: Event| {
        let (plan, _) = plan_pipeline(p, Some(&e));
        (plan.triggered, plan.reason.unwrap_or_default())
    };
    assert_eq!(
        decide(Event::new(EventKind::Push, "refs/heads/dev")),
        (
            Some(true),
            "push pipeline for dev: workflow: rule 2 (`$CI_COMMIT_BRANCH`) matches".into()
        )
    );
    assert_eq!(
        decide(Event::new(EventKind::Push, "refs/tags/v1")),
        (
            Some(false),
            "push pipeline for v1: workflow: rule 1 (`$CI_COMMIT_TAG`) matches with `when: never`"
                .into()
        )
    );
    let (t, r) = decide(Event::new(EventKind::PullRequest, "refs/pull/1/merge"));
    assert_eq!(t, Some(false), "{r}");
    assert!(r.contains("no rule matches"), "{r}");
}

#[test]
fn parallel_jobs_expand_with_gitlab_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(".gitlab-ci.yml"),
        r#"shard:
  stage: build
  parallel: 3
  script: echo "$CI_NODE_INDEX/$CI_NODE_TOTAL"
matrix:
  stage: build
  parallel:
    matrix:
      - PROVIDER: aws
        STACK: [monitoring, app1]
      - PROVIDER: gcp
  script: echo "$PROVIDER $STACK"
one:
  stage: test
  needs: ["matrix: [aws, app1]"]
  script: echo one
all:
  stage: test
  needs: [shard]
  script: echo all
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
    let names: Vec<&str> = p.jobs.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "shard 1/3",
            "shard 2/3",
            "shard 3/3",
            "matrix: [aws, monitoring]",
            "matrix: [aws, app1]",
            "matrix: [gcp]",
            "one",
            "all"
        ]
    );
    assert_eq!(p.jobs["one"].needs, ["matrix: [aws, app1]"]);
    assert_eq!(p.jobs["all"].needs, ["shard 1/3", "shard 2/3", "shard 3/3"]);
    assert_eq!(
        p.jobs["matrix: [aws, app1]"]
            .env
            .get("STACK")
            .map(String::as_str),
        Some("app1")
    );
    assert_eq!(
        p.jobs["shard 2/3"]
            .env
            .get("CI_NODE_INDEX")
            .map(String::as_str),
        Some("2")
    );
}

#[test]
fn project_includes_resolve_from_include_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let checkouts = dir.path().join("checkouts/acme/templates/ci");
    std::fs::create_dir_all(&checkouts).expect("mkdir");
    std::fs::write(
        checkouts.join("build.yml"),
        ".build:\n  script: [echo from-template]\n",
    )
    .expect("write");
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).expect("mkdir");
    std::fs::write(
        project.join(".gitlab-ci.yml"),
        "include:\n  - project: acme/templates\n    file: /ci/build.yml\nbuild:\n  extends: .build\n",
    )
    .expect("write");
    // Without the checkout: a warning that names the include, and the job is incomplete.
    let without = tess(&project, &["validate", ".gitlab-ci.yml"]);
    assert_eq!(without.status.code(), Some(0), "{}", stderr(&without));
    assert!(
        stderr(&without)
            .contains("warning: include `project: acme/templates` cannot be resolved offline"),
        "{}",
        stderr(&without)
    );
    // With --include-dir the template is found and the job is complete.
    let with = tess(
        &project,
        &[
            "validate",
            "--include-dir",
            "../checkouts",
            ".gitlab-ci.yml",
        ],
    );
    assert_eq!(with.status.code(), Some(0), "{}", stderr(&with));
    assert!(stderr(&with).is_empty(), "{}", stderr(&with));
    let loaded = load::load_with(
        &[project.join(".gitlab-ci.yml")],
        Some(&dir.path().join("checkouts")),
    )
    .expect("load");
    assert_eq!(
        loaded.pipelines[0].jobs["build"].steps[0].run.as_deref(),
        Some("echo from-template")
    );
}

#[test]
fn rules_exists_looks_at_the_repository() {
    use tesseract_ci::trigger::{Event, EventKind};
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("src/deep")).expect("mkdir");
    std::fs::write(dir.path().join("src/deep/Cargo.toml"), "").expect("write");
    std::fs::write(
        dir.path().join(".gitlab-ci.yml"),
        "rust:\n  script: cargo test\n  rules:\n    - exists: ['**/Cargo.toml']\nnode:\n  script: npm test\n  rules:\n    - exists:\n        paths: [package.json]\n",
    )
    .expect("write");
    let loaded = load::load(&[dir.path().join(".gitlab-ci.yml")]).expect("load");
    let (plan, _) = plan_pipeline(
        &loaded.pipelines[0],
        Some(&Event::new(EventKind::Push, "refs/heads/main")),
    );
    let jobs: Vec<&str> = plan.jobs.iter().map(|j| j.key.as_str()).collect();
    assert_eq!(jobs, ["rust"]);
    assert_eq!(plan.skipped[0].key, "node");
}
