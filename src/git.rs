//! The few facts `tess run` needs from the local git checkout (via the `git` CLI).

use crate::engine::RepoInfo;
use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The top of the work tree containing `dir`, if it is in one.
pub fn toplevel(dir: &Path) -> Option<PathBuf> {
    git(dir, &["rev-parse", "--show-toplevel"]).map(PathBuf::from)
}

pub fn repo_info(dir: &Path) -> RepoInfo {
    let sha = git(dir, &["rev-parse", "HEAD"]).unwrap_or_else(|| "0".repeat(40));
    let name = git(dir, &["config", "--get", "remote.origin.url"])
        .and_then(|url| {
            let trimmed = url.trim_end_matches('/').trim_end_matches(".git");
            let mut parts = trimmed.rsplit(['/', ':']);
            let repo = parts.next()?;
            let owner = parts.next()?;
            Some(format!("{owner}/{repo}"))
        })
        .unwrap_or_else(|| {
            let leaf = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("local/{leaf}")
        });
    let actor = git(dir, &["config", "--get", "user.name"])
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "tess".into());
    RepoInfo {
        sha,
        repository: name,
        actor,
    }
}

/// Tracked and untracked-but-not-ignored files (what `--isolate` copies).
pub fn work_tree_files(dir: &Path) -> Option<Vec<PathBuf>> {
    let out = git(
        dir,
        &[
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ],
    )?;
    Some(
        out.split('\0')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect(),
    )
}
