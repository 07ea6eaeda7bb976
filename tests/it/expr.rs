//! Expressions: grammar, GitHub's coercions, functions, and error offsets.

use serde_json::json;
use tesseract_ci::expr::{Context, Location, Status, Value, check, evaluate, parse, truthiness};

struct Ctx(Value);

impl Ctx {
    fn new(json: serde_json::Value) -> Ctx {
        Ctx(Value::from_json(&json))
    }
}

impl Context for Ctx {
    fn named(&self, name: &str) -> Option<&Value> {
        match &self.0 {
            Value::Object(map) => map.get(name),
            _ => None,
        }
    }
    fn status(&self, f: Status) -> Value {
        Value::Bool(matches!(f, Status::Success | Status::Always))
    }
}

fn eval(src: &str) -> serde_json::Value {
    let ctx = Ctx::new(json!({
        "github": {"event_name": "push", "ref": "refs/tags/v1.2.3", "event": {"commits": [{"id": "a"}, {"id": "b"}]}},
        "matrix": {"os": "ubuntu-latest", "rust": 1.70},
        "inputs": {"flag": true, "n": 3, "json": "[1, 2, 3]"},
    }));
    let parsed = parse(src).unwrap_or_else(|e| panic!("{src}: {e:?}"));
    let v = evaluate(&parsed, &ctx);
    assert!(!v.is_unknown(), "{src} evaluated to unknown");
    v.to_json()
}

#[test]
fn evaluation_table() {
    let table: &[(&str, serde_json::Value)] = &[
        // Literals.
        ("null", json!(null)),
        ("true", json!(true)),
        ("0x10", json!(16)),
        ("-1.5e1", json!(-15)),
        ("'it''s'", json!("it's")),
        // Loose equality with coercion; strings compare case-insensitively.
        ("1 == 1", json!(true)),
        ("'abc' == 'ABC'", json!(true)),
        ("null == 0", json!(true)),
        ("'' == 0", json!(true)),
        ("'1' == 1", json!(true)),
        ("true == 1", json!(true)),
        ("'a' == 1", json!(false)),
        ("'x' != 'X'", json!(false)),
        ("NaN == NaN", json!(false)),
        ("'abc' < 'ABD'", json!(true)),
        ("2 > '10'", json!(false)),
        ("1 <= 1", json!(true)),
        // && and || return one of their operands.
        ("1 && 'x'", json!("x")),
        ("0 || 'y'", json!("y")),
        ("null && 'x'", json!(null)),
        ("'' || 0", json!(0)),
        ("!''", json!(true)),
        ("!'false'", json!(false)),
        ("!(1 == 2) && (2 > 1)", json!(true)),
        // Contexts, case-insensitive names and keys, indexing, filters.
        ("github.event_name", json!("push")),
        ("GitHub.EVENT_NAME", json!("push")),
        ("github['event_name']", json!("push")),
        ("github.nope", json!(null)),
        ("github.event.commits[1].id", json!("b")),
        ("github.event.commits.*.id", json!(["a", "b"])),
        ("matrix.rust", json!(1.7)),
        ("inputs.flag && inputs.n", json!(3)),
        // Functions.
        ("contains('Hello world', 'WORLD')", json!(true)),
        ("contains(fromJSON('[\"a\",\"b\"]'), 'B')", json!(true)),
        ("contains(github.event.commits.*.id, 'c')", json!(false)),
        ("startsWith(github.ref, 'refs/tags/')", json!(true)),
        ("endsWith('file.TXT', '.txt')", json!(true)),
        ("format('{0}-{1}-{0}', 'a', 1)", json!("a-1-a")),
        ("format('{{literal}} {0}', 'x')", json!("{literal} x")),
        ("join(fromJSON(inputs.json), '+')", json!("1+2+3")),
        ("join(fromJSON('[\"a\",\"b\"]'))", json!("a,b")),
        ("join('solo', '-')", json!("solo")),
        ("toJSON(fromJSON('{\"a\":1}'))", json!("{\n  \"a\": 1\n}")),
        ("fromJSON('true')", json!(true)),
        ("fromJson('{\"x\": [1]}').x[0]", json!(1)),
        ("success()", json!(true)),
        ("always() && !cancelled()", json!(true)),
    ];
    for (src, expected) in table {
        assert_eq!(eval(src), *expected, "{src}");
    }
}

#[test]
fn unknown_values_propagate_but_short_circuit() {
    let ctx = Ctx::new(json!({"github": {"event_name": "push"}}));
    let table = [
        ("needs.build.result == 'success'", None),
        (
            "github.event_name == 'pull_request' && needs.a.outputs.x",
            Some(false),
        ),
        ("github.event_name == 'push' || secrets.TOKEN", Some(true)),
        ("secrets.TOKEN && false", Some(false)),
        ("vars.X || true", Some(true)),
        ("!vars.X", None),
    ];
    // As values, `unknown || x` is unknown: `||` may return either operand.
    assert!(evaluate(&parse("vars.X || 'fallback'").expect("parse"), &ctx).is_unknown());
    for (src, expected) in table {
        assert_eq!(truthiness(&parse(src).expect(src), &ctx), expected, "{src}");
    }
}

#[test]
fn syntax_errors_point_inside_the_expression() {
    let table = [
        ("1 ==", 4, "expected a value"),
        ("a.", 2, "expected a property name"),
        ("'open", 0, "unterminated string"),
        ("f(1, 2", 6, "expected `,` or `)`"),
        ("a b", 2, "unexpected `b`"),
        ("1 = 2", 2, "unexpected character `=`"),
        ("(1", 2, "expected `)`"),
        ("", 0, "empty expression"),
    ];
    for (src, offset, message) in table {
        let e = parse(src).expect_err(src);
        assert_eq!(e.offset, offset, "{src}: {e:?}");
        assert!(e.message.contains(message), "{src}: {}", e.message);
    }
}

#[test]
fn static_checks_per_location() {
    let table: &[(&str, Location, &[&str])] = &[
        (
            "env.X == 'a'",
            Location::JobIf,
            &["the `env` context is not available here"],
        ),
        ("env.X == 'a'", Location::StepIf, &[]),
        (
            "matrix.os",
            Location::JobIf,
            &["the `matrix` context is not available here"],
        ),
        (
            "gihtub.ref",
            Location::Step,
            &["unrecognized named-value `gihtub`"],
        ),
        (
            "contans('a', 'b')",
            Location::Step,
            &["unrecognized function `contans`"],
        ),
        (
            "contains('a')",
            Location::Step,
            &["`contains` takes 2 argument(s), got 1"],
        ),
        (
            "success()",
            Location::Job,
            &["`success()` is only available in `if`"],
        ),
        (
            "hashFiles('**/Cargo.lock')",
            Location::Job,
            &["`hashFiles()` is only available in steps"],
        ),
        ("hashFiles('a', 'b')", Location::Step, &[]),
        (
            "format('{0}', github.sha, vars.x, inputs.y)",
            Location::RunName,
            &[],
        ),
    ];
    for (src, location, expected) in table {
        let errors: Vec<String> = check(&parse(src).expect(src), *location)
            .into_iter()
            .map(|e| e.1)
            .collect();
        assert_eq!(errors, *expected, "{src} in {location:?}");
    }
}
