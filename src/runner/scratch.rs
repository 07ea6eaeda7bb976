//! A slot's scratch directory — the run directory a job's event payload, `RUNNER_TEMP` and
//! file-command files live in — reused job after job: each job starts with it holding just
//! the engine's empty file-command files, put back by a pass like a workspace's restore
//! instead of made and deleted per job (its ten inodes were 7% of a one-step job's runner time).

use super::sync::{Listing, Stamps, remove_any};
use std::path::{Path, PathBuf};

/// What every job's scratch starts as (made once per runner).
pub(super) struct Template {
    dir: PathBuf,
    listing: Listing,
}

impl Template {
    /// Makes the template in `dir`: `run/` with the lease's job's temporary directory
    /// holding its file-command files, empty.
    pub(super) fn make(dir: PathBuf) -> std::io::Result<Template> {
        let _ = std::fs::remove_dir_all(&dir);
        let temp = crate::engine::job_temp_dir(&dir.join("run"), 0);
        std::fs::create_dir_all(&temp)?;
        for name in crate::exec::FILE_COMMAND_FILES {
            std::fs::write(temp.join(name), "")?;
        }
        let listing = Listing::read(&dir)?;
        Ok(Template { dir, listing })
    }
}

/// One slot's scratch directory and what its last restore left.
pub(super) struct Scratch {
    root: PathBuf,
    stamps: Stamps,
}

impl Scratch {
    pub(super) fn new(root: PathBuf) -> Scratch {
        Scratch {
            root,
            stamps: Stamps::default(),
        }
    }

    /// Makes the scratch hold exactly the template again; returns the job's run directory.
    pub(super) fn restore(&mut self, template: &Template) -> Result<PathBuf, String> {
        let restore = |root: &Path, last: &Stamps| -> std::io::Result<Stamps> {
            let mut pass = last.pass();
            pass.tree(&template.listing, &template.dir, root, &[])?;
            Ok(pass.finish())
        };
        let stamps = restore(&self.root, &self.stamps).or_else(|e| {
            // What the last job left cannot be undone in place (a directory without write
            // permission, say): start over, elsewhere when it cannot even be removed.
            tracing::warn!(scratch = %self.root.display(), error = %e, "scratch not reusable");
            if remove_any(&self.root).is_err() {
                let fresh = format!("{}-{}", self.root.display(), crate::token::random_hex(4));
                self.root = PathBuf::from(fresh);
            }
            restore(&self.root, &Stamps::default())
        });
        self.stamps = stamps.map_err(|e| format!("job scratch {}: {e}", self.root.display()))?;
        Ok(self.root.join("run"))
    }
}

/// The scratch directory of slot `slot` under `parent`.
pub(super) fn slot_dir(parent: &Path, slot: usize) -> PathBuf {
    parent.join(format!("slot-{slot}"))
}
