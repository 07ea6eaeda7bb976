//! The few facts `tess run` needs from the local git checkout. Read straight from `.git`
//! (a run should not pay for four `git` processes); the `git` CLI is the fallback.

use crate::engine::RepoInfo;
use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    run(dir, args).ok()
}

/// Runs `git -C dir ARGS` (no stdin): its trimmed output, or an error naming the command
/// with git's own message.
pub(crate) fn run(dir: &Path, args: &[&str]) -> Result<String, String> {
    run_with(dir, args, None)
}

/// [`run`] against `remote`, whose credentials git gets from its environment.
pub(crate) fn run_remote(dir: &Path, remote: &Remote, args: &[&str]) -> Result<String, String> {
    run_with(dir, args, Some(remote))
}

fn run_with(dir: &Path, args: &[&str], remote: Option<&Remote>) -> Result<String, String> {
    let mut command = Command::new("git");
    command.arg("-C").arg(dir).args(args);
    if let Some(remote) = remote {
        remote.authorize(&mut command);
    }
    let out = command
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// What `git clone --mirror` fetches: every ref, forced.
pub(crate) const MIRROR_REFSPEC: &str = "+refs/*:refs/*";

/// A repository URL whose `user:token@` (the usual way to give a CI server a private
/// repository) is a secret: git is given the URL without it and the credentials as an
/// `Authorization` header in its environment (`GIT_CONFIG_*`, not world-readable like a
/// command line), and messages show [`Remote::display`].
#[derive(Clone)]
pub(crate) struct Remote {
    /// The URL without userinfo: what git is given and what messages may show.
    pub url: String,
    header: Option<String>,
}

impl Remote {
    pub(crate) fn parse(url: &str) -> Remote {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Remote {
                url: url.to_string(),
                header: None,
            };
        };
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let Some(at) = rest[..authority_end].rfind('@') else {
            return Remote {
                url: url.to_string(),
                header: None,
            };
        };
        let userinfo = &rest[..at];
        let http = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
        if !http {
            // ssh://git@host: a user name, not a secret; git needs it in the URL.
            return Remote {
                url: url.to_string(),
                header: None,
            };
        }
        use base64::Engine;
        let decoded = percent_decode(userinfo);
        let pair = if decoded.contains(':') {
            decoded
        } else {
            format!("{decoded}:")
        };
        Remote {
            url: format!("{scheme}://{}", &rest[at + 1..]),
            header: Some(format!(
                "Authorization: Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )),
        }
    }

    /// The URL as messages show it: any userinfo replaced by `***`.
    pub(crate) fn display(url: &str) -> String {
        match url.split_once("://") {
            Some((scheme, rest)) => {
                let authority_end = rest.find('/').unwrap_or(rest.len());
                match rest[..authority_end].rfind('@') {
                    Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
                    None => url.to_string(),
                }
            }
            None => url.to_string(),
        }
    }

    /// Gives `command` (a git process) the credentials, if any.
    pub(crate) fn authorize(&self, command: &mut Command) {
        if let Some(header) = &self.header {
            command
                .env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env("GIT_CONFIG_VALUE_0", header)
                // Never ask a terminal for a password the header did not satisfy.
                .env("GIT_TERMINAL_PROMPT", "0");
        }
    }
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// The repository's default branch: what `origin/HEAD` points at, else the only branch
/// the remote has; `None` without a remote.
pub(crate) fn default_branch(dir: &Path) -> Option<String> {
    if let Some(head) = git(dir, &["symbolic-ref", "-q", "refs/remotes/origin/HEAD"]) {
        return head.strip_prefix("refs/remotes/origin/").map(String::from);
    }
    let branches = git(
        dir,
        &[
            "for-each-ref",
            "--format=%(refname)",
            "refs/remotes/origin/",
        ],
    )?;
    let names: Vec<&str> = branches
        .lines()
        .filter_map(|r| r.strip_prefix("refs/remotes/origin/"))
        .filter(|n| *n != "HEAD")
        .collect();
    match names[..] {
        [only] => Some(only.to_string()),
        _ => None,
    }
}

/// Files changed on HEAD since it forked from `git_ref` (`git diff REF...HEAD`, the
/// merge-base comparison GitLab's `changes:compare_to` makes).
pub(crate) fn changed_since(root: &Path, git_ref: &str) -> Result<Vec<String>, String> {
    if git_ref.starts_with('-') {
        return Err(format!("`{git_ref}` is not a ref"));
    }
    git(
        root,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{git_ref}^{{commit}}"),
        ],
    )
    .ok_or_else(|| format!("`{git_ref}` is not a ref of this repository"))?;
    let diff = git(root, &["diff", "--name-only", &format!("{git_ref}...HEAD")])
        .ok_or_else(|| format!("cannot compare HEAD with `{git_ref}`"))?;
    Ok(diff.lines().map(String::from).collect())
}

/// The top of the work tree containing `dir`, if it is in one.
pub(crate) fn toplevel(dir: &Path) -> Option<PathBuf> {
    let abs = dir.canonicalize().ok()?;
    abs.ancestors()
        .find(|a| a.join(".git").exists())
        .map(Path::to_path_buf)
        .or_else(|| git(dir, &["rev-parse", "--show-toplevel"]).map(PathBuf::from))
}

/// The git directory of a work tree (`.git`, or where a worktree's `.git` file points).
fn git_dir(root: &Path) -> Option<PathBuf> {
    let dot = root.join(".git");
    if dot.is_dir() {
        return Some(dot);
    }
    let text = std::fs::read_to_string(&dot).ok()?;
    let target = PathBuf::from(text.strip_prefix("gitdir:")?.trim());
    Some(if target.is_absolute() {
        target
    } else {
        root.join(target)
    })
}

/// `HEAD` resolved to a commit id through loose refs and `packed-refs`.
fn head_sha(dir: &Path) -> Option<String> {
    let head = std::fs::read_to_string(dir.join("HEAD")).ok()?;
    let Some(reference) = head.trim().strip_prefix("ref:").map(str::trim) else {
        return Some(head.trim().to_string());
    };
    // Worktrees keep shared refs in the common directory.
    let common = std::fs::read_to_string(dir.join("commondir"))
        .map(|c| dir.join(c.trim()))
        .unwrap_or_else(|_| dir.to_path_buf());
    for base in [dir, common.as_path()] {
        if let Ok(sha) = std::fs::read_to_string(base.join(reference)) {
            return Some(sha.trim().to_string());
        }
        if let Ok(packed) = std::fs::read_to_string(base.join("packed-refs")) {
            let found = packed.lines().find_map(|l| {
                let (sha, name) = l.split_once(' ')?;
                (name == reference).then(|| sha.to_string())
            });
            if found.is_some() {
                return found;
            }
        }
    }
    None
}

/// A value from `.git/config`, e.g. (`remote "origin"`, `url`).
fn config_value(dir: &Path, section: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("config")).ok()?;
    let mut in_section = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line
                .trim_matches(|c| c == '[' || c == ']')
                .eq_ignore_ascii_case(section);
        } else if in_section
            && let Some((k, v)) = line.split_once('=')
            && k.trim().eq_ignore_ascii_case(key)
        {
            return Some(v.trim().to_string());
        }
    }
    None
}

/// `owner/name` from the `origin` remote's URL.
fn remote_project(git_dir: &Path) -> Option<String> {
    let url = config_value(git_dir, "remote \"origin\"", "url")?;
    let trimmed = url.trim_end_matches('/').trim_end_matches(".git");
    let mut parts = trimmed.rsplit(['/', ':']);
    let repo = parts.next()?;
    let owner = parts.next()?;
    Some(format!("{owner}/{repo}"))
}

/// The project path (`group/project`) of the repository containing `dir`, from its
/// `origin` remote.
pub(crate) fn project_path(dir: &Path) -> Option<String> {
    remote_project(&git_dir(&toplevel(dir)?)?)
}

pub(crate) fn repo_info(root: &Path) -> RepoInfo {
    let dir = git_dir(root);
    let sha = dir
        .as_deref()
        .and_then(head_sha)
        .filter(|s| s.len() == 40)
        .or_else(|| git(root, &["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "0".repeat(40));
    let name = dir.as_deref().and_then(remote_project).unwrap_or_else(|| {
        let leaf = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("local/{leaf}")
    });
    let actor = dir
        .as_deref()
        .and_then(|d| config_value(d, "user", "name"))
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "tess".into());
    RepoInfo {
        sha,
        repository: name,
        actor,
    }
}

/// Tracked and untracked-but-not-ignored files (what `--isolate` copies).
pub(crate) fn work_tree_files(dir: &Path) -> Option<Vec<PathBuf>> {
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
