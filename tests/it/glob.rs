//! GitHub's filter pattern cheat sheet, every example.

use tesseract_ci::trigger::glob::{Pattern, PatternList};

fn list(patterns: &[&str]) -> PatternList {
    PatternList {
        patterns: patterns
            .iter()
            .map(|p| Pattern::new(p).expect("valid pattern"))
            .collect(),
    }
}

#[test]
fn cheat_sheet_branches_and_tags() {
    let table: &[(&[&str], &[&str], &[&str])] = &[
        (
            &["feature/*"],
            &["feature/my-branch", "feature/your-branch"],
            &["feature/beta-a/my-branch", "feature"],
        ),
        (
            &["feature/**"],
            &[
                "feature/beta-a/my-branch",
                "feature/your-branch",
                "feature/mona/the/octocat",
            ],
            &["features/x"],
        ),
        (
            &["main", "releases/mona-the-octocat"],
            &["main", "releases/mona-the-octocat"],
            &["main2", "releases/x"],
        ),
        (
            &["*"],
            &["main", "releases"],
            &["releases/v1", "users/mona/feature"],
        ),
        (&["**"], &["all/the/branches", "every/tag", "main"], &[]),
        (
            &["*feature"],
            &["mona-feature", "feature", "ver-10-feature"],
            &["feature-x", "a/feature"],
        ),
        (&["v2*"], &["v2", "v2.0", "v2.9"], &["v1.0", "x/v2"]),
        (
            &["v[12].[0-9]+.[0-9]+"],
            &["v1.10.1", "v2.0.0"],
            &["v3.0.0", "v1.x.1", "v1..1"],
        ),
    ];
    check(table);
}

#[test]
fn cheat_sheet_paths() {
    let table: &[(&[&str], &[&str], &[&str])] = &[
        (&["*"], &["README.md", "server.rb"], &["docs/README.md"]),
        (
            &["*.jsx?"],
            &["page.js", "page.jsx"],
            &["page.jsxx", "dir/page.js"],
        ),
        (&["**"], &["all/the/files.md", "x"], &[]),
        (
            &["*.js"],
            &["app.js", "index.js"],
            &["js/index.js", "app.jsx"],
        ),
        (
            &["**.js"],
            &["index.js", "js/index.js", "src/js/app.js"],
            &["index.json"],
        ),
        (
            &["docs/*"],
            &["docs/README.md", "docs/file.txt"],
            &["docs/a/b.md", "README.md"],
        ),
        (
            &["docs/**"],
            &["docs/README.md", "docs/mona/octocat.txt"],
            &["README.md", "mydocs/a"],
        ),
        (
            &["docs/**/*.md"],
            &[
                "docs/README.md",
                "docs/mona/hello-world.md",
                "docs/a/markdown/file.md",
            ],
            &["docs/a.txt"],
        ),
        (
            &["**/docs/**"],
            &[
                "docs/hello.md",
                "dir/docs/my-file.txt",
                "space/docs/plan/space.doc",
            ],
            &["mydocs/x"],
        ),
        (
            &["**/README.md"],
            &["README.md", "js/README.md"],
            &["README.mdx"],
        ),
        (
            &["**/*src/**"],
            &["a/src/app.js", "my-src/code/js/app.js"],
            &["src.js"],
        ),
        (
            &["**/*-post.md"],
            &["my-post.md", "path/their-post.md"],
            &["post.md"],
        ),
        (
            &["**/migrate-*.sql"],
            &[
                "migrate-10909.sql",
                "db/migrate-v1.0.sql",
                "db/sept/migrate-v1.sql",
            ],
            &["db/migrate.sql"],
        ),
        (
            &["*.md", "!README.md"],
            &["hello.md"],
            &["README.md", "docs/hello.md"],
        ),
        (
            &["*.md", "!README.md", "README*"],
            &["hello.md", "README.md", "README.doc"],
            &["docs/README.md"],
        ),
        (&["a\\*b"], &["a*b"], &["axb"]),
        (&["feature+x"], &["featurex", "featureeex"], &["featurx"]),
    ];
    check(table);
}

fn check(table: &[(&[&str], &[&str], &[&str])]) {
    for (patterns, yes, no) in table {
        let l = list(patterns);
        for y in *yes {
            assert!(l.selects(y), "{patterns:?} should match {y}");
        }
        for n in *no {
            assert!(!l.selects(n), "{patterns:?} should not match {n}");
        }
    }
}

#[test]
fn invalid_patterns_are_errors_with_offsets() {
    let table = [
        ("[]", 0, "empty character class"),
        ("v[1-", 3, "ranges can only include"),
        ("v[9-1]", 3, "ranges can only include"),
        ("a[b", 1, "missing `]`"),
        ("x\\", 1, "escapes nothing"),
        ("[a_]", 2, "character classes can only include"),
        ("", 0, "empty pattern"),
    ];
    for (pattern, offset, message) in table {
        let e = Pattern::new(pattern).expect_err(pattern);
        assert_eq!(e.offset, offset, "{pattern}: {e:?}");
        assert!(e.message.contains(message), "{pattern}: {e:?}");
    }
}
