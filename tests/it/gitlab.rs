//! The GitLab front end: the real-world corpus (with its local includes placed where the
//! projects keep them), `extends` / `!reference` / include merging, stages as a DAG.

use crate::support::{corpus_dir, stderr, stdout, tess, tess_with_env};
use std::path::{Path, PathBuf};
use tesseract_ci::load;
use tesseract_ci::plan::plan_pipeline;

/// Lays a corpus file out as its project: `.gitlab-ci.yml` plus its local includes
/// (`includes/<owner>__<repo>__<path with / as __>`).
fn project(main: &Path, dir: &Path) {
    let name = main.file_name().and_then(|n| n.to_str()).expect("name");
    let prefix = name.trim_end_matches(".gitlab-ci.yml");
    std::fs::copy(main, dir.join(".gitlab-ci.yml")).expect("copy");
    let includes = corpus_dir("gitlab")
        .expect("the corpus (checked by `corpus()`)")
        .join("includes");
    for entry in std::fs::read_dir(includes).expect("includes").flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if let Some(rest) = file.strip_prefix(prefix) {
            let target = dir.join(rest.replace("__", "/"));
            std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
            std::fs::copy(entry.path(), target).expect("copy include");
        }
    }
}

/// A `.gitlab-ci.yml` with `text` in a fresh directory, loaded.
fn gitlab_file(text: &str) -> (tempfile::TempDir, load::Loaded) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".gitlab-ci.yml"), text).expect("write");
    let loaded = load::load(&[dir.path().join(".gitlab-ci.yml")]).expect("load");
    (dir, loaded)
}

/// Runs `tess run --json` on a `.gitlab-ci.yml` in a fresh git repository: exit code, events.
fn run_events(dir: &Path) -> (Option<i32>, Vec<serde_json::Value>) {
    std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir)
        .status()
        .expect("git");
    // On the host: these tests are about GitLab's semantics, not its images.
    let out = tess(
        dir,
        &["run", "--json", "--executor", "host", ".gitlab-ci.yml"],
    );
    let events = stdout(&out)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (out.status.code(), events)
}

fn corpus() -> Vec<std::path::PathBuf> {
    let Some(dir) = corpus_dir("gitlab") else {
        return Vec::new();
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
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
  RAW:
    value: "$GLOBAL stays"
    expand: false
.middle:
  extends: .base
  variables: {B: middle}
build:
  stage: build
  image: rust:1.88
  services: [postgres:15]
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
  script: echo "test $CI_JOB_NAME $CI_JOB_STAGE $CI_PIPELINE_SOURCE $GITLAB_CI $DERIVED"; printf '%s\n' "$RAW"
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
    let commands: Vec<&str> = build.steps[0]
        .run
        .as_deref()
        .unwrap_or("")
        .lines()
        .filter(|l| !l.starts_with("printf"))
        .collect();
    assert_eq!(
        commands,
        [
            "echo base-before",
            "echo setup-one",
            "echo setup-two",
            "echo \"$A $B $C $GLOBAL\""
        ]
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
    let (code, events) = run_events(dir.path());
    assert_eq!(code, Some(0), "{events:#?}");
    let log = |job: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["type"] == "log" && e["job"] == job)
            .map(|e| e["line"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(
        log("build"),
        [
            "##[warning]job `build` wanted container rust:1.88 and services [postgres:15] but runs on the host without them (the executor is `host`)",
            "$ echo base-before",
            "base-before",
            "$ echo setup-one",
            "setup-one",
            "$ echo setup-two",
            "setup-two",
            "$ echo \"$A $B $C $GLOBAL\"",
            "base middle job g",
        ]
    );
    assert_eq!(
        log("test"),
        [
            "$ echo \"test $CI_JOB_NAME $CI_JOB_STAGE $CI_PIPELINE_SOURCE $GITLAB_CI $DERIVED\"; printf '%s\\n' \"$RAW\"",
            "test test test push true g-push-$literal",
            "$GLOBAL stays",
            "$ echo cleanup",
            "cleanup",
        ]
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
    let (_dir, loaded) = gitlab_file(
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
    );
    assert!(!loaded.has_errors(), "{}", loaded.render_diagnostics());
    let p = &loaded.pipelines[0];
    let push = |r: &str, changed: &[&str]| {
        let mut e = Event::new(EventKind::Push, r);
        e.changed = Some(
            changed
                .iter()
                .map(std::string::ToString::to_string)
                .collect(),
        );
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
            // `default-branch` is manual there: in the pipeline, not started on its own.
            vec![
                "implicit",
                "default-branch",
                "never-first",
                "not-main",
                "release-branches",
            ],
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
    let manual = plan
        .jobs
        .iter()
        .find(|j| j.key == "default-branch")
        .expect("the manual job is in the pipeline");
    assert_eq!(
        manual.spec.gitlab.as_ref().map(|g| g.when.as_str()),
        Some("manual")
    );
    assert_eq!(
        manual.spec.selected_because.as_deref(),
        Some(
            "rule 2 (`$CI_COMMIT_BRANCH =~ /^release-/`) matches; `when: manual`: starts when played"
        )
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
    let (_dir, loaded) = gitlab_file(
        "workflow:\n  rules:\n    - if: $CI_COMMIT_TAG\n      when: never\n    - if: $CI_COMMIT_BRANCH\nbuild:\n  script: make\n  rules:\n    - when: on_success\n",
    );
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
    let (_dir, loaded) = gitlab_file(
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
    );
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
        None,
    )
    .expect("load");
    let script = loaded.pipelines[0].jobs["build"].steps[0]
        .run
        .clone()
        .unwrap_or_default();
    assert!(script.ends_with("\necho from-template\n"), "{script}");
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

/// One job as both tools describe it: name, stage, when, allow_failure, explicit needs.
type JobView = (String, String, String, bool, Option<Vec<String>>);

/// gitlab-ci-local writes matrix instances as `job: [a,b]` and `parallel: N` instances as
/// `job: [1/N]`; GitLab names them `job: [a, b]` and `job 1/N` (GitLab MR 39985 and the
/// `parallel` docs). Its names are normalized to GitLab's before comparing.
fn gitlab_name(gcl: &str) -> String {
    let Some((base, rest)) = gcl.split_once(": [") else {
        return gcl.to_string();
    };
    let inner = rest.trim_end_matches(']');
    let is_counter = inner
        .split_once('/')
        .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok());
    if is_counter {
        format!("{base} {inner}")
    } else {
        format!(
            "{base}: [{}]",
            inner.split(',').collect::<Vec<_>>().join(", ")
        )
    }
}

/// Our view of a corpus project for a push to `main` of `acme/proj` (gitlab-ci-local's context).
fn our_jobs(dir: &Path) -> Vec<JobView> {
    use tesseract_ci::trigger::{Event, EventKind};
    let loaded = load::load(&[dir.join(".gitlab-ci.yml")]).expect("load");
    let p = &loaded.pipelines[0];
    let mut event = Event::new(EventKind::Push, "refs/heads/main");
    event.project = Some("acme/proj".into());
    let vars = tesseract_ci::plan::gitlab::pipeline_variables(p, &event);
    p.jobs
        .values()
        .map(|job| {
            let gl = job.gitlab.as_ref().expect("gitlab job");
            let d = tesseract_ci::plan::gitlab::decide_job(job, &event, &vars);
            let when = if d.added {
                d.when.clone()
            } else {
                "never".into()
            };
            let explicit = job
                .continue_on_error
                .as_ref()
                .and_then(serde_json::Value::as_bool);
            let needs = gl
                .explicit_needs
                .then(|| as_written(&job.needs, p.jobs.keys()));
            (
                job.id.clone(),
                gl.stage_name.clone(),
                when,
                d.allow_failure_or(explicit),
                needs,
            )
        })
        .collect()
}

/// The base job of a `parallel` instance name (`job: [a, b]`, `job 2/3`).
fn parallel_base(name: &str) -> Option<&str> {
    if let Some((base, rest)) = name.split_once(": [") {
        return rest.ends_with(']').then_some(base);
    }
    let (base, counter) = name.rsplit_once(' ')?;
    let (i, n) = counter.split_once('/')?;
    (i.parse::<u32>().is_ok() && n.parse::<u32>().is_ok()).then_some(base)
}

/// `needs` as written: a need on a `parallel` job is expanded to all its instances; when
/// all of them are needed, show the job's name, as gitlab-ci-local lists it.
fn as_written<'a>(
    needs: &[String],
    all_jobs: impl Iterator<Item = &'a String> + Clone,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for need in needs {
        let name = match parallel_base(need) {
            Some(base) => {
                let mut instances = all_jobs.clone().filter(|j| parallel_base(j) == Some(base));
                if instances.all(|i| needs.contains(i)) {
                    base.to_string()
                } else {
                    need.clone()
                }
            }
            None => need.clone(),
        };
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

fn their_jobs(fixture: &Path) -> Vec<JobView> {
    let text = std::fs::read_to_string(fixture).expect("fixture");
    let list: Vec<serde_json::Value> = serde_json::from_str(&text).expect("json");
    list.iter()
        .map(|j| {
            let needs = j["needs"].as_array().map(|n| {
                n.iter()
                    .map(|e| gitlab_name(e["job"].as_str().or(e.as_str()).unwrap_or_default()))
                    .collect()
            });
            (
                gitlab_name(j["name"].as_str().unwrap_or_default()),
                j["stage"].as_str().unwrap_or_default().to_string(),
                j["when"].as_str().unwrap_or_default().to_string(),
                j["allow_failure"].as_bool().unwrap_or(false),
                needs,
            )
        })
        .collect()
}

#[test]
fn agrees_with_gitlab_ci_local_where_it_can_list_offline() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gitlab-ci-local");
    let mut compared = 0;
    let mut manual_defaults = 0;
    let mut mismatches = Vec::new();
    for main in corpus() {
        let name = main
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .trim_end_matches(".gitlab-ci.yml")
            .to_string();
        let fixture = fixtures.join(format!("{name}.json"));
        if !fixture.exists() {
            continue;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        project(&main, dir.path());
        let ours = our_jobs(dir.path());
        let theirs = their_jobs(&fixture);
        let our_names: Vec<&String> = ours.iter().map(|j| &j.0).collect();
        let their_names: Vec<&String> = theirs.iter().map(|j| &j.0).collect();
        if our_names != their_names {
            mismatches.push(format!(
                "{name}: job names\n  ours:   {our_names:?}\n  theirs: {their_names:?}"
            ));
            continue;
        }
        for (o, t) in ours.iter().zip(&theirs) {
            compared += 1;
            // Known gitlab-ci-local bug: a job whose own `when` is `manual` defaults to
            // `allow_failure: true` in GitLab ("The default value for allow_failure is true for
            // manual jobs", docs.gitlab.com/ci/yaml/#allow_failure; rules-level `when: manual`
            // defaults to false). gitlab-ci-local reports false for those.
            let gcl_manual_bug = o.2 == "manual"
                && o.3
                && !t.3
                && (&o.0, &o.1, &o.2, &o.4) == (&t.0, &t.1, &t.2, &t.4);
            if gcl_manual_bug {
                manual_defaults += 1;
            } else if o != t {
                mismatches.push(format!("{name}: {}\n  ours:   {o:?}\n  theirs: {t:?}", o.0));
            }
        }
    }
    assert!(compared > 150, "compared only {compared} jobs");
    // The manual-default difference above, counted so it cannot grow unnoticed.
    assert_eq!(
        manual_defaults, 5,
        "jobs with gitlab-ci-local's manual allow_failure difference"
    );
    assert!(
        mismatches.is_empty(),
        "{} differences:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn retry_reruns_failed_jobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(".gitlab-ci.yml"),
        r#"flaky:
  retry: 2
  script:
    - n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count
    - test "$(cat count)" -ge 3
broken:
  retry:
    max: 1
    when: [script_failure]
  script: exit 1
not-retried:
  retry:
    max: 2
    when: [runner_system_failure]
  script: exit 1
"#,
    )
    .expect("write");
    let (code, events) = run_events(dir.path());
    assert_eq!(code, Some(1), "{events:#?}");
    let starts = |job: &str| {
        events
            .iter()
            .filter(|e| e["type"] == "job_started" && e["job"] == job)
            .count()
    };
    let result = |job: &str| {
        events
            .iter()
            .find(|e| e["type"] == "job_finished" && e["job"] == job && e["result"] != "failure")
            .or_else(|| {
                events
                    .iter()
                    .rev()
                    .find(|e| e["type"] == "job_finished" && e["job"] == job)
            })
            .map(|e| e["result"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(
        (starts("flaky"), result("flaky").as_deref()),
        (3, Some("success"))
    );
    assert_eq!(
        (starts("broken"), result("broken").as_deref()),
        (2, Some("failure"))
    );
    assert_eq!(
        (starts("not-retried"), result("not-retried").as_deref()),
        (1, Some("failure"))
    );
    let retry_note = events.iter().any(|e| {
        e["type"] == "log"
            && e["job"] == "flaky"
            && e["line"] == "##[notice]job failed; retrying (attempt 3 of 3)"
    });
    assert!(retry_note);
}

#[test]
fn needs_optional_and_matrix_instances() {
    use tesseract_ci::trigger::{Event, EventKind};
    let (_dir, loaded) = gitlab_file(
        r#"build:
  stage: build
  script: make
  parallel:
    matrix:
      - PROVIDER: [aws, gcp]
        STACK: [app1, app2]
tag-only:
  stage: build
  script: make
  rules:
    - if: $CI_COMMIT_TAG
deploy:
  stage: test
  script: deploy
  needs:
    - job: build
      parallel:
        matrix:
          - PROVIDER: aws
            STACK: [app1, app2]
    - job: tag-only
      optional: true
strict:
  stage: test
  script: deploy
  needs: [tag-only]
"#,
    );
    assert!(!loaded.has_errors(), "{}", loaded.render_diagnostics());
    let p = &loaded.pipelines[0];
    assert_eq!(
        p.jobs["deploy"].needs,
        ["build: [aws, app1]", "build: [aws, app2]", "tag-only"]
    );
    let (plan, diags) = plan_pipeline(p, Some(&Event::new(EventKind::Push, "refs/heads/main")));
    let deploy = plan
        .jobs
        .iter()
        .find(|j| j.key == "deploy")
        .expect("deploy");
    assert_eq!(deploy.needs, ["build: [aws, app1]", "build: [aws, app2]"]);
    let errors: Vec<String> = diags.iter().map(|d| d.message.clone()).collect();
    assert_eq!(
        errors,
        ["job `strict` needs `tag-only`, which is not in the pipeline for this event"]
    );
    let (_, tag_diags) = plan_pipeline(p, Some(&Event::new(EventKind::Push, "refs/tags/v1")));
    assert!(tag_diags.is_empty(), "{tag_diags:?}");
}

#[test]
fn plan_says_which_rule_added_each_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(".gitlab-ci.yml"),
        "build:\n  script: make\n  rules:\n    - if: $CI_COMMIT_BRANCH == \"main\"\n    - when: manual\ntest:\n  script: make test\n",
    )
    .expect("write");
    let out = tess(
        dir.path(),
        &["plan", ".gitlab-ci.yml", "--event", "push", "--ref", "main"],
    );
    let text = stdout(&out);
    assert!(text.contains("build  -      -                          rule 1 (`$CI_COMMIT_BRANCH == \"main\"`) matches"), "{text}");
    assert!(text.contains("only: [branches, tags] matches"), "{text}");
    let dev = stdout(&tess(
        dir.path(),
        &["plan", ".gitlab-ci.yml", "--event", "push", "--ref", "dev"],
    ));
    assert!(
        dev.contains("build  -      -                          rule 2 matches; `when: manual`: starts when played"),
        "{dev}"
    );
}

#[test]
fn allow_failure_exit_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(".gitlab-ci.yml"),
        "allowed:\n  script: exit 3\n  allow_failure:\n    exit_codes: [2, 3]\nnot-allowed:\n  script: exit 4\n  allow_failure:\n    exit_codes: 3\n",
    )
    .expect("write");
    let (code, events) = run_events(dir.path());
    assert_eq!(code, Some(1), "{events:#?}");
    let finished = |job: &str| {
        events
            .iter()
            .find(|e| e["type"] == "job_finished" && e["job"] == job)
            .cloned()
            .expect("finished")
    };
    assert_eq!(finished("allowed")["allowed_failure"], true);
    assert_eq!(
        finished("not-allowed")["allowed_failure"],
        serde_json::Value::Null
    );
    assert_eq!(finished("not-allowed")["result"], "failure");
}

#[test]
fn include_rules_gate_the_jobs_they_bring() {
    use tesseract_ci::trigger::{Event, EventKind};
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("ci")).expect("mkdir");
    std::fs::write(
        dir.path().join("ci/release.yml"),
        "release:\n  script: publish\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("ci/always.yml"), "lint:\n  script: lint\n").expect("write");
    std::fs::write(
        dir.path().join(".gitlab-ci.yml"),
        "include:\n  - local: ci/release.yml\n    rules:\n      - if: $CI_COMMIT_TAG\n  - local: ci/always.yml\nbuild:\n  script: make\n",
    )
    .expect("write");
    let loaded = load::load(&[dir.path().join(".gitlab-ci.yml")]).expect("load");
    assert!(
        loaded.diagnostics.is_empty(),
        "{}",
        loaded.render_diagnostics()
    );
    let p = &loaded.pipelines[0];
    let jobs = |r: &str| {
        let (plan, _) = plan_pipeline(p, Some(&Event::new(EventKind::Push, r)));
        let mut keys: Vec<String> = plan.jobs.iter().map(|j| j.key.clone()).collect();
        keys.sort();
        (
            keys,
            plan.skipped
                .iter()
                .map(|s| format!("{}: {}", s.key, s.reason))
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(jobs("refs/tags/v1").0, ["build", "lint", "release"]);
    let (branch, skipped) = jobs("refs/heads/main");
    assert_eq!(branch, ["build", "lint"]);
    assert_eq!(
        skipped,
        ["release: defined in an include whose rules do not add it: no rule matches"]
    );
}

#[test]
fn conditional_includes_are_decided_as_a_whole_for_the_event() {
    use tesseract_ci::trigger::{Event, EventKind};
    let dir = tempfile::tempdir().expect("tempdir");
    // The include overrides a job of the including file and sets a global variable: when
    // its rules leave it out, neither happens (GitLab never merges the file).
    std::fs::write(
        dir.path().join("release.yml"),
        "variables:\n  CHANNEL: stable\nbuild:\n  before_script: [echo release]\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join(".gitlab-ci.yml"),
        "include:\n  - local: release.yml\n    rules:\n      - if: $CI_COMMIT_TAG\nbuild:\n  stage: build\n  script: make\n",
    )
    .expect("write");
    let load_for = |git_ref: &str| {
        let event = Event::new(EventKind::Push, git_ref);
        let paths = [dir.path().join(".gitlab-ci.yml")];
        let loaded = load::load_with(&paths, None, Some(&event)).expect("load");
        assert!(
            loaded.diagnostics.is_empty(),
            "{}",
            loaded.render_diagnostics()
        );
        loaded.pipelines.into_iter().next().expect("pipeline")
    };
    let script =
        |p: &tesseract_ci::spec::Pipeline| p.jobs["build"].steps[0].run.clone().unwrap_or_default();

    // Merged in: the include's `before_script` extends `build`, its variable is defined.
    let tag = load_for("refs/tags/v1");
    assert!(script(&tag).contains("echo release"), "{}", script(&tag));
    assert_eq!(tag.env.get("CHANNEL").map(String::as_str), Some("stable"));
    assert!(tag.skipped_includes.is_empty());

    let branch = load_for("refs/heads/main");
    assert_eq!(branch.env.get("CHANNEL"), None);
    assert_eq!(
        branch.skipped_includes,
        ["local: release.yml: no rule matches"]
    );
    assert!(
        !script(&branch).contains("echo release"),
        "{}",
        script(&branch)
    );

    // `tess plan` says which include was left out and why.
    let out = tess(
        dir.path(),
        &[
            "plan",
            "--event",
            "push",
            "--ref",
            "refs/heads/main",
            ".gitlab-ci.yml",
        ],
    );
    assert!(
        stdout(&out).contains("include left out: local: release.yml: no rule matches"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn scripts_fall_back_to_sh_where_bash_is_missing() {
    // A PATH with sh and git but no bash, as on a minimal runner image.
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    for tool in ["sh", "git"] {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .expect("sh and git are installed");
        std::os::unix::fs::symlink(found, bin.join(tool)).expect("symlink");
    }
    let project = dir.path().join("project");
    std::fs::create_dir(&project).expect("mkdir");
    std::fs::write(
        project.join(".gitlab-ci.yml"),
        "job:\n  script:\n    - test -z \"${BASH_VERSION:-}\" && echo \"not bash\"\n",
    )
    .expect("write");
    let path = bin.display().to_string();
    let out = tess_with_env(&project, &["run", ".gitlab-ci.yml"], &[("PATH", &path)]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("not bash"), "{}", stdout(&out));
}

#[test]
fn changes_compare_to_diffs_against_the_ref() {
    use tesseract_ci::trigger::{Event, EventKind};
    let dir = tempfile::tempdir().expect("tempdir");
    let git = |args: &[&str]| {
        let identity = ["-c", "user.email=t@t", "-c", "user.name=t"];
        crate::harness::git(dir.path(), &[&identity[..], args].concat());
    };
    std::fs::create_dir_all(dir.path().join("src")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("docs")).expect("mkdir");
    std::fs::write(dir.path().join("src/lib.rs"), "").expect("write");
    std::fs::write(
        dir.path().join(".gitlab-ci.yml"),
        "code:\n  script: make\n  rules:\n    - changes:\n        paths: ['src/**/*']\n        compare_to: refs/heads/main\ndocs:\n  script: make docs\n  rules:\n    - changes:\n        paths: ['docs/*']\n        compare_to: main\nbraces:\n  script: make\n  rules:\n    - changes:\n        paths: ['{README.md,docs/{a,z}.md}']\n        compare_to: main\nno-braces:\n  script: make\n  rules:\n    - changes:\n        paths: ['{src,lib}/*']\n        compare_to: main\n",
    )
    .expect("write");
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "one"]);
    // On a feature branch two commits touch docs only: compared with `main`, `src/` did not
    // change although the push's own change set is unknown.
    git(&["checkout", "-qb", "feature"]);
    std::fs::write(dir.path().join("docs/a.md"), "a").expect("write");
    git(&["add", "-A"]);
    git(&["commit", "-qm", "two"]);
    std::fs::write(dir.path().join("docs/b.md"), "b").expect("write");
    git(&["add", "-A"]);
    git(&["commit", "-qm", "three"]);
    let loaded = load::load(&[dir.path().join(".gitlab-ci.yml")]).expect("load");
    assert!(
        loaded.diagnostics.is_empty(),
        "{}",
        loaded.render_diagnostics()
    );
    let (plan, _) = plan_pipeline(
        &loaded.pipelines[0],
        Some(&Event::new(EventKind::Push, "refs/heads/feature")),
    );
    let keys: Vec<&str> = plan.jobs.iter().map(|j| j.key.as_str()).collect();
    assert_eq!(keys, ["docs", "braces"]);
    let skipped: Vec<&str> = plan.skipped.iter().map(|j| j.key.as_str()).collect();
    assert_eq!(skipped, ["code", "no-braces"]);

    // A ref the repository does not have is an error at the `compare_to`, as on GitLab.
    std::fs::write(
        dir.path().join(".gitlab-ci.yml"),
        "code:\n  script: make\n  rules:\n    - changes:\n        paths: [src/*]\n        compare_to: nope\n",
    )
    .expect("write");
    let loaded = load::load(&[dir.path().join(".gitlab-ci.yml")]).expect("load");
    let errors: Vec<String> = loaded
        .diagnostics
        .iter()
        .map(|d| {
            let file = Path::new(&d.file).file_name().unwrap_or_default();
            format!("{}:{}:{}: {}", file.display(), d.line, d.col, d.message)
        })
        .collect();
    assert_eq!(
        errors,
        [".gitlab-ci.yml:6:21: `changes:compare_to`: `nope` is not a ref of this repository"]
    );
}

/// A pipeline schedule's (or a manual run's) variables: `rules:if` sees them, and they win
/// over the YAML's global and job variables, as GitLab's precedence has it.
#[test]
fn pipeline_variables_of_a_schedule_win_over_yaml_variables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ci = "variables:\n  NIGHTLY: \"0\"\nnightly:\n  script:\n    - echo \"nightly=$NIGHTLY source=$CI_PIPELINE_SOURCE\"\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"schedule\" && $NIGHTLY == \"1\"\nbuild:\n  variables:\n    NIGHTLY: \"2\"\n  script:\n    - echo \"build nightly=$NIGHTLY\"\n";
    std::fs::write(dir.path().join(".gitlab-ci.yml"), ci).expect("write");
    let schedule = ["--event", "schedule", "--ref", "main"];
    let out = tess(
        dir.path(),
        &[&["plan"][..], &schedule, &[".gitlab-ci.yml"]].concat(),
    );
    assert!(
        stdout(&out).contains("skipped nightly: no rule matches"),
        "{}",
        stdout(&out)
    );
    let args = [
        &["run"][..],
        &schedule,
        &["--input", "NIGHTLY=1", ".gitlab-ci.yml"],
    ]
    .concat();
    let out = tess(dir.path(), &args);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("nightly=1 source=schedule"), "{text}");
    assert!(text.contains("build nightly=1"), "{text}");
}
