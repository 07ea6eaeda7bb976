//! The GitHub Action: `tess run --github-actions` (action mode) with real event payloads and
//! a fake GitHub API receiving a status per stage, and `action.yml` itself run by `act`.

use crate::forge::FakeForge;
use crate::support::{corpus_dir, stderr, stdout, tess, tess_with_env};
use std::path::Path;
use std::process::Output;

const PIPELINE: &str = "name: ci
on:
  push:
    branches: [master]
    tags: ['v*']
  pull_request:
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo built
  test:
    needs: build
    runs-on: ubuntu-latest
    steps:
      - run: echo '::error file=src/lib.rs,line=3::flaky'
  lint:
    runs-on: ubuntu-latest
    continue-on-error: true
    steps:
      - run: exit 1
  release:
    needs: test
    if: startsWith(github.ref, 'refs/tags/v')
    runs-on: ubuntu-latest
    steps:
      - run: echo releasing > released.txt
";

fn write_pipeline(root: &Path, text: &str) {
    std::fs::create_dir_all(root.join(".github/workflows")).expect("mkdir");
    std::fs::write(root.join(".github/workflows/ci.yml"), text).expect("write");
}

/// Runs action mode in `root` the way `action.yml` does, for a GitHub event payload.
fn run_action(
    root: &Path,
    forge: &FakeForge,
    event: (&str, &Path),
    report: &str,
    token: &str,
) -> Output {
    let summary = root.join("summary.md");
    let output = root.join("output.txt");
    let env = [
        ("GITHUB_STEP_SUMMARY", summary.to_str().expect("utf-8")),
        ("GITHUB_OUTPUT", output.to_str().expect("utf-8")),
        ("GITHUB_EVENT_NAME", event.0),
        ("GITHUB_EVENT_PATH", event.1.to_str().expect("utf-8")),
        ("GITHUB_REPOSITORY", "octo/hello"),
        ("GITHUB_SERVER_URL", "https://github.example"),
        ("GITHUB_RUN_ID", "77"),
        ("TESS_API_URL", &forge.url),
        ("TESS_GITHUB_TOKEN", token),
    ];
    tess_with_env(root, &["run", "--github-actions", "--report", report], &env)
}

/// Each stage's accepted status descriptions, in order, by context.
fn descriptions(forge: &FakeForge) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut by_context = std::collections::BTreeMap::<String, Vec<String>>::new();
    for call in forge.calls().iter().filter(|c| c.method == "POST") {
        let field = |name: &str| call.body[name].as_str().unwrap_or("").to_string();
        by_context
            .entry(field("context"))
            .or_default()
            .push(format!("{}: {}", field("state"), field("description")));
    }
    by_context
}

/// A push to master, a tag `v1.0.0` and an opened pull request, from real payloads: one
/// status per stage, on the payload's commit, queued → running → final (older states may
/// be coalesced away, never reordered), with the job's output grouped in the log.
#[test]
fn action_mode_reports_a_status_per_stage_for_push_tag_and_pull_request() {
    let Some(payloads) = corpus_dir("webhooks/github") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write_pipeline(root, PIPELINE);
    // The tag push: the corpus's tag payload, tagged v1.0.0.
    let tag_text =
        std::fs::read_to_string(payloads.join("push__tag-push__drone__go-scm__push_tag.json"))
            .expect("payload")
            .replace("refs/tags/v0.0.1", "refs/tags/v1.0.0");
    let tag_payload = root.join("tag.json");
    std::fs::write(&tag_payload, tag_text).expect("write");
    let cases = [
        (
            "push",
            payloads.join("push__branch-push__drone__go-scm__push.json"),
            "199eddf46df50de8d02e99bf1c5fdb4101338224",
            "skipped",
        ),
        (
            "push",
            tag_payload,
            "d2b75aa7797ec26b088fa2dd527e9d2c052fcedd",
            "succeeded in",
        ),
        (
            "pull_request",
            payloads.join("pull_request__opened__octokit__webhooks__opened.payload.json"),
            "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
            "skipped",
        ),
    ];
    for (event, payload, sha, release) in cases {
        let forge = FakeForge::start();
        forge.require_token("ghs-action-token");
        let out = run_action(
            root,
            &forge,
            (event, &payload),
            "statuses",
            "ghs-action-token",
        );
        let text = stdout(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{event} {sha}: {text}\n{}",
            stderr(&out)
        );
        assert!(text.contains("::group::build — success"), "{text}");
        assert!(text.contains("::group::lint — failure (allowed)"), "{text}");
        assert!(text.contains("::endgroup::"), "{text}");
        let calls = forge.calls();
        // The token is checked first, then every status goes to the event's commit.
        assert_eq!(calls[0].method, "GET");
        assert_eq!(calls[0].path, "/repos/octo/hello");
        for call in &calls[1..] {
            assert_eq!(call.path, format!("/repos/octo/hello/statuses/{sha}"));
            assert_eq!(call.auth, "Bearer ghs-action-token");
            assert_eq!(
                call.body["target_url"],
                "https://github.example/octo/hello/actions/runs/77"
            );
        }
        let seen = descriptions(&forge);
        let contexts: Vec<&str> = seen.keys().map(String::as_str).collect();
        assert_eq!(
            contexts,
            [
                "tess/ci/build",
                "tess/ci/lint",
                "tess/ci/release",
                "tess/ci/test"
            ],
            "{seen:#?}"
        );
        for (context, states) in &seen {
            let order = |d: &String| {
                ["pending: queued", "pending: running", "success", "failure"]
                    .iter()
                    .position(|p| d.starts_with(p))
                    .unwrap_or(9)
            };
            let ranks: Vec<usize> = states.iter().map(order).collect();
            assert!(
                ranks.windows(2).all(|w| w[0] < w[1]),
                "{context}: {states:?}"
            );
            assert!(
                states.last().is_some_and(|s| s.starts_with("success")),
                "{context}: {states:?}"
            );
        }
        let last = |context: &str| seen[context].last().cloned().unwrap_or_default();
        assert!(
            last("tess/ci/build").starts_with("success: succeeded in"),
            "{seen:#?}"
        );
        assert!(
            last("tess/ci/lint").starts_with("success: failed (allowed to fail) in"),
            "{seen:#?}"
        );
        assert!(
            last("tess/ci/release").contains(release),
            "{event} {sha}: {seen:#?}"
        );
        let outputs = std::fs::read_to_string(root.join("output.txt")).expect("outputs");
        assert!(
            outputs.ends_with(&format!(
                "result=success\nfailed-jobs=\nrun-id={}\n",
                run_id(&text)
            )),
            "{outputs}"
        );
    }
}

/// The run id `tess run` printed.
fn run_id(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("run ")?.split(':').next())
        .unwrap_or_default()
        .to_string()
}

/// `report: checks`: a check run per stage, created once and then updated, with conclusions
/// (neutral for an allowed failure) and the step's `::error file=,line=::` as an annotation.
#[test]
fn action_mode_makes_a_check_run_per_stage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write_pipeline(root, PIPELINE);
    let Some(webhooks) = corpus_dir("webhooks/github") else {
        return;
    };
    let payload = webhooks.join("push__branch-push__drone__go-scm__push.json");
    let forge = FakeForge::start();
    let out = run_action(
        root,
        &forge,
        ("push", &payload),
        "checks",
        "ghs-action-token",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let calls = forge.calls();
    let created: Vec<&str> = calls
        .iter()
        .filter(|c| c.method == "POST")
        .map(|c| c.body["name"].as_str().unwrap_or(""))
        .collect();
    let mut unique = created.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        created.len(),
        unique.len(),
        "one check run per stage: {created:?}"
    );
    assert_eq!(
        unique,
        [
            "tess/ci/build",
            "tess/ci/lint",
            "tess/ci/release",
            "tess/ci/test"
        ]
    );
    let completed = |name: &str| {
        calls
            .iter()
            .rev()
            .find(|c| c.body["name"] == name && c.body["status"] == "completed")
            .unwrap_or_else(|| panic!("{name} never completed: {calls:#?}"))
            .clone()
    };
    assert_eq!(completed("tess/ci/build").body["conclusion"], "success");
    assert_eq!(completed("tess/ci/lint").body["conclusion"], "neutral");
    assert_eq!(completed("tess/ci/release").body["conclusion"], "skipped");
    let test = completed("tess/ci/test");
    assert_eq!(test.body["conclusion"], "success");
    assert_eq!(
        test.body["head_sha"],
        "199eddf46df50de8d02e99bf1c5fdb4101338224"
    );
    let annotation = &test.body["output"]["annotations"][0];
    assert_eq!(annotation["path"], "src/lib.rs");
    assert_eq!(annotation["start_line"], 3);
    assert_eq!(annotation["message"], "flaky");
}

/// A 503 and a 429 with `Retry-After: 1` while stages report: the status is tried again
/// (not before the second is up) and every stage still ends with its final state.
#[test]
fn action_mode_waits_out_failures_and_rate_limits() {
    use crate::forge::Answer;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write_pipeline(root, PIPELINE);
    let Some(webhooks) = corpus_dir("webhooks/github") else {
        return;
    };
    let payload = webhooks.join("push__branch-push__drone__go-scm__push.json");
    let forge = FakeForge::start();
    let answer = |status, headers| Answer {
        status,
        headers,
        body: "{}",
    };
    forge.script(vec![
        answer(200, vec![]),
        answer(503, vec![]),
        answer(429, vec![("retry-after", "1".to_string())]),
    ]);
    let out = run_action(
        root,
        &forge,
        ("push", &payload),
        "statuses",
        "ghs-action-token",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("statuses delivered"),
        "{}",
        stderr(&out)
    );
    let calls = forge.calls();
    let limited = calls.iter().position(|c| c.status == 429).expect("a 429");
    let next = &calls[limited + 1];
    assert!(next.at.duration_since(calls[limited].at) >= std::time::Duration::from_millis(950));
    for (context, states) in descriptions(&forge) {
        let last = states.last().cloned().unwrap_or_default();
        assert!(last.starts_with("success: "), "{context}: {states:?}");
    }
}

/// A token GitHub refuses, or none at all, fails at once with a clear message: nothing
/// runs and no status is sent; the token never appears in the output.
#[test]
fn action_mode_with_a_bad_or_missing_token_fails_before_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write_pipeline(root, PIPELINE);
    let Some(webhooks) = corpus_dir("webhooks/github") else {
        return;
    };
    let tag = webhooks.join("push__tag-push__drone__go-scm__push_tag.json");
    let forge = FakeForge::start();
    forge.require_token("ghs-good");
    let out = run_action(root, &forge, ("push", &tag), "statuses", "ghs-wrong-token");
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(
            "cannot report to octo/hello: GitHub refused the token (401 Bad credentials)"
        ),
        "{}",
        stderr(&out)
    );
    assert!(!stdout(&out).contains("started") && !root.join(".tess").exists());
    assert!(!format!("{}{}", stdout(&out), stderr(&out)).contains("ghs-wrong-token"));
    // Held as a secret: no formatting shows it.
    let held = tesseract_ci::token::Secret::new("ghs-wrong-token");
    assert_eq!(format!("{held:?} {held}"), "*** ***");
    assert_eq!(held.expose(), "ghs-wrong-token");
    assert_eq!(forge.calls().len(), 1, "only the token check");
    let out = run_action(root, &forge, ("push", &tag), "statuses", "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("reporting needs a token"),
        "{}",
        stderr(&out)
    );
    assert!(!root.join(".tess").exists());
}

/// `tess run --github-actions` inside a GitHub Actions job: summary, outputs, annotations, exit code.
#[test]
fn action_mode_writes_the_step_summary_outputs_and_annotations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let workflow = "name: ci\non: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo built\n  test:\n    needs: build\n    runs-on: ubuntu-latest\n    steps:\n      - name: unit tests\n        run: exit 3\n  lint:\n    runs-on: ubuntu-latest\n    continue-on-error: true\n    steps:\n      - run: exit 1\n";
    std::fs::create_dir_all(root.join(".github/workflows")).expect("mkdir");
    std::fs::write(root.join(".github/workflows/ci.yml"), workflow).expect("write");
    let summary = root.join("summary.md");
    let output = root.join("output.txt");
    let env = [
        ("GITHUB_STEP_SUMMARY", summary.to_str().expect("utf-8")),
        ("GITHUB_OUTPUT", output.to_str().expect("utf-8")),
        ("GITHUB_EVENT_NAME", "schedule"),
        ("GITHUB_REF", "refs/heads/main"),
    ];
    let out = tess_with_env(root, &["run", "--github-actions", "--event", "push"], &env);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("::error title=tess: test::test failed at step `unit tests`"),
        "{}",
        stdout(&out)
    );
    let outputs = std::fs::read_to_string(&output).expect("outputs");
    assert!(outputs.contains("result=failure\n"), "{outputs}");
    // An allowed failure is not a failed job.
    assert!(outputs.contains("failed-jobs=test\n"), "{outputs}");
    assert!(outputs.contains("run-id="), "{outputs}");
    let text = std::fs::read_to_string(&summary).expect("summary");
    assert!(text.contains("### ci — failure"), "{text}");
    assert!(text.contains("| build | success |"), "{text}");
    assert!(text.contains("| test | failure |"), "{text}");
    assert!(text.contains("| lint | failure (allowed) |"), "{text}");
    assert!(text.contains("```mermaid\nflowchart LR"), "{text}");
    // Nodes in plan order: build, lint, test.
    assert!(text.contains("p0_j0 --> p0_j2"), "{text}");
    assert!(text.contains("class p0_j0 success"), "{text}");
    assert!(text.contains("class p0_j1 allowed"), "{text}");
    assert!(text.contains("class p0_j2 failure"), "{text}");
    // Outside a GitHub Actions job it says so before running anything.
    let out = tess(root, &["run", "--github-actions"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("GITHUB_STEP_SUMMARY"),
        "{}",
        stderr(&out)
    );
}

/// `act` (the pinned peer, `scripts/peers.sh`), or `None` when it is not installed and the
/// run does not require it (`TESS_REQUIRE_ACT=1`, as in `.ci/run`).
fn act() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("act"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("TESS_REQUIRE_ACT").is_none(),
            "act is required: run scripts/peers.sh"
        );
        crate::support::skip_or_fail("act is not installed (scripts/peers.sh installs it)");
    }
    found
}

const INNER: &str = "name: inner
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo built
  test:
    needs: build
    runs-on: ubuntu-latest
    steps:
      - run: exit 3
  lint:
    runs-on: ubuntu-latest
    continue-on-error: true
    steps:
      - run: exit 1
";

/// `action.yml` run by `act` with `uses: ./` in a repository of its own: the composite
/// action installs `tess` (from the tool cache), runs the pipeline's DAG, reports a status
/// per stage to the fake GitHub API, and sets the step's outputs; the failed pipeline
/// fails the step.
#[test]
fn the_action_runs_under_act_with_statuses_to_the_forge() {
    use crate::harness::{commit_all, git, git_out};
    let Some(act) = act() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (home, repo) = (dir.path().join("home"), dir.path().join("repo"));
    let source = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(repo.join("scripts")).expect("mkdir");
    std::fs::copy(source.join("action.yml"), repo.join("action.yml")).expect("copy");
    for script in ["action-install.sh", "action-run.sh"] {
        std::fs::copy(
            source.join("scripts").join(script),
            repo.join("scripts").join(script),
        )
        .expect("copy");
    }
    std::fs::create_dir_all(repo.join("pipelines")).expect("mkdir");
    std::fs::write(repo.join("pipelines/ci.yml"), INNER).expect("write");
    let forge = FakeForge::start();
    forge.require_token("ghs-act-token");
    let outer = format!(
        "on: push
jobs:
  ci:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - id: tess
        uses: ./
        with:
          pipeline: pipelines/ci.yml
          version: v0.0.0-test
          api-url: {}
      - if: always()
        run: echo \"outer saw ${{{{ steps.tess.outputs.result }}}} [${{{{ steps.tess.outputs.failed-jobs }}}}]\"
",
        forge.url
    );
    std::fs::create_dir_all(repo.join(".github/workflows")).expect("mkdir");
    std::fs::write(repo.join(".github/workflows/outer.yml"), outer).expect("write");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(
        &repo,
        &[
            "remote",
            "add",
            "origin",
            "https://github.com/acme/widgets.git",
        ],
    );
    commit_all(&repo);
    let sha = git_out(&repo, &["rev-parse", "HEAD"]);
    // The install step finds this version in the runner's tool cache.
    let cached = home.join(format!(
        ".cache/act/tool_cache/tesseract-ci/v0.0.0-test/linux-{}",
        std::env::consts::ARCH
    ));
    std::fs::create_dir_all(&cached).expect("mkdir");
    std::fs::copy(env!("CARGO_BIN_EXE_tess"), cached.join("tess")).expect("copy");
    let child = std::process::Command::new(act)
        .args([
            "push",
            "-P",
            "ubuntu-latest=-self-hosted",
            "-s",
            "GITHUB_TOKEN=ghs-act-token",
        ])
        .env("HOME", &home)
        .current_dir(&repo)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("act");
    let out = crate::support::wait_with_timeout(child, std::time::Duration::from_secs(120));
    let log = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        !out.status.success(),
        "the failed pipeline fails the job:\n{log}"
    );
    assert!(
        log.contains("tess v0.0.0-test from the tool cache"),
        "{log}"
    );
    assert!(log.contains("::group::test — failure"), "{log}");
    assert!(log.contains("outer saw failure [test]"), "{log}");
    let finals: Vec<(String, String)> = descriptions(&forge)
        .into_iter()
        .map(|(context, states)| (context, states.last().cloned().unwrap_or_default()))
        .collect();
    let shown: Vec<(&str, &str)> = finals
        .iter()
        .map(|(c, s)| (c.as_str(), s.split(" in ").next().unwrap_or("")))
        .collect();
    assert_eq!(
        shown,
        [
            ("tess/inner/build", "success: succeeded"),
            ("tess/inner/lint", "success: failed (allowed to fail)"),
            ("tess/inner/test", "failure: failed"),
        ],
        "{log}"
    );
    for call in forge.calls().iter().filter(|c| c.method == "POST") {
        assert_eq!(call.path, format!("/repos/acme/widgets/statuses/{sha}"));
        assert_eq!(call.auth, "Bearer ghs-act-token");
    }
}

/// The action's install step (`scripts/action-install.sh`) with releases served from a
/// directory (`TESS_RELEASE_URL=file://…`): an explicit version is downloaded, then found in
/// the tool cache; a missing release fails with an annotation; an action pinned to an exact
/// release downloads it instead of building.
#[test]
fn the_install_step_downloads_releases_and_keeps_them_in_the_tool_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let releases = dir.path().join("releases");
    let asset = format!("tess-linux-{}.tar.gz", std::env::consts::ARCH);
    let staging = dir.path().join("staging");
    std::fs::create_dir_all(&staging).expect("mkdir");
    // A stand-in binary (the debug `tess` is hundreds of megabytes to pack).
    std::fs::write(staging.join("tess"), "#!/bin/sh\necho \"tess 9.9.9\"\n").expect("write");
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(staging.join("tess"), mode).expect("chmod");
    for tag in ["v9.9.9", "v1.2.3"] {
        std::fs::create_dir_all(releases.join(tag)).expect("mkdir");
        let tar = std::process::Command::new("tar")
            .arg("-czf")
            .arg(releases.join(tag).join(&asset))
            .arg("-C")
            .arg(&staging)
            .arg("tess")
            .status()
            .expect("tar");
        assert!(tar.success());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/action-install.sh");
    let install = |version: &str, action_ref: &str| {
        let output = dir.path().join("output");
        let _ = std::fs::remove_file(&output);
        let out = std::process::Command::new("bash")
            .arg(&script)
            .env("TESS_VERSION", version)
            .env("TESS_ACTION_REF", action_ref)
            .env("TESS_RELEASE_URL", format!("file://{}", releases.display()))
            .env("RUNNER_TOOL_CACHE", dir.path().join("tool-cache"))
            .env("GITHUB_OUTPUT", &output)
            .output()
            .expect("bash");
        let said = format!("{}{}", stdout(&out), stderr(&out));
        let named = std::fs::read_to_string(&output).unwrap_or_default();
        (out.status.success(), said, named)
    };
    let (ok, said, named) = install("v9.9.9", "");
    assert!(ok && said.contains("tess v9.9.9 downloaded"), "{said}");
    let bin = named
        .trim()
        .strip_prefix("tess=")
        .expect("the `tess` output")
        .to_string();
    assert!(bin.ends_with(&format!(
        "tesseract-ci/v9.9.9/linux-{}/tess",
        std::env::consts::ARCH
    )));
    let version = std::process::Command::new(&bin)
        .arg("--version")
        .output()
        .expect("run");
    assert_eq!(stdout(&version), "tess 9.9.9\n");
    let (ok, said, _) = install("v9.9.9", "");
    assert!(
        ok && said.contains("tess v9.9.9 from the tool cache"),
        "{said}"
    );
    let (ok, said, _) = install("v0.0.404", "");
    assert!(
        !ok && said.contains("::error title=tesseract-ci::tess v0.0.404: no release binary"),
        "{said}"
    );
    // `uses: …@v1.2.3` without `version`: that release, not a cargo build.
    let (ok, said, named) = install("", "v1.2.3");
    assert!(
        ok && said.contains("tess v1.2.3 downloaded (the action's release)"),
        "{said}"
    );
    assert!(named.contains("/tesseract-ci/src-"), "{named}");
}
