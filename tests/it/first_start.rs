//! `tess server` the first time, as a new user meets it: the README's server quick start run
//! literally, the generated tokens across a restart, and the database URLs users write.

use crate::harness::{Process, agent, wait_for};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The shell block of the README's server quick start.
fn quick_start() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let (_, after) = readme
        .split_once("<!-- server-quick-start -->")
        .expect("the quick start marker in the README");
    let (_, block) = after.split_once("```sh\n").expect("its shell block");
    let (block, _) = block.split_once("\n```").expect("the end of the block");
    block.to_string()
}

/// `PATH` with the `tess` under test first.
fn path_with_tess() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_tess"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Kills a process group (the script's shell and what it started) when dropped.
struct Group(i32);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: signalling a process group this test created.
        unsafe {
            libc::kill(-self.0, libc::SIGKILL);
        }
    }
}

#[test]
fn the_readme_server_quick_start_works_when_followed_literally() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("quick-start.sh");
    std::fs::write(&script, quick_start()).expect("script");
    let mut command = Command::new("bash");
    command
        .args(["-euo", "pipefail"])
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path_with_tess())
        .env_remove("TESS_LOG")
        .env_remove("TESS_SERVER")
        .env_remove("TESS_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its own process group: the server and runner it starts go with it.
    command.process_group(0);
    let child = command.spawn().expect("bash");
    let _group = Group(child.id() as i32);
    let out = crate::support::wait_with_timeout(child, Duration::from_secs(180));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let logs = |name: &str| {
        std::fs::read_to_string(dir.path().join("tess-demo").join(name)).unwrap_or_default()
    };
    let context = format!(
        "stdout:\n{stdout}\nstderr:\n{}\nserver.log:\n{}\nrunner.log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        logs("server.log"),
        logs("runner.log")
    );
    assert!(out.status.success(), "{context}");
    // The first start printed the commands with the generated tokens.
    let token = std::fs::read_to_string(dir.path().join("tess-demo/tess-data/registration-token"))
        .expect("registration token");
    assert!(
        stdout.contains(&format!(
            "tess runner --server http://127.0.0.1:8080 --registration-token {}",
            token.trim()
        )),
        "{context}"
    );
    // The run succeeded, its job ran the step with the repository's name, and it is listed.
    assert!(stdout.contains("build: success"), "{context}");
    assert!(stdout.contains(": success\n"), "{context}");
    assert!(stdout.contains("hello from me/hello at "), "{context}");
    assert!(!stdout.contains("##["), "{context}");
    assert!(stdout.contains("me/hello"), "{context}");
}

/// A `tess server` started in `dir` with `args`; its stdout lines up to the listening line.
fn start(dir: &Path, args: &[&str]) -> (Process, String, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tess"))
        .arg("server")
        .args(args)
        .current_dir(dir)
        .env_remove("TESS_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tess server");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the server did not start: {lines:?}"));
        if let Some(url) = line.strip_prefix("tess server listening on ") {
            break url.to_string();
        }
        lines.push(line);
    };
    (Process { child }, url, lines)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn a_first_start_makes_tokens_a_runner_uses_and_a_restart_keeps_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (mut server, url, lines) = start(root, &["--listen", "127.0.0.1:0"]);
    let data = root.join("tess-data");
    let registration = std::fs::read_to_string(data.join("registration-token")).expect("token");
    let admin = std::fs::read_to_string(data.join("admin-token")).expect("token");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("registration-token")), 0o600);
    assert_eq!(mode(&data.join("admin-token")), 0o600);
    assert!(data.join("tess.db").is_file());
    assert!(data.join("tess.toml").is_file());
    // The printed runner command, run as printed, registers.
    let printed = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("tess runner "))
        .unwrap_or_else(|| panic!("no runner command in {lines:?}"))
        .to_string();
    assert!(printed.contains(registration.trim()), "{printed}");
    let runner = Command::new(env!("CARGO_BIN_EXE_tess"))
        .arg("runner")
        .args(printed.split_whitespace())
        .arg("--workdir")
        .arg(root.join("runner"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tess runner");
    let _runner = Process { child: runner };
    let runners = |url: &str| {
        let mut r = agent()
            .get(&format!("{url}/api/v1/runners"))
            .header("authorization", &format!("Bearer {}", admin.trim()))
            .call()
            .expect("GET runners");
        assert_eq!(r.status().as_u16(), 200);
        let v: serde_json::Value =
            serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default()).expect("json");
        v["runners"].as_array().map_or(0, std::vec::Vec::len)
    };
    wait_for("the runner to register", Duration::from_secs(20), || {
        (runners(&url) == 1).then_some(())
    });
    // The printed `tess runs` command works with the admin token.
    let printed = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("tess runs "))
        .expect("a runs command")
        .to_string();
    let args: Vec<&str> = printed.split_whitespace().collect();
    let out = crate::support::tess(root, &[&["runs"][..], &args[..]].concat());
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    assert!(crate::support::stdout(&out).starts_with("ID"));

    // A restart keeps the tokens (and prints where they are, not the tokens).
    server.kill9();
    let (_server, url, lines) = start(root, &["--listen", "127.0.0.1:0"]);
    assert_eq!(
        std::fs::read_to_string(data.join("registration-token")).expect("token"),
        registration
    );
    assert_eq!(
        std::fs::read_to_string(data.join("admin-token")).expect("token"),
        admin
    );
    let text = lines.join("\n");
    assert!(!text.contains(registration.trim()), "{text}");
    assert!(text.contains("--registration-token-file"), "{text}");
    assert_eq!(runners(&url), 1);
}

#[test]
fn database_urls_create_their_file_and_bad_ones_say_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let absolute = root.join("abs/new/dir/x.db");
    let cases = [
        ("sqlite://relative.db".to_string(), root.join("relative.db")),
        ("sqlite:short.db".to_string(), root.join("short.db")),
        (format!("sqlite://{}", absolute.display()), absolute.clone()),
        (
            "some/dir/bare.db".to_string(),
            root.join("some/dir/bare.db"),
        ),
    ];
    for (url, file) in &cases {
        let (mut server, _, _) = start(root, &["--listen", "127.0.0.1:0", "--database-url", url]);
        assert!(file.is_file(), "{url}: no {}", file.display());
        server.kill9();
    }
    // A URL that cannot work is invalid input (2); a database that does not answer is the
    // environment failing (3): the same start may work later.
    let refused = |url: &str, code: i32| {
        let out = crate::support::tess(
            root,
            &["server", "--listen", "127.0.0.1:0", "--database-url", url],
        );
        assert_eq!(out.status.code(), Some(code), "{url}: {out:?}");
        crate::support::stderr(&out)
    };
    let memory = refused("sqlite::memory:", 2);
    assert!(
        memory.contains("in-memory database loses every run"),
        "{memory}"
    );
    // An unreachable PostgreSQL: one line with the host and the reason, no password.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let unreachable = refused(
        &format!("postgres://tess:pa55word@127.0.0.1:{port}/tess"),
        3,
    );
    assert!(
        unreachable.contains(&format!("host 127.0.0.1:{port}")),
        "{unreachable}"
    );
    assert!(!unreachable.contains("pa55word"), "{unreachable}");
    assert_eq!(unreachable.trim().lines().count(), 1, "{unreachable}");
}
