//! File I/O before planning: finds pipeline files, reads them (size-limited), picks the
//! front end, and resolves local reusable workflows (`uses: ./.github/workflows/x.yml`).

use crate::diag::{Diagnostic, Pos};
use crate::spec::{self, Pipeline};
use crate::trigger::Event;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Everything loaded for one command: pipelines, diagnostics and the sources to render them.
#[derive(Default)]
pub struct Loaded {
    pub pipelines: Vec<Pipeline>,
    pub diagnostics: Vec<Diagnostic>,
    pub sources: HashMap<String, String>,
    /// Where remote reusable workflows (`owner/repo/.github/workflows/x.yml@ref`) are
    /// fetched from; without it they stay one opaque job that cannot run.
    pub remote: Option<Arc<crate::fetch::Source>>,
}

impl Loaded {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    pub fn render_diagnostics(&self) -> String {
        self.diagnostics
            .iter()
            .map(|d| d.render(self.sources.get(&d.file).map(String::as_str)))
            .collect()
    }

    /// [`Loaded::render_diagnostics`] with rustc's styles, for a terminal (`anstream`).
    pub fn render_diagnostics_styled(&self) -> String {
        self.diagnostics
            .iter()
            .map(|d| d.render_styled(self.sources.get(&d.file).map(String::as_str)))
            .collect()
    }
}

/// The default places to look, relative to the current directory.
pub fn default_paths() -> Vec<PathBuf> {
    [".github/workflows", "pipelines", ".gitlab-ci.yml"]
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect()
}

/// Expands directories into their `*.yml`/`*.yaml` files (sorted); files pass through.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml"))
                })
                .collect();
            files.sort();
            out.extend(files);
        } else if path.is_file() {
            out.push(path.clone());
        } else {
            return Err(format!("{}: no such file or directory", path.display()));
        }
    }
    Ok(out)
}

/// GitLab's dialect: by name (`.gitlab-ci.yml`, `foo.gitlab-ci.yml`), else by content — a
/// file outside `.github/workflows` with no `on:`/`jobs:` at the top but GitLab's keys
/// (`stages`, `include`, `default`, …, or jobs with a `script`), such as `ci/pipeline.yml`.
fn is_gitlab(path: &Path) -> bool {
    let by_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".gitlab-ci.yml") || n.ends_with(".gitlab-ci.yaml"));
    if by_name {
        return true;
    }
    let in_workflows = path
        .parent()
        .is_some_and(|d| d.ends_with(".github/workflows"));
    !in_workflows && std::fs::read_to_string(path).is_ok_and(|text| looks_like_gitlab(&text))
}

/// Top-level keys of a YAML file, read line by line (no parse: this only picks a dialect).
fn looks_like_gitlab(text: &str) -> bool {
    let shape = Shape::of(text);
    !shape.github_keys && shape.gitlab_keys
}

/// What the top level of a file shows, read line by line.
struct Shape {
    /// `on:` or `jobs:` at the top.
    github_keys: bool,
    /// GitLab's global keywords at the top, or jobs with a `script:`.
    gitlab_keys: bool,
}

impl Shape {
    fn of(text: &str) -> Shape {
        const GITLAB: [&str; 8] = [
            "stages",
            "include",
            "default",
            "workflow",
            "before_script",
            "after_script",
            "image",
            "services",
        ];
        let mut shape = Shape {
            github_keys: false,
            gitlab_keys: false,
        };
        for line in text.lines() {
            if line.starts_with("  script:") || line.starts_with("    script:") {
                shape.gitlab_keys = true;
            }
            let Some(first) = line.chars().next() else {
                continue;
            };
            if first.is_whitespace() || first == '#' || first == '-' {
                continue;
            }
            if let Some((key, _)) = line.split_once(':') {
                let key = key.trim().trim_matches(['"', '\'']);
                shape.github_keys |= matches!(key, "on" | "jobs" | "true");
                shape.gitlab_keys |= GITLAB.contains(&key);
            }
        }
        shape
    }
}

/// How to read the files given: by name and content (the default), or all in one dialect
/// (`--dialect`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// GitLab: local checkouts of other projects for `include: project:`.
    pub include_dir: Option<&'a Path>,
    pub dialect: Option<spec::Dialect>,
}

pub fn load(paths: &[PathBuf]) -> Result<Loaded, String> {
    load_with(paths, None, None)
}

/// As [`load`]; `include_dir` holds local checkouts of other projects, for GitLab's
/// `include: project:` (`DIR/<group>/<project>/<file>`). With an `event`, GitLab's
/// conditional includes are decided for it (a left-out file contributes nothing).
pub fn load_with(
    paths: &[PathBuf],
    include_dir: Option<&Path>,
    event: Option<&Event>,
) -> Result<Loaded, String> {
    let options = Options {
        include_dir,
        dialect: None,
    };
    load_remote(paths, options, event, None)
}

/// As [`load_with`], fetching remote reusable workflows from `remote`.
pub fn load_remote(
    paths: &[PathBuf],
    options: Options<'_>,
    event: Option<&Event>,
    remote: Option<Arc<crate::fetch::Source>>,
) -> Result<Loaded, String> {
    let mut loaded = Loaded {
        remote,
        ..Loaded::default()
    };
    for path in discover(paths)? {
        let gitlab = match options.dialect {
            Some(dialect) => dialect == spec::Dialect::GitLab,
            None => is_gitlab(&path),
        };
        if gitlab {
            if let Some(p) = load_gitlab(&path, &mut loaded, options.include_dir, event) {
                loaded.pipelines.push(p);
            }
            continue;
        }
        if let Some(p) = load_workflow(&path, &mut loaded, &mut Vec::new()) {
            loaded.pipelines.push(p);
        }
    }
    Ok(loaded)
}

/// Reads a file, refusing (without reading it) one over the size limit.
fn read_limited(path: &Path, display: &str) -> Result<Vec<u8>, Diagnostic> {
    use std::io::Read;
    let fail = |msg: String| Diagnostic::error(display, Pos::new(1, 1), msg);
    if let Ok(meta) = std::fs::metadata(path)
        && meta.len() > spec::yaml::MAX_FILE_BYTES as u64
    {
        return Err(spec::yaml::too_large(display, meta.len()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| {
            f.take(spec::yaml::MAX_FILE_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
        })
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    if bytes.len() > spec::yaml::MAX_FILE_BYTES {
        let size = std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len());
        return Err(spec::yaml::too_large(display, size));
    }
    Ok(bytes)
}

/// Reads a pipeline file and keeps its text for rendering diagnostics.
fn read_source(path: &Path, loaded: &mut Loaded) -> Option<(String, Vec<u8>)> {
    let display = path.display().to_string();
    match read_limited(path, &display) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            loaded.sources.insert(display.clone(), text);
            Some((display, bytes))
        }
        Err(d) => {
            loaded.diagnostics.push(d);
            None
        }
    }
}

fn load_workflow(path: &Path, loaded: &mut Loaded, stack: &mut Vec<PathBuf>) -> Option<Pipeline> {
    let (display, bytes) = read_source(path, loaded)?;
    let default_name = repo_root(path)
        .and_then(|root| {
            Some(
                path.canonicalize()
                    .ok()?
                    .strip_prefix(root)
                    .ok()?
                    .to_path_buf(),
            )
        })
        .unwrap_or_else(|| path.file_name().map(PathBuf::from).unwrap_or_default());
    let default_name = default_name.display().to_string();
    let (pipeline, mut diagnostics) = spec::parse_github(&display, &bytes, &default_name);
    if let Some(first) = diagnostics.iter_mut().find(|d| d.is_error())
        && Shape::of(&String::from_utf8_lossy(&bytes)).gitlab_keys
    {
        const HINT: &str = "this file looks like GitLab CI: read it as GitLab with \
                            `--dialect gitlab` (or name it `.gitlab-ci.yml`)";
        first.help = Some(match first.help.take() {
            Some(help) => format!("{help}\n  = help: {HINT}"),
            None => HINT.into(),
        });
    }
    tracing::debug!(file = %path.display(), bytes = bytes.len(), diagnostics = diagnostics.len(), "loaded");
    loaded.diagnostics.append(&mut diagnostics);
    let mut pipeline = pipeline?;
    stack.push(path.canonicalize().unwrap_or_else(|_| path.to_path_buf()));
    resolve_calls(path, &mut pipeline, loaded, stack);
    stack.pop();
    Some(pipeline)
}

fn load_gitlab(
    path: &Path,
    loaded: &mut Loaded,
    include_dir: Option<&Path>,
    event: Option<&Event>,
) -> Option<Pipeline> {
    let (display, bytes) = read_source(path, loaded)?;
    let abs = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let root =
        repo_root(path).unwrap_or_else(|| abs.parent().map(Path::to_path_buf).unwrap_or_default());
    let name = path
        .file_name()
        .map_or_else(|| display.clone(), |n| n.to_string_lossy().into_owned());
    // `rules:exists`: does any file of the repository match?
    let files = std::cell::OnceCell::new();
    let exists = |glob: &str| -> bool {
        let all: &Vec<String> = files.get_or_init(|| repo_files(&root));
        crate::trigger::glob::Pattern::new(glob.trim_start_matches('/'))
            .is_ok_and(|p| all.iter().any(|f| p.is_match(f)))
    };
    let mut sources = Vec::new();
    let mut read_include = |project: Option<&str>, rel: &str| -> Option<Vec<(String, Vec<u8>)>> {
        let base = match project {
            None => root.clone(),
            // `project:` includes come from a local checkout under --include-dir.
            Some(p) => include_dir.map(|d| d.join(p.trim_matches('/')))?,
        };
        let mut out = Vec::new();
        for file in include_files(&base, rel) {
            let shown = match project {
                None => file
                    .strip_prefix(&root)
                    .unwrap_or(&file)
                    .display()
                    .to_string(),
                Some(_) => file.display().to_string(),
            };
            let bytes = read_limited(&file, &shown).ok()?;
            sources.push((shown.clone(), String::from_utf8_lossy(&bytes).into_owned()));
            out.push((shown, bytes));
        }
        (!out.is_empty()).then_some(out)
    };
    // `changes:compare_to`: each ref diffed once.
    let compared = std::cell::RefCell::new(HashMap::new());
    let changed_since = |git_ref: &str| -> Result<Vec<String>, String> {
        compared
            .borrow_mut()
            .entry(git_ref.to_string())
            .or_insert_with(|| crate::git::changed_since(&root, git_ref))
            .clone()
    };
    let repo = spec::GitLabRepository {
        includes: &mut read_include,
        exists: Some(&exists),
        changed_since: Some(&changed_since),
        event,
    };
    let (pipeline, mut diagnostics) = spec::parse_gitlab(&display, &bytes, &name, repo);
    loaded.sources.extend(sources);
    loaded.diagnostics.append(&mut diagnostics);
    pipeline
}

/// Every file under `root` (relative paths), skipping `.git` and `.tess`.
fn repo_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            if name == ".git" || name == ".tess" {
                continue;
            }
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// A local include: one file, or every file a glob (`*`, `**`) matches, in path order.
fn include_files(root: &Path, rel: &str) -> Vec<PathBuf> {
    if !rel.contains('*') {
        let file = root.join(rel);
        return if file.is_file() {
            vec![file]
        } else {
            Vec::new()
        };
    }
    let Ok(pattern) = crate::trigger::glob::Pattern::new(rel) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = repo_files(root)
        .into_iter()
        .filter(|f| pattern.is_match(f))
        .map(|f| root.join(f))
        .collect();
    found.sort();
    found
}

/// The repository root: the nearest ancestor with `.git`, else the parent of `.github`.
fn repo_root(file: &Path) -> Option<PathBuf> {
    let abs = file.canonicalize().ok()?;
    let mut dir = abs.parent();
    while let Some(d) = dir {
        if d.join(".git").exists() {
            return Some(d.to_path_buf());
        }
        dir = d.parent();
    }
    abs.ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == ".github"))
        .and_then(Path::parent)
        .map(Path::to_path_buf)
}

fn resolve_calls(
    path: &Path,
    pipeline: &mut Pipeline,
    loaded: &mut Loaded,
    stack: &mut Vec<PathBuf>,
) {
    let file = pipeline.file.clone();
    for job in pipeline.jobs.values_mut() {
        // Freshly parsed, so not shared yet.
        let job = Arc::make_mut(job);
        let Some(call) = &mut job.call else { continue };
        let target = if call.uses.starts_with("./") {
            let Some(root) = repo_root(path) else {
                let msg = format!(
                    "cannot resolve `{}`: this file is not inside a repository checkout",
                    call.uses
                );
                loaded
                    .diagnostics
                    .push(Diagnostic::warning(&file, job.pos, msg));
                continue;
            };
            root.join(&call.uses[2..])
        } else {
            // Remote: fetched when a source is given, else one opaque job (that fails when
            // it runs, saying why).
            let Some(source) = loaded.remote.clone() else {
                continue;
            };
            let fetched = crate::fetch::ActionRef::parse(&call.uses)
                .filter(|r| {
                    r.path
                        .as_deref()
                        .is_some_and(|p| p.starts_with(".github/workflows/"))
                })
                .ok_or_else(|| {
                    format!(
                        "`{}` is not a reusable workflow reference ({{owner}}/{{repo}}/.github/workflows/{{file}}@{{ref}})",
                        call.uses
                    )
                })
                .and_then(|r| source.fetch(&r).map_err(|e| e.to_string()));
            match fetched {
                Ok(fetched) => fetched.path,
                Err(msg) => {
                    loaded
                        .diagnostics
                        .push(Diagnostic::error(&file, job.pos, msg));
                    continue;
                }
            }
        };
        let canonical = target.canonicalize().unwrap_or_else(|_| target.clone());
        if stack.contains(&canonical) {
            let msg = format!(
                "reusable workflow cycle: `{}` calls itself (directly or indirectly)",
                call.uses
            );
            loaded
                .diagnostics
                .push(Diagnostic::error(&file, job.pos, msg));
            continue;
        }
        if !target.is_file() {
            let msg = format!("reusable workflow `{}` does not exist", call.uses);
            loaded
                .diagnostics
                .push(Diagnostic::error(&file, job.pos, msg));
            continue;
        }
        let Some(callee) = load_workflow(&target, loaded, stack) else {
            continue;
        };
        if !callee.on.events.contains_key("workflow_call") {
            let msg = format!(
                "`{}` is not a reusable workflow: its `on` has no `workflow_call`",
                call.uses
            );
            loaded
                .diagnostics
                .push(Diagnostic::error(&file, job.pos, msg));
            continue;
        }
        for name in call.with.keys() {
            if !callee.inputs.contains_key(name) {
                let msg = format!("`{}` has no input `{name}`", call.uses);
                loaded
                    .diagnostics
                    .push(Diagnostic::error(&file, job.pos, msg));
            }
        }
        for (name, input) in &callee.inputs {
            if input.required && input.default.is_none() && !call.with.contains_key(name) {
                let msg = format!("`{}` requires input `{name}`", call.uses);
                loaded
                    .diagnostics
                    .push(Diagnostic::error(&file, job.pos, msg));
            }
        }
        call.workflow = Some(Box::new(callee));
    }
}
