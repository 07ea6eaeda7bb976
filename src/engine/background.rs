//! GitHub's parallel steps: a `background: true` step's process runs on a thread of its own
//! (at most [`MAX_RUNNING`] at once, the rest queued); what it changes (env, path, outputs,
//! the `steps` context) and its failure reach the job at the `wait` that covers it.

use super::context::RunContext;
use super::events::{Conclusion, RunEvent, now};
use super::job::{JobRun, JobState, LogBatch, Prepared, Process, conclusion_of};
use crate::exec::{self, Cancel, CancelLevel, Outcome, StepResult};
use crate::expr::Value;
use crate::plan::interpolate;
use crate::spec::{Step, StepControl};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// GitHub runs at most this many background steps of a job at once.
pub(super) const MAX_RUNNING: usize = 10;

/// The job's background steps that have not been waited for.
#[derive(Default)]
pub(super) struct Background {
    started: Vec<Started>,
}

struct Started {
    step: Step,
    index: usize,
    name: String,
    continue_on_error: bool,
    cancel: Arc<Cancel>,
    work: Work,
}

enum Work {
    /// Not started yet: [`MAX_RUNNING`] were running.
    Queued(Box<Prepared>),
    Running(JoinHandle<StepResult>, Instant),
    Done(Box<StepResult>, u64),
}

impl JobRun {
    /// Starts a `background: true` `run:` step and returns at once.
    pub(super) fn start_background(
        &mut self,
        step: &Step,
        state: &mut JobState,
        ctx: &RunContext,
        index: usize,
        name: String,
    ) {
        let process = Process {
            script: step.run.as_deref().unwrap_or_default(),
            argv: None,
            executor: None,
            extra_env: &Default::default(),
        };
        let prepared = self.prepare(step, state, ctx, &process);
        let continue_on_error = step
            .continue_on_error
            .as_ref()
            .and_then(|v| interpolate::json(v, ctx))
            .is_some_and(|v| Value::from_json(&v).truthy() == Some(true));
        let cancel = Arc::new(Cancel::child_of(&self.cancel));
        self.emit(RunEvent::StepStarted {
            job: self.key.clone(),
            step: index,
            name: name.clone(),
            background: true,
            ts: now(),
        });
        let running = state
            .background
            .started
            .iter()
            .filter(|s| matches!(s.work, Work::Running(..)))
            .count();
        let work = if running >= MAX_RUNNING {
            Work::Queued(Box::new(prepared))
        } else {
            self.spawn(prepared, index, &cancel)
        };
        state.background.started.push(Started {
            step: step.clone(),
            index,
            name,
            continue_on_error,
            cancel,
            work,
        });
    }

    fn spawn(&self, prepared: Prepared, index: usize, cancel: &Arc<Cancel>) -> Work {
        // Its own file-command files: foreground and background steps write at once.
        let temp = self.temp.join(format!("background-{index}"));
        let containers = self.containers.clone();
        // Shared: an `::add-mask::` here masks the foreground's lines at once, and back.
        let mut masker = self.masker.clone();
        let cancel = Arc::clone(cancel);
        let batch = LogBatch::new(self.key.clone(), index, self.events.clone());
        let handle = std::thread::spawn(move || {
            let executor: &dyn exec::Executor = match &containers {
                Some(c) => c.as_ref(),
                None => &exec::Host,
            };
            prepared.run(executor, &temp, &mut masker, &cancel, batch)
        });
        Work::Running(handle, Instant::now())
    }

    /// A `wait`, `wait-all`, `cancel` or `parallel` step.
    pub(super) fn run_control(
        &mut self,
        control: &StepControl,
        state: &mut JobState,
        ctx: &RunContext,
        index: usize,
        name: String,
    ) {
        if let StepControl::Parallel(group) = control {
            self.emit(RunEvent::StepStarted {
                job: self.key.clone(),
                step: index,
                name: name.clone(),
                background: false,
                ts: now(),
            });
            let mut ids = Vec::new();
            for inner in group {
                let inner_index = state.step_index;
                state.step_index += 1;
                let inner_name = super::job::step_name(inner, ctx);
                self.start_background(inner, state, ctx, inner_index, inner_name);
                ids.push(inner_index);
            }
            let waited = self.settle(state, |s| ids.contains(&s.index));
            self.finish_control(state, index, name, waited);
            return;
        }
        self.emit(RunEvent::StepStarted {
            job: self.key.clone(),
            step: index,
            name: name.clone(),
            background: false,
            ts: now(),
        });
        let covered = match control {
            StepControl::Wait(ids) => self.settle(state, |s| {
                s.step.id.as_ref().is_some_and(|id| ids.contains(id))
            }),
            StepControl::WaitAll => self.settle(state, |_| true),
            StepControl::Cancel(id) => {
                for s in &state.background.started {
                    if s.step.id.as_deref() == Some(id) {
                        s.cancel.request(CancelLevel::Graceful);
                    }
                }
                // A cancelled step was asked to stop: it does not fail the job.
                self.settle(state, |s| s.step.id.as_deref() == Some(id));
                Outcome::Success
            }
            StepControl::Parallel(_) => Outcome::Success,
        };
        self.finish_control(state, index, name, covered);
    }

    fn finish_control(&mut self, state: &mut JobState, index: usize, name: String, o: Outcome) {
        self.finish_own_step(state, index, name, o, Vec::new(), 0);
    }

    /// Waits for the background steps `covered` picks (starting queued ones as slots free),
    /// applies what they changed, and removes them. A failure among them (without
    /// `continue-on-error`) is the outcome.
    fn settle(&mut self, state: &mut JobState, covered: impl Fn(&Started) -> bool) -> Outcome {
        let mut outcome = Outcome::Success;
        while let Some(at) = state.background.started.iter().position(&covered) {
            let (done, result, ms) = self.finish_one(state, at);
            let failed_here = !result.outcome.is_success()
                && !matches!(result.outcome, Outcome::Cancelled)
                && !done.continue_on_error;
            let step_outcome = result.outcome.clone();
            let (o, outputs, annotations) = self.apply(state, done.index, result);
            let outcome_c = conclusion_of(&o);
            let conclusion = if outcome_c == Conclusion::Failure && done.continue_on_error {
                Conclusion::Success
            } else {
                outcome_c
            };
            self.emit(RunEvent::StepFinished {
                job: self.key.clone(),
                step: done.index,
                name: done.name.clone(),
                outcome: outcome_c,
                conclusion,
                detail: step_outcome.clone(),
                annotations,
                duration_ms: ms,
                ts: now(),
            });
            self.record_step(&done.step, state, outcome_c, conclusion, outputs);
            if failed_here && outcome.is_success() {
                outcome = step_outcome;
            }
        }
        outcome
    }

    /// Takes the started step at `at` out, finished (run first if it was queued): the step,
    /// its result, its duration in ms.
    fn finish_one(&mut self, state: &mut JobState, at: usize) -> (Started, StepResult, u64) {
        let mut started = state.background.started.remove(at);
        let work = std::mem::replace(&mut started.work, Work::Done(Box::default(), 0));
        let (result, ms) = match work {
            Work::Queued(prepared) => match self.spawn(*prepared, started.index, &started.cancel) {
                Work::Running(handle, since) => join(handle, since),
                Work::Done(result, ms) => (*result, ms),
                Work::Queued(_) => (StepResult::default(), 0),
            },
            Work::Running(handle, since) => join(handle, since),
            Work::Done(result, ms) => (*result, ms),
        };
        // A slot is free: start the oldest queued step.
        if let Some(queued) = state
            .background
            .started
            .iter_mut()
            .find(|s| matches!(s.work, Work::Queued(_)))
            && let Work::Queued(prepared) =
                std::mem::replace(&mut queued.work, Work::Done(Box::default(), 0))
        {
            queued.work = self.spawn(*prepared, queued.index, &queued.cancel);
        }
        (started, result, ms)
    }

    /// The implicit `wait-all` before the job's post steps (and when it is cut short).
    pub(super) fn wait_all_background(&mut self, state: &mut JobState) {
        if state.background.started.is_empty() {
            return;
        }
        if self.cancel.level() > CancelLevel::None {
            for s in &state.background.started {
                s.cancel.request(CancelLevel::Graceful);
            }
        }
        let outcome = self.settle(state, |_| true);
        if !outcome.is_success() {
            state.failed = true;
            state.first_failure.get_or_insert(outcome);
        }
    }
}

fn join(handle: JoinHandle<StepResult>, since: Instant) -> (StepResult, u64) {
    let result = handle.join().unwrap_or_else(|_| StepResult {
        outcome: Outcome::FailedToSpawn("the background step's thread panicked".into()),
        ..StepResult::default()
    });
    (result, since.elapsed().as_millis() as u64)
}
