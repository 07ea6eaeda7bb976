//! Execution of one step: a script run as one process in its own process group, with its
//! output drained concurrently, workflow commands and file commands applied, secrets masked.
//! Knows nothing about DAGs or the CLI; the engine and (later) the runner agent drive it.

mod commands;
pub mod container;
mod files;
mod lines;
pub(crate) use lines::WholeLines;
mod mask;
mod process;
pub mod reaper;
mod shell;

pub use commands::{Annotation, Command, parse_command};
pub use files::parse_key_values;
pub use mask::Masker;
pub use process::{Cancel, CancelLevel, Outcome, Spawn, kill_group, run_process};
pub use shell::{ShellError, on_path, shell_command};

use indexmap::IndexMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What a step reports while it runs (already masked).
#[derive(Debug, Clone, PartialEq)]
pub enum StepEvent<'a> {
    Line(Stream, &'a str),
    GroupStart(&'a str),
    GroupEnd,
    Annotation(&'a Annotation),
    /// The end of one read: forward what was collected (keeps live output live).
    Flush,
}

/// Where a step's process runs: the one seam between the host and a container. The rest
/// of a step (its script file, file commands, masking, outcome) is the same for both.
pub trait Executor {
    /// Runs one process to completion (or timeout / cancellation), streaming its output.
    fn run(
        &self,
        spawn: &Spawn,
        deadline: Option<Instant>,
        cancel: &Cancel,
        on_output: &mut dyn FnMut(Stream, &[u8]),
    ) -> (Outcome, Option<i32>);
    /// Whether `program` is on the PATH where steps run (the default shell's choice).
    fn has(&self, program: &str) -> bool;
    /// Whether steps run on this host (the simple-command fast path looks up host files).
    fn is_host(&self) -> bool;
}

/// Steps on this host: one process group each.
pub struct Host;

impl Executor for Host {
    fn run(
        &self,
        spawn: &Spawn,
        deadline: Option<Instant>,
        cancel: &Cancel,
        on_output: &mut dyn FnMut(Stream, &[u8]),
    ) -> (Outcome, Option<i32>) {
        run_process(spawn, deadline, cancel, on_output)
    }

    fn has(&self, program: &str) -> bool {
        on_path(program)
    }

    fn is_host(&self) -> bool {
        true
    }
}

/// One `run:` step, fully resolved by the caller (expressions already interpolated).
pub struct StepRequest<'a> {
    /// Where it runs.
    pub executor: &'a dyn Executor,
    /// A program and its arguments run as they are (a JavaScript action's `node main.js`)
    /// instead of `script` in `shell`.
    pub argv: Option<&'a [String]>,
    pub script: &'a str,
    pub shell: Option<&'a str>,
    pub env: &'a IndexMap<String, String>,
    pub cwd: &'a Path,
    pub timeout: Option<Duration>,
    /// The job's private directory for the script and the file-command files (steps of
    /// one job run one after another, so they share it).
    pub temp: &'a Path,
}

/// The step's outcome and what it asked to change through file commands.
#[derive(Debug, Default)]
pub struct StepResult {
    pub outcome: Outcome,
    pub outputs: IndexMap<String, String>,
    /// `GITHUB_STATE` / `::save-state::`: seen by the action's later `pre`/`main`/`post`.
    pub state: IndexMap<String, String>,
    pub env: IndexMap<String, String>,
    pub path: Vec<String>,
    pub summary: String,
    /// Problems with the file commands (a bad heredoc, …), reported as warnings.
    pub warnings: Vec<String>,
    pub annotations: Vec<Annotation>,
    /// A disabled `::set-env::`/`::add-path::` was used: the step fails, as on GitHub.
    pub insecure_command: bool,
    /// The process group, so the job can reap background processes when it ends.
    pub process_group: Option<i32>,
    pub duration: Duration,
}

/// Runs one step to completion (or timeout / cancellation). Never returns an error: every
/// way a step can end, including failing to start, is an [`Outcome`].
pub fn run_step(
    req: &StepRequest,
    masker: &mut Masker,
    cancel: &Cancel,
    on_event: &mut dyn FnMut(StepEvent),
) -> StepResult {
    let started = Instant::now();
    let mut result = StepResult::default();
    let files = FileCommands::create(req.temp);
    let direct = match req.argv {
        Some(argv) if !argv.is_empty() => Some(argv.to_vec()),
        _ if req.executor.is_host() => shell::direct_argv(req.shell, req.script, req.env),
        _ => None,
    };
    let prepared = files
        .as_ref()
        .map_err(std::string::ToString::to_string)
        .and_then(|files| {
            let (program, args) = match &direct {
                Some(argv) => (argv[0].clone(), argv[1..].to_vec()),
                None => {
                    let (program, args, _) =
                        shell_command(req.shell, req.script, req.temp, req.executor)
                            .map_err(|e| e.to_string())?;
                    (program, args)
                }
            };
            Ok((files, program, args))
        });
    let (files, program, args) = match prepared {
        Ok(p) => p,
        Err(message) => {
            result.outcome = Outcome::FailedToSpawn(message);
            return result;
        }
    };
    let mut env: Vec<(String, String)> = req
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.extend(files.env());
    if direct.is_some() {
        // What bash would have exported to the command it runs.
        env.push(("PWD".into(), req.cwd.display().to_string()));
    }
    let spawn = Spawn {
        program,
        args,
        env,
        cwd: req.cwd.to_path_buf(),
    };
    let deadline = req.timeout.map(|t| started + t);
    tracing::debug!(program = %spawn.program, direct = direct.is_some(), "spawning step");
    let mut out = lines::LineBuffer::default();
    let mut err = lines::LineBuffer::default();
    let mut state = commands::CommandState::new(
        req.env
            .get("ACTIONS_ALLOW_UNSECURE_COMMANDS")
            .is_some_and(|v| v == "true"),
    );
    state.debug = req
        .env
        .get("ACTIONS_STEP_DEBUG")
        .is_some_and(|v| v == "true");
    let (outcome, group) = req
        .executor
        .run(&spawn, deadline, cancel, &mut |stream, bytes| {
            let buffer = match stream {
                Stream::Stdout => &mut out,
                Stream::Stderr => &mut err,
            };
            buffer.push(bytes, masker, |masker, line| {
                handle_line(&mut state, stream, line, masker, &mut result, on_event);
            });
            on_event(StepEvent::Flush);
        });
    out.finish(masker, |masker, line| {
        handle_line(
            &mut state,
            Stream::Stdout,
            line,
            masker,
            &mut result,
            on_event,
        );
    });
    err.finish(masker, |masker, line| {
        handle_line(
            &mut state,
            Stream::Stderr,
            line,
            masker,
            &mut result,
            on_event,
        );
    });
    on_event(StepEvent::Flush);
    // bash reports a child killed by signal N as exit status 128+N; so does the fast path.
    result.outcome = match (outcome, &direct) {
        (Outcome::Signal(n), Some(_)) if req.argv.is_none() => Outcome::ExitCode(128 + n),
        (Outcome::Success, _) if result.insecure_command => Outcome::ExitCode(1),
        (outcome, _) => outcome,
    };
    result.process_group = group;
    files.collect(&mut result, masker);
    result.duration = started.elapsed();
    tracing::debug!(outcome = ?result.outcome, ms = result.duration.as_millis() as u64, "step ended");
    result
}

/// Applies a workflow command, or masks and forwards an ordinary line.
fn handle_line(
    state: &mut commands::CommandState,
    stream: Stream,
    line: &str,
    masker: &mut Masker,
    result: &mut StepResult,
    on_event: &mut dyn FnMut(StepEvent),
) {
    match state.interpret(line) {
        Some(Command::AddMask(value)) => masker.add(&value),
        Some(Command::Group(title)) => on_event(StepEvent::GroupStart(&masker.mask(&title))),
        Some(Command::EndGroup) => on_event(StepEvent::GroupEnd),
        Some(Command::Annotate(mut a)) => {
            a.message = masker.mask(&a.message).into_owned();
            on_event(StepEvent::Annotation(&a));
            result.annotations.push(a);
        }
        Some(Command::Debug(text)) if state.debug => on_event(StepEvent::Line(
            stream,
            &format!("##[debug]{}", masker.mask(&text)),
        )),
        Some(Command::StopCommands | Command::ResumeCommands | Command::Debug(_)) => {}
        Some(Command::Ignored) => {}
        Some(Command::SetOutput { name, value }) => {
            on_event(StepEvent::Line(
                Stream::Stderr,
                "##[warning]The `set-output` command is deprecated and will be disabled soon. \
                 Please upgrade to using Environment Files.",
            ));
            result.outputs.insert(name, value);
        }
        Some(Command::SaveState { name, value }) => {
            result.state.insert(name, value);
        }
        Some(Command::SetEnv { name, value }) if state.unsecure_allowed() => {
            result.env.insert(name, value);
        }
        Some(Command::AddPath(path)) if state.unsecure_allowed() => result.path.push(path),
        Some(Command::SetEnv { .. } | Command::AddPath(_)) => {
            // GitHub's own wording: the command fails the step.
            let a = Annotation::error(
                "The `set-env` and `add-path` commands are disabled. Please upgrade to using \
                 Environment Files or opt into unsecure command execution by setting the \
                 `ACTIONS_ALLOW_UNSECURE_COMMANDS` environment variable to `true`.",
            );
            on_event(StepEvent::Annotation(&a));
            result.annotations.push(a);
            result.insecure_command = true;
        }
        None if masker.is_empty() => on_event(StepEvent::Line(stream, line)),
        None => on_event(StepEvent::Line(stream, &masker.mask(line))),
    }
}

/// The `GITHUB_ENV` / `GITHUB_OUTPUT` / `GITHUB_PATH` / `GITHUB_STEP_SUMMARY` files.
struct FileCommands {
    env: PathBuf,
    output: PathBuf,
    path: PathBuf,
    summary: PathBuf,
    state: PathBuf,
}

/// The file-command files of a step (`GITHUB_ENV`, `GITHUB_OUTPUT`, `GITHUB_PATH`,
/// `GITHUB_STEP_SUMMARY`, `GITHUB_STATE`), in its job's temporary directory.
pub const FILE_COMMAND_FILES: [&str; 5] = ["env", "output", "path", "step_summary", "state"];

impl FileCommands {
    /// Makes sure the four files exist and are empty. They live in the job's directory and
    /// are reused by every step (emptied after each), so a step costs no new inodes.
    fn create(dir: &Path) -> std::io::Result<FileCommands> {
        let [env, output, path, summary, state] = FILE_COMMAND_FILES.map(|name| dir.join(name));
        let f = FileCommands {
            env,
            output,
            path,
            summary,
            state,
        };
        for p in [&f.env, &f.output, &f.path, &f.summary, &f.state] {
            match std::fs::metadata(p) {
                Ok(m) if m.len() == 0 => {}
                _ => {
                    std::fs::create_dir_all(dir)?;
                    std::fs::write(p, "")?;
                }
            }
        }
        Ok(f)
    }

    fn env(&self) -> Vec<(String, String)> {
        [
            ("GITHUB_ENV", &self.env),
            ("GITHUB_OUTPUT", &self.output),
            ("GITHUB_PATH", &self.path),
            ("GITHUB_STEP_SUMMARY", &self.summary),
            ("GITHUB_STATE", &self.state),
        ]
        .into_iter()
        .map(|(k, p)| (k.to_string(), p.display().to_string()))
        .collect()
    }

    /// Reads what the step wrote (only files that are not empty) and empties them.
    fn collect(&self, result: &mut StepResult, masker: &Masker) {
        let take = |p: &Path| -> String {
            match std::fs::metadata(p) {
                Ok(m) if m.len() > 0 => {
                    let text = std::fs::read_to_string(p).unwrap_or_default();
                    let _ = std::fs::write(p, "");
                    text
                }
                _ => String::new(),
            }
        };
        match parse_key_values(&take(&self.env)) {
            Ok(vars) => result.env.extend(vars),
            Err(e) => result.warnings.push(format!("GITHUB_ENV: {e}")),
        }
        match parse_key_values(&take(&self.output)) {
            Ok(vars) => result.outputs.extend(vars),
            Err(e) => result.warnings.push(format!("GITHUB_OUTPUT: {e}")),
        }
        match parse_key_values(&take(&self.state)) {
            Ok(vars) => result.state.extend(vars),
            Err(e) => result.warnings.push(format!("GITHUB_STATE: {e}")),
        }
        result.path.extend(
            take(&self.path)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from),
        );
        result.summary = masker.mask(&take(&self.summary)).into_owned();
    }
}
