//! The `tess` command line: argument parsing and output formatting only; the work is done
//! by `load`, `spec`, `plan` and `trigger`.

mod action;
mod actions_args;
mod event;
mod graph;
mod live;
mod output;
mod run;
mod runs;
mod signals;
mod statuses;
mod versions;

use crate::load::{self, Loaded};
use crate::plan::{PipelinePlan, plan_pipeline};
use crate::trigger::Event;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Exit code for invalid input (bad spec, bad arguments, a bad config file).
const EXIT_INVALID: u8 = 2;
/// Exit code for a failure of the environment (a database down, a port taken, a server
/// unreachable): the same command may work later.
const EXIT_RUNTIME: u8 = 3;

/// What a command could not do, and whose fault that is (the exit code says which).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Runtime(String),
}

impl From<String> for CliError {
    fn from(message: String) -> CliError {
        CliError::Invalid(message)
    }
}

impl From<&str> for CliError {
    fn from(message: &str) -> CliError {
        CliError::Invalid(message.to_string())
    }
}

impl From<crate::server::StartError> for CliError {
    fn from(e: crate::server::StartError) -> CliError {
        match e {
            crate::server::StartError::Invalid(m) => CliError::Invalid(m),
            crate::server::StartError::Runtime(m) => CliError::Runtime(m),
        }
    }
}

#[derive(Parser)]
#[command(
    name = "tess",
    version,
    about = "Tesseract CI: plan and run CI pipelines (GitHub Actions syntax)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// GitLab: local checkouts of other projects for `include: project:`
    /// (`DIR/<group>/<project>/<file>`).
    #[arg(long, global = true, value_name = "DIR")]
    include_dir: Option<PathBuf>,
    /// Read every file given in this dialect (default: by name and content).
    #[arg(long, global = true, value_enum, default_value_t)]
    dialect: DialectArg,
    /// Colours on the terminal: `auto` uses them on a terminal unless `NO_COLOR` is set
    /// (`CLICOLOR_FORCE` forces them); `always` and `never` override both.
    #[arg(long, global = true, value_enum, default_value_t, value_name = "WHEN")]
    color: ColorArg,
}

#[derive(Clone, Copy, Default, ValueEnum)]
enum ColorArg {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, Default, ValueEnum)]
enum DialectArg {
    /// `.gitlab-ci.yml`, `*.gitlab-ci.yml` and files with GitLab's keys are GitLab CI; the
    /// rest are GitHub workflows.
    #[default]
    Auto,
    Github,
    Gitlab,
}

/// The options every command shares.
struct Globals {
    include_dir: Option<PathBuf>,
    dialect: DialectArg,
}

impl Globals {
    fn load_options(&self) -> load::Options<'_> {
        load::Options {
            include_dir: self.include_dir.as_deref(),
            dialect: match self.dialect {
                DialectArg::Auto => None,
                DialectArg::Github => Some(crate::spec::Dialect::GitHub),
                DialectArg::Gitlab => Some(crate::spec::Dialect::GitLab),
            },
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Check pipeline files; report every problem as file:line:col.
    Validate {
        /// Files or directories (default: .github/workflows, pipelines, .gitlab-ci.yml).
        paths: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Show which jobs run for an event, in what DAG, and why.
    Plan {
        paths: Vec<PathBuf>,
        #[command(flatten)]
        event: EventArgs,
        #[arg(long)]
        json: bool,
    },
    /// Draw the job graph.
    Graph {
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
        #[command(flatten)]
        event: EventArgs,
    },
    /// Run a pipeline locally: real processes, true DAG scheduling, GitHub semantics.
    Run {
        /// A file or directory (default: as for validate).
        paths: Vec<PathBuf>,
        #[command(flatten)]
        event: EventArgs,
        /// Run only this job (id or key) and what it needs (repeatable).
        #[arg(long = "job")]
        jobs: Vec<String>,
        /// GitLab: a job input of the jobs named by --job, `NAME=VALUE` (repeatable; typed
        /// and checked as the job's `inputs:` declare).
        #[arg(long = "job-input", value_parser = parse_key_value, requires = "jobs")]
        job_inputs: Vec<(String, String)>,
        /// At most N jobs at once (default: number of CPUs).
        #[arg(short = 'j', long = "jobs-parallel", value_name = "N")]
        parallel: Option<usize>,
        /// A secret, `KEY=VALUE` (repeatable); masked in all output.
        #[arg(long, value_parser = parse_key_value)]
        secret: Vec<(String, String)>,
        /// Secrets from a file of `KEY=VALUE` lines.
        #[arg(long)]
        secret_file: Option<PathBuf>,
        /// Extra environment, `KEY=VALUE` (repeatable).
        #[arg(long, value_parser = parse_key_value)]
        env: Vec<(String, String)>,
        /// Run in a private copy of the tracked and modified files.
        #[arg(long)]
        isolate: bool,
        /// Where jobs that ask for a container or services run (default `auto`: in
        /// containers when a Docker API answers — `DOCKER_HOST` — else on the host, saying so).
        #[arg(long, value_enum, default_value_t)]
        executor: crate::engine::containers::ExecutorMode,
        /// Print one JSON event per line instead of live output.
        #[arg(long)]
        json: bool,
        /// Fail jobs whose `runs-on` asks for another OS (windows-*, macos-*) instead of
        /// running them here with a warning.
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        actions: actions_args::ActionsArgs,
        /// Inside a GitHub Actions job: a table of the jobs and the DAG colored by result
        /// to `$GITHUB_STEP_SUMMARY`, `result`, `failed-jobs` and `run-id` to
        /// `$GITHUB_OUTPUT`, and an `::error::` annotation per failed job.
        #[arg(long)]
        github_actions: bool,
        /// With --github-actions: a commit status or check run per stage (the token comes
        /// from `TESS_GITHUB_TOKEN` or `GITHUB_TOKEN`, the API from `TESS_API_URL` or
        /// `GITHUB_API_URL`).
        #[arg(long, value_enum, default_value_t = statuses::ReportKind::None, requires = "github_actions")]
        report: statuses::ReportKind,
    },
    /// Receive webhooks, plan and store runs, lease jobs to runners.
    Server {
        /// The config file (TOML); default: built-in defaults, no repositories.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on (overrides the config), e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<String>,
        /// `sqlite://PATH` or `postgres://…` (overrides the config).
        #[arg(long, env = "TESS_DATABASE_URL")]
        database_url: Option<String>,
    },
    /// Run jobs for a `tess server` (a self-hosted runner).
    Runner {
        /// Settings from a file (`runner.toml`); flags win over it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The server's URL.
        #[arg(long, env = "TESS_SERVER")]
        server: Option<String>,
        /// The runner token (from an earlier registration).
        #[arg(long, env = "TESS_RUNNER_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Register with this token; the credentials are saved in the work directory.
        #[arg(long, env = "TESS_REGISTRATION_TOKEN", hide_env_values = true)]
        registration_token: Option<String>,
        /// The registration token from a file (a systemd credential, a mounted secret).
        #[arg(long, env = "TESS_REGISTRATION_TOKEN_FILE")]
        registration_token_file: Option<PathBuf>,
        /// Extra labels, comma-separated (`self-hosted`, the OS and arch are implied).
        #[arg(long, value_delimiter = ',')]
        labels: Vec<String>,
        /// Jobs at once (default 1).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Workspaces and credentials live here (default `.tess-runner`).
        #[arg(long)]
        workdir: Option<PathBuf>,
        /// The name shown by the server (default: the host name).
        #[arg(long)]
        name: Option<String>,
        /// Seconds one poll waits for a job (default 10).
        #[arg(long)]
        poll_seconds: Option<u64>,
        /// GitHub-hosted runner labels this runner serves, comma-separated (default on
        /// Linux: ubuntu-latest,ubuntu-24.04,ubuntu-22.04; `none` for none).
        #[arg(long, value_delimiter = ',')]
        hosted_labels: Option<Vec<String>>,
        /// Take GitLab jobs without `tags`, as gitlab-runner's `run_untagged` (default true).
        #[arg(long)]
        run_untagged: Option<bool>,
        /// After SIGTERM, running jobs get this long to finish before they are cancelled
        /// (default 600).
        #[arg(long)]
        drain_timeout_seconds: Option<u64>,
        /// Where jobs that ask for containers run (default `auto`: containers when a Docker
        /// API answers at start; then the runner also serves the `tess:container` label).
        #[arg(long, value_enum)]
        executor: Option<crate::engine::containers::ExecutorMode>,
        #[command(flatten)]
        actions: actions_args::ActionsArgs,
    },
    /// Look at and act on a `tess server`'s runs.
    Runs {
        /// The server's URL.
        #[arg(long, env = "TESS_SERVER")]
        server: String,
        /// An API token.
        #[arg(long, env = "TESS_TOKEN", hide_env_values = true)]
        token: String,
        #[command(subcommand)]
        action: RunsAction,
    },
    /// A repository's pipeline versions on a `tess server`.
    Versions {
        /// The server's URL.
        #[arg(long, env = "TESS_SERVER")]
        server: String,
        /// An API token.
        #[arg(long, env = "TESS_TOKEN", hide_env_values = true)]
        token: String,
        #[command(subcommand)]
        action: VersionsAction,
    },
    /// List the next fire times of every `on.schedule` cron.
    Schedule {
        paths: Vec<PathBuf>,
        /// Start time (RFC 3339); default: now.
        #[arg(long)]
        from: Option<String>,
        #[arg(long, default_value_t = 5)]
        count: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RunsAction {
    /// The latest runs.
    List,
    /// A run and its jobs (`latest`: the newest run; also for `logs` and `wait`).
    Show { id: String },
    /// Wait for a run to end, printing its jobs as they finish; exit 0 when it succeeded,
    /// 1 when it failed or was cancelled (`latest` waits for a first run to appear).
    Wait {
        id: String,
        /// Give up (exit 1) after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout_seconds: u64,
    },
    /// A job's log (`-f`: follow it until the job ends).
    Logs {
        id: String,
        job: String,
        #[arg(short, long)]
        follow: bool,
        /// The log as stored, with its `##[group]` markers (default: steps as sections).
        #[arg(long)]
        raw: bool,
    },
    /// Cancel a run.
    Cancel { id: String },
    /// Run again (`--failed`: only the failed jobs and what needs them).
    Rerun {
        id: String,
        #[arg(long)]
        failed: bool,
    },
}

#[derive(Subcommand)]
enum VersionsAction {
    /// The history: applied and rejected versions, newest first.
    List { repo: String },
    /// The current version (or the version ID) and its change log.
    Show { repo: String, id: Option<String> },
    /// What version B changes relative to version A.
    Diff { repo: String, a: String, b: String },
    /// Read the default branch's definitions now.
    Sync { repo: String },
    /// Make version ID current; scheduled and manual runs are pinned to it until the
    /// definitions change again.
    Rollback {
        repo: String,
        id: String,
        /// Only if this version is still the current one.
        #[arg(long)]
        if_match: Option<String>,
    },
    /// End a rollback: the newest detected version becomes current again.
    Unpin { repo: String },
}

#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    Dot,
    Mermaid,
}

#[derive(Args, Clone, Default)]
pub struct EventArgs {
    /// The event: push, pull_request, tag, schedule or manual (also by GitHub's name,
    /// workflow_dispatch).
    #[arg(long, value_parser = ["push", "pull_request", "tag", "schedule", "manual", "workflow_dispatch"])]
    pub event: Option<String>,
    /// Branch or tag (short or full ref); default: the current branch.
    #[arg(long = "ref")]
    pub git_ref: Option<String>,
    /// Pull requests: the base branch (default: the repository's default branch, from
    /// `origin/HEAD` or the only remote branch, else main).
    #[arg(long)]
    pub base: Option<String>,
    /// Pull requests: the activity type (default: opened).
    #[arg(long)]
    pub action: Option<String>,
    /// A changed file (repeatable); path filters are evaluated only when given.
    #[arg(long)]
    pub changed: Vec<String>,
    /// An input for manual runs, `KEY=VALUE` (repeatable).
    #[arg(long, value_parser = parse_key_value)]
    pub input: Vec<(String, String)>,
    /// A GitHub event payload (in a GitHub Actions job: `$GITHUB_EVENT_PATH`): the event
    /// of kind `--event` is read from it (ref, base, activity type, inputs).
    #[arg(long, requires = "event")]
    pub event_path: Option<std::path::PathBuf>,
    /// Action mode: `GITHUB_REF` and `GITHUB_SHA`, for a payload that lacks them (as `act`'s
    /// made-up ones do).
    #[arg(skip)]
    pub payload_defaults: Option<(String, String)>,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))
}

pub fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some(crate::exec::reaper::SUBCOMMAND) {
        crate::allocator::use_the_heap();
        crate::exec::reaper::watch();
    }
    let cli = Cli::parse();
    // Planning commands read, print and exit; everything else lives on and frees.
    if matches!(
        cli.command,
        Command::Validate { .. } | Command::Plan { .. } | Command::Graph { .. }
    ) {
        crate::allocator::one_shot();
    } else {
        crate::allocator::use_the_heap();
    }
    anstream::ColorChoice::write_global(match cli.color {
        ColorArg::Auto => anstream::ColorChoice::Auto,
        ColorArg::Always => anstream::ColorChoice::Always,
        ColorArg::Never => anstream::ColorChoice::Never,
    });
    // The server and the runner say what they do at info level unless TESS_LOG says else.
    let default_level = match cli.command {
        Command::Server { .. } | Command::Runner { .. } => {
            small_pages_from_now_on();
            "info"
        }
        _ => "error",
    };
    let filter = std::env::var("TESS_LOG").unwrap_or_else(|_| default_level.into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        // Plain text: the crate is built without its `ansi` feature (logs go to files and
        // journals, where escape codes are noise).
        .with_ansi(false)
        .init();
    let globals = Globals {
        include_dir: cli.include_dir,
        dialect: cli.dialect,
    };
    match run(cli.command, &globals) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(match e {
                CliError::Invalid(_) => EXIT_INVALID,
                CliError::Runtime(_) => EXIT_RUNTIME,
            })
        }
    }
}

fn load_paths(
    paths: Vec<PathBuf>,
    globals: &Globals,
    event: Option<&Event>,
) -> Result<Loaded, String> {
    load_paths_remote(paths, globals, event, None)
}

/// As [`load_paths`], fetching remote reusable workflows from `remote`.
fn load_paths_remote(
    paths: Vec<PathBuf>,
    globals: &Globals,
    event: Option<&Event>,
    remote: Option<Arc<crate::fetch::Source>>,
) -> Result<Loaded, String> {
    let paths = if paths.is_empty() {
        load::default_paths()
    } else {
        paths
    };
    if paths.is_empty() {
        return Err(
            "no pipeline files found (looked for .github/workflows, pipelines, .gitlab-ci.yml)"
                .into(),
        );
    }
    load::load_remote(&paths, globals.load_options(), event, remote)
}

/// Plans every pipeline that loaded without errors.
/// Long-running processes keep their memory small: the allocator's transparent huge pages
/// (what makes a short `tess plan` fast: a few 2 MiB faults instead of thousands of 4 KiB
/// ones) would have an idle runner resident at 21 MiB instead of 13 (benches/memory.py).
/// mimalloc reads its options before `main`, so the process runs itself again with
/// `MIMALLOC_ARENA_EAGER_COMMIT=0` (same pid; jobs never see it, their environment is
/// built anew). Not `MIMALLOC_ALLOW_THP=0`: that turns huge pages off with a prctl the
/// jobs would inherit.
fn small_pages_from_now_on() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os(EAGER_COMMIT).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(EAGER_COMMIT, "0")
        .exec();
    // Not run again (an unreadable binary): go on with huge pages.
    tracing::debug!(%error, "cannot run again with small pages");
}

const EAGER_COMMIT: &str = "MIMALLOC_ARENA_EAGER_COMMIT";

fn plan_all(loaded: &mut Loaded, event: Option<&Event>) -> Vec<PipelinePlan> {
    let mut plans = Vec::new();
    let broken: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.file.clone())
        .collect();
    for p in &loaded.pipelines {
        if broken.contains(&p.file) {
            continue;
        }
        let (plan, mut diagnostics) = plan_pipeline(p, event);
        loaded.diagnostics.append(&mut diagnostics);
        plans.push(plan);
    }
    plans
}

fn exit_code(loaded: &Loaded) -> u8 {
    if loaded.has_errors() { EXIT_INVALID } else { 0 }
}

fn run(command: Command, globals: &Globals) -> Result<u8, CliError> {
    match command {
        Command::Validate { paths, json } => {
            let loaded = load_paths(paths, globals, None)?;
            output::validate(&loaded, json);
            Ok(exit_code(&loaded))
        }
        Command::Plan { paths, event, json } => {
            let event = event::from_args(&event)?;
            let mut loaded = load_paths(paths, globals, event.as_ref())?;
            let plans = plan_all(&mut loaded, event.as_ref());
            output::plan(&loaded, &plans, json);
            let code = exit_code(&loaded);
            // The process ends here: freeing thousands of small allocations is wasted work.
            std::mem::forget((loaded, plans));
            Ok(code)
        }
        Command::Graph {
            paths,
            format,
            event,
        } => {
            let event = event::from_args(&event)?;
            let mut loaded = load_paths(paths, globals, event.as_ref())?;
            let plans = plan_all(&mut loaded, event.as_ref());
            anstream::eprint!("{}", loaded.render_diagnostics_styled());
            let text = match format {
                GraphFormat::Dot => graph::dot(&plans),
                GraphFormat::Mermaid => graph::mermaid(&plans),
            };
            print!("{text}");
            Ok(exit_code(&loaded))
        }
        Command::Run {
            paths,
            event,
            jobs,
            job_inputs,
            parallel,
            secret,
            secret_file,
            env,
            isolate,
            executor,
            json,
            strict,
            actions,
            github_actions,
            report,
        } => {
            let mut event = event;
            let mut secret = secret;
            let action = if github_actions {
                let files = action::Files::from_env()?;
                action::event_from_env(&mut event)?;
                // As in GitHub Actions, `secrets.GITHUB_TOKEN` is the job's token.
                if let Some(token) = statuses::token_from_env()
                    && !secret.iter().any(|(k, _)| k == "GITHUB_TOKEN")
                {
                    secret.push(("GITHUB_TOKEN".into(), token));
                }
                Some(files)
            } else {
                None
            };
            let event = run::event_for_run(&event)?;
            let source = actions.source()?;
            let mut loaded =
                load_paths_remote(paths, globals, Some(&event), Some(Arc::clone(&source)))?;
            if loaded.has_errors() {
                anstream::eprint!("{}", loaded.render_diagnostics_styled());
                return Ok(EXIT_INVALID);
            }
            // A bad token fails here, before anything runs.
            let statuses = match report {
                statuses::ReportKind::None => None,
                kind => {
                    let target = statuses::Target::from_env(kind, event.sha.as_deref())?;
                    Some(statuses::Statuses::start(target)?)
                }
            };
            let args = run::RunArgs {
                event,
                jobs,
                job_inputs,
                parallel,
                statuses,
                secrets: secret,
                secret_file,
                env,
                isolate,
                executor,
                json,
                strict,
                action,
                actions,
                source,
            };
            Ok(run::run(&mut loaded, args)?)
        }
        Command::Runs {
            server,
            token,
            action,
        } => {
            let action = match action {
                RunsAction::List => runs::Action::List,
                RunsAction::Show { id } => runs::Action::Show(id),
                RunsAction::Wait {
                    id,
                    timeout_seconds,
                } => runs::Action::Wait {
                    run: id,
                    timeout: std::time::Duration::from_secs(timeout_seconds),
                },
                RunsAction::Logs {
                    id,
                    job,
                    follow,
                    raw,
                } => runs::Action::Logs {
                    run: id,
                    job,
                    follow,
                    raw,
                },
                RunsAction::Cancel { id } => runs::Action::Cancel(id),
                RunsAction::Rerun { id, failed } => runs::Action::Rerun { run: id, failed },
            };
            runs::run(&server, &token, action)
        }
        Command::Versions {
            server,
            token,
            action,
        } => {
            let (repo, action) = match action {
                VersionsAction::List { repo } => (repo, versions::Action::List),
                VersionsAction::Show { repo, id } => (repo, versions::Action::Show(id)),
                VersionsAction::Diff { repo, a, b } => (repo, versions::Action::Diff(a, b)),
                VersionsAction::Sync { repo } => (repo, versions::Action::Sync),
                VersionsAction::Rollback { repo, id, if_match } => {
                    (repo, versions::Action::Rollback { id, if_match })
                }
                VersionsAction::Unpin { repo } => (repo, versions::Action::Unpin),
            };
            versions::run(&server, &token, &repo, action)
        }
        Command::Server {
            config,
            listen,
            database_url,
        } => {
            crate::server::run(crate::server::Options {
                config,
                listen,
                database_url,
            })?;
            Ok(0)
        }
        Command::Runner {
            config,
            server,
            token,
            registration_token,
            registration_token_file,
            labels,
            concurrency,
            workdir,
            name,
            poll_seconds,
            hosted_labels,
            run_untagged,
            drain_timeout_seconds,
            executor,
            actions,
        } => {
            let file = match &config {
                Some(path) => crate::runner::config::RunnerFile::load(path)?,
                None => crate::runner::config::RunnerFile::default(),
            };
            let server = server
                .or(file.server)
                .ok_or("the server's URL: --server, TESS_SERVER or `server` in --config")?;
            let registration_token = match (
                registration_token,
                registration_token_file.or(file.registration_token_file),
            ) {
                (Some(token), _) => Some(token),
                (None, Some(path)) => Some(crate::runner::config::read_token(&path)?),
                (None, None) => None,
            };
            let labels = if labels.is_empty() {
                file.labels
            } else {
                labels
            };
            let concurrency = concurrency.or(file.concurrency).unwrap_or(1);
            let workdir = workdir
                .or(file.workdir)
                .unwrap_or_else(|| PathBuf::from(".tess-runner"));
            let name = name.or(file.name);
            let poll_seconds = poll_seconds.or(file.poll_seconds).unwrap_or(10);
            let hosted_labels = hosted_labels
                .or(file.hosted_labels)
                .unwrap_or_else(crate::runner::hosted_aliases)
                .into_iter()
                .filter(|l| !l.is_empty() && l != "none")
                .collect();
            let run_untagged = run_untagged.or(file.run_untagged).unwrap_or(true);
            let drain_timeout = std::time::Duration::from_secs(
                drain_timeout_seconds
                    .or(file.drain_timeout_seconds)
                    .unwrap_or(600),
            );
            let executor = executor.or(file.executor).unwrap_or_default();
            // One actions cache per host, one cache-service store per work directory.
            let runtime = actions.runtime(actions.source()?, workdir.join("actions-cache"))?;
            let server_url = actions.server_url().map(String::from);
            let stop = std::sync::Arc::new(crate::exec::Cancel::default());
            signals::install(std::sync::Arc::clone(&stop));
            crate::runner::run(
                crate::runner::Options {
                    server,
                    token,
                    registration_token,
                    labels,
                    concurrency,
                    workdir,
                    name,
                    poll_seconds,
                    hosted_labels,
                    run_untagged,
                    drain_timeout,
                    executor,
                    actions: std::sync::Arc::new(runtime),
                    actions_server_url: server_url,
                },
                stop,
            )?;
            Ok(0)
        }
        Command::Schedule {
            paths,
            from,
            count,
            json,
        } => {
            let from = match from {
                Some(s) => chrono::DateTime::parse_from_rfc3339(&s)
                    .map_err(|e| format!("--from `{s}` is not an RFC 3339 time: {e}"))?
                    .with_timezone(&chrono::Utc),
                None => chrono::Utc::now(),
            };
            let loaded = load_paths(paths, globals, None)?;
            output::schedule(&loaded, from, count, json);
            Ok(exit_code(&loaded))
        }
    }
}
