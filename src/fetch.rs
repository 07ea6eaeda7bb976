//! Remote actions and reusable workflows: `owner/repo[/path]@ref` resolved to a commit and
//! fetched by git from the actions server into a per-user cache keyed by that commit.

use crate::git::Remote;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// `owner/repo[/path]@ref`, as a step's `uses:` or a job's `uses:` names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActionRef {
    pub owner: String,
    pub repo: String,
    /// A directory (an action) or file (a reusable workflow) inside the repository.
    pub path: Option<String>,
    pub git_ref: String,
}

impl ActionRef {
    /// `None` for anything that is not `owner/repo[/path]@ref` (`./local`, `docker://`, …).
    pub fn parse(uses: &str) -> Option<ActionRef> {
        if uses.starts_with("./") || uses.starts_with("docker://") {
            return None;
        }
        let (name, git_ref) = uses.rsplit_once('@')?;
        let mut parts = name.splitn(3, '/');
        let owner = parts.next().filter(|s| !s.is_empty())?;
        let repo = parts.next().filter(|s| !s.is_empty())?;
        let path = parts
            .next()
            .map(|p| p.trim_matches('/').to_string())
            .filter(|p| !p.is_empty());
        let valid = |s: &str| {
            !s.is_empty()
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if !valid(owner) || !valid(repo) || git_ref.is_empty() || git_ref.starts_with('-') {
            return None;
        }
        if path
            .as_deref()
            .is_some_and(|p| p.split('/').any(|part| part == ".."))
        {
            return None;
        }
        Some(ActionRef {
            owner: owner.to_string(),
            repo: repo.to_string(),
            path,
            git_ref: git_ref.to_string(),
        })
    }

    /// `owner/repo` (GitHub's `GITHUB_ACTION_REPOSITORY`).
    pub fn repository(&self) -> String {
        format!("{}/{}", self.owner, self.repo)
    }

    /// `owner/repo@ref`: what `--local-action` overrides.
    pub fn pinned(&self) -> String {
        format!("{}/{}@{}", self.owner, self.repo, self.git_ref)
    }
}

impl std::fmt::Display for ActionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{}/{}/{path}@{}", self.owner, self.repo, self.git_ref),
            None => write!(f, "{}@{}", self.repository(), self.git_ref),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    #[error("`{action}` is not in the actions cache ({cache}) and --offline forbids fetching it")]
    Offline { action: String, cache: String },
    #[error("`{action}` could not be fetched from {url}: {message}")]
    Git {
        action: String,
        url: String,
        message: String,
    },
    #[error("`{action}`: {path} does not exist in {repository} at {commit}")]
    NoPath {
        action: String,
        path: String,
        repository: String,
        commit: String,
    },
    #[error("`{action}`: {message}")]
    Cache { action: String, message: String },
}

/// A fetched repository tree.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The action's directory (or the workflow file), inside the repository's tree.
    pub path: PathBuf,
    /// The resolved commit (`local` for a `--local-action` checkout).
    pub commit: String,
    /// Whether git was run for it (false: the cache answered).
    pub fetched: bool,
}

/// Where actions come from and where they are kept. Shared by every job of a run (and by a
/// runner's jobs): one fetch per action and commit, also across processes on one host.
pub struct Source {
    /// `https://github.com`, a GitHub Enterprise or Gitea-style mirror: `{server}/{owner}/{repo}`.
    pub server: String,
    token: Option<String>,
    pub offline: bool,
    /// `owner/repo@ref` → a local checkout used instead.
    overrides: HashMap<String, PathBuf>,
    /// `<cache>/<server>/<owner>/<repo>/<commit>/` trees and `…/refs/<ref>` resolutions.
    pub cache: PathBuf,
    resolved: Mutex<HashMap<String, String>>,
    /// One fetch of a repository at a time in this process.
    fetching: Mutex<()>,
}

impl Source {
    pub fn new(server: &str, token: Option<String>, offline: bool, cache: PathBuf) -> Source {
        Source {
            server: server.trim_end_matches('/').to_string(),
            token: token.filter(|t| !t.is_empty()),
            offline,
            overrides: HashMap::new(),
            cache,
            resolved: Mutex::new(HashMap::new()),
            fetching: Mutex::new(()),
        }
    }

    /// The default cache: `$TESS_ACTIONS_CACHE`, else `$XDG_CACHE_HOME/tess/actions`, else
    /// `~/.cache/tess/actions`.
    pub fn default_cache() -> PathBuf {
        if let Some(dir) = std::env::var_os("TESS_ACTIONS_CACHE") {
            return PathBuf::from(dir);
        }
        user_cache_dir().join("actions")
    }

    /// `--local-action owner/repo@ref=PATH`.
    pub fn with_override(mut self, spec: &str) -> Result<Source, String> {
        let (pinned, path) = spec
            .split_once('=')
            .ok_or_else(|| format!("--local-action `{spec}`: expected owner/repo@ref=PATH"))?;
        let action = ActionRef::parse(pinned)
            .filter(|a| a.path.is_none())
            .ok_or_else(|| format!("--local-action `{spec}`: `{pinned}` is not owner/repo@ref"))?;
        let path = PathBuf::from(path);
        if !path.is_dir() {
            return Err(format!(
                "--local-action `{spec}`: {} is not a directory",
                path.display()
            ));
        }
        self.overrides.insert(action.pinned(), path);
        Ok(self)
    }

    fn url(&self, action: &ActionRef) -> Remote {
        let base = format!("{}/{}", self.server, action.repository());
        match &self.token {
            // The token goes to git as a header (see `Remote`), never on a command line.
            Some(token) => match base.split_once("://") {
                Some((scheme, rest)) => {
                    Remote::parse(&format!("{scheme}://x-access-token:{token}@{rest}"))
                }
                None => Remote::parse(&base),
            },
            None => Remote::parse(&base),
        }
    }

    fn repo_dir(&self, action: &ActionRef) -> PathBuf {
        self.cache
            .join(sanitize(&self.server))
            .join(&action.owner)
            .join(&action.repo)
    }

    /// The action's tree at its ref: from an override, the cache, or git (in that order).
    pub fn fetch(&self, action: &ActionRef) -> Result<Fetched, FetchError> {
        let inside = |root: &Path, commit: String, fetched: bool| {
            let path = match &action.path {
                Some(p) => root.join(p),
                None => root.to_path_buf(),
            };
            if !path.exists() {
                return Err(FetchError::NoPath {
                    action: action.to_string(),
                    path: action.path.clone().unwrap_or_default(),
                    repository: action.repository(),
                    commit,
                });
            }
            Ok(Fetched {
                path,
                commit,
                fetched,
            })
        };
        if let Some(local) = self.overrides.get(&action.pinned()) {
            return inside(local, "local".into(), false);
        }
        let repo_dir = self.repo_dir(action);
        if let Some(commit) = self.cached_commit(action, &repo_dir) {
            return inside(&repo_dir.join(&commit), commit, false);
        }
        if self.offline {
            return Err(FetchError::Offline {
                action: action.to_string(),
                cache: self.cache.display().to_string(),
            });
        }
        let _one_at_a_time = self
            .fetching
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(commit) = self.cached_commit(action, &repo_dir) {
            return inside(&repo_dir.join(&commit), commit, false);
        }
        let commit = self.git_fetch(action, &repo_dir)?;
        inside(&repo_dir.join(&commit), commit, true)
    }

    /// The commit the cache holds for the ref (a full SHA is its own resolution).
    fn cached_commit(&self, action: &ActionRef, repo_dir: &Path) -> Option<String> {
        let key = format!("{}@{}", repo_dir.display(), action.git_ref);
        if let Some(commit) = self.resolved.lock().ok()?.get(&key) {
            return Some(commit.clone());
        }
        let commit = if is_full_sha(&action.git_ref) {
            action.git_ref.to_ascii_lowercase()
        } else {
            std::fs::read_to_string(repo_dir.join("refs").join(sanitize(&action.git_ref)))
                .ok()?
                .trim()
                .to_string()
        };
        if !repo_dir.join(&commit).join(".tess-complete").exists() {
            return None;
        }
        if let Ok(mut resolved) = self.resolved.lock() {
            resolved.insert(key, commit.clone());
        }
        Some(commit)
    }

    fn git_fetch(&self, action: &ActionRef, repo_dir: &Path) -> Result<String, FetchError> {
        let remote = self.url(action);
        let git_error = |message: String| FetchError::Git {
            action: action.to_string(),
            url: Remote::display(&remote.url),
            message,
        };
        let cache_error = |e: std::io::Error| FetchError::Cache {
            action: action.to_string(),
            message: format!("{}: {e}", repo_dir.display()),
        };
        std::fs::create_dir_all(repo_dir.join("refs")).map_err(cache_error)?;
        // Fetched beside its final place and renamed in: a half-fetched tree is never seen,
        // and two processes fetching the same commit both end with the same tree.
        let scratch = tempfile::Builder::new()
            .prefix(".fetch-")
            .tempdir_in(repo_dir)
            .map_err(cache_error)?;
        let git_dir = scratch.path().join("git");
        let git_dir_str = git_dir.display().to_string();
        crate::git::run(scratch.path(), &["init", "-q", "--bare", &git_dir_str])
            .map_err(git_error)?;
        let fetch = |what: &str| {
            crate::git::run_remote(
                &git_dir,
                &remote,
                &[
                    "fetch",
                    "-q",
                    "--depth",
                    "1",
                    "--no-tags",
                    &remote.url,
                    what,
                ],
            )
        };
        if let Err(message) = fetch(&action.git_ref) {
            // A commit SHA the server does not serve by itself: fetch everything and look.
            if !is_full_sha(&action.git_ref) {
                return Err(git_error(short_git_message(&message)));
            }
            crate::git::run_remote(
                &git_dir,
                &remote,
                &[
                    "fetch",
                    "-q",
                    "--no-tags",
                    &remote.url,
                    "+refs/heads/*:refs/heads/*",
                    "+refs/tags/*:refs/tags/*",
                ],
            )
            .map_err(|_| git_error(short_git_message(&message)))?;
        }
        let wanted = if is_full_sha(&action.git_ref) {
            format!("{}^{{commit}}", action.git_ref)
        } else {
            "FETCH_HEAD^{commit}".to_string()
        };
        let commit = crate::git::run(&git_dir, &["rev-parse", "--verify", "-q", &wanted])
            .map_err(|_| git_error(format!("no commit {}", action.git_ref)))?;
        let tree = scratch.path().join("tree");
        std::fs::create_dir_all(&tree).map_err(cache_error)?;
        let tree_str = tree.display().to_string();
        crate::git::run(
            &git_dir,
            &[
                "--work-tree",
                &tree_str,
                "checkout",
                "-q",
                "-f",
                &commit,
                "--",
                ".",
            ],
        )
        .map_err(git_error)?;
        std::fs::write(tree.join(".tess-complete"), &commit).map_err(cache_error)?;
        let dest = repo_dir.join(&commit);
        if !dest.join(".tess-complete").exists() {
            let _ = std::fs::remove_dir_all(&dest);
            if let Err(e) = std::fs::rename(&tree, &dest)
                && !dest.join(".tess-complete").exists()
            {
                return Err(cache_error(e));
            }
        }
        if !is_full_sha(&action.git_ref) {
            let file = repo_dir.join("refs").join(sanitize(&action.git_ref));
            let partial = scratch.path().join("ref");
            std::fs::write(&partial, &commit).map_err(cache_error)?;
            std::fs::rename(&partial, &file).map_err(cache_error)?;
        }
        Ok(commit)
    }
}

/// `$XDG_CACHE_HOME/tess`, else `~/.cache/tess` (the tool cache and the actions cache).
pub(crate) fn user_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("tess");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache").join("tess"),
        None => std::env::temp_dir().join("tess-cache"),
    }
}

fn is_full_sha(git_ref: &str) -> bool {
    git_ref.len() == 40 && git_ref.chars().all(|c| c.is_ascii_hexdigit())
}

/// Safe as one path component (`https://github.com` → `https___github.com`).
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// git's last line (`fatal: couldn't find remote ref v9`), without the command echoed.
fn short_git_message(message: &str) -> String {
    message
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(message)
        .trim()
        .trim_start_matches("git fetch")
        .to_string()
}
