//! The fast path for the block-style YAML nearly every pipeline file is written in: the
//! same events, at the same positions, as `saphyr-parser` gives, read line by line.
//!
//! It knows block mappings and sequences, plain scalars (continued on more-indented lines
//! too), one-line quoted scalars, literal and folded block scalars in their common forms,
//! one-line flow sequences and mappings of scalars, and comments. Anything else —
//! anchors, aliases, tags, nested flow collections, multi-line quoted scalars, escapes,
//! tabs, CR, directives, explicit keys, a second document, and every malformed line —
//! returns `None`, and the caller reads the file with
//! `saphyr-parser`, which also reports each error. So this path never decides what is
//! valid; it only spares the general scanner on files it is sure about. Differential
//! tests compare the two on every file of the corpus and on mutants of each
//! (tests/it/yaml.rs).

use saphyr_parser::{Event, ScalarStyle};
use std::borrow::Cow;

/// Hands each event of `text` to `sink` with its start position: line (1-based) and
/// column (0-based, in characters), as `saphyr_parser::Marker` counts them. `None` when
/// the text is not in the subset this path reads (the sink has then seen a prefix of the
/// events, to be thrown away).
pub(super) fn read<'a>(
    text: &'a str,
    max_depth: usize,
    sink: &mut dyn FnMut(Event<'a>, usize, usize),
) -> Option<()> {
    if !printable(text) {
        return None;
    }
    let mut reader = Reader {
        text,
        lines: lines(text),
        sink,
        depth: 0,
        max_depth,
    };
    reader.document()
}

/// Only characters YAML prints, and no line break but `\n` (CR, NEL, U+2028/9) nor a
/// byte-order mark: the rest is the general parser's to accept or refuse.
fn printable(text: &str) -> bool {
    let control = |b: u8| (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f;
    if text.bytes().any(control) {
        return false;
    }
    text.is_ascii()
        || !text.chars().any(|c| {
            matches!(
                c,
                '\u{80}'
                    ..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
            )
        })
}

/// saphyr refuses an implicit key of more than 1,024 characters; longer keys (in bytes,
/// never fewer than characters) are left to it.
const MAX_KEY_BYTES: usize = 1000;

#[derive(Clone, Copy)]
struct Line {
    start: usize,
    end: usize,
    /// Leading spaces.
    indent: usize,
    /// Only spaces, or a comment after them: not part of the structure.
    insignificant: bool,
    ascii: bool,
}

fn lines(text: &str) -> Vec<Line> {
    let mut out = Vec::with_capacity(text.len() / 24);
    let mut start = 0;
    for raw in text.split_inclusive('\n') {
        let line = raw.strip_suffix('\n').unwrap_or(raw);
        let indent = spaces(line);
        let rest = &line.as_bytes()[indent..];
        out.push(Line {
            start,
            end: start + line.len(),
            indent,
            insignificant: rest.is_empty() || rest[0] == b'#',
            ascii: line.is_ascii(),
        });
        start += raw.len();
    }
    out
}

struct Reader<'a, 's> {
    text: &'a str,
    lines: Vec<Line>,
    sink: &'s mut dyn FnMut(Event<'a>, usize, usize),
    depth: usize,
    max_depth: usize,
}

/// What may start at a node's position besides a scalar.
#[derive(Clone, Copy, PartialEq)]
enum Room {
    /// A sequence entry or the document: a compact mapping or sequence may start here.
    Collection,
    /// After `key: `: a scalar or a flow collection only.
    Scalar,
}

impl<'a> Reader<'a, '_> {
    fn line(&self, l: usize) -> &'a str {
        let line = &self.lines[l];
        &self.text[line.start..line.end]
    }

    /// Column in characters of byte `at` of line `l`.
    fn col(&self, l: usize, at: usize) -> usize {
        if self.lines[l].ascii {
            at
        } else {
            self.line(l)[..at].chars().count()
        }
    }

    fn emit(&mut self, event: Event<'a>, l: usize, at: usize) {
        let col = self.col(l, at);
        (self.sink)(event, l + 1, col);
    }

    fn scalar(&mut self, value: Cow<'a, str>, style: ScalarStyle, l: usize, at: usize) {
        self.emit(Event::Scalar(value, style, 0, None), l, at);
    }

    /// The next line from `l` on that carries structure. Tabs there, and document
    /// markers (`---`, `...`: a second document), are not read here.
    fn significant(&self, mut l: usize) -> Option<Option<usize>> {
        while l < self.lines.len() {
            if !self.lines[l].insignificant {
                let line = self.line(l);
                if line.contains('\t') || is_document_marker(line) {
                    return None;
                }
                return Some(Some(l));
            }
            l += 1;
        }
        Some(None)
    }

    fn document(&mut self) -> Option<()> {
        (self.sink)(Event::StreamStart, 1, 0);
        let mut from = 0;
        while self.lines.get(from).is_some_and(|line| line.insignificant) {
            from += 1;
        }
        // An explicit start, alone on its line.
        let explicit = from < self.lines.len() && self.line(from).trim_end_matches(' ') == "---";
        if explicit {
            from += 1;
        }
        let l = self.significant(from)??;
        (self.sink)(Event::DocumentStart(explicit), l + 1, 0);
        let indent = self.lines[l].indent;
        let next = self.node(l, indent, None, Room::Collection)?;
        if next.is_some() {
            // A second document, `...`, or a line the document does not take.
            return None;
        }
        (self.sink)(Event::DocumentEnd, self.lines.len() + 1, 0);
        (self.sink)(Event::StreamEnd, self.lines.len() + 1, 0);
        Some(())
    }

    /// Reads the node whose first token is at byte `at` of line `l`; `parent` is the
    /// indentation of the collection it belongs to (`None` at the document's top).
    /// Returns the next significant line after it.
    fn node(
        &mut self,
        l: usize,
        at: usize,
        parent: Option<usize>,
        room: Room,
    ) -> Option<Option<usize>> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return None;
        }
        let next = self.node_inner(l, at, parent, room);
        self.depth -= 1;
        next
    }

    fn node_inner(
        &mut self,
        l: usize,
        at: usize,
        parent: Option<usize>,
        room: Room,
    ) -> Option<Option<usize>> {
        let rest = &self.line(l)[at..];
        let bytes = rest.as_bytes();
        match bytes[0] {
            b'-' if room == Room::Collection && is_blank_or_end(bytes.get(1)) => {
                self.sequence(l, at, false)
            }
            b'|' | b'>' => self.block_scalar(l, at, parent),
            b'[' | b'{' => {
                let end = self.flow(l, at)?;
                self.line_done(l, end)?;
                self.significant(l + 1)
            }
            b'\'' | b'"' => {
                let (value, style, end) = quoted(rest)?;
                if key_colon(rest, end).is_some() {
                    if room != Room::Collection {
                        return None;
                    }
                    return self.mapping(l, at);
                }
                self.line_done(l, at + end)?;
                self.scalar(value, style, l, at);
                self.significant(l + 1)
            }
            _ => {
                let plain = plain(rest)?;
                if plain.colon.is_some() {
                    if room != Room::Collection {
                        return None;
                    }
                    return self.mapping(l, at);
                }
                let (value, last) = self.continued(l, rest, plain.len, parent)?;
                self.scalar(value, ScalarStyle::Plain, l, at);
                self.significant(last + 1)
            }
        }
    }

    /// A plain scalar, the first `len` bytes of `rest` on line `l`, goes on over the lines
    /// below that are more indented than `parent`, folded with spaces. Returns it and its
    /// last line.
    fn continued(
        &self,
        l: usize,
        rest: &'a str,
        len: usize,
        parent: Option<usize>,
    ) -> Option<(Cow<'a, str>, usize)> {
        let mut value = Cow::Borrowed(&rest[..len]);
        let mut last = l;
        // A comment ends the scalar: what is more indented after it is not read here.
        if ends_in_comment(rest, len) {
            return Some((value, last));
        }
        while let Some(next) = self.lines.get(last + 1) {
            let line = self.line(last + 1);
            if next.insignificant
                || parent.is_some_and(|p| next.indent <= p)
                || is_document_marker(line)
            {
                break;
            }
            let text = &line[next.indent..];
            let bytes = text.as_bytes();
            if text.contains('\t') || !starts_plain(bytes[0], bytes.get(1)) {
                return None;
            }
            let more = plain(text)?;
            if more.colon.is_some() {
                return None;
            }
            let value = value.to_mut();
            value.push(' ');
            value.push_str(&text[..more.len]);
            last += 1;
            if ends_in_comment(text, more.len) {
                break;
            }
        }
        Some((value, last))
    }

    /// After a token ending at byte `end` of line `l`: only spaces and a comment may follow.
    fn line_done(&self, l: usize, end: usize) -> Option<()> {
        let rest = &self.line(l)[end..];
        let trimmed = rest.trim_start_matches(' ');
        (trimmed.is_empty() || (trimmed.starts_with('#') && trimmed.len() < rest.len()))
            .then_some(())
    }

    /// A block mapping whose first key starts at byte `at` of line `l`; its indentation
    /// is that column.
    fn mapping(&mut self, first: usize, at: usize) -> Option<Option<usize>> {
        let indent = at;
        self.emit(Event::MappingStart(0, None), first, at);
        let mut l = first;
        loop {
            let line = self.line(l);
            let rest = &line[indent..];
            // The key and the byte after its colon.
            let after = match rest.as_bytes()[0] {
                b'\'' | b'"' => {
                    let (key, style, end) = quoted(rest)?;
                    let colon = key_colon(rest, end)?;
                    self.scalar(key, style, l, indent);
                    colon
                }
                b'-' if is_blank_or_end(rest.as_bytes().get(1)) => return None,
                _ => {
                    let key = plain(rest)?;
                    let colon = key.colon?;
                    self.scalar(
                        Cow::Borrowed(&rest[..key.len]),
                        ScalarStyle::Plain,
                        l,
                        indent,
                    );
                    colon
                }
            };
            if after > MAX_KEY_BYTES {
                return None;
            }
            let colon = indent + after;
            let value_at = colon + 1;
            let spaces = spaces(&line[value_at..]);
            let value_rest = &line[value_at + spaces..];
            let next = if value_rest.is_empty() || (spaces > 0 && value_rest.starts_with('#')) {
                // The value is on the lines below, or null.
                match self.significant(l + 1)? {
                    Some(n) if self.lines[n].indent > indent => {
                        let at = self.lines[n].indent;
                        self.node(n, at, Some(indent), Room::Collection)?
                    }
                    Some(n)
                        if self.lines[n].indent == indent && is_entry(&self.line(n)[indent..]) =>
                    {
                        self.sequence(n, indent, true)?
                    }
                    next => {
                        self.scalar(Cow::Borrowed(""), ScalarStyle::Plain, l, colon);
                        next
                    }
                }
            } else {
                self.node(l, value_at + spaces, Some(indent), Room::Scalar)?
            };
            match next {
                Some(n) if self.lines[n].indent == indent => l = n,
                Some(n) if self.lines[n].indent > indent => return None,
                next => {
                    (self.sink)(Event::MappingEnd, 0, 0);
                    return Some(next);
                }
            }
        }
    }

    /// A block sequence whose first `-` is at byte `at` of line `first`. `indentless`: the
    /// value of a mapping key at the key's own indentation (it ends at the next key).
    fn sequence(&mut self, first: usize, at: usize, indentless: bool) -> Option<Option<usize>> {
        let indent = at;
        let item_at = |line: &str| {
            let after_dash = indent + 1;
            after_dash + spaces(&line[after_dash..])
        };
        // saphyr places an indentless sequence where its first item starts.
        let start = if indentless {
            let first_item = item_at(self.line(first));
            let rest = &self.line(first)[first_item..];
            if rest.is_empty() || rest.starts_with('#') {
                return None;
            }
            first_item
        } else {
            at
        };
        self.emit(Event::SequenceStart(0, None), first, start);
        let mut l = first;
        loop {
            let line = self.line(l);
            let item_at = item_at(line);
            let item_rest = &line[item_at..];
            let next = if item_rest.is_empty() {
                match self.significant(l + 1)? {
                    Some(n) if self.lines[n].indent > indent => {
                        let at = self.lines[n].indent;
                        self.node(n, at, Some(indent), Room::Collection)?
                    }
                    next => {
                        self.scalar(Cow::Borrowed(""), ScalarStyle::Plain, l, line.len());
                        next
                    }
                }
            } else if item_rest.starts_with('#') {
                return None;
            } else {
                self.node(l, item_at, Some(indent), Room::Collection)?
            };
            match next {
                Some(n) if self.lines[n].indent == indent && is_entry(&self.line(n)[indent..]) => {
                    l = n;
                }
                // A key at the sequence's indentation ends an indentless sequence only.
                Some(n) if self.lines[n].indent == indent && !indentless => return None,
                Some(n) if self.lines[n].indent > indent => return None,
                next => {
                    (self.sink)(Event::SequenceEnd, 0, 0);
                    return Some(next);
                }
            }
        }
    }

    /// `|` or `>` at byte `at` of line `l`, with an optional `-` (strip); its content is
    /// more indented than `parent`.
    fn block_scalar(
        &mut self,
        l: usize,
        at: usize,
        parent: Option<usize>,
    ) -> Option<Option<usize>> {
        let line = self.line(l);
        let folded = line.as_bytes()[at] == b'>';
        let mut header_end = at + 1;
        let strip = line.as_bytes().get(header_end) == Some(&b'-');
        if strip {
            header_end += 1;
        }
        // `+`, an indentation digit, or anything else on the header line: not here.
        self.line_done(l, header_end)?;
        let first = l + 1;
        let content = *self.lines.get(first)?;
        let indent = content.indent;
        if content.end - content.start == indent || parent.is_some_and(|p| indent <= p) {
            // Leading blank lines or an empty scalar: positions differ, leave them.
            return None;
        }
        let mut value = String::new();
        let mut last_text = first;
        let mut blank_run = 0;
        let mut k = first;
        while k < self.lines.len() {
            let info = &self.lines[k];
            let text = self.line(k);
            if text.bytes().all(|b| b == b' ') {
                if text.len() > indent {
                    return None;
                }
                blank_run += 1;
            } else if info.indent >= indent {
                // A folded line that starts with white space (a tab after the indentation
                // too) is kept on its own line: not folded here.
                let more_indented = info.indent > indent || text.as_bytes()[indent] == b'\t';
                if folded && (more_indented || blank_run > 0) {
                    return None;
                }
                if k != first {
                    let separator = if folded { " " } else { "\n" };
                    value.push_str(separator);
                    for _ in 0..blank_run {
                        value.push('\n');
                    }
                }
                blank_run = 0;
                value.push_str(&text[indent..]);
                last_text = k;
            } else {
                break;
            }
            k += 1;
        }
        if !strip {
            value.push('\n');
        }
        let style = if folded {
            ScalarStyle::Folded
        } else {
            ScalarStyle::Literal
        };
        self.scalar(Cow::Owned(value), style, first, indent);
        self.significant(last_text + 1)
    }

    /// `[a, 'b', "c"]`, `{}` or `{ a: b, 'c': "d" }` on one line at byte `at` of line `l`;
    /// returns the byte after the closing bracket.
    fn flow(&mut self, l: usize, at: usize) -> Option<usize> {
        let line = self.line(l);
        let mapping = line.as_bytes()[at] == b'{';
        let (start, closer) = if mapping {
            (Event::MappingStart(0, None), b'}')
        } else {
            (Event::SequenceStart(0, None), b']')
        };
        let end = || {
            if mapping {
                Event::MappingEnd
            } else {
                Event::SequenceEnd
            }
        };
        self.emit(start, l, at);
        let skip = |i: usize| i + spaces(&line[i..]);
        let mut i = skip(at + 1);
        if line.as_bytes().get(i) == Some(&closer) {
            (self.sink)(end(), l + 1, 0);
            return Some(i + 1);
        }
        loop {
            if mapping {
                i = self.flow_scalar(l, i, b':')?;
                // `: ` after the key (JSON's `"a":1` is left to the general parser).
                if line.as_bytes().get(i) != Some(&b':')
                    || line.as_bytes().get(i + 1) != Some(&b' ')
                {
                    return None;
                }
                i = skip(i + 1);
            }
            i = self.flow_scalar(l, i, closer)?;
            match line.as_bytes().get(i) {
                Some(b',') => {
                    i = skip(i + 1);
                    if line.as_bytes().get(i).is_none_or(|&b| b == closer) {
                        return None;
                    }
                }
                Some(&b) if b == closer => {
                    (self.sink)(end(), l + 1, 0);
                    return Some(i + 1);
                }
                _ => return None,
            }
        }
    }

    /// A quoted or plain scalar inside a flow collection at byte `i` of line `l`, ending
    /// before `,`, `closer` or (plain) spaces before them; returns the byte after it and
    /// the spaces that follow.
    fn flow_scalar(&mut self, l: usize, i: usize, closer: u8) -> Option<usize> {
        let line = self.line(l);
        let rest = &line[i..];
        let end = match *rest.as_bytes().first()? {
            b'\'' | b'"' => {
                let (value, style, end) = quoted(rest)?;
                self.scalar(value, style, l, i);
                i + end
            }
            first if !starts_plain(first, rest.as_bytes().get(1)) => return None,
            _ => {
                let len = rest
                    .bytes()
                    .position(|b| b == b',' || b == closer)
                    .unwrap_or(rest.len());
                let item = rest[..len].trim_end_matches(' ');
                if item.is_empty() || item.bytes().any(|b| b"[]{}#:".contains(&b)) {
                    return None;
                }
                self.scalar(Cow::Borrowed(item), ScalarStyle::Plain, l, i);
                i + item.len()
            }
        };
        Some(end + spaces(&line[end..]))
    }
}

/// How many spaces `s` starts with.
fn spaces(s: &str) -> usize {
    s.bytes().take_while(|&b| b == b' ').count()
}

fn is_blank_or_end(b: Option<&u8>) -> bool {
    matches!(b, None | Some(b' '))
}

/// A sequence entry: `-` then a space or the end of the line.
fn is_entry(rest: &str) -> bool {
    rest.as_bytes()[0] == b'-' && is_blank_or_end(rest.as_bytes().get(1))
}

/// `---` or `...` at the start of a line, alone or before a space.
fn is_document_marker(line: &str) -> bool {
    ["---", "..."].iter().any(|marker| {
        line.strip_prefix(marker)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
    })
}

/// Whether a plain scalar may start with `first` (then `second`) in this path.
fn starts_plain(first: u8, second: Option<&u8>) -> bool {
    match first {
        b'-' | b'?' | b':' => second.is_some_and(|&b| b != b' '),
        b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!' | b'|' | b'>' | b'\''
        | b'"' | b'%' | b'@' | b'`' => false,
        _ => true,
    }
}

/// Whether a comment follows the plain scalar that is the first `len` bytes of `rest`.
fn ends_in_comment(rest: &str, len: usize) -> bool {
    len < rest.trim_end_matches(' ').len()
}

struct Plain {
    /// Length of the scalar's text (trailing spaces trimmed).
    len: usize,
    /// The byte of the `: ` (or the `:` ending the line) that follows it when it is a
    /// mapping key.
    colon: Option<usize>,
}

/// A one-line plain scalar at the start of `rest` (block context).
fn plain(rest: &str) -> Option<Plain> {
    let bytes = rest.as_bytes();
    if !starts_plain(bytes[0], bytes.get(1)) {
        return None;
    }
    let mut colon = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b':' if is_blank_or_end(bytes.get(i + 1)) => {
                colon = Some(i);
                break;
            }
            b'#' if bytes[i - 1] == b' ' => break,
            _ => {}
        }
        i += 1;
    }
    Some(Plain {
        len: rest[..i].trim_end_matches(' ').len(),
        colon,
    })
}

/// A quoted scalar closed on its line: its value, style and the byte after the closing
/// quote. Double-quoted scalars with escapes are left to the general parser.
fn quoted(rest: &str) -> Option<(Cow<'_, str>, ScalarStyle, usize)> {
    let quote = rest.as_bytes()[0];
    let body = &rest[1..];
    if quote == b'"' {
        let close = body.bytes().position(|b| b == b'"' || b == b'\\')?;
        if body.as_bytes()[close] == b'\\' {
            return None;
        }
        return Some((
            Cow::Borrowed(&body[..close]),
            ScalarStyle::DoubleQuoted,
            close + 2,
        ));
    }
    let single = ScalarStyle::SingleQuoted;
    let mut value = String::new();
    let mut i = 0;
    loop {
        let close = i + body[i..].find('\'')?;
        if body.as_bytes().get(close + 1) == Some(&b'\'') {
            value.push_str(&body[i..=close]);
            i = close + 2;
        } else if value.is_empty() {
            return Some((Cow::Borrowed(&body[i..close]), single, close + 2));
        } else {
            value.push_str(&body[i..close]);
            return Some((Cow::Owned(value), single, close + 2));
        }
    }
}

/// After a quoted scalar ending at byte `end` of `rest`: the byte of a `:` that makes it a
/// key (spaces may come between), if one follows.
fn key_colon(rest: &str, end: usize) -> Option<usize> {
    let bytes = rest.as_bytes();
    let colon = end + spaces(&rest[end..]);
    (bytes.get(colon) == Some(&b':') && is_blank_or_end(bytes.get(colon + 1))).then_some(colon)
}
