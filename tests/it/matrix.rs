//! Matrix expansion: GitHub's documented examples.

use serde_json::{Value, json};
use tesseract_ci::plan::matrix::{display_values, expand};

fn run(m: Value) -> Vec<Value> {
    expand(m.as_object().expect("object"))
        .expect("expands")
        .into_iter()
        .map(|c| Value::Object(c.into_iter().collect()))
        .collect()
}

#[test]
fn include_merges_without_overwriting_original_values() {
    // https://docs.github.com/actions: "Expanding or adding matrix configurations".
    let m = json!({
        "fruit": ["apple", "pear"],
        "animal": ["cat", "dog"],
        "include": [
            {"color": "green"},
            {"color": "pink", "animal": "cat"},
            {"fruit": "apple", "shape": "circle"},
            {"fruit": "banana"},
            {"fruit": "banana", "animal": "cat"},
        ]
    });
    assert_eq!(
        run(m),
        vec![
            json!({"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"}),
            json!({"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"}),
            json!({"fruit": "pear", "animal": "cat", "color": "pink"}),
            json!({"fruit": "pear", "animal": "dog", "color": "green"}),
            json!({"fruit": "banana"}),
            json!({"fruit": "banana", "animal": "cat"}),
        ]
    );
}

#[test]
fn include_adds_to_one_combination() {
    let m = json!({
        "os": ["windows-latest", "ubuntu-latest"],
        "node": [14, 16],
        "include": [{"os": "windows-latest", "node": 16, "npm": 6}]
    });
    let combos = run(m);
    assert_eq!(combos.len(), 4);
    assert_eq!(
        combos[1],
        json!({"os": "windows-latest", "node": 16, "npm": 6})
    );
    assert_eq!(combos[0], json!({"os": "windows-latest", "node": 14}));
}

#[test]
fn exclude_removes_partial_matches() {
    let m = json!({
        "os": ["macos-latest", "windows-latest"],
        "version": [12, 14, 16],
        "environment": ["staging", "production"],
        "exclude": [
            {"os": "macos-latest", "version": 12, "environment": "production"},
            {"os": "windows-latest", "version": 16},
        ]
    });
    let combos = run(m);
    assert_eq!(combos.len(), 12 - 1 - 2);
    assert!(
        !combos
            .contains(&json!({"os": "macos-latest", "version": 12, "environment": "production"}))
    );
    assert!(
        combos
            .iter()
            .all(|c| !(c["os"] == "windows-latest" && c["version"] == 16))
    );
}

#[test]
fn include_only_matrix() {
    let m = json!({"include": [
        {"site": "production", "datacenter": "site-a"},
        {"site": "staging", "datacenter": "site-b"},
    ]});
    assert_eq!(run(m).len(), 2);
}

#[test]
fn exclude_then_include_can_restore_with_extra_keys() {
    let m = json!({
        "os": ["ubuntu", "windows"],
        "exclude": [{"os": "windows"}],
        "include": [{"os": "windows", "experimental": true}],
    });
    assert_eq!(
        run(m),
        vec![
            json!({"os": "ubuntu"}),
            json!({"os": "windows", "experimental": true})
        ]
    );
}

#[test]
fn more_than_256_combinations_is_an_error() {
    let values: Vec<u32> = (0..17).collect();
    let m = json!({"a": values, "b": values});
    let e = expand(m.as_object().expect("object")).expect_err("17*17 > 256");
    assert!(e.contains("289 combinations"), "{e}");
    let ok = json!({"a": (0..16).collect::<Vec<_>>(), "b": (0..16).collect::<Vec<_>>()});
    assert_eq!(run(ok).len(), 256);
}

#[test]
fn display_values_as_github_shows_them() {
    let combo =
        run(json!({"rust": ["stable"], "os": ["ubuntu-latest"], "v": [1.5], "flag": [true]}));
    let c = combo[0]
        .as_object()
        .expect("object")
        .clone()
        .into_iter()
        .collect();
    assert_eq!(display_values(&c), "(stable, ubuntu-latest, 1.5, true)");
}
