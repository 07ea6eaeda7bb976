//! GitLab's CI/CD inputs: a file's `spec:inputs` header (types, defaults, `options`,
//! `regex`, `rules` that pick options and defaults from other inputs), the values an
//! `include:inputs` or a pipeline gives them, and `$[[ inputs.NAME ]]` interpolation.
//! Also the typed values of job-level `inputs:` (`${{ job.inputs.NAME }}`).

use crate::diag::{Diagnostic, Pos, did_you_mean};
use crate::spec::yaml::{Node, Style, Value};
use crate::trigger::gitlab::Condition;
use indexmap::IndexMap;
use serde_json::Value as Json;

/// GitLab's limit on a string holding an interpolation block.
const MAX_INTERPOLATED_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Number,
    Boolean,
    Array,
}

impl Kind {
    fn parse(text: &str) -> Option<Kind> {
        Some(match text {
            "string" => Kind::String,
            "number" => Kind::Number,
            "boolean" => Kind::Boolean,
            "array" => Kind::Array,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Number => "number",
            Kind::Boolean => "boolean",
            Kind::Array => "array",
        }
    }
}

/// One declared input.
#[derive(Debug, Clone)]
pub struct InputSpec {
    pub pos: Pos,
    pub kind: Kind,
    /// `None`: mandatory. `Some(Null)`: `default: null`, optional with no value.
    pub default: Option<Json>,
    pub options: Vec<Json>,
    pub regex: Option<regex::Regex>,
    pub description: Option<String>,
    /// `rules:`: the first whose `if` holds (or without `if`) gives options and default.
    rules: Vec<InputRule>,
}

#[derive(Debug, Clone)]
struct InputRule {
    condition: Option<Condition>,
    /// The other inputs the condition reads.
    reads: Vec<String>,
    options: Vec<Json>,
    default: Option<Json>,
}

const INPUT_KEYS: &[&str] = &[
    "default",
    "description",
    "options",
    "regex",
    "type",
    "rules",
];

/// Reads the `inputs:` of a `spec:` header, or of a job (`job = true`: a default is
/// required and there are no `rules`).
pub fn parse_specs(
    file: &str,
    node: &Node,
    job: bool,
    diagnostics: &mut Vec<Diagnostic>,
) -> IndexMap<String, InputSpec> {
    let mut out = IndexMap::new();
    let mut found = Vec::new();
    let mut error = |pos: Pos, msg: String| found.push(Diagnostic::error(file, pos, msg));
    let Some(entries) = node.as_map() else {
        if !node.is_null() {
            error(node.pos, "`inputs` must be a mapping of input names".into());
        }
        diagnostics.append(&mut found);
        return out;
    };
    for (key, def) in entries {
        let name = key.scalar().unwrap_or_default().to_string();
        let mut spec = InputSpec {
            pos: key.pos,
            kind: Kind::String,
            default: None,
            options: Vec::new(),
            regex: None,
            description: None,
            rules: Vec::new(),
        };
        if let Some(fields) = def.as_map() {
            for (k, v) in fields {
                let k = k.scalar().unwrap_or_default();
                match k {
                    "type" => match v.scalar().and_then(Kind::parse) {
                        Some(kind) => spec.kind = kind,
                        None => error(
                            v.pos,
                            format!(
                                "input `{name}`: unknown type `{}` (string, number, boolean or array)",
                                v.scalar().unwrap_or_default()
                            ),
                        ),
                    },
                    "default" => spec.default = Some(v.to_json()),
                    "description" => spec.description = v.scalar().map(String::from),
                    "options" => spec.options = options(v),
                    "regex" => match v.scalar().map(|r| regex::Regex::new(r.trim_matches('/'))) {
                        Some(Ok(re)) => spec.regex = Some(re),
                        _ => error(
                            v.pos,
                            format!("input `{name}`: `regex` is not a valid regular expression"),
                        ),
                    },
                    "rules" if !job => spec.rules = rules(&name, v, &mut error),
                    _ => {
                        let keys = if job { &INPUT_KEYS[..5] } else { INPUT_KEYS };
                        let help = did_you_mean(k, keys.iter().copied()).map_or_else(
                            || format!("valid keys: {}", keys.join(", ")),
                            |s| format!("did you mean `{s}`?"),
                        );
                        error(v.pos, format!("input `{name}`: unknown key `{k}` ({help})"));
                    }
                }
            }
        } else if !def.is_null() {
            error(
                def.pos,
                format!("input `{name}` must be a mapping (or empty)"),
            );
        }
        if !spec.rules.is_empty() && (spec.default.is_some() || !spec.options.is_empty()) {
            error(
                spec.pos,
                format!("input `{name}`: `rules` cannot be combined with `options` or `default`"),
            );
        }
        if job && spec.default.is_none() {
            error(
                spec.pos,
                format!("job input `{name}` needs a `default` (job inputs always have a value)"),
            );
        }
        if let Some(default) = &spec.default
            && (!default.is_null() || job)
            && let Err(why) = check(&spec, &spec.options, default)
        {
            error(spec.pos, format!("input `{name}`: the default {why}"));
        }
        out.insert(name, spec);
    }
    diagnostics.append(&mut found);
    check_rule_cycles(file, &out, diagnostics);
    out
}

fn options(node: &Node) -> Vec<Json> {
    match node.as_seq() {
        Some(items) => items.iter().map(Node::to_json).collect(),
        None => vec![node.to_json()],
    }
}

fn rules(name: &str, node: &Node, error: &mut impl FnMut(Pos, String)) -> Vec<InputRule> {
    let Some(items) = node.as_seq() else {
        error(node.pos, format!("input `{name}`: `rules` must be a list"));
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let mut rule = InputRule {
            condition: None,
            reads: Vec::new(),
            options: item.get("options").map(options).unwrap_or_default(),
            default: item.get("default").map(Node::to_json),
        };
        if let Some(cond) = item.get("if").and_then(Node::scalar) {
            let (text, reads) = as_variables(cond);
            match Condition::parse(&text) {
                Ok(c) => rule.condition = Some(c),
                Err(e) => error(
                    item.pos,
                    format!("input `{name}`: invalid rule `if: {cond}`: {}", e.message),
                ),
            }
            rule.reads = reads;
        }
        out.push(rule);
    }
    out
}

/// `inputs.NAME` (or `$[[ inputs.NAME ]]`) outside quotes becomes the variable
/// `$TESS_INPUT_<n>`, so GitLab's `rules:if` language evaluates input rules; returns the
/// rewritten text and the names read.
fn as_variables(cond: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(cond.len());
    let mut reads: Vec<String> = Vec::new();
    let mut quote: Option<char> = None;
    let mut rest = cond;
    while let Some(c) = rest.chars().next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if c == '"' || c == '\'' {
            quote = Some(c);
        }
        let (body, wrapped) = match rest.strip_prefix("$[[") {
            Some(inner) => (inner.trim_start(), true),
            None => (rest, false),
        };
        let at_word_start = !out.ends_with(|p: char| p.is_ascii_alphanumeric() || p == '_');
        if at_word_start && let Some(after) = body.strip_prefix("inputs.") {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(after.len());
            let name = after[..len].to_string();
            let mut tail = &after[len..];
            if wrapped {
                tail = tail.trim_start().strip_prefix("]]").unwrap_or(tail);
            }
            let index = reads.iter().position(|r| *r == name).unwrap_or_else(|| {
                reads.push(name.clone());
                reads.len() - 1
            });
            out.push_str(&format!("$TESS_INPUT_{index}"));
            rest = tail;
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    (out, reads)
}

/// Inputs whose rules read each other in a circle are refused, as GitLab refuses them.
fn check_rule_cycles(
    file: &str,
    specs: &IndexMap<String, InputSpec>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    for (name, spec) in specs {
        let mut seen = vec![name.clone()];
        let mut frontier: Vec<String> = spec.rules.iter().flat_map(|r| r.reads.clone()).collect();
        while let Some(next) = frontier.pop() {
            if next == *name {
                diagnostics.push(Diagnostic::error(
                    file,
                    spec.pos,
                    format!(
                        "input `{name}`: its rules depend on themselves (a circular dependency)"
                    ),
                ));
                break;
            }
            if seen.contains(&next) {
                continue;
            }
            if let Some(other) = specs.get(&next) {
                frontier.extend(other.rules.iter().flat_map(|r| r.reads.clone()));
            }
            seen.push(next);
        }
    }
}

/// Whether `value` fits the input: its type, its options, its regex.
fn check(spec: &InputSpec, options: &[Json], value: &Json) -> Result<(), String> {
    let fits = match spec.kind {
        Kind::String => value.is_string(),
        Kind::Number => value.is_number(),
        Kind::Boolean => value.is_boolean(),
        Kind::Array => value.is_array(),
    };
    if !fits {
        return Err(format!(
            "`{}` is not a {}",
            display(value),
            spec.kind.name()
        ));
    }
    if !options.is_empty() && !options.contains(value) {
        let list: Vec<String> = options.iter().map(display).collect();
        return Err(format!(
            "`{}` is not one of the options ({})",
            display(value),
            list.join(", ")
        ));
    }
    if let (Some(re), Json::String(s)) = (&spec.regex, value)
        && !re.is_match(s)
    {
        return Err(format!("`{s}` does not match the regex `{}`", re.as_str()));
    }
    Ok(())
}

/// A value as interpolation writes it: strings as they are, the rest as JSON.
pub fn display(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

/// A value given on the command line (`NAME=VALUE`), typed as the input declares.
pub fn parse_given(spec: &InputSpec, text: &str) -> Json {
    match spec.kind {
        Kind::String => Json::String(text.to_string()),
        Kind::Number | Kind::Boolean | Kind::Array => {
            serde_json::from_str(text).unwrap_or_else(|_| Json::String(text.to_string()))
        }
    }
}

/// The value of every input: the given ones (checked), else the defaults (mandatory ones
/// missing are errors at `at`), rules decided in dependency order.
pub fn values(
    file: &str,
    specs: &IndexMap<String, InputSpec>,
    given: &IndexMap<String, (Json, Pos)>,
    at: Pos,
    diagnostics: &mut Vec<Diagnostic>,
) -> IndexMap<String, Json> {
    for (name, (_, pos)) in given {
        if !specs.contains_key(name) {
            let help = did_you_mean(name, specs.keys().map(String::as_str))
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| {
                    let names: Vec<&str> = specs.keys().map(String::as_str).collect();
                    format!("declared inputs: {}", names.join(", "))
                });
            diagnostics.push(
                Diagnostic::error(file, *pos, format!("unknown input `{name}`")).with_help(help),
            );
        }
    }
    let mut out: IndexMap<String, Json> = IndexMap::new();
    // Inputs without rules first, then rules as their inputs become known.
    let mut pending: Vec<&String> = specs.keys().collect();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|name| {
            let spec = &specs[*name];
            let ready = spec
                .rules
                .iter()
                .flat_map(|r| &r.reads)
                .all(|r| out.contains_key(r) || !specs.contains_key(r));
            if !ready {
                return true;
            }
            let (options, default) = decide_rules(spec, &out);
            let value = match given.get(*name) {
                Some((value, pos)) => {
                    if let Err(why) = check(spec, &options, value) {
                        diagnostics.push(Diagnostic::error(
                            file,
                            *pos,
                            format!("input `{name}`: {why}"),
                        ));
                    }
                    value.clone()
                }
                None => match default {
                    Some(d) => d,
                    None => {
                        diagnostics.push(Diagnostic::error(
                            file,
                            at,
                            format!("input `{name}` is mandatory and was not given"),
                        ));
                        Json::Null
                    }
                },
            };
            out.insert((*name).clone(), value);
            false
        });
        if pending.len() == before {
            // A cycle, already reported: what is left takes its plain default.
            for name in pending.drain(..) {
                out.insert(
                    name.clone(),
                    specs[name].default.clone().unwrap_or(Json::Null),
                );
            }
        }
    }
    out
}

/// The options and default an input has, given the inputs its rules read.
fn decide_rules(spec: &InputSpec, known: &IndexMap<String, Json>) -> (Vec<Json>, Option<Json>) {
    if spec.rules.is_empty() {
        return (spec.options.clone(), spec.default.clone());
    }
    for rule in &spec.rules {
        let holds = rule.condition.as_ref().is_none_or(|c| {
            let vars: IndexMap<String, String> = rule
                .reads
                .iter()
                .enumerate()
                .filter_map(|(i, name)| {
                    known
                        .get(name)
                        .filter(|v| !v.is_null())
                        .map(|v| (format!("TESS_INPUT_{i}"), display(v)))
                })
                .collect();
            c.eval(&vars)
        });
        if holds {
            return (rule.options.clone(), rule.default.clone());
        }
    }
    // No rule matched: no options to choose from and no default.
    (Vec::new(), None)
}

/// `$[[ inputs.NAME ]]` replaced in every key and value of `node`. A scalar that is one
/// interpolation block becomes the typed value (a boolean, a number, a list); otherwise
/// the value's text is spliced in. Unknown inputs are errors; `$[[ matrix.X ]]` and other
/// contexts are left for later.
pub fn interpolate(
    file: &str,
    node: &Node,
    values: &IndexMap<String, Json>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Node {
    match &node.value {
        Value::Scalar(text) if text.contains("$[[") => {
            interpolate_scalar(file, node, text, values, diagnostics)
        }
        Value::Scalar(_) => node.clone(),
        Value::Seq(items) => Node {
            value: Value::Seq(
                items
                    .iter()
                    .map(|i| interpolate(file, i, values, diagnostics))
                    .collect(),
            ),
            ..node.clone()
        },
        Value::Map(entries) => Node {
            value: Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| {
                        (
                            interpolate(file, k, values, diagnostics),
                            interpolate(file, v, values, diagnostics),
                        )
                    })
                    .collect(),
            ),
            ..node.clone()
        },
    }
}

fn interpolate_scalar(
    file: &str,
    node: &Node,
    text: &str,
    values: &IndexMap<String, Json>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Node {
    if text.len() > MAX_INTERPOLATED_BYTES {
        diagnostics.push(Diagnostic::error(
            file,
            node.pos,
            "a string with an interpolation block must be under 1 MB",
        ));
        return node.clone();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut whole: Option<Json> = None;
    while let Some(start) = rest.find("$[[") {
        let Some(len) = rest[start..].find("]]") else {
            break;
        };
        let block = rest[start + 3..start + len].trim();
        let Some(expr) = block.strip_prefix("inputs.") else {
            // `matrix.X` (needs:parallel:matrix) and others are not inputs.
            out.push_str(&rest[..start + len + 2]);
            rest = &rest[start + len + 2..];
            continue;
        };
        let mut parts = expr.split('|').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let Some(value) = values.get(name) else {
            let help = did_you_mean(name, values.keys().map(String::as_str))
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| "declare it under `spec:inputs` in this file's header".into());
            diagnostics.push(
                Diagnostic::error(
                    file,
                    node.pos,
                    format!("unknown input `{name}` in `$[[ inputs.{name} ]]`"),
                )
                .with_help(help),
            );
            out.push_str(&rest[..start + len + 2]);
            rest = &rest[start + len + 2..];
            continue;
        };
        let mut shown = display(value);
        let mut functions = false;
        for function in parts {
            functions = true;
            match apply(function, &shown) {
                Ok(next) => shown = next,
                Err(why) => diagnostics.push(Diagnostic::error(file, node.pos, why)),
            }
        }
        if start == 0 && len + 2 == rest.len() && out.is_empty() && !functions {
            whole = Some(value.clone());
        }
        out.push_str(&rest[..start]);
        out.push_str(&shown);
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    match whole {
        Some(value) => from_json(&value, node.pos),
        None => Node {
            value: Value::Scalar(out),
            style: Style::Quoted,
            ..node.clone()
        },
    }
}

/// The interpolation functions: `truncate(offset,length)` and `posix_escape`
/// (`expand_vars` needs variables that exist only when the pipeline is created).
fn apply(function: &str, text: &str) -> Result<String, String> {
    if function == "posix_escape" {
        return Ok(text
            .chars()
            .flat_map(|c| {
                let escape = !(c.is_ascii_alphanumeric() || "_-./,:@%+=".contains(c));
                escape.then_some('\\').into_iter().chain(std::iter::once(c))
            })
            .collect());
    }
    if function == "expand_vars" {
        return Ok(text.to_string());
    }
    if let Some(args) = function
        .strip_prefix("truncate(")
        .and_then(|a| a.strip_suffix(')'))
    {
        let numbers: Vec<Option<usize>> = args.split(',').map(|a| a.trim().parse().ok()).collect();
        if let [Some(offset), Some(length)] = numbers[..] {
            return Ok(text.chars().skip(offset).take(length).collect());
        }
        return Err(format!("`{function}`: truncate takes two numbers"));
    }
    Err(format!(
        "unknown interpolation function `{function}` (expand_vars, truncate, posix_escape)"
    ))
}

/// A YAML node for a typed input value.
fn from_json(value: &Json, pos: Pos) -> Node {
    let scalar = |text: String, style: Style| Node {
        value: Value::Scalar(text),
        pos,
        tag: None,
        style,
    };
    match value {
        Json::Array(items) => Node {
            value: Value::Seq(items.iter().map(|i| from_json(i, pos)).collect()),
            pos,
            tag: None,
            style: Style::Collection,
        },
        Json::Object(map) => Node {
            value: Value::Map(
                map.iter()
                    .map(|(k, v)| (scalar(k.clone(), Style::Quoted), from_json(v, pos)))
                    .collect(),
            ),
            pos,
            tag: None,
            style: Style::Collection,
        },
        Json::String(s) => scalar(s.clone(), Style::Quoted),
        Json::Null => Node::null(pos),
        other => scalar(other.to_string(), Style::Plain),
    }
}

/// The `${{ job.inputs.NAME }}` references in `text`: (byte range, name).
fn job_input_refs(text: &str) -> Vec<(std::ops::Range<usize>, &str)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(start) = text[from..].find("${{").map(|i| i + from) {
        let Some(len) = text[start..].find("}}") else {
            break;
        };
        let end = start + len + 2;
        if let Some(name) = text[start + 3..start + len]
            .trim()
            .strip_prefix("job.inputs.")
        {
            out.push((start..end, name.trim()));
        }
        from = end;
    }
    out
}

/// The job inputs `text` names that the job does not declare.
pub fn undeclared_job_inputs<'t>(text: &'t str, declared: &IndexMap<String, Json>) -> Vec<&'t str> {
    job_input_refs(text)
        .into_iter()
        .map(|(_, name)| name)
        .filter(|name| !declared.contains_key(*name))
        .collect()
}

/// `${{ job.inputs.NAME }}` replaced by the input's value (interpolated into the job's
/// configuration when the job is created, as GitLab does; not an environment variable).
pub fn substitute_job_inputs(text: &str, values: &IndexMap<String, Json>) -> String {
    let refs = job_input_refs(text);
    if refs.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (range, name) in refs {
        if let Some(value) = values.get(name) {
            out.push_str(&text[last..range.start]);
            out.push_str(&display(value));
            last = range.end;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// A job input's value from the command line, checked against its declaration.
pub fn job_input_value(spec: &InputSpec, text: &str) -> Result<Json, String> {
    let value = parse_given(spec, text);
    check(spec, &spec.options, &value)?;
    Ok(value)
}

/// A declared job input as a play form shows it, stored with the job so the server checks
/// a played value the way the runner will (type, options, regex).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InputForm {
    pub name: String,
    /// `string`, `number`, `boolean` or `array`.
    #[serde(rename = "type")]
    pub kind: String,
    pub default: Option<Json>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<Json>,
    pub regex: Option<String>,
    pub description: Option<String>,
}

impl InputSpec {
    pub fn form(&self, name: &str) -> InputForm {
        InputForm {
            name: name.to_string(),
            kind: self.kind.name().to_string(),
            default: self.default.clone(),
            options: self.options.clone(),
            regex: self.regex.as_ref().map(|r| r.as_str().to_string()),
            description: self.description.clone(),
        }
    }
}

impl InputForm {
    /// The typed value of `text` for this input, or why it does not fit.
    pub fn value(&self, text: &str) -> Result<Json, String> {
        let spec = InputSpec {
            pos: Pos::default(),
            kind: Kind::parse(&self.kind).unwrap_or(Kind::String),
            default: self.default.clone(),
            options: self.options.clone(),
            regex: match &self.regex {
                Some(source) => Some(
                    regex::Regex::new(source).map_err(|e| format!("bad regex `{source}`: {e}"))?,
                ),
                None => None,
            },
            description: self.description.clone(),
            rules: Vec::new(),
        };
        job_input_value(&spec, text)
    }
}

/// The job with its `${{ job.inputs.NAME }}` interpolated in its scripts, image and
/// services; the same job when it declares no inputs.
pub fn with_job_inputs(job: &std::sync::Arc<crate::spec::Job>) -> std::sync::Arc<crate::spec::Job> {
    let Some(values) = job
        .gitlab
        .as_ref()
        .map(|g| &g.input_values)
        .filter(|v| !v.is_empty())
    else {
        return std::sync::Arc::clone(job);
    };
    fn json(j: &Json, values: &IndexMap<String, Json>) -> Json {
        match j {
            Json::String(s) => Json::String(substitute_job_inputs(s, values)),
            Json::Array(items) => Json::Array(items.iter().map(|i| json(i, values)).collect()),
            Json::Object(map) => Json::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), json(v, values)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    let mut out = (**job).clone();
    for step in &mut out.steps {
        if let Some(run) = &step.run {
            step.run = Some(substitute_job_inputs(run, values));
        }
    }
    out.container = out.container.as_ref().map(|c| json(c, values));
    for service in out.services.values_mut() {
        *service = json(service, values);
    }
    std::sync::Arc::new(out)
}
