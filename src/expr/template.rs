//! Strings with embedded `${{ expr }}` segments.

use super::parse::{Expr, parse};

#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    Text(String),
    /// An expression; `offset` is the byte offset of its text inside the whole string.
    Expr {
        expr: Expr,
        source: String,
        offset: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte offset inside the whole string.
    pub offset: usize,
    pub message: String,
}

/// Splits `text` into literal text and parsed expressions.
pub fn parse_template(text: &str) -> Result<Vec<Segment>, TemplateError> {
    let mut segments = Vec::new();
    let mut rest = 0;
    while let Some(found) = text[rest..].find("${{") {
        let open = rest + found;
        if open > rest {
            segments.push(Segment::Text(text[rest..open].to_string()));
        }
        let body_start = open + 3;
        let Some(close) = find_close(&text[body_start..]) else {
            return Err(TemplateError {
                offset: open,
                message: "`${{` is never closed with `}}`".into(),
            });
        };
        let source = &text[body_start..body_start + close];
        let leading = source.len() - source.trim_start().len();
        let expr = parse(source).map_err(|e| TemplateError {
            offset: body_start + e.offset.max(leading),
            message: e.message,
        })?;
        segments.push(Segment::Expr {
            expr,
            source: source.trim().to_string(),
            offset: body_start + leading,
        });
        rest = body_start + close + 2;
    }
    if rest < text.len() {
        segments.push(Segment::Text(text[rest..].to_string()));
    }
    Ok(segments)
}

/// Byte offset of the `}}` that ends an expression, skipping string literals.
fn find_close(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => in_string = !in_string,
            b'}' if !in_string && bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}
