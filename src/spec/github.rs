//! The GitHub Actions workflow front end (also the native `pipelines/*.yml` syntax):
//! YAML tree → validated `Pipeline`, reporting every problem in the file.

use super::check::{Checker, is_whole_expression};
use super::model::*;
use super::yaml::{Node, Value};
use crate::diag::{Pos, did_you_mean};
use crate::expr::Location;
use crate::trigger::cron::Cron;
use crate::trigger::glob::{Pattern, PatternList};
use crate::trigger::{EventFilters, Schedule};
use indexmap::IndexMap;
use serde_json::Value as Json;

const TOP_KEYS: &[&str] = &[
    "name",
    "run-name",
    "on",
    "env",
    "defaults",
    "permissions",
    "concurrency",
    "jobs",
];
const JOB_KEYS: &[&str] = &[
    "name",
    "runs-on",
    "needs",
    "if",
    "strategy",
    "env",
    "outputs",
    "timeout-minutes",
    "continue-on-error",
    "concurrency",
    "environment",
    "container",
    "services",
    "defaults",
    "permissions",
    "steps",
    "uses",
    "with",
    "secrets",
    "snapshot",
];
const STEP_KEYS: &[&str] = &[
    "id",
    "name",
    "run",
    "shell",
    "uses",
    "with",
    "env",
    "if",
    "working-directory",
    "continue-on-error",
    "timeout-minutes",
    "background",
    "wait",
    "wait-all",
    "cancel",
    "parallel",
];
const CONTAINER_KEYS: &[&str] = &["image", "credentials", "env", "ports", "volumes", "options"];
/// A service container also takes `entrypoint` and `command` (an image's own override).
const SERVICE_KEYS: &[&str] = &[
    "image",
    "credentials",
    "env",
    "ports",
    "volumes",
    "options",
    "entrypoint",
    "command",
];

/// Every event GitHub documents as a workflow trigger.
pub const EVENTS: &[&str] = &[
    "branch_protection_rule",
    "check_run",
    "check_suite",
    "create",
    "delete",
    "deployment",
    "deployment_status",
    "discussion",
    "discussion_comment",
    "fork",
    "gollum",
    "image_version",
    "issue_comment",
    "issues",
    "label",
    "merge_group",
    "milestone",
    "page_build",
    "project",
    "project_card",
    "project_column",
    "public",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "pull_request_target",
    "push",
    "registry_package",
    "release",
    "repository_dispatch",
    "schedule",
    "status",
    "watch",
    "workflow_call",
    "workflow_dispatch",
    "workflow_run",
];

const PERMISSION_SCOPES: &[&str] = &[
    "actions",
    "attestations",
    "checks",
    "contents",
    "deployments",
    "discussions",
    "id-token",
    "issues",
    "models",
    "packages",
    "pages",
    "pull-requests",
    "repository-projects",
    "security-events",
    "statuses",
];

/// Parses a workflow document. Returns the pipeline even when there are errors, so callers
/// can keep checking; the diagnostics say whether it is usable.
pub fn lower(c: &mut Checker, root: &Node, default_name: &str) -> Pipeline {
    let mut p = Pipeline::new(c.file, default_name, Dialect::GitHub);
    if root.as_map().is_none() {
        c.error(
            root.pos,
            format!("a workflow must be a mapping, found {}", root.kind()),
        );
        return p;
    }
    let mut saw_on = false;
    let mut saw_jobs = false;
    for (key, _, v) in c.map(root, "the workflow", TOP_KEYS) {
        match key {
            "name" => {
                c.forbid_expression(v, "the workflow `name`");
                p.name = c.string(v, "name").unwrap_or(p.name);
            }
            "run-name" => {
                c.expressions(v, Location::RunName);
                p.run_name = c.string(v, "run-name");
            }
            "on" => {
                saw_on = true;
                parse_on(c, v, &mut p);
            }
            "env" => p.env = c.string_map(v, "env", Location::WorkflowEnv),
            "defaults" => p.defaults = parse_defaults(c, v, Location::WorkflowEnv),
            "permissions" => p.permissions = Some(parse_permissions(c, v)),
            "concurrency" => {
                p.concurrency = Some(parse_concurrency(c, v, Location::WorkflowConcurrency));
            }
            "jobs" => {
                saw_jobs = true;
                parse_jobs(c, v, &mut p);
            }
            _ => {}
        }
    }
    if !saw_on {
        c.error(
            root.pos,
            "missing `on`: a workflow needs at least one trigger",
        )
        .help = Some("e.g. `on: [push, pull_request]`".into());
    }
    if !saw_jobs {
        c.error(
            root.pos,
            "missing `jobs`: a workflow needs at least one job",
        );
    }
    validate_needs(c, &p);
    p
}

fn parse_on(c: &mut Checker, node: &Node, p: &mut Pipeline) {
    let add_event = |c: &mut Checker, name: &str, pos: Pos| {
        if !EVENTS.contains(&name) {
            let help = did_you_mean(name, EVENTS.iter().copied())
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| "see GitHub's list of events that trigger workflows".into());
            c.error(pos, format!("unknown event `{name}`")).help = Some(help);
            return false;
        }
        true
    };
    match &node.value {
        Value::Scalar(_) | Value::Seq(_) => {
            for (name, pos) in c.string_list(node, "on") {
                if add_event(c, &name, pos) {
                    if name == "schedule" {
                        c.error(pos, "`schedule` needs a list of cron entries").help =
                            Some("on:\n    schedule:\n      - cron: '0 3 * * *'".into());
                    }
                    p.on.events.insert(name, EventFilters::default());
                }
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                let name = k.scalar().unwrap_or_default().to_string();
                c.forbid_expression(k, "`on`");
                if !add_event(c, &name, k.pos) {
                    continue;
                }
                let filters = parse_event(c, &name, v, p);
                p.on.events.insert(name, filters);
            }
        }
    }
}

fn parse_event(c: &mut Checker, name: &str, node: &Node, p: &mut Pipeline) -> EventFilters {
    let mut f = EventFilters::default();
    if name == "schedule" {
        parse_schedule(c, node, &mut p.on.schedules);
        return f;
    }
    const FILTERS: [&str; 6] = [
        "branches",
        "branches-ignore",
        "tags",
        "tags-ignore",
        "paths",
        "paths-ignore",
    ];
    let allowed: &[&str] = match name {
        "push" => &FILTERS,
        "pull_request" | "pull_request_target" => &[
            "types",
            "branches",
            "branches-ignore",
            "paths",
            "paths-ignore",
        ],
        "workflow_run" => &["workflows", "types", "branches", "branches-ignore"],
        "image_version" => &["names", "versions"],
        "workflow_dispatch" => &["inputs"],
        "workflow_call" => &["inputs", "outputs", "secrets"],
        _ => &["types"],
    };
    let what = format!("`on.{name}`");
    let mut accepted: Vec<&str> = allowed.to_vec();
    for (k, _) in node.as_map().unwrap_or_default() {
        let key = k.scalar().unwrap_or_default();
        if FILTERS.contains(&key) && !allowed.contains(&key) {
            // GitHub loads such workflows and ignores the filter.
            c.warning(
                k.pos,
                format!("`{key}` has no effect on `{name}` events; GitHub ignores it"),
            );
            accepted.push(FILTERS[FILTERS.iter().position(|f| *f == key).unwrap_or(0)]);
        }
    }
    for (key, _, v) in c.map(node, &what, &accepted) {
        c.forbid_expression(v, &format!("{what}.{key}"));
        match key {
            "types" => {
                let types = c.string_list(v, "types");
                if let Some(known) = activity_types(name) {
                    for (t, pos) in &types {
                        if !known.contains(&t.as_str()) {
                            let help = crate::diag::did_you_mean(t, known.iter().copied())
                                .map(|s| format!("did you mean `{s}`?"))
                                .unwrap_or_else(|| format!("`{name}` types: {}", known.join(", ")));
                            c.error(*pos, format!("`{t}` is not an activity type of `{name}`"))
                                .help = Some(help);
                        }
                    }
                }
                f.types = Some(types.into_iter().map(|s| s.0).collect());
            }
            _ if !allowed.contains(&key) => {}
            "branches" => f.branches = patterns(c, v, key),
            "branches-ignore" => f.branches_ignore = patterns(c, v, key),
            "tags" => f.tags = patterns(c, v, key),
            "tags-ignore" => f.tags_ignore = patterns(c, v, key),
            "paths" => f.paths = patterns(c, v, key),
            "paths-ignore" => f.paths_ignore = patterns(c, v, key),
            "names" => f.names = patterns(c, v, key),
            "versions" => f.versions = patterns(c, v, key),
            "inputs" => parse_inputs(c, v, name, &mut p.inputs),
            "workflows" => {
                c.string_list(v, "workflows");
            }
            "outputs" => {
                for (name, _, out) in c.map(v, "workflow_call outputs", &[]) {
                    for (okey, _, ov) in
                        c.map(out, "a workflow_call output", &["description", "value"])
                    {
                        if okey == "value" {
                            c.expressions(ov, Location::WorkflowCallOutputs);
                            if let Some(value) = c.string(ov, "value") {
                                p.call_outputs.insert(name.to_string(), value);
                            }
                        }
                    }
                }
            }
            "secrets" => {
                for (_, _, s) in c.map(v, "workflow_call secrets", &[]) {
                    c.map(s, "a workflow_call secret", &["description", "required"]);
                }
            }
            _ => {}
        }
    }
    let key_pos = |name: &str| {
        node.as_map()
            .and_then(|m| m.iter().find(|(k, _)| k.scalar() == Some(name)))
            .map(|(k, _)| k.pos)
    };
    for (a, b) in [
        ("branches", "branches-ignore"),
        ("tags", "tags-ignore"),
        ("paths", "paths-ignore"),
    ] {
        if let (Some(_), Some(pos)) = (key_pos(a), key_pos(b)) {
            c.error(
                pos,
                format!("`{a}` and `{b}` cannot both be used for the same event"),
            )
            .help = Some(format!("use `{a}` with `!pattern` entries to exclude"));
        }
    }
    f
}

fn patterns(c: &mut Checker, node: &Node, what: &str) -> Option<PatternList> {
    let mut list = PatternList::default();
    for (text, pos) in c.string_list(node, what) {
        match Pattern::new(&text) {
            Ok(p) => list.patterns.push(p),
            Err(e) => {
                let item = node
                    .as_seq()
                    .and_then(|items| items.iter().find(|i| i.pos == pos));
                let at = item.map_or(pos, |n| c.locate(n, e.offset));
                c.error(
                    at,
                    format!("invalid glob `{text}` in `{what}`: {}", e.message),
                );
            }
        }
    }
    if what == "paths" && !list.patterns.is_empty() && list.patterns.iter().all(|p| p.negated) {
        c.warning(
            node.pos,
            format!("`{what}` has only `!` patterns, so nothing can match"),
        )
        .help = Some("add a positive pattern first, e.g. `'**'`".into());
    }
    Some(list)
}

fn parse_schedule(c: &mut Checker, node: &Node, out: &mut Vec<Schedule>) {
    let Some(items) = node.as_seq() else {
        c.type_error(node, "schedule", "a list of `- cron: '…'` entries");
        return;
    };
    for item in items {
        let mut cron = None;
        let mut timezone = chrono_tz::UTC;
        for (key, _, v) in c.map(item, "a schedule entry", &["cron", "timezone"]) {
            match key {
                "cron" => {
                    let Some(text) = c.string(v, "cron") else {
                        continue;
                    };
                    match Cron::parse(&text) {
                        Ok(parsed) => cron = Some(parsed),
                        Err(e) => {
                            let pos = c.locate(v, e.offset);
                            c.error(pos, format!("invalid cron `{text}`: {}", e.message));
                        }
                    }
                }
                "timezone" => {
                    let Some(text) = c.string(v, "timezone") else {
                        continue;
                    };
                    match text.parse::<chrono_tz::Tz>() {
                        Ok(tz) => timezone = tz,
                        Err(_) => {
                            let help = did_you_mean(
                                &text,
                                chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()),
                            )
                            .map_or_else(
                                || "use an IANA name such as `Europe/Berlin`".to_string(),
                                |s| format!("did you mean `{s}`?"),
                            );
                            c.error(v.pos, format!("unknown time zone `{text}`")).help = Some(help);
                        }
                    }
                }
                _ => {}
            }
        }
        if item.as_map().is_some() && item.get("cron").is_none() {
            c.error(item.pos, "schedule entry is missing `cron`");
        }
        if let Some(cron) = cron {
            out.push(Schedule { cron, timezone });
        }
    }
}

fn parse_inputs(c: &mut Checker, node: &Node, event: &str, out: &mut IndexMap<String, Input>) {
    let dispatch = event == "workflow_dispatch";
    let allowed: &[&str] = if dispatch {
        &["description", "required", "default", "type", "options"]
    } else {
        &["description", "required", "default", "type"]
    };
    let types: &[&str] = if dispatch {
        &["string", "boolean", "choice", "number", "environment"]
    } else {
        &["string", "boolean", "number"]
    };
    for (name, _, def) in c.map(node, &format!("`on.{event}.inputs`"), &[]) {
        let mut input = Input {
            kind: "string".into(),
            ..Input::default()
        };
        for (key, _, v) in c.map(def, &format!("input `{name}`"), allowed) {
            match key {
                "description" => input.description = c.string(v, key),
                "required" => match v.as_bool() {
                    Some(b) => input.required = b,
                    None => c.type_error(v, "required", "a boolean"),
                },
                "default" => {
                    c.expressions(v, Location::RunName);
                    input.default = Some(v.to_json());
                }
                "type" => {
                    let t = c.string(v, key).unwrap_or_default();
                    if types.contains(&t.as_str()) {
                        input.kind = t;
                    } else {
                        // GitHub runs workflows with types it does not know (etcd's
                        // `type: int` in the corpus): a warning, and the input is a string.
                        let help = crate::diag::did_you_mean(&t, types.iter().copied())
                            .map(|s| format!("did you mean `{s}`?"))
                            .unwrap_or_else(|| format!("valid types: {}", types.join(", ")));
                        c.warning(
                            v.pos,
                            format!("unknown input type `{t}`, treated as `string`"),
                        )
                        .help = Some(help);
                    }
                }
                "options" => {
                    input.options = c.string_list(v, key).into_iter().map(|s| s.0).collect();
                }
                _ => {}
            }
        }
        // A default must be of the input's type (GitHub refuses `default: "123"` for a
        // boolean input).
        if let Some(default) = &input.default
            && !default.as_str().is_some_and(|d| d.contains("${{"))
        {
            let fits = match input.kind.as_str() {
                "boolean" => {
                    default.is_boolean() || matches!(default.as_str(), Some("true" | "false"))
                }
                "number" => {
                    default.is_number()
                        || default
                            .as_str()
                            .is_some_and(|d| d.trim().parse::<f64>().is_ok())
                }
                _ => true,
            };
            if !fits {
                let shown = default
                    .as_str()
                    .map_or_else(|| default.to_string(), String::from);
                c.error(
                    def.pos,
                    format!(
                        "default `{shown}` of {} input `{name}` is not a {}",
                        input.kind, input.kind
                    ),
                );
            }
        }
        if input.kind == "choice" && input.options.is_empty() {
            c.error(def.pos, format!("choice input `{name}` needs `options`"));
        }
        if let (false, Some(Json::String(d))) = (input.options.is_empty(), &input.default)
            && !input.options.contains(d)
        {
            c.error(
                def.pos,
                format!("default `{d}` of input `{name}` is not one of its options"),
            );
        }
        out.insert(name.to_string(), input);
    }
}

fn parse_defaults(c: &mut Checker, node: &Node, location: Location) -> RunDefaults {
    let mut d = RunDefaults::default();
    for (_, _, run) in c.map(node, "defaults", &["run"]) {
        for (key, _, v) in c.map(run, "defaults.run", &["shell", "working-directory"]) {
            c.expressions(v, location);
            match key {
                "shell" => d.shell = c.string(v, key),
                _ => d.working_directory = c.string(v, key),
            }
        }
    }
    d
}

fn parse_permissions(c: &mut Checker, node: &Node) -> Json {
    if let Some(s) = node.scalar().filter(|_| !node.is_null()) {
        if !matches!(s, "read-all" | "write-all") {
            c.error(node.pos, format!("unknown permissions `{s}`")).help =
                Some("use `read-all`, `write-all` or a map of scopes".into());
        }
        return node.to_json();
    }
    for (key, _, v) in c.map(node, "permissions", PERMISSION_SCOPES) {
        let level = v.scalar().unwrap_or_default();
        // As documented: `id-token` is write or none, `models` read or none.
        let allowed: &[&str] = match key {
            "id-token" => &["write", "none"],
            "models" => &["read", "none"],
            _ => &["read", "write", "none"],
        };
        if !allowed.contains(&level) {
            let names: Vec<String> = allowed.iter().map(|l| format!("`{l}`")).collect();
            c.error(
                v.pos,
                format!("permission `{key}` must be {}", names.join(" or ")),
            );
        }
    }
    node.to_json()
}

fn parse_concurrency(c: &mut Checker, node: &Node, location: Location) -> Json {
    if node.as_map().is_some() {
        for (key, _, v) in c.map(
            node,
            "concurrency",
            &["group", "cancel-in-progress", "queue"],
        ) {
            match key {
                "cancel-in-progress" => {
                    c.flexible(v, key, "a boolean", location);
                }
                "queue" => {
                    c.forbid_expression(v, "`concurrency.queue`");
                    if !matches!(v.scalar(), Some("single" | "max")) {
                        c.error(v.pos, "`concurrency.queue` is `single` or `max`");
                    }
                }
                _ => c.expressions(v, location),
            }
        }
    } else {
        c.expressions(node, location);
        c.string(node, "concurrency");
    }
    node.to_json()
}

fn valid_id(id: &str) -> bool {
    id.starts_with(|ch: char| ch.is_ascii_alphabetic() || ch == '_')
        && id
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
}

fn parse_jobs(c: &mut Checker, node: &Node, p: &mut Pipeline) {
    let entries = c.map(node, "jobs", &[]);
    if entries.is_empty() && !node.is_null() && node.as_map().is_some() {
        c.error(
            node.pos,
            "`jobs` is empty: a workflow needs at least one job",
        );
    }
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (id, k, v) in entries {
        c.forbid_expression(k, "job ids");
        // Job ids are case-insensitive on GitHub: `build` and `Build` are the same job.
        if !seen.insert(id.to_ascii_lowercase()) {
            c.error(
                k.pos,
                format!("job id `{id}` repeats another job's id (job ids are case-insensitive)"),
            );
        }
        if !valid_id(id) {
            c.error(k.pos, format!("invalid job id `{id}`")).help = Some(
                "job ids start with a letter or `_` and contain only letters, digits, `-` and `_`"
                    .into(),
            );
        }
        let job = parse_job(c, id, k.pos, v);
        p.jobs.insert(id.to_string(), std::sync::Arc::new(job));
    }
}

fn parse_job(c: &mut Checker, id: &str, pos: Pos, node: &Node) -> Job {
    let mut job = Job::new(id, pos);
    let what = format!("job `{id}`");
    let mut with = IndexMap::new();
    let mut secrets = None;
    let mut steps_node = None;
    for (key, _, v) in c.map(node, &what, JOB_KEYS) {
        match key {
            "name" => {
                c.expressions(v, Location::Job);
                job.name = c.string(v, key);
            }
            "runs-on" => {
                c.expressions(v, Location::Job);
                if v.as_map().is_some() {
                    c.map(v, "runs-on", &["group", "labels"]);
                }
                let empty = match &v.value {
                    Value::Seq(items) => items.is_empty(),
                    Value::Scalar(s) => s.trim().is_empty(),
                    Value::Map(_) => false,
                };
                if empty {
                    c.error(v.pos, "`runs-on` is empty: name a runner label or group");
                }
                job.runs_on = Some(v.to_json());
            }
            "needs" => {
                for (need, npos) in c.string_list(v, "needs") {
                    if need.contains("${{") {
                        c.error(npos, "expressions are not allowed in `needs`");
                    }
                    job.needs.push(need);
                }
            }
            "if" => job.condition = c.condition(v, Location::JobIf),
            "strategy" => job.strategy = parse_strategy(c, v),
            "env" => job.env = c.string_map(v, "env", Location::JobEnv),
            "outputs" => job.outputs = c.string_map(v, "outputs", Location::JobOutputs),
            "timeout-minutes" => {
                job.timeout_minutes = c.flexible(v, key, "a number", Location::Job);
                positive_minutes(c, v);
            }
            "continue-on-error" => {
                job.continue_on_error = c.flexible(v, key, "a boolean", Location::Job);
            }
            "concurrency" => job.concurrency = Some(parse_concurrency(c, v, Location::Job)),
            "environment" => {
                if v.as_map().is_some() {
                    // `url` is evaluated after the steps: it may use `steps` and `job`.
                    for (ek, _, ev) in c.map(v, "environment", &["name", "url", "deployment"]) {
                        let location = if ek == "url" {
                            Location::Step
                        } else {
                            Location::Job
                        };
                        c.expressions(ev, location);
                    }
                } else {
                    c.expressions(v, Location::Job);
                }
                job.environment = Some(v.to_json());
            }
            "container" => job.container = Some(parse_container(c, v, "container")),
            // Custom images: the image to snapshot the runner into after the job.
            "snapshot" => {
                c.expressions(v, Location::Job);
                if v.as_map().is_some() {
                    c.map(v, "snapshot", &["image-name", "version"]);
                    if v.get("image-name").is_none() {
                        c.error(v.pos, "`snapshot` needs `image-name`");
                    }
                } else {
                    c.string(v, "snapshot");
                }
                job.snapshot = Some(v.to_json());
            }
            "services" => {
                if let Some(text) = v.scalar().filter(|t| is_whole_expression(t)) {
                    // `services: ${{ fromJSON(…) }}`: the mapping comes at run time.
                    c.expressions(v, Location::Job);
                    job.services
                        .insert(String::new(), Json::String(text.to_string()));
                } else {
                    for (name, _, s) in c.map(v, "services", &[]) {
                        let json = parse_container(c, s, &format!("service `{name}`"));
                        job.services.insert(name.to_string(), json);
                    }
                }
            }
            "defaults" => job.defaults = parse_defaults(c, v, Location::JobDefaults),
            "permissions" => job.permissions = Some(parse_permissions(c, v)),
            "steps" => steps_node = Some(v),
            "uses" => {
                c.forbid_expression(v, "a job's `uses`");
                if let Some(uses) = c.string(v, key) {
                    check_workflow_ref(c, v, &uses);
                    job.call = Some(WorkflowCall {
                        uses,
                        with: IndexMap::new(),
                        secrets: None,
                        workflow: None,
                    });
                }
            }
            "with" => {
                for (wk, _, wv) in c.map(v, "with", &[]) {
                    c.expressions(wv, Location::Job);
                    with.insert(wk.to_string(), wv.to_json());
                }
            }
            "secrets" => {
                c.expressions(v, Location::Job);
                secrets = Some(v.to_json());
            }
            _ => {}
        }
    }
    if let Some(steps) = steps_node {
        job.steps = parse_steps(c, steps, &what);
    }
    match &mut job.call {
        Some(call) => {
            call.with = with;
            call.secrets = secrets;
            for key in [
                "steps",
                "runs-on",
                "container",
                "services",
                "env",
                "timeout-minutes",
                "defaults",
                "environment",
            ] {
                if let Some((k, _)) = node
                    .as_map()
                    .and_then(|m| m.iter().find(|(k, _)| k.scalar() == Some(key)))
                {
                    c.error(
                        k.pos,
                        format!("`{key}` cannot be used in a job that calls a reusable workflow"),
                    );
                }
            }
        }
        None => {
            for key in ["with", "secrets"] {
                if let Some((k, _)) = node
                    .as_map()
                    .and_then(|m| m.iter().find(|(k, _)| k.scalar() == Some(key)))
                {
                    c.error(k.pos, format!("`{key}` is only valid in a job that calls a reusable workflow with `uses`"));
                }
            }
            if node.as_map().is_some() {
                if node.get("runs-on").is_none() {
                    c.error(pos, format!("job `{id}` is missing `runs-on`"))
                        .help = Some("e.g. `runs-on: ubuntu-latest`".into());
                }
                if node.get("steps").is_none() {
                    c.error(pos, format!("job `{id}` has neither `steps` nor `uses`"));
                }
            }
        }
    }
    job
}

fn check_workflow_ref(c: &mut Checker, node: &Node, uses: &str) {
    let local = uses.starts_with("./");
    let remote = uses.contains('@')
        && uses
            .split('@')
            .next()
            .is_some_and(|p| p.split('/').count() >= 3);
    if !(local || remote)
        || !(uses.ends_with(".yml")
            || uses.ends_with(".yaml")
            || uses.contains(".yml@")
            || uses.contains(".yaml@"))
    {
        c.warning(node.pos, format!("`{uses}` is not a local or remote reusable workflow reference; it is planned as one opaque job"))
            .help = Some("use `./.github/workflows/file.yml` or `owner/repo/.github/workflows/file.yml@ref`".into());
    }
}

fn parse_container(c: &mut Checker, node: &Node, what: &str) -> Json {
    c.expressions(node, Location::Job);
    let service = what.starts_with("service");
    if node.as_map().is_some() {
        let keys = if service {
            SERVICE_KEYS
        } else {
            CONTAINER_KEYS
        };
        for (key, _, v) in c.map(node, what, keys) {
            // `credentials: ${{ fromJSON(secrets.X) }}` is a mapping at run time.
            if key == "credentials" && !v.scalar().is_some_and(is_whole_expression) {
                c.map(v, "credentials", &["username", "password"]);
            }
        }
        // A job container may leave the image to an expression; it cannot leave it out.
        if node.get("image").is_none() {
            c.error(node.pos, format!("{what} needs `image`"));
        }
    } else {
        c.string(node, what);
    }
    node.to_json()
}

/// The activity types GitHub documents for an event (`None`: the event has none listed).
fn activity_types(event: &str) -> Option<&'static [&'static str]> {
    const PULL_REQUEST: &[&str] = &[
        "assigned",
        "unassigned",
        "labeled",
        "unlabeled",
        "opened",
        "edited",
        "closed",
        "reopened",
        "synchronize",
        "converted_to_draft",
        "locked",
        "unlocked",
        "enqueued",
        "dequeued",
        "milestoned",
        "demilestoned",
        "ready_for_review",
        "review_requested",
        "review_request_removed",
        "auto_merge_enabled",
        "auto_merge_disabled",
    ];
    Some(match event {
        "branch_protection_rule" | "label" => &["created", "edited", "deleted"],
        "check_run" => &["created", "rerequested", "completed", "requested_action"],
        "check_suite" => &["completed"],
        "discussion" => &[
            "created",
            "edited",
            "deleted",
            "transferred",
            "pinned",
            "unpinned",
            "labeled",
            "unlabeled",
            "locked",
            "unlocked",
            "category_changed",
            "answered",
            "unanswered",
        ],
        "discussion_comment" | "issue_comment" | "pull_request_review_comment" => {
            &["created", "edited", "deleted"]
        }
        "issues" => &[
            "opened",
            "edited",
            "deleted",
            "transferred",
            "pinned",
            "unpinned",
            "closed",
            "reopened",
            "assigned",
            "unassigned",
            "labeled",
            "unlabeled",
            "locked",
            "unlocked",
            "milestoned",
            "demilestoned",
            "typed",
            "untyped",
        ],
        "merge_group" => &["checks_requested"],
        "milestone" => &["created", "closed", "opened", "edited", "deleted"],
        "pull_request" | "pull_request_target" => PULL_REQUEST,
        "pull_request_review" => &["submitted", "edited", "dismissed"],
        "registry_package" => &["published", "updated"],
        "release" => &[
            "published",
            "unpublished",
            "created",
            "edited",
            "deleted",
            "prereleased",
            "released",
        ],
        "watch" => &["started"],
        "workflow_run" => &["completed", "requested", "in_progress"],
        _ => return None,
    })
}

/// GitHub's rules for parallel steps: `wait`/`wait-all`/`cancel` are steps of their own that
/// always run (no `run`, `uses` or `if`); what they name is an earlier background step; none
/// of it inside a composite action.
fn check_parallel_step(c: &mut Checker, item: &Node, step: &Step, earlier: &[Step], job: &str) {
    let uses_parallel = step.background || step.control.is_some();
    if uses_parallel && job == "the composite action" {
        c.error(
            item.pos,
            "parallel steps (`background`, `wait`, `wait-all`, `cancel`, `parallel`) are not allowed in composite actions",
        );
        return;
    }
    let Some(control) = &step.control else {
        if step.background && step.run.is_none() && step.uses.is_none() {
            c.error(item.pos, "`background` needs a `run` or `uses` step");
        }
        return;
    };
    let what = match control {
        StepControl::Wait(_) => "wait",
        StepControl::WaitAll => "wait-all",
        StepControl::Cancel(_) => "cancel",
        StepControl::Parallel(_) => "parallel",
    };
    for key in ["run", "uses", "background"] {
        if item.get(key).is_some() {
            c.error(
                item.pos,
                format!("`{what}` cannot be combined with `{key}`"),
            );
        }
    }
    if what != "parallel" && item.get("if").is_some() {
        c.error(item.pos, format!("`{what}` always runs: it takes no `if`"));
    }
    let background = |id: &str| {
        earlier
            .iter()
            .any(|s| s.background && s.id.as_deref() == Some(id))
    };
    let named: Vec<&String> = match control {
        StepControl::Wait(ids) => ids.iter().collect(),
        StepControl::Cancel(id) => vec![id],
        _ => Vec::new(),
    };
    for id in named {
        if !background(id) {
            c.error(
                item.pos,
                format!("`{what}: {id}`: no earlier step with `background: true` has id `{id}`"),
            );
        }
    }
}

/// A literal `timeout-minutes` must be above zero (GitHub refuses 0 and negatives).
fn positive_minutes(c: &mut Checker, node: &Node) {
    if let Some(n) = node.scalar().and_then(|s| s.trim().parse::<f64>().ok())
        && n <= 0.0
    {
        c.error(node.pos, "`timeout-minutes` must be greater than 0");
    }
}

fn parse_strategy(c: &mut Checker, node: &Node) -> Strategy {
    let mut s = Strategy::default();
    for (key, _, v) in c.map(node, "strategy", &["matrix", "fail-fast", "max-parallel"]) {
        match key {
            "matrix" => s.matrix = parse_matrix(c, v),
            "fail-fast" => s.fail_fast = c.flexible(v, key, "a boolean", Location::Strategy),
            "max-parallel" => s.max_parallel = c.flexible(v, key, "a number", Location::Strategy),
            _ => {}
        }
    }
    s
}

fn parse_matrix(c: &mut Checker, node: &Node) -> Option<Json> {
    c.expressions(node, Location::Strategy);
    let Some(entries) = node.as_map() else {
        return match node.scalar() {
            Some(s) if is_whole_expression(s) => Some(node.to_json()),
            _ => {
                c.type_error(node, "matrix", "a mapping or an expression");
                None
            }
        };
    };
    let mut dims: Vec<&str> = Vec::new();
    for (k, v) in entries {
        let key = k.scalar().unwrap_or_default();
        c.forbid_expression(k, "matrix keys");
        match key {
            "include" | "exclude" => match &v.value {
                Value::Seq(items) => {
                    for item in items {
                        if item.as_map().is_none() {
                            c.type_error(item, key, "a list of mappings");
                        }
                    }
                }
                Value::Scalar(s) if is_whole_expression(s) => {}
                _ => c.type_error(v, key, "a list of mappings or an expression"),
            },
            _ => {
                dims.push(key);
                match &v.value {
                    Value::Seq(items) if items.is_empty() => {
                        c.error(
                            v.pos,
                            format!("matrix vector `{key}` does not contain any values"),
                        );
                    }
                    Value::Seq(_) => {}
                    Value::Scalar(s) if is_whole_expression(s) => {}
                    _ => c.type_error(v, &format!("matrix.{key}"), "a list or an expression"),
                }
            }
        }
    }
    if let Some(Value::Seq(excludes)) = node.get("exclude").map(|n| &n.value) {
        for item in excludes {
            for (k, _) in item.as_map().unwrap_or_default() {
                let key = k.scalar().unwrap_or_default();
                if !dims.contains(&key) {
                    let help = did_you_mean(key, dims.iter().copied()).map_or_else(
                        || format!("matrix keys: {}", dims.join(", ")),
                        |s| format!("did you mean `{s}`?"),
                    );
                    c.error(
                        k.pos,
                        format!(
                            "matrix exclude key `{key}` does not match any key within the matrix"
                        ),
                    )
                    .help = Some(help);
                }
            }
        }
    }
    Some(node.to_json())
}

pub(crate) fn parse_steps(c: &mut Checker, node: &Node, job: &str) -> Vec<Step> {
    let Some(items) = node.as_seq() else {
        c.type_error(node, "steps", "a list");
        return Vec::new();
    };
    if items.is_empty() {
        c.error(node.pos, format!("{job} has an empty `steps` list"));
    }
    // Sized once: a step is large (hundreds of bytes) and most jobs have few.
    let mut steps: Vec<Step> = Vec::with_capacity(items.len());
    for item in items {
        let mut step = Step {
            pos: item.pos,
            ..Step::default()
        };
        for (key, _, v) in c.map(item, "a step", STEP_KEYS) {
            match key {
                "id" => {
                    c.forbid_expression(v, "step ids");
                    if let Some(id) = c.string(v, key) {
                        if !valid_id(&id) {
                            c.error(v.pos, format!("invalid step id `{id}`"))
                                .help = Some("step ids start with a letter or `_` and contain only letters, digits, `-` and `_`".into());
                        } else if steps.iter().any(|s| s.id.as_deref() == Some(&id)) {
                            c.error(v.pos, format!("duplicate step id `{id}` in {job}"));
                        }
                        step.id = Some(id);
                    }
                }
                "name" => {
                    c.expressions(v, Location::Step);
                    step.name = c.string(v, key);
                }
                "run" => {
                    c.expressions(v, Location::Step);
                    step.run = c.string(v, key);
                }
                "shell" => step.shell = c.string(v, key),
                "uses" => {
                    c.forbid_expression(v, "a step's `uses`");
                    step.uses = c.string(v, key);
                    if let Some(u) = &step.uses
                        && !(u.starts_with("./") || u.starts_with("docker://") || u.contains('@'))
                    {
                        c.error(v.pos, format!("`{u}` needs a version: `{u}@<ref>`"))
                            .help = Some(
                            "e.g. `actions/checkout@v4`; local actions start with `./`".into(),
                        );
                    }
                }
                "with" => step.with = c.string_map(v, "with", Location::Step),
                "env" => step.env = c.string_map(v, "env", Location::Step),
                "if" => step.condition = c.condition(v, Location::StepIf),
                "working-directory" => {
                    c.expressions(v, Location::Step);
                    step.working_directory = c.string(v, key);
                }
                "continue-on-error" => {
                    step.continue_on_error = c.flexible(v, key, "a boolean", Location::Step);
                }
                "timeout-minutes" => {
                    step.timeout_minutes = c.flexible(v, key, "a number", Location::Step);
                    positive_minutes(c, v);
                }
                "background" => match v.as_bool() {
                    Some(b) => step.background = b,
                    None => c.type_error(v, "background", "`true` or `false`"),
                },
                "wait" => {
                    let ids = c
                        .string_list(v, "wait")
                        .into_iter()
                        .map(|(s, _)| s)
                        .collect();
                    step.control = Some(StepControl::Wait(ids));
                }
                "wait-all" => step.control = Some(StepControl::WaitAll),
                "cancel" => {
                    if let Some(id) = c.string(v, "cancel") {
                        step.control = Some(StepControl::Cancel(id));
                    }
                }
                "parallel" => {
                    let mut group = parse_steps(c, v, "a `parallel` group");
                    for inner in &mut group {
                        if inner.control.is_some() {
                            c.error(
                                inner.pos,
                                "a `parallel` group holds `run` and `uses` steps only",
                            );
                        }
                        inner.background = true;
                    }
                    step.control = Some(StepControl::Parallel(group));
                }
                _ => {}
            }
        }
        check_parallel_step(c, item, &step, &steps, job);
        if item.as_map().is_some() && step.control.is_none() {
            match (&step.run, &step.uses) {
                (Some(_), Some(_)) => {
                    c.error(item.pos, "a step cannot have both `run` and `uses`");
                }
                (None, None) => {
                    c.error(item.pos, "a step needs `run` or `uses`");
                }
                (None, Some(_)) if item.get("shell").is_some() => {
                    c.error(item.pos, "`shell` is only valid with `run`");
                }
                (Some(_), None) if item.get("with").is_some() => {
                    c.error(item.pos, "`with` is only valid with `uses`");
                }
                _ => {}
            }
        }
        steps.push(step);
    }
    steps
}

/// `needs` must name existing jobs (with a suggestion), and the graph must be acyclic.
fn validate_needs(c: &mut Checker, p: &Pipeline) {
    let ids: Vec<&str> = p.jobs.keys().map(String::as_str).collect();
    for job in p.jobs.values() {
        for need in &job.needs {
            if !p.jobs.contains_key(need) {
                let help = did_you_mean(need, ids.iter().copied().filter(|i| *i != job.id))
                    .map_or_else(
                        || format!("jobs in this workflow: {}", ids.join(", ")),
                        |s| format!("did you mean `{s}`?"),
                    );
                c.error(
                    job.pos,
                    format!("job `{}` needs `{need}`, which does not exist", job.id),
                )
                .help = Some(help);
            } else if need == &job.id {
                c.error(job.pos, format!("job `{}` needs itself", job.id));
            }
        }
    }
    let edges = p.need_edges();
    if let Some(cycle) = crate::plan::find_cycle(&edges) {
        let names: Vec<&str> = cycle.iter().map(|&i| ids[i]).collect();
        let first = &p.jobs[cycle[0]];
        if names.len() > 1 {
            c.error(
                first.pos,
                format!("dependency cycle: {} -> {}", names.join(" -> "), names[0]),
            );
        }
    }
}
