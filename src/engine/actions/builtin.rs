//! The built-in fast path for `actions/checkout` (of the run's own repository, which is the
//! workspace already), `actions/upload-artifact`, `actions/download-artifact` and
//! `actions/cache` (`/restore`, `/save`): no node process, no fetch, files kept in the run.

use super::{StepReturn, failed};
use crate::engine::job::{JobRun, JobState, file_name, workspace_relative};
use crate::exec::{Outcome, Stream};
use indexmap::IndexMap;
use std::path::{Path, PathBuf};

/// Work done after the job's steps (saving a cache).
pub(crate) struct CacheSave {
    key_dir: PathBuf,
    paths: Vec<PathBuf>,
}

impl CacheSave {
    pub(crate) fn run(&self, workspace: &Path, log: &mut dyn FnMut(&str)) {
        let _ = std::fs::remove_dir_all(&self.key_dir);
        for (i, p) in self.paths.iter().enumerate() {
            if p.exists() {
                let _ = copy_tree(p, &self.key_dir.join(i.to_string()));
            }
        }
        let shown = self
            .key_dir
            .strip_prefix(workspace)
            .unwrap_or(&self.key_dir);
        log(&format!("cache saved to {}", shown.display()));
    }
}

fn lines(value: Option<&String>) -> Vec<String> {
    value
        .map(|v| {
            v.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn upload(job: &JobRun, with: &IndexMap<String, String>, index: usize) -> StepReturn {
    let name = with
        .get("name")
        .cloned()
        .unwrap_or_else(|| "artifact".into());
    let dest = job.run_dir.join("artifacts").join(file_name(&name));
    let mut copied = 0;
    for p in lines(with.get("path")) {
        let src = workspace_relative(&job.workspace, &p);
        if !src.exists() {
            continue;
        }
        let rel = src
            .strip_prefix(&job.workspace)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| PathBuf::from(src.file_name().unwrap_or_default()));
        match copy_tree(&src, &dest.join(&rel)) {
            Ok(n) => copied += n,
            Err(e) => return failed(job, index, format!("upload-artifact: {e}")),
        }
    }
    if copied == 0 {
        let policy = with
            .get("if-no-files-found")
            .map(String::as_str)
            .unwrap_or("warn");
        let message = format!("upload-artifact: no files found for `{name}`");
        match policy {
            "error" => return failed(job, index, message),
            "ignore" => {}
            _ => job.log(
                Some(index),
                Stream::Stderr,
                &format!("##[warning]{message}"),
            ),
        }
    } else {
        job.log(
            Some(index),
            Stream::Stdout,
            &format!("uploaded {copied} file(s) as artifact `{name}`"),
        );
    }
    (
        Outcome::Success,
        IndexMap::from([("artifact-id".to_string(), name)]),
        Vec::new(),
    )
}

pub(super) fn download(job: &JobRun, with: &IndexMap<String, String>, index: usize) -> StepReturn {
    let root = job.run_dir.join("artifacts");
    let target = with.get("path").map_or_else(
        || job.workspace.clone(),
        |p| workspace_relative(&job.workspace, p),
    );
    let result = match with.get("name") {
        Some(name) => {
            let src = root.join(file_name(name));
            if !src.is_dir() {
                return failed(
                    job,
                    index,
                    format!("download-artifact: artifact `{name}` not found in this run"),
                );
            }
            copy_tree(&src, &target)
        }
        None => std::fs::read_dir(&root).map(|entries| {
            entries
                .flatten()
                .map(|e| copy_tree(&e.path(), &target.join(e.file_name())).unwrap_or(0))
                .sum()
        }),
    };
    match result {
        Ok(n) => {
            job.log(
                Some(index),
                Stream::Stdout,
                &format!("downloaded {n} file(s) to {}", target.display()),
            );
            (
                Outcome::Success,
                IndexMap::from([("download-path".to_string(), target.display().to_string())]),
                Vec::new(),
            )
        }
        Err(e) => failed(job, index, format!("download-artifact: {e}")),
    }
}

/// Whether `actions/checkout` would check out what the workspace already is: the run's own
/// repository at the run's commit, into the workspace itself.
pub(super) fn checkout_is_the_workspace(
    with: &IndexMap<String, String>,
    ctx: &crate::engine::context::RunContext,
) -> bool {
    let field = |name: &str| {
        ctx.shared
            .get("github")
            .map(|g| g.property(name).to_display())
            .unwrap_or_default()
    };
    let same = |input: &str, own: String| {
        with.get(input)
            .is_none_or(|v| v.is_empty() || v.eq_ignore_ascii_case(&own))
    };
    same("repository", field("repository"))
        && same("ref", field("sha"))
        && with.get("path").is_none_or(|p| p.is_empty() || p == ".")
}

pub(super) fn checkout(job: &JobRun, index: usize) -> StepReturn {
    job.log(
        Some(index),
        Stream::Stdout,
        &format!(
            "checkout (built-in): the workspace {} is the run's checkout",
            job.workspace.display()
        ),
    );
    (Outcome::Success, IndexMap::new(), Vec::new())
}

/// `actions/cache` (restore now, save after the job), `/restore` or `/save` (now).
pub(super) fn cache(
    job: &JobRun,
    with: &IndexMap<String, String>,
    index: usize,
    state: &mut JobState,
    action: &str,
) -> StepReturn {
    let Some(key) = with.get("key").filter(|k| !k.is_empty()) else {
        return failed(job, index, "cache: `key` is required".into());
    };
    let root = job.workspace.join(".tess").join("cache");
    let paths: Vec<PathBuf> = lines(with.get("path"))
        .iter()
        .map(|p| workspace_relative(&job.workspace, p))
        .collect();
    let exact = root.join(file_name(key));
    if action == "actions/cache/save" {
        let save = CacheSave {
            key_dir: exact,
            paths,
        };
        save.run(&job.workspace, &mut |msg| {
            job.log(Some(index), Stream::Stdout, msg);
        });
        return (Outcome::Success, IndexMap::new(), Vec::new());
    }
    let save = action == "actions/cache";
    let mut hit = None;
    if exact.is_dir() {
        hit = Some((exact.clone(), true));
    } else {
        for prefix in lines(with.get("restore-keys")) {
            let prefix = file_name(&prefix);
            let newest = std::fs::read_dir(&root).ok().and_then(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
            });
            if let Some(entry) = newest {
                hit = Some((entry.path(), false));
                break;
            }
        }
    }
    if let Some((dir, _)) = &hit {
        for (i, p) in paths.iter().enumerate() {
            let _ = copy_tree(&dir.join(i.to_string()), p);
        }
        job.log(
            Some(index),
            Stream::Stdout,
            &format!(
                "cache restored from {}",
                dir.file_name().unwrap_or_default().to_string_lossy()
            ),
        );
    } else {
        job.log(
            Some(index),
            Stream::Stdout,
            &format!("cache not found for key `{key}`"),
        );
    }
    let exact_hit = hit.as_ref().is_some_and(|(_, exact)| *exact);
    if save && !exact_hit {
        state.post.push(super::PostStep::CacheSave(CacheSave {
            key_dir: exact,
            paths,
        }));
    }
    // As the real action: `true`/`false` for an exact / restore-key match, empty on a miss.
    let cache_hit = if hit.is_some() {
        exact_hit.to_string()
    } else {
        String::new()
    };
    (
        Outcome::Success,
        IndexMap::from([("cache-hit".to_string(), cache_hit)]),
        Vec::new(),
    )
}

/// Copies a file or directory tree; returns the number of files copied.
pub(super) fn copy_tree(src: &Path, dest: &Path) -> std::io::Result<usize> {
    if src.is_file() {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(src, dest)?;
        return Ok(1);
    }
    let mut count = 0;
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        count += copy_tree(&entry.path(), &dest.join(entry.file_name()))?;
    }
    Ok(count)
}
