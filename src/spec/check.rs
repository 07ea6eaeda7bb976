//! Shared helpers for front ends: typed access to YAML nodes that records located
//! diagnostics (wrong type, unknown key with did-you-mean, bad expression) instead of failing.

use super::yaml::{Node, Style, Value};
use crate::diag::{Diagnostic, Pos, did_you_mean};
use crate::expr::{self, Location, Segment};
use indexmap::IndexMap;

pub struct Checker<'a> {
    pub file: &'a str,
    pub source: &'a str,
    pub diagnostics: Vec<Diagnostic>,
    /// Files by [`Pos::origin`] when the tree merges several (GitLab includes).
    pub files: Vec<String>,
    /// Whether any file of the repository matches a glob (GitLab `rules:exists`), when the
    /// caller can tell.
    pub exists: Option<&'a dyn Fn(&str) -> bool>,
    /// Files changed since a ref (GitLab `changes:compare_to`), when the caller can tell.
    pub changed_since: Option<&'a ChangedSince<'a>>,
}

pub type ChangedSince<'a> = dyn Fn(&str) -> Result<Vec<String>, String> + 'a;

impl<'a> Checker<'a> {
    pub fn new(file: &'a str, source: &'a str) -> Self {
        Checker {
            file,
            source,
            diagnostics: Vec::new(),
            files: Vec::new(),
            exists: None,
            changed_since: None,
        }
    }

    /// The file a position is in.
    pub fn file_of(&self, pos: Pos) -> &str {
        self.files
            .get(pos.origin as usize)
            .map_or(self.file, String::as_str)
    }

    pub fn error(&mut self, pos: Pos, message: impl Into<String>) -> &mut Diagnostic {
        self.diagnostics
            .push(Diagnostic::error(self.file_of(pos), pos, message));
        self.diagnostics.last_mut().expect("just pushed")
    }

    pub fn warning(&mut self, pos: Pos, message: impl Into<String>) -> &mut Diagnostic {
        self.diagnostics
            .push(Diagnostic::warning(self.file_of(pos), pos, message));
        self.diagnostics.last_mut().expect("just pushed")
    }

    pub fn type_error(&mut self, node: &Node, what: &str, expected: &str) {
        let msg = format!("`{what}` must be {expected}, found {}", node.kind());
        self.error(node.pos, msg);
    }

    /// The entries of a mapping, reporting keys outside `allowed` (with a suggestion).
    pub fn map<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        allowed: &[&str],
    ) -> Vec<(&'n str, &'n Node, &'n Node)> {
        let Some(entries) = node.as_map() else {
            if !node.is_null() {
                self.type_error(node, what, "a mapping");
            }
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in entries {
            let key = k.scalar().unwrap_or_default();
            if !allowed.is_empty() && !allowed.contains(&key) {
                let width = key.chars().count();
                let msg = format!("unknown key `{key}` in {what}");
                let help = did_you_mean(key, allowed.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("valid keys: {}", allowed.join(", ")));
                let d = Diagnostic::error(self.file_of(k.pos), k.pos, msg)
                    .with_help(help)
                    .with_width(width);
                self.diagnostics.push(d);
                continue;
            }
            out.push((key, k, v));
        }
        out
    }

    /// A scalar as a string (numbers and booleans are accepted as their text, like GitHub).
    pub fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.value {
            Value::Scalar(s) if !node.is_null() => Some(s.clone()),
            Value::Scalar(_) => Some(String::new()),
            _ => {
                self.type_error(node, what, "a string");
                None
            }
        }
    }

    /// A string or a list of strings.
    pub fn string_list(&mut self, node: &Node, what: &str) -> Vec<(String, Pos)> {
        match &node.value {
            Value::Seq(items) => items
                .iter()
                .filter_map(|i| self.string(i, what).map(|s| (s, i.pos)))
                .collect(),
            Value::Scalar(_) if node.is_null() => Vec::new(),
            Value::Scalar(s) => vec![(s.clone(), node.pos)],
            Value::Map(_) => {
                self.type_error(node, what, "a string or a list of strings");
                Vec::new()
            }
        }
    }

    /// A `KEY: value` mapping of strings (env, with, outputs).
    pub fn string_map(
        &mut self,
        node: &Node,
        what: &str,
        location: Location,
    ) -> IndexMap<String, String> {
        let mut out = IndexMap::new();
        if let Value::Scalar(s) = &node.value
            && !node.is_null()
        {
            // A whole-mapping expression such as `env: ${{ fromJSON(...) }}`.
            self.expressions(node, location);
            out.insert(String::new(), s.clone());
            return out;
        }
        for (key, k, v) in self.map(node, what, &[]) {
            // Keys may be expressions too (`${{ vars.NAME }}: value`), evaluated at run time.
            self.expressions(k, location);
            if let Some(value) = self.string(v, &format!("{what}.{key}")) {
                self.expressions(v, location);
                out.insert(key.to_string(), value);
            }
        }
        out
    }

    /// A boolean, number or expression (`continue-on-error`, `timeout-minutes`, …).
    pub fn flexible(
        &mut self,
        node: &Node,
        what: &str,
        expected: &str,
        location: Location,
    ) -> Option<serde_json::Value> {
        let json = node.to_json();
        let ok = match (expected, &json) {
            ("a boolean", serde_json::Value::Bool(_)) => true,
            ("a number", serde_json::Value::Number(_)) => true,
            (_, serde_json::Value::String(s)) if is_whole_expression(s) => {
                self.expressions(node, location);
                true
            }
            _ => false,
        };
        if ok {
            Some(json)
        } else {
            self.type_error(node, what, &format!("{expected} or an expression"));
            None
        }
    }

    /// Parses and checks every `${{ }}` in a scalar (or, recursively, a collection).
    pub fn expressions(&mut self, node: &Node, location: Location) {
        match &node.value {
            Value::Scalar(s) => self.template(node, s, location),
            Value::Seq(items) => items.iter().for_each(|i| self.expressions(i, location)),
            Value::Map(entries) => entries
                .iter()
                .for_each(|(_, v)| self.expressions(v, location)),
        }
    }

    fn template(&mut self, node: &Node, text: &str, location: Location) {
        if !text.contains("${{") {
            return;
        }
        match expr::parse_template(text) {
            Err(e) => {
                let pos = self.locate(node, e.offset);
                self.error(pos, format!("invalid expression: {}", e.message));
            }
            Ok(segments) => {
                for seg in segments {
                    if let Segment::Expr { expr, offset, .. } = seg {
                        self.report_checks(node, &expr, offset, location);
                    }
                }
            }
        }
    }

    /// Checks a bare condition (`if:`), which may omit `${{ }}`.
    pub fn condition(&mut self, node: &Node, location: Location) -> Option<String> {
        let text = self.string(node, "if")?;
        let trimmed = text.trim();
        if let Some(inner) = whole_expression_body(trimmed) {
            let lead = text.find("${{").unwrap_or(0) + 3;
            let lead = lead + (inner.len() - inner.trim_start().len());
            self.bare_expression(node, inner.trim(), lead, location);
            return Some(inner.trim().to_string());
        }
        if trimmed.contains("${{") {
            self.template(node, &text, location);
            self.warning(
                node.pos,
                "this `if` mixes `${{ }}` with other text, so it becomes a non-empty string and is always true",
            )
            .help = Some("put the whole condition inside one `${{ }}`, or drop the `${{ }}`".into());
            return Some(text);
        }
        if trimmed.is_empty() {
            return None;
        }
        self.bare_expression(
            node,
            trimmed,
            text.len() - text.trim_start().len(),
            location,
        );
        Some(trimmed.to_string())
    }

    fn bare_expression(&mut self, node: &Node, text: &str, base: usize, location: Location) {
        match expr::parse(text) {
            Err(e) => {
                let pos = self.locate(node, base + e.offset);
                self.error(pos, format!("invalid expression: {}", e.message));
            }
            Ok(parsed) => self.report_checks(node, &parsed, base, location),
        }
    }

    fn report_checks(&mut self, node: &Node, parsed: &expr::Expr, base: usize, location: Location) {
        for (offset, message, help) in expr::check(parsed, location) {
            let pos = self.locate(node, base + offset);
            let d = self.error(pos, message);
            d.help = help;
        }
    }

    /// Reports `${{ }}` where GitHub does not evaluate expressions.
    pub fn forbid_expression(&mut self, node: &Node, what: &str) {
        if let Some(s) = node.scalar()
            && let Some(i) = s.find("${{")
        {
            let pos = self.locate(node, i);
            self.error(pos, format!("expressions are not allowed in {what}"));
        }
    }

    /// Source position of a byte offset inside a scalar's value.
    pub fn locate(&self, node: &Node, offset: usize) -> Pos {
        let Some(value) = node.scalar() else {
            return node.pos;
        };
        let offset = offset.min(value.len());
        let before = &value[..offset];
        let line_in_value = before.matches('\n').count();
        let col_in_line = before.rsplit('\n').next().unwrap_or("").chars().count() as u32;
        match node.style {
            Style::Block => {
                let line = node.pos.line + 1 + line_in_value as u32;
                let indent = self
                    .source
                    .lines()
                    .nth(line as usize - 1)
                    .map_or(0, |l| l.chars().take_while(|c| *c == ' ').count() as u32);
                Pos::new(line, indent + col_in_line + 1)
            }
            Style::Quoted if line_in_value == 0 => {
                Pos::new(node.pos.line, node.pos.col + 1 + col_in_line)
            }
            _ if line_in_value == 0 => Pos::new(node.pos.line, node.pos.col + col_in_line),
            _ => Pos::new(node.pos.line + line_in_value as u32, col_in_line + 1),
        }
    }
}

/// `${{ x }}` with nothing around it → `Some(" x ")`.
pub fn whole_expression_body(s: &str) -> Option<&str> {
    let t = s.trim();
    let inner = t.strip_prefix("${{")?.strip_suffix("}}")?;
    (!inner.contains("${{")).then_some(inner)
}

pub fn is_whole_expression(s: &str) -> bool {
    whole_expression_body(s).is_some()
}
