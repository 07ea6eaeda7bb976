//! The block-style YAML fast path against `saphyr-parser`: wherever the fast path reads a
//! file, the tree (values, styles, positions) and the diagnostics are the general
//! reader's; where it cannot be sure, it declines and the general reader decides.

use crate::support::corpus_dir;
use tesseract_ci::spec::yaml::{Flavor, Reader, parse_str_by};

/// Both readers on `text`: `Some(true)` when the fast path read it (and agreed),
/// `Some(false)` when it declined; panics on any disagreement.
fn compare(name: &str, text: &str, flavor: Flavor) -> bool {
    let general = parse_str_by(name, text, flavor, Reader::General).expect("general reader");
    match parse_str_by(name, text, flavor, Reader::BlockOnly) {
        None => false,
        Some(fast) => {
            assert_eq!(
                fast.0, general.0,
                "{name}: the fast path's tree differs\n{text}"
            );
            assert_eq!(
                fast.1, general.1,
                "{name}: the fast path's diagnostics differ\n{text}"
            );
            true
        }
    }
}

/// Each case: YAML, and whether the fast path must read it (`false`: it must decline).
const CASES: &[(&str, bool)] = &[
    ("on: push\njobs:\n  a:\n    runs-on: x\n", true),
    (
        "# lead\n\nname: bench # trailing\non: [push, 'pull_request', \"x\"]\n",
        true,
    ),
    ("a:   # comment\nb:\nc:\n", true),
    ("steps:\n- run: a\n  name: b\n- uses: c\nafter: 1\n", true),
    (
        "list:\n  - a\n  - - nested\n    - two\n  -\n  - \n  -   z: 1\n      w: 2\n",
        true,
    ),
    ("run: |\n  line1\n    line2\n\n  line3\n\n\nnext: x\n", true),
    (
        "run: |-\n   x  \n   y\nfold: >\n  a\n  b\nstrip: >-\n  c\n",
        true,
    ),
    (
        "'quoted key': 'it''s'\n\"dq\": \"a b: c\"\nempty: ''\ne2: \"\"\n",
        true,
    ),
    (
        "url: http://x#y\nhash: a #b\ncolon: a:b\nflow: [ a b , c ]\nnone: []\n",
        true,
    ),
    ("---\nname: x\n", true),
    ("name: café 🚀\nkey: ünï: ok\n", false),
    ("name: café 🚀\nnext: [ä, ö]\n", true),
    ("k: v\n  continued\n  -again\nx:\n  v\n  w # c\n", true),
    ("- item\n  more  \n- k: a\n   b\n", true),
    ("k: v # c\n  continued\n", false),
    ("k: v\n  [x]\n", false),
    ("k: v\n  a: b\n", false),
    ("a: &x 1\nb: *x\n", false),
    ("a: !reference [x]\n", false),
    (
        "a: {b: 1, 'c': \"d e\"}\ne: {}\nm:\n  - { os: x, f: \"\" }\n",
        true,
    ),
    ("a: {\"b\":1}\n", false),
    ("a: {b: [1]}\n", false),
    ("a: {b}\n", false),
    ("a: \"esc\\n\"\n", false),
    ("a: 'multi\n  line'\n", false),
    ("a:\n\tb: 1\n", false),
    ("a: 1\r\nb: 2\r\n", false),
    ("on: push\0\n", false),
    ("a: x\u{7f}\n", false),
    ("a: x\u{85}y\n", false),
    ("\u{feff}a: 1\n", false),
    ("a: 1\n---\nb: 2\n", false),
    ("spec:\n  inputs: {}\n---\njob:\n  script: x\n", false),
    ("? complex\n: value\n", false),
    ("a: b: c\n", false),
    ("a:\n  b: 1\n c: 2\n", false),
    ("- a\nb: 1\n", false),
    ("a: 1\n- b\n", false),
    ("a: [x, y\n", false),
    ("a: [x,]\n", false),
    ("a: |+\n  keep\n\n", false),
    ("a: |2\n   x\n", false),
    ("a: |\n\n  late\n", false),
    ("a: >\n  one\n\n  two\n", false),
    ("a: 'x'y\n", false),
    ("dup: 1\ndup: 2\n", true),
    ("spaced   : key\n\"q\"  : v\n", true),
    ("just a scalar\n---\n", false),
    ("just a scalar\ncontinued\n", true),
];

#[test]
fn the_fast_path_reads_the_common_forms_exactly_as_saphyr_does() {
    let long_key = format!("{}: v\n", "k".repeat(1100));
    let cases = CASES.iter().copied().chain([(long_key.as_str(), false)]);
    for (i, (text, fast)) in cases.enumerate() {
        let name = format!("case{i}.yml");
        for flavor in [Flavor::GitHub, Flavor::GitLab] {
            assert_eq!(
                compare(&name, text, flavor),
                fast,
                "{name}: the fast path {} it\n{text}",
                if fast { "declined" } else { "read" }
            );
        }
    }
}

fn yaml_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read corpus dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            out.push(path);
        }
    }
}

/// What the mutations put into a line.
const INDICATORS: &[&str] = &[
    ": ", " #", "- ", "'", "\"", "|", ">", "[", "]", "{", "}", ",", "&a ", "*a", "!t ", "\t", "\0",
    "? ", "---", "\\", " ",
];

/// Every corpus file, and each one with one line changed — its indentation moved by a
/// space, or a YAML indicator put into it (mostly invalid YAML, or another tree):
/// the fast path agrees or declines, never differs.
#[test]
fn the_fast_path_agrees_with_saphyr_on_the_corpus_and_its_mutations() {
    let Some(root) = corpus_dir("") else {
        return;
    };
    let mut files = Vec::new();
    for kind in ["github", "gitlab"] {
        yaml_files(&root.join(kind), &mut files);
    }
    assert!(files.len() >= 100, "corpus has {} YAML files", files.len());
    let mut read = 0;
    let mut mutants = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        let name = file.display().to_string();
        let flavor = if name.contains("gitlab") {
            Flavor::GitLab
        } else {
            Flavor::GitHub
        };
        if !compare(&name, &text, flavor) {
            continue;
        }
        read += 1;
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().enumerate().take(80) {
            let indicator = INDICATORS[n % INDICATORS.len()];
            // After the indentation, in the middle, or at the end, in turn.
            let indent = line.len() - line.trim_start_matches(' ').len();
            let at = match n / INDICATORS.len() % 3 {
                0 => indent,
                1 => (0..=line.len() / 2)
                    .rev()
                    .find(|&i| line.is_char_boundary(i))
                    .unwrap_or(0),
                _ => line.len(),
            };
            let inserted = format!("{}{indicator}{}", &line[..at], &line[at..]);
            let moved = [
                format!(" {line}"),
                line.strip_prefix(' ').unwrap_or(line).to_string(),
            ];
            for changed in moved.into_iter().chain([inserted]) {
                let mut variant = lines.clone();
                variant[n] = &changed;
                let variant = variant.join("\n") + "\n";
                compare(
                    &format!("{name} (line {} changed)", n + 1),
                    &variant,
                    flavor,
                );
                mutants += 1;
            }
        }
    }
    eprintln!(
        "fast path read {read} of {} corpus files; {mutants} mutants compared",
        files.len()
    );
    // The fast path is for the common case: most real files must take it.
    assert!(
        read * 2 >= files.len(),
        "fast path read only {read} of {}",
        files.len()
    );
}
