//! The cron scheduler: the `on.schedule` entries of each repository's current pipeline
//! version, and the pipeline schedules of the config, fire within a second of their minute,
//! once across replicas (a row per schedule and slot), catching up after downtime as
//! configured.

use super::App;
use super::config::Repo;
use super::versions::{self, scope};
use crate::trigger::cron::{Cron, due_slots};
use crate::trigger::{Event, EventKind};
use crate::versions::Definitions;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where "now" comes from: the system clock, or (tests) a file holding an RFC 3339 time,
/// so a test moves time instead of waiting for it.
#[derive(Debug, Clone)]
pub(super) enum Clock {
    System,
    File(PathBuf),
}

impl Clock {
    /// `TESS_TEST_CLOCK_FILE` names the file; otherwise the system clock.
    pub(super) fn from_env() -> Clock {
        std::env::var_os("TESS_TEST_CLOCK_FILE").map_or(Clock::System, |p| Clock::File(p.into()))
    }

    pub(super) fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::File(path) => std::fs::read_to_string(path)
                .ok()
                .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok())
                .map_or_else(Utc::now, |t| t.with_timezone(&Utc)),
        }
    }
}

/// One schedule of a repository.
#[derive(Debug, Clone)]
pub(super) struct Schedule {
    /// Stable name: `<file>|<cron>|<zone>` for a pipeline's, `config|<cron>|<zone>|<ref>`
    /// for the config's.
    pub key: String,
    pub cron: Cron,
    pub timezone: chrono_tz::Tz,
    /// The branch or tag the run is for.
    pub git_ref: String,
    pub variables: indexmap::IndexMap<String, String>,
}

/// The schedules of a repository: its current version's and its config's.
pub(super) fn schedules(repo: &Repo, definitions: &Definitions) -> Vec<Schedule> {
    let default_ref = format!("refs/heads/{}", repo.default_branch());
    let mut out = Vec::new();
    for (file, pipeline) in &definitions.pipelines {
        for s in &pipeline.schedules {
            let (Ok(cron), Ok(timezone)) = (Cron::parse(&s.cron), s.timezone.parse()) else {
                continue;
            };
            out.push(Schedule {
                key: format!("{file}|{}|{}", s.cron, s.timezone),
                cron,
                timezone,
                git_ref: default_ref.clone(),
                variables: Default::default(),
            });
        }
    }
    for s in &repo.schedules {
        let (Ok(cron), Ok(timezone)) = (Cron::parse(&s.cron), s.timezone.parse()) else {
            continue;
        };
        let git_ref = s.git_ref.as_deref().map_or_else(
            || default_ref.clone(),
            |r| Event::full_ref(r.starts_with("refs/tags/"), r),
        );
        out.push(Schedule {
            key: format!("config|{}|{}|{git_ref}", s.cron, s.timezone),
            cron,
            timezone,
            git_ref,
            variables: s.variables.clone(),
        });
    }
    out
}

/// The longest the scheduler sleeps (schedules and versions are looked at this often).
const TICK: Duration = Duration::from_millis(200);

struct Known {
    version: String,
    definitions: Definitions,
    schedules: Vec<Schedule>,
}

/// The loop: each schedule whose next slot has come is looked at in the store.
pub(super) async fn run(app: Arc<App>, clock: Clock) {
    // Per scope: the version whose schedules are known, its definitions, and them.
    let mut known: HashMap<String, Known> = HashMap::new();
    // Per scope and schedule: nothing is due before this.
    let mut next: HashMap<(String, String), DateTime<Utc>> = HashMap::new();
    let mut config = app.config();
    loop {
        // Every 200 ms, or sooner when a slot comes sooner (it fires within milliseconds).
        let soonest = next.values().min().map_or(TICK, |at| {
            (*at - clock.now())
                .to_std()
                .unwrap_or_default()
                .clamp(Duration::from_millis(20), TICK)
        });
        tokio::time::sleep(soonest).await;
        let now = clock.now();
        let now_config = app.config();
        if !Arc::ptr_eq(&config, &now_config) {
            config = now_config;
            known.clear();
        }
        let mut live = std::collections::HashSet::new();
        let versions = match app.store.current_version_ids().await {
            Ok(versions) => versions,
            Err(e) => {
                tracing::warn!(error = %e, "scheduler: cannot read the versions");
                continue;
            }
        };
        for repo in &config.repos {
            let scope = scope(repo);
            let version = versions.get(&scope).cloned().unwrap_or_default();
            if known.get(&scope).is_none_or(|k| k.version != version) {
                let definitions = match versions::definitions(&app, &scope, &version).await {
                    Ok(d) => d.unwrap_or_default(),
                    Err(e) => {
                        tracing::warn!(repo = %repo.name, error = %e, "scheduler: cannot read the version");
                        continue;
                    }
                };
                let schedules = schedules(repo, &definitions);
                known.insert(
                    scope.clone(),
                    Known {
                        version,
                        definitions,
                        schedules,
                    },
                );
            }
            let Some(entry) = known.get(&scope) else {
                continue;
            };
            let definitions = &entry.definitions;
            for schedule in &entry.schedules {
                let id = (scope.clone(), schedule.key.clone());
                live.insert(id.clone());
                if next.get(&id).is_some_and(|at| now < *at) {
                    continue;
                }
                let at = match look(&app, repo, &scope, schedule, definitions, now).await {
                    Ok(()) => schedule.cron.next_after(now, schedule.timezone),
                    Err(e) => {
                        tracing::warn!(repo = %repo.name, schedule = %schedule.key, error = %e, "scheduler");
                        Some(now + chrono::Duration::seconds(1))
                    }
                };
                match at {
                    Some(at) => next.insert(id, at),
                    None => next.remove(&id),
                };
            }
        }
        // Schedules gone with a new version or config are forgotten.
        next.retain(|id, _| live.contains(id));
    }
}

/// Claims and fires the slots of one schedule that are due at `now`.
async fn look(
    app: &Arc<App>,
    repo: &Repo,
    scope: &str,
    schedule: &Schedule,
    definitions: &Definitions,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let store = &app.store;
    let last = store
        .last_slot(scope, &schedule.key)
        .await
        .map_err(|e| e.to_string())?;
    let Some(last) = last.and_then(DateTime::from_timestamp_millis) else {
        // First seen: slots count from now on.
        store
            .claim_slot(scope, &schedule.key, now.timestamp_millis(), "origin")
            .await
            .map_err(|e| e.to_string())?;
        return Ok(());
    };
    let policy = app.config().scheduler.clone();
    let slots = due_slots(
        &schedule.cron,
        schedule.timezone,
        last,
        now,
        policy.catch_up,
        policy.catch_up_max,
    );
    let switched_off = !slots.is_empty()
        && store
            .disabled_schedules(scope)
            .await
            .map_err(|e| e.to_string())?
            .contains(&schedule.key);
    for (slot, fire) in slots {
        let status = match (switched_off, fire) {
            (true, _) => "disabled",
            (false, true) => "fired",
            (false, false) => "missed",
        };
        let fire = fire && !switched_off;
        let slot_ms = slot.timestamp_millis();
        let won = store
            .claim_slot(scope, &schedule.key, slot_ms, status)
            .await
            .map_err(|e| e.to_string())?;
        if !(won && fire) {
            continue;
        }
        let runs = start(app, repo, schedule, definitions).await;
        tracing::info!(repo = %repo.name, schedule = %schedule.key, %slot, runs = runs.len(), "schedule fired");
        store
            .set_slot_runs(scope, &schedule.key, slot_ms, &runs)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Plans and stores the runs of a fired schedule (from the current version's definitions,
/// on the schedule's ref); returns their ids.
async fn start(
    app: &Arc<App>,
    repo: &Repo,
    schedule: &Schedule,
    definitions: &Definitions,
) -> Vec<String> {
    let mut event = Event::new(EventKind::Schedule, schedule.git_ref.clone());
    event.cron = Some(schedule.cron.source.clone());
    event.inputs = schedule.variables.clone();
    let trigger = crate::forge::payload::Trigger {
        repo: repo.name.clone(),
        event,
        before: None,
        base: None,
    };
    let pinned = (!definitions.pipelines.is_empty()).then(|| definitions.clone());
    let planned = super::plan_off_thread(app, repo, trigger, pinned).await;
    let runs = match planned {
        Ok(Ok(planned)) => planned.runs,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "a scheduled run could not be planned");
            return Vec::new();
        }
        Err(e) => {
            tracing::error!(error = %e, "the planner panicked");
            return Vec::new();
        }
    };
    let mut ids = Vec::new();
    for run in &runs {
        match app.store.create_run(run).await {
            Ok(_) => ids.push(run.id.clone()),
            Err(e) => tracing::error!(error = %e, "a scheduled run could not be stored"),
        }
    }
    app.queued.notify_waiters();
    ids
}
