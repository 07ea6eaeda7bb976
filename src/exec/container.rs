//! Jobs in containers through the Docker Engine API (Docker, or podman's compatible
//! service, found by `DOCKER_HOST` as Docker's CLI finds it): a per-job network, service
//! containers on it by alias, the job container, and each step as an exec in it.

use super::{Cancel, CancelLevel, Executor, Outcome, Spawn, Stream};
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
    PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;
use indexmap::IndexMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// When an image is pulled (GitLab's `pull_policy`; GitHub pulls when missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// A container to start: the job's or a service's, resolved from the job spec.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub image: String,
    pub pull: PullPolicy,
    /// Registry credentials (`container.credentials`).
    pub credentials: Option<(String, String)>,
    pub env: IndexMap<String, String>,
    /// `HOST:CONTAINER`, `CONTAINER` (a free host port) or `CONTAINER/udp`.
    pub ports: Vec<String>,
    /// `SOURCE:TARGET[:ro]` bind mounts or named volumes.
    pub volumes: Vec<String>,
    pub options: Options,
    pub entrypoint: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
}

/// The `docker create` options a job may give (`options:`), parsed.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub health: Option<Health>,
    pub env: IndexMap<String, String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub privileged: bool,
    pub cap_add: Vec<String>,
}

/// A health check, run by this executor in the container (as Docker would): podman's
/// API service runs none by itself without systemd, and a job must wait for it either way.
#[derive(Debug, Clone)]
pub struct Health {
    pub cmd: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

impl Options {
    /// Parses `--health-cmd pg_isready --health-interval 10s …` (the forms the forges'
    /// examples use); an option this executor does not implement is an error naming it.
    pub fn parse(text: &str) -> Result<Options, String> {
        let words = shell_words(text)?;
        let mut options = Options::default();
        let mut health_cmd = None;
        let (mut interval, mut timeout, mut retries, mut start) = (
            Duration::from_secs(30),
            Duration::from_secs(30),
            3,
            Duration::ZERO,
        );
        let mut i = 0;
        while i < words.len() {
            let (flag, inline) = match words[i].split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (words[i].clone(), None),
            };
            let takes_value = !matches!(flag.as_str(), "--privileged" | "--rm" | "--init");
            let value = if !takes_value {
                String::new()
            } else if let Some(v) = inline {
                v
            } else {
                i += 1;
                words
                    .get(i)
                    .cloned()
                    .ok_or_else(|| format!("container option `{flag}` needs a value"))?
            };
            match flag.as_str() {
                "--health-cmd" => health_cmd = Some(value),
                "--health-interval" => interval = duration(&flag, &value)?,
                "--health-timeout" => timeout = duration(&flag, &value)?,
                "--health-start-period" => start = duration(&flag, &value)?,
                "--health-retries" => {
                    retries = value
                        .parse()
                        .map_err(|_| format!("`{flag} {value}`: not a number"))?;
                }
                "-e" | "--env" => {
                    let (k, v) = value.split_once('=').unwrap_or((&value, ""));
                    options.env.insert(k.to_string(), v.to_string());
                }
                "-u" | "--user" => options.user = Some(value),
                "-h" | "--hostname" => options.hostname = Some(value),
                "--cap-add" => options.cap_add.push(value),
                "--privileged" => options.privileged = true,
                // Harmless here: the container is removed at the job's end anyway.
                "--rm" | "--init" => {}
                other => {
                    return Err(format!(
                        "container option `{other}` is not supported (supported: --health-cmd, \
                         --health-interval, --health-timeout, --health-retries, \
                         --health-start-period, -e/--env, -u/--user, -h/--hostname, --cap-add, \
                         --privileged)"
                    ));
                }
            }
            i += 1;
        }
        options.health = health_cmd.map(|cmd| Health {
            cmd,
            interval,
            timeout,
            retries,
            start_period: start,
        });
        Ok(options)
    }
}

fn duration(flag: &str, text: &str) -> Result<Duration, String> {
    let bad = || format!("`{flag} {text}`: not a duration (10s, 1m30s, 500ms)");
    let mut total = Duration::ZERO;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next().unwrap_or('s'));
        }
        let n: f64 = number.parse().map_err(|_| bad())?;
        number.clear();
        total += Duration::from_secs_f64(match unit.as_str() {
            "ms" => n / 1000.0,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => return Err(bad()),
        });
    }
    if !number.is_empty() {
        // A bare number is seconds.
        total += Duration::from_secs_f64(number.parse().map_err(|_| bad())?);
    }
    Ok(total)
}

/// Splits an options or args string as a shell would (quotes and backslashes).
pub fn shell_words(text: &str) -> Result<Vec<String>, String> {
    super::shell::split_words(text).map_err(|e| e.0)
}

/// A service: its container spec and the names it is reached by on the job's network.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// The `services:` key (GitHub) or the alias (GitLab), for messages and contexts.
    pub key: String,
    pub aliases: Vec<String>,
    pub spec: ContainerSpec,
}

/// The Docker Engine API named by `DOCKER_HOST` (default: the local socket), if it answers.
pub fn connect() -> Result<Docker, String> {
    let host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let docker = Docker::connect_with_defaults().map_err(|e| format!("{host}: {e}"))?;
    let runtime = runtime()?;
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), docker.ping()).await })
        .map_err(|_| format!("{host}: no answer within 5 s"))?
        .map_err(|e| format!("{host}: {e}"))?;
    Ok(docker)
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("container runtime: {e}"))
}

/// A job's containers while it runs; everything is removed when it is dropped (network,
/// containers with their anonymous volumes), whatever way the job ended.
pub struct JobContainers {
    runtime: tokio::runtime::Runtime,
    docker: Docker,
    network: Option<String>,
    /// The job container, when the job runs in one (else steps run on the host).
    job: Option<String>,
    services: Vec<(String, String)>,
    /// `job.services.<key>.ports`: container port → host port.
    pub ports: IndexMap<String, IndexMap<String, String>>,
    /// The image's PATH (steps inside get it, not the host's).
    image_path: String,
    /// The PATH the engine gives steps on the host (its additions are kept inside).
    host_path: String,
    has_bash: bool,
}

/// Label on everything this executor creates (to find leftovers).
pub const LABEL: &str = "tesseract-ci.job";

/// The containers and networks this executor made that still exist (none once every job
/// has ended): their names.
pub fn leftovers(docker: &Docker) -> Result<Vec<String>, String> {
    let runtime = runtime()?;
    runtime.block_on(async {
        let filters: std::collections::HashMap<String, Vec<String>> =
            [("label".to_string(), vec![LABEL.to_string()])].into();
        let containers = docker
            .list_containers(Some(
                bollard::query_parameters::ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(|e| e.to_string())?;
        let networks = docker
            .list_networks(Some(
                bollard::query_parameters::ListNetworksOptionsBuilder::new()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(|e| e.to_string())?;
        Ok(containers
            .into_iter()
            .flat_map(|c| c.names.unwrap_or_default())
            .chain(networks.into_iter().filter_map(|n| n.name))
            .collect())
    })
}

impl JobContainers {
    /// Starts the services (waiting for their health checks) and the job container.
    /// `mounts` are bound at the same path inside (the workspace, the job's files), so
    /// paths in steps, `GITHUB_ENV` and the rest mean the same inside and out.
    pub fn start(
        docker: Docker,
        name: &str,
        job: Option<&ContainerSpec>,
        services: &[ServiceSpec],
        mounts: &[PathBuf],
        host_path: &str,
        log: &mut dyn FnMut(&str),
    ) -> Result<JobContainers, String> {
        let runtime = runtime()?;
        let mut this = JobContainers {
            runtime,
            docker,
            network: None,
            job: None,
            services: Vec::new(),
            ports: IndexMap::new(),
            image_path: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            host_path: host_path.to_string(),
            has_bash: false,
        };
        // On error `this` is dropped, removing what was made so far.
        let suffix = crate::token::random_hex(4);
        let network = format!("tess-{}-{suffix}", sanitize(name));
        let docker = this.docker.clone();
        this.runtime.block_on(async {
            docker
                .create_network(NetworkCreateRequest {
                    name: network.clone(),
                    driver: Some("bridge".into()),
                    labels: Some([(LABEL.to_string(), name.to_string())].into()),
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("creating network {network}: {e}"))
        })?;
        this.network = Some(network.clone());
        for service in services {
            let id = this.create(
                &service.spec,
                &format!("{}-{}", sanitize(&service.key), suffix),
                name,
                &service.aliases,
                &[],
                service.spec.command.clone(),
                service.spec.entrypoint.clone(),
                log,
            )?;
            this.services.push((service.key.clone(), id.clone()));
            let ports = this.mapped_ports(&id)?;
            this.ports.insert(service.key.clone(), ports);
        }
        for (service, (key, id)) in services.iter().zip(this.services.clone()) {
            if let Some(health) = &service.spec.options.health {
                log(&format!("waiting for service `{key}` to be healthy"));
                this.wait_healthy(&key, &id, health)?;
            }
        }
        if let Some(spec) = job {
            // GitHub's runner keeps the job container alive with `tail -f /dev/null` and
            // runs every step as an exec in it.
            let id = this.create(
                spec,
                &format!("job-{suffix}"),
                name,
                &[],
                mounts,
                Some(vec!["-f".into(), "/dev/null".into()]),
                Some(vec!["tail".into()]),
                log,
            )?;
            this.job = Some(id.clone());
            let inspect = this.block(this.docker.inspect_container(&id, None))?;
            if let Some(path) = inspect
                .config
                .and_then(|c| c.env)
                .unwrap_or_default()
                .iter()
                .find_map(|e| e.strip_prefix("PATH="))
            {
                this.image_path = path.to_string();
            }
            this.has_bash = this.probe(&id, "command -v bash")?;
        }
        Ok(this)
    }

    fn block<T, E: std::fmt::Display>(
        &self,
        f: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, String> {
        self.runtime.block_on(f).map_err(|e| e.to_string())
    }

    /// Pulls `spec.image` when the policy says so; the registry's message when it fails.
    fn pull(&self, spec: &ContainerSpec, log: &mut dyn FnMut(&str)) -> Result<(), String> {
        let present = self
            .runtime
            .block_on(self.docker.inspect_image(&spec.image))
            .is_ok();
        let wanted = match spec.pull {
            PullPolicy::Always => true,
            PullPolicy::IfNotPresent => !present,
            PullPolicy::Never if present => false,
            PullPolicy::Never => {
                return Err(format!(
                    "image {} is not present and its pull_policy is `never`",
                    spec.image
                ));
            }
        };
        if !wanted {
            return Ok(());
        }
        log(&format!("pulling image {}", spec.image));
        let options = CreateImageOptionsBuilder::new()
            .from_image(&spec.image)
            .build();
        let credentials =
            spec.credentials
                .as_ref()
                .map(|(user, pass)| bollard::auth::DockerCredentials {
                    username: Some(user.clone()),
                    password: Some(pass.clone()),
                    ..Default::default()
                });
        let docker = self.docker.clone();
        let image = spec.image.clone();
        self.runtime.block_on(async {
            let mut stream = docker.create_image(Some(options), None, credentials);
            let mut last = Instant::now();
            while let Some(item) = stream.next().await {
                let info = item.map_err(|e| format!("pulling image {image}: {e}"))?;
                if let Some(error) = info.error_detail.and_then(|d| d.message) {
                    return Err(format!("pulling image {image}: {error}"));
                }
                if last.elapsed() > Duration::from_secs(2)
                    && let Some(status) = info.status
                {
                    last = Instant::now();
                    log(&format!("pulling image {image}: {status}"));
                }
            }
            Ok(())
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &self,
        spec: &ContainerSpec,
        container_name: &str,
        job: &str,
        aliases: &[String],
        mounts: &[PathBuf],
        command: Option<Vec<String>>,
        entrypoint: Option<Vec<String>>,
        log: &mut dyn FnMut(&str),
    ) -> Result<String, String> {
        self.pull(spec, log)?;
        let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.extend(spec.options.env.iter().map(|(k, v)| format!("{k}={v}")));
        let mut binds: Vec<String> = mounts
            .iter()
            .map(|p| format!("{0}:{0}", p.display()))
            .collect();
        binds.extend(spec.volumes.iter().cloned());
        let (exposed, bindings) = port_bindings(&spec.ports)?;
        let network = self.network.clone().unwrap_or_default();
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(env),
            cmd: command,
            entrypoint,
            user: spec.options.user.clone(),
            hostname: spec.options.hostname.clone(),
            labels: Some([(LABEL.to_string(), job.to_string())].into()),
            exposed_ports: Some(exposed),
            host_config: Some(HostConfig {
                binds: Some(binds),
                port_bindings: Some(bindings),
                privileged: Some(spec.options.privileged),
                cap_add: Some(spec.options.cap_add.clone()),
                network_mode: Some(network.clone()),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(
                    [(
                        network,
                        EndpointSettings {
                            aliases: Some(aliases.to_vec()),
                            ..Default::default()
                        },
                    )]
                    .into(),
                ),
            }),
            ..Default::default()
        };
        let name = format!("tess-{}-{container_name}", sanitize(job));
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let created = self
            .runtime
            .block_on(self.docker.create_container(Some(options), body))
            .map_err(|e| format!("creating container from {}: {e}", spec.image))?;
        self.runtime
            .block_on(self.docker.start_container(&created.id, None))
            .map_err(|e| {
                // Not started: removed now (it is not in `self` yet).
                let _ = self.remove(&created.id);
                format!("starting container from {}: {e}", spec.image)
            })?;
        Ok(created.id)
    }

    fn mapped_ports(&self, id: &str) -> Result<IndexMap<String, String>, String> {
        let inspect = self.block(self.docker.inspect_container(id, None))?;
        let mut out = IndexMap::new();
        let ports = inspect
            .network_settings
            .and_then(|n| n.ports)
            .unwrap_or_default();
        for (port, bindings) in ports {
            let container_port = port.split('/').next().unwrap_or(&port).to_string();
            if let Some(host_port) = bindings
                .unwrap_or_default()
                .into_iter()
                .find_map(|b| b.host_port.filter(|p| !p.is_empty()))
            {
                out.insert(container_port, host_port);
            }
        }
        out.sort_keys();
        Ok(out)
    }

    /// Runs the health command until it succeeds; `retries` failures after the start
    /// period make the job fail, naming the service.
    fn wait_healthy(&self, key: &str, id: &str, health: &Health) -> Result<(), String> {
        let started = Instant::now();
        let mut failures = 0;
        loop {
            let attempt = Instant::now();
            let ok = self.runtime.block_on(async {
                tokio::time::timeout(health.timeout, self.exec_status(id, &health.cmd)).await
            });
            if matches!(ok, Ok(Ok(0))) {
                return Ok(());
            }
            if started.elapsed() >= health.start_period {
                failures += 1;
            }
            if failures >= health.retries.max(1) {
                let logs = self.tail_logs(id);
                return Err(format!(
                    "service `{key}` is unhealthy: `{}` failed {failures} times{logs}",
                    health.cmd
                ));
            }
            let wait = health.interval.saturating_sub(attempt.elapsed());
            std::thread::sleep(wait.min(Duration::from_millis(500)).max(
                // A first check comes quickly; later ones at the configured pace.
                if failures == 0 {
                    Duration::from_millis(100)
                } else {
                    wait
                },
            ));
        }
    }

    fn tail_logs(&self, id: &str) -> String {
        let docker = self.docker.clone();
        let text = self.runtime.block_on(async {
            let options = bollard::query_parameters::LogsOptionsBuilder::new()
                .stdout(true)
                .stderr(true)
                .tail("10")
                .build();
            let mut stream = docker.logs(id, Some(options));
            let mut text = String::new();
            while let Some(Ok(chunk)) = stream.next().await {
                text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
            }
            text
        });
        if text.trim().is_empty() {
            String::new()
        } else {
            format!("; its last output:\n{}", text.trim_end())
        }
    }

    /// `sh -c CMD` in the container: its exit code (output discarded).
    async fn exec_status(&self, id: &str, cmd: &str) -> Result<i64, String> {
        let exec = self
            .docker
            .create_exec(
                id,
                bollard::exec::CreateExecOptions {
                    cmd: Some(vec!["sh", "-c", cmd]),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        if let Ok(bollard::exec::StartExecResults::Attached { mut output, .. }) =
            self.docker.start_exec(&exec.id, None).await
        {
            while output.next().await.is_some() {}
        }
        let inspect = self
            .docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| e.to_string())?;
        Ok(inspect.exit_code.unwrap_or(-1))
    }

    fn probe(&self, id: &str, cmd: &str) -> Result<bool, String> {
        Ok(self.runtime.block_on(self.exec_status(id, cmd))? == 0)
    }

    fn remove(&self, id: &str) -> Result<(), String> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        self.block(self.docker.remove_container(id, Some(options)))
    }

    /// Whether steps run in the job container (else on the host, beside the services).
    pub fn runs_steps(&self) -> bool {
        self.job.is_some()
    }

    /// The environment a step gets inside: the image's PATH (with what `GITHUB_PATH`
    /// added in front), no host HOME or shell settings.
    fn inside_env(&self, env: &[(String, String)]) -> Vec<String> {
        env.iter()
            .filter(|(k, _)| {
                !matches!(k.as_str(), "HOME" | "SHELL" | "USER" | "LOGNAME" | "TMPDIR")
            })
            .map(|(k, v)| {
                if k == "PATH" {
                    let added = v.strip_suffix(&self.host_path).unwrap_or("");
                    format!("PATH={added}{}", self.image_path)
                } else {
                    format!("{k}={v}")
                }
            })
            .collect()
    }
}

impl Drop for JobContainers {
    fn drop(&mut self) {
        let ids: Vec<String> = self
            .job
            .take()
            .into_iter()
            .chain(self.services.drain(..).map(|(_, id)| id))
            .collect();
        for id in ids {
            if let Err(e) = self.remove(&id) {
                tracing::warn!(container = %id, error = %e, "cannot remove a job container");
            }
        }
        if let Some(network) = self.network.take()
            && let Err(e) = self.block(self.docker.remove_network(&network))
        {
            tracing::warn!(%network, error = %e, "cannot remove a job network");
        }
    }
}

fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    s.trim_matches('-').chars().take(40).collect()
}

type Exposed = Vec<String>;
type Bindings = std::collections::HashMap<String, Option<Vec<PortBinding>>>;

/// `ports:` entries as Docker's exposed ports and host bindings (on 127.0.0.1; a bare
/// container port gets a free host port, reported in `job.services.<id>.ports`).
fn port_bindings(ports: &[String]) -> Result<(Exposed, Bindings), String> {
    let mut exposed = Exposed::new();
    let mut bindings = Bindings::new();
    for entry in ports {
        let (mapping, proto) = entry.split_once('/').unwrap_or((entry, "tcp"));
        let (host, container) = match mapping.rsplit_once(':') {
            Some((host, container)) => (Some(host.to_string()), container.to_string()),
            None => (None, mapping.to_string()),
        };
        if container.parse::<u16>().is_err() {
            return Err(format!("port `{entry}`: not HOST:CONTAINER or CONTAINER"));
        }
        let key = format!("{container}/{proto}");
        exposed.push(key.clone());
        bindings.insert(
            key,
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(host.unwrap_or_default()),
            }]),
        );
    }
    Ok((exposed, bindings))
}

impl JobContainers {
    /// The job's network (Docker actions join it, reaching the services by alias).
    pub fn network(&self) -> Option<&str> {
        self.network.as_deref()
    }
}

/// A Docker action's step: one container from `image` per step (its entrypoint and args),
/// with the step's environment, the workspace and the job's files mounted at their paths,
/// on the job's network; removed when the step ends. Its output goes through the same
/// workflow and file commands as a `run:` step's.
pub struct ActionContainer {
    runtime: tokio::runtime::Runtime,
    docker: Docker,
    pub image: String,
    pub entrypoint: Option<Vec<String>>,
    pub args: Vec<String>,
    pub network: Option<String>,
    pub mounts: Vec<PathBuf>,
    pub job: String,
}

impl ActionContainer {
    pub fn new(docker: Docker, image: String, job: &str) -> Result<ActionContainer, String> {
        Ok(ActionContainer {
            runtime: runtime()?,
            docker,
            image,
            entrypoint: None,
            args: Vec::new(),
            network: None,
            mounts: Vec::new(),
            job: job.to_string(),
        })
    }

    /// Pulls the image when it is missing.
    pub fn pull(&self, log: &mut dyn FnMut(&str)) -> Result<(), String> {
        if self
            .runtime
            .block_on(self.docker.inspect_image(&self.image))
            .is_ok()
        {
            return Ok(());
        }
        log(&format!("pulling image {}", self.image));
        let image = self.image.clone();
        let options = CreateImageOptionsBuilder::new().from_image(&image).build();
        self.runtime.block_on(async {
            let mut stream = self.docker.create_image(Some(options), None, None);
            while let Some(item) = stream.next().await {
                let info = item.map_err(|e| format!("pulling image {image}: {e}"))?;
                if let Some(error) = info.error_detail.and_then(|d| d.message) {
                    return Err(format!("pulling image {image}: {error}"));
                }
            }
            Ok(())
        })
    }

    /// Builds `dockerfile` in `context` as `tag` (once: a tag derived from the context's
    /// contents is reused), printing the build's output.
    pub fn build(
        docker: &Docker,
        context: &std::path::Path,
        dockerfile: &str,
        log: &mut dyn FnMut(&str),
    ) -> Result<String, String> {
        // The build context as a tar stream (`tar` itself: its format is what Docker reads).
        let out = std::process::Command::new("tar")
            .args(["-c", "-C"])
            .arg(context)
            .arg(".")
            .output()
            .map_err(|e| format!("tar: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "packing {}: {}",
                context.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let digest = crate::token::sha256_hex(&out.stdout);
        let tag = format!("tess-action-{}:{}", &digest[..12], &digest[12..24]);
        let runtime = runtime()?;
        if runtime.block_on(docker.inspect_image(&tag)).is_ok() {
            return Ok(tag);
        }
        log(&format!("building {dockerfile} in {}", context.display()));
        let options = bollard::query_parameters::BuildImageOptionsBuilder::new()
            .dockerfile(dockerfile)
            .t(&tag)
            .rm(true)
            .build();
        runtime.block_on(async {
            let body = bollard::body_full(out.stdout.into());
            let mut stream = docker.build_image(options, None, Some(body));
            while let Some(item) = stream.next().await {
                let info = item.map_err(|e| format!("building {dockerfile}: {e}"))?;
                if let Some(error) = info.error_detail.and_then(|d| d.message) {
                    return Err(format!("building {dockerfile}: {error}"));
                }
                if let Some(text) = info.stream {
                    for line in text.lines().filter(|l| !l.trim().is_empty()) {
                        log(line);
                    }
                }
            }
            Ok(())
        })?;
        Ok(tag)
    }
}

impl Executor for ActionContainer {
    fn run(
        &self,
        spawn: &Spawn,
        deadline: Option<Instant>,
        cancel: &Cancel,
        on_output: &mut dyn FnMut(Stream, &[u8]),
    ) -> (Outcome, Option<i32>) {
        // The step's shell and script are not used: the image's entrypoint runs, with args.
        let env: Vec<String> = spawn
            .env
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "HOME" | "SHELL" | "USER" | "LOGNAME" | "TMPDIR" | "PATH"
                )
            })
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let binds: Vec<String> = self
            .mounts
            .iter()
            .map(|p| format!("{0}:{0}", p.display()))
            .collect();
        let network = self.network.clone();
        let body = ContainerCreateBody {
            image: Some(self.image.clone()),
            env: Some(env),
            cmd: (!self.args.is_empty()).then(|| self.args.clone()),
            entrypoint: self.entrypoint.clone(),
            working_dir: Some(spawn.cwd.display().to_string()),
            labels: Some([(LABEL.to_string(), self.job.clone())].into()),
            host_config: Some(HostConfig {
                binds: Some(binds),
                network_mode: network.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = format!(
            "tess-{}-action-{}",
            sanitize(&self.job),
            crate::token::random_hex(4)
        );
        let docker = self.docker.clone();
        let outcome = self.runtime.block_on(async {
            let options = CreateContainerOptionsBuilder::new().name(&name).build();
            let created = match docker.create_container(Some(options), body).await {
                Ok(c) => c,
                Err(e) => {
                    return Outcome::FailedToSpawn(format!("creating a container from {}: {e}", self.image))
                }
            };
            let id = created.id;
            let outcome = async {
                let attach = bollard::query_parameters::AttachContainerOptionsBuilder::new()
                    .stdout(true)
                    .stderr(true)
                    .stream(true)
                    .logs(true)
                    .build();
                let mut output = match docker.attach_container(&id, Some(attach)).await {
                    Ok(a) => a.output,
                    Err(e) => return Outcome::FailedToSpawn(format!("attaching to the action: {e}")),
                };
                if let Err(e) = docker.start_container(&id, None).await {
                    return Outcome::FailedToSpawn(format!("starting the action from {}: {e}", self.image));
                }
                let mut ended = None;
                loop {
                    let tick = tokio::time::sleep(Duration::from_millis(100));
                    tokio::select! {
                        item = output.next() => match item {
                            Some(Ok(bollard::container::LogOutput::StdErr { message })) => {
                                on_output(Stream::Stderr, &message);
                            }
                            Some(Ok(other)) => on_output(Stream::Stdout, &other.into_bytes()),
                            Some(Err(_)) | None => break,
                        },
                        () = tick => {
                            let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
                            let cancelled = cancel.level() >= CancelLevel::Graceful;
                            if (timed_out || cancelled) && ended.is_none() {
                                ended = Some(if timed_out { Outcome::TimedOut } else { Outcome::Cancelled });
                                let _ = docker
                                    .kill_container(&id, None::<bollard::query_parameters::KillContainerOptions>)
                                    .await;
                            }
                        }
                    }
                }
                if let Some(outcome) = ended {
                    return outcome;
                }
                let mut wait = docker.wait_container(&id, None);
                let code = match wait.next().await {
                    Some(Ok(r)) => r.status_code,
                    // bollard reports a non-zero exit as an error carrying the code.
                    Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
                    Some(Err(e)) => return Outcome::FailedToSpawn(format!("waiting for the action: {e}")),
                    None => return Outcome::FailedToSpawn("the action's container vanished".into()),
                };
                match code {
                    0 => Outcome::Success,
                    code => Outcome::ExitCode(code as i32),
                }
            }
            .await;
            let remove = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
            let _ = docker.remove_container(&id, Some(remove)).await;
            outcome
        });
        (outcome, None)
    }

    fn has(&self, _program: &str) -> bool {
        true
    }

    fn is_host(&self) -> bool {
        false
    }
}

impl Executor for JobContainers {
    fn run(
        &self,
        spawn: &Spawn,
        deadline: Option<Instant>,
        cancel: &Cancel,
        on_output: &mut dyn FnMut(Stream, &[u8]),
    ) -> (Outcome, Option<i32>) {
        let Some(id) = &self.job else {
            return super::Host.run(spawn, deadline, cancel, on_output);
        };
        let mut cmd = vec![spawn.program.clone()];
        cmd.extend(spawn.args.iter().cloned());
        let env = self.inside_env(&spawn.env);
        let cwd = spawn.cwd.display().to_string();
        let docker = self.docker.clone();
        let outcome = self.runtime.block_on(async {
            let exec = match docker
                .create_exec(
                    id,
                    bollard::exec::CreateExecOptions {
                        cmd: Some(cmd),
                        env: Some(env),
                        working_dir: Some(cwd),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..Default::default()
                    },
                )
                .await
            {
                Ok(exec) => exec,
                Err(e) => return Outcome::FailedToSpawn(format!("exec in the job container: {e}")),
            };
            let mut output = match docker.start_exec(&exec.id, None).await {
                Ok(bollard::exec::StartExecResults::Attached { output, .. }) => output,
                Ok(bollard::exec::StartExecResults::Detached) => {
                    return Outcome::FailedToSpawn("the exec was detached".into());
                }
                Err(e) => return Outcome::FailedToSpawn(format!("exec in the job container: {e}")),
            };
            let mut ended = None;
            loop {
                let tick = tokio::time::sleep(Duration::from_millis(100));
                tokio::select! {
                    item = output.next() => match item {
                        Some(Ok(bollard::container::LogOutput::StdOut { message } |
bollard::container::LogOutput::Console { message })) => {
                            on_output(Stream::Stdout, &message);
                        }
                        Some(Ok(bollard::container::LogOutput::StdErr { message })) => {
                            on_output(Stream::Stderr, &message);
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => break,
                    },
                    () = tick => {
                        let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
                        let cancelled = cancel.level() >= CancelLevel::Graceful;
                        if (timed_out || cancelled) && ended.is_none() {
                            ended = Some(if timed_out { Outcome::TimedOut } else { Outcome::Cancelled });
                            // Steps run one at a time: every process but the container's
                            // keep-alive (PID 1) belongs to this one.
                            let _ = self.exec_status(id, "kill -9 -1").await;
                        }
                    }
                }
            }
            if let Some(outcome) = ended {
                return outcome;
            }
            match docker.inspect_exec(&exec.id).await {
                Ok(inspect) => match inspect.exit_code {
                    Some(0) => Outcome::Success,
                    Some(code) => Outcome::ExitCode(code as i32),
                    None => Outcome::FailedToSpawn("the exec has no exit code".into()),
                },
                Err(e) => Outcome::FailedToSpawn(format!("exec in the job container: {e}")),
            }
        });
        (outcome, None)
    }

    fn has(&self, program: &str) -> bool {
        match &self.job {
            None => super::Host.has(program),
            Some(_) if program == "bash" => self.has_bash,
            Some(id) => self
                .probe(id, &format!("command -v {program}"))
                .unwrap_or(false),
        }
    }

    fn is_host(&self) -> bool {
        self.job.is_none()
    }
}
