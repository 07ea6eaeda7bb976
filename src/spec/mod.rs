//! Spec layer: YAML text → validated `Pipeline` with `file:line:col` diagnostics.
//! Pure: no file or network I/O happens here (see `load` for that).

pub mod action;
pub mod check;
pub mod github;
pub mod gitlab;
pub mod model;
pub mod yaml;

use crate::diag::Diagnostic;
pub use model::*;

/// Parses a GitHub-syntax workflow (also the native `pipelines/*.yml` syntax). Without a
/// `name:`, the pipeline is named `default_name` (GitHub uses the path in the repository).
pub fn parse_github(
    file: &str,
    bytes: &[u8],
    default_name: &str,
) -> (Option<Pipeline>, Vec<Diagnostic>) {
    let (root, mut diagnostics) = yaml::parse(file, bytes);
    let Some(root) = root else {
        return (None, diagnostics);
    };
    let source = std::str::from_utf8(bytes).unwrap_or_default();
    let mut checker = check::Checker::new(file, source);
    let pipeline = github::lower(&mut checker, &root, default_name);
    diagnostics.append(&mut checker.diagnostics);
    diagnostics.sort_by_key(|d| (d.line, d.col));
    drop_off_thread(root, bytes.len());
    (Some(pipeline), diagnostics)
}

/// Frees a large YAML tree on another thread: tens of thousands of small allocations are
/// not worth making the caller wait for; in a one-shot process it is not freed at all.
fn drop_off_thread(root: yaml::Node, source_len: usize) {
    if crate::allocator::is_one_shot() {
        std::mem::forget(root);
    } else if source_len > 64 * 1024 {
        std::thread::spawn(move || drop(root));
    }
}

/// What a `.gitlab-ci.yml` needs from its repository, asked through callbacks so that
/// this layer itself does no I/O.
pub struct GitLabRepository<'a, 's> {
    /// Reads local includes (paths relative to the project root, globs allowed).
    pub includes: &'a mut gitlab::IncludeSource<'s>,
    /// `rules:exists`: whether any file matches a glob.
    pub exists: Option<&'a dyn Fn(&str) -> bool>,
    /// `changes:compare_to`: the files changed since a ref.
    pub changed_since: Option<&'a check::ChangedSince<'a>>,
    /// The event to decide conditional includes for (`None`: merge them all).
    pub event: Option<&'a crate::trigger::Event>,
}

/// Parses a `.gitlab-ci.yml` with its includes.
pub fn parse_gitlab(
    file: &str,
    bytes: &[u8],
    default_name: &str,
    repo: GitLabRepository,
) -> (Option<Pipeline>, Vec<Diagnostic>) {
    let (root, header, mut diagnostics) =
        yaml::parse_with_header(file, bytes, yaml::Flavor::GitLab, 0);
    let Some(root) = root else {
        return (None, diagnostics);
    };
    let root = gitlab::with_inputs(
        file,
        root,
        header.as_ref(),
        gitlab::Given::Pipeline(repo.event.map(|e| &e.inputs)),
        &mut diagnostics,
    );
    let exists = repo.exists;
    let admit = repo
        .event
        .map(|event| move |rules: &yaml::Node| gitlab::include_admitted(rules, event, exists));
    let admit = admit.as_ref().map(|f| f as &gitlab::IncludeRules);
    // Include paths see the predefined variables and the pipeline's (a manual run's,
    // a schedule's), as GitLab expands them.
    let variables = repo.event.map(|event| {
        let mut vars = crate::trigger::gitlab::predefined(event);
        vars.extend(event.inputs.clone());
        vars
    });
    let resolved = gitlab::resolve(
        file,
        root,
        repo.includes,
        admit,
        variables.as_ref(),
        &mut diagnostics,
    );
    let source = std::str::from_utf8(bytes).unwrap_or_default();
    let mut checker = check::Checker::new(file, source);
    checker.files = resolved.files;
    checker.exists = exists;
    checker.changed_since = repo.changed_since;
    let pipeline = gitlab::lower(
        &mut checker,
        &resolved.root,
        default_name,
        !resolved.unresolved.is_empty(),
        &resolved.gates,
    );
    let mut pipeline = pipeline;
    pipeline.skipped_includes = resolved.excluded;
    diagnostics.append(&mut checker.diagnostics);
    diagnostics.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
    drop_off_thread(resolved.root, bytes.len());
    (Some(pipeline), diagnostics)
}
