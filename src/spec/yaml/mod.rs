//! A span-carrying YAML tree on top of `saphyr-parser`'s event stream: every node knows
//! its line:column and tag; anchors/aliases and merge keys (`<<`) are resolved here, with
//! hard limits on file size, nesting depth and alias expansion (billion-laughs safe).

use crate::diag::{Diagnostic, Pos};
use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use std::collections::HashMap;

mod block;

/// Largest file we parse at all; GitHub itself refuses far smaller workflow files.
pub const MAX_FILE_BYTES: usize = 10 * 1024 * 1024;
/// Deepest nesting of collections; real pipelines stay below 20.
pub const MAX_DEPTH: usize = 256;
/// Total nodes after alias expansion; defends against exponential alias bombs while
/// leaving room: the largest real workflow in the corpus has a few thousand nodes.
pub const MAX_NODES: usize = 200_000;
/// Mappings up to this size check duplicate keys by scanning.
const SMALL_MAP: usize = 16;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Quoted,
    Block,
    Collection,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
    /// A non-core tag such as `!reference`, written as in the source.
    pub tag: Option<String>,
    pub style: Style,
}

impl Node {
    pub fn null(pos: Pos) -> Node {
        Node {
            value: Value::Scalar(String::new()),
            pos,
            tag: None,
            style: Style::Plain,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(s) if self.style == Style::Plain && matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The scalar's text (any scalar: strings, numbers and booleans alike).
    pub fn scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// A YAML 1.2 core-schema boolean (plain `true`/`false` in any of its three spellings).
    pub fn as_bool(&self) -> Option<bool> {
        if self.style != Style::Plain {
            return None;
        }
        match self.scalar()? {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        if self.style != Style::Plain {
            return None;
        }
        let s = self.scalar()?;
        if let Some(hex) = s.strip_prefix("0x") {
            return i64::from_str_radix(hex, 16).ok().map(|v| v as f64);
        }
        if let Some(oct) = s.strip_prefix("0o") {
            return i64::from_str_radix(oct, 8).ok().map(|v| v as f64);
        }
        match s {
            ".inf" | ".Inf" | ".INF" | "+.inf" => Some(f64::INFINITY),
            "-.inf" | "-.Inf" | "-.INF" => Some(f64::NEG_INFINITY),
            ".nan" | ".NaN" | ".NAN" => Some(f64::NAN),
            _ if s.chars().any(|c| c.is_ascii_digit())
                && s.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) =>
            {
                s.parse().ok()
            }
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// Looks a key up in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.scalar() == Some(key))
            .map(|(_, v)| v)
    }

    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Seq(_) => "a sequence",
            Value::Map(_) => "a mapping",
            Value::Scalar(_) if self.is_null() => "null",
            Value::Scalar(_) if self.as_bool().is_some() => "a boolean",
            Value::Scalar(_) if self.as_f64().is_some() => "a number",
            Value::Scalar(_) => "a string",
        }
    }

    /// Converts to JSON with YAML 1.2 core-schema typing (used for matrices and inputs).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.scalar().unwrap_or_default().to_string(), v.to_json()))
                    .collect(),
            ),
            Value::Scalar(s) => {
                if self.is_null() {
                    J::Null
                } else if let Some(b) = self.as_bool() {
                    J::Bool(b)
                } else if let Some(n) = self.as_f64().filter(|n| n.is_finite()) {
                    if n.fract() == 0.0 && n.abs() < 9e15 && !s.contains('.') {
                        J::from(n as i64)
                    } else {
                        serde_json::Number::from_f64(n).map_or(J::Null, J::Number)
                    }
                } else {
                    J::String(s.clone())
                }
            }
        }
    }

    fn count(&self) -> usize {
        match &self.value {
            Value::Scalar(_) => 1,
            Value::Seq(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            Value::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.count() + v.count())
                    .sum::<usize>()
            }
        }
    }
}

fn pos_of(span: &Span, origin: u16) -> Pos {
    Pos {
        origin,
        ..Pos::new(span.start.line() as u32, span.start.col() as u32 + 1)
    }
}

enum Frame {
    Seq {
        node: Node,
        anchor: usize,
    },
    Map {
        node: Node,
        anchor: usize,
        key: Option<Node>,
        /// Keys seen so far, for duplicate detection in linear time (filled once a mapping
        /// grows past [`SMALL_MAP`] entries).
        seen: foldhash::HashSet<String>,
    },
}

struct Loader<'a> {
    file: &'a str,
    anchors: HashMap<usize, (Node, usize)>,
    stack: Vec<Frame>,
    nodes: usize,
    diagnostics: Vec<Diagnostic>,
    root: Option<Node>,
    header: Option<Node>,
    documents: usize,
    flavor: Flavor,
    origin: u16,
}

/// Where the dialects' YAML loaders differ. GitHub: a repeated key is an error and a file is
/// one document. GitLab: the last repeated key wins (with a warning), and a file may start
/// with a `spec:` header document separated by `---`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    GitHub,
    GitLab,
}

/// Parses one YAML document. Errors are located diagnostics; the tree is returned only
/// when the YAML itself is well formed (duplicate keys are reported but not fatal).
pub fn parse(file: &str, bytes: &[u8]) -> (Option<Node>, Vec<Diagnostic>) {
    parse_with(file, bytes, Flavor::GitHub)
}

pub fn parse_with(file: &str, bytes: &[u8], flavor: Flavor) -> (Option<Node>, Vec<Diagnostic>) {
    parse_origin(file, bytes, flavor, 0)
}

/// As [`parse_with`], marking every position with `origin` (see [`Pos::origin`]).
pub fn parse_origin(
    file: &str,
    bytes: &[u8],
    flavor: Flavor,
    origin: u16,
) -> (Option<Node>, Vec<Diagnostic>) {
    let (root, _, diagnostics) = parse_with_header(file, bytes, flavor, origin);
    (root, diagnostics)
}

/// As [`parse_origin`], also returning GitLab's `spec:` header document when the file has one.
pub fn parse_with_header(
    file: &str,
    bytes: &[u8],
    flavor: Flavor,
    origin: u16,
) -> (Option<Node>, Option<Node>, Vec<Diagnostic>) {
    if bytes.len() > MAX_FILE_BYTES {
        return (None, None, vec![too_large(file, bytes.len() as u64)]);
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = good.iter().filter(|&&b| b == b'\n').count() as u32 + 1;
            let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let col = String::from_utf8_lossy(&good[line_start..]).chars().count() as u32 + 1;
            let d = Diagnostic::error(
                file,
                Pos::new(line, col),
                format!(
                    "invalid UTF-8 (byte 0x{:02x}); pipeline files must be UTF-8",
                    bytes[e.valid_up_to()]
                ),
            );
            return (None, None, vec![d]);
        }
    };
    parse_str_with_header(file, text, flavor, origin)
}

/// The diagnostic for a file over [`MAX_FILE_BYTES`].
pub fn too_large(file: &str, size: u64) -> Diagnostic {
    Diagnostic::error(
        file,
        Pos::new(1, 1),
        format!(
            "file is {:.1} MiB; pipeline files are limited to {} MiB",
            size as f64 / (1024.0 * 1024.0),
            MAX_FILE_BYTES / (1024 * 1024)
        ),
    )
}

pub fn parse_str(
    file: &str,
    text: &str,
    flavor: Flavor,
    origin: u16,
) -> (Option<Node>, Vec<Diagnostic>) {
    let (root, _, diagnostics) = parse_str_with_header(file, text, flavor, origin);
    (root, diagnostics)
}

fn parse_str_with_header(
    file: &str,
    text: &str,
    flavor: Flavor,
    origin: u16,
) -> (Option<Node>, Option<Node>, Vec<Diagnostic>) {
    let mut text = std::borrow::Cow::Borrowed(text);
    // libyaml (PyYAML, GitHub's parser) accepts a flow collection's closing `]`/`}` at the
    // indentation of the key that opened it (a real pytest workflow does this); the YAML
    // parser here does not. Such a line is moved one column right and the file read again.
    for _ in 0..MAX_CLOSER_FIXES {
        let (root, header, diagnostics) = parse_text(file, &text, flavor, origin);
        let closer_line = diagnostics
            .iter()
            .find(|d| d.message == "invalid YAML: invalid indentation")
            .map(|d| d.line as usize)
            .filter(|&line| {
                text.lines()
                    .nth(line.saturating_sub(1))
                    .is_some_and(|l| matches!(l.trim_start().chars().next(), Some(']' | '}')))
            });
        let Some(line) = closer_line else {
            return (root, header, diagnostics);
        };
        let shifted: Vec<String> = text
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if i + 1 == line {
                    format!(" {l}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        text = std::borrow::Cow::Owned(shifted.join("\n") + "\n");
    }
    parse_text(file, &text, flavor, origin)
}

/// How many closing-bracket lines [`parse_str`] moves before it gives up.
const MAX_CLOSER_FIXES: usize = 32;

fn parse_text(file: &str, text: &str, flavor: Flavor, origin: u16) -> Parsed {
    parse_text_by(file, text, flavor, origin, Reader::Fastest)
        .expect("the general reader reads every file")
}

/// Which YAML reader [`parse_str_by`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// The block-style fast path where it applies, else `saphyr-parser` (what every
    /// caller gets).
    Fastest,
    /// Only the fast path: `None` when the file is outside its subset.
    BlockOnly,
    /// Only `saphyr-parser`.
    General,
}

/// As [`parse_str`] with the reader chosen: for tests that compare the two readers.
pub fn parse_str_by(
    file: &str,
    text: &str,
    flavor: Flavor,
    reader: Reader,
) -> Option<(Option<Node>, Vec<Diagnostic>)> {
    parse_text_by(file, text, flavor, 0, reader).map(|(root, _, diagnostics)| (root, diagnostics))
}

fn parse_text_by(
    file: &str,
    text: &str,
    flavor: Flavor,
    origin: u16,
    reader: Reader,
) -> Option<Parsed> {
    if reader != Reader::General {
        let mut loader = Loader::new(file, flavor, origin);
        // A failure in the tree (a merge key's value, the node limit) counts only once
        // the fast path has read the whole file: else the general parser reads it again
        // and reports what comes first, as it always does.
        let mut failed = None;
        let read = block::read(text, MAX_DEPTH, &mut |event, line, col| {
            if failed.is_none() {
                let at = saphyr_parser::Marker::new(0, line, col);
                failed = loader.take(event, &Span::new(at, at)).err();
            }
        });
        if read.is_some() {
            return Some(match failed {
                Some(diagnostics) => (None, None, diagnostics),
                None => loader.end(),
            });
        }
        if reader == Reader::BlockOnly {
            return None;
        }
    }
    let mut loader = Loader::new(file, flavor, origin);
    for item in Parser::new_from_str(text).keep_tags(true) {
        let (event, span) = match item {
            Ok(ev) => ev,
            Err(e) => {
                let m = e.marker();
                let pos = Pos::new(m.line() as u32, m.col() as u32 + 1);
                loader.diagnostics.push(Diagnostic::error(
                    file,
                    pos,
                    format!("invalid YAML: {}", e.info()),
                ));
                return Some((None, None, loader.diagnostics));
            }
        };
        if let Err(diagnostics) = loader.take(event, &span) {
            return Some((None, None, diagnostics));
        }
    }
    Some(loader.end())
}

/// What a reader returns: the document, GitLab's header document, the diagnostics.
type Parsed = (Option<Node>, Option<Node>, Vec<Diagnostic>);

impl<'a> Loader<'a> {
    fn new(file: &'a str, flavor: Flavor, origin: u16) -> Self {
        Loader {
            file,
            anchors: HashMap::new(),
            stack: Vec::new(),
            nodes: 0,
            diagnostics: Vec::new(),
            root: None,
            header: None,
            documents: 0,
            flavor,
            origin,
        }
    }

    /// Takes one event; `Err` carries the diagnostics of a file that cannot be read on.
    fn take(&mut self, event: Event<'_>, span: &Span) -> Result<(), Vec<Diagnostic>> {
        if let Event::DocumentStart(_) = event {
            self.documents += 1;
            let is_header = self.root.as_ref().is_some_and(|r| r.get("spec").is_some());
            if self.documents == 2 && self.flavor == Flavor::GitLab && is_header {
                // GitLab's `spec:` header (CI/CD inputs); the configuration follows.
                self.header = self.root.take();
                return Ok(());
            }
            if self.documents > 1 {
                let d = Diagnostic::error(
                    self.file,
                    pos_of(span, self.origin),
                    "a pipeline file must contain a single YAML document",
                );
                self.diagnostics.push(d);
                return Err(std::mem::take(&mut self.diagnostics));
            }
        }
        self.on_event(event, span).map_err(|d| {
            self.diagnostics.push(d);
            std::mem::take(&mut self.diagnostics)
        })
    }

    fn end(mut self) -> Parsed {
        let root = self
            .root
            .take()
            .unwrap_or_else(|| Node::null(Pos::new(1, 1)));
        (Some(root), self.header.take(), self.diagnostics)
    }

    fn on_event(&mut self, event: Event<'_>, span: &Span) -> Result<(), Diagnostic> {
        let pos = pos_of(span, self.origin);
        let is_seq = matches!(event, Event::SequenceStart(..));
        match event {
            Event::Scalar(value, style, anchor, tag) => {
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Style::Quoted,
                    _ => Style::Block,
                };
                let node = Node {
                    value: Value::Scalar(value.into_owned()),
                    pos,
                    tag: custom_tag(tag.as_deref()),
                    style,
                };
                self.bump(1, pos)?;
                self.finish(node, anchor)
            }
            Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag) => {
                if self.stack.len() >= MAX_DEPTH {
                    return Err(Diagnostic::error(
                        self.file,
                        pos,
                        format!("YAML nesting is deeper than {MAX_DEPTH} levels"),
                    ));
                }
                self.bump(1, pos)?;
                let node = Node {
                    value: if is_seq {
                        Value::Seq(Vec::new())
                    } else {
                        Value::Map(Vec::new())
                    },
                    pos,
                    tag: custom_tag(tag.as_deref()),
                    style: Style::Collection,
                };
                self.stack.push(if is_seq {
                    Frame::Seq { node, anchor }
                } else {
                    Frame::Map {
                        node,
                        anchor,
                        key: None,
                        seen: foldhash::HashSet::default(),
                    }
                });
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq { node, anchor }) => self.finish(node, anchor),
                Some(Frame::Map {
                    mut node, anchor, ..
                }) => {
                    self.resolve_merge_keys(&mut node)?;
                    self.finish(node, anchor)
                }
                None => Ok(()),
            },
            Event::Alias(id) => {
                let Some((target, count)) = self.anchors.get(&id) else {
                    return Err(Diagnostic::error(
                        self.file,
                        pos,
                        "alias refers to an unknown anchor",
                    ));
                };
                let (mut node, count) = (target.clone(), *count);
                node.pos = pos;
                self.bump(count, pos)?;
                self.finish(node, 0)
            }
            _ => Ok(()),
        }
    }

    fn bump(&mut self, n: usize, pos: Pos) -> Result<(), Diagnostic> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(Diagnostic::error(
                self.file,
                pos,
                format!(
                    "YAML aliases expand to more than {MAX_NODES} nodes; refusing to expand further (alias bomb?)"
                ),
            ));
        }
        Ok(())
    }

    /// Attaches a completed node to its parent (or makes it the document root).
    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), Diagnostic> {
        if anchor != 0 {
            let count = node.count();
            self.anchors.insert(anchor, (node.clone(), count));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { node: parent, .. }) => {
                if let Value::Seq(items) = &mut parent.value {
                    items.push(node);
                }
            }
            Some(Frame::Map {
                node: parent,
                key,
                seen,
                ..
            }) => match key.take() {
                None => {
                    if node.as_map().is_some() || node.as_seq().is_some() {
                        let d =
                            Diagnostic::error(self.file, node.pos, "mapping keys must be scalars");
                        self.diagnostics.push(d);
                    }
                    *key = Some(node);
                }
                Some(k) => {
                    if let Value::Map(entries) = &mut parent.value {
                        let duplicate = match k.scalar() {
                            // Small mappings (nearly all): a scan beats hashing.
                            Some(text) if !is_merge_key(&k) && entries.len() < SMALL_MAP => {
                                entries.iter().any(|(e, _)| e.scalar() == Some(text))
                            }
                            Some(text) if !is_merge_key(&k) => {
                                if seen.is_empty() {
                                    seen.extend(
                                        entries
                                            .iter()
                                            .filter_map(|(e, _)| e.scalar().map(String::from)),
                                    );
                                }
                                !seen.insert(text.to_string())
                            }
                            _ => false,
                        };
                        let name = || k.scalar().unwrap_or_default().to_string();
                        match (duplicate, self.flavor) {
                            (false, _) => entries.push((k, node)),
                            (true, Flavor::GitHub) => {
                                let msg = format!("duplicate key `{}`", name());
                                self.diagnostics
                                    .push(Diagnostic::error(self.file, k.pos, msg));
                            }
                            (true, Flavor::GitLab) => {
                                let name = name();
                                let msg = format!("duplicate key `{name}`: the last one wins");
                                self.diagnostics
                                    .push(Diagnostic::warning(self.file, k.pos, msg));
                                if let Some(entry) =
                                    entries.iter_mut().find(|(e, _)| e.scalar() == Some(&name))
                                {
                                    *entry = (k, node);
                                }
                            }
                        }
                    }
                }
            },
        }
        Ok(())
    }

    /// YAML merge keys: `<<: *a` or `<<: [*a, *b]`; explicit keys win, then earlier sources.
    fn resolve_merge_keys(&mut self, map: &mut Node) -> Result<(), Diagnostic> {
        let Value::Map(entries) = &mut map.value else {
            return Ok(());
        };
        if !entries.iter().any(|(k, _)| is_merge_key(k)) {
            return Ok(());
        }
        let (merges, mut own): (Vec<_>, Vec<_>) = std::mem::take(entries)
            .into_iter()
            .partition(|(k, _)| is_merge_key(k));
        if self.flavor == Flavor::GitHub {
            // GitHub's parser takes anchors and aliases but not merge keys.
            for (k, _) in &merges {
                self.diagnostics.push(
                    Diagnostic::error(
                        self.file,
                        k.pos,
                        "GitHub Actions does not support YAML merge keys (`<<`)",
                    )
                    .with_help(
                        "repeat the keys, or reuse a whole value with an alias (`key: *anchor`)",
                    ),
                );
            }
        }
        for (_, source) in merges {
            let sources: Vec<Node> = match source.value {
                Value::Map(_) => vec![source],
                Value::Seq(items) => items,
                _ => {
                    return Err(Diagnostic::error(
                        self.file,
                        source.pos,
                        "merge key `<<` needs a mapping or a list of mappings",
                    ));
                }
            };
            for src in sources {
                let Value::Map(src_entries) = src.value else {
                    return Err(Diagnostic::error(
                        self.file,
                        src.pos,
                        "merge key `<<` needs a mapping or a list of mappings",
                    ));
                };
                for (k, v) in src_entries {
                    if !own.iter().any(|(e, _)| e.scalar() == k.scalar()) {
                        own.push((k, v));
                    }
                }
            }
        }
        *entries = own;
        Ok(())
    }
}

fn is_merge_key(k: &Node) -> bool {
    k.style == Style::Plain && k.scalar() == Some("<<")
}

fn custom_tag(tag: Option<&saphyr_parser::Tag>) -> Option<String> {
    tag.filter(|t| !t.is_yaml_core_schema())
        .map(std::string::ToString::to_string)
}
