//! Lowers a resolved GitLab configuration into a `Pipeline`: stages become `needs` edges,
//! `before_script` + `script` one shell step and `after_script` an always-run step.

use crate::diag::{Diagnostic, did_you_mean};
use crate::spec::check::Checker;
use crate::spec::model::*;
use crate::spec::yaml::{Node, Value};
use crate::trigger::gitlab::{Condition, RefFilter, Rule, Selection, parse_regex_literal};
use crate::trigger::glob::{Pattern, PatternList};
use crate::trigger::{EventFilters, Triggers};
use indexmap::IndexMap;
use serde_json::Value as Json;
use std::sync::Arc;

const GLOBAL_KEYS: &[&str] = &[
    "stages",
    "default",
    "variables",
    "workflow",
    "include",
    "image",
    "services",
    "cache",
    "before_script",
    "after_script",
    "types",
];

/// Top-level keys GitLab still applies to every job (deprecated in favour of `default:`).
const GLOBAL_DEFAULTS: &[&str] = &[
    "image",
    "services",
    "before_script",
    "after_script",
    "cache",
];

const JOB_KEYS: &[&str] = &[
    "after_script",
    "allow_failure",
    "artifacts",
    "before_script",
    "cache",
    "coverage",
    "dast_configuration",
    "dependencies",
    "environment",
    "extends",
    "hooks",
    "identity",
    "id_tokens",
    "image",
    "inherit",
    "inputs",
    "interruptible",
    "manual_confirmation",
    "needs",
    "pages",
    "parallel",
    "publish",
    "release",
    "resource_group",
    "retry",
    "rules",
    "run",
    "script",
    "secrets",
    "services",
    "stage",
    "start_in",
    "tags",
    "timeout",
    "trigger",
    "variables",
    "when",
    "only",
    "except",
];

const DEFAULT_KEYS: &[&str] = &[
    "after_script",
    "artifacts",
    "before_script",
    "cache",
    "hooks",
    "id_tokens",
    "image",
    "interruptible",
    "retry",
    "services",
    "tags",
    "timeout",
];

const WHEN: &[&str] = &[
    "on_success",
    "on_failure",
    "always",
    "manual",
    "delayed",
    "never",
];

/// Lowers the merged tree (see `merge::resolve`). `incomplete`: some includes could not be
/// resolved offline, so what they would define (scripts, needed jobs) is reported as a
/// warning instead of an error.
pub fn lower(
    c: &mut Checker,
    root: &Node,
    name: &str,
    incomplete: bool,
    gates: &[Vec<Node>],
) -> Pipeline {
    let mut on = Triggers::default();
    // Until `workflow:rules` are evaluated, every event creates a pipeline.
    for event in ["push", "pull_request", "workflow_dispatch"] {
        on.events.insert(event.into(), EventFilters::default());
    }
    let mut p = Pipeline::new(c.file, name, Dialect::GitLab);
    p.on = on;
    let Some(entries) = root.as_map() else {
        if !root.is_null() {
            c.error(
                root.pos,
                format!("a GitLab CI file must be a mapping, found {}", root.kind()),
            );
        }
        return p;
    };
    let mut stages: Vec<String> = vec!["build".into(), "test".into(), "deploy".into()];
    if let Some(s) = root.get("stages") {
        stages = c
            .string_list(s, "stages")
            .into_iter()
            .map(|(s, _)| s)
            .collect();
    }
    stages.insert(0, ".pre".into());
    stages.push(".post".into());
    let default = root.get("default");
    if let Some(d) = default {
        c.map(d, "default", DEFAULT_KEYS);
    }
    if let Some(v) = root.get("variables") {
        p.env = variables(c, v);
    }
    if let Some(w) = root.get("workflow") {
        for (key, _, v) in c.map(w, "workflow", &["rules", "name", "auto_cancel"]) {
            match key {
                "rules" => p.workflow_rules = Some(rules(c, v)),
                "auto_cancel" => p.auto_cancel = auto_cancel(c, v),
                _ => {}
            }
        }
    }
    // The rules of conditional includes, parsed once per file.
    let parsed_gates: Vec<Vec<Vec<Rule>>> = gates
        .iter()
        .map(|g| g.iter().map(|r| rules(c, r)).collect())
        .collect();
    // Jobs, with the stage each runs in; `parallel` jobs by their instances.
    let mut by_stage: Vec<(String, usize)> = Vec::new();
    let mut parallel_groups: IndexMap<String, Vec<String>> = IndexMap::new();
    for (k, v) in entries {
        let id = k.scalar().unwrap_or_default();
        if GLOBAL_KEYS.contains(&id) || id.starts_with('.') {
            continue;
        }
        if v.as_map().is_none() {
            let help = did_you_mean(id, GLOBAL_KEYS.iter().copied())
                .map(|s| format!("did you mean the global keyword `{s}`?"));
            let d = c.error(
                k.pos,
                format!("job `{id}` must be a mapping, found {}", v.kind()),
            );
            d.help = help;
            continue;
        }
        let stage = v
            .get("stage")
            .and_then(Node::scalar)
            .unwrap_or("test")
            .to_string();
        let stage_index = stages.iter().position(|s| *s == stage);
        if stage_index.is_none() {
            let pos = v.get("stage").map_or(k.pos, |s| s.pos);
            let help = did_you_mean(&stage, stages.iter().map(String::as_str)).map_or_else(
                || format!("stages: {}", stages.join(", ")),
                |s| format!("did you mean `{s}`?"),
            );
            let msg = format!("job `{id}`: stage `{stage}` is not defined in `stages`");
            let d = if incomplete {
                c.warning(pos, format!("{msg}; the job is left out (its definition may be completed by an include that cannot be resolved offline)"))
            } else {
                c.error(pos, msg)
            };
            d.help = Some(help);
        }
        // Lowered even with an unknown stage, so every problem in the job is reported.
        let job = lower_job(c, id, k, v, (default, root), incomplete);
        if let (Some((mut job, optional_needs)), Some(stage_index)) = (job, stage_index) {
            job.raw_variables = raw_variable_names(root.get("variables"));
            job.raw_variables
                .extend(raw_variable_names(v.get("variables")));
            let include_gates = parsed_gates
                .get(k.pos.origin as usize)
                .cloned()
                .unwrap_or_default();
            let inputs = v
                .get("inputs")
                .map(|node| {
                    let file = c.file_of(node.pos).to_string();
                    super::inputs::parse_specs(&file, node, true, &mut c.diagnostics)
                })
                .unwrap_or_default();
            let input_values: IndexMap<String, Json> = inputs
                .iter()
                .map(|(k, s)| (k.clone(), s.default.clone().unwrap_or(Json::Null)))
                .collect();
            check_job_input_references(c, &job, &input_values, v);
            // `environment: production` or `{name: production, …}` (protected ones gate).
            job.environment = v.get("environment").map(Node::to_json);
            job.gitlab = Some(GitLabJob {
                inputs,
                input_values,
                include_gates,
                optional_needs,
                selection: selection(c, v),
                when: v
                    .get("when")
                    .and_then(Node::scalar)
                    .unwrap_or("on_success")
                    .to_string(),
                stage: stage_index,
                stage_name: stage.clone(),
                explicit_needs: v.get("needs").is_some(),
                interruptible: v
                    .get("interruptible")
                    .or_else(|| default.and_then(|d| d.get("interruptible")))
                    .and_then(Node::as_bool)
                    .unwrap_or(false),
                dotenv: v
                    .get("artifacts")
                    .or_else(|| default.and_then(|d| d.get("artifacts")))
                    .and_then(|a| a.get("reports"))
                    .and_then(|r| r.get("dotenv"))
                    .map(|d| match &d.value {
                        crate::spec::yaml::Value::Seq(items) => items
                            .iter()
                            .filter_map(|i| i.scalar().map(String::from))
                            .collect(),
                        _ => d.scalar().map(String::from).into_iter().collect(),
                    })
                    .unwrap_or_default(),
            });
            match parallel_instances(c, v, id) {
                None => {
                    if let Some(need) = job
                        .needs
                        .iter()
                        .find(|n| n.contains("$[[ matrix.") || n.contains("$[[matrix."))
                    {
                        let pos = v.get("needs").map_or(k.pos, |n| n.pos);
                        let var = need
                            .split("$[[")
                            .nth(1)
                            .and_then(|rest| rest.split("]]").next())
                            .map_or("matrix", str::trim);
                        c.error(
                            pos,
                            format!("`$[[ {var} ]]` in `needs` is only valid in a job with `parallel:matrix`"),
                        );
                    }
                    by_stage.push((id.to_string(), stage_index));
                    p.jobs.insert(id.to_string(), Arc::new(job));
                }
                Some(instances) => {
                    let names: Vec<String> = instances.iter().map(|(n, _)| n.clone()).collect();
                    for (name, vars) in instances {
                        let mut instance = job.clone();
                        instance.id = name.clone();
                        // Matrix expressions in needs: `$[[ matrix.ARCH ]]` is this instance's ARCH.
                        for need in &mut instance.needs {
                            for (k, v) in &vars {
                                for form in
                                    [format!("$[[ matrix.{k} ]]"), format!("$[[matrix.{k}]]")]
                                {
                                    *need = need.replace(&form, v);
                                }
                            }
                        }
                        instance.env.insert("CI_JOB_NAME".into(), name.clone());
                        instance.env.extend(vars);
                        by_stage.push((name.clone(), stage_index));
                        p.jobs.insert(name, Arc::new(instance));
                    }
                    parallel_groups.insert(id.to_string(), names);
                }
            }
        }
    }
    // Jobs without `needs` wait for every job of the earlier stages.
    for (id, stage) in &by_stage {
        let job = Arc::make_mut(p.jobs.get_mut(id).expect("just inserted"));
        let explicit = job.gitlab.as_ref().is_some_and(|g| g.explicit_needs);
        if job.needs.is_empty() && !explicit {
            job.needs = by_stage
                .iter()
                .filter(|(_, s)| s < stage)
                .map(|(n, _)| n.clone())
                .collect();
        }
    }
    // A need on a `parallel` job waits for all of its instances.
    for job in p.jobs.values_mut() {
        if job.needs.iter().any(|n| parallel_groups.contains_key(n)) {
            let job = Arc::make_mut(job);
            job.needs = std::mem::take(&mut job.needs)
                .into_iter()
                .flat_map(|n| parallel_groups.get(&n).cloned().unwrap_or_else(|| vec![n]))
                .collect();
        }
    }
    for (id, _) in &by_stage {
        let job = &p.jobs[id];
        for need in &job.needs {
            if !p.jobs.contains_key(need) {
                let names: Vec<&str> = p.jobs.keys().map(String::as_str).collect();
                let help = did_you_mean(need, names.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"));
                let msg = format!("job `{id}` needs `{need}`, which does not exist");
                let d = if incomplete {
                    c.warning(
                        job.pos,
                        format!(
                            "{msg} (it may come from an include that cannot be resolved offline)"
                        ),
                    )
                } else {
                    c.error(job.pos, msg)
                };
                d.help = help;
            }
        }
    }
    if let Some(cycle) = crate::plan::find_cycle(&p.need_edges()) {
        let names: Vec<&str> = cycle
            .iter()
            .map(|&i| p.jobs.get_index(i).map_or("", |(k, _)| k.as_str()))
            .collect();
        let pos = p.jobs[cycle[0]].pos;
        c.error(
            pos,
            format!("dependency cycle: {} -> {}", names.join(" -> "), names[0]),
        );
    }
    if p.jobs.is_empty() && !by_stage.is_empty() {
        c.error(
            root.pos,
            "no jobs: a pipeline needs at least one visible job",
        );
    }
    p
}

/// `variables:` — plain values or `{value, description, options, expand}`.
fn variables(c: &mut Checker, node: &Node) -> IndexMap<String, String> {
    let mut out = IndexMap::new();
    for (name, _, v) in c.map(node, "variables", &[]) {
        let value = match &v.value {
            Value::Map(_) => {
                let entries = c.map(
                    v,
                    &format!("variable `{name}`"),
                    &["value", "description", "options", "expand"],
                );
                entries
                    .iter()
                    .find(|(k, ..)| *k == "value")
                    .and_then(|(_, _, val)| val.scalar().map(String::from))
                    .unwrap_or_default()
            }
            Value::Scalar(s) => s.clone(),
            Value::Seq(_) => {
                c.type_error(
                    v,
                    &format!("variables.{name}"),
                    "a string or a mapping with `value`",
                );
                continue;
            }
        };
        out.insert(name.to_string(), value);
    }
    out
}

/// Names of variables declared with `expand: false`.
fn raw_variable_names(node: Option<&Node>) -> Vec<String> {
    node.and_then(Node::as_map)
        .unwrap_or_default()
        .iter()
        .filter(|(_, v)| v.get("expand").and_then(Node::as_bool) == Some(false))
        .filter_map(|(k, _)| k.scalar().map(String::from))
        .collect()
}

/// A script: a string or a (nested) list of strings, as GitLab flattens them.
/// `cache:` (one or a list): `paths` a list, `key:files` at most two files.
fn check_cache(c: &mut Checker, node: &Node) {
    let caches: Vec<&Node> = match &node.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    for cache in caches {
        if let Some(paths) = cache.get("paths")
            && !matches!(paths.value, Value::Seq(_))
        {
            c.type_error(paths, "cache:paths", "a list of paths");
        }
        if let Some(files) = cache.get("key").and_then(|k| k.get("files"))
            && let Value::Seq(items) = &files.value
            && items.len() > 2
        {
            c.error(
                files.pos,
                format!(
                    "`cache:key:files` lists {} files; GitLab allows at most 2",
                    items.len()
                ),
            );
        }
    }
}

/// `workflow:auto_cancel` (`on_new_commit`, `on_job_failure`), values as GitLab documents.
fn auto_cancel(c: &mut Checker, node: &Node) -> crate::spec::AutoCancel {
    let mut out = crate::spec::AutoCancel::default();
    for (key, _, v) in c.map(
        node,
        "workflow:auto_cancel",
        &["on_new_commit", "on_job_failure"],
    ) {
        let value = v.scalar().unwrap_or_default().to_string();
        let allowed: &[&str] = if key == "on_new_commit" {
            &["conservative", "interruptible", "none"]
        } else {
            &["none", "all"]
        };
        if !allowed.contains(&value.as_str()) {
            c.error(
                v.pos,
                format!(
                    "`auto_cancel:{key}` is one of {}, not `{value}`",
                    allowed.join(", ")
                ),
            );
            continue;
        }
        if key == "on_new_commit" {
            out.on_new_commit = value;
        } else {
            out.on_job_failure = value;
        }
    }
    out
}

/// GitLab flattens nested script arrays up to this depth and refuses deeper ones.
const MAX_SCRIPT_NESTING: usize = 10;

fn script(c: &mut Checker, node: &Node, what: &str) -> Vec<String> {
    script_at(c, node, what, 0)
}

fn script_at(c: &mut Checker, node: &Node, what: &str, depth: usize) -> Vec<String> {
    match &node.value {
        Value::Scalar(s) if !node.is_null() => vec![s.clone()],
        Value::Scalar(_) => Vec::new(),
        Value::Seq(_) if depth >= MAX_SCRIPT_NESTING => {
            c.error(
                node.pos,
                format!("`{what}` nests lists more than {MAX_SCRIPT_NESTING} levels deep"),
            );
            Vec::new()
        }
        Value::Seq(items) => items
            .iter()
            .flat_map(|i| script_at(c, i, what, depth + 1))
            .collect(),
        Value::Map(_) => {
            c.type_error(node, what, "a string or a list of strings");
            Vec::new()
        }
    }
}

fn lower_job(
    c: &mut Checker,
    id: &str,
    key: &Node,
    node: &Node,
    (default, root): (Option<&Node>, &Node),
    incomplete: bool,
) -> Option<(Job, Vec<String>)> {
    let fields = c.map(node, &format!("job `{id}`"), JOB_KEYS);
    // The job's key, else `default:`'s, else the deprecated top-level one (GitLab still
    // reads `image`, `services`, `before_script`, `after_script` and `cache` there).
    let get = |k: &str| {
        node.get(k)
            .or_else(|| default.and_then(|d| d.get(k)))
            .or_else(|| GLOBAL_DEFAULTS.contains(&k).then(|| root.get(k)).flatten())
    };
    let mut job = Job::new(id, key.pos);
    let mut optional_needs = Vec::new();
    // Predefined per-job variables; the job's own `variables` may override them.
    job.env.insert("CI_JOB_NAME".into(), id.to_string());
    let stage = node.get("stage").and_then(Node::scalar).unwrap_or("test");
    job.env.insert("CI_JOB_STAGE".into(), stage.to_string());
    for (k, _, v) in &fields {
        match *k {
            "variables" => job.env.extend(variables(c, v)),
            "needs" => {
                let all = needs(c, v);
                optional_needs = all
                    .iter()
                    .filter(|(_, o)| *o)
                    .map(|(n, _)| n.clone())
                    .collect();
                job.needs = all.into_iter().map(|(n, _)| n).collect();
            }
            "when" => {
                let when = v.scalar().unwrap_or_default();
                if when == "never" {
                    c.error(
                        v.pos,
                        "`when: never` is only valid in `rules` and `workflow:rules`",
                    )
                    .help = Some("use `rules: [{when: never}]`".into());
                } else if !WHEN.contains(&when) {
                    let help = format!("valid values: {}", WHEN.join(", "));
                    c.error(v.pos, format!("unknown `when: {when}`")).help = Some(help);
                }
                job.condition = match when {
                    "on_failure" => Some("failure()".into()),
                    "always" => Some("always()".into()),
                    // Manual, delayed and never jobs do not start on their own.
                    // Delayed jobs start by themselves after `start_in` (locally, at once).
                    "manual" | "never" => Some("false".into()),
                    _ => None,
                };
            }
            "allow_failure" => match (v.as_bool(), v.as_map()) {
                (Some(b), _) => job.continue_on_error = Some(Json::Bool(b)),
                (None, Some(_)) => {
                    // `exit_codes: N` or a list: only those failures are allowed.
                    let codes = v
                        .get("exit_codes")
                        .map(|e| c.string_list(e, "exit_codes"))
                        .unwrap_or_default();
                    for (code, pos) in codes {
                        match code.parse::<i32>() {
                            Ok(n) => job.allow_exit_codes.push(n),
                            Err(_) => {
                                c.error(pos, format!("exit code `{code}` is not a number"));
                            }
                        }
                    }
                    job.continue_on_error = Some(Json::Bool(true));
                }
                _ => c.type_error(v, "allow_failure", "a boolean or `exit_codes:`"),
            },
            "trigger" => {
                c.warning(
                    v.pos,
                    format!(
                        "job `{id}` triggers a downstream pipeline, which does not run locally"
                    ),
                );
                job.condition = Some("false".into());
            }
            _ => {}
        }
    }
    // With `needs`, `dependencies` may only name jobs it needs (GitLab's rule).
    if let (Some(deps), Some(_)) = (node.get("dependencies"), node.get("needs")) {
        for (dep, pos) in c.string_list(deps, "dependencies") {
            if !job.needs.contains(&dep) {
                c.error(
                    pos,
                    format!("`dependencies` names `{dep}`, which is not in this job's `needs`"),
                );
            }
        }
    }
    if let Some(cache) = get("cache") {
        check_cache(c, cache);
    }
    if let Some(t) = get("timeout") {
        job.timeout_minutes = t.scalar().and_then(parse_duration_minutes).map(Json::from);
    }
    if let Some(retry) = get("retry") {
        job.retry = retries(c, retry);
    }
    if let Some(tags) = get("tags") {
        job.runs_on = Some(tags.to_json());
    }
    if let Some(image) = get("image") {
        job.container = Some(image.to_json());
    }
    if let Some(services) = get("services").and_then(Node::as_seq) {
        for service in services {
            let name = service
                .scalar()
                .or_else(|| service.get("name").and_then(Node::scalar));
            if let Some(name) = name {
                job.services.insert(name.to_string(), service.to_json());
            }
        }
    }
    let before = get("before_script")
        .map(|n| script(c, n, "before_script"))
        .unwrap_or_default();
    let main = node
        .get("script")
        .map(|n| script(c, n, "script"))
        .unwrap_or_default();
    let after = get("after_script")
        .map(|n| script(c, n, "after_script"))
        .unwrap_or_default();
    if main.is_empty() && node.get("trigger").is_none() {
        if !incomplete {
            c.error(key.pos, format!("job `{id}` has no `script`")).help =
                Some("every job needs `script` (or `trigger`)".into());
            return None;
        }
        c.warning(key.pos, format!("job `{id}` has no `script` here (it may come from an include that cannot be resolved offline)"));
        // Planned, but fails clearly if someone runs it.
        job.steps.push(Step {
            pos: key.pos,
            name: Some("script".into()),
            run: Some(format!("echo 'job `{id}`: its script comes from an include that cannot be resolved offline' >&2; exit 1")),
            shell: Some("bash".into()),
            ..Step::default()
        });
        return Some((job, optional_needs));
    }
    // before_script and script share one shell session, as on a GitLab runner.
    let body: Vec<String> = before.into_iter().chain(main).collect();
    job.steps.push(Step {
        pos: node.get("script").map_or(key.pos, |s| s.pos),
        name: Some("script".into()),
        run: Some(echoed(&body)),
        shell: Some("bash".into()),
        ..Step::default()
    });
    if !after.is_empty() {
        job.steps.push(Step {
            pos: get("after_script").map_or(key.pos, |s| s.pos),
            name: Some("after_script".into()),
            run: Some(echoed(&after)),
            // GitLab gives after_script its own 5-minute timeout.
            timeout_minutes: Some(Json::from(5)),
            shell: Some("bash".into()),
            condition: Some("always()".into()),
            continue_on_error: Some(Json::Bool(true)),
            ..Step::default()
        });
    }
    Some((job, optional_needs))
}

/// `${{ job.inputs.NAME }}` must name an input the job declares.
fn check_job_input_references(
    c: &mut Checker,
    job: &Job,
    declared: &IndexMap<String, Json>,
    node: &Node,
) {
    let mut texts: Vec<String> = job.steps.iter().filter_map(|s| s.run.clone()).collect();
    texts.extend(job.container.iter().map(Json::to_string));
    texts.extend(job.services.values().map(Json::to_string));
    let mut missing: Vec<&str> = texts
        .iter()
        .flat_map(|t| super::inputs::undeclared_job_inputs(t, declared))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    {
        for name in missing {
            let help = did_you_mean(name, declared.keys().map(String::as_str)).map_or_else(
                || "declare it under the job's `inputs:`".to_string(),
                |s| format!("did you mean `{s}`?"),
            );
            c.error(
                node.get("script").map_or(node.pos, |s| s.pos),
                format!(
                    "`${{{{ job.inputs.{name} }}}}`: job `{}` has no input `{name}`",
                    job.id
                ),
            )
            .help = Some(help);
        }
    }
}

/// `retry: N` or `retry: {max: N, when: [...]}` (0 to 2). Locally every failure is a script
/// failure or a timeout, so `when` lists without those (or `always`) mean no retry.
fn retries(c: &mut Checker, node: &Node) -> u32 {
    let (max, when) = match (node.as_f64(), node.as_map()) {
        (Some(n), _) => (Some(n), None),
        (None, Some(_)) => {
            let fields = c.map(node, "retry", &["max", "when", "exit_codes"]);
            let max = fields
                .iter()
                .find(|(k, ..)| *k == "max")
                .and_then(|(_, _, v)| v.as_f64());
            let when = fields
                .iter()
                .find(|(k, ..)| *k == "when")
                .map(|(_, _, v)| c.string_list(v, "retry:when"));
            (max, when)
        }
        _ => {
            c.type_error(node, "retry", "a number or a mapping with `max`");
            return 0;
        }
    };
    let max = max.unwrap_or(0.0);
    if !(0.0..=2.0).contains(&max) || max.fract() != 0.0 {
        c.error(node.pos, format!("`retry` must be 0, 1 or 2, not {max}"));
        return 0;
    }
    let local = [
        "always",
        "script_failure",
        "job_execution_timeout",
        "unknown_failure",
    ];
    match when {
        Some(list) if !list.iter().any(|(w, _)| local.contains(&w.as_str())) => 0,
        _ => max as u32,
    }
}

/// A GitLab runner's script: each command is echoed as `$ command` before it runs.
fn echoed(commands: &[String]) -> String {
    let mut script = String::new();
    for command in commands {
        let shown = command.replace('\'', "'\\''");
        script.push_str(&format!("printf '%s\\n' '$ {shown}'\n{command}\n"));
    }
    script
}

/// `needs:` entries: names or `{job, optional, artifacts, parallel: matrix, …}`, as
/// (job name, optional).
fn needs(c: &mut Checker, node: &Node) -> Vec<(String, bool)> {
    let Some(items) = node.as_seq() else {
        c.type_error(node, "needs", "a list");
        return Vec::new();
    };
    let mut out = Vec::new();
    for i in items {
        match &i.value {
            Value::Scalar(_) if i.is_null() => {}
            Value::Scalar(s) => out.push((s.clone(), false)),
            Value::Map(_) => {
                c.map(
                    i,
                    "a needs entry",
                    &[
                        "job",
                        "optional",
                        "artifacts",
                        "parallel",
                        "pipeline",
                        "project",
                        "ref",
                    ],
                );
                // Jobs of other projects or pipelines are not part of this DAG.
                if i.get("project").is_some() || i.get("pipeline").is_some() {
                    continue;
                }
                let Some(job) = i.get("job").and_then(Node::scalar) else {
                    continue;
                };
                let optional = i.get("optional").and_then(Node::as_bool) == Some(true);
                match i.get("parallel").and_then(|p| p.get("matrix")) {
                    // `needs:parallel:matrix` picks instances: `job: [v1, v2]`.
                    Some(matrix) => {
                        for combo in matrix_combinations(c, matrix) {
                            let values: Vec<&str> = combo.iter().map(|(_, v)| v.as_str()).collect();
                            out.push((format!("{job}: [{}]", values.join(", ")), optional));
                        }
                    }
                    None => out.push((job.to_string(), optional)),
                }
            }
            // Nested lists (from YAML aliases) are flattened, as GitLab does.
            Value::Seq(_) => out.extend(needs(c, i)),
        }
    }
    out
}

/// GitLab durations (`1h 30m`, `90 minutes`, `2h`) in minutes.
fn parse_duration_minutes(text: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut number = String::new();
    let mut seen = false;
    let lower = text.to_ascii_lowercase();
    let mut chars = lower.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch.is_ascii_digit() || ch == '.' {
            number.push(ch);
            continue;
        }
        if ch.is_whitespace() {
            continue;
        }
        let mut unit = String::from(ch);
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphabetic() {
                unit.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let value: f64 = number.parse().ok()?;
        number.clear();
        seen = true;
        total += match unit.as_str() {
            "s" | "sec" | "secs" | "second" | "seconds" => value / 60.0,
            "m" | "min" | "mins" | "minute" | "minutes" => value,
            "h" | "hr" | "hrs" | "hour" | "hours" => value * 60.0,
            "d" | "day" | "days" => value * 1440.0,
            _ => return None,
        };
    }
    if !number.is_empty() {
        // A bare number is seconds.
        total += number.parse::<f64>().ok()? / 60.0;
        seen = true;
    }
    seen.then_some(total)
}

/// The combinations of a `parallel:matrix` list: each entry's product, in order, as
/// (variable, value) pairs in the entry's key order.
fn matrix_combinations(c: &mut Checker, matrix: &Node) -> Vec<Vec<(String, String)>> {
    let Some(entries) = matrix.as_seq() else {
        c.type_error(matrix, "matrix", "a list of mappings");
        return Vec::new();
    };
    let mut combos: Vec<Vec<(String, String)>> = Vec::new();
    for entry in entries {
        let mut product: Vec<Vec<(String, String)>> = vec![Vec::new()];
        for (key, _, values) in c.map(entry, "a parallel:matrix entry", &[]) {
            let values: Vec<String> = match values.as_seq() {
                Some(items) => items
                    .iter()
                    .filter_map(|i| i.scalar().map(String::from))
                    .collect(),
                None => values.scalar().map(String::from).into_iter().collect(),
            };
            product = product
                .into_iter()
                .flat_map(|combo| {
                    values.iter().map(move |v| {
                        let mut next = combo.clone();
                        next.push((key.to_string(), v.clone()));
                        next
                    })
                })
                .collect();
        }
        combos.extend(product.into_iter().filter(|c| !c.is_empty()));
    }
    combos
}

/// GitLab's `parallel`: `N` → `job 1/N` … `job N/N` (with `CI_NODE_INDEX`/`CI_NODE_TOTAL`);
/// `matrix:` → one instance per combination, named `job: [v1, v2]`, its values as variables.
fn parallel_instances(
    c: &mut Checker,
    job: &Node,
    id: &str,
) -> Option<Vec<(String, IndexMap<String, String>)>> {
    const MAX: usize = 200;
    // `parallel: null` undoes an inherited `parallel`.
    let node = job.get("parallel").filter(|n| !n.is_null())?;
    let node_vars = |i: usize, total: usize| -> IndexMap<String, String> {
        [
            ("CI_NODE_INDEX", (i + 1).to_string()),
            ("CI_NODE_TOTAL", total.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    };
    if let Some(n) = node.as_f64() {
        let n = n as usize;
        if !(1..=MAX).contains(&n) {
            c.error(node.pos, format!("`parallel` must be between 1 and {MAX}"));
            return None;
        }
        return Some(
            (0..n)
                .map(|i| (format!("{id} {}/{n}", i + 1), node_vars(i, n)))
                .collect(),
        );
    }
    let Some(matrix_node) = node.get("matrix") else {
        c.type_error(node, "parallel", "a number or `matrix:`");
        return None;
    };
    let combos = matrix_combinations(c, matrix_node);
    if combos.is_empty() || combos.len() > MAX {
        c.error(
            node.pos,
            format!(
                "`parallel:matrix` must produce between 1 and {MAX} jobs, not {}",
                combos.len()
            ),
        );
        return None;
    }
    let total = combos.len();
    Some(
        combos
            .into_iter()
            .enumerate()
            .map(|(i, combo)| {
                let values: Vec<&str> = combo.iter().map(|(_, v)| v.as_str()).collect();
                let mut vars = node_vars(i, total);
                vars.extend(combo.iter().cloned());
                (format!("{id}: [{}]", values.join(", ")), vars)
            })
            .collect(),
    )
}

/// `rules:`, or `only`/`except` (implicitly `only: [branches, tags]`).
fn selection(c: &mut Checker, job: &Node) -> Selection {
    if let Some(r) = job.get("rules") {
        if job.get("only").is_some() || job.get("except").is_some() {
            c.error(
                r.pos,
                "`rules` cannot be used together with `only` or `except`",
            );
        }
        return Selection::Rules(rules(c, r));
    }
    let only = match job.get("only") {
        Some(o) => ref_filter(c, o, "only"),
        None => RefFilter {
            refs: vec!["branches".into(), "tags".into()],
            ..RefFilter::default()
        },
    };
    let except = job.get("except").map(|e| ref_filter(c, e, "except"));
    Selection::OnlyExcept { only, except }
}

fn condition(c: &mut Checker, node: &Node) -> Option<Condition> {
    let text = c.string(node, "if")?;
    if let Some(at) = text.find("${") {
        // GitLab reads `$VAR` (and `$VAR == "…"`) here, not the `${VAR}` of scripts.
        let pos = c.locate(node, at);
        c.error(
            pos,
            format!("`{text}`: write `$VARIABLE`, not `${{VARIABLE}}`, in `rules:if`"),
        )
        .help = Some("GitLab refuses the braced form in conditions".into());
        return None;
    }
    match Condition::parse(&text) {
        Ok(cond) => Some(cond),
        Err(e) => {
            let pos = c.locate(node, e.offset);
            c.error(pos, format!("invalid expression `{text}`: {}", e.message));
            None
        }
    }
}

/// `changes: {paths, compare_to: REF}`: the files changed since REF, when the repository
/// is at hand; a ref it does not have is an error, as on GitLab.
fn compare_to(c: &mut Checker, changes: &Node) -> Option<Vec<String>> {
    let node = changes.get("compare_to")?;
    let Some(git_ref) = node.scalar() else {
        c.type_error(node, "compare_to", "a branch, tag or commit");
        return None;
    };
    match c.changed_since?(git_ref) {
        Ok(files) => Some(files),
        Err(e) => {
            c.error(node.pos, format!("`changes:compare_to`: {e}"));
            None
        }
    }
}

fn patterns(c: &mut Checker, node: &Node, what: &str) -> PatternList {
    let mut list = PatternList::default();
    let items = match node.get("paths") {
        Some(paths) => paths,
        None => node,
    };
    for (text, pos) in c.string_list(items, what) {
        for alternative in expand_braces(&text) {
            match Pattern::new(&alternative) {
                Ok(p) => list.patterns.push(p),
                Err(e) => {
                    c.error(
                        pos,
                        format!("invalid glob `{text}` in `{what}`: {}", e.message),
                    );
                    break;
                }
            }
        }
    }
    list
}

/// GitLab matches `changes` and `exists` with Ruby's `fnmatch` and `FNM_EXTGLOB`:
/// `{a,b}` alternatives (nested too) expand into one glob each.
fn expand_braces(text: &str) -> Vec<String> {
    const MAX_ALTERNATIVES: usize = 1024;
    // The first `{` with a matching `}` that has a top-level comma inside.
    let bytes = text.as_bytes();
    for open in (0..bytes.len()).filter(|&i| bytes[i] == b'{') {
        let (mut depth, mut commas) = (0usize, Vec::new());
        let mut close = None;
        for (i, &b) in bytes.iter().enumerate().skip(open) {
            match b {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(i);
                        break;
                    }
                }
                b',' if depth == 1 => commas.push(i),
                _ => {}
            }
        }
        let Some(close) = close else { break };
        if commas.is_empty() {
            continue;
        }
        let (head, tail) = (&text[..open], &text[close + 1..]);
        let mut bounds = vec![open];
        bounds.extend(&commas);
        bounds.push(close);
        let mut out = Vec::new();
        for pair in bounds.windows(2) {
            let alternative = format!("{head}{}{tail}", &text[pair[0] + 1..pair[1]]);
            out.extend(expand_braces(&alternative));
            if out.len() > MAX_ALTERNATIVES {
                out.truncate(MAX_ALTERNATIVES);
                return out;
            }
        }
        return out;
    }
    vec![text.to_string()]
}

/// Whether a conditional include's `rules:` add it for `event`. GitLab evaluates them with
/// the predefined (and project) variables only: the file's own `variables:` do not exist
/// yet. Rules with errors admit the include, so that lowering reports them.
pub fn include_admitted(
    rules_node: &Node,
    event: &crate::trigger::Event,
    exists: Option<&dyn Fn(&str) -> bool>,
) -> Result<(), String> {
    use crate::trigger::gitlab::{Selection, predefined, select};
    let mut scratch = Checker::new("", "");
    scratch.exists = exists;
    let parsed = rules(&mut scratch, rules_node);
    if scratch.diagnostics.iter().any(Diagnostic::is_error) {
        return Ok(());
    }
    let d = select(
        &Selection::Rules(parsed),
        event,
        &predefined(event),
        "on_success",
    );
    if d.added { Ok(()) } else { Err(d.reason) }
}

fn rules(c: &mut Checker, node: &Node) -> Vec<Rule> {
    let Some(items) = node.as_seq() else {
        c.type_error(node, "rules", "a list");
        return Vec::new();
    };
    let keys = [
        "if",
        "changes",
        "exists",
        "when",
        "allow_failure",
        "variables",
        "needs",
        "start_in",
        "interruptible",
        "auto_cancel",
    ];
    let mut out = Vec::new();
    for item in items {
        if item.is_null() {
            c.error(item.pos, "a blank entry in `rules`: each rule is a mapping");
            continue;
        }
        let mut rule = Rule::default();
        for (key, _, v) in c.map(item, "a rule", &keys) {
            match key {
                "if" => rule.condition = condition(c, v),
                "changes" => {
                    rule.changes = Some(patterns(c, v, "changes"));
                    rule.compared_files = compare_to(c, v);
                }
                "exists" => {
                    let paths = v.get("paths").unwrap_or(v);
                    let globs: Vec<String> = c
                        .string_list(paths, "exists")
                        .into_iter()
                        .flat_map(|(s, _)| expand_braces(&s))
                        .collect();
                    rule.exists = c.exists.map(|exists| globs.iter().any(|g| exists(g)));
                }
                "when" => {
                    let when = v.scalar().unwrap_or_default();
                    if !WHEN.contains(&when) {
                        c.error(v.pos, format!("unknown `when: {when}`")).help =
                            Some(format!("valid values: {}", WHEN.join(", ")));
                    }
                    rule.when = Some(when.to_string());
                }
                "allow_failure" => rule.allow_failure = v.as_bool().or(v.as_map().map(|_| true)),
                "variables" => rule.variables = variables(c, v),
                _ => {}
            }
        }
        out.push(rule);
    }
    out
}

fn ref_filter(c: &mut Checker, node: &Node, what: &str) -> RefFilter {
    let mut f = RefFilter::default();
    let refs_node = match &node.value {
        Value::Map(_) => {
            for (key, _, v) in c.map(node, what, &["refs", "variables", "changes", "kubernetes"]) {
                match key {
                    "variables" => {
                        f.variables = v
                            .as_seq()
                            .unwrap_or_default()
                            .iter()
                            .filter_map(|i| condition(c, i))
                            .collect();
                    }
                    "changes" => f.changes = Some(patterns(c, v, "changes")),
                    _ => {}
                }
            }
            node.get("refs")
        }
        _ => Some(node),
    };
    if let Some(refs) = refs_node {
        for (text, pos) in c.string_list(refs, what) {
            if text.starts_with('/')
                && let Err(e) = parse_regex_literal(&text)
            {
                c.error(pos, format!("`{what}`: `{text}`: {e}"));
            }
            f.refs.push(text);
        }
    }
    f
}
