//! Workspaces for jobs: a mirror per repository and a checkout per commit are kept in the
//! work directory; each job gets a fresh copy of the commit's checkout (a private work tree,
//! without a `git clone` per job).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct Checkouts {
    dir: PathBuf,
    /// One lock per mirror and per commit: concurrent jobs of a run share the work.
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

/// Checkouts not used for this long are removed when a new one is made.
const KEEP_UNUSED: std::time::Duration = std::time::Duration::from_secs(600);

fn git(dir: &Path, args: &[&str]) -> Result<(), String> {
    crate::git::run(dir, args).map(drop)
}

impl Checkouts {
    pub fn new(dir: PathBuf) -> Checkouts {
        Checkouts {
            dir,
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self, name: &str) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(locks.entry(name.to_string()).or_default())
    }

    /// Fills `into` (which must not exist) with the files of `sha` and a `.git` at it.
    pub fn workspace(&self, clone_url: &str, sha: &str, into: &Path) -> Result<(), String> {
        if !sha.bytes().all(|b| b.is_ascii_hexdigit()) || sha.len() < 7 {
            return Err(format!("`{sha}` is not a commit id"));
        }
        let (tree, mirror) = self.tree(clone_url, sha)?;
        let copy = || -> std::io::Result<()> {
            copy_tree(&tree, into, true)?;
            // A small `.git` of its own: HEAD at the commit, objects borrowed from the
            // checkout's (which borrows the mirror's), the index to start from, and a copy
            // of the repository's refs (GitLab's `changes:compare_to` names branches).
            let git = into.join(".git");
            std::fs::create_dir_all(git.join("objects/info"))?;
            copy_tree(&mirror.join("refs"), &git.join("refs"), false)?;
            if mirror.join("packed-refs").exists() {
                std::fs::copy(mirror.join("packed-refs"), git.join("packed-refs"))?;
            }
            std::fs::write(git.join("HEAD"), format!("{sha}\n"))?;
            std::fs::copy(tree.join(".git/config"), git.join("config"))?;
            std::fs::copy(tree.join(".git/index"), git.join("index"))?;
            let mut alternates = std::fs::read_to_string(tree.join(".git/objects/info/alternates"))
                .unwrap_or_default();
            alternates.push_str(&format!("{}\n", tree.join(".git/objects").display()));
            std::fs::write(git.join("objects/info/alternates"), alternates)
        };
        copy().map_err(|e| format!("copying the checkout: {e}"))
    }

    /// The cached checkout of `sha` (made once) and the mirror it came from.
    fn tree(&self, clone_url: &str, sha: &str) -> Result<(PathBuf, PathBuf), String> {
        let url_key = &crate::token::sha256_hex(clone_url.as_bytes())[..16];
        let tree = self.dir.join("trees").join(format!("{url_key}-{sha}"));
        let lock = self.lock(&format!("tree-{url_key}-{sha}"));
        let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
        let mirror = self.dir.join("mirrors").join(format!("{url_key}.git"));
        if tree.join(".git").exists() {
            touch(&tree);
            return Ok((tree, mirror));
        }
        let mirror = self.mirror(clone_url, url_key, sha)?;
        let parent = self.dir.join("trees");
        std::fs::create_dir_all(&parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        self.evict(&parent);
        let tmp = parent.join(format!(".tmp-{}", crate::token::random_hex(4)));
        let made = (|| {
            let mirror = mirror.to_str().ok_or("the work directory is not UTF-8")?;
            let tmp_name = tmp.to_str().ok_or("the work directory is not UTF-8")?;
            git(
                &parent,
                &[
                    "clone",
                    "--quiet",
                    "--shared",
                    "--no-checkout",
                    mirror,
                    tmp_name,
                ],
            )?;
            git(&tmp, &["checkout", "--quiet", "--detach", sha])?;
            std::fs::rename(&tmp, &tree).map_err(|e| e.to_string())
        })();
        if made.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        made.map(|()| (tree, mirror))
    }

    /// A mirror of the repository holding `sha` (fetched when it does not yet).
    fn mirror(&self, clone_url: &str, key: &str, sha: &str) -> Result<PathBuf, String> {
        let mirror = self.dir.join("mirrors").join(format!("{key}.git"));
        let lock = self.lock(&format!("mirror-{key}"));
        let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
        if !mirror.join("HEAD").exists() {
            std::fs::create_dir_all(self.dir.join("mirrors")).map_err(|e| e.to_string())?;
            let target = mirror.to_str().ok_or("the work directory is not UTF-8")?;
            git(
                &self.dir,
                &["clone", "--quiet", "--mirror", clone_url, target],
            )?;
        } else if git(&mirror, &["cat-file", "-e", &format!("{sha}^{{commit}}")]).is_err() {
            git(&mirror, &["fetch", "--quiet", "--prune", "origin"])?;
        }
        Ok(mirror)
    }

    fn evict(&self, parent: &Path) {
        let now = std::time::SystemTime::now();
        for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > KEEP_UNUSED);
            let name = entry.file_name();
            // Trees in use are locked; skip them rather than wait.
            let key = format!("tree-{}", name.to_string_lossy());
            let lock = self.lock(&key);
            if old && let Ok(_held) = lock.try_lock() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn touch(path: &Path) {
    let _ = std::fs::File::open(path).and_then(|f| f.set_modified(std::time::SystemTime::now()));
}

/// Copies a directory tree: files (with their permissions), directories and symlinks;
/// `skip_git` leaves out a top-level `.git`.
fn copy_tree(from: &Path, to: &Path, skip_git: bool) -> std::io::Result<()> {
    std::fs::create_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if skip_git && entry.file_name() == ".git" {
            continue;
        }
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target, false)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
