//! Building one configuration tree: local includes merged in GitLab's order (included files
//! first, the including file last, hashes deep-merged), then `!reference` tags and `extends`
//! resolved. Errors stay located in the file and line they come from.

use crate::diag::{Diagnostic, Pos, did_you_mean};
use crate::spec::yaml::{Node, Style, Value};
use indexmap::IndexMap;
use std::collections::HashMap;

/// Reads included files: `(display path, bytes)` for a path relative to the project root
/// (or, with `project`, to that project's local checkout), or every file matching a glob.
/// `None` when nothing matches or the project is not available.
pub type IncludeSource<'a> = dyn FnMut(Option<&str>, &str) -> Option<Vec<(String, Vec<u8>)>> + 'a;

/// Decides a conditional include (its `rules:` node) for the event being planned:
/// `Err(reason)` leaves the whole file out, as GitLab does.
pub type IncludeRules<'a> = dyn Fn(&Node) -> Result<(), String> + 'a;

/// The merged configuration, plus what could not be resolved offline.
pub struct Resolved {
    pub root: Node,
    /// Every file that contributed, indexed by [`Pos::origin`] (0 is the main file).
    pub files: Vec<String>,
    /// Per file (same index): the `rules:` of the includes it came through. Jobs defined in
    /// the file are added only when each of them matches.
    pub gates: Vec<Vec<Node>>,
    /// Includes that name a remote, project, template or component (not resolvable offline).
    pub unresolved: Vec<String>,
    /// Conditional includes left out for the event, with why.
    pub excluded: Vec<String>,
}

const MAX_INCLUDE_DEPTH: usize = 150;
const MAX_EXTENDS_DEPTH: usize = 11;

/// Deep merge: mappings merge key by key (`over` wins); anything else is replaced.
pub(super) fn deep_merge(base: &Node, over: &Node) -> Node {
    match (&base.value, &over.value) {
        (Value::Map(b), Value::Map(o)) if over.tag.is_none() => {
            let mut entries = b.clone();
            for (k, v) in o {
                match entries.iter_mut().find(|(bk, _)| bk.scalar() == k.scalar()) {
                    Some((_, existing)) => *existing = deep_merge(existing, v),
                    None => entries.push((k.clone(), v.clone())),
                }
            }
            Node {
                value: Value::Map(entries),
                ..over.clone()
            }
        }
        _ => over.clone(),
    }
}

fn empty_map(pos: Pos) -> Node {
    Node {
        value: Value::Map(Vec::new()),
        pos,
        tag: None,
        style: Style::Collection,
    }
}

/// Resolves includes, `!reference` and `extends` of a parsed root document.
pub fn resolve(
    file: &str,
    root: Node,
    source: &mut IncludeSource,
    admit: Option<&IncludeRules>,
    variables: Option<&IndexMap<String, String>>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Resolved {
    let mut includer = Includer {
        source,
        admit,
        variables,
        diagnostics,
        unresolved: Vec::new(),
        excluded: Vec::new(),
        stack: vec![file.to_string()],
        files: vec![file.to_string()],
        gates: vec![Vec::new()],
    };
    let merged = includer.merge(file, root, &[]);
    let Includer {
        unresolved,
        excluded,
        files,
        gates,
        diagnostics,
        ..
    } = includer;
    let incomplete = !unresolved.is_empty();
    let mut refs = References {
        root: &merged,
        files: &files,
        incomplete,
    };
    let referenced = refs.resolve(&merged, diagnostics, 0);
    let root = resolve_extends(&files, referenced, diagnostics, incomplete);
    Resolved {
        root,
        files,
        gates,
        unresolved,
        excluded,
    }
}

/// Walks `include:` recursively; owns what the walk accumulates.
struct Includer<'a, 's> {
    source: &'a mut IncludeSource<'s>,
    /// Set when loading for one event: conditional includes are decided while merging.
    admit: Option<&'a IncludeRules<'s>>,
    /// The variables GitLab expands in include paths (predefined and pipeline variables,
    /// not the file's own `variables:`), when the event is known.
    variables: Option<&'a IndexMap<String, String>>,
    diagnostics: &'a mut Vec<Diagnostic>,
    unresolved: Vec<String>,
    excluded: Vec<String>,
    stack: Vec<String>,
    files: Vec<String>,
    /// Per file (by origin): the `rules:` of the includes it came through.
    gates: Vec<Vec<Node>>,
}

impl Includer<'_, '_> {
    /// The document merged with everything it includes; `gate` are the include rules the
    /// document itself came through.
    fn merge(&mut self, file: &str, root: Node, gate: &[Node]) -> Node {
        let Value::Map(entries) = &root.value else {
            return root;
        };
        let Some(include) = root.get("include").cloned() else {
            return root;
        };
        let mut merged = empty_map(root.pos);
        let items: Vec<Node> = match &include.value {
            Value::Seq(items) => items.clone(),
            _ => vec![include.clone()],
        };
        for item in items {
            for (display, parsed, item_gate) in self.fetch(file, &item, gate) {
                self.stack.push(display.clone());
                let included = self.merge(&display, parsed, &item_gate);
                self.stack.pop();
                merged = deep_merge(&merged, &included);
            }
        }
        let own = Node {
            value: Value::Map(
                entries
                    .iter()
                    .filter(|(k, _)| k.scalar() != Some("include"))
                    .cloned()
                    .collect(),
            ),
            ..root.clone()
        };
        deep_merge(&merged, &own)
    }

    /// The documents one `include:` entry brings in, each with the rules that gate it.
    fn fetch(&mut self, file: &str, item: &Node, gate: &[Node]) -> Vec<(String, Node, Vec<Node>)> {
        let (kind, target) = match (&item.value, item.scalar()) {
            (Value::Scalar(_), Some(s))
                if s.starts_with("http://") || s.starts_with("https://") =>
            {
                ("remote", s.to_string())
            }
            (Value::Scalar(_), Some(s)) => ("local", s.to_string()),
            (Value::Map(_), _) => {
                let found = ["local", "remote", "project", "template", "component"]
                    .into_iter()
                    .find_map(|k| {
                        item.get(k)
                            .and_then(Node::scalar)
                            .map(|v| (k, v.to_string()))
                    });
                match found {
                    Some(f) => f,
                    None => {
                        let msg = "include needs one of `local`, `remote`, `project`, `template` or `component`";
                        self.diagnostics
                            .push(Diagnostic::error(file, item.pos, msg));
                        return Vec::new();
                    }
                }
            }
            _ => {
                self.diagnostics.push(Diagnostic::error(
                    file,
                    item.pos,
                    "include must be a path or a mapping",
                ));
                return Vec::new();
            }
        };
        let target = match self.variables {
            Some(vars) if target.contains('$') => crate::trigger::gitlab::expand(&target, vars),
            _ => target,
        };
        // For a known event, GitLab decides the include before fetching it; without one,
        // everything is merged and the rules gate the jobs the file defines.
        if let (Some(admit), Some(rules)) = (self.admit, item.get("rules"))
            && let Err(reason) = admit(rules)
        {
            self.excluded.push(format!("{kind}: {target}: {reason}"));
            return Vec::new();
        }
        // `project:` includes name one or more `file:`s of another project.
        let project_files: Vec<String> = match (kind, item.get("file")) {
            ("project", Some(f)) => match &f.value {
                Value::Seq(items) => items
                    .iter()
                    .filter_map(|i| i.scalar().map(String::from))
                    .collect(),
                _ => f.scalar().map(String::from).into_iter().collect(),
            },
            _ => Vec::new(),
        };
        let project_files: Vec<String> = match self.variables {
            Some(vars) => project_files
                .iter()
                .map(|f| crate::trigger::gitlab::expand(f, vars))
                .collect(),
            None => project_files,
        };
        let mut found: Option<Vec<(String, Vec<u8>)>> = None;
        if kind == "project" && !project_files.is_empty() {
            let mut all = Vec::new();
            for f in &project_files {
                match (self.source)(Some(&target), f.trim_start_matches('/')) {
                    Some(files) => all.extend(files),
                    None => {
                        all.clear();
                        break;
                    }
                }
            }
            found = (!all.is_empty()).then_some(all);
        }
        if kind != "local" && found.is_none() {
            let what = format!("{kind}: {target}");
            let d = Diagnostic::warning(file, item.pos, format!("include `{what}` cannot be resolved offline; its jobs and templates are missing from this plan"))
                .with_help("resolve `project:` includes from local checkouts with --include-dir DIR (DIR/<project>/<file>), or vendor the file and use `local:`");
            self.diagnostics.push(d);
            self.unresolved.push(what);
            return Vec::new();
        }
        let Some(found) = found.or_else(|| (self.source)(None, target.trim_start_matches('/')))
        else {
            let msg = format!("local include `{target}` does not exist");
            self.diagnostics
                .push(Diagnostic::error(file, item.pos, msg));
            return Vec::new();
        };
        // Jobs defined in an included file are gated by the include's `rules`.
        let mut item_gate = gate.to_vec();
        item_gate.extend(item.get("rules").cloned());
        let mut out = Vec::new();
        for (display, bytes) in found {
            if self.stack.contains(&display) || self.stack.len() > MAX_INCLUDE_DEPTH {
                let msg = format!(
                    "include cycle: `{display}` includes itself (via {})",
                    self.stack.join(" -> ")
                );
                self.diagnostics
                    .push(Diagnostic::error(file, item.pos, msg));
                continue;
            }
            let origin = self.files.len().min(u16::MAX as usize) as u16;
            self.files.push(display.clone());
            self.gates.push(item_gate.clone());
            let (parsed, header, mut diags) = crate::spec::yaml::parse_with_header(
                &display,
                &bytes,
                crate::spec::yaml::Flavor::GitLab,
                origin,
            );
            self.diagnostics.append(&mut diags);
            let Some(parsed) = parsed else { continue };
            let parsed = with_inputs(
                &display,
                parsed,
                header.as_ref(),
                Given::Include(file, item),
                self.diagnostics,
            );
            if parsed.as_map().is_none() && !parsed.is_null() {
                self.diagnostics.push(Diagnostic::error(
                    &display,
                    parsed.pos,
                    "an included file must be a mapping",
                ));
                continue;
            }
            out.push((display, parsed, item_gate.clone()));
        }
        out
    }
}

/// Where a file's input values come from.
pub enum Given<'a> {
    /// An `include:` entry (in `file`) and its `inputs:`.
    Include(&'a str, &'a Node),
    /// The pipeline's inputs (the main file); `None` when no pipeline is being created
    /// (validation), where a mandatory input without a value is only a warning.
    Pipeline(Option<&'a IndexMap<String, String>>),
}

/// A file's configuration with its `spec:inputs` given their values and `$[[ inputs.X ]]`
/// interpolated, before it is merged (GitLab's order).
pub fn with_inputs(
    display: &str,
    body: Node,
    header: Option<&Node>,
    given: Given<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Node {
    let declared = header
        .and_then(|h| h.get("spec"))
        .and_then(|s| s.get("inputs"));
    let specs = declared
        .map(|d| super::inputs::parse_specs(display, d, false, diagnostics))
        .unwrap_or_default();
    let mut values_given: IndexMap<String, (serde_json::Value, Pos)> = IndexMap::new();
    let (at_file, at) = match &given {
        Given::Include(file, item) => {
            if let Some(map) = item.get("inputs").and_then(Node::as_map) {
                for (k, v) in map {
                    let name = k.scalar().unwrap_or_default().to_string();
                    values_given.insert(name, (v.to_json(), k.pos));
                }
            }
            (*file, item.pos)
        }
        Given::Pipeline(pipeline) => {
            for (name, text) in pipeline.iter().flat_map(|m| m.iter()) {
                // Pipeline variables share the flag: only declared names are inputs.
                if let Some(spec) = specs.get(name) {
                    values_given.insert(
                        name.clone(),
                        (super::inputs::parse_given(spec, text), Pos::new(1, 1)),
                    );
                }
            }
            (display, Pos::new(1, 1))
        }
    };
    if specs.is_empty() && values_given.is_empty() && !body_has_inputs(&body) {
        return body;
    }
    let mut found = Vec::new();
    let values = super::inputs::values(at_file, &specs, &values_given, at, &mut found);
    if let Given::Pipeline(None) = given {
        for d in &mut found {
            if d.message.ends_with("is mandatory and was not given") {
                d.severity = crate::diag::Severity::Warning;
            }
        }
    }
    diagnostics.append(&mut found);
    super::inputs::interpolate(display, &body, &values, diagnostics)
}

/// Whether any scalar of the tree holds an inputs interpolation block.
fn body_has_inputs(node: &Node) -> bool {
    match &node.value {
        Value::Scalar(s) => s.contains("$[[") && s.contains("inputs."),
        Value::Seq(items) => items.iter().any(body_has_inputs),
        Value::Map(entries) => entries
            .iter()
            .any(|(k, v)| body_has_inputs(k) || body_has_inputs(v)),
    }
}

/// `!reference [job, key, ...]` resolution against the merged tree.
struct References<'a> {
    root: &'a Node,
    files: &'a [String],
    incomplete: bool,
}

/// The file a position belongs to.
fn file_of(files: &[String], pos: Pos) -> &str {
    files
        .get(pos.origin as usize)
        .or(files.first())
        .map_or("", String::as_str)
}

impl References<'_> {
    /// Replaces `!reference` tags with the referenced value; inside a list, a referenced
    /// list is spliced in (one level), as GitLab does.
    fn resolve(&mut self, node: &Node, diagnostics: &mut Vec<Diagnostic>, depth: usize) -> Node {
        if node.tag.as_deref() == Some("!reference") {
            return match self.lookup(node, diagnostics) {
                Some(target) if depth < 10 => self.resolve(&target, diagnostics, depth + 1),
                Some(_) => {
                    diagnostics.push(Diagnostic::error(
                        file_of(self.files, node.pos),
                        node.pos,
                        "`!reference` nested more than 10 levels deep",
                    ));
                    Node::null(node.pos)
                }
                None => Node::null(node.pos),
            };
        }
        match &node.value {
            Value::Scalar(_) => node.clone(),
            Value::Map(entries) => Node {
                value: Value::Map(
                    entries
                        .iter()
                        .map(|(k, v)| (k.clone(), self.resolve(v, diagnostics, depth)))
                        .collect(),
                ),
                ..node.clone()
            },
            Value::Seq(items) => {
                let mut out = Vec::new();
                for item in items {
                    let resolved = self.resolve(item, diagnostics, depth);
                    match (&resolved.value, item.tag.as_deref()) {
                        (Value::Seq(inner), Some("!reference")) => {
                            out.extend(inner.iter().cloned());
                        }
                        _ if item.tag.as_deref() == Some("!reference") && resolved.is_null() => {}
                        _ => out.push(resolved),
                    }
                }
                Node {
                    value: Value::Seq(out),
                    ..node.clone()
                }
            }
        }
    }

    fn lookup(&self, node: &Node, diagnostics: &mut Vec<Diagnostic>) -> Option<Node> {
        let path: Vec<&str> = node
            .as_seq()
            .map(|items| items.iter().filter_map(Node::scalar).collect())
            .unwrap_or_default();
        if path.is_empty() {
            diagnostics.push(Diagnostic::error(
                file_of(self.files, node.pos),
                node.pos,
                "`!reference` needs a list: `!reference [job, key]`",
            ));
            return None;
        }
        let mut current = self.root;
        for (i, segment) in path.iter().enumerate() {
            match current.get(segment) {
                Some(next) => current = next,
                None => {
                    let keys: Vec<&str> = current
                        .as_map()
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|(k, _)| k.scalar())
                        .collect();
                    let help = did_you_mean(segment, keys.iter().copied())
                        .map(|s| format!("did you mean `{s}`?"));
                    let msg = format!(
                        "`!reference [{}]`: `{segment}` not found",
                        path[..=i].join(", ")
                    );
                    let file = file_of(self.files, node.pos);
                    let mut d = if self.incomplete {
                        Diagnostic::warning(
                            file,
                            node.pos,
                            format!(
                                "{msg} (it may come from an include that cannot be resolved offline)"
                            ),
                        )
                    } else {
                        Diagnostic::error(file, node.pos, msg)
                    };
                    d.help = help;
                    diagnostics.push(d);
                    return None;
                }
            }
        }
        Some(current.clone())
    }
}

/// Expands `extends` (a name or a list; multi-level; later parents override earlier ones;
/// the job itself overrides all), with cycle detection. Each entry is expanded once.
fn resolve_extends(
    files: &[String],
    root: Node,
    diagnostics: &mut Vec<Diagnostic>,
    incomplete: bool,
) -> Node {
    let Value::Map(entries) = &root.value else {
        return root;
    };
    let mut ext = Extends {
        root: &root,
        files,
        incomplete,
        done: HashMap::new(),
        chain: Vec::new(),
    };
    let out: Vec<(Node, Node)> = entries
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                ext.expand(k.scalar().unwrap_or_default(), v, diagnostics),
            )
        })
        .collect();
    Node {
        value: Value::Map(out),
        ..root.clone()
    }
}

struct Extends<'a> {
    root: &'a Node,
    files: &'a [String],
    incomplete: bool,
    done: HashMap<String, Node>,
    chain: Vec<String>,
}

impl Extends<'_> {
    fn expand(&mut self, name: &str, job: &Node, diagnostics: &mut Vec<Diagnostic>) -> Node {
        if let Some(done) = self.done.get(name) {
            return done.clone();
        }
        let Some(extends) = job.get("extends") else {
            return job.clone();
        };
        if self.chain.iter().any(|c| c == name) || self.chain.len() >= MAX_EXTENDS_DEPTH {
            let msg = if self.chain.len() >= MAX_EXTENDS_DEPTH {
                format!("`extends` nests deeper than {MAX_EXTENDS_DEPTH} levels at `{name}`")
            } else {
                format!("`extends` cycle: {} -> {name}", self.chain.join(" -> "))
            };
            diagnostics.push(Diagnostic::error(
                file_of(self.files, extends.pos),
                extends.pos,
                msg,
            ));
            return job.clone();
        }
        let parents: Vec<(String, Pos)> = match &extends.value {
            Value::Seq(items) => items
                .iter()
                .filter_map(|i| i.scalar().map(|s| (s.to_string(), i.pos)))
                .collect(),
            Value::Scalar(s) => vec![(s.clone(), extends.pos)],
            Value::Map(_) => {
                diagnostics.push(Diagnostic::error(
                    file_of(self.files, extends.pos),
                    extends.pos,
                    "`extends` must be a job name or a list of names",
                ));
                return job.clone();
            }
        };
        self.chain.push(name.to_string());
        let mut base = empty_map(job.pos);
        for (parent, pos) in parents {
            match self.root.get(&parent) {
                Some(p) => {
                    let expanded = self.expand(&parent, p, diagnostics);
                    base = deep_merge(&base, &expanded);
                }
                None => {
                    let names: Vec<&str> = self
                        .root
                        .as_map()
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|(k, _)| k.scalar())
                        .collect();
                    let help = did_you_mean(&parent, names.iter().copied())
                        .map(|s| format!("did you mean `{s}`?"));
                    let msg = format!("`{name}` extends `{parent}`, which does not exist");
                    let file = file_of(self.files, pos);
                    let mut d = if self.incomplete {
                        Diagnostic::warning(
                            file,
                            pos,
                            format!(
                                "{msg} (it may come from an include that cannot be resolved offline)"
                            ),
                        )
                    } else {
                        Diagnostic::error(file, pos, msg)
                    };
                    d.help = help;
                    diagnostics.push(d);
                }
            }
        }
        self.chain.pop();
        let own = Node {
            value: Value::Map(
                job.as_map()
                    .unwrap_or_default()
                    .iter()
                    .filter(|(k, _)| k.scalar() != Some("extends"))
                    .cloned()
                    .collect(),
            ),
            ..job.clone()
        };
        let expanded = deep_merge(&base, &own);
        self.done.insert(name.to_string(), expanded.clone());
        expanded
    }
}
