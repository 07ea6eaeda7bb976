//! Evaluation: value-returning `&&`/`||`, loose comparisons, the documented functions, and
//! `Value::Unknown` for anything that can only be known at run time.

use super::parse::{BinOp, Expr};
use super::value::Value;
use std::cmp::Ordering;

/// The job status functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    Failure,
    Always,
    Cancelled,
}

/// What an evaluation can see: named contexts and the status of the job so far.
pub trait Context {
    /// A context by (lower-case) name; `None` when it is not known yet.
    fn named(&self, name: &str) -> Option<&Value>;
    fn status(&self, f: Status) -> Value;
    fn hash_files(&self, _patterns: &[String]) -> Value {
        Value::Unknown
    }
}

static UNKNOWN: Value = Value::Unknown;

/// Resolves `a.b[0]['c']` chains by reference, so only the leaf is ever cloned.
/// `None` when the expression is not such a chain (or needs an owned result).
fn lookup<'c>(expr: &Expr, ctx: &'c dyn Context) -> Option<&'c Value> {
    match expr {
        Expr::Context { name, .. } => {
            Some(ctx.named(&name.to_ascii_lowercase()).unwrap_or(&UNKNOWN))
        }
        Expr::Index(target, index) => {
            let target = lookup(target, ctx)?;
            match (target, index.as_ref()) {
                (Value::Unknown, _) => Some(&UNKNOWN),
                (Value::Object(_), Expr::Literal(Value::String(key))) => target.property_ref(key),
                _ => None,
            }
        }
        _ => None,
    }
}

pub fn evaluate(expr: &Expr, ctx: &dyn Context) -> Value {
    if let Some(v) = lookup(expr, ctx) {
        return v.clone();
    }
    match expr {
        Expr::Literal(v) => v.clone(),
        Expr::Context { .. } => Value::Unknown,
        Expr::Index(target, index) => {
            let target = evaluate(target, ctx);
            let index = evaluate(index, ctx);
            index_value(&target, &index)
        }
        Expr::Star(target) => match evaluate(target, ctx) {
            Value::Object(map) if map.keys().any(|k| k.starts_with('\0')) => Value::Unknown,
            Value::Object(map) => Value::Array(map.into_values().collect()),
            Value::Array(items) => Value::Array(items),
            Value::Unknown => Value::Unknown,
            _ => Value::Array(Vec::new()),
        },
        Expr::Not(inner) => match evaluate(inner, ctx).truthy() {
            Some(b) => Value::Bool(!b),
            None => Value::Unknown,
        },
        Expr::Binary(BinOp::And, l, r) => {
            let lv = evaluate(l, ctx);
            match lv.truthy() {
                Some(false) => lv,
                Some(true) => evaluate(r, ctx),
                None => Value::Unknown,
            }
        }
        Expr::Binary(BinOp::Or, l, r) => {
            let lv = evaluate(l, ctx);
            match lv.truthy() {
                Some(true) => lv,
                Some(false) => evaluate(r, ctx),
                None => Value::Unknown,
            }
        }
        Expr::Binary(op, l, r) => {
            let (lv, rv) = (evaluate(l, ctx), evaluate(r, ctx));
            let result = match op {
                BinOp::Eq => lv.loose_eq(&rv),
                BinOp::Ne => lv.loose_eq(&rv).map(|b| !b),
                _ if lv.is_unknown() || rv.is_unknown() => None,
                BinOp::Lt => Some(lv.loose_cmp(&rv) == Some(Ordering::Less)),
                BinOp::Le => Some(matches!(
                    lv.loose_cmp(&rv),
                    Some(Ordering::Less | Ordering::Equal)
                )),
                BinOp::Gt => Some(lv.loose_cmp(&rv) == Some(Ordering::Greater)),
                BinOp::Ge => Some(matches!(
                    lv.loose_cmp(&rv),
                    Some(Ordering::Greater | Ordering::Equal)
                )),
                BinOp::And | BinOp::Or => unreachable!("handled above"),
            };
            result.map_or(Value::Unknown, Value::Bool)
        }
        Expr::Call { name, args, .. } => call(&name.to_ascii_lowercase(), args, ctx),
    }
}

/// Truthiness of an expression, known even when its value is not: `unknown || true` is
/// truthy whichever operand `||` returns. `None` when it depends on run-time values.
pub fn truthiness(expr: &Expr, ctx: &dyn Context) -> Option<bool> {
    match expr {
        Expr::Binary(BinOp::And, l, r) => match truthiness(l, ctx) {
            Some(false) => Some(false),
            Some(true) => truthiness(r, ctx),
            None => truthiness(r, ctx).filter(|t| !t),
        },
        Expr::Binary(BinOp::Or, l, r) => match truthiness(l, ctx) {
            Some(true) => Some(true),
            Some(false) => truthiness(r, ctx),
            None => truthiness(r, ctx).filter(|t| *t),
        },
        Expr::Not(inner) => truthiness(inner, ctx).map(|t| !t),
        _ => evaluate(expr, ctx).truthy(),
    }
}

fn index_value(target: &Value, index: &Value) -> Value {
    match (target, index) {
        (Value::Unknown, _) | (_, Value::Unknown) => Value::Unknown,
        (Value::Object(_), Value::String(key)) => target.property(key),
        (Value::Array(items), Value::Number(n)) if *n >= 0.0 => items
            .get(n.floor() as usize)
            .cloned()
            .unwrap_or(Value::Null),
        (Value::Array(items), Value::String(key)) => {
            // Property access on a filtered array (`a.*.b`) maps over its items.
            Value::Array(
                items
                    .iter()
                    .map(|item| item.property(key))
                    .filter(|v| *v != Value::Null)
                    .collect(),
            )
        }
        _ => Value::Null,
    }
}

fn call(name: &str, args: &[Expr], ctx: &dyn Context) -> Value {
    match name {
        "success" => return ctx.status(Status::Success),
        "failure" => return ctx.status(Status::Failure),
        "always" => return ctx.status(Status::Always),
        "cancelled" => return ctx.status(Status::Cancelled),
        _ => {}
    }
    if name == "case" {
        // The first predicate that is `true` picks its value; else the last argument. Only
        // what is needed is evaluated.
        let (pairs, default) = args.split_at(args.len().saturating_sub(1));
        for pair in pairs.chunks(2) {
            let [predicate, value] = pair else { break };
            match evaluate(predicate, ctx) {
                Value::Bool(true) => return evaluate(value, ctx),
                Value::Unknown => return Value::Unknown,
                _ => {}
            }
        }
        return default.first().map_or(Value::Null, |d| evaluate(d, ctx));
    }
    let values: Vec<Value> = args.iter().map(|a| evaluate(a, ctx)).collect();
    if name == "hashfiles" {
        let patterns = values.iter().map(Value::to_display).collect::<Vec<_>>();
        return if values.iter().any(Value::is_unknown) {
            Value::Unknown
        } else {
            ctx.hash_files(&patterns)
        };
    }
    if values.iter().any(Value::is_unknown) {
        return Value::Unknown;
    }
    let arg = |i: usize| values.get(i).cloned().unwrap_or(Value::Null);
    match name {
        "contains" => Value::Bool(match arg(0) {
            Value::Array(items) => items.iter().any(|i| i.loose_eq(&arg(1)) == Some(true)),
            hay => hay
                .to_display()
                .to_lowercase()
                .contains(&arg(1).to_display().to_lowercase()),
        }),
        "startswith" => Value::Bool(
            arg(0)
                .to_display()
                .to_lowercase()
                .starts_with(&arg(1).to_display().to_lowercase()),
        ),
        "endswith" => Value::Bool(
            arg(0)
                .to_display()
                .to_lowercase()
                .ends_with(&arg(1).to_display().to_lowercase()),
        ),
        "format" => format(&arg(0).to_display(), &values[1.min(values.len())..])
            .map_or(Value::Unknown, Value::String),
        "join" => {
            let sep = if values.len() > 1 {
                arg(1).to_display()
            } else {
                ",".into()
            };
            match arg(0) {
                Value::Array(items) => Value::String(
                    items
                        .iter()
                        .map(Value::to_display)
                        .collect::<Vec<_>>()
                        .join(&sep),
                ),
                other => Value::String(other.to_display()),
            }
        }
        "tojson" => {
            Value::String(serde_json::to_string_pretty(&arg(0).to_json()).unwrap_or_default())
        }
        "fromjson" => match serde_json::from_str::<serde_json::Value>(&arg(0).to_display()) {
            Ok(v) => Value::from_json(&v),
            Err(_) => Value::Unknown,
        },
        _ => Value::Unknown,
    }
}

/// `format('{0} {1}', a, b)` with `{{`/`}}` escapes; `None` on a malformed format string.
pub(super) fn format(template: &str, args: &[Value]) -> Option<String> {
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut digits = String::new();
                for d in chars.by_ref() {
                    if d == '}' {
                        break;
                    }
                    digits.push(d);
                }
                let index: usize = digits.parse().ok()?;
                out.push_str(&args.get(index)?.to_display());
            }
            '}' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}
