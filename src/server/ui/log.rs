//! A job's log as HTML: ANSI colours as classes, `::group::`/`##[group]` sections as
//! collapsible headers, `::error::`/`##[warning]` lines highlighted and collected, each line
//! numbered with an anchor (`#L120`). Stateful, so a live stream renders chunk by chunk the
//! same way as a whole log.

use std::fmt::Write as _;

/// An annotation found in the log: its line and text.
#[derive(Debug, Clone)]
pub(super) struct Annotation {
    pub line: usize,
    pub level: &'static str,
    pub text: String,
}

#[derive(Default)]
pub(super) struct Renderer {
    /// The number of the next line.
    line: usize,
    /// The open group's number (its header's line), if any.
    group: Option<usize>,
    lines: crate::exec::WholeLines,
    pub annotations: Vec<Annotation>,
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` with its SGR escapes (`ESC[…m`) as `<span class="…">`; other escapes dropped.
fn ansi(text: &str) -> String {
    let mut out = String::new();
    let mut open = false;
    let mut rest = text;
    while let Some(at) = rest.find('\x1b') {
        out.push_str(&escape(&rest[..at]));
        rest = &rest[at + 1..];
        let Some(body) = rest.strip_prefix('[') else {
            continue;
        };
        let end = body
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(body.len());
        let (params, command) = (&body[..end], body.get(end..end + 1).unwrap_or(""));
        rest = body.get(end + 1..).unwrap_or("");
        if command != "m" {
            continue;
        }
        if open {
            out.push_str("</span>");
            open = false;
        }
        let classes: Vec<String> = params
            .split(';')
            .filter_map(|p| match p.parse::<u8>().ok()? {
                1 => Some("b".to_string()),
                n @ (30..=37 | 90..=97) => Some(format!("f{n}")),
                n @ (40..=47) => Some(format!("g{n}")),
                _ => None,
            })
            .collect();
        if !classes.is_empty() {
            let _ = write!(out, "<span class=\"{}\">", classes.join(" "));
            open = true;
        }
    }
    out.push_str(&escape(rest));
    if open {
        out.push_str("</span>");
    }
    out
}

/// `(level, message)` of an annotation line in either syntax.
fn annotation(line: &str) -> Option<(&'static str, &str)> {
    for level in ["error", "warning", "notice"] {
        if let Some(m) = line.strip_prefix(&format!("##[{level}]")) {
            return Some((level, m));
        }
        if let Some(rest) = line.strip_prefix(&format!("::{level}")) {
            // `::error file=…,line=…::message`
            let message = rest.split_once("::").map_or(rest, |(_, m)| m);
            return Some((level, message));
        }
    }
    None
}

impl Renderer {
    /// A renderer whose first line is number `line` (a log shown from its tail).
    pub(super) fn starting_at(line: usize) -> Renderer {
        Renderer {
            line,
            ..Renderer::default()
        }
    }

    /// The HTML of the whole lines in `chunk` (a partial last line waits for the next).
    pub(super) fn push(&mut self, chunk: &str) -> String {
        let Some(complete) = self.lines.push(chunk) else {
            return String::new();
        };
        let mut out = String::new();
        for line in complete.lines() {
            self.line(line, &mut out);
        }
        out
    }

    /// The HTML of what is left after the last newline.
    pub(super) fn finish(&mut self) -> String {
        let rest = self.lines.finish();
        let mut out = String::new();
        if !rest.is_empty() {
            self.line(&rest, &mut out);
        }
        out
    }

    fn line(&mut self, text: &str, out: &mut String) {
        let n = self.line;
        self.line += 1;
        // Stored lines start with a timestamp only in `tess run`'s files, not here.
        if let Some(title) = text
            .strip_prefix("##[group]")
            .or_else(|| text.strip_prefix("::group::"))
        {
            self.group = Some(n);
            let _ = write!(
                out,
                "<div class=\"l grp\" id=\"L{n}\" data-g=\"{n}\"><a href=\"#L{n}\">{n}</a>\
                 <span>▾ {}</span></div>",
                ansi(title)
            );
            return;
        }
        if text.starts_with("##[endgroup]") || text.starts_with("::endgroup::") {
            self.group = None;
            return;
        }
        let group = self
            .group
            .map(|g| format!(" data-in=\"{g}\""))
            .unwrap_or_default();
        let (class, body) = match annotation(text) {
            Some((level, message)) => {
                self.annotations.push(Annotation {
                    line: n,
                    level,
                    text: message.to_string(),
                });
                (format!("l {level}"), ansi(message))
            }
            None => ("l".to_string(), ansi(text)),
        };
        let _ = write!(
            out,
            "<div class=\"{class}\" id=\"L{n}\"{group}><a href=\"#L{n}\">{n}</a><span>{body}</span></div>"
        );
    }
}
