//! What a pipeline listens for (`on:`), and the decision for one event with a reason a
//! human can read, following GitHub's documented filter rules exactly.

use super::cron::Cron;
use super::event::{Event, EventKind};
use super::glob::PatternList;
use indexmap::IndexMap;

/// Filters of one `on.<event>` entry.
#[derive(Debug, Clone, Default)]
pub struct EventFilters {
    pub branches: Option<PatternList>,
    pub branches_ignore: Option<PatternList>,
    pub tags: Option<PatternList>,
    pub tags_ignore: Option<PatternList>,
    pub paths: Option<PatternList>,
    pub paths_ignore: Option<PatternList>,
    pub types: Option<Vec<String>>,
    /// `image_version`: the custom images (`names`) and `versions` it listens for.
    pub names: Option<PatternList>,
    pub versions: Option<PatternList>,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub cron: Cron,
    pub timezone: chrono_tz::Tz,
}

#[derive(Debug, Clone, Default)]
pub struct Triggers {
    /// Every event named under `on:`, by GitHub event name.
    pub events: IndexMap<String, EventFilters>,
    pub schedules: Vec<Schedule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub triggered: bool,
    pub reason: String,
}

fn no(reason: String) -> Decision {
    Decision {
        triggered: false,
        reason,
    }
}

/// GitHub's default activity types for pull request events.
const DEFAULT_PR_TYPES: [&str; 3] = ["opened", "synchronize", "reopened"];

pub fn decide(on: &Triggers, event: &Event) -> Decision {
    let listens = || {
        let names: Vec<&str> = on.events.keys().map(String::as_str).collect();
        if names.is_empty() {
            "it has no triggers".to_string()
        } else {
            format!("it listens to: {}", names.join(", "))
        }
    };
    match event.kind {
        EventKind::Push => match on.events.get("push") {
            None => no(format!("no `push` trigger ({})", listens())),
            Some(f) => decide_push(f, event),
        },
        EventKind::PullRequest => {
            let found = ["pull_request", "pull_request_target"]
                .into_iter()
                .find_map(|name| on.events.get(name).map(|f| (name, f)));
            match found {
                None => no(format!("no `pull_request` trigger ({})", listens())),
                Some((name, f)) => decide_pull_request(name, f, event),
            }
        }
        EventKind::Schedule => {
            if on.schedules.is_empty() {
                return no(format!("no `schedule` trigger ({})", listens()));
            }
            match &event.cron {
                Some(c) if !on.schedules.iter().any(|s| s.cron.source == *c) => no(format!(
                    "schedule `{c}` is not one of this pipeline's schedules"
                )),
                Some(c) => yes(format!("schedule `{c}`")),
                None => {
                    let crons: Vec<&str> = on
                        .schedules
                        .iter()
                        .map(|s| s.cron.source.as_str())
                        .collect();
                    yes(format!("schedule [{}]", crons.join(", ")))
                }
            }
        }
        EventKind::Manual => match on.events.get("workflow_dispatch") {
            None => no(format!("no `workflow_dispatch` trigger ({})", listens())),
            Some(_) => yes("manual run (workflow_dispatch)".into()),
        },
    }
}

fn yes(reason: String) -> Decision {
    Decision {
        triggered: true,
        reason,
    }
}

fn decide_push(f: &EventFilters, event: &Event) -> Decision {
    let what = format!("push to {}", event.git_ref);
    if let Some(tag) = event.tag() {
        let verdict = match (&f.tags, &f.tags_ignore) {
            (Some(list), _) => filter_verdict("tag filter", list, tag, true),
            (None, Some(list)) => filter_verdict("tags-ignore", list, tag, false),
            (None, None) if f.branches.is_some() || f.branches_ignore.is_some() => {
                Err("only branch filters are set, so tag pushes don't trigger".to_string())
            }
            (None, None) => Ok("no tag filter".to_string()),
        };
        // Path filters never apply to tag pushes.
        return match verdict {
            Ok(why) => yes(format!("{what}: {why}")),
            Err(why) => no(format!("{what}: {why}")),
        };
    }
    let branch = event.branch().unwrap_or(&event.git_ref);
    let verdict = match (&f.branches, &f.branches_ignore) {
        (Some(list), _) => filter_verdict("branch filter", list, branch, true),
        (None, Some(list)) => filter_verdict("branches-ignore", list, branch, false),
        (None, None) if f.tags.is_some() || f.tags_ignore.is_some() => {
            Err("only tag filters are set, so branch pushes don't trigger".to_string())
        }
        (None, None) => Ok("no branch filter".to_string()),
    };
    with_paths(&what, verdict, f, event)
}

fn decide_pull_request(name: &str, f: &EventFilters, event: &Event) -> Decision {
    let action = event.action.as_deref().unwrap_or("opened");
    let base = event.base.as_deref().unwrap_or("main");
    let what = format!("{name} ({action}) into {base}");
    let types_ok = match &f.types {
        Some(types) => types.iter().any(|t| t == action),
        None => DEFAULT_PR_TYPES.contains(&action),
    };
    if !types_ok {
        let types = f.types.clone().unwrap_or_else(|| {
            DEFAULT_PR_TYPES
                .iter()
                .map(std::string::ToString::to_string)
                .collect()
        });
        return no(format!(
            "{what}: activity type `{action}` is not in types [{}]",
            types.join(", ")
        ));
    }
    let verdict = match (&f.branches, &f.branches_ignore) {
        (Some(list), _) => filter_verdict("branch filter", list, base, true),
        (None, Some(list)) => filter_verdict("branches-ignore", list, base, false),
        (None, None) => Ok("no branch filter".to_string()),
    };
    with_paths(&what, verdict, f, event)
}

/// Applies an include list (`selects` must hold) or an ignore list (it must not).
fn filter_verdict(
    label: &str,
    list: &PatternList,
    name: &str,
    include: bool,
) -> Result<String, String> {
    let selected = list.selects(name);
    match (include, selected) {
        (true, true) => Ok(format!("{label} {} matches `{name}`", list.describe())),
        (true, false) => Err(format!(
            "{label} {} does not match `{name}`",
            list.describe()
        )),
        (false, true) => Err(format!("{label} {} matches `{name}`", list.describe())),
        (false, false) => Ok(format!(
            "{label} {} does not match `{name}`",
            list.describe()
        )),
    }
}

/// Branch/type verdict AND path filters (a change set triggers if any file passes).
fn with_paths(
    what: &str,
    verdict: Result<String, String>,
    f: &EventFilters,
    event: &Event,
) -> Decision {
    let why = match verdict {
        Ok(why) => why,
        Err(why) => return no(format!("{what}: {why}")),
    };
    if f.paths.is_none() && f.paths_ignore.is_none() {
        return yes(format!("{what}: {why}"));
    }
    let Some(changed) = &event.changed else {
        return yes(format!(
            "{what}: {why}; path filters not evaluated (changed files unknown, pass --changed)"
        ));
    };
    let n = changed.len();
    let files = if n == 1 { "file" } else { "files" };
    if let Some(list) = &f.paths {
        let hits = changed.iter().filter(|p| list.selects(p)).count();
        if hits == 0 {
            return no(format!(
                "{what}: paths {}: none of the {n} changed {files} match",
                list.describe()
            ));
        }
        return yes(format!(
            "{what}: {why}; paths {}: {hits} of {n} changed {files} match",
            list.describe()
        ));
    }
    if let Some(list) = &f.paths_ignore {
        let kept = changed.iter().filter(|p| !list.selects(p)).count();
        if kept == 0 && n > 0 {
            return no(format!(
                "{what}: paths-ignore: all {n} changed {files} ignored {}",
                list.describe()
            ));
        }
        return yes(format!(
            "{what}: {why}; paths-ignore {}: {kept} of {n} changed {files} not ignored",
            list.describe()
        ));
    }
    yes(format!("{what}: {why}"))
}
