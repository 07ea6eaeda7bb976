//! Action metadata (`action.yml`): composite actions (`runs.using: composite`, parsed with
//! the same step parser as workflows), JavaScript (`node*`) and Docker ones.

use super::check::Checker;
use super::github::parse_steps;
use super::model::Step;
use super::yaml;
use crate::diag::Diagnostic;
use indexmap::IndexMap;

#[derive(Debug, Clone, Default)]
pub struct Action {
    pub name: String,
    /// `composite`, `node20`, `docker`, …
    pub using: String,
    pub inputs: IndexMap<String, Input>,
    pub outputs: IndexMap<String, String>,
    pub steps: Vec<Step>,
    /// Docker actions: `Dockerfile` (a path in the action) or `docker://IMAGE`.
    pub image: Option<String>,
    pub entrypoint: Option<String>,
    pub args: Vec<String>,
    pub env: IndexMap<String, String>,
    /// JavaScript actions: the files of `runs.main`, `runs.pre`, `runs.post`.
    pub main: Option<String>,
    pub pre: Option<String>,
    pub post: Option<String>,
    /// Conditions of `pre` and `post` (default `always()`).
    pub pre_if: Option<String>,
    pub post_if: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Input {
    pub default: Option<String>,
    pub required: bool,
}

pub fn parse_action(file: &str, bytes: &[u8]) -> Result<Action, Vec<Diagnostic>> {
    let (root, mut diagnostics) = yaml::parse(file, bytes);
    let Some(root) = root else {
        return Err(diagnostics);
    };
    let source = std::str::from_utf8(bytes).unwrap_or_default();
    let mut c = Checker::new(file, source);
    let mut action = Action::default();
    let top = [
        "name",
        "author",
        "description",
        "inputs",
        "outputs",
        "runs",
        "branding",
    ];
    for (key, _, v) in c.map(&root, "the action", &top) {
        match key {
            "name" => action.name = c.string(v, key).unwrap_or_default(),
            "inputs" => {
                for (name, _, def) in c.map(v, "inputs", &[]) {
                    let allowed = ["description", "required", "default", "deprecationMessage"];
                    let mut input = Input::default();
                    for (k, _, d) in c.map(def, "an input", &allowed) {
                        match k {
                            "default" => input.default = c.string(d, "default"),
                            // `required: true` or the string "true", as the runner reads it.
                            "required" => {
                                input.required = c
                                    .string(d, "required")
                                    .is_some_and(|r| r.eq_ignore_ascii_case("true"));
                            }
                            _ => {}
                        }
                    }
                    action.inputs.insert(name.to_string(), input);
                }
            }
            "outputs" => {
                for (name, _, def) in c.map(v, "outputs", &[]) {
                    let value = c
                        .map(def, "an output", &["description", "value"])
                        .into_iter()
                        .find(|(k, ..)| *k == "value")
                        .and_then(|(_, _, d)| c.string(d, "value"));
                    action
                        .outputs
                        .insert(name.to_string(), value.unwrap_or_default());
                }
            }
            "runs" => {
                let allowed = [
                    "using",
                    "steps",
                    "main",
                    "pre",
                    "post",
                    "image",
                    "args",
                    "entrypoint",
                    "env",
                    "pre-if",
                    "post-if",
                    "pre-entrypoint",
                    "post-entrypoint",
                ];
                for (rk, _, rv) in c.map(v, "runs", &allowed) {
                    match rk {
                        "using" => action.using = c.string(rv, rk).unwrap_or_default(),
                        "steps" => action.steps = parse_steps(&mut c, rv, "the composite action"),
                        "image" => action.image = c.string(rv, rk),
                        "main" => action.main = c.string(rv, rk),
                        "pre" => action.pre = c.string(rv, rk),
                        "post" => action.post = c.string(rv, rk),
                        "pre-if" => action.pre_if = c.string(rv, rk),
                        "post-if" => action.post_if = c.string(rv, rk),
                        "entrypoint" => action.entrypoint = c.string(rv, rk),
                        "args" => {
                            action.args = c
                                .string_list(rv, "runs.args")
                                .into_iter()
                                .map(|(s, _)| s)
                                .collect();
                        }
                        "env" => {
                            for (k, _, v) in c.map(rv, "runs.env", &[]) {
                                if let Some(value) = c.string(v, &format!("runs.env.{k}")) {
                                    action.env.insert(k.to_string(), value);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if action.using == "docker" && action.image.is_none() {
        c.error(
            root.pos,
            "a Docker action needs `runs.image` (a Dockerfile or docker://IMAGE)",
        );
    }
    if action.using.starts_with("node") && action.main.is_none() {
        c.error(root.pos, "a JavaScript action needs `runs.main`");
    }
    for step in &action.steps {
        if step.run.is_some() && step.shell.is_none() {
            c.error(step.pos, "composite action `run` steps must set `shell`");
        }
    }
    diagnostics.append(&mut c.diagnostics);
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Err(diagnostics);
    }
    Ok(action)
}
