//! The validated pipeline model shared by every front end (GitHub syntax today, GitLab next).

use crate::diag::Pos;
use crate::trigger::Triggers;
use indexmap::IndexMap;
use serde_json::Value as Json;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    GitHub,
    GitLab,
}

/// Jobs by id, in file order. foldhash, not SipHash: job ids are hashed in every planning
/// pass (need edges, lookups); SipHash was 4% of `tess plan` on 1,000 jobs (perf).
pub type JobMap = IndexMap<String, Arc<Job>, foldhash::fast::RandomState>;

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub file: String,
    pub name: String,
    pub dialect: Dialect,
    pub run_name: Option<String>,
    pub on: Triggers,
    /// Inputs of `workflow_dispatch` / `workflow_call`, with defaults.
    pub inputs: IndexMap<String, Input>,
    /// `on.workflow_call.outputs`: name → `value` (an expression over `jobs`).
    pub call_outputs: IndexMap<String, String>,
    pub env: IndexMap<String, String>,
    pub defaults: RunDefaults,
    pub permissions: Option<Json>,
    pub concurrency: Option<Json>,
    /// Shared with the plans made from this pipeline.
    pub jobs: JobMap,
    /// GitLab `workflow:rules` (whether a pipeline is created at all).
    pub workflow_rules: Option<Vec<crate::trigger::gitlab::Rule>>,
    /// GitLab `workflow:auto_cancel`.
    pub auto_cancel: AutoCancel,
    /// GitLab includes whose `rules:` left them out for the event the file was loaded for.
    pub skipped_includes: Vec<String>,
}

/// GitLab `workflow:auto_cancel`: what a newer pipeline for the ref cancels
/// (`on_new_commit`: `conservative`, `interruptible` or `none`) and what a failed job cancels
/// (`on_job_failure`: `none` or `all`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoCancel {
    pub on_new_commit: String,
    pub on_job_failure: String,
}

impl Default for AutoCancel {
    fn default() -> AutoCancel {
        AutoCancel {
            on_new_commit: "conservative".into(),
            on_job_failure: "none".into(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Input {
    pub description: Option<String>,
    pub required: bool,
    pub default: Option<Json>,
    pub kind: String,
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunDefaults {
    pub shell: Option<String>,
    pub working_directory: Option<String>,
}

/// A boolean-or-expression field (`continue-on-error`, `fail-fast`, …) or a number-or-expression.
pub type Flexible = Json;

#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub pos: Pos,
    pub name: Option<String>,
    pub runs_on: Option<Json>,
    pub needs: Vec<String>,
    pub condition: Option<String>,
    pub strategy: Strategy,
    pub env: IndexMap<String, String>,
    pub outputs: IndexMap<String, String>,
    pub timeout_minutes: Option<Flexible>,
    pub continue_on_error: Option<Flexible>,
    pub concurrency: Option<Json>,
    pub environment: Option<Json>,
    pub container: Option<Json>,
    /// `snapshot` (custom images): a name, or `{image-name, version}`.
    pub snapshot: Option<Json>,
    pub services: IndexMap<String, Json>,
    pub defaults: RunDefaults,
    pub permissions: Option<Json>,
    pub steps: Vec<Step>,
    /// `uses:` a reusable workflow, with `with:` and `secrets:`.
    pub call: Option<WorkflowCall>,
    /// GitLab jobs: how the job is selected per pipeline (`rules`, `only`/`except`).
    pub gitlab: Option<GitLabJob>,
    /// How many times a failed run of the job is retried (GitLab `retry`).
    pub retry: u32,
    /// Why the job is in the pipeline for the event being planned (GitLab rules).
    pub selected_because: Option<String>,
    /// GitLab `allow_failure: exit_codes`: a failure is allowed only with one of these.
    pub allow_exit_codes: Vec<i32>,
    /// GitLab variables declared `expand: false`: their `$` references stay as written.
    pub raw_variables: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct GitLabJob {
    pub selection: crate::trigger::gitlab::Selection,
    /// The job's own `when` (`on_success` unless given).
    pub when: String,
    /// Index into the pipeline's stages (`.pre` is 0).
    pub stage: usize,
    pub stage_name: String,
    /// `needs:` was given; otherwise the job waits for all jobs of earlier stages.
    pub explicit_needs: bool,
    /// Needs marked `optional: true`: they may be absent from the pipeline.
    pub optional_needs: Vec<String>,
    /// `rules:` of the conditional includes the job's definition came through; the job is
    /// added only when each of them matches.
    pub include_gates: Vec<Vec<crate::trigger::gitlab::Rule>>,
    /// `interruptible:` (job or `default:`): a newer pipeline for the ref may cancel it.
    pub interruptible: bool,
    /// `artifacts:reports:dotenv` files: their variables reach the jobs that need this one.
    pub dotenv: Vec<String>,
    /// Job `inputs:` as declared, and their values (defaults, or given when played).
    pub inputs: IndexMap<String, crate::spec::gitlab::inputs::InputSpec>,
    pub input_values: IndexMap<String, Json>,
}

#[derive(Debug, Clone)]
pub struct WorkflowCall {
    pub uses: String,
    pub with: IndexMap<String, Json>,
    /// `inherit` or explicit secrets.
    pub secrets: Option<Json>,
    /// The called workflow when it is local and was resolved by the loader.
    pub workflow: Option<Box<Pipeline>>,
}

#[derive(Debug, Clone, Default)]
pub struct Strategy {
    /// The matrix as written: an object, or a string expression producing one.
    pub matrix: Option<Json>,
    pub fail_fast: Option<Flexible>,
    pub max_parallel: Option<Flexible>,
}

#[derive(Debug, Clone, Default)]
pub struct Step {
    pub pos: Pos,
    pub id: Option<String>,
    pub name: Option<String>,
    pub run: Option<String>,
    pub shell: Option<String>,
    pub uses: Option<String>,
    pub with: IndexMap<String, String>,
    pub env: IndexMap<String, String>,
    pub condition: Option<String>,
    pub working_directory: Option<String>,
    pub continue_on_error: Option<Flexible>,
    pub timeout_minutes: Option<Flexible>,
    /// `background: true`: started, and the job moves on (see [`StepControl`]).
    pub background: bool,
    /// A step that is not a process: `wait`, `wait-all`, `cancel`, `parallel`.
    pub control: Option<StepControl>,
}

impl Step {
    /// GitHub's default step names: `Run <first line>` / `Run <action>`, and ours for the
    /// steps that coordinate background steps.
    pub fn default_name(&self) -> String {
        if let Some(control) = &self.control {
            return match control {
                StepControl::Wait(ids) => format!("Wait for {}", ids.join(", ")),
                StepControl::WaitAll => "Wait for all background steps".into(),
                StepControl::Cancel(id) => format!("Cancel {id}"),
                StepControl::Parallel(group) => format!("Run {} steps in parallel", group.len()),
            };
        }
        match (&self.run, &self.uses) {
            (Some(run), _) => format!(
                "Run {}",
                run.lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim()
            ),
            (None, Some(uses)) => format!("Run {uses}"),
            _ => "step".into(),
        }
    }

    /// The name as written, else the default one (for plans, before any context exists).
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.default_name())
    }
}

/// GitHub's parallel steps: the steps that coordinate background steps.
#[derive(Debug, Clone)]
pub enum StepControl {
    /// `wait: id` / `wait: [ids]`: until those background steps end.
    Wait(Vec<String>),
    /// `wait-all:`: until every background step started so far ends.
    WaitAll,
    /// `cancel: id`: stop that background step (SIGINT, SIGTERM, then SIGKILL).
    Cancel(String),
    /// `parallel: [steps]`: each started in the background, then waited for.
    Parallel(Vec<Step>),
}

impl Pipeline {
    /// An empty pipeline of the given dialect, filled in by a front end.
    pub fn new(file: &str, name: &str, dialect: Dialect) -> Pipeline {
        Pipeline {
            file: file.to_string(),
            name: name.to_string(),
            dialect,
            run_name: None,
            on: Triggers::default(),
            inputs: IndexMap::new(),
            call_outputs: IndexMap::new(),
            env: IndexMap::new(),
            defaults: RunDefaults::default(),
            permissions: None,
            concurrency: None,
            jobs: JobMap::default(),
            workflow_rules: None,
            auto_cancel: AutoCancel::default(),
            skipped_includes: Vec::new(),
        }
    }

    /// The `needs` graph by job index: `edges[i]` lists the jobs job `i` needs (unknown
    /// names are left out; the spec layer reports them).
    pub fn need_edges(&self) -> Vec<Vec<usize>> {
        self.jobs
            .values()
            .map(|j| {
                j.needs
                    .iter()
                    .filter_map(|n| self.jobs.get_index_of(n))
                    .collect()
            })
            .collect()
    }
}

impl Job {
    /// A job with nothing set yet, filled in by a front end.
    pub fn new(id: &str, pos: Pos) -> Job {
        Job {
            id: id.to_string(),
            pos,
            name: None,
            runs_on: None,
            needs: Vec::new(),
            condition: None,
            strategy: Strategy::default(),
            env: IndexMap::new(),
            outputs: IndexMap::new(),
            timeout_minutes: None,
            continue_on_error: None,
            concurrency: None,
            environment: None,
            container: None,
            snapshot: None,
            services: IndexMap::new(),
            defaults: RunDefaults::default(),
            permissions: None,
            steps: Vec::new(),
            call: None,
            gitlab: None,
            retry: 0,
            selected_because: None,
            allow_exit_codes: Vec::new(),
            raw_variables: Vec::new(),
        }
    }

    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}
