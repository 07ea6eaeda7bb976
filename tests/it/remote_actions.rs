//! Real actions (the archives in `../shared/actions`) served by a real git server on
//! 127.0.0.1 and run by their real names: fetched, cached by commit, run by node with
//! pre/post, through the cache service; and actions that cannot run never shown as passed.

use crate::git_http::GitHttp;
use crate::support::{stderr, stdout, wait_with_timeout};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Fixture {
    _dir: tempfile::TempDir,
    git: GitHttp,
    project: PathBuf,
    actions_cache: PathBuf,
    tool_cache: PathBuf,
}

struct Ran {
    code: Option<i32>,
    events: Vec<Value>,
    stderr: String,
}

impl Ran {
    fn log(&self, job: &str) -> Vec<String> {
        crate::run::log_lines(&self.events, job)
    }

    fn result(&self, job: &str) -> String {
        crate::run::results(&self.events)
            .into_iter()
            .find(|(j, _)| j == job)
            .map_or_else(|| "missing".into(), |(_, r)| r)
    }

    /// `(name, outcome)` of each finished step of `job`, in order.
    fn steps(&self, job: &str) -> Vec<(String, String)> {
        self.events
            .iter()
            .filter(|e| e["type"] == "step_finished" && e["job"] == job)
            .map(|e| {
                (
                    e["name"].as_str().unwrap_or_default().to_string(),
                    e["outcome"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }
}

impl Fixture {
    /// A project and a git server holding the shared `archives`; `None` without them.
    fn new(archives: &[&str]) -> Option<Fixture> {
        let dir = tempfile::tempdir().expect("tempdir");
        let git = GitHttp::start(&dir.path().join("git"));
        for archive in archives {
            git.publish_shared(archive)?;
        }
        let project = dir.path().join("project");
        std::fs::create_dir_all(&project).expect("project");
        Some(Fixture {
            actions_cache: dir.path().join("actions-cache"),
            tool_cache: dir.path().join("toolcache"),
            project,
            git,
            _dir: dir,
        })
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.project.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    /// Commits what was written (a run needs a checkout).
    fn commit(&self) {
        crate::harness::git(&self.project, &["init", "-q", "-b", "main"]);
        crate::harness::git(&self.project, &["add", "-A"]);
        crate::harness::git(
            &self.project,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.com",
                "commit",
                "-qm",
                "ci",
            ],
        );
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Ran {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_tess"))
            .args(["run", "--json", "--actions-server", &self.git.url])
            .args(args)
            .env("TESS_ACTIONS_CACHE", &self.actions_cache)
            .env("RUNNER_TOOL_CACHE", &self.tool_cache)
            .envs(env.iter().copied())
            .current_dir(&self.project)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("tess run");
        let out = wait_with_timeout(child, Duration::from_secs(120));
        let events = stdout(&out)
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{e}: {l}\nstderr: {}", stderr(&out)))
            })
            .collect();
        Ran {
            code: out.status.code(),
            events,
            stderr: stderr(&out),
        }
    }
}

#[test]
fn github_script_output_reaches_a_later_job_and_a_second_run_needs_no_server() {
    let Some(f) = Fixture::new(&["actions__github-script@v8.0.0"]) else {
        return;
    };
    f.write(
        ".github/workflows/ci.yml",
        r#"on: push
jobs:
  script:
    runs-on: ubuntu-latest
    outputs:
      said: ${{ steps.s.outputs.result }}
    steps:
      - id: s
        uses: actions/github-script@v8.0.0
        with:
          result-encoding: string
          script: |
            core.info(`running for ${context.repo.owner}/${context.repo.repo} on ${process.version}`)
            return `hello from ${process.env.GITHUB_ACTION_REPOSITORY}@${process.env.GITHUB_ACTION_REF}`
  reader:
    needs: script
    runs-on: ubuntu-latest
    steps:
      - run: echo "script said ${{ needs.script.outputs.said }}"
"#,
    );
    f.commit();
    let first = f.run(&[], &[]);
    assert_eq!(first.code, Some(0), "{:#?}\n{}", first.events, first.stderr);
    let log = first.log("script");
    assert!(
        log.iter()
            .any(|l| l.starts_with("Download action repository 'actions/github-script@v8.0.0'")),
        "{log:?}"
    );
    assert!(log.iter().any(|l| l.starts_with("running for ")), "{log:?}");
    assert_eq!(
        first.log("reader"),
        ["script said hello from actions/github-script@v8.0.0"]
    );
    // The cache answers: no git at all (--offline forbids it).
    let second = f.run(&["--offline"], &[]);
    assert_eq!(second.code, Some(0), "{:#?}", second.events);
    assert!(
        !second
            .log("script")
            .iter()
            .any(|l| l.starts_with("Download action repository")),
        "{:?}",
        second.log("script")
    );
    // An empty cache with --offline: the step fails and names the action.
    let empty = tempfile::tempdir().expect("tempdir");
    let cold = f.run(
        &["--offline"],
        &[("TESS_ACTIONS_CACHE", empty.path().to_str().expect("utf-8"))],
    );
    assert_eq!(cold.code, Some(1));
    assert_eq!(
        cold.steps("script"),
        [(
            "Run actions/github-script@v8.0.0".to_string(),
            "failure".to_string()
        )]
    );
    assert!(
        cold.log("script").iter().any(|l| l
            .contains("`actions/github-script@v8.0.0` is not in the actions cache")
            && l.contains("--offline")),
        "{:?}",
        cold.log("script")
    );
    assert_eq!(cold.result("reader"), "skipped");
}

/// `node/<version>/x64` in the tool cache as setup-node expects it, holding this host's
/// node (so no download is needed).
fn seed_node(tool_cache: &Path) -> String {
    let out = std::process::Command::new("node")
        .arg("--version")
        .output()
        .expect("node");
    let version = String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches('v')
        .to_string();
    let which = std::process::Command::new("sh")
        .args(["-c", "command -v node"])
        .output()
        .expect("which node");
    let node = PathBuf::from(String::from_utf8_lossy(&which.stdout).trim());
    let bin = tool_cache
        .join("node")
        .join(&version)
        .join("x64")
        .join("bin");
    std::fs::create_dir_all(&bin).expect("tool cache");
    std::os::unix::fs::symlink(&node, bin.join("node")).expect("symlink");
    std::fs::write(
        tool_cache.join("node").join(&version).join("x64.complete"),
        "",
    )
    .expect("marker");
    version
}

#[test]
fn setup_node_finds_the_tool_cache_and_its_post_step_runs() {
    let Some(f) = Fixture::new(&["actions__setup-node@v7.0.0"]) else {
        return;
    };
    let version = seed_node(&f.tool_cache);
    f.write(
        ".github/workflows/ci.yml",
        &format!(
            r#"on: push
jobs:
  node:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/setup-node@v7.0.0
        with:
          node-version: '{version}'
      - run: echo "node is $(command -v node) $(node --version)"
"#
        ),
    );
    f.commit();
    let ran = f.run(&[], &[]);
    assert_eq!(ran.code, Some(0), "{:#?}\n{}", ran.events, ran.stderr);
    let expected = format!(
        "node is {}/node/{version}/x64/bin/node v{version}",
        f.tool_cache.display()
    );
    assert!(ran.log("node").contains(&expected), "{:?}", ran.log("node"));
    let steps: Vec<String> = ran.steps("node").into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        steps,
        [
            "Run actions/setup-node@v7.0.0",
            "Run echo \"node is $(command -v node) $(node --version)\"",
            "Post Run actions/setup-node@v7.0.0",
        ]
    );
    assert!(ran.steps("node").iter().all(|(_, o)| o == "success"));
}

#[test]
fn checkout_clones_another_repository_from_the_same_server() {
    let Some(f) = Fixture::new(&["actions__checkout@v5"]) else {
        return;
    };
    let other = tempfile::tempdir().expect("tempdir");
    std::fs::write(other.path().join("hello.txt"), "from octo/other\n").expect("write");
    let sha = f.git.publish_dir("octo/other", other.path(), "v1");
    f.write(
        ".github/workflows/ci.yml",
        r#"on: push
jobs:
  clone:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v5
        with:
          repository: octo/other
          ref: v1
          path: other
      - run: cat other/hello.txt && git -C other rev-parse HEAD
"#,
    );
    f.commit();
    let ran = f.run(&[], &[]);
    assert_eq!(ran.code, Some(0), "{:#?}\n{}", ran.events, ran.stderr);
    let log = ran.log("clone");
    assert!(log.contains(&"from octo/other".to_string()), "{log:?}");
    assert!(log.contains(&sha), "{log:?}");
    // Its post step (removing the credentials it configured) ran too.
    assert!(
        ran.steps("clone")
            .iter()
            .any(|(n, o)| n == "Post Run actions/checkout@v5" && o == "success"),
        "{:?}",
        ran.steps("clone")
    );
}

#[test]
fn the_real_cache_action_saves_through_the_cache_service_and_the_next_run_restores() {
    cache_round_trip("");
}

#[test]
fn the_real_cache_action_round_trips_through_the_twirp_api_too() {
    // `@actions/cache` takes any server but github.com for GHES, where it only speaks v1;
    // the actions server here is 127.0.0.1, so the job says it is on github.com.
    cache_round_trip(
        "    env:\n      ACTIONS_CACHE_SERVICE_V2: 'true'\n      GITHUB_SERVER_URL: https://github.com\n",
    );
}

/// Save, exact restore, restore-key restore; `job_env` selects the cache API.
fn cache_round_trip(job_env: &str) {
    let Some(f) = Fixture::new(&["actions__cache@v4"]) else {
        return;
    };
    f.write(
        ".github/workflows/ci.yml",
        &format!(
            r#"on: push
jobs:
  cached:
    runs-on: ubuntu-latest
{job_env}    steps:
      - id: cache
        uses: actions/cache@v4
        with:
          path: deps
          key: deps-${{{{ hashFiles('lock.txt') }}}}
          restore-keys: deps-
      - run: echo "hit=${{{{ steps.cache.outputs.cache-hit }}}}"
      - if: steps.cache.outputs.cache-hit != 'true'
        run: mkdir -p deps && echo built > deps/lib.txt
      - run: cat deps/lib.txt
"#
        ),
    );
    f.write("lock.txt", "v1");
    f.commit();
    let first = f.run(&["--no-builtin-actions"], &[]);
    assert_eq!(first.code, Some(0), "{:#?}\n{}", first.events, first.stderr);
    let log = first.log("cached");
    // A miss leaves `cache-hit` empty (the action's documented outputs).
    assert!(log.contains(&"hit=".to_string()), "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with("Cache saved with key: deps-")),
        "{log:?}"
    );
    std::fs::remove_dir_all(f.project.join("deps")).expect("rm deps");
    let second = f.run(&["--no-builtin-actions"], &[]);
    let log = second.log("cached");
    assert!(log.contains(&"hit=true".to_string()), "{log:?}");
    assert!(log.contains(&"built".to_string()), "restored: {log:?}");
    // A new lock file: no exact hit, the restore key finds the older entry.
    std::fs::write(f.project.join("lock.txt"), "v2").expect("write");
    std::fs::remove_dir_all(f.project.join("deps")).expect("rm deps");
    let third = f.run(&["--no-builtin-actions"], &[]);
    let log = third.log("cached");
    assert!(log.contains(&"hit=false".to_string()), "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with("Cache restored from key: deps-")),
        "{log:?}"
    );
    // Only the twirp client says this: the API asked for is the one that answered.
    let twirp = log
        .iter()
        .any(|l| l.starts_with("Cache hit for restore-key: deps-"));
    assert_eq!(twirp, !job_env.is_empty(), "{log:?}");
}

#[test]
fn rust_toolchain_selects_the_host_toolchain() {
    let Some(f) = Fixture::new(&["dtolnay__rust-toolchain@v1"]) else {
        return;
    };
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .expect("rustc");
    let version = String::from_utf8_lossy(&rustc.stdout)
        .split(' ')
        .nth(1)
        .expect("a version")
        .to_string();
    // rustup syncs with its dist server even for an installed toolchain, and no such server
    // is reachable here: `toolchain install` of an installed toolchain answers as rustup
    // does when nothing changed; `default`, `+toolchain` and the rest are rustup's own, in
    // a RUSTUP_HOME of the test's that shares the host's toolchains.
    let real_home = std::process::Command::new("rustup")
        .args(["show", "home"])
        .output()
        .expect("rustup");
    let real_home = PathBuf::from(String::from_utf8_lossy(&real_home.stdout).trim());
    let home = f.project.parent().expect("dir").join("rustup-home");
    std::fs::create_dir_all(&home).expect("home");
    std::os::unix::fs::symlink(real_home.join("toolchains"), home.join("toolchains"))
        .expect("symlink");
    let shim = f.project.parent().expect("dir").join("bin");
    std::fs::create_dir_all(&shim).expect("bin");
    let real_rustup = String::from_utf8_lossy(
        &std::process::Command::new("sh")
            .args(["-c", "command -v rustup"])
            .output()
            .expect("which")
            .stdout,
    )
    .trim()
    .to_string();
    std::fs::write(
        shim.join("rustup"),
        format!(
            "#!/bin/sh\nif [ \"$1 $2\" = \"toolchain install\" ] && {real_rustup} toolchain list | grep -q \"^$3-\"; then\n  echo \"  $3 unchanged - $({real_rustup} run $3 rustc --version)\"\n  exit 0\nfi\nexec {real_rustup} \"$@\"\n"
        ),
    )
    .expect("shim");
    std::process::Command::new("chmod")
        .args(["+x"])
        .arg(shim.join("rustup"))
        .status()
        .expect("chmod");
    f.write(
        ".github/workflows/ci.yml",
        &format!(
            r#"on: push
jobs:
  msrv:
    runs-on: ubuntu-latest
    steps:
      - id: toolchain
        uses: dtolnay/rust-toolchain@v1
        with:
          toolchain: '{version}'
      - run: echo "name=${{{{ steps.toolchain.outputs.name }}}} key=${{{{ steps.toolchain.outputs.cachekey }}}} incremental=$CARGO_INCREMENTAL $(rustc --version)"
"#
        ),
    );
    f.commit();
    let path = format!(
        "{}:{}",
        shim.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The job's RUSTUP_HOME: `rustup default` must not change the host's.
    let rustup_home = format!("RUSTUP_HOME={}", home.display());
    let ran = f.run(&["--env", &rustup_home], &[("PATH", path.as_str())]);
    assert_eq!(ran.code, Some(0), "{:#?}\n{}", ran.events, ran.stderr);
    let line = ran
        .log("msrv")
        .into_iter()
        .find(|l| l.starts_with("name="))
        .expect("the summary line");
    assert!(
        line.starts_with(&format!("name={version} key=")) && line.contains("incremental=0"),
        "{line}"
    );
    assert!(
        line.contains(&format!("rustc {version} ")),
        "the default is now {version}: {line}"
    );
    let key = line.split("key=").nth(1).expect("key");
    assert_eq!(key.split(' ').next().expect("key").len(), 12, "{line}");
}

#[test]
fn a_local_javascript_action_runs_pre_main_and_post_with_state_and_a_failing_post_fails_the_job() {
    let Some(f) = Fixture::new(&[]) else {
        return;
    };
    f.write(
        ".github/actions/js/action.yml",
        r#"name: js
inputs:
  who: {required: true}
  greeting: {default: "hello"}
outputs:
  said: {description: what it said}
runs:
  using: node20
  pre: pre.js
  main: main.js
  post: post.js
"#,
    );
    f.write(
        ".github/actions/js/pre.js",
        "const fs = require('fs');\nconsole.log(`pre sees INPUT_WHO=${process.env.INPUT_WHO}`);\nfs.appendFileSync(process.env.GITHUB_STATE, 'from_pre=1\\n');\n",
    );
    f.write(
        ".github/actions/js/main.js",
        "const fs = require('fs');\nconsole.log(`${process.env.INPUT_GREETING} ${process.env.INPUT_WHO}; pre saved ${process.env.STATE_from_pre}; action path ${process.env.GITHUB_ACTION_PATH.endsWith('.github/actions/js')}`);\nfs.appendFileSync(process.env.GITHUB_OUTPUT, 'said=hi\\n');\nconsole.log('::save-state name=from_main::2');\nconsole.log('::set-output name=legacy::old');\n",
    );
    f.write(
        ".github/actions/js/post.js",
        "console.log(`post sees ${process.env.STATE_from_pre} and ${process.env.STATE_from_main}`);\nprocess.exit(4);\n",
    );
    f.write(
        ".github/workflows/ci.yml",
        r#"on: push
jobs:
  js:
    runs-on: ubuntu-latest
    steps:
      - run: echo first step
      - id: js
        uses: ./.github/actions/js
        with:
          who: tess
      - run: echo "outputs ${{ steps.js.outputs.said }} ${{ steps.js.outputs.legacy }}"
"#,
    );
    f.commit();
    let ran = f.run(&[], &[]);
    assert_eq!(ran.code, Some(1), "the failing post fails the run");
    assert_eq!(ran.result("js"), "failure");
    let steps: Vec<(String, String)> = ran.steps("js");
    let expected: Vec<(String, String)> = [
        ("Pre Run ./.github/actions/js", "success"),
        ("Run echo first step", "success"),
        ("Run ./.github/actions/js", "success"),
        (
            "Run echo \"outputs ${{ steps.js.outputs.said }} ${{ steps.js.outputs.legacy }}\"",
            "success",
        ),
        ("Post Run ./.github/actions/js", "failure"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(steps, expected);
    let log = ran.log("js");
    for line in [
        "pre sees INPUT_WHO=tess",
        "hello tess; pre saved 1; action path true",
        "outputs hi old",
        "post sees 1 and 2",
    ] {
        assert!(log.contains(&line.to_string()), "{line}: {log:?}");
    }
    assert!(
        log.iter()
            .any(|l| l.contains("The `set-output` command is deprecated")),
        "{log:?}"
    );
}

#[test]
fn an_action_that_cannot_be_fetched_fails_its_step_or_is_shown_not_run() {
    let Some(f) = Fixture::new(&[]) else {
        return;
    };
    f.write(
        ".github/workflows/ci.yml",
        r#"on: push
jobs:
  uses-missing:
    runs-on: ubuntu-latest
    steps:
      - uses: octo/missing@v1
      - run: echo after the missing action
"#,
    );
    f.commit();
    let ran = f.run(&[], &[]);
    assert_eq!(ran.code, Some(1));
    assert_eq!(ran.result("uses-missing"), "failure");
    let steps = ran.steps("uses-missing");
    assert_eq!(steps[0], ("Run octo/missing@v1".into(), "failure".into()));
    assert_eq!(steps[1].1, "skipped");
    let log = ran.log("uses-missing");
    let expected = format!(
        "`octo/missing@v1` could not be fetched from {}/octo/missing",
        f.git.url
    );
    assert!(log.iter().any(|l| l.contains(&expected)), "{log:?}");
    // --skip-unavailable: a visible "not run", the job's result says so, later steps run.
    let ran = f.run(&["--skip-unavailable"], &[]);
    assert_eq!(ran.code, Some(0), "{:#?}", ran.events);
    assert_eq!(ran.result("uses-missing"), "skipped-steps");
    let steps = ran.steps("uses-missing");
    assert_eq!(steps[0], ("Run octo/missing@v1".into(), "skipped".into()));
    assert_eq!(steps[1].1, "success");
    let finished = ran
        .events
        .iter()
        .find(|e| e["type"] == "step_finished" && e["step"] == 0)
        .expect("the step");
    assert_eq!(finished["detail"]["kind"], "unavailable", "{finished}");
}

#[test]
fn a_job_for_another_os_says_so_and_fails_with_strict() {
    let Some(f) = Fixture::new(&[]) else {
        return;
    };
    f.write(
        ".github/workflows/ci.yml",
        "on: push\njobs:\n  win:\n    runs-on: windows-latest\n    steps:\n      - run: echo ran here\n",
    );
    f.commit();
    let ran = f.run(&[], &[]);
    assert_eq!(ran.code, Some(0));
    let log = ran.log("win");
    assert!(
        log[0].contains(
            "job `win` asks for `runs-on: windows-latest` and runs on this linux host instead"
        ),
        "{log:?}"
    );
    let strict = f.run(&["--strict"], &[]);
    assert_eq!(strict.code, Some(1));
    assert!(!strict.log("win").contains(&"ran here".to_string()));
}

#[test]
fn a_remote_reusable_workflow_gets_inputs_and_secrets_and_gives_outputs() {
    let Some(f) = Fixture::new(&[]) else {
        return;
    };
    let workflows = tempfile::tempdir().expect("tempdir");
    let dir = workflows.path().join(".github/workflows");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("build.yml"),
        r#"on:
  workflow_call:
    inputs:
      target: {type: string, required: true}
      level: {type: number, default: 2}
    secrets:
      deploy-key: {required: true}
    outputs:
      artifact:
        value: ${{ jobs.build.outputs.artifact }}
      nested:
        value: ${{ jobs.nested.outputs.said }}
jobs:
  build:
    runs-on: ubuntu-latest
    outputs:
      artifact: ${{ steps.b.outputs.artifact }}
    steps:
      - id: b
        run: |
          echo "target=${{ inputs.target }} level=${{ inputs.level }} key=${{ secrets.deploy-key }} other=${{ secrets.OTHER }}"
          echo "artifact=${{ inputs.target }}-$(( ${{ inputs.level }} + 1 ))" >> "$GITHUB_OUTPUT"
  nested:
    uses: ./.github/workflows/inner.yml
    with:
      who: ${{ inputs.target }}
"#,
    )
    .expect("write");
    std::fs::write(
        dir.join("inner.yml"),
        r#"on:
  workflow_call:
    inputs:
      who: {type: string}
    outputs:
      said:
        value: ${{ jobs.greet.outputs.said }}
jobs:
  greet:
    runs-on: ubuntu-latest
    outputs:
      said: ${{ steps.g.outputs.said }}
    steps:
      - id: g
        run: echo "said=hello ${{ inputs.who }}" >> "$GITHUB_OUTPUT"
"#,
    )
    .expect("write");
    f.git.publish_dir("octo/workflows", workflows.path(), "v1");
    f.write(
        ".github/workflows/ci.yml",
        r#"on: push
jobs:
  prepare:
    runs-on: ubuntu-latest
    outputs:
      target: ${{ steps.p.outputs.target }}
    steps:
      - id: p
        run: echo "target=linux" >> "$GITHUB_OUTPUT"
  call:
    needs: prepare
    uses: octo/workflows/.github/workflows/build.yml@v1
    with:
      target: ${{ needs.prepare.outputs.target }}
    secrets:
      deploy-key: ${{ secrets.DEPLOY }}
  inherit:
    uses: octo/workflows/.github/workflows/build.yml@v1
    with:
      target: mac
      level: 5
    secrets: inherit
  after:
    needs: [call, inherit]
    runs-on: ubuntu-latest
    steps:
      - run: echo "call=${{ needs.call.outputs.artifact }} nested=${{ needs.call.outputs.nested }} result=${{ needs.call.result }} inherit=${{ needs.inherit.outputs.artifact }}"
"#,
    );
    f.commit();
    let ran = f.run(
        &[
            "--secret",
            "DEPLOY=s3cret-deploy",
            "--secret",
            "deploy-key=inherited-key",
            "--secret",
            "OTHER=other-secret",
        ],
        &[],
    );
    assert_eq!(ran.code, Some(0), "{:#?}\n{}", ran.events, ran.stderr);
    assert_eq!(
        ran.log("call/build"),
        ["target=linux level=2 key=*** other="]
    );
    assert_eq!(
        ran.log("inherit/build"),
        ["target=mac level=5 key=*** other=***"]
    );
    assert_eq!(ran.result("call/nested/greet"), "success");
    assert_eq!(
        ran.log("after"),
        ["call=linux-3 nested=hello linux result=success inherit=mac-6"]
    );
    // The secrets never reach the output.
    let all = serde_json::to_string(&ran.events).expect("json");
    for secret in ["s3cret-deploy", "inherited-key", "other-secret"] {
        assert!(!all.contains(secret), "{secret} leaked");
    }
    // An unknown ref is a located error before anything runs.
    f.write(
        ".github/workflows/ci.yml",
        "on: push\njobs:\n  call:\n    uses: octo/workflows/.github/workflows/build.yml@v9\n    with:\n      target: x\n",
    );
    let bad = f.run(&[], &[]);
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert!(
        bad.stderr.contains("ci.yml:3:") && bad.stderr.contains("could not be fetched"),
        "{}",
        bad.stderr
    );
}

#[test]
fn remote_composite_actions_nest_see_the_caller_env_and_stop_at_ten_levels() {
    let Some(f) = Fixture::new(&[]) else {
        return;
    };
    let inner = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        inner.path().join("action.yml"),
        r#"name: inner
inputs:
  name: {required: true}
outputs:
  shout:
    value: ${{ steps.s.outputs.shout }}
runs:
  using: composite
  steps:
    - id: s
      shell: bash
      run: |
        echo "inner sees CALLER_ENV=$CALLER_ENV path-ok=$([ -f "$GITHUB_ACTION_PATH/action.yml" ] && echo yes)"
        echo "shout=${{ inputs.name }}!" >> "$GITHUB_OUTPUT"
"#,
    )
    .expect("write");
    f.git.publish_dir("octo/inner", inner.path(), "v1");
    let outer = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(outer.path().join("greet")).expect("mkdir");
    std::fs::write(
        outer.path().join("greet/action.yml"),
        r#"name: greet
inputs:
  who: {default: world}
outputs:
  message:
    value: ${{ steps.inner.outputs.shout }}
runs:
  using: composite
  steps:
    - id: inner
      uses: octo/inner@v1
      with:
        name: hello ${{ inputs.who }}
    - shell: bash
      run: echo "outer repository=$GITHUB_ACTION_REPOSITORY ref=$GITHUB_ACTION_REF"
    - if: always()
      continue-on-error: true
      shell: bash
      run: exit 5
"#,
    )
    .expect("write");
    f.git.publish_dir("octo/actions", outer.path(), "v2");
    f.write(
        ".github/actions/deep/action.yml",
        "name: deep\nruns:\n  using: composite\n  steps:\n    - uses: ./.github/actions/deep\n",
    );
    f.write(
        ".github/workflows/ci.yml",
        r#"on: push
jobs:
  nested:
    runs-on: ubuntu-latest
    steps:
      - id: greet
        uses: octo/actions/greet@v2
        env:
          CALLER_ENV: from-the-step
        with:
          who: tess
      - run: echo "message=${{ steps.greet.outputs.message }} CALLER_ENV=${CALLER_ENV:-unset}"
  deep:
    runs-on: ubuntu-latest
    steps:
      - uses: ./.github/actions/deep
"#,
    );
    f.commit();
    let ran = f.run(&[], &[]);
    assert_eq!(ran.result("nested"), "success", "{:#?}", ran.events);
    let log = ran.log("nested");
    for line in [
        "inner sees CALLER_ENV=from-the-step path-ok=yes",
        "outer repository=octo/actions ref=v2",
        "message=hello tess! CALLER_ENV=unset",
    ] {
        assert!(log.contains(&line.to_string()), "{line}: {log:?}");
    }
    assert_eq!(ran.result("deep"), "failure");
    assert!(
        ran.log("deep")
            .iter()
            .any(|l| l.contains("composite actions are nested more than 10 levels deep")),
        "{:?}",
        ran.log("deep")
    );
}

#[test]
fn legacy_commands_work_as_github_still_honours_them() {
    let Some(f) = Fixture::new(&[]) else {
        return;
    };
    f.write(
        ".github/workflows/ci.yml",
        r#"on: push
jobs:
  allowed:
    runs-on: ubuntu-latest
    env:
      ACTIONS_ALLOW_UNSECURE_COMMANDS: 'true'
    steps:
      - run: |
          echo "::set-env name=OLD_STYLE::set by set-env"
          echo "::add-path::/opt/legacy/bin"
      - run: echo "OLD_STYLE=$OLD_STYLE path-first=${PATH%%:*}"
  refused:
    runs-on: ubuntu-latest
    steps:
      - run: echo "::set-env name=OLD_STYLE::nope"
      - if: always()
        run: echo "OLD_STYLE=${OLD_STYLE:-unset}"
"#,
    );
    f.commit();
    let ran = f.run(&[], &[]);
    assert!(
        ran.log("allowed")
            .contains(&"OLD_STYLE=set by set-env path-first=/opt/legacy/bin".to_string()),
        "{:?}",
        ran.log("allowed")
    );
    assert_eq!(ran.result("allowed"), "success");
    assert_eq!(ran.result("refused"), "failure");
    let log = ran.log("refused");
    assert!(
        log.iter()
            .any(|l| l.contains("The `set-env` and `add-path` commands are disabled")),
        "{log:?}"
    );
    assert!(log.contains(&"OLD_STYLE=unset".to_string()), "{log:?}");
}

#[test]
fn a_runner_fetches_actions_and_caches_through_its_server() {
    use crate::harness::{Server, databases, setup};
    let Some(f) = Fixture::new(&["actions__cache@v4"]) else {
        return;
    };
    let root = f.project.parent().expect("dir").join("server");
    std::fs::create_dir_all(&root).expect("mkdir");
    let (repo, server): (_, Server) =
        setup(&root, "github", "octo/hello", 30, &databases(&root)[0]);
    let workflow = r#"on: push
jobs:
  cached:
    runs-on: ubuntu-latest
    steps:
      - id: cache
        uses: actions/cache@v4
        with:
          path: deps
          key: deps-runner
      - run: echo "hit=${{ steps.cache.outputs.cache-hit }} $(cat deps/v 2>/dev/null || echo none)"
      - run: mkdir -p deps && echo "$GITHUB_SHA" > deps/v
"#;
    let first_sha = repo.commit(&[(".github/workflows/ci.yml", workflow)], "main");
    let _runner = server.runner_with(
        "r",
        "",
        &["--actions-server", &f.git.url, "--no-builtin-actions"],
    );
    let first = crate::server::push_main(&server, "c-1", &first_sha);
    let run = server.finished_run(&first, Duration::from_secs(120));
    assert_eq!(run["status"], "success", "{run:#}");
    let log = server.log(&first, "cached");
    assert!(log.contains("hit= none"), "{log}");
    assert!(log.contains("Cache saved with key: deps-runner"), "{log}");
    // The next push restores what the first saved: through the server's cache service
    // (the runner's workspace is fresh, `deps` is gone).
    let second_sha = repo.commit(&[("README.md", "second\n")], "main");
    let second = crate::server::push_main(&server, "c-2", &second_sha);
    let run = server.finished_run(&second, Duration::from_secs(120));
    assert_eq!(run["status"], "success", "{run:#}");
    let log = server.log(&second, "cached");
    assert!(log.contains(&format!("hit=true {first_sha}")), "{log}");
    // The entry is the server's, not the runner's.
    let served = root.join("tess-data/actions-cache");
    assert_eq!(walk_for(&served, "entry.json"), 1, "{}", served.display());
    assert_eq!(walk_for(&root.join("runner-r"), "entry.json"), 0);
}

/// How many files named `name` are under `dir`.
fn walk_for(dir: &Path, name: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                walk_for(&path, name)
            } else {
                usize::from(path.file_name().is_some_and(|n| n == name))
            }
        })
        .sum()
}
