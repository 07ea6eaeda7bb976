//! Real `tess server` and `tess runner` processes, a bare git repository to push to, and the
//! HTTP calls a forge and an operator make — for the server tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const API_TOKEN: &str = "test-api-token";
pub(crate) const REGISTRATION: &str = "test-registration";
pub(crate) const SECRET: &str = "It's a Secret to Everybody";

/// The databases every storage test runs against: a SQLite file, and PostgreSQL when
/// `TESS_TEST_POSTGRES_URL` names a server (a fresh database per test is created there).
pub(crate) fn databases(dir: &Path) -> Vec<String> {
    let mut out = vec![format!(
        "sqlite://{}?mode=rwc",
        dir.join("tess.db").display()
    )];
    match std::env::var("TESS_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => out.push(fresh_postgres_database(&url)),
        _ if std::env::var("TESS_REQUIRE_POSTGRES").as_deref() == Ok("1") => {
            panic!("TESS_REQUIRE_POSTGRES=1 but TESS_TEST_POSTGRES_URL is not set")
        }
        _ => sqlite_only_notice(),
    }
    out
}

/// Said once per test binary, on the real stderr: libtest captures `eprintln!`, and a skipped
/// database must not go unnoticed.
fn sqlite_only_notice() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "warning: TESS_TEST_POSTGRES_URL is not set: the storage tests run on SQLite only \
             (`export TESS_TEST_POSTGRES_URL=$(scripts/postgres.sh)` sets PostgreSQL up)"
        );
    });
}

/// Runs one SQL statement on a test database (`sqlite3` or `psql`): to put a row in the
/// state a crash or another replica would leave it in. Returns the output.
pub(crate) fn sql(database: &str, statement: &str) -> String {
    let out = match database.strip_prefix("sqlite://") {
        // The server writes to the same file: wait for its lock as it waits for ours.
        Some(rest) => Command::new("sqlite3")
            .args(["-cmd", ".timeout 10000"])
            .arg(rest.split('?').next().expect("path"))
            .arg(statement)
            .output(),
        None => Command::new("psql")
            .args([database, "-qAt", "-c", statement])
            .output(),
    }
    .expect("sqlite3 / psql");
    assert!(
        out.status.success(),
        "{statement}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs `test` once per database (see [`databases`]), each in a directory of its own.
pub(crate) fn on_each_database(test: impl Fn(&Path, &str)) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (n, database) in databases(dir.path()).iter().enumerate() {
        let root = dir.path().join(format!("db{n}"));
        std::fs::create_dir_all(&root).expect("mkdir");
        test(&root, database);
    }
}

pub(crate) fn fresh_postgres_database(url: &str) -> String {
    let name = format!("tess_test_{}", tesseract_ci::token::random_hex(6));
    let out = Command::new("psql")
        .arg(url)
        .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "cannot create a test database: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (base, _) = url.rsplit_once('/').expect("a database URL");
    format!("{base}/{name}")
}

/// Waits for `check` to return `Some`, polling; panics with `what` after `timeout`.
pub(crate) fn wait_for<T>(what: &str, timeout: Duration, check: impl FnMut() -> Option<T>) -> T {
    wait_for_showing(|| what.to_string(), timeout, check)
}

/// [`wait_for`], saying what was seen when it times out.
pub(crate) fn wait_for_showing<T>(
    what: impl Fn() -> String,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {}",
            what()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed (SIGKILL) when dropped.
pub(crate) struct Process {
    pub child: Child,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    pub(crate) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM (the first one: a runner drains).
    pub(crate) fn terminate(&mut self) {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
    }

    /// The exit status, waiting at most `timeout`.
    pub(crate) fn exit_status(&mut self, timeout: Duration) -> std::process::ExitStatus {
        wait_for("the process to exit", timeout, || {
            self.child.try_wait().ok().flatten()
        })
    }
}

/// A bare repository (the "forge") and a clone to commit in.
pub(crate) struct Repo {
    pub bare: PathBuf,
    pub work: PathBuf,
}

impl Repo {
    pub(crate) fn new(dir: &Path) -> Repo {
        let bare = dir.join("origin.git");
        let work = dir.join("work");
        git(
            dir,
            &[
                "init",
                "-q",
                "--bare",
                "-b",
                "main",
                bare.to_str().expect("path"),
            ],
        );
        git(
            dir,
            &["init", "-q", "-b", "main", work.to_str().expect("path")],
        );
        git(
            &work,
            &["remote", "add", "origin", bare.to_str().expect("path")],
        );
        Repo { bare, work }
    }

    /// Writes files, commits and pushes to `branch`; returns the commit.
    pub(crate) fn commit(&self, files: &[(&str, &str)], branch: &str) -> String {
        self.commit_titled(files, branch, "change")
    }

    /// [`Repo::commit`] with `title` as the commit message.
    pub(crate) fn commit_titled(
        &self,
        files: &[(&str, &str)],
        branch: &str,
        title: &str,
    ) -> String {
        for (path, text) in files {
            let p = self.work.join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        commit_all_titled(&self.work, title);
        git(
            &self.work,
            &[
                "push",
                "-q",
                "-f",
                "origin",
                &format!("HEAD:refs/heads/{branch}"),
            ],
        );
        git_out(&self.work, &["rev-parse", "HEAD"])
    }

    pub(crate) fn tag(&self, name: &str) -> String {
        git(&self.work, &["tag", "-f", name]);
        git(
            &self.work,
            &["push", "-q", "-f", "origin", &format!("refs/tags/{name}")],
        );
        git_out(&self.work, &["rev-parse", "HEAD"])
    }
}

/// Commits everything in the work tree of `dir` (an empty commit when nothing changed).
pub(crate) fn commit_all(dir: &Path) {
    commit_all_titled(dir, "change");
}

fn commit_all_titled(dir: &Path, title: &str) {
    git(dir, &["add", "-A"]);
    let who = ["-c", "user.email=t@t", "-c", "user.name=t"];
    git(
        dir,
        &[&who[..], &["commit", "-q", "--allow-empty", "-m", title]].concat(),
    );
}

pub(crate) fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn git_out(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A running `tess server` with one configured repository.
pub(crate) struct Server {
    pub url: String,
    pub dir: PathBuf,
    pub process: Process,
}

/// The config for one repository of `forge` named `name` at `clone_url`.
pub(crate) fn config(forge: &str, name: &str, clone_url: &Path, lease_ttl: u64) -> String {
    format!(
        "api_tokens = [\"{API_TOKEN}\"]\nregistration_token = \"{REGISTRATION}\"\n\
         [lease]\nttl_seconds = {lease_ttl}\nheartbeat_seconds = 1\nmax_attempts = 3\n\
         [[repo]]\nforge = \"{forge}\"\nname = \"{name}\"\nclone_url = \"{}\"\nwebhook_secret = \"{SECRET}\"\n\
         [repo.secrets]\nDEPLOY_TOKEN = \"hunter2-secret\"\n",
        clone_url.display()
    )
}

/// A bare repository and a server configured for it (`forge`, `name`, lease TTL) in `root`.
pub(crate) fn setup(
    root: &Path,
    forge: &str,
    name: &str,
    lease_ttl: u64,
    database: &str,
) -> (Repo, Server) {
    setup_with(root, forge, name, lease_ttl, database, "")
}

/// [`setup`], with `more` appended to the config (the repository's `[repo.report]`, …).
pub(crate) fn setup_with(
    root: &Path,
    forge: &str,
    name: &str,
    lease_ttl: u64,
    database: &str,
    more: &str,
) -> (Repo, Server) {
    let repo = Repo::new(root);
    std::fs::write(
        root.join("tess.toml"),
        config(forge, name, &repo.bare, lease_ttl) + more,
    )
    .expect("config");
    let server = Server::start(root, database, "127.0.0.1:0");
    (repo, server)
}

impl Server {
    /// Starts a server in `dir` (config already written as `dir/tess.toml`).
    pub(crate) fn start(dir: &Path, database_url: &str, listen: &str) -> Server {
        Server::start_with_env(dir, database_url, listen, &[])
    }

    /// [`Server::start`] with extra environment (`TESS_TEST_CLOCK_FILE`, …).
    pub(crate) fn start_with_env(
        dir: &Path,
        database_url: &str,
        listen: &str,
        env: &[(&str, &str)],
    ) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tess"))
            .args(["server", "--config"])
            .arg(dir.join("tess.toml"))
            .args(["--listen", listen, "--database-url", database_url])
            .env("TESS_LOG", "tesseract_ci=info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("server.log"))
                    .expect("log"),
            ))
            .spawn()
            .expect("spawn tess server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("tess server listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let process = Process { child };
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "the server did not start:\n{}",
                    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
                )
            });
        Server {
            url,
            dir: dir.to_path_buf(),
            process,
        }
    }

    pub(crate) fn runner(&self, name: &str, labels: &str) -> Process {
        self.runner_with(name, labels, &[])
    }

    /// [`Server::runner`] with more flags (`--hosted-labels none`, …).
    pub(crate) fn runner_with(&self, name: &str, labels: &str, more: &[&str]) -> Process {
        let workdir = self.dir.join(format!("runner-{name}"));
        let child = Command::new(env!("CARGO_BIN_EXE_tess"))
            .args([
                "runner",
                "--server",
                &self.url,
                "--registration-token",
                REGISTRATION,
            ])
            .args(["--name", name, "--labels", labels, "--poll-seconds", "2"])
            .arg("--workdir")
            .arg(&workdir)
            .args(more)
            .env("TESS_LOG", "tesseract_ci=info")
            .env("TESS_ACTIONS_CACHE", self.dir.join("actions-cache"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(self.dir.join(format!("runner-{name}.log"))).expect("log"),
            ))
            .spawn()
            .expect("spawn tess runner");
        Process { child }
    }

    pub(crate) fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let mut r = agent()
            .get(&format!("{}{path}", self.url))
            .header("authorization", &format!("Bearer {API_TOKEN}"))
            .call()
            .expect("GET");
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    pub(crate) fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let mut req = agent().post(&format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        let mut r = req.send_json(body).expect("POST");
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// POSTs an empty body with the API token and `headers` (`If-Match`, …).
    pub(crate) fn post_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let mut req = agent()
            .post(&format!("{}{path}", self.url))
            .header("authorization", &format!("Bearer {API_TOKEN}"));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let mut r = req.send_empty().expect("POST");
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// POSTs a webhook as the forge would: GitHub signs the body, GitLab sends the token.
    pub(crate) fn hook(
        &self,
        forge: &str,
        event: &str,
        delivery: &str,
        body: &[u8],
        secret: &str,
    ) -> (u16, serde_json::Value) {
        let mut req = agent()
            .post(&format!("{}/hooks/{forge}", self.url))
            .header("content-type", "application/json");
        if forge == "github" {
            req = req
                .header("x-github-event", event)
                .header("x-github-delivery", delivery)
                .header("x-hub-signature-256", &github_signature(secret, body));
        } else {
            req = req
                .header("x-gitlab-event", event)
                .header("x-gitlab-event-uuid", delivery)
                .header("x-gitlab-token", secret);
        }
        let mut r = req.send(body).expect("POST hook");
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// The runs recorded, newest first.
    pub(crate) fn runs(&self) -> Vec<serde_json::Value> {
        let (status, body) = self.get("/api/v1/runs");
        assert_eq!(status, 200, "{body}");
        body["runs"].as_array().cloned().unwrap_or_default()
    }

    pub(crate) fn run(&self, id: &str) -> serde_json::Value {
        let (status, body) = self.get(&format!("/api/v1/runs/{id}"));
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Waits until run `id` has finished; returns it.
    pub(crate) fn finished_run(&self, id: &str, timeout: Duration) -> serde_json::Value {
        wait_for(&format!("run {id} to finish"), timeout, || {
            let run = self.run(id);
            let done = ["success", "failed", "cancelled"]
                .contains(&run["status"].as_str().unwrap_or_default());
            done.then_some(run)
        })
    }

    pub(crate) fn log(&self, run: &str, job: &str) -> String {
        let mut r = agent()
            .get(&format!("{}/api/v1/runs/{run}/jobs/{job}/log", self.url))
            .header("authorization", &format!("Bearer {API_TOKEN}"))
            .call()
            .expect("GET log");
        r.body_mut().read_to_string().unwrap_or_default()
    }
}

pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

pub(crate) fn github_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// A GitHub push payload for `sha` on `git_ref`.
pub(crate) fn github_push(repo: &str, git_ref: &str, before: Option<&str>, sha: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ref": git_ref,
        "before": before.unwrap_or("0000000000000000000000000000000000000000"),
        "after": sha,
        "created": before.is_none(),
        "deleted": false,
        "repository": {"full_name": repo},
    }))
    .expect("json")
}

/// Serves `app` on 127.0.0.1 from a runtime of `workers` threads: its address, and the
/// runtime that must live as long as the server.
pub(crate) fn serve_on_loopback(
    app: axum::Router,
    workers: usize,
) -> (std::net::SocketAddr, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    runtime.spawn(async move { axum::serve(listener, app).await });
    (addr, runtime)
}
