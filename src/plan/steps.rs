//! Step groups for `tess plan --json`: which steps of a job run at the same time under
//! GitHub's parallel steps (`background`, `wait`, `wait-all`, `cancel`, `parallel`).

use crate::spec::{Step, StepControl};
use serde::Serialize;

/// Steps that run one after another form groups of one; a background step opens a
/// concurrent group holding every step that runs while it does, closed by the step that
/// joins the last of them (a `wait`, `wait-all` or `cancel`, or the end of the job).
#[derive(Debug, Clone, Serialize)]
pub struct StepGroup {
    pub concurrent: bool,
    pub steps: Vec<PlannedStep>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    /// Its `name:` as written, or GitHub's default name.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub background: bool,
    /// For a background step: the step that waits for (or cancels) it, or
    /// `"end of job"` for the implicit `wait-all` before post-job cleanup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub joined_by: Option<String>,
}

/// The groups of a job's steps; empty when the job uses no parallel steps (the plan then
/// has nothing to say beyond "in order").
pub(super) fn groups(steps: &[Step]) -> Vec<StepGroup> {
    if !steps
        .iter()
        .any(|s| s.background || matches!(s.control, Some(StepControl::Parallel(_))))
    {
        return Vec::new();
    }
    let mut out: Vec<StepGroup> = Vec::new();
    // Background steps started in the open group and not yet joined, by id (or label).
    let mut open: Vec<(usize, Option<String>)> = Vec::new();
    let mut current: Option<StepGroup> = None;
    for step in steps {
        let entry = PlannedStep {
            name: step.label(),
            id: step.id.clone(),
            background: step.background,
            joined_by: None,
        };
        if let Some(StepControl::Parallel(inner)) = &step.control {
            // Its own concurrent group, joined by its implicit wait.
            let group = current.get_or_insert_with(|| StepGroup {
                concurrent: true,
                steps: Vec::new(),
            });
            let label = entry.name.clone();
            group.steps.push(entry);
            for s in inner {
                group.steps.push(PlannedStep {
                    name: s.label(),
                    id: s.id.clone(),
                    background: true,
                    joined_by: Some(label.clone()),
                });
            }
            if open.is_empty() {
                out.extend(current.take());
            }
            continue;
        }
        if step.background {
            let group = current.get_or_insert_with(|| StepGroup {
                concurrent: true,
                steps: Vec::new(),
            });
            open.push((group.steps.len(), step.id.clone()));
            group.steps.push(entry);
            continue;
        }
        let Some(group) = current.as_mut() else {
            out.push(StepGroup {
                concurrent: false,
                steps: vec![entry],
            });
            continue;
        };
        let joins: &[String] = match &step.control {
            Some(StepControl::Wait(ids)) => ids,
            Some(StepControl::Cancel(id)) => std::slice::from_ref(id),
            _ => &[],
        };
        let all = matches!(step.control, Some(StepControl::WaitAll));
        let label = entry.name.clone();
        group.steps.push(entry);
        open.retain(|(index, id)| {
            let joined = all || id.as_ref().is_some_and(|id| joins.contains(id));
            if joined {
                group.steps[*index].joined_by = Some(label.clone());
            }
            !joined
        });
        if open.is_empty() {
            out.extend(current.take());
        }
    }
    if let Some(mut group) = current {
        for (index, _) in open {
            group.steps[index].joined_by = Some("end of job".into());
        }
        out.push(group);
    }
    out
}
