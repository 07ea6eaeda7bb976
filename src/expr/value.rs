//! Expression values and GitHub's coercion rules (truthiness, loose equality, ordering).

use indexmap::IndexMap;
use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Value>),
    Object(IndexMap<String, Value>),
    /// Known only at run time (e.g. `needs.*.outputs` while planning).
    Unknown,
}

/// Key marking a partly known object (see [`Value::partial_object`]).
const PARTIAL: &str = "\u{0}partial";

impl Value {
    /// An object of which only some keys are known (e.g. `github` while planning):
    /// looking up any other key gives `Unknown` instead of null.
    pub fn partial_object(mut map: IndexMap<String, Value>) -> Value {
        map.insert(PARTIAL.into(), Value::Bool(true));
        Value::Object(map)
    }

    pub fn from_json(v: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match v {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
            J::String(s) => Value::String(s.clone()),
            J::Array(a) => Value::Array(a.iter().map(Value::from_json).collect()),
            J::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null | Value::Unknown => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => number_to_json(*n),
            Value::String(s) => J::String(s.clone()),
            Value::Array(a) => J::Array(a.iter().map(Value::to_json).collect()),
            Value::Object(o) => J::Object(
                o.iter()
                    .filter(|(k, _)| *k != PARTIAL)
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown)
    }

    /// GitHub truthiness; `None` when the value is not known yet.
    pub fn truthy(&self) -> Option<bool> {
        Some(match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => *n != 0.0 && !n.is_nan(),
            Value::String(s) => !s.is_empty(),
            Value::Array(_) | Value::Object(_) => true,
            Value::Unknown => return None,
        })
    }

    /// Coercion to number for comparisons: null→0, bool→0/1, string→parsed (''→0, junk→NaN).
    pub fn to_number(&self) -> f64 {
        match self {
            Value::Null => 0.0,
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::Number(n) => *n,
            Value::String(s) => parse_number(s),
            _ => f64::NAN,
        }
    }

    /// String conversion as used by templates and string functions.
    pub fn to_display(&self) -> String {
        match self {
            Value::Null | Value::Unknown => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => format_number(*n),
            Value::String(s) => s.clone(),
            Value::Array(_) => "Array".into(),
            Value::Object(_) => "Object".into(),
        }
    }

    /// Case-insensitive property lookup, as GitHub does for object keys.
    pub fn property(&self, name: &str) -> Value {
        match self {
            Value::Object(_) => self.property_ref(name).cloned().unwrap_or(Value::Null),
            Value::Unknown => Value::Unknown,
            _ => Value::Null,
        }
    }

    /// Like [`Value::property`] on an object, by reference (`None` for non-objects).
    pub fn property_ref(&self, name: &str) -> Option<&Value> {
        static NULL: Value = Value::Null;
        static UNKNOWN: Value = Value::Unknown;
        let Value::Object(map) = self else {
            return None;
        };
        let found = map.get(name).or_else(|| {
            map.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        });
        Some(match found {
            Some(v) => v,
            None if map.contains_key(PARTIAL) => &UNKNOWN,
            None => &NULL,
        })
    }

    /// Loose equality with GitHub's coercions; `None` when unknown.
    pub fn loose_eq(&self, other: &Value) -> Option<bool> {
        use Value::*;
        Some(match (self, other) {
            (Unknown, _) | (_, Unknown) => return None,
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Number(a), Number(b)) => a == b,
            (String(a), String(b)) => a.to_lowercase() == b.to_lowercase(),
            (Array(_) | Object(_), _) | (_, Array(_) | Object(_)) => std::ptr::eq(self, other),
            (a, b) => a.to_number() == b.to_number(),
        })
    }

    /// Ordering for `<`, `<=`, `>`, `>=`; `None` when incomparable (NaN) or unknown.
    pub fn loose_cmp(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Unknown, _) | (_, Value::Unknown) => None,
            (Value::String(a), Value::String(b)) => Some(a.to_lowercase().cmp(&b.to_lowercase())),
            (a, b) => a.to_number().partial_cmp(&b.to_number()),
        }
    }
}

fn parse_number(s: &str) -> f64 {
    let t = s.trim();
    if t.is_empty() {
        return 0.0;
    }
    if let Some(hex) = t.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).map_or(f64::NAN, |v| v as f64);
    }
    if let Some(oct) = t.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).map_or(f64::NAN, |v| v as f64);
    }
    if t.eq_ignore_ascii_case("infinity") || t.eq_ignore_ascii_case("+infinity") {
        return f64::INFINITY;
    }
    if t.eq_ignore_ascii_case("-infinity") {
        return f64::NEG_INFINITY;
    }
    if t.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) {
        t.parse().unwrap_or(f64::NAN)
    } else {
        f64::NAN
    }
}

pub(super) fn format_number(n: f64) -> String {
    if n.is_nan() {
        "NaN".into()
    } else if n.is_infinite() {
        if n > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn number_to_json(n: f64) -> serde_json::Value {
    if n.fract() == 0.0 && n.abs() < 9e15 {
        serde_json::Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}
