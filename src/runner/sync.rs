//! Makes a directory hold exactly what another holds, rewriting only what differs. A file
//! unchanged since the last pass (same inode, size, mode and change time, from the same
//! unchanged source) is not even read — the check `git status` makes with its index — and
//! a directory unchanged since then is not listed again.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What a file looked like: the change time cannot be set by a job (unlike the
/// modification time), and a file replaced by another has another inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    mode: u32,
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            ino: m.ino(),
            len: m.len(),
            mode: m.mode(),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// What a source directory holds, read once per pass — or once per runner for a source
/// that never changes (a commit's checkout).
#[derive(Debug)]
pub(super) struct Listing {
    /// Which reading this is: a directory synced from the same listing as last time, and
    /// unchanged since, needs no look for extra entries.
    id: u64,
    entries: Vec<(OsString, Entry)>,
}

#[derive(Debug)]
enum Entry {
    Dir(Listing),
    File(Stamp),
    Symlink(PathBuf),
}

impl Listing {
    /// Reads `dir` and everything under it (symlinks are not followed).
    pub(super) fn read(dir: &Path) -> std::io::Result<Listing> {
        static READINGS: AtomicU64 = AtomicU64::new(0);
        let id = READINGS.fetch_add(1, Ordering::Relaxed);
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let listed = if kind.is_dir() {
                Entry::Dir(Listing::read(&entry.path())?)
            } else if kind.is_symlink() {
                Entry::Symlink(std::fs::read_link(entry.path())?)
            } else {
                Entry::File(Stamp::of(&std::fs::metadata(entry.path())?))
            };
            entries.push((entry.file_name(), listed));
        }
        Ok(Listing { id, entries })
    }
}

/// The files and directories a directory held after its last pass, each file with its
/// source's stamp.
#[derive(Debug, Default)]
pub(super) struct Stamps {
    files: HashMap<PathBuf, (Stamp, Stamp)>,
    /// Each directory with the listing it was synced from.
    dirs: HashMap<PathBuf, (Stamp, u64)>,
    /// When the pass ended: a file whose change time is not older may have changed within
    /// the same clock tick, so it is compared.
    finished_at: Option<(i64, i64)>,
}

impl Stamps {
    pub(super) fn pass(&self) -> Pass<'_> {
        Pass {
            last: self,
            next: Stamps::default(),
        }
    }

    /// Whether a file or directory stamped `now` is as the last pass left it, stamped
    /// `last` (and not changed since within the clock tick that pass ended in).
    fn unchanged(&self, now: Stamp, last: Option<&Stamp>) -> bool {
        last == Some(&now) && self.finished_at.is_some_and(|at| now.ctime < at)
    }
}

/// One pass of syncs; `finish` turns it into the stamps for the next one.
pub(super) struct Pass<'a> {
    last: &'a Stamps,
    next: Stamps,
}

impl Pass<'_> {
    /// Makes directory `to` hold exactly what `from` (listed as `listing`) holds — files
    /// with their contents and permissions, directories, symlinks — leaving the top-level
    /// names in `keep` alone. Symlinks in `to` are never followed. A directory whose change
    /// time is as the last pass left it had no entry added, removed or renamed since, so
    /// only its entries are looked at, not the directory itself.
    pub(super) fn tree(
        &mut self,
        listing: &Listing,
        from: &Path,
        to: &Path,
        keep: &[&str],
    ) -> std::io::Result<()> {
        let mut changed = false;
        let stamp = match std::fs::symlink_metadata(to) {
            Ok(m) if m.is_dir() => Some(Stamp::of(&m)),
            Ok(_) => {
                std::fs::remove_file(to)?;
                std::fs::create_dir(to)?;
                None
            }
            Err(_) => {
                std::fs::create_dir(to)?;
                None
            }
        };
        let last = self.last.dirs.get(to).filter(|(_, id)| *id == listing.id);
        let as_left = stamp.is_some_and(|s| self.last.unchanged(s, last.map(|(s, _)| s)));
        for (name, entry) in &listing.entries {
            if keep.iter().any(|k| name == *k) {
                continue;
            }
            let (source, target) = (from.join(name), to.join(name));
            match entry {
                Entry::Dir(inner) => {
                    if !as_left && std::fs::symlink_metadata(&target).is_ok_and(|m| !m.is_dir()) {
                        std::fs::remove_file(&target)?;
                    }
                    self.tree(inner, &source, &target, &[])?;
                }
                Entry::Symlink(link) => {
                    if std::fs::read_link(&target).ok().as_ref() != Some(link) {
                        remove_any(&target)?;
                        std::os::unix::fs::symlink(link, &target)?;
                        changed = true;
                    }
                }
                Entry::File(source_stamp) => {
                    changed |= self.copy(*source_stamp, &source, &target)?;
                }
            }
        }
        if !as_left {
            let wanted: HashSet<&OsString> = listing.entries.iter().map(|(n, _)| n).collect();
            for entry in std::fs::read_dir(to)? {
                let name = entry?.file_name();
                if !wanted.contains(&name) && !keep.iter().any(|k| name == *k) {
                    remove_any(&to.join(name))?;
                    changed = true;
                }
            }
        }
        let stamp = match stamp {
            Some(s) if !changed => s,
            _ => Stamp::of(&std::fs::symlink_metadata(to)?),
        };
        self.next.dirs.insert(to.to_path_buf(), (stamp, listing.id));
        Ok(())
    }

    /// Makes file `to` a copy of file `from`, keeping its inode when it is already a file.
    pub(super) fn file(&mut self, from: &Path, to: &Path) -> std::io::Result<()> {
        let source = Stamp::of(&std::fs::metadata(from)?);
        self.copy(source, from, to).map(drop)
    }

    /// [`Pass::file`] for a source stamped `source`; whether an entry was made or removed.
    fn copy(&mut self, source: Stamp, from: &Path, to: &Path) -> std::io::Result<bool> {
        let current = std::fs::symlink_metadata(to).ok();
        let unchanged = match &current {
            Some(m) if m.is_file() && m.len() == source.len && m.mode() == source.mode => {
                let stamp = Stamp::of(m);
                let last = self.last.files.get(to);
                if last.is_some_and(|(_, s)| *s == source)
                    && self.last.unchanged(stamp, last.map(|(t, _)| t))
                {
                    self.next.files.insert(to.to_path_buf(), (stamp, source));
                    return Ok(false);
                }
                std::fs::read(to)? == std::fs::read(from)?
            }
            _ => false,
        };
        let made = current.as_ref().is_none_or(|m| !m.is_file());
        if !unchanged {
            if current.as_ref().is_some_and(|m| !m.is_file()) {
                remove_any(to)?;
            }
            // Rewrites an existing file in place (same inode) and sets the permissions.
            std::fs::copy(from, to)?;
        }
        let stamp = Stamp::of(&std::fs::symlink_metadata(to)?);
        self.next.files.insert(to.to_path_buf(), (stamp, source));
        Ok(made)
    }

    /// Ends the pass.
    pub(super) fn finish(self) -> Stamps {
        Stamps {
            finished_at: Some(file_clock_now()),
            ..self.next
        }
    }
}

/// Now, by the clock file timestamps are taken from (the coarse real-time clock): a file
/// changed after this has a change time at least this.
fn file_clock_now() -> (i64, i64) {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass and nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut now) };
    (now.tv_sec, now.tv_nsec)
}

/// Removes a file, symlink or directory tree (without following symlinks); absent is fine.
pub(super) fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
