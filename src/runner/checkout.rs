//! Workspaces for jobs: a mirror per repository and a checkout per commit are kept in the
//! work directory; a job gets a workspace from a pool and it is first made to hold exactly
//! the commit's files (what GitHub's and GitLab's runners do with their build directories).

use super::sync::{Listing, Stamps, remove_any};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct Checkouts {
    dir: PathBuf,
    /// One lock per mirror and per commit: concurrent jobs of a run share the work.
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Workspaces not in use (with what their files looked like), per repository; the
    /// number names new ones.
    idle: Mutex<(HashMap<String, Vec<IdleWorkspace>>, u64)>,
    /// What the checkouts and the mirrors' refs hold, listed once: a checkout never
    /// changes, and a mirror's refs change only when [`Checkouts::mirror`] fetches.
    listings: Mutex<HashMap<PathBuf, Arc<Listing>>>,
}

type IdleWorkspace = (PathBuf, Stamps);

/// A workspace lent to one job; it goes back to the pool when dropped.
pub struct Workspace<'a> {
    pub path: PathBuf,
    stamps: Stamps,
    repo_key: String,
    pool: &'a Checkouts,
}

impl Drop for Workspace<'_> {
    fn drop(&mut self) {
        let mut idle = self
            .pool
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        idle.0
            .entry(std::mem::take(&mut self.repo_key))
            .or_default()
            .push((
                std::mem::take(&mut self.path),
                std::mem::take(&mut self.stamps),
            ));
    }
}

/// Checkouts not used for this long are removed when a new one is made.
const KEEP_UNUSED: std::time::Duration = std::time::Duration::from_secs(600);

fn git(dir: &Path, args: &[&str]) -> Result<(), String> {
    crate::git::run(dir, args).map(drop)
}

impl Checkouts {
    pub fn new(dir: PathBuf) -> Checkouts {
        // Workspaces are this process's own: what an earlier one left is removed.
        let _ = std::fs::remove_dir_all(dir.join("workspaces"));
        Checkouts {
            dir,
            locks: Mutex::new(HashMap::new()),
            idle: Mutex::new((HashMap::new(), 0)),
            listings: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self, name: &str) -> Arc<Mutex<()>> {
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(locks.entry(name.to_string()).or_default())
    }

    /// A workspace holding exactly the files of `sha` and a `.git` at it. Workspaces are
    /// reused rather than made and deleted per job: creating a tree's inodes costs more on
    /// ext4 than a short job itself, and a restore rewrites only what the last job changed.
    pub fn workspace(&self, clone_url: &str, sha: &str) -> Result<Workspace<'_>, String> {
        if !sha.bytes().all(|b| b.is_ascii_hexdigit()) || sha.len() < 7 {
            return Err(format!("`{sha}` is not a commit id"));
        }
        let repo_key = url_key(clone_url);
        let (tree, mirror) = self.tree(clone_url, &repo_key, sha)?;
        let reused = {
            let mut idle = self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            idle.0.get_mut(&repo_key).and_then(Vec::pop)
        };
        let template = tree.with_extension("git");
        let refs = mirror.join("refs");
        let restore = |path: &Path, last: &Stamps| -> std::io::Result<Stamps> {
            let mut pass = last.pass();
            pass.tree(&*self.listing(&tree)?, &tree, path, &[".git"])?;
            // A `.git` of its own: HEAD at the commit, objects borrowed from the checkout's
            // (which borrows the mirror's), the index to start from, and the repository's
            // refs as they are now (GitLab's `changes:compare_to` names branches).
            let git = path.join(".git");
            let listing = self.listing(&template)?;
            pass.tree(&listing, &template, &git, &["refs", "packed-refs"])?;
            let refs_listing = {
                // Not while a fetch changes them (see `mirror`).
                let lock = self.lock(&format!("mirror-{repo_key}"));
                let _held = lock
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                self.listing(&refs)?
            };
            pass.tree(&refs_listing, &refs, &git.join("refs"), &[])?;
            match std::fs::symlink_metadata(mirror.join("packed-refs")) {
                Ok(_) => pass.file(&mirror.join("packed-refs"), &git.join("packed-refs"))?,
                Err(_) => remove_any(&git.join("packed-refs"))?,
            }
            Ok(pass.finish())
        };
        if let Some((path, last)) = reused {
            match restore(&path, &last) {
                Ok(stamps) => return Ok(self.lend(path, stamps, repo_key)),
                // Something the last job left cannot be undone in place (say, a directory
                // without write permission): start that slot over elsewhere.
                Err(e) => {
                    tracing::warn!(workspace = %path.display(), error = %e, "workspace not reusable");
                }
            }
        }
        let path = {
            let mut idle = self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            idle.1 += 1;
            self.dir
                .join("workspaces")
                .join(format!("{repo_key}-{}", idle.1))
        };
        let _ = std::fs::remove_dir_all(&path);
        let stamps = std::fs::create_dir_all(&path)
            .and_then(|()| restore(&path, &Stamps::default()))
            .map_err(|e| format!("making the workspace {}: {e}", path.display()))?;
        Ok(self.lend(path, stamps, repo_key))
    }

    /// What `dir` holds, listed on first use (see `listings`).
    fn listing(&self, dir: &Path) -> std::io::Result<Arc<Listing>> {
        if let Some(listed) = self.listings().get(dir) {
            return Ok(Arc::clone(listed));
        }
        let listed = Arc::new(Listing::read(dir)?);
        self.listings()
            .insert(dir.to_path_buf(), Arc::clone(&listed));
        Ok(listed)
    }

    /// Drops the listings of `dir` and of what is under it (it is about to change).
    fn forget_listings(&self, dir: &Path) {
        self.listings().retain(|listed, _| !listed.starts_with(dir));
    }

    fn listings(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Arc<Listing>>> {
        self.listings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lend(&self, path: PathBuf, stamps: Stamps, repo_key: String) -> Workspace<'_> {
        Workspace {
            path,
            stamps,
            repo_key,
            pool: self,
        }
    }

    /// The cached checkout of `sha` (made once) and the mirror it came from.
    fn tree(
        &self,
        clone_url: &str,
        url_key: &str,
        sha: &str,
    ) -> Result<(PathBuf, PathBuf), String> {
        let tree = self.dir.join("trees").join(format!("{url_key}-{sha}"));
        let lock = self.lock(&format!("tree-{url_key}-{sha}"));
        let _held = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mirror = self.dir.join("mirrors").join(format!("{url_key}.git"));
        if tree.with_extension("git").exists() {
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
            let _ = std::fs::remove_dir_all(&tree);
            std::fs::rename(&tmp, &tree).map_err(|e| e.to_string())?;
            job_git_template(&tree, sha).map_err(|e| format!("{}: {e}", tree.display()))
        })();
        if made.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
            let _ = std::fs::remove_dir_all(tree.with_extension("git"));
        }
        made.map(|()| (tree, mirror))
    }

    /// A mirror of the repository holding `sha` (fetched when it does not yet).
    fn mirror(&self, clone_url: &str, key: &str, sha: &str) -> Result<PathBuf, String> {
        let mirror = self.dir.join("mirrors").join(format!("{key}.git"));
        let lock = self.lock(&format!("mirror-{key}"));
        let _held = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Credentials in the URL reach git through its environment, never its arguments.
        let remote = crate::git::Remote::parse(clone_url);
        if !mirror.join("HEAD").exists() {
            std::fs::create_dir_all(self.dir.join("mirrors")).map_err(|e| e.to_string())?;
            let target = mirror.to_str().ok_or("the work directory is not UTF-8")?;
            crate::git::run_remote(
                &self.dir,
                &remote,
                &["clone", "--quiet", "--mirror", &remote.url, target],
            )?;
        } else if git(&mirror, &["cat-file", "-e", &format!("{sha}^{{commit}}")]).is_err() {
            crate::git::run_remote(
                &mirror,
                &remote,
                &[
                    "fetch",
                    "--quiet",
                    "--prune",
                    &remote.url,
                    crate::git::MIRROR_REFSPEC,
                ],
            )?;
        }
        // Its refs may have changed: listed again by the next job (under this lock).
        self.forget_listings(&mirror);
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
            // A tree's `.git` template goes with it.
            if name.to_string_lossy().contains('.') {
                continue;
            }
            // Trees in use are locked; skip them rather than wait.
            let key = format!("tree-{}", name.to_string_lossy());
            let lock = self.lock(&key);
            if old && let Ok(_held) = lock.try_lock() {
                let _ = std::fs::remove_dir_all(entry.path());
                let _ = std::fs::remove_dir_all(entry.path().with_extension("git"));
                self.forget_listings(&entry.path());
                self.forget_listings(&entry.path().with_extension("git"));
            }
        }
    }
}

fn touch(path: &Path) {
    let _ = std::fs::File::open(path).and_then(|f| f.set_modified(std::time::SystemTime::now()));
}

fn url_key(clone_url: &str) -> String {
    crate::token::sha256_hex(clone_url.as_bytes())[..16].to_string()
}

/// The `.git` every workspace of a commit starts with (without refs, synced per job):
/// HEAD at the commit, the checkout's config and index, its objects as an alternate.
fn job_git_template(tree: &Path, sha: &str) -> std::io::Result<()> {
    let template = tree.with_extension("git");
    let tmp = tree.with_extension("git-tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.join("objects/info"))?;
    std::fs::write(tmp.join("HEAD"), format!("{sha}\n"))?;
    std::fs::copy(tree.join(".git/config"), tmp.join("config"))?;
    std::fs::copy(tree.join(".git/index"), tmp.join("index"))?;
    let mut alternates =
        std::fs::read_to_string(tree.join(".git/objects/info/alternates")).unwrap_or_default();
    alternates.push_str(&format!("{}\n", tree.join(".git/objects").display()));
    std::fs::write(tmp.join("objects/info/alternates"), alternates)?;
    std::fs::rename(&tmp, &template)
}
