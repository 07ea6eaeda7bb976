//! Helpers shared by the tests.

use std::path::PathBuf;
use std::process::{Command, Output};
use tesseract_ci::plan::{PipelinePlan, plan_pipeline};
use tesseract_ci::spec::{Pipeline, parse_github};
use tesseract_ci::trigger::Event;

/// `../shared/corpus/KIND` next to the checkout (or under `$TESS_CORPUS`); `None`, said
/// loudly, when it is not there (a failure under CI, where nothing may be skipped).
pub(crate) fn corpus_dir(kind: &str) -> Option<PathBuf> {
    let root = std::env::var_os("TESS_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    if root.is_dir() {
        return Some(root.join(kind));
    }
    skip_or_fail(&format!(
        "the shared corpus is missing ({}; set TESS_CORPUS)",
        root.display()
    ));
    None
}

/// Parses a workflow that must be valid.
pub(crate) fn pipeline(yaml: &str) -> Pipeline {
    let (p, diags) = parse_github("test.yml", yaml.as_bytes(), "test.yml");
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "unexpected errors: {errors:#?}");
    p.expect("pipeline")
}

pub(crate) fn plan(yaml: &str, event: Option<&Event>) -> PipelinePlan {
    let (plan, diags) = plan_pipeline(&pipeline(yaml), event);
    assert!(diags.is_empty(), "unexpected plan diagnostics: {diags:#?}");
    plan
}

/// Runs the `tess` binary in `dir` with a hard timeout (output is drained as it comes).
pub(crate) fn tess(dir: &std::path::Path, args: &[&str]) -> Output {
    tess_with_env(dir, args, &[])
}

/// As [`tess`], with extra environment variables.
pub(crate) fn tess_with_env(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_tess"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn tess");
    wait_with_timeout(child, std::time::Duration::from_secs(60))
}

/// The child's output, its output drained as it comes; killed and failed after `timeout`.
pub(crate) fn wait_with_timeout(
    child: std::process::Child,
    timeout: std::time::Duration,
) -> Output {
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.expect("output"),
        Err(_) => {
            // SAFETY: killing the child we spawned.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            panic!("pid {pid} did not finish in {timeout:?}");
        }
    }
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A test that cannot run here: fails under CI (`TESS_CI=1`, set by `.ci/run`, where
/// nothing may be skipped), else says so on the real stderr (libtest captures `eprintln!`).
pub(crate) fn skip_or_fail(why: &str) {
    assert!(
        std::env::var("TESS_CI").as_deref() != Ok("1"),
        "TESS_CI=1 and a test cannot run: {why}"
    );
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "warning: skipping a test: {why}");
}
