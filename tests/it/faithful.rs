//! GitHub's syntax and run-time semantics as seen on real files (issue 17): each row a
//! construct from GitHub's documentation or a real workflow, and what GitHub does with it.

use crate::run::{Repo, log_lines};
use crate::support::{stderr, stdout, tess};

/// One job whose single step echoes `line`; the log line it prints.
fn echoed(workflow_head: &str, step_extra: &str, line: &str, args: &[&str]) -> String {
    let workflow = format!(
        "{workflow_head}jobs:\n  j:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo \"{line}\"\n{step_extra}"
    );
    let repo = Repo::new(&workflow);
    let (code, events) = repo.events(args);
    assert_eq!(code, Some(0), "{workflow}\n{events:#?}");
    log_lines(&events, "j").join("\n")
}

#[test]
fn run_time_semantics_match_github() {
    let dispatch = "on:\n  workflow_dispatch:\n    inputs:\n      flag: {type: boolean, default: false}\n      n: {type: number, default: 1}\n      pick: {type: choice, options: [a, b], default: a}\n";
    let table: &[(&str, &str, &str, &[&str], &str)] = &[
        // Workflow-level env is evaluated (it was passed to bash as `${{ … }}`).
        (
            "on: push\nenv:\n  WHO: ${{ github.event_name }}-${{ github.ref_name }}\n",
            "",
            "$WHO",
            &[],
            "push-main",
        ),
        // The step's own env is in the `env` context of that step.
        (
            "on: push\nenv:\n  WF: wf\n",
            "        env:\n          MINE: ${{ env.WF }}-step\n",
            "${{ env.MINE }} ${{ env.WF }}",
            &[],
            "wf-step wf",
        ),
        // Dispatch inputs keep their declared types.
        (
            dispatch,
            "",
            "${{ inputs.flag == true }} ${{ inputs.n == 3 }} ${{ inputs.pick }}",
            &[
                "--event",
                "workflow_dispatch",
                "--input",
                "flag=true",
                "--input",
                "n=3",
                "--input",
                "pick=b",
            ],
            "true true b",
        ),
        (
            dispatch,
            "",
            "${{ inputs.flag == false }} ${{ inputs.flag }}",
            &["--event", "manual", "--input", "flag=false"],
            "true false",
        ),
        // case(): the first true predicate's value, else the default.
        (
            "on: push\n",
            "",
            "${{ case(github.event_name == 'pull_request', 'pr', github.ref_name == 'main', 'main', 'other') }} ${{ case(false, 'x', 'default') }}",
            &[],
            "main default",
        ),
    ];
    for (head, extra, line, args, expected) in table {
        let got = echoed(head, extra, line, args);
        assert_eq!(got, *expected, "{head}{extra}\n{line}");
    }
}

#[test]
fn case_is_checked_as_github_checks_it() {
    for (expr, message) in [
        (
            "case(true, 'a')",
            "`case` takes at least 3 argument(s), got 2",
        ),
        (
            "case(true, 'a', false, 'b')",
            "`case` takes an odd number of arguments",
        ),
        (
            "case('yes', 'a', 'b')",
            "`case` predicates must be booleans",
        ),
    ] {
        let workflow = format!(
            "on: push\njobs:\n  j:\n    runs-on: x\n    steps:\n      - run: echo ${{{{ {expr} }}}}\n"
        );
        let repo = Repo::new(&workflow);
        let out = tess(repo.path(), &["validate"]);
        assert_eq!(out.status.code(), Some(2), "{expr}");
        let text = stderr(&out) + &stdout(&out);
        assert!(text.contains(message), "{expr}: {text}");
        assert!(text.contains("ci.yml:6:"), "located: {text}");
    }
}

#[test]
fn a_job_is_found_in_any_triggered_file_and_an_ambiguous_id_names_the_files() {
    let repo = Repo::new(
        "on: push\njobs:\n  first:\n    runs-on: x\n    steps:\n      - run: echo first\n",
    );
    repo.write(
        ".github/workflows/other.yml",
        "on: push\njobs:\n  second:\n    runs-on: x\n    steps:\n      - run: echo second\n  shared:\n    runs-on: x\n    steps:\n      - run: echo shared-b\n",
    );
    repo.write(
        ".github/workflows/third.yml",
        "on: push\njobs:\n  shared:\n    runs-on: x\n    steps:\n      - run: echo shared-c\n",
    );
    let (code, events) = repo.events(&["--job", "second"]);
    assert_eq!(code, Some(0), "{events:#?}");
    assert_eq!(log_lines(&events, "second"), ["second"]);
    assert!(log_lines(&events, "first").is_empty());
    let out = tess(repo.path(), &["run", "--job", "shared"]);
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    assert!(
        text.contains("job `shared` is in")
            && text.contains("other.yml")
            && text.contains("third.yml"),
        "{text}"
    );
    let out = tess(repo.path(), &["run", "--job", "nope"]);
    assert!(
        stderr(&out).contains("no job named nope"),
        "{}",
        stderr(&out)
    );
}

/// `(file, expected)`: the first error's `line:col: error: message` part, or `None` when
/// GitHub accepts the file.
const VALIDATION: &[(&str, Option<&str>)] = &[
    (
        "on: push\njobs:\n  a: {runs-on: [], steps: [{run: a}]}\n",
        Some("3:16: error: `runs-on` is empty"),
    ),
    (
        "on:\n  workflow_dispatch:\n    inputs:\n      a: {type: boolean, default: \"123\"}\njobs:\n  a: {runs-on: x, steps: [{run: a}]}\n",
        Some("4:10: error: default `123` of boolean input `a` is not a boolean"),
    ),
    (
        "on:\n  workflow_dispatch:\n    inputs:\n      a: {type: choice, options: [x, y], default: z}\njobs:\n  a: {runs-on: x, steps: [{run: a}]}\n",
        Some("4:10: error: default `z` of input `a` is not one of its options"),
    ),
    (
        "on: push\npermissions:\n  id-token: read\njobs:\n  a: {runs-on: x, steps: [{run: a}]}\n",
        Some("3:13: error: permission `id-token` must be `write` or `none`"),
    ),
    (
        "on: push\njobs:\n  build: {runs-on: x, steps: [{run: a}]}\n  Build: {runs-on: x, steps: [{run: a}]}\n",
        Some("4:3: error: job id `Build` repeats another job's id"),
    ),
    (
        "on: push\nJobs:\n  a: {runs-on: x, steps: [{run: a}]}\n",
        Some("1:1: error: missing `jobs`"),
    ),
    (
        "on: push\njobs:\n  a: {runs-on: x, container: {options: --cpus 1}, steps: [{run: a}]}\n",
        Some("3:30: error: container needs `image`"),
    ),
    (
        "on: push\njobs:\n  a: {runs-on: x, services: {db: {ports: [5432]}}, steps: [{run: a}]}\n",
        Some("3:34: error: service `db` needs `image`"),
    ),
    (
        "on: push\njobs:\n  a: {runs-on: x, steps: [{run: a, with: {x: 1}}]}\n",
        Some("3:27: error: `with` is only valid with `uses`"),
    ),
    (
        "on: push\njobs:\n  a: {runs-on: x, steps: [{uses: actions/checkout@v4, shell: bash}]}\n",
        Some("3:27: error: `shell` is only valid with `run`"),
    ),
    (
        "on: push\njobs:\n  a: {runs-on: x, timeout-minutes: 0, steps: [{run: a}]}\n",
        Some("3:36: error: `timeout-minutes` must be greater than 0"),
    ),
    (
        "on: push\njobs:\n  a: {runs-on: x, steps: [{run: a, timeout-minutes: -1}]}\n",
        Some("3:53: error: `timeout-minutes` must be greater than 0"),
    ),
    (
        "on:\n  pull_request:\n    types: [opened, synchronise]\njobs:\n  a: {runs-on: x, steps: [{run: a}]}\n",
        Some("3:21: error: `synchronise` is not an activity type of `pull_request`"),
    ),
    (
        "on: push\njobs:\n  a: {runs-on: x, steps: []}\n",
        Some("3:26: error: job `a` has an empty `steps` list"),
    ),
    // Accepted by GitHub (refused here before).
    (
        "on: push\njobs:\n  a:\n    runs-on: x\n    environment: {name: prod, url: \"${{ steps.d.outputs.url }}\"}\n    steps: [{id: d, run: a}]\n",
        None,
    ),
    (
        "on: push\njobs:\n  a:\n    runs-on: x\n    services: ${{ fromJSON(vars.SERVICES) }}\n    steps: [{run: a}]\n",
        None,
    ),
    (
        "on: push\njobs:\n  a:\n    runs-on: x\n    container: {image: x, credentials: \"${{ fromJSON(secrets.REGISTRY) }}\"}\n    steps: [{run: a}]\n",
        None,
    ),
    (
        "on: push\njobs:\n  a:\n    runs-on: x\n    env:\n      ${{ vars.NAME }}: v\n    steps: [{run: a}]\n",
        None,
    ),
    (
        "on: push\njobs:\n  a:\n    runs-on: x\n    services:\n      db: {image: postgres, entrypoint: /bin/sh, command: \"-c 'sleep 1'\"}\n    steps: [{run: a}]\n",
        None,
    ),
    // A flow sequence closed at the key's indentation (a real pytest workflow; libyaml
    // and GitHub accept it).
    (
        "on: push\njobs:\n  a:\n    runs-on: x\n    strategy:\n      matrix:\n        python: [\n          \"3.10\",\n          \"3.11\",\n        ]\n    steps: [{run: a}]\n",
        None,
    ),
    (
        "on: push\nconcurrency: {group: deploy, queue: max}\njobs:\n  a: {runs-on: x, steps: [{run: a}]}\n",
        None,
    ),
    (
        "on: push\nconcurrency: {group: deploy, queue: all}\njobs:\n  a: {runs-on: x, steps: [{run: a}]}\n",
        Some("2:37: error: `concurrency.queue` is `single` or `max`"),
    ),
    // Custom images: `snapshot` on a job, the `image_version` event and its filters.
    (
        "on:\n  image_version:\n    names: [my-image]\n    versions: ['1.*']\njobs:\n  a:\n    runs-on: x\n    snapshot: {image-name: my-image, version: '1.2'}\n    steps: [{run: a}]\n",
        None,
    ),
    (
        "on: push\njobs:\n  a:\n    runs-on: x\n    snapshot: {version: '1'}\n    steps: [{run: a}]\n",
        Some("5:15: error: `snapshot` needs `image-name`"),
    ),
    (
        "on:\n  workflow_call:\n    outputs:\n      v: {value: \"${{ jobs.a.outputs.v }}\"}\njobs:\n  a: {runs-on: x, outputs: {v: x}, steps: [{run: a}]}\n",
        None,
    ),
];

#[test]
fn validation_is_as_strict_as_github() {
    for (yaml, expected) in VALIDATION {
        let (_, diags) = tesseract_ci::spec::parse_github("ci.yml", yaml.as_bytes(), "ci.yml");
        let errors: Vec<String> = diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.render(Some(yaml)))
            .collect();
        match expected {
            None => assert!(errors.is_empty(), "{yaml}\n{errors:#?}"),
            Some(text) => {
                let want = format!("ci.yml:{text}");
                assert!(
                    errors.iter().any(|e| e.contains(&want)),
                    "{yaml}\nwanted {want}\ngot {errors:#?}"
                );
            }
        }
    }
}

/// A GitLab pipeline in a fresh repository, run with `args`; (exit code, summary output).
fn gitlab_run(yaml: &str, args: &[&str]) -> (Option<i32>, String) {
    gitlab_run_with(yaml, &[], args)
}

#[test]
fn gitlab_manual_jobs_are_in_the_pipeline_and_what_needs_them_waits() {
    let yaml = "stages: [build, deploy, verify]\nbuild:\n  stage: build\n  script: echo build\ndeploy:\n  stage: deploy\n  when: manual\n  script: echo deployed\nverify:\n  stage: verify\n  needs: [deploy]\n  script: echo verified\nlater:\n  stage: verify\n  script: echo later-ran\n";
    // Valid (it was refused: "needs `deploy`, which is not in the pipeline"); deploy is
    // not started, verify waits for it, `later` is not blocked by a non-blocking manual job.
    let (code, text) = gitlab_run(yaml, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("manual job: not started (play it with `tess run --job deploy`)"),
        "{text}"
    );
    assert!(!text.contains("verified"), "{text}");
    assert!(text.contains("later-ran"), "{text}");
    // Played: it runs, and what needs it can run with it.
    let (code, text) = gitlab_run(yaml, &["--job", "deploy", "--job", "verify"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("deployed") && text.contains("verified"),
        "{text}"
    );
    // `allow_failure: false` makes a manual job block the later stages.
    let blocking = yaml.replace(
        "  when: manual\n",
        "  when: manual\n  allow_failure: false\n",
    );
    let (_, text) = gitlab_run(&blocking, &[]);
    assert!(!text.contains("later-ran"), "{text}");
}

#[test]
fn gitlab_dotenv_reports_reach_the_jobs_that_need_them() {
    let yaml = "stages: [build, test]\nbuild:\n  stage: build\n  script:\n    - echo VERSION=1.2.3 > build.env\n    - echo '# a comment' >> build.env\n    - echo NAME=from-dotenv >> build.env\n  artifacts:\n    reports:\n      dotenv: build.env\ntest:\n  stage: test\n  variables:\n    NAME: from-yaml\n  script: echo \"version=$VERSION name=$NAME\"\n";
    let (code, text) = gitlab_run(yaml, &[]);
    assert_eq!(code, Some(0), "{text}");
    // dotenv variables win over the job's YAML variables (GitLab's precedence).
    assert!(text.contains("version=1.2.3 name=from-dotenv"), "{text}");
}

#[test]
fn gitlab_refuses_what_gitlab_refuses() {
    let table: &[(&str, &str)] = &[
        (
            "a:\n  script: echo\n  when: never\n",
            "3:9: error: `when: never` is only valid in `rules`",
        ),
        (
            "a:\n  script: echo\n  rules:\n    - if: ${CI_COMMIT_BRANCH} == \"main\"\n",
            "4:11: error: `${CI_COMMIT_BRANCH} == \"main\"`: write `$VARIABLE`, not `${VARIABLE}`",
        ),
        (
            "b:\n  stage: build\n  script: echo\na:\n  script: echo\n  needs: []\n  dependencies: [b]\n",
            "7:18: error: `dependencies` names `b`, which is not in this job's `needs`",
        ),
        (
            "a:\n  script: echo\n  cache:\n    paths: vendor/\n",
            "4:12: error: `cache:paths` must be a list of paths",
        ),
        (
            "a:\n  script: echo\n  cache:\n    key:\n      files: [a, b, c]\n    paths: [x]\n",
            "5:14: error: `cache:key:files` lists 3 files; GitLab allows at most 2",
        ),
        (
            "a:\n  script: echo\n  rules:\n    -\n    - when: always\n",
            "4:6: error: a blank entry in `rules`",
        ),
        (
            "stages: [build]\na:\n  stage: deploy\n  script: echo\n",
            "3:10: error: job `a`: stage `deploy` is not defined",
        ),
        (
            "a:\n  script:\n    - - - - - - - - - - - echo deep\n",
            "error: `script` nests lists more than 10 levels deep",
        ),
    ];
    for (yaml, expected) in table {
        let repo = Repo::new(
            "on: push\njobs:\n  unused:\n    runs-on: x\n    steps:\n      - run: 'true'\n",
        );
        repo.write(".gitlab-ci.yml", yaml);
        let out = tess(repo.path(), &["validate", ".gitlab-ci.yml"]);
        let text = stderr(&out) + &stdout(&out);
        assert_eq!(out.status.code(), Some(2), "{yaml}\n{text}");
        assert!(
            text.contains(expected),
            "{yaml}\nwanted {expected}\ngot {text}"
        );
    }
}

#[test]
fn a_gitlab_file_is_known_by_its_content_as_well_as_its_name() {
    let repo =
        Repo::new("on: push\njobs:\n  unused:\n    runs-on: x\n    steps:\n      - run: 'true'\n");
    let gitlab =
        "stages: [test]\nunit:\n  stage: test\n  script: echo \"read as GitLab by $CI_JOB_NAME\"\n";
    repo.write("ci/pipeline.yml", gitlab);
    repo.write("ci/other.gitlab-ci.yml", gitlab);
    for file in ["ci/pipeline.yml", "ci/other.gitlab-ci.yml"] {
        let out = tess(repo.path(), &["run", file]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{file}: {text}{}", stderr(&out));
        assert!(text.contains("read as GitLab by unit"), "{file}: {text}");
    }
    // Where only GitHub workflows live, a GitLab file is read as GitHub: the error says what
    // it looks like, and `--dialect gitlab` reads it as GitLab.
    repo.write(".github/workflows/pipeline.yml", gitlab);
    let file = ".github/workflows/pipeline.yml";
    let out = tess(repo.path(), &["validate", file]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(
            "= help: this file looks like GitLab CI: read it as GitLab with `--dialect gitlab`"
        ),
        "{text}"
    );
    let out = tess(repo.path(), &["--dialect", "gitlab", "run", file]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("read as GitLab by unit"));
    let out = tess(
        repo.path(),
        &["validate", "--dialect", "github", "ci/pipeline.yml"],
    );
    assert_eq!(out.status.code(), Some(2), "--dialect github forces GitHub");
}

/// `(name, outcome)` of each finished step of `job`, in order of finishing.
fn step_outcomes(events: &[serde_json::Value], job: &str) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e["type"] == "step_finished" && e["job"] == job)
        .map(|e| {
            (
                e["name"].as_str().unwrap_or_default().to_string(),
                e["conclusion"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn parallel_steps_run_as_github_documents() {
    let repo = Repo::new(
        r#"on: push
jobs:
  visible:
    runs-on: x
    steps:
      - id: slow
        background: true
        run: |
          sleep 0.2
          echo "SLOW=set" >> "$GITHUB_ENV"
          echo "v=done" >> "$GITHUB_OUTPUT"
      - run: echo "before wait [${{ steps.slow.outputs.v }}] [${SLOW:-unset}]"
      - wait: slow
      - run: echo "after wait [${{ steps.slow.outputs.v }}] [$SLOW]"
      - parallel:
          - run: sleep 0.3 && echo one
          - run: sleep 0.3 && echo two
      - run: echo group done
  failing:
    runs-on: x
    steps:
      - id: bad
        background: true
        run: exit 3
      - id: tolerated
        background: true
        continue-on-error: true
        run: exit 4
      - run: echo foreground still runs
      - wait: [bad, tolerated]
      - run: echo never
  implicit:
    runs-on: x
    steps:
      - background: true
        run: sleep 0.2 && exit 5
      - run: echo last foreground step
  stopped:
    runs-on: x
    steps:
      - id: server
        background: true
        run: sleep 60
      - cancel: server
      - run: echo "server ${{ steps.server.outcome }}"
"#,
    );
    let (code, events) = repo.events(&[]);
    assert_eq!(code, Some(1), "{events:#?}");
    let visible = log_lines(&events, "visible");
    for line in [
        "before wait [] [unset]",
        "after wait [done] [set]",
        "one",
        "two",
        "group done",
    ] {
        assert!(visible.contains(&line.to_string()), "{line}: {visible:?}");
    }
    let results = crate::run::results(&events);
    let result = |job: &str| {
        results
            .iter()
            .find(|(j, _)| j == job)
            .map(|(_, r)| r.clone())
    };
    assert_eq!(result("visible").as_deref(), Some("success"));
    // The failure surfaces at the wait; the tolerated one does not; later steps are skipped.
    let failing = step_outcomes(&events, "failing");
    assert!(
        failing.contains(&("Wait for bad, tolerated".into(), "failure".into())),
        "{failing:?}"
    );
    assert!(
        failing.contains(&("Run exit 4".into(), "success".into())),
        "{failing:?}"
    );
    assert!(
        failing.contains(&("Run echo never".into(), "skipped".into())),
        "{failing:?}"
    );
    assert!(log_lines(&events, "failing").contains(&"foreground still runs".to_string()));
    // Not waited for: the job waits at its end, and the step's failure is the job's.
    assert_eq!(result("failing").as_deref(), Some("failure"));
    assert_eq!(result("implicit").as_deref(), Some("failure"));
    assert!(
        step_outcomes(&events, "implicit")
            .contains(&("Run sleep 0.2 && exit 5".into(), "failure".into()))
    );
    // cancel: the step is stopped (not 60 s later), its outcome `cancelled`, the job passes.
    assert_eq!(result("stopped").as_deref(), Some("success"));
    assert_eq!(log_lines(&events, "stopped"), ["server cancelled"]);
}

#[test]
fn a_mask_added_by_a_background_step_masks_the_whole_job_at_once() {
    // Each side waits (in its script, bounded) for the other's mask before printing.
    let repo = Repo::new(
        r#"on: push
jobs:
  masks:
    runs-on: x
    steps:
      - id: bg
        background: true
        run: |
          echo "::add-mask::from-background-4f2"
          touch bg-masked
          for i in $(seq 200); do [ -f fg-masked ] && break; sleep 0.05; done
          echo "background prints from-foreground-9c1"
      - run: |
          echo "::add-mask::from-foreground-9c1"
          touch fg-masked
          for i in $(seq 200); do [ -f bg-masked ] && break; sleep 0.05; done
          echo "foreground prints from-background-4f2"
      - wait: bg
"#,
    );
    let (code, events) = repo.events(&[]);
    assert_eq!(code, Some(0), "{events:#?}");
    let lines = log_lines(&events, "masks");
    for line in ["background prints ***", "foreground prints ***"] {
        assert!(lines.contains(&line.to_string()), "{line}: {lines:?}");
    }
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("from-background-4f2") || l.contains("from-foreground-9c1")),
        "{lines:?}"
    );
}

#[test]
fn plan_json_shows_which_steps_run_at_the_same_time() {
    let repo = Repo::new(
        r#"on: push
jobs:
  plain:
    runs-on: x
    steps:
      - run: echo one
  groups:
    runs-on: x
    steps:
      - run: make build
      - id: db
        name: Start the database
        background: true
        run: sleep 1
      - run: make test
      - wait: db
      - parallel:
          - run: lint
          - name: docs
            run: make docs
      - id: tail
        background: true
        run: tail -f log
"#,
    );
    let out = tess(repo.path(), &["plan", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let jobs = &plan["pipelines"][0]["jobs"];
    assert!(
        jobs[0].get("step_groups").is_none(),
        "steps in order need no groups: {}",
        jobs[0]
    );
    assert_eq!(
        jobs[1]["step_groups"],
        serde_json::json!([
            {"concurrent": false, "steps": [{"name": "Run make build"}]},
            {"concurrent": true, "steps": [
                {"name": "Start the database", "id": "db", "background": true, "joined_by": "Wait for db"},
                {"name": "Run make test"},
                {"name": "Wait for db"},
            ]},
            {"concurrent": true, "steps": [
                {"name": "Run 2 steps in parallel"},
                {"name": "Run lint", "background": true, "joined_by": "Run 2 steps in parallel"},
                {"name": "docs", "background": true, "joined_by": "Run 2 steps in parallel"},
            ]},
            {"concurrent": true, "steps": [
                {"name": "Run tail -f log", "id": "tail", "background": true, "joined_by": "end of job"},
            ]},
        ])
    );
}

#[test]
fn at_most_ten_background_steps_run_at_once() {
    let steps: String = (0..12)
        .map(|i| {
            format!(
                "      - background: true\n        run: |\n          touch running/{i}\n          ls running | wc -l >> counts\n          sleep 0.3\n          rm running/{i}\n"
            )
        })
        .collect();
    let repo = Repo::new(&format!(
        "on: push\njobs:\n  many:\n    runs-on: x\n    steps:\n      - run: mkdir -p running && rm -f counts\n{steps}      - wait-all:\n      - run: echo \"ran $(wc -l < counts) max $(sort -n counts | tail -1)\"\n"
    ));
    let (code, events) = repo.events(&[]);
    assert_eq!(code, Some(0), "{events:#?}");
    let line = log_lines(&events, "many").pop().expect("a line");
    let max: usize = line
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("max");
    assert!(line.starts_with("ran 12 max "), "{line}");
    assert!((2..=10).contains(&max), "{line}");
}

#[test]
fn parallel_steps_are_validated_as_github_validates_them() {
    let table: &[(&str, &str)] = &[
        (
            "      - wait: nope\n",
            "`wait: nope`: no earlier step with `background: true` has id `nope`",
        ),
        (
            "      - id: a\n        run: 'true'\n      - cancel: a\n",
            "`cancel: a`: no earlier step with `background: true`",
        ),
        (
            "      - id: a\n        background: true\n        run: 'true'\n      - wait: a\n        if: always()\n",
            "`wait` always runs: it takes no `if`",
        ),
        (
            "      - wait-all:\n        run: 'true'\n",
            "`wait-all` cannot be combined with `run`",
        ),
        (
            "      - background: yes please\n        run: 'true'\n",
            "`background` must be `true` or `false`",
        ),
    ];
    for (steps, message) in table {
        let repo = Repo::new(&format!(
            "on: push\njobs:\n  j:\n    runs-on: x\n    steps:\n{steps}"
        ));
        let out = tess(repo.path(), &["validate"]);
        let text = stderr(&out) + &stdout(&out);
        assert_eq!(out.status.code(), Some(2), "{steps}\n{text}");
        assert!(
            text.contains(message),
            "{steps}\nwanted {message}\ngot {text}"
        );
    }
    // Not in composite actions.
    let repo =
        Repo::new("on: push\njobs:\n  j:\n    runs-on: x\n    steps:\n      - uses: ./act\n");
    repo.write(
        "act/action.yml",
        "name: a\nruns:\n  using: composite\n  steps:\n    - background: true\n      shell: bash\n      run: 'true'\n",
    );
    let (code, events) = repo.events(&[]);
    assert_eq!(code, Some(1));
    assert!(
        log_lines(&events, "j")
            .iter()
            .any(|l| l.contains("not allowed in composite actions")),
        "{events:#?}"
    );
}

#[test]
fn gitlab_include_local_paths_expand_predefined_and_pipeline_variables() {
    let repo =
        Repo::new("on: push\njobs:\n  unused:\n    runs-on: x\n    steps:\n      - run: 'true'\n");
    repo.write(
        ".gitlab-ci.yml",
        "include:\n  - local: ci/$CI_COMMIT_REF_NAME.yml\n  - local: ci/extra-${TARGET}.yml\n",
    );
    repo.write(
        "ci/main.yml",
        "from-branch:\n  script: echo included for the branch\n",
    );
    repo.write(
        "ci/extra-arm.yml",
        "from-input:\n  script: echo included for arm\n",
    );
    let out = tess(
        repo.path(),
        &[
            "run",
            ".gitlab-ci.yml",
            "--event",
            "manual",
            "--ref",
            "main",
            "--input",
            "TARGET=arm",
        ],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("included for the branch"), "{text}");
    assert!(text.contains("included for arm"), "{text}");
}

#[test]
fn gitlab_auto_cancel_on_job_failure_all_cancels_the_rest_of_the_pipeline() {
    let yaml = "workflow:\n  auto_cancel:\n    on_job_failure: all\nstages: [test, deploy]\nbreaks:\n  stage: test\n  script: exit 1\nslow:\n  stage: test\n  script:\n    - sleep 30\n    - echo slow finished\ndeploy:\n  stage: deploy\n  when: always\n  script: echo deployed\n";
    let started = std::time::Instant::now();
    let (code, text) = gitlab_run(yaml, &["--json"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "slow was not stopped"
    );
    let events: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let results = crate::run::results(&events);
    let result = |job: &str| {
        results
            .iter()
            .find(|(j, _)| j == job)
            .map(|(_, r)| r.clone())
    };
    assert_eq!(result("breaks").as_deref(), Some("failure"));
    assert_eq!(result("slow").as_deref(), Some("cancelled"), "{results:?}");
    assert_eq!(
        result("deploy").as_deref(),
        Some("cancelled"),
        "{results:?}"
    );
    // Values are checked.
    let bad = "workflow:\n  auto_cancel:\n    on_new_commit: sometimes\nj:\n  script: echo\n";
    let repo =
        Repo::new("on: push\njobs:\n  unused:\n    runs-on: x\n    steps:\n      - run: 'true'\n");
    repo.write(".gitlab-ci.yml", bad);
    let out = tess(repo.path(), &["validate", ".gitlab-ci.yml"]);
    assert!(
        stderr(&out).contains(
            "3:20: error: `auto_cancel:on_new_commit` is one of conservative, interruptible, none"
        ),
        "{}",
        stderr(&out)
    );
}

/// A GitLab pipeline with extra files, run with `args`; (exit code, all output).
fn gitlab_run_with(yaml: &str, files: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    let repo =
        Repo::new("on: push\njobs:\n  unused:\n    runs-on: x\n    steps:\n      - run: 'true'\n");
    repo.write(".gitlab-ci.yml", yaml);
    for (path, text) in files {
        repo.write(path, text);
    }
    let mut all = vec!["run", ".gitlab-ci.yml"];
    all.extend_from_slice(args);
    let out = tess(repo.path(), &all);
    (out.status.code(), stdout(&out) + &stderr(&out))
}

#[test]
fn gitlab_spec_inputs_are_typed_checked_and_interpolated() {
    // GitLab's documentation examples: an included template with mandatory and typed
    // inputs, included twice; the main file's own inputs with options and rules.
    let template = r#"spec:
  inputs:
    linter:
    lint-path:
    jobs:
      type: number
      default: 1
---
"run-$[[ inputs.linter ]]-lint":
  parallel: $[[ inputs.jobs ]]
  script: echo "lint --$[[ inputs.linter ]] --path=$[[ inputs.lint-path ]] short=$[[ inputs.linter | truncate(0,2) ]]"
"#;
    let main = r#"spec:
  inputs:
    flavour:
      options: [debug, release]
      default: debug
    verbose:
      type: boolean
      default: false
    level:
      rules:
        - if: inputs.flavour == 'release'
          options: [O2, O3]
          default: O3
        - default: O0
---
include:
  - local: lint.yml
    inputs:
      linter: docs
      lint-path: "doc/"
      jobs: 2
  - local: lint.yml
    inputs:
      linter: yaml
      lint-path: "data/"
build:
  script: echo "build $[[ inputs.flavour ]] at $[[ inputs.level ]] verbose=$[[ inputs.verbose ]]"
"#;
    let files = [("lint.yml", template)];
    let (code, text) = gitlab_run_with(main, &files, &[]);
    assert_eq!(code, Some(0), "{text}");
    for line in [
        "lint --docs --path=doc/ short=do",
        "lint --yaml --path=data/ short=ya",
        "build debug at O0 verbose=false",
        "run-docs-lint 2/2",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
    // A pipeline input picks the rule that gives the dependent input its default.
    let (code, text) = gitlab_run_with(main, &files, &["--input", "flavour=release"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("build release at O3 verbose=false"), "{text}");
    // Refused as GitLab refuses them, each located.
    let cases: &[(&[&str], &str)] = &[
        (
            &["--input", "flavour=fast"],
            "input `flavour`: `fast` is not one of the options (debug, release)",
        ),
        (
            &["--input", "flavour=release", "--input", "level=O1"],
            "input `level`: `O1` is not one of the options (O2, O3)",
        ),
    ];
    for (args, expected) in cases {
        let (code, text) = gitlab_run_with(main, &files, args);
        assert_eq!(code, Some(2), "{args:?}: {text}");
        assert!(
            text.contains(expected),
            "{args:?}: wanted {expected}\n{text}"
        );
    }
    let broken: &[(String, &str)] = &[
        (
            main.replace("      jobs: 2\n", "      jobs: two\n"),
            ".gitlab-ci.yml:21:7: error: input `jobs`: `two` is not a number",
        ),
        (
            main.replace("      jobs: 2\n", "      job: 2\n"),
            "unknown input `job`",
        ),
        (
            main.replace("      lint-path: \"data/\"\n", ""),
            "input `lint-path` is mandatory and was not given",
        ),
        (
            main.replace("inputs.level ]]", "inputs.levle ]]"),
            "unknown input `levle` in `$[[ inputs.levle ]]`",
        ),
        (
            main.replace("type: boolean", "type: bool"),
            "input `verbose`: unknown type `bool`",
        ),
        (
            main.replace(
                "        - if: inputs.flavour == 'release'",
                "        - if: inputs.level == 'release'",
            ),
            "input `level`: its rules depend on themselves",
        ),
    ];
    for (yaml, expected) in broken {
        let (code, text) = gitlab_run_with(yaml, &files, &[]);
        assert_eq!(code, Some(2), "{expected}: {text}");
        assert!(text.contains(expected), "wanted {expected}\n{text}");
    }
}

#[test]
fn gitlab_job_inputs_have_defaults_and_are_overridden_when_played() {
    let yaml = r#"deploy_job:
  when: manual
  inputs:
    target_env:
      default: staging
      options: [staging, production]
    replicas:
      type: number
      default: 3
  script:
    - echo "deploy ${{ job.inputs.target_env }} x${{job.inputs.replicas}} env=[$target_env]"
"#;
    let (code, text) = gitlab_run(yaml, &["--job", "deploy_job"]);
    assert_eq!(code, Some(0), "{text}");
    // Interpolated into the job, not environment variables.
    assert!(text.contains("deploy staging x3 env=[]"), "{text}");
    let (code, text) = gitlab_run(
        yaml,
        &[
            "--job",
            "deploy_job",
            "--job-input",
            "target_env=production",
            "--job-input",
            "replicas=5",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("deploy production x5 env=[]"), "{text}");
    for (input, expected) in [
        (
            "target_env=prod",
            "`prod` is not one of the options (staging, production)",
        ),
        ("replicas=many", "`many` is not a number"),
        ("region=eu", "job `deploy_job` has no input `region`"),
    ] {
        let (code, text) = gitlab_run(yaml, &["--job", "deploy_job", "--job-input", input]);
        assert_eq!(code, Some(2), "{input}: {text}");
        assert!(text.contains(expected), "{input}: {text}");
    }
    for (broken, expected) in [
        (
            yaml.replace("x${{job.inputs.replicas}}", "x${{ job.inputs.replica }}"),
            "`${{ job.inputs.replica }}`: job `deploy_job` has no input `replica`",
        ),
        (
            yaml.replace("      default: 3\n", ""),
            "job input `replicas` needs a `default`",
        ),
        (
            yaml.replace("      default: staging\n", "      default: dev\n"),
            "input `target_env`: the default `dev` is not one of the options",
        ),
    ] {
        let (code, text) = gitlab_run(&broken, &[]);
        assert_eq!(code, Some(2), "{expected}: {text}");
        assert!(text.contains(expected), "wanted {expected}\n{text}");
    }
}

#[test]
fn gitlab_needs_parallel_matrix_takes_this_instances_values() {
    // GitLab's documentation example: each test instance needs the build of its own ARCH.
    let yaml = r#"stages: [build, test]
build:
  stage: build
  parallel:
    matrix:
      - ARCH: [amd64, arm64]
  script: echo "built $ARCH"
test:
  stage: test
  parallel:
    matrix:
      - ARCH: [amd64, arm64]
  needs:
    - job: build
      parallel:
        matrix:
          - ARCH: $[[ matrix.ARCH ]]
  script: echo "tested $ARCH"
"#;
    let repo =
        Repo::new("on: push\njobs:\n  unused:\n    runs-on: x\n    steps:\n      - run: 'true'\n");
    repo.write(".gitlab-ci.yml", yaml);
    let out = tess(repo.path(), &["plan", "--json", ".gitlab-ci.yml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let needs = |key: &str| {
        plan["pipelines"][0]["jobs"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["key"] == key))
            .map(|j| j["needs"].clone())
    };
    assert_eq!(
        needs("test: [amd64]"),
        Some(serde_json::json!(["build: [amd64]"]))
    );
    assert_eq!(
        needs("test: [arm64]"),
        Some(serde_json::json!(["build: [arm64]"]))
    );
    // Outside a matrix job there is no `matrix` to take values from.
    let broken = yaml.replace(
        "  parallel:\n    matrix:\n      - ARCH: [amd64, arm64]\n  needs:",
        "  needs:",
    );
    repo.write(".gitlab-ci.yml", &broken);
    let out = tess(repo.path(), &["validate", ".gitlab-ci.yml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "`$[[ matrix.ARCH ]]` in `needs` is only valid in a job with `parallel:matrix`"
        ),
        "{}",
        stderr(&out)
    );
}
