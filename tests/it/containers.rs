//! Jobs in containers against a real Docker Engine API (`podman system service`, started by
//! `scripts/podman.sh`; images built offline by `scripts/images.sh`): job containers,
//! service containers with health checks, GitLab images and service aliases, cleanup.

use crate::harness::{Server, databases, setup, wait_for};
use crate::server::{job, push_main};
use crate::support::{skip_or_fail, stderr, stdout, tess_with_env};
use std::path::Path;
use std::time::Duration;
use tesseract_ci::exec::container;

/// The Docker API the tests use, or `None` (said loudly; a failure under CI).
fn docker() -> Option<bollard::Docker> {
    if std::env::var_os("DOCKER_HOST").is_none() {
        skip_or_fail(
            "DOCKER_HOST is not set (export DOCKER_HOST=$(scripts/podman.sh); scripts/images.sh)",
        );
        return None;
    }
    Some(container::connect().expect("the Docker API in DOCKER_HOST answers"))
}

/// What this executor left behind whose name holds `marker` (the job keys of one test).
fn leftovers(docker: &bollard::Docker, marker: &str) -> Vec<String> {
    // Listing can fail while another test's container is being removed (podman reports
    // the vanished container): asked again until it answers.
    wait_for("a container listing", Duration::from_secs(10), || {
        container::leftovers(docker).ok()
    })
    .into_iter()
    .filter(|name| name.contains(marker))
    .collect()
}

/// A repository in `dir` holding `files`, for `tess run`.
fn project(dir: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    crate::harness::git(dir, &["init", "-q", "-b", "main"]);
    crate::harness::commit_all(dir);
}

fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    tess_with_env(dir, &[&["run"][..], args].concat(), &[])
}

#[test]
fn a_job_container_runs_every_step_and_its_outputs_reach_a_later_job() {
    let Some(docker) = docker() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let workflow = r#"on: push
jobs:
  ct-inside:
    runs-on: ubuntu-latest
    container:
      image: debian:bookworm
      env:
        FROM_CONTAINER: yes
    outputs:
      os: ${{ steps.os.outputs.id }}
    steps:
      - id: os
        run: |
          . /etc/os-release
          echo "id=$ID-$VERSION_ID" >> "$GITHUB_OUTPUT"
          echo "IN_ENV=from-env-file" >> "$GITHUB_ENV"
          echo "cwd=$PWD container-env=$FROM_CONTAINER"
          test -f /.dockerenv || test -f /run/.containerenv
      - run: echo "next step sees $IN_ENV"
      - shell: sh
        run: echo "workspace file from inside" > made-inside.txt
  ct-after:
    needs: ct-inside
    runs-on: ubuntu-latest
    steps:
      - run: echo "inside was ${{ needs.ct-inside.outputs.os }} and $(cat made-inside.txt)"
"#;
    project(dir.path(), &[(".github/workflows/ci.yml", workflow)]);
    let out = run(dir.path(), &[]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("inside was debian-12 and workspace file from inside"),
        "{text}"
    );
    assert!(text.contains("next step sees from-env-file"), "{text}");
    assert!(
        text.contains(&format!("cwd={} container-env=yes", dir.path().display())),
        "the workspace is at the same path inside: {text}"
    );
    assert_eq!(leftovers(&docker, "ct-inside"), Vec::<String>::new());
}

#[test]
fn a_postgres_service_is_healthy_before_the_steps_and_reachable_by_alias_and_mapped_port() {
    let Some(docker) = docker() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let workflow = r#"on: push
jobs:
  svc-in-container:
    runs-on: ubuntu-latest
    container: postgres:15
    services:
      db:
        image: postgres:15
        options: --health-cmd "pg_isready -h 127.0.0.1" --health-interval 1s --health-retries 30
    steps:
      - run: >-
          psql -h db -U postgres -tAc "SELECT 'from the job container: ' || version()"
  svc-on-host:
    runs-on: ubuntu-latest
    services:
      db:
        image: postgres:15
        ports: ['5432']
        options: --health-cmd "pg_isready -h 127.0.0.1" --health-interval 1s --health-retries 30
    steps:
      - run: >-
          psql -h 127.0.0.1 -p ${{ job.services.db.ports['5432'] }} -U postgres
          -tAc "SELECT 'from the host: ' || current_database()"
"#;
    project(dir.path(), &[(".github/workflows/ci.yml", workflow)]);
    let out = run(dir.path(), &[]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("from the job container: PostgreSQL 15"),
        "{text}"
    );
    assert!(text.contains("from the host: postgres"), "{text}");
    assert!(
        text.contains("waiting for service `db` to be healthy"),
        "{text}"
    );
    assert_eq!(leftovers(&docker, "svc-"), Vec::<String>::new());
}

#[test]
fn gitlab_images_at_top_level_and_per_job_and_service_aliases() {
    let Some(docker) = docker() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let ci = r#"image: busybox:latest
variables:
  GREETING: hello
gl-top:
  script:
    - readlink /bin/sh
    - test ! -e /etc/os-release
    - echo "$GREETING from $CI_JOB_NAME"
gl-own:
  image: debian:bookworm
  script:
    - . /etc/os-release && echo "own image $ID"
gl-db:
  image: postgres:15
  services:
    - name: postgres:15
      alias: database
  script:
    - for i in $(seq 100); do pg_isready -q -h database && break; sleep 0.1; done
    - psql -h database -U postgres -tAc "SELECT 'by alias'"
    - psql -h postgres -U postgres -tAc "SELECT 'by derived name'"
"#;
    project(dir.path(), &[(".gitlab-ci.yml", ci)]);
    let out = run(dir.path(), &[".gitlab-ci.yml"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(text.contains("hello from gl-top"), "{text}");
    assert!(text.contains("busybox"), "{text}");
    assert!(text.contains("own image debian"), "{text}");
    assert!(text.contains("by alias"), "{text}");
    assert!(text.contains("by derived name"), "{text}");
    assert_eq!(leftovers(&docker, "gl-"), Vec::<String>::new());
}

#[test]
fn failures_timeouts_and_interrupts_leave_no_container_behind() {
    let Some(docker) = docker() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let started = dir.path().join("started");
    let workflow = format!(
        r#"on: push
jobs:
  end-fail:
    runs-on: ubuntu-latest
    container: debian:bookworm
    steps:
      - run: exit 3
  end-timeout:
    runs-on: ubuntu-latest
    container: debian:bookworm
    timeout-minutes: 0.05
    steps:
      - run: sleep 60
  end-pull:
    runs-on: ubuntu-latest
    container: tess-missing.invalid/nothing:1
    steps:
      - run: echo never
  end-sigint:
    runs-on: ubuntu-latest
    container: debian:bookworm
    steps:
      - run: touch {started} && sleep 60
"#,
        started = started.display()
    );
    project(dir.path(), &[(".github/workflows/ci.yml", &workflow)]);
    let out = run(
        dir.path(),
        &[
            "--job",
            "end-fail",
            "--job",
            "end-timeout",
            "--job",
            "end-pull",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("exit code 3"), "{text}");
    assert!(text.contains("timed out"), "{text}");
    assert!(
        text.contains("pulling image tess-missing.invalid/nothing:1"),
        "{text}"
    );
    assert_eq!(leftovers(&docker, "end-"), Vec::<String>::new());
    // Ctrl-C while a step runs in the container.
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_tess"))
        .args(["run", "--job", "end-sigint"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tess run");
    let pid = child.id() as i32;
    wait_for("the step to start", Duration::from_secs(60), || {
        started.exists().then_some(())
    });
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let out = crate::support::wait_with_timeout(child, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(130), "{}", stdout(&out));
    assert_eq!(leftovers(&docker, "end-"), Vec::<String>::new());
}

#[test]
fn without_a_docker_api_a_container_job_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workflow = "on: push\njobs:\n  wants:\n    runs-on: ubuntu-latest\n    container: debian:bookworm\n    steps:\n      - run: echo ran on the host\n";
    project(dir.path(), &[(".github/workflows/ci.yml", workflow)]);
    let nowhere = [("DOCKER_HOST", "unix:///nonexistent/docker.sock")];
    // auto: on the host, with a warning that names the job and what it wanted.
    let out = tess_with_env(dir.path(), &["run"], &nowhere);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("job `wants` wanted container debian:bookworm but runs on the host"),
        "{text}"
    );
    // container: the job fails, saying why.
    let out = tess_with_env(dir.path(), &["run", "--executor", "container"], &nowhere);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("no Docker API answers"), "{text}");
    assert!(!text.contains("ran on the host"), "{text}");
}

#[test]
fn a_runner_runs_a_container_job_leased_from_the_server() {
    let Some(docker) = docker() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (repo, server): (_, Server) = setup(root, "github", "octo/hello", 30, &databases(root)[0]);
    let workflow = "on: push\njobs:\n  leased:\n    runs-on: ubuntu-latest\n    container: debian:bookworm\n    steps:\n      - run: . /etc/os-release && echo \"leased job in $ID $VERSION_ID\"\n";
    let sha = repo.commit(&[(".github/workflows/ci.yml", workflow)], "main");
    let _runner = server.runner("r", "");
    let run = push_main(&server, "c-1", &sha);
    let run_json = server.finished_run(&run, Duration::from_secs(120));
    assert_eq!(run_json["status"], "success", "{run_json:#}");
    assert!(
        job(&run_json, "leased")["labels"]
            .to_string()
            .contains("tess:container"),
        "{run_json:#}"
    );
    let log = server.log(&run, "leased");
    assert!(log.contains("leased job in debian 12"), "{log}");
    assert_eq!(leftovers(&docker, "leased"), Vec::<String>::new());
}

#[test]
fn a_runner_stopped_by_sigterm_mid_job_removes_the_job_s_containers() {
    let Some(docker) = docker() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (repo, server): (_, Server) = setup(root, "github", "octo/hello", 30, &databases(root)[0]);
    let workflow = "on: push\njobs:\n  drained:\n    runs-on: ubuntu-latest\n    container: debian:bookworm\n    services:\n      db:\n        image: postgres:15\n    steps:\n      - run: echo step started && sleep 600\n";
    let sha = repo.commit(&[(".github/workflows/ci.yml", workflow)], "main");
    let mut runner = server.runner_with("r", "", &["--drain-timeout-seconds", "1"]);
    let run = push_main(&server, "c-1", &sha);
    wait_for("the step to start", Duration::from_secs(120), || {
        server
            .log(&run, "drained")
            .contains("step started")
            .then_some(())
    });
    assert_ne!(leftovers(&docker, "drained"), Vec::<String>::new());
    // SIGTERM: the job gets its drain time (1 s), is cancelled, and its containers and
    // network go with it before the runner exits.
    runner.terminate();
    assert_eq!(runner.exit_status(Duration::from_secs(60)).code(), Some(0));
    assert_eq!(leftovers(&docker, "drained"), Vec::<String>::new());
}

#[test]
fn container_options_as_the_forges_examples_write_them() {
    use container::Options;
    let o = Options::parse(
        "--health-cmd pg_isready --health-interval 10s --health-timeout 5s --health-retries 5",
    )
    .expect("valid");
    let h = o.health.expect("health");
    assert_eq!(h.cmd, "pg_isready");
    assert_eq!(h.interval, Duration::from_secs(10));
    assert_eq!(h.timeout, Duration::from_secs(5));
    assert_eq!(h.retries, 5);
    let o = Options::parse("--health-cmd \"redis-cli ping\" -e A=b --health-interval=1m30s")
        .expect("valid");
    assert_eq!(o.health.expect("health").interval, Duration::from_secs(90));
    assert_eq!(o.env["A"], "b");
    let e = Options::parse("--network host").expect_err("unsupported");
    assert!(e.contains("`--network` is not supported"), "{e}");
    let e = Options::parse("--health-interval soon").expect_err("bad duration");
    assert!(e.contains("not a duration"), "{e}");
}

#[test]
fn gitlab_derives_service_host_names_from_the_image() {
    use tesseract_ci::engine::containers::gitlab_service_aliases;
    assert_eq!(
        gitlab_service_aliases("tutum/wordpress:latest"),
        ["tutum__wordpress", "tutum-wordpress"]
    );
    assert_eq!(gitlab_service_aliases("postgres:15"), ["postgres"]);
    assert_eq!(
        gitlab_service_aliases("registry.example.com:5000/group/db:1"),
        [
            "registry.example.com:5000__group__db",
            "registry.example.com:5000-group-db"
        ]
    );
}

/// Every job of `workflow` (`runs-on: x`) moved into `container: debian:bookworm`.
fn in_a_container(workflow: &str) -> String {
    workflow.replace(
        "    runs-on: x\n",
        "    runs-on: x\n    container: debian:bookworm\n",
    )
}

/// One table of run-semantics scenarios (the host executor's tests in `run.rs`), run on
/// both executors: the same job results and the same log lines, job by job.
#[test]
fn the_run_semantics_scenarios_give_the_same_results_in_a_container() {
    use crate::run::{FAILURES_WORKFLOW, FILES_WORKFLOW, Repo, log_lines, results};
    let Some(docker) = docker() else { return };
    for (name, workflow) in [("failures", FAILURES_WORKFLOW), ("files", FILES_WORKFLOW)] {
        let contained = in_a_container(workflow);
        assert_ne!(
            contained, workflow,
            "{name}: no job was moved into a container"
        );
        let (host_code, host) = Repo::new(workflow).events(&["--executor", "host"]);
        let (code, events) = Repo::new(&contained).events(&["--executor", "container"]);
        assert_eq!(code, host_code, "{name}: {events:#?}");
        let mut expected = results(&host);
        let mut got = results(&events);
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "{name}");
        for (job, _) in &expected {
            assert_eq!(
                log_lines(&events, job),
                log_lines(&host, job),
                "{name}: job {job}"
            );
        }
    }
    for job in [
        "produce", "consume", "build", "report", "finally", "allowed",
    ] {
        assert_eq!(
            leftovers(&docker, &format!("tess-{job}-")),
            Vec::<String>::new()
        );
    }
}

#[test]
fn docker_actions_built_from_a_dockerfile_and_docker_images_as_steps() {
    let Some(docker) = docker() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let action = "name: greet\ninputs:\n  who:\n    default: world\noutputs:\n  greeting:\n    description: the greeting\nruns:\n  using: docker\n  image: Dockerfile\n  args:\n    - ${{ inputs.who }}\n  env:\n    SHOUT: \"yes\"\n";
    let dockerfile = "FROM debian:bookworm\nCOPY entrypoint.sh /entrypoint.sh\nENTRYPOINT [\"/entrypoint.sh\"]\n";
    let entrypoint = "#!/bin/sh\necho \"hello $1 (input $INPUT_WHO, shout $SHOUT) from $(. /etc/os-release; echo $ID)\"\necho \"greeting=hello $1\" >> \"$GITHUB_OUTPUT\"\nexit \"${FAIL:-0}\"\n";
    let workflow = r#"on: push
jobs:
  dact:
    runs-on: ubuntu-latest
    steps:
      - id: g
        uses: ./greet
        with:
          who: tess
      - run: echo "output ${{ steps.g.outputs.greeting }}"
      - uses: docker://busybox:latest
        with:
          args: sh -c "echo busybox sees $GITHUB_EVENT_NAME; readlink /bin/sh"
      - uses: ./greet
        env:
          FAIL: 4
"#;
    project(
        dir.path(),
        &[
            (".github/workflows/ci.yml", workflow),
            ("greet/action.yml", action),
            ("greet/Dockerfile", dockerfile),
            ("greet/entrypoint.sh", entrypoint),
        ],
    );
    use std::os::unix::fs::PermissionsExt;
    let script = dir.path().join("greet/entrypoint.sh");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = run(dir.path(), &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("hello tess (input tess, shout yes) from debian"),
        "{text}"
    );
    assert!(text.contains("output hello tess"), "{text}");
    assert!(text.contains("busybox sees push"), "{text}");
    assert!(
        text.contains("hello world (input world"),
        "the default input: {text}"
    );
    assert!(text.contains("exit code 4"), "{text}");
    assert_eq!(leftovers(&docker, "dact"), Vec::<String>::new());
}

#[test]
fn docker_auth_config_gives_the_credentials_of_the_image_s_registry() {
    use tesseract_ci::engine::containers::registry_credentials;
    let config = r#"{"auths": {"registry.example.com:5000": {"auth": "dXNlcjpzM2NyM3Q="},
                   "https://index.docker.io/v1/": {"username": "hub", "password": "pw"}}}"#;
    assert_eq!(
        registry_credentials("registry.example.com:5000/team/app:1", config),
        Some(("user".into(), "s3cr3t".into()))
    );
    assert_eq!(
        registry_credentials("postgres:15", config),
        Some(("hub".into(), "pw".into()))
    );
    assert_eq!(registry_credentials("ghcr.io/o/i:1", config), None);
    assert_eq!(registry_credentials("x", "not json"), None);
}

#[test]
fn a_docker_action_fetched_from_a_git_server_is_built_and_run() {
    let Some(docker) = docker() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let git = crate::git_http::GitHttp::start(&dir.path().join("git"));
    let action = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        action.path().join("action.yml"),
        "name: remote-docker\ninputs:\n  word: {default: remote}\nruns:\n  using: docker\n  image: Dockerfile\n  args: ['${{ inputs.word }}']\n",
    )
    .expect("write");
    std::fs::write(
        action.path().join("Dockerfile"),
        "FROM busybox:latest\nENTRYPOINT [\"sh\", \"-c\", \"echo \\\"fetched docker action says $0 ($INPUT_WORD)\\\"\"]\n",
    )
    .expect("write");
    git.publish_dir("octo/docker-action", action.path(), "v1");
    let project_dir = dir.path().join("project");
    let workflow = "on: push\njobs:\n  rdocker:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: octo/docker-action@v1\n        with:\n          word: fetched\n";
    project(&project_dir, &[(".github/workflows/ci.yml", workflow)]);
    let cache = dir.path().join("actions-cache");
    let out = tess_with_env(
        &project_dir,
        &["run", "--actions-server", &git.url],
        &[("TESS_ACTIONS_CACHE", cache.to_str().expect("utf-8"))],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("fetched docker action says fetched (fetched)"),
        "{text}"
    );
    assert_eq!(leftovers(&docker, "rdocker"), Vec::<String>::new());
}

#[test]
fn services_from_an_expression_with_their_own_entrypoint_and_command() {
    let Some(docker) = docker() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let workflow = r#"on: push
jobs:
  svcexpr:
    runs-on: ubuntu-latest
    strategy:
      matrix:
        include:
          - services:
              cache:
                image: busybox:latest
                entrypoint: sh
                command: -c "echo up; sleep 600"
    container: debian:bookworm
    services: ${{ matrix.services }}
    steps:
      - run: getent hosts cache >/dev/null && echo "cache resolves"
"#;
    project(dir.path(), &[(".github/workflows/ci.yml", workflow)]);
    let out = run(dir.path(), &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(text.contains("cache resolves"), "{text}");
    assert_eq!(leftovers(&docker, "svcexpr"), Vec::<String>::new());
}
