//! GitLab pipelines for one event: `workflow:rules` decide whether a pipeline is created,
//! `rules` / `only` / `except` which jobs it contains and with what `when`; stage order is
//! recomputed among the jobs that are added.

use super::SkippedJob;
use crate::diag::Diagnostic;
use crate::spec::{Job, Pipeline};
use crate::trigger::gitlab::{self, Rule};
use crate::trigger::{Decision, Event, EventKind};
use indexmap::IndexMap;
use serde_json::Value as Json;
use std::sync::Arc;

/// The decision for one GitLab job; `vars` are the pipeline's (predefined and global).
pub fn decide_job(
    job: &Job,
    event: &Event,
    vars: &IndexMap<String, String>,
) -> gitlab::JobDecision {
    let Some(gitlab_job) = &job.gitlab else {
        return gitlab::JobDecision {
            added: true,
            when: "on_success".into(),
            when_from_job: true,
            allow_failure: None,
            variables: IndexMap::new(),
            reason: "not a GitLab job".into(),
        };
    };
    for gate in &gitlab_job.include_gates {
        // Include rules see predefined variables only, not the file's `variables:`.
        let d = gitlab::select(
            &gitlab::Selection::Rules(gate.clone()),
            event,
            &gitlab::predefined(event),
            "on_success",
        );
        if !d.added {
            return gitlab::JobDecision {
                reason: format!(
                    "defined in an include whose rules do not add it: {}",
                    d.reason
                ),
                ..d
            };
        }
    }
    let mut job_vars = vars.clone();
    job_vars.extend(job.env.clone());
    // Pipeline variables (a schedule's, a manual run's) win over the YAML's, as in GitLab.
    job_vars.extend(event.inputs.clone());
    gitlab::select(&gitlab_job.selection, event, &job_vars, &gitlab_job.when)
}

/// The variables `rules:if` sees before job variables: predefined for the event, then global,
/// then the pipeline variables of the event (a schedule's, a manual run's), which win.
pub fn pipeline_variables(p: &Pipeline, event: &Event) -> IndexMap<String, String> {
    let mut vars = gitlab::predefined(event);
    vars.extend(p.env.clone());
    vars.extend(event.inputs.clone());
    vars
}

/// The pipeline as GitLab would create it for `event`, whether it is created, and the jobs
/// left out (with why).
pub fn for_event(
    p: &Pipeline,
    event: &Event,
) -> (Pipeline, Decision, Vec<SkippedJob>, Vec<Diagnostic>) {
    let vars = pipeline_variables(p, event);
    let mut out = p.clone();
    let mut skipped = Vec::new();
    let mut added = crate::spec::JobMap::default();
    // Manual jobs that do not block later stages (`allow_failure: true`, their default).
    let mut non_blocking: Vec<String> = Vec::new();
    for (id, job) in &p.jobs {
        if job.gitlab.is_none() {
            added.insert(id.clone(), Arc::clone(job));
            continue;
        }
        let d = decide_job(job, event, &vars);
        let skip = |reason: String| SkippedJob {
            id: id.clone(),
            key: id.clone(),
            name: job.display_name().to_string(),
            reason,
        };
        if !d.added {
            skipped.push(skip(d.reason));
            continue;
        }
        let mut j = (**job).clone();
        // A manual job is in the pipeline (jobs may need it) and starts only when played.
        if d.when == "manual"
            && let Some(gl) = j.gitlab.as_mut()
        {
            gl.when = "manual".into();
        }
        j.condition = match d.when.as_str() {
            "on_failure" => Some("failure()".into()),
            "always" => Some("always()".into()),
            _ => None,
        };
        let explicit = job.continue_on_error.as_ref().and_then(Json::as_bool);
        let allow_failure = d.allow_failure_or(explicit);
        j.continue_on_error = Some(Json::Bool(allow_failure));
        if d.when == "manual" && allow_failure {
            non_blocking.push(id.clone());
        }
        j.env.extend(d.variables);
        j.selected_because = Some(if d.when == "manual" {
            format!("{}; `when: manual`: starts when played", d.reason)
        } else {
            d.reason.clone()
        });
        added.insert(id.clone(), Arc::new(j));
    }
    // Stage order among the jobs that made it; explicit `needs` lose the jobs left out.
    let stages: IndexMap<String, usize> = added
        .iter()
        .map(|(id, j)| (id.clone(), j.gitlab.as_ref().map_or(0, |g| g.stage)))
        .collect();
    let mut diagnostics = Vec::new();
    for (id, job) in &mut added {
        let Some(gl) = &job.gitlab else { continue };
        let needs: Vec<String> = if gl.explicit_needs {
            for missing in job.needs.iter().filter(|n| !stages.contains_key(*n)) {
                // Defined but not in this pipeline, and not `optional: true`: GitLab refuses
                // to create the pipeline.
                if p.jobs.contains_key(missing) && !gl.optional_needs.contains(missing) {
                    let msg = format!(
                        "job `{id}` needs `{missing}`, which is not in the pipeline for this event"
                    );
                    let d = Diagnostic::error(&p.file, job.pos, msg).with_help(
                        "mark the need `optional: true`, or give both jobs matching rules",
                    );
                    diagnostics.push(d);
                }
            }
            job.needs
                .iter()
                .filter(|n| stages.contains_key(*n))
                .cloned()
                .collect()
        } else {
            let own = stages[id];
            stages
                .iter()
                .filter(|(n, s)| **s < own && !non_blocking.contains(n))
                .map(|(n, _)| n.clone())
                .collect()
        };
        if needs != job.needs {
            Arc::make_mut(job).needs = needs;
        }
    }
    let decision = workflow_decision(p.workflow_rules.as_deref(), event, &vars, added.is_empty());
    out.jobs = added;
    (out, decision, skipped, diagnostics)
}

fn workflow_decision(
    rules: Option<&[Rule]>,
    event: &Event,
    vars: &IndexMap<String, String>,
    empty: bool,
) -> Decision {
    let source = gitlab::pipeline_source(event);
    let what = format!("{source} pipeline for {}", event.ref_name());
    if let Some(rules) = rules {
        let selection = gitlab::Selection::Rules(rules.to_vec());
        let d = gitlab::select(&selection, event, vars, "always");
        if !d.added {
            return Decision {
                triggered: false,
                reason: format!("{what}: workflow: {}", d.reason),
            };
        }
        if empty {
            return Decision {
                triggered: false,
                reason: format!("{what}: workflow: {}, but no job is added", d.reason),
            };
        }
        return Decision {
            triggered: true,
            reason: format!("{what}: workflow: {}", d.reason),
        };
    }
    match (empty, event.kind) {
        (true, EventKind::PullRequest) => Decision {
            triggered: false,
            reason: format!(
                "{what}: no job runs in merge request pipelines (jobs need `rules` or `only: [merge_requests]`)"
            ),
        },
        (true, _) => Decision {
            triggered: false,
            reason: format!("{what}: no job is added"),
        },
        (false, _) => Decision {
            triggered: true,
            reason: format!("{what}: no workflow rules"),
        },
    }
}
