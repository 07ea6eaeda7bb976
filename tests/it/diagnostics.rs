//! Diagnostics: every error in a file, located, with source line, caret and help.

use tesseract_ci::spec::parse_github;

fn render(yaml: &str) -> String {
    let (_, diags) = parse_github("bad.yml", yaml.as_bytes(), "bad.yml");
    diags.iter().map(|d| d.render(Some(yaml))).collect()
}

#[test]
fn all_errors_in_a_file_are_reported() {
    let yaml = r#"name: broken
on:
  push:
    branch: [main]
    tags: ['v[1-']
  pull_request:
    branches: [main]
    branches-ignore: [dev]
  schedule:
    - cron: '0 25 * * *'
    - cron: '0 0 * * *'
      timezone: Europe/Berln
  pish:
jobs:
  build:
    runs-on: ubuntu-latest
    step:
      - run: make
  test:
    needs: [biuld]
    runs-on: ${{ matrix.os }}
    if: env.CI == 'true'
    strategy:
      matrix:
        os: [ubuntu-latest]
        exclude:
          - oss: windows
    steps:
      - id: x
        run: echo ${{ github.sha ==  }}
      - id: x
        uses: actions/checkout
      - run: echo
        uses: ./local
  a:
    needs: b
    runs-on: x
    steps: [{run: a}]
  b:
    needs: a
    runs-on: x
    steps: [{run: b}]
  deploy:
    runs-on: x
    timeout-minutes: soon
    continue-on-error: ${{ contans(github.ref, 'x') }}
    steps:
      - run: ./deploy
        shell: bash
        with: {a: b}
"#;
    insta::assert_snapshot!(render(yaml));
}

#[test]
fn json_diagnostics_are_data() {
    let (_, diags) = parse_github(
        "x.yml",
        b"on: push\njobs:\n  a:\n    runs-on: x\n    stpes: []\n",
        "x.yml",
    );
    let json = serde_json::to_value(&diags).expect("json");
    insta::assert_json_snapshot!(json);
}

#[test]
fn yaml_level_errors() {
    let table: &[(&[u8], &str)] = &[
        (b"on: [push\n", "bad.yml:2:1: error: invalid YAML"),
        (b"a: 1\na: 2\n", "bad.yml:2:1: error: duplicate key `a`"),
        (b"on: push\njobs:\n  x: *nope\n", "invalid YAML"),
        (
            b"---\non: push\n---\non: push\n",
            "bad.yml:3:1: error: a pipeline file must contain a single YAML document",
        ),
        (b"on: push\x00\n", "bad.yml:1:9: error: invalid YAML"),
        (
            b"name: caf\xc3\xa9\nbad: \xff\n",
            "bad.yml:2:6: error: invalid UTF-8 (byte 0xff)",
        ),
        (
            b"- just\n- a list\n",
            "bad.yml:1:1: error: a workflow must be a mapping, found a sequence",
        ),
        (
            b"",
            "bad.yml:1:1: error: a workflow must be a mapping, found null",
        ),
    ];
    for (bytes, expected) in table {
        let (_, diags) = parse_github("bad.yml", bytes, "bad.yml");
        let text: String = diags.iter().map(|d| d.render(None)).collect();
        assert!(
            text.contains(expected),
            "input {:?}\ngot: {text}\nexpected: {expected}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn anchors_resolve_and_merge_keys_are_refused_as_github_refuses_them() {
    // GitHub: anchors and aliases work.
    let yaml = r#"
on: push
jobs:
  a:
    runs-on: &os ubuntu-latest
    steps: [{run: a}]
  b:
    runs-on: *os
    steps: [{run: b}]
"#;
    let (p, diags) = parse_github("m.yml", yaml.as_bytes(), "m.yml");
    assert!(diags.is_empty(), "{diags:#?}");
    let p = p.expect("pipeline");
    assert_eq!(
        p.jobs["b"].runs_on,
        Some(serde_json::json!("ubuntu-latest"))
    );
    // Merge keys do not: an error at each `<<`.
    let yaml = r#"
on: push
jobs:
  a:
    runs-on: ubuntu-latest
    env: &base
      A: "1"
    steps: [{run: a}]
  b:
    runs-on: ubuntu-latest
    env:
      <<: *base
      B: "2"
    steps: [{run: b}]
"#;
    let (_, diags) = parse_github("m.yml", yaml.as_bytes(), "m.yml");
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.render(Some(yaml)))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0]
            .contains("m.yml:12:7: error: GitHub Actions does not support YAML merge keys (`<<`)"),
        "{}",
        errors[0]
    );
}
