//! `tess run` on temporary git repositories: scheduling, semantics, output, cancellation.
//! Nothing here sleeps to wait for a condition: steps wait on files with a bounded loop,
//! and the tests wait on events (output lines, process exit) with timeouts.

use crate::support::{stderr, stdout, tess};
use serde_json::Value;
use std::path::{Path, PathBuf};

pub(crate) struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    pub(crate) fn new(workflow: &str) -> Repo {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = Repo { dir };
        repo.write(".github/workflows/ci.yml", workflow);
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .current_dir(repo.path())
                .output()
                .expect("git");
        };
        git(&["init", "-q", "-b", "main"]);
        git(&["add", "-A"]);
        git(&[
            "-c",
            "user.email=t@t",
            "-c",
            "user.name=t",
            "commit",
            "-qm",
            "init",
        ]);
        repo
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn write(&self, rel: &str, text: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    fn run(&self, extra: &[&str]) -> std::process::Output {
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        tess(self.path(), &args)
    }

    /// Runs with `--json` and returns the events.
    pub(crate) fn events(&self, extra: &[&str]) -> (Option<i32>, Vec<Value>) {
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        let events = stdout(&out)
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{e}: {l}\nstderr: {}", stderr(&out)))
            })
            .collect();
        (out.status.code(), events)
    }

    fn run_dir(&self) -> PathBuf {
        let runs = self.path().join(".tess/runs");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&runs)
            .expect("runs")
            .flatten()
            .map(|e| e.path())
            .collect();
        dirs.sort();
        dirs.pop().expect("a run directory")
    }
}

pub(crate) fn results(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e["type"] == "job_finished")
        .map(|e| {
            (
                e["job"].as_str().unwrap_or_default().to_string(),
                e["result"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn result_of(events: &[Value], job: &str) -> String {
    results(events)
        .into_iter()
        .find(|(j, _)| j == job)
        .map(|(_, r)| r)
        .unwrap_or_else(|| "missing".into())
}

pub(crate) fn log_lines(events: &[Value], job: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "log" && e["job"] == job)
        .map(|e| e["line"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A shell loop that waits (bounded) for a file to appear.
fn wait_for(file: &str) -> String {
    format!("for i in $(seq 1000); do [ -e {file} ] && break; sleep 0.01; done; [ -e {file} ]")
}

#[test]
fn diamond_middle_jobs_overlap_and_order_is_respected() {
    let wf = format!(
        r#"on: push
jobs:
  a:
    runs-on: x
    steps: [{{run: touch a.done}}]
  b:
    needs: a
    runs-on: x
    steps:
      - run: test -e a.done && touch b.started
      - run: {wait_c}
  c:
    needs: a
    runs-on: x
    steps:
      - run: test -e a.done && touch c.started
      - run: {wait_b}
  d:
    needs: [b, c]
    runs-on: x
    steps: [{{run: test -e b.started && test -e c.started}}]
"#,
        wait_c = wait_for("c.started"),
        wait_b = wait_for("b.started"),
    );
    let repo = Repo::new(&wf);
    let (code, events) = repo.events(&["-j", "2"]);
    assert_eq!(code, Some(0), "{events:#?}");
    assert_eq!(result_of(&events, "d"), "success");
    let order: Vec<String> = events
        .iter()
        .filter(|e| e["type"] == "job_started")
        .map(|e| e["job"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(order.first().map(String::as_str), Some("a"));
    assert_eq!(order.last().map(String::as_str), Some("d"));
}

/// Also run in a job container (`containers.rs`): the same results on both executors.
pub(crate) const FAILURES_WORKFLOW: &str = r#"on: push
jobs:
  build:
    runs-on: x
    steps:
      - id: bad
        run: exit 3
      - run: echo never
      - if: failure() && steps.bad.outcome == 'failure'
        run: echo cleanup after failure
      - if: always()
        run: echo always runs
  test:
    needs: build
    runs-on: x
    steps: [{run: echo should not run}]
  report:
    needs: [build, test]
    if: failure()
    runs-on: x
    steps:
      - run: echo "build=${{ needs.build.result }} test=${{ needs.test.result }}"
  finally:
    needs: report
    if: always()
    runs-on: x
    steps: [{run: echo done}]
  allowed:
    runs-on: x
    continue-on-error: true
    steps:
      - run: exit 1
"#;

#[test]
fn failures_propagate_and_status_functions_decide() {
    let repo = Repo::new(FAILURES_WORKFLOW);
    let (code, events) = repo.events(&[]);
    assert_eq!(code, Some(1));
    assert_eq!(result_of(&events, "build"), "failure");
    assert_eq!(result_of(&events, "test"), "skipped");
    assert_eq!(result_of(&events, "report"), "success");
    assert_eq!(result_of(&events, "finally"), "success");
    assert_eq!(result_of(&events, "allowed"), "failure");
    let build = log_lines(&events, "build");
    assert_eq!(build, ["cleanup after failure", "always runs"]);
    assert_eq!(log_lines(&events, "report"), ["build=failure test=skipped"]);
    let steps: Vec<(u64, String, String)> = events
        .iter()
        .filter(|e| e["type"] == "step_finished" && e["job"] == "build")
        .map(|e| {
            (
                e["step"].as_u64().unwrap_or(99),
                e["outcome"].as_str().unwrap_or("").into(),
                e["conclusion"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(steps[0], (0, "failure".into(), "failure".into()));
    assert_eq!(steps[1], (1, "skipped".into(), "skipped".into()));
}

#[test]
fn continue_on_error_only_fails_the_job_it_allows() {
    let repo = Repo::new(
        "on: push\njobs:\n  a:\n    runs-on: x\n    continue-on-error: true\n    steps: [{run: exit 1}]\n  b:\n    runs-on: x\n    steps:\n      - id: s\n        continue-on-error: true\n        run: exit 2\n      - run: echo \"${{ steps.s.outcome }}/${{ steps.s.conclusion }}\"\n",
    );
    let (code, events) = repo.events(&[]);
    assert_eq!(code, Some(0), "{events:#?}");
    assert_eq!(log_lines(&events, "b"), ["failure/success"]);
    let a = events
        .iter()
        .find(|e| e["type"] == "job_finished" && e["job"] == "a")
        .expect("a finished");
    assert_eq!(
        (a["result"].as_str(), a["allowed_failure"].as_bool()),
        (Some("failure"), Some(true))
    );
    // The summary shows it as a warning.
    let human = stdout(&repo.run(&[]));
    assert!(
        human
            .lines()
            .any(|l| l.starts_with("a ") && l.contains("failure (allowed)")),
        "{human}"
    );
}

/// Also run in a job container (`containers.rs`): the same results on both executors.
pub(crate) const FILES_WORKFLOW: &str = r##"on: push
env:
  WORKFLOW_VAR: wf
jobs:
  produce:
    runs-on: x
    env:
      JOB_VAR: job
    outputs:
      version: ${{ steps.v.outputs.version }}
      notes: ${{ steps.v.outputs.notes }}
    steps:
      - id: v
        run: |
          echo "version=1.2.3" >> "$GITHUB_OUTPUT"
          { echo "notes<<EOF"; echo "line one"; echo "line two"; echo "EOF"; } >> "$GITHUB_OUTPUT"
          echo "FROM_FILE=yes" >> "$GITHUB_ENV"
          mkdir -p tools && printf '#!/bin/sh\necho tool ran\n' > tools/mytool && chmod +x tools/mytool
          echo "$PWD/tools" >> "$GITHUB_PATH"
          echo "# Summary" >> "$GITHUB_STEP_SUMMARY"
      - run: echo "$WORKFLOW_VAR $JOB_VAR $FROM_FILE ${{ env.FROM_FILE }} ${{ steps.v.outputs.version }}"
      - run: mytool
      - env:
          STEP_VAR: ${{ github.event_name }}-${{ github.ref_name }}
        run: echo "$STEP_VAR $GITHUB_REF $CI $GITHUB_ACTIONS $RUNNER_OS"
  consume:
    needs: produce
    runs-on: x
    steps:
      - run: echo "got ${{ needs.produce.outputs.version }}"
      - run: echo "${{ needs.produce.outputs.notes }}"
"##;

#[test]
fn outputs_env_path_and_summary_files() {
    let repo = Repo::new(FILES_WORKFLOW);
    let (code, events) = repo.events(&[]);
    assert_eq!(code, Some(0), "{events:#?}");
    assert_eq!(
        log_lines(&events, "produce"),
        [
            "wf job yes yes 1.2.3",
            "tool ran",
            "push-main refs/heads/main true true Linux"
        ]
    );
    assert_eq!(
        log_lines(&events, "consume"),
        ["got 1.2.3", "line one", "line two"]
    );
    let summary =
        std::fs::read_to_string(repo.run_dir().join("produce.summary.md")).expect("summary");
    assert_eq!(summary, "# Summary\n");
    let event_json: Value = serde_json::from_str(
        &std::fs::read_to_string(repo.run_dir().join("event.json")).expect("event"),
    )
    .expect("json");
    assert_eq!(event_json["ref"], "refs/heads/main");
}

#[test]
fn secrets_are_masked_everywhere() {
    let repo = Repo::new(
        r#"on: push
jobs:
  leak:
    runs-on: x
    steps:
      - run: echo "token=${{ secrets.TOKEN }}"
      - run: printf '%s\n' "$MULTI"
        env:
          MULTI: ${{ secrets.MULTI }}
      - run: |
          echo "::add-mask::dynamic-value-42"
          echo "then dynamic-value-42 appears"
      - run: head -c 65530 /dev/zero | tr '\0' x; echo "tok-abcdef-123"; echo "tok-abcdef-123" >&2
      - run: echo "file ${{ secrets.FILE_SECRET }}"
"#,
    );
    repo.write("secrets.env", "MULTI=\"first-line-secret\"\n");
    let (code, events) = repo.events(&[
        "--secret",
        "TOKEN=tok-abcdef-123",
        "--secret",
        "MULTI=alpha-secret\nbeta-secret",
    ]);
    assert_eq!(code, Some(0));
    let lines = log_lines(&events, "leak");
    let all = lines.join("\n");
    for secret in [
        "tok-abcdef-123",
        "alpha-secret",
        "beta-secret",
        "dynamic-value-42",
    ] {
        assert!(!all.contains(secret), "{secret} leaked: {all}");
    }
    assert!(lines.contains(&"token=***".to_string()), "{lines:?}");
    assert!(lines.contains(&"***".to_string()));
    assert!(lines.contains(&"then *** appears".to_string()));
    assert!(lines.iter().any(|l| l.ends_with("x***")), "split write");
    let log = std::fs::read_to_string(repo.run_dir().join("leak.log")).expect("log");
    assert!(
        !log.contains("tok-abcdef-123") && !log.contains("beta-secret"),
        "log file leaks"
    );
}

#[test]
fn step_and_job_timeouts() {
    let repo = Repo::new(
        "on: push\njobs:\n  slow:\n    runs-on: x\n    steps:\n      - timeout-minutes: 0.02\n        run: sleep 600\n      - if: always()\n        run: echo after\n  whole:\n    runs-on: x\n    timeout-minutes: 0.02\n    steps:\n      - run: sleep 600\n",
    );
    let (code, events) = repo.events(&[]);
    assert_eq!(code, Some(1));
    let finished: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "step_finished")
        .collect();
    let slow = finished
        .iter()
        .find(|e| e["job"] == "slow" && e["step"] == 0)
        .expect("step");
    assert_eq!(slow["detail"]["kind"], "timed_out");
    assert_eq!(log_lines(&events, "slow"), ["after"]);
    assert_eq!(result_of(&events, "whole"), "failure");
}

#[test]
fn matrix_fail_fast_cancels_siblings_and_max_parallel_limits() {
    let repo = Repo::new(&format!(
        r#"on: push
jobs:
  m:
    runs-on: x
    strategy:
      matrix:
        n: [1, 2, 3]
    steps:
      - run: if [ "${{{{ matrix.n }}}}" = 1 ]; then {wait_others}; exit 1; fi; touch started-${{{{ matrix.n }}}}; sleep 600
  free:
    runs-on: x
    strategy:
      fail-fast: false
      max-parallel: 1
      matrix:
        n: [1, 2]
    steps:
      - run: "[ ! -e running ] && touch running && echo ${{{{ matrix.n }}}} && rm running"
"#,
        wait_others = wait_for("started-2")
    ));
    let (code, events) = repo.events(&["-j", "4"]);
    assert_eq!(code, Some(1));
    assert_eq!(result_of(&events, "m (1)"), "failure");
    assert_eq!(result_of(&events, "m (2)"), "cancelled");
    assert_eq!(result_of(&events, "m (3)"), "cancelled");
    assert_eq!(result_of(&events, "free (1)"), "success");
    assert_eq!(result_of(&events, "free (2)"), "success");
}

#[test]
fn composite_actions_and_artifacts() {
    let repo = Repo::new(
        r#"on: push
jobs:
  make:
    runs-on: x
    steps:
      - id: greet
        uses: ./.github/actions/greet
        with:
          who: tess
      - run: echo "composite said ${{ steps.greet.outputs.message }}"
      - run: mkdir -p out && echo payload > out/data.txt
      - uses: actions/upload-artifact@v4
        with:
          name: bundle
          path: out/data.txt
      - uses: some/unknown-action@v1
  use:
    needs: make
    runs-on: x
    steps:
      - uses: actions/download-artifact@v4
        with:
          name: bundle
          path: fetched
      - run: cat fetched/out/data.txt
"#,
    );
    repo.write(
        ".github/actions/greet/action.yml",
        r#"name: greet
inputs:
  who: {required: true}
  punct: {default: "!"}
outputs:
  message:
    value: ${{ steps.say.outputs.text }}
runs:
  using: composite
  steps:
    - id: say
      shell: bash
      run: echo "text=hello ${{ inputs.who }}${{ inputs.punct }}" >> "$GITHUB_OUTPUT"
"#,
    );
    // No actions server answers: the unknown action cannot be fetched.
    let nowhere = ["--actions-server", "http://127.0.0.1:9"];
    let (code, events) = repo.events(&[&nowhere[..], &["--skip-unavailable"]].concat());
    assert_eq!(code, Some(0), "{events:#?}");
    let make = log_lines(&events, "make");
    assert!(
        make.contains(&"composite said hello tess!".to_string()),
        "{make:?}"
    );
    assert!(
        make.iter().any(
            |l| l.contains("`some/unknown-action@v1` could not be fetched")
                && l.contains("not run (--skip-unavailable)")
        ),
        "{make:?}"
    );
    assert!(log_lines(&events, "use").contains(&"payload".to_string()));
    // Without --skip-unavailable it fails the step (never a green ✓).
    let (failed, _) = repo.events(&[&nowhere[..], &["--job", "make"]].concat());
    assert_eq!(failed, Some(1));
}

#[test]
fn large_output_is_complete_and_streams_do_not_deadlock() {
    let repo = Repo::new(
        "on: push\njobs:\n  big:\n    runs-on: x\n    steps:\n      - run: (seq 1 100000 | sed 's/^/err /' >&2) & seq 1 200000; wait\n",
    );
    let out = repo.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = std::fs::read_to_string(repo.run_dir().join("big.log")).expect("log");
    let out_lines = log
        .lines()
        .filter(|l| !l.contains("[stderr]") && !l.contains("##["))
        .count();
    let err_lines = log.lines().filter(|l| l.contains("[stderr] err ")).count();
    assert_eq!((out_lines, err_lines), (200_000, 100_000));
    assert!(log.lines().any(|l| l.ends_with(" 200000")));
}

#[test]
fn job_selection_exit_codes_and_event_stream() {
    let repo = Repo::new(
        "on: [push, workflow_dispatch]\njobs:\n  a:\n    runs-on: x\n    steps: [{run: echo a}]\n  b:\n    needs: a\n    runs-on: x\n    steps: [{run: echo b}]\n  c:\n    runs-on: x\n    steps: [{run: exit 1}]\n",
    );
    let (code, events) = repo.events(&["--job", "b"]);
    assert_eq!(code, Some(0));
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(types.first(), Some(&"run_started"));
    assert_eq!(types.last(), Some(&"run_finished"));
    for t in [
        "job_started",
        "step_started",
        "log",
        "step_finished",
        "job_finished",
    ] {
        assert!(types.contains(&t), "{t} missing");
    }
    assert_eq!(
        results(&events)
            .iter()
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    let human = repo.run(&["--job", "c"]);
    assert_eq!(human.status.code(), Some(1));
    let text = stdout(&human);
    assert!(
        text.contains("c | ✗ Run exit 1") && text.contains("exit code 1"),
        "{text}"
    );
    assert!(
        text.contains("JOB  RESULT") || text.contains("JOB"),
        "{text}"
    );
    assert_eq!(repo.run(&["--job", "nope"]).status.code(), Some(2));
    repo.write(
        ".github/workflows/bad.yml",
        "on: push\njobs: {a: {runs-on: x, stepz: []}}\n",
    );
    assert_eq!(repo.run(&[]).status.code(), Some(2));
}

#[test]
fn ctrl_c_cancels_and_leaves_no_processes_behind() {
    let repo = Repo::new(
        "on: push\njobs:\n  hang:\n    runs-on: x\n    steps:\n      - run: |\n          sleep 987654 &\n          sleep 987654 &\n          echo ready\n          wait\n",
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tess"))
        .args(["run", "--json"])
        .current_dir(repo.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let line = rx
            .recv_timeout(deadline - std::time::Instant::now())
            .expect("the step never said ready");
        if line.contains("\"line\":\"ready\"") {
            break;
        }
    }
    // SAFETY: sending SIGINT to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tess did not stop after SIGINT"
        );
        std::thread::park_timeout(std::time::Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(130));
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("\"result\":\"cancelled\"")),
        "{rest:?}"
    );
    // Every process of the step is gone (checked until a deadline: reaping takes a moment).
    loop {
        let left = processes_with("987654");
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "orphans left: {left:?}"
        );
        std::thread::park_timeout(std::time::Duration::from_millis(10));
    }
}

fn processes_with(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(marker))
        .collect()
}

#[test]
fn shells_defaults_working_directory_and_commands() {
    let repo = Repo::new(
        r#"on: push
defaults:
  run:
    working-directory: sub
jobs:
  shells:
    runs-on: x
    steps:
      - run: mkdir -p sub/deeper
        working-directory: .
      - run: basename "$PWD"
      - run: basename "$PWD"
        working-directory: sub/deeper
      - shell: sh
        run: echo "sh says $EXTRA"
      - shell: python
        run: print("python says", 6 * 7)
      - run: false | true
      - id: pipefail
        continue-on-error: true
        shell: bash
        run: false | true
      - shell: perl -e 'print "custom shell\n"' {0}
        run: ignored
      - run: |
          echo "::stop-commands::pause123"
          echo "::add-mask::not-a-command"
          echo "::pause123::"
          echo "::notice title=T::a notice"
          echo "::debug::some detail"
"#,
    );
    // Debug lines are shown with step debug logging on, as on GitHub.
    let (code, events) = repo.events(&[
        "--env",
        "EXTRA=from-flag",
        "--env",
        "ACTIONS_STEP_DEBUG=true",
    ]);
    assert_eq!(code, Some(0), "{events:#?}");
    let lines = log_lines(&events, "shells");
    assert_eq!(
        lines,
        [
            "sub",
            "deeper",
            "sh says from-flag",
            "python says 42",
            "custom shell",
            "::add-mask::not-a-command",
            "##[notice]a notice",
            "##[debug]some detail",
        ]
    );
    let pipefail = events
        .iter()
        .find(|e| e["type"] == "step_finished" && e["step"] == 6)
        .expect("pipefail step");
    assert_eq!(pipefail["outcome"], "failure", "bash runs with -o pipefail");
}

#[test]
fn cache_round_trip_and_hash_files() {
    let repo = Repo::new(
        r#"on: push
jobs:
  build:
    runs-on: x
    steps:
      - id: cache
        uses: actions/cache@v4
        with:
          path: deps
          key: deps-${{ hashFiles('**/lock.txt') }}
      - run: echo "hit=${{ steps.cache.outputs.cache-hit }}"
      - if: steps.cache.outputs.cache-hit != 'true'
        run: mkdir -p deps && echo built > deps/lib.txt
      - run: cat deps/lib.txt
"#,
    );
    repo.write("app/lock.txt", "v1");
    let (code, first) = repo.events(&[]);
    assert_eq!(code, Some(0), "{first:#?}");
    assert_eq!(log_lines(&first, "build")[1..3], ["hit=", "built"]);
    std::fs::remove_dir_all(repo.path().join("deps")).expect("rm deps");
    let (code, second) = repo.events(&[]);
    assert_eq!(code, Some(0));
    let lines = log_lines(&second, "build");
    assert!(lines.contains(&"hit=true".to_string()), "{lines:?}");
    assert_eq!(
        lines.iter().filter(|l| *l == "built").count(),
        1,
        "{lines:?}"
    );
    // The key follows the file's content: sha256 over sha256 of each matching file.
    let cache_dir = repo.path().join(".tess/cache");
    let keys: Vec<String> = std::fs::read_dir(&cache_dir)
        .expect("cache")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let expected = tesseract_ci::engine::hash_files(repo.path(), &["**/lock.txt".to_string()]);
    assert_eq!(keys, [format!("deps-{expected}")]);
    assert_eq!(expected.len(), 64);
}

#[test]
fn isolate_runs_in_a_copy_of_the_work_tree() {
    let repo = Repo::new(
        "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: cat tracked.txt untracked.txt && touch made-by-step\n",
    );
    repo.write("tracked.txt", "t");
    repo.write("untracked.txt", "u");
    repo.write(".gitignore", "ignored.txt\n.tess/\n");
    repo.write("ignored.txt", "i");
    let (code, events) = repo.events(&["--isolate"]);
    assert_eq!(code, Some(0), "{events:#?}");
    assert_eq!(log_lines(&events, "a"), ["tu"]);
    assert!(
        !repo.path().join("made-by-step").exists(),
        "the step wrote into the real checkout"
    );
    let copy = repo.run_dir().join("workspace");
    assert!(copy.join("made-by-step").exists() && !copy.join("ignored.txt").exists());
}

#[test]
fn a_cancelled_job_reports_cancelled_and_runs_no_more_steps() {
    // m (1) fails once m (2) has finished its first step; fail-fast cancels m (2) in (or
    // before) its second step: the rest is skipped and its result is `cancelled`.
    let repo = Repo::new(&format!(
        r#"on: push
jobs:
  m:
    runs-on: x
    strategy:
      matrix:
        n: [1, 2]
    steps:
      - run: if [ "${{{{ matrix.n }}}}" = 1 ]; then {wait}; exit 1; fi; touch second-started
      - run: if [ "${{{{ matrix.n }}}}" = 2 ]; then {wait_forever}; fi
      - run: echo never
"#,
        wait = wait_for("second-started"),
        wait_forever = "sleep 600",
    ));
    let (code, events) = repo.events(&["-j", "2"]);
    assert_eq!(code, Some(1));
    assert_eq!(result_of(&events, "m (1)"), "failure");
    assert_eq!(result_of(&events, "m (2)"), "cancelled");
    assert!(!log_lines(&events, "m (2)").contains(&"never".to_string()));
}
