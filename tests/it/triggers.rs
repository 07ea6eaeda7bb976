//! Trigger decisions with GitHub's rules, and the reasons given.

use crate::support::pipeline;
use tesseract_ci::trigger::{Event, EventKind, decide};

fn push(r: &str, changed: Option<&[&str]>) -> Event {
    let mut e = Event::new(EventKind::Push, r);
    e.changed = changed.map(|c| c.iter().map(std::string::ToString::to_string).collect());
    e
}

fn pr(base: &str, action: &str, changed: Option<&[&str]>) -> Event {
    let mut e = Event::new(EventKind::PullRequest, "refs/pull/1/merge");
    e.base = Some(base.into());
    e.action = Some(action.into());
    e.changed = changed.map(|c| c.iter().map(std::string::ToString::to_string).collect());
    e
}

fn workflow(on: &str) -> String {
    format!("on:\n{on}\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: true\n")
}

#[test]
fn decisions_table() {
    let table: Vec<(&str, Event, bool, &str)> = vec![
        (
            "  push:",
            push("refs/heads/dev", None),
            true,
            "push to refs/heads/dev: no branch filter",
        ),
        (
            "  push:\n    branches: [main]",
            push("refs/heads/dev", None),
            false,
            "push to refs/heads/dev: branch filter [main] does not match `dev`",
        ),
        (
            "  push:\n    branches: [main]",
            push("refs/heads/main", None),
            true,
            "branch filter [main] matches `main`",
        ),
        (
            "  push:\n    branches: ['**', '!wip/**']",
            push("refs/heads/wip/x", None),
            false,
            "does not match `wip/x`",
        ),
        (
            "  push:\n    branches: ['!wip/**', '**']",
            push("refs/heads/wip/x", None),
            true,
            "matches `wip/x`",
        ),
        (
            "  push:\n    branches-ignore: ['dependabot/**']",
            push("refs/heads/dependabot/npm/x", None),
            false,
            "branches-ignore [dependabot/**] matches `dependabot/npm/x`",
        ),
        // Only tags given: branch pushes don't trigger, and vice versa.
        (
            "  push:\n    tags: ['v*']",
            push("refs/heads/main", None),
            false,
            "only tag filters are set, so branch pushes don't trigger",
        ),
        (
            "  push:\n    tags: ['v*']",
            push("refs/tags/v1.2", None),
            true,
            "tag filter [v*] matches `v1.2`",
        ),
        (
            "  push:\n    tags: ['v*']",
            push("refs/tags/x1", None),
            false,
            "tag filter [v*] does not match `x1`",
        ),
        (
            "  push:\n    branches: [main]",
            push("refs/tags/v1", None),
            false,
            "only branch filters are set, so tag pushes don't trigger",
        ),
        (
            "  push:\n    tags-ignore: ['nightly*']",
            push("refs/tags/nightly-1", None),
            false,
            "tags-ignore [nightly*] matches",
        ),
        // Paths: any file passing triggers; paths-ignore needs every file ignored.
        (
            "  push:\n    paths: ['src/**']",
            push("refs/heads/main", Some(&["README.md", "src/a.rs"])),
            true,
            "paths [src/**]: 1 of 2 changed files match",
        ),
        (
            "  push:\n    paths: ['src/**']",
            push("refs/heads/main", Some(&["README.md"])),
            false,
            "paths [src/**]: none of the 1 changed file match",
        ),
        (
            "  push:\n    paths-ignore: ['docs/**']",
            push("refs/heads/main", Some(&["docs/a", "docs/b", "docs/c/d"])),
            false,
            "paths-ignore: all 3 changed files ignored [docs/**]",
        ),
        (
            "  push:\n    paths-ignore: ['docs/**']",
            push("refs/heads/main", Some(&["docs/a", "x"])),
            true,
            "1 of 2 changed files not ignored",
        ),
        (
            "  push:\n    paths: ['src/**', '!src/gen/**']",
            push("refs/heads/main", Some(&["src/gen/a.rs"])),
            false,
            "none of the 1",
        ),
        // Branches AND paths.
        (
            "  push:\n    branches: [main]\n    paths: ['src/**']",
            push("refs/heads/dev", Some(&["src/a"])),
            false,
            "branch filter [main] does not match",
        ),
        // Paths don't apply to tag pushes.
        (
            "  push:\n    tags: ['v*']\n    paths: ['src/**']",
            push("refs/tags/v1", Some(&["README.md"])),
            true,
            "tag filter [v*] matches",
        ),
        (
            "  push:\n    paths: ['src/**']",
            push("refs/heads/main", None),
            true,
            "path filters not evaluated",
        ),
        // Pull requests match the base branch, and default activity types.
        (
            "  pull_request:\n    branches: [main]",
            pr("main", "opened", None),
            true,
            "pull_request (opened) into main: branch filter [main] matches `main`",
        ),
        (
            "  pull_request:\n    branches: [main]",
            pr("release", "opened", None),
            false,
            "does not match `release`",
        ),
        (
            "  pull_request:",
            pr("main", "closed", None),
            false,
            "activity type `closed` is not in types [opened, synchronize, reopened]",
        ),
        (
            "  pull_request:\n    types: [closed]",
            pr("main", "closed", None),
            true,
            "pull_request (closed)",
        ),
        (
            "  pull_request_target:",
            pr("main", "synchronize", None),
            true,
            "pull_request_target (synchronize) into main",
        ),
        (
            "  pull_request:\n    paths-ignore: ['**.md']",
            pr("main", "opened", Some(&["a.md", "b/c.md"])),
            false,
            "all 2 changed files ignored",
        ),
        // Other events.
        (
            "  push:",
            Event::new(EventKind::PullRequest, "refs/pull/1/merge"),
            false,
            "no `pull_request` trigger (it listens to: push)",
        ),
        (
            "  schedule:\n    - cron: '0 0 * * *'",
            Event::new(EventKind::Schedule, "refs/heads/main"),
            true,
            "schedule [0 0 * * *]",
        ),
        (
            "  workflow_dispatch:",
            Event::new(EventKind::Manual, "refs/heads/main"),
            true,
            "manual run",
        ),
        (
            "  [push, pull_request]",
            push("refs/heads/x", None),
            true,
            "no branch filter",
        ),
    ];
    for (on, event, triggered, reason) in table {
        let p = pipeline(&workflow(on));
        let d = decide(&p.on, &event);
        assert_eq!(d.triggered, triggered, "on: {on} / {event:?}: {}", d.reason);
        assert!(
            d.reason.contains(reason),
            "on: {on}\nreason: {}\nexpected to contain: {reason}",
            d.reason
        );
    }
}
