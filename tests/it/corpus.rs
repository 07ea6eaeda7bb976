//! The real-world corpus: every workflow validates (GitHub runs them all), and the plan of
//! each is snapshotted, without an event and for a push to the default branch.

use crate::support::corpus_dir;
use tesseract_ci::load;
use tesseract_ci::plan::plan_pipeline;
use tesseract_ci::trigger::{Event, EventKind};

fn corpus_files() -> Vec<std::path::PathBuf> {
    let Some(dir) = corpus_dir("github") else {
        return Vec::new();
    };
    let files = load::discover(&[dir]).expect("corpus");
    assert!(files.len() >= 60, "corpus has {} files", files.len());
    files
}

#[test]
fn every_corpus_workflow_validates() {
    for file in corpus_files() {
        let loaded = load::load(std::slice::from_ref(&file)).expect("load");
        let errors: Vec<String> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.render(None))
            .collect();
        assert!(
            errors.is_empty(),
            "{}:\n{}",
            file.display(),
            errors.join("")
        );
        assert_eq!(loaded.pipelines.len(), 1);
    }
}

#[test]
fn corpus_plans_snapshot() {
    for file in corpus_files() {
        let loaded = load::load(std::slice::from_ref(&file)).expect("load");
        let p = &loaded.pipelines[0];
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("x")
            .to_string();
        let (all, d1) = plan_pipeline(p, None);
        let (push, d2) = plan_pipeline(p, Some(&Event::new(EventKind::Push, "refs/heads/main")));
        assert!(d1.is_empty() && d2.is_empty(), "{name}: {d1:?} {d2:?}");
        let summary = serde_json::json!({
            "name": all.name,
            "jobs": all.jobs.iter().map(|j| serde_json::json!([j.key, j.name, j.needs, j.runs_on, j.level, j.condition])).collect::<Vec<_>>(),
            "push_main": {
                "triggered": push.triggered,
                "reason": push.reason,
                "jobs": push.jobs.iter().map(|j| &j.key).collect::<Vec<_>>(),
                "skipped": push.skipped.iter().map(|s| format!("{}: {}", s.key, s.reason)).collect::<Vec<_>>(),
            },
        });
        insta::assert_json_snapshot!(name, summary);
    }
}
