//! `tess run --github-actions`: inside a GitHub Actions job, the run's jobs and DAG go to the step
//! summary, its result to the step's outputs, and each failed job becomes an annotation.

use super::EventArgs;
use super::live::Summary;
use crate::engine::Conclusion;
use crate::plan::PipelinePlan;
use std::io::Write;
use std::path::PathBuf;

/// The files GitHub Actions gives a step for its summary and outputs.
pub(super) struct Files {
    summary: PathBuf,
    output: PathBuf,
}

impl Files {
    /// From `GITHUB_STEP_SUMMARY` and `GITHUB_OUTPUT`; checked before anything runs.
    pub(super) fn from_env() -> Result<Files, String> {
        let file = |name: &str| {
            std::env::var_os(name).map(PathBuf::from).ok_or_else(|| {
                format!("--github-actions runs inside a GitHub Actions job: `{name}` is not set")
            })
        };
        Ok(Files {
            summary: file("GITHUB_STEP_SUMMARY")?,
            output: file("GITHUB_OUTPUT")?,
        })
    }
}

/// The event of the GitHub Actions job (`GITHUB_EVENT_NAME`, `GITHUB_EVENT_PATH`,
/// `GITHUB_REF`), unless `--event` names one: the pipeline is planned with the same
/// trigger rules as for a webhook.
pub(super) fn event_from_env(args: &mut EventArgs) -> Result<(), String> {
    if args.event.is_some() {
        return Ok(());
    }
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let name = var("GITHUB_EVENT_NAME")
        .ok_or("--github-actions: `GITHUB_EVENT_NAME` is not set (or pass --event)")?;
    let (kind, has_payload) = match name.as_str() {
        "push" => ("push", true),
        "pull_request" | "pull_request_target" => ("pull_request", true),
        "workflow_dispatch" => ("manual", true),
        "schedule" => ("schedule", false),
        other => {
            return Err(format!(
                "--github-actions: tess runs pipelines for push, pull_request, \
                 pull_request_target, workflow_dispatch and schedule events, not `{other}` \
                 (pass --event to choose one)"
            ));
        }
    };
    args.event = Some(kind.into());
    if let (Some(git_ref), Some(sha)) = (var("GITHUB_REF"), var("GITHUB_SHA")) {
        args.payload_defaults = Some((git_ref, sha));
    }
    if has_payload {
        if args.event_path.is_none() {
            args.event_path = Some(
                var("GITHUB_EVENT_PATH")
                    .ok_or("--github-actions: `GITHUB_EVENT_PATH` is not set")?
                    .into(),
            );
        }
    } else if args.git_ref.is_none() {
        args.git_ref = var("GITHUB_REF");
    }
    Ok(())
}

fn append(path: &PathBuf, text: &str) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn word(result: Conclusion, allowed_failure: bool) -> &'static str {
    match (result, allowed_failure) {
        (Conclusion::Failure, true) => "failure (allowed)",
        (r, _) => r.as_str(),
    }
}

pub(super) fn report(
    files: &Files,
    plan: &PipelinePlan,
    summary: &Summary,
    run_id: &str,
) -> Result<(), String> {
    let result = summary.result.unwrap_or(Conclusion::Skipped);
    let failed: Vec<&str> = summary
        .jobs
        .iter()
        .filter(|(_, _, r, allowed, _)| *r == Conclusion::Failure && !allowed)
        .map(|(key, ..)| key.as_str())
        .collect();
    for failure in summary
        .failures
        .iter()
        .filter(|f| failed.contains(&f.key.as_str()))
    {
        // Workflow commands end at the line's end: the message must stay on one line.
        let message =
            format!("{} failed at step `{}`", failure.job, failure.step).replace('\n', " ");
        println!(
            "::error title=tess: {}::{message}",
            failure.job.replace([':', ','], " ")
        );
    }
    let mut text = format!(
        "### {} — {}\n\n| job | result | duration |\n|---|---|---|\n",
        plan.name,
        result.as_str()
    );
    for (_, name, r, allowed, ms) in &summary.jobs {
        text.push_str(&format!(
            "| {} | {} | {:.1}s |\n",
            name.replace('|', "\\|"),
            word(*r, *allowed),
            *ms as f64 / 1000.0
        ));
    }
    // The DAG, each job colored by its result.
    text.push_str("\n```mermaid\n");
    text.push_str(&super::graph::mermaid(std::slice::from_ref(plan)));
    text.push_str(
        "  classDef success fill:#d4f8d4,stroke:#2da44e\n  classDef failure fill:#ffd8d3,stroke:#cf222e\n  classDef skipped fill:#eeeeee,stroke:#8c959f\n  classDef cancelled fill:#fff1c2,stroke:#bf8700\n  classDef allowed fill:#fff1c2,stroke:#bf8700\n",
    );
    for (index, job) in plan.jobs.iter().enumerate() {
        let class = summary
            .jobs
            .iter()
            .find(|(key, ..)| *key == job.key)
            .map_or("skipped", |(_, _, r, allowed, _)| match (r, allowed) {
                (Conclusion::Failure, true) => "allowed",
                (r, _) => r.as_str(),
            });
        text.push_str(&format!(
            "  class {} {class}\n",
            super::graph::node_id(0, index)
        ));
    }
    text.push_str("```\n\n");
    text.push_str(&format!("Run `{run_id}`.\n"));
    append(&files.summary, &text)?;
    append(
        &files.output,
        &format!(
            "result={}\nfailed-jobs={}\nrun-id={run_id}\n",
            result.as_str(),
            failed.join(",")
        ),
    )
}
