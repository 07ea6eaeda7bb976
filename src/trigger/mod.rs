//! Triggers: the events that happen (push, pull request, tag, schedule, manual), GitHub's
//! filter globs, cron schedules, and the decision "does this pipeline run, and why".

pub mod cron;
mod decide;
mod event;
pub mod gitlab;
pub mod glob;

pub use decide::{Decision, EventFilters, Schedule, Triggers, decide};
pub use event::{Event, EventKind};
