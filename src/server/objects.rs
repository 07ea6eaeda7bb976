//! Reads commits, trees and blobs straight from a mirror's object store through a
//! long-lived `git cat-file --batch` per mirror: planning a GitHub push spawns nothing.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// Readers kept at most (one per mirror, so one per repository planned lately).
const READERS_KEPT: usize = 32;

/// Runs `read` with the mirror's reader, started on first use. A reader whose process
/// failed is started again once (git finds objects fetched after it started: a miss
/// rescans the packs and loose objects).
pub(super) fn with_objects<T>(
    mirror: &Path,
    mut read: impl FnMut(&mut Objects) -> Result<T, String>,
) -> Result<T, String> {
    type Slot = Arc<Mutex<Option<Objects>>>;
    static READERS: OnceLock<Mutex<HashMap<PathBuf, Slot>>> = OnceLock::new();
    let slot = {
        let mut readers = READERS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if readers.len() >= READERS_KEPT && !readers.contains_key(mirror) {
            // The ones in use live on with their users.
            readers.clear();
        }
        Arc::clone(readers.entry(mirror.to_path_buf()).or_default())
    };
    let mut held = slot.lock().unwrap_or_else(PoisonError::into_inner);
    let mut failed = None;
    for _ in 0..2 {
        let objects = match held.as_mut() {
            Some(objects) => objects,
            None => held.insert(Objects::open(mirror)?),
        };
        match read(objects) {
            Ok(value) => return Ok(value),
            Err(e) => {
                *held = None;
                failed = Some(e);
            }
        }
    }
    Err(failed.unwrap_or_default())
}

/// One `git cat-file --batch` on a mirror; every read is a line out and an object back.
pub(super) struct Objects {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

/// A tree entry: its mode (`100644`, `40000`, …), name and object id (hex).
struct Entry {
    mode: String,
    name: String,
    id: String,
}

impl Objects {
    fn open(mirror: &Path) -> Result<Objects, String> {
        let mut child = Command::new("git")
            .arg("-C")
            .arg(mirror)
            .args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("git cat-file: {e}"))?;
        let input = child.stdin.take().ok_or("git cat-file: no input")?;
        let output = BufReader::new(child.stdout.take().ok_or("git cat-file: no output")?);
        Ok(Objects {
            child,
            input,
            output,
        })
    }

    /// The object `name` (an id or `rev:path`) with its type, `None` when it is missing.
    fn read(&mut self, name: &str) -> Result<Option<(String, Vec<u8>)>, String> {
        let broken = |e: std::io::Error| format!("git cat-file: {e}");
        if name.contains('\n') {
            return Ok(None);
        }
        writeln!(self.input, "{name}").map_err(broken)?;
        self.input.flush().map_err(broken)?;
        let mut header = String::new();
        self.output.read_line(&mut header).map_err(broken)?;
        // `<id> <type> <size>`, or `<name> missing` / `<name> ambiguous`.
        let mut fields = header.trim_end().rsplitn(3, ' ');
        let (Some(size), Some(kind)) = (fields.next(), fields.next()) else {
            return Err(format!("git cat-file: unexpected answer {header:?}"));
        };
        let Ok(size) = size.parse::<usize>() else {
            return Ok(None);
        };
        let mut body = vec![0; size + 1];
        self.output.read_exact(&mut body).map_err(broken)?;
        body.pop();
        Ok(Some((kind.to_string(), body)))
    }

    /// The subject of the commit `rev` names (its first paragraph on one line, as `%s`
    /// gives it; a tag is peeled), `None` when there is no such commit in the mirror.
    pub(super) fn commit_subject(&mut self, rev: &str) -> Result<Option<String>, String> {
        match self.read(&format!("{rev}^{{commit}}"))? {
            Some((kind, body)) if kind == "commit" => {
                let text = String::from_utf8_lossy(&body);
                let message = text.split_once("\n\n").map_or("", |(_, m)| m);
                let subject: Vec<&str> = message
                    .lines()
                    .take_while(|l| !l.trim().is_empty())
                    .map(str::trim)
                    .collect();
                Ok(Some(subject.join(" ")))
            }
            _ => Ok(None),
        }
    }

    /// The entries of the tree at `rev:path`; empty when there is no such directory.
    fn tree(&mut self, rev: &str, path: &str) -> Result<Vec<Entry>, String> {
        let Some((kind, body)) = self.read(&format!("{rev}:{path}"))? else {
            return Ok(Vec::new());
        };
        if kind != "tree" {
            return Ok(Vec::new());
        }
        // `<mode> <name>\0<raw id>`; the id is 20 bytes (SHA-1) or 32 (SHA-256).
        let id_len = if rev.len() == 64 { 32 } else { 20 };
        let mut entries = Vec::new();
        let mut rest = &body[..];
        while let Some(nul) = rest.iter().position(|b| *b == 0) {
            let head = String::from_utf8_lossy(&rest[..nul]);
            let Some((mode, name)) = head.split_once(' ') else {
                break;
            };
            let Some(raw) = rest.get(nul + 1..nul + 1 + id_len) else {
                break;
            };
            entries.push(Entry {
                mode: mode.to_string(),
                name: name.to_string(),
                id: raw.iter().map(|b| format!("{b:02x}")).collect(),
            });
            rest = &rest[nul + 1 + id_len..];
        }
        Ok(entries)
    }

    /// Writes the regular files directly in `rev:dir` under `into/dir` (not its
    /// subdirectories: GitHub reads workflows only from the directory itself).
    pub(super) fn write_dir(&mut self, rev: &str, dir: &str, into: &Path) -> Result<(), String> {
        let entries = self.tree(rev, dir)?;
        if entries.is_empty() {
            return Ok(());
        }
        let target = into.join(dir);
        std::fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
        for entry in entries {
            if !entry.mode.starts_with("100") || entry.name.contains('/') {
                continue;
            }
            if let Some((_, bytes)) = self.read(&entry.id)? {
                let file = target.join(&entry.name);
                std::fs::write(&file, bytes).map_err(|e| format!("{}: {e}", file.display()))?;
            }
        }
        Ok(())
    }
}

impl Drop for Objects {
    fn drop(&mut self) {
        // Closing its input ends it; reap it so no zombie is left.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
