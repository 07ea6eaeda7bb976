//! Diagnostics as data: a located message (`file:line:col`) with an optional `help:`,
//! rendered rustc-style with the source line and a caret, or serialized as JSON.

use serde::Serialize;
use std::fmt::Write as _;

/// A 1-based position in a source file (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
    /// Which file of a multi-file configuration (GitLab includes) the position is in:
    /// an index into the front end's file table, 0 for the file being parsed.
    #[serde(skip)]
    pub origin: u16,
}

impl Pos {
    pub fn new(line: u32, col: u32) -> Self {
        Pos {
            line,
            col,
            origin: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: u32,
    pub col: u32,
    pub severity: Severity,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Width of the caret underline, in characters (at least 1).
    #[serde(skip)]
    pub width: u32,
}

impl Diagnostic {
    pub fn error(file: &str, pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_string(),
            line: pos.line,
            col: pos.col,
            severity: Severity::Error,
            message: message.into(),
            help: None,
            width: 1,
        }
    }

    pub fn warning(file: &str, pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(file, pos, message)
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_width(mut self, width: usize) -> Self {
        self.width = width.clamp(1, 200) as u32;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders `path:line:col: error: message`, the source line with a caret, and `help:`,
    /// as plain text (stored, sent to forges and APIs).
    pub fn render(&self, source: Option<&str>) -> String {
        anstream::adapter::strip_str(&self.render_styled(source)).to_string()
    }

    /// [`Diagnostic::render`] styled like rustc's (ANSI; an `anstream` stream drops the
    /// styles where colour is off: `--color`, `NO_COLOR`, not a terminal).
    pub fn render_styled(&self, source: Option<&str>) -> String {
        use anstyle::{AnsiColor, Style};
        let (kind, colour) = match self.severity {
            Severity::Error => ("error", AnsiColor::Red),
            Severity::Warning => ("warning", AnsiColor::Yellow),
        };
        let mark = Style::new().bold().fg_color(Some(colour.into()));
        let bold = Style::new().bold();
        let gutter_style = Style::new().bold().fg_color(Some(AnsiColor::Blue.into()));
        let mut out = format!(
            "{bold}{}:{}:{}:{bold:#} {mark}{kind}{mark:#}{bold}: {}{bold:#}\n",
            self.file, self.line, self.col, self.message
        );
        let line_text = source.and_then(|s| s.lines().nth(self.line.saturating_sub(1) as usize));
        if let Some(text) = line_text {
            let text: String = text.chars().take(300).collect();
            let gutter = self.line.to_string();
            let pad = " ".repeat(gutter.len());
            let indent: String = text
                .chars()
                .take(self.col.saturating_sub(1) as usize)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let carets = "^".repeat(self.width as usize);
            let _ = writeln!(out, "{gutter_style}{pad} |{gutter_style:#}");
            let _ = writeln!(out, "{gutter_style}{gutter} |{gutter_style:#} {text}");
            let _ = writeln!(
                out,
                "{gutter_style}{pad} |{gutter_style:#} {indent}{mark}{carets}{mark:#}"
            );
        }
        if let Some(help) = &self.help {
            let _ = writeln!(
                out,
                "  {gutter_style}={gutter_style:#} {bold}help{bold:#}: {help}"
            );
        }
        out
    }
}

/// The closest candidate to `word`, if any is close enough to be a plausible typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word_lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&word_lower, &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// A TOML file read into `T`; an error names the file, line and column.
pub fn from_toml<T: serde::de::DeserializeOwned>(text: &str, file: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start).min(text.len());
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!("{file}:{line}:{col}: {}", e.message())
    })
}
