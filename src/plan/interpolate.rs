//! Plan-time evaluation of conditions, `${{ }}` strings and JSON values (matrices, `with:`).

use crate::expr::{self, Context, Segment, Value};
use serde_json::Value as Json;

/// An evaluated `if:`: the overall verdict (with GitHub's implicit `success() &&` when the
/// expression calls no status function) and the value of the expression as written.
pub struct Verdict {
    pub overall: Option<bool>,
    pub own: Option<bool>,
}

pub fn condition(text: Option<&str>, ctx: &dyn Context) -> Verdict {
    let success = ctx.status(expr::Status::Success).truthy();
    let Some(text) = text else {
        return Verdict {
            overall: success,
            own: Some(true),
        };
    };
    let (own, explicit_status) = if text.contains("${{") {
        // Mixed text and `${{ }}`: a string, truthy when non-empty.
        (string(text, ctx).map(|s| !s.is_empty()), false)
    } else {
        match expr::parse(text) {
            Ok(parsed) => (
                expr::truthiness(&parsed, ctx),
                calls_status_function(&parsed),
            ),
            Err(_) => (None, false),
        }
    };
    let overall = match (explicit_status, success, own) {
        (true, _, own) => own,
        (false, Some(false), _) | (false, _, Some(false)) => Some(false),
        (false, Some(true), own) => own,
        (false, None, _) => None,
    };
    Verdict { overall, own }
}

fn calls_status_function(e: &expr::Expr) -> bool {
    use expr::Expr::*;
    match e {
        Call { name, args, .. } => {
            matches!(
                name.to_ascii_lowercase().as_str(),
                "success" | "failure" | "always" | "cancelled"
            ) || args.iter().any(calls_status_function)
        }
        Index(a, b) | Binary(_, a, b) => calls_status_function(a) || calls_status_function(b),
        Star(a) | Not(a) => calls_status_function(a),
        Literal(_) | Context { .. } => false,
    }
}

/// Interpolates a string; `None` when some expression is only known at run time.
pub fn string(text: &str, ctx: &dyn Context) -> Option<String> {
    if !text.contains("${{") {
        return Some(text.to_string());
    }
    let mut out = String::new();
    for seg in expr::parse_template(text).ok()? {
        match seg {
            Segment::Text(t) => out.push_str(&t),
            Segment::Expr { expr, .. } => {
                let v = expr::evaluate(&expr, ctx);
                if v.is_unknown() {
                    return None;
                }
                out.push_str(&v.to_display());
            }
        }
    }
    Some(out)
}

/// Interpolates a string, keeping `${{ expr }}` text for the parts that are not known yet.
pub fn string_or_source(text: &str, ctx: &dyn Context) -> String {
    let Ok(segments) = expr::parse_template(text) else {
        return text.to_string();
    };
    let mut out = String::new();
    for seg in segments {
        match seg {
            Segment::Text(t) => out.push_str(&t),
            Segment::Expr { expr, source, .. } => match expr::evaluate(&expr, ctx) {
                Value::Unknown => out.push_str(&format!("${{{{ {source} }}}}")),
                v => out.push_str(&v.to_display()),
            },
        }
    }
    out
}

/// Evaluates expressions inside a JSON value; a string that is one whole expression takes
/// the expression's value (so `fromJSON(...)` yields arrays/objects). `None` if unknown.
pub fn json(value: &Json, ctx: &dyn Context) -> Option<Json> {
    Some(match value {
        Json::String(s) if s.contains("${{") => {
            if let Some(body) = crate::spec::check::whole_expression_body(s) {
                let parsed = expr::parse(body.trim()).ok()?;
                let v = expr::evaluate(&parsed, ctx);
                if v.is_unknown() || contains_unknown(&v) {
                    return None;
                }
                v.to_json()
            } else {
                Json::String(string(s, ctx)?)
            }
        }
        Json::Array(items) => {
            Json::Array(items.iter().map(|i| json(i, ctx)).collect::<Option<_>>()?)
        }
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| Some((k.clone(), json(v, ctx)?)))
                .collect::<Option<_>>()?,
        ),
        other => other.clone(),
    })
}

fn contains_unknown(v: &Value) -> bool {
    match v {
        Value::Unknown => true,
        Value::Array(a) => a.iter().any(contains_unknown),
        Value::Object(o) => o.values().any(contains_unknown),
        _ => false,
    }
}
