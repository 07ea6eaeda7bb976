//! Makes a directory hold exactly what another holds, rewriting only what differs. A file
//! unchanged since the last pass (same inode, size, mode and change time, from the same
//! unchanged source) is not even read — the check `git status` makes with its index.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

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

/// The files a directory held after its last pass, each with its source's stamp.
#[derive(Debug, Default)]
pub(super) struct Stamps {
    files: HashMap<PathBuf, (Stamp, Stamp)>,
    /// When the pass ended: a file whose change time is not older may have changed within
    /// the same clock tick, so it is compared.
    finished_at: Option<(i64, i64)>,
}

/// One pass of syncs; `finish` turns it into the stamps for the next one.
pub(super) struct Pass<'a> {
    last: &'a Stamps,
    next: HashMap<PathBuf, (Stamp, Stamp)>,
}

impl Stamps {
    pub(super) fn pass(&self) -> Pass<'_> {
        Pass {
            last: self,
            next: HashMap::new(),
        }
    }
}

impl Pass<'_> {
    /// Makes directory `to` hold exactly what `from` holds — files with their contents
    /// and permissions, directories, symlinks — leaving the top-level names in `keep`
    /// alone. Symlinks in `to` are never followed.
    pub(super) fn tree(&mut self, from: &Path, to: &Path, keep: &[&str]) -> std::io::Result<()> {
        match std::fs::symlink_metadata(to) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                std::fs::remove_file(to)?;
                std::fs::create_dir(to)?;
            }
            Err(_) => std::fs::create_dir(to)?,
        }
        let mut wanted: HashSet<OsString> = HashSet::new();
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            let name = entry.file_name();
            if keep.iter().any(|k| name == *k) {
                continue;
            }
            let (source, target) = (entry.path(), to.join(&name));
            let kind = entry.file_type()?;
            if kind.is_dir() {
                if std::fs::symlink_metadata(&target).is_ok_and(|m| !m.is_dir()) {
                    std::fs::remove_file(&target)?;
                }
                self.tree(&source, &target, &[])?;
            } else if kind.is_symlink() {
                let link = std::fs::read_link(&source)?;
                if std::fs::read_link(&target).ok().as_ref() != Some(&link) {
                    remove_any(&target)?;
                    std::os::unix::fs::symlink(&link, &target)?;
                }
            } else {
                self.file(&source, &target)?;
            }
            wanted.insert(name);
        }
        for entry in std::fs::read_dir(to)? {
            let name = entry?.file_name();
            if !wanted.contains(&name) && !keep.iter().any(|k| name == *k) {
                remove_any(&to.join(name))?;
            }
        }
        Ok(())
    }

    /// Makes file `to` a copy of file `from`, keeping its inode when it is already a file.
    pub(super) fn file(&mut self, from: &Path, to: &Path) -> std::io::Result<()> {
        let source = std::fs::metadata(from)?;
        let source_stamp = Stamp::of(&source);
        let same_shape = |m: &std::fs::Metadata| {
            m.is_file() && m.len() == source.len() && m.mode() == source.mode()
        };
        let current = std::fs::symlink_metadata(to).ok();
        let unchanged = match &current {
            Some(m) if same_shape(m) => {
                let stamp = Stamp::of(m);
                let trusted = self.last.files.get(to) == Some(&(stamp, source_stamp))
                    && self.last.finished_at.is_some_and(|at| stamp.ctime < at);
                trusted || std::fs::read(to)? == std::fs::read(from)?
            }
            _ => false,
        };
        if !unchanged {
            if current.as_ref().is_some_and(|m| !m.is_file()) {
                remove_any(to)?;
            }
            // Rewrites an existing file in place (same inode) and sets the permissions.
            std::fs::copy(from, to)?;
        }
        let stamp = Stamp::of(&std::fs::symlink_metadata(to)?);
        self.next.insert(to.to_path_buf(), (stamp, source_stamp));
        Ok(())
    }

    /// Ends the pass.
    pub(super) fn finish(self) -> Stamps {
        Stamps {
            files: self.next,
            finished_at: Some(file_clock_now()),
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
