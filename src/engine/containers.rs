//! Which executor a job gets, and its container specs read from the job: GitHub's
//! `container:` / `services:`, GitLab's `image:` / `services:` (with GitLab's derived
//! service host names).

use super::job::JobRun;
use crate::exec::container::{ContainerSpec, JobContainers, Options, PullPolicy, ServiceSpec};
use crate::exec::{Executor, Stream};
use crate::expr::Value;
use indexmap::IndexMap;
use serde_json::Value as Json;
use std::sync::Arc;

/// `--executor` / `executor` in runner.toml.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorMode {
    /// A container when the job asks for one and a Docker API answers, else the host
    /// (with a warning naming the job and what it wanted).
    #[default]
    Auto,
    /// Always the host (containers and services are not started; a warning says so).
    Host,
    /// Containers as the job asks; a job fails when no Docker API answers.
    Container,
}

/// What a string field holds after the job's expressions (or GitLab variables) are applied.
pub type Expand<'a> = &'a dyn Fn(&str) -> String;

fn strings(v: Option<&Json>, expand: Expand) -> Vec<String> {
    match v {
        Some(Json::Array(items)) => items
            .iter()
            .map(|i| match i {
                Json::String(s) => expand(s),
                other => other.to_string(),
            })
            .collect(),
        Some(Json::String(s)) => vec![expand(s)],
        Some(Json::Number(n)) => vec![n.to_string()],
        _ => Vec::new(),
    }
}

fn map(v: Option<&Json>, expand: Expand) -> IndexMap<String, String> {
    v.and_then(Json::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let text = match v {
                        Json::String(s) => expand(s),
                        Json::Null => String::new(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// GitHub's `container:` or a service of `services:` (a string is the image).
pub fn github_container(json: &Json, expand: Expand) -> Result<ContainerSpec, String> {
    let image = match json {
        Json::String(s) => expand(s),
        _ => json
            .get("image")
            .and_then(Json::as_str)
            .map(expand)
            .ok_or("a container needs an `image`")?,
    };
    if image.trim().is_empty() {
        return Err("the container's `image` is empty".into());
    }
    let credentials = json.get("credentials").map(|c| {
        let field = |k: &str| {
            c.get(k)
                .and_then(Json::as_str)
                .map(expand)
                .unwrap_or_default()
        };
        (field("username"), field("password"))
    });
    let options = match json.get("options").and_then(Json::as_str) {
        Some(text) => Options::parse(&expand(text))?,
        None => Options::default(),
    };
    Ok(ContainerSpec {
        image,
        pull: PullPolicy::IfNotPresent,
        credentials,
        env: map(json.get("env"), expand),
        ports: strings(json.get("ports"), expand),
        volumes: strings(json.get("volumes"), expand),
        options,
        // Services only: the image's ENTRYPOINT (one program) and CMD (split as a shell would).
        entrypoint: json
            .get("entrypoint")
            .and_then(Json::as_str)
            .map(|e| vec![expand(e)]),
        command: json
            .get("command")
            .and_then(Json::as_str)
            .map(|c| crate::exec::container::shell_words(&expand(c)))
            .transpose()?,
    })
}

/// GitHub's `services: ${{ … }}` (kept under the empty key) evaluated to its mapping, and
/// each service's `credentials: ${{ … }}` to theirs.
fn whole_expressions(
    services: &IndexMap<String, Json>,
    ctx: &crate::engine::context::RunContext,
) -> Result<IndexMap<String, Json>, String> {
    let services = match services.get("") {
        Some(whole) => match crate::plan::interpolate::json(whole, ctx) {
            Some(Json::Object(map)) => map.into_iter().collect(),
            other => {
                return Err(format!(
                    "`services` must evaluate to a mapping, got {}",
                    other.map_or_else(|| "nothing".into(), |o| o.to_string())
                ));
            }
        },
        None => services.clone(),
    };
    Ok(services
        .into_iter()
        .map(|(k, v)| (k, with_credentials(&v, ctx)))
        .collect())
}

/// A container whose `credentials` is one expression, with it evaluated.
fn with_credentials(json: &Json, ctx: &crate::engine::context::RunContext) -> Json {
    let mut json = json.clone();
    if let Some(text @ Json::String(_)) = json.get("credentials").cloned()
        && let Some(evaluated) = crate::plan::interpolate::json(&text, ctx)
    {
        json["credentials"] = evaluated;
    }
    json
}

pub fn github_services(
    services: &IndexMap<String, Json>,
    expand: Expand,
) -> Result<Vec<ServiceSpec>, String> {
    services
        .iter()
        .map(|(key, json)| {
            let spec =
                github_container(json, expand).map_err(|e| format!("service `{key}`: {e}"))?;
            Ok(ServiceSpec {
                key: key.clone(),
                aliases: vec![key.clone()],
                spec,
            })
        })
        .collect()
}

fn pull_policy(json: Option<&Json>) -> Result<PullPolicy, String> {
    // GitLab allows one policy or a list (tried in order); the first is what we do.
    let first = match json {
        None => return Ok(PullPolicy::IfNotPresent),
        Some(Json::Array(items)) => items.first().and_then(Json::as_str),
        Some(other) => other.as_str(),
    };
    match first {
        Some("always") => Ok(PullPolicy::Always),
        Some("if-not-present") | None => Ok(PullPolicy::IfNotPresent),
        Some("never") => Ok(PullPolicy::Never),
        Some(other) => Err(format!(
            "pull_policy `{other}`: use always, if-not-present or never"
        )),
    }
}

/// The registry an image reference names (`docker.io` when it names none).
fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

/// Credentials for `image` from a `DOCKER_AUTH_CONFIG` value (GitLab's variable, Docker's
/// `config.json` format: `{"auths": {"registry:port": {"auth": base64("user:pass")}}}`).
pub fn registry_credentials(image: &str, auth_config: &str) -> Option<(String, String)> {
    use base64::Engine;
    let config: Json = serde_json::from_str(auth_config).ok()?;
    let registry = registry_of(image);
    let auths = config.get("auths")?.as_object()?;
    let entry = auths.iter().find_map(|(host, entry)| {
        let host = host
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let host = host.split('/').next().unwrap_or(host);
        let matches = host == registry
            || (registry == "docker.io"
                && (host == "index.docker.io" || host == "registry-1.docker.io"));
        matches.then_some(entry)
    })?;
    if let (Some(user), Some(pass)) = (
        entry.get("username").and_then(Json::as_str),
        entry.get("password").and_then(Json::as_str),
    ) {
        return Some((user.to_string(), pass.to_string()));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry.get("auth")?.as_str()?)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// GitLab's `image:` (a string, or `name` / `entrypoint` / `pull_policy`).
pub fn gitlab_image(json: &Json, expand: Expand) -> Result<ContainerSpec, String> {
    let name = match json {
        Json::String(s) => expand(s),
        _ => json
            .get("name")
            .and_then(Json::as_str)
            .map(expand)
            .ok_or("`image` needs a `name`")?,
    };
    if name.trim().is_empty() {
        return Err("`image` is empty".into());
    }
    Ok(ContainerSpec {
        image: name,
        pull: pull_policy(json.get("pull_policy"))?,
        credentials: None,
        env: IndexMap::new(),
        ports: Vec::new(),
        volumes: Vec::new(),
        options: Options::default(),
        entrypoint: json.get("entrypoint").map(|e| strings(Some(e), expand)),
        command: None,
    })
}

/// The host names GitLab gives a service from its image: the tag dropped, `/` as `__`
/// and as `-` (`tutum/wordpress:latest` → `tutum__wordpress`, `tutum-wordpress`).
pub fn gitlab_service_aliases(image: &str) -> Vec<String> {
    let without_tag = match image.rfind(':') {
        Some(colon) if !image[colon..].contains('/') => &image[..colon],
        _ => image,
    };
    let without_digest = without_tag.split('@').next().unwrap_or(without_tag);
    let mut out = vec![without_digest.replace('/', "__")];
    let dashed = without_digest.replace('/', "-");
    if !out.contains(&dashed) {
        out.push(dashed);
    }
    out
}

/// GitLab's `services:` (strings, or `name` / `alias` / `entrypoint` / `command` /
/// `variables`); services see the job's variables, their own winning.
pub fn gitlab_services(
    services: &IndexMap<String, Json>,
    job_env: &IndexMap<String, String>,
    expand: Expand,
) -> Result<Vec<ServiceSpec>, String> {
    services
        .values()
        .map(|json| {
            let image = gitlab_image(json, expand)?;
            let mut aliases = gitlab_service_aliases(&image.image);
            if let Some(alias) = json.get("alias").and_then(Json::as_str) {
                aliases.extend(
                    expand(alias)
                        .split(',')
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .map(String::from),
                );
            }
            let mut env = job_env.clone();
            env.extend(map(json.get("variables"), expand));
            Ok(ServiceSpec {
                key: aliases.last().cloned().unwrap_or_default(),
                aliases,
                spec: ContainerSpec {
                    env,
                    command: json.get("command").map(|c| strings(Some(c), expand)),
                    ..image
                },
            })
        })
        .collect()
}

impl JobRun {
    /// Starts what the job asks for (its container, its services) when the executor mode
    /// allows; a job that wanted containers and runs on the host says so, never silently.
    pub(super) fn start_containers(
        &mut self,
        env: &IndexMap<String, String>,
    ) -> Result<(), String> {
        let spec = Arc::clone(&self.spec);
        if spec.container.is_none() && spec.services.is_empty() {
            return Ok(());
        }
        let wanted = {
            let mut parts = Vec::new();
            if let Some(c) = &spec.container {
                let image = c.get("image").or_else(|| c.get("name")).unwrap_or(c);
                parts.push(format!(
                    "container {}",
                    image.as_str().unwrap_or(&image.to_string())
                ));
            }
            if !spec.services.is_empty() {
                let names: Vec<&str> = spec.services.keys().map(String::as_str).collect();
                parts.push(format!("services [{}]", names.join(", ")));
            }
            parts.join(" and ")
        };
        let docker = match self.executor {
            ExecutorMode::Host => Err("the executor is `host`".to_string()),
            _ => crate::exec::container::connect(),
        };
        let docker = match (docker, self.executor) {
            (Ok(d), _) => d,
            (Err(e), ExecutorMode::Container) => {
                return Err(format!(
                    "job `{}` needs {wanted}, and no Docker API answers: {e} (set DOCKER_HOST, or run with --executor host)",
                    self.key
                ));
            }
            (Err(e), _) => {
                self.log(
                    None,
                    Stream::Stderr,
                    &format!(
                        "##[warning]job `{}` wanted {wanted} but runs on the host without them ({e})",
                        self.key
                    ),
                );
                return Ok(());
            }
        };
        let gitlab = spec.gitlab.is_some();
        let ctx = self.ctx.clone();
        let interpolate = |text: &str| super::job::interpolate_lossy(text, &ctx);
        let expand_gitlab = |text: &str| {
            let mut known = self.base_env.clone();
            known.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
            crate::trigger::gitlab::expand(text, &known)
        };
        let expand: Expand = if gitlab { &expand_gitlab } else { &interpolate };
        let job = spec
            .container
            .as_ref()
            .map(|c| {
                if gitlab {
                    gitlab_image(c, expand)
                } else {
                    github_container(&with_credentials(c, &ctx), expand)
                }
            })
            .transpose()?;
        let services = if gitlab {
            gitlab_services(&spec.services, env, expand)?
        } else {
            github_services(&whole_expressions(&spec.services, &ctx)?, expand)?
        };
        let mounts = [self.workspace.clone(), self.run_dir.clone()];
        let host_path = self.base_env.get("PATH").cloned().unwrap_or_default();
        let key = self.key.clone();
        let mut messages = Vec::new();
        let started = JobContainers::start(
            docker,
            &key,
            job.as_ref(),
            &services,
            &mounts,
            &host_path,
            &mut |line| messages.push(line.to_string()),
        );
        for line in messages {
            self.log(None, Stream::Stdout, &line);
        }
        let containers = started.map_err(|e| format!("job `{key}`: {e}"))?;
        let mut services_ctx = IndexMap::new();
        for (key, ports) in &containers.ports {
            let ports = ports
                .iter()
                .map(|(c, h)| (c.clone(), Value::String(h.clone())))
                .collect();
            services_ctx.insert(
                key.clone(),
                Value::Object(
                    [("ports".to_string(), Value::Object(ports))]
                        .into_iter()
                        .collect(),
                ),
            );
        }
        self.services_context = Value::Object(services_ctx);
        self.containers = Some(Arc::new(containers));
        Ok(())
    }

    /// Whether `program` is where the job's steps run.
    pub(super) fn has_program(&self, program: &str) -> bool {
        match &self.containers {
            Some(c) => c.has(program),
            None => crate::exec::on_path(program),
        }
    }
}
