//! Action mode's statuses: one commit status (or check run) per stage, as it is queued,
//! starts and finishes, sent through `forge/` by a thread of its own so the run never
//! waits on GitHub; the newest state per stage wins when several are waiting.

use crate::engine::{Conclusion, RunEvent};
use crate::exec::Annotation;
use crate::forge::github::{CheckDetails, GitHub};
use crate::forge::{Report, Sent, State};
use indexmap::IndexMap;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::time::Instant;

/// What the action reports on the commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum ReportKind {
    /// Commit statuses (`POST /repos/{owner}/{repo}/statuses/{sha}`).
    Statuses,
    /// Check runs (the token must be an app's, as `GITHUB_TOKEN` is).
    Checks,
    None,
}

/// Where statuses go, read from the GitHub Actions environment.
pub(super) struct Target {
    pub api_url: String,
    pub repo: String,
    pub sha: String,
    pub token: crate::token::Secret,
    pub kind: ReportKind,
    /// The workflow run's page.
    pub target_url: Option<String>,
}

/// The token: `TESS_GITHUB_TOKEN` (what the action passes from its `token` input), else
/// `GITHUB_TOKEN`.
pub(super) fn token_from_env() -> Option<String> {
    ["TESS_GITHUB_TOKEN", "GITHUB_TOKEN"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|t| !t.trim().is_empty())
}

impl Target {
    pub(super) fn from_env(kind: ReportKind, sha: Option<&str>) -> Result<Target, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let token = token_from_env().ok_or(
            "reporting needs a token: set the action's `token` input (default \
             `${{ github.token }}`) or `GITHUB_TOKEN`, or use `report: none`",
        )?;
        let repo =
            var("GITHUB_REPOSITORY").ok_or("reporting needs `GITHUB_REPOSITORY` (owner/name)")?;
        let sha = sha.map(String::from).or_else(|| var("GITHUB_SHA")).ok_or(
            "reporting needs the commit: the event has no SHA and `GITHUB_SHA` is not set",
        )?;
        let api_url = var("TESS_API_URL")
            .or_else(|| var("GITHUB_API_URL"))
            .unwrap_or_else(|| "https://api.github.com".into());
        let target_url = match (var("GITHUB_SERVER_URL"), var("GITHUB_RUN_ID")) {
            (Some(server), Some(run)) => Some(format!(
                "{}/{repo}/actions/runs/{run}",
                server.trim_end_matches('/')
            )),
            _ => None,
        };
        Ok(Target {
            api_url,
            repo,
            sha,
            token: crate::token::Secret::new(token),
            kind,
            target_url,
        })
    }
}

/// One state of one stage, waiting to be sent.
struct Update {
    report: Report,
    annotations: Vec<Annotation>,
    run_id: String,
    attempts: u32,
}

/// What became of the statuses.
#[derive(Default)]
pub(super) struct Tally {
    pub delivered: usize,
    /// Contexts given up, with why.
    pub given_up: Vec<(String, String)>,
}

/// Sends tried per state before it is given up.
const MAX_ATTEMPTS: u32 = 6;
/// After the run, how long the statuses still waiting may take.
const DRAIN: Duration = Duration::from_secs(60);

pub(super) struct Statuses {
    tx: UnboundedSender<Update>,
    thread: std::thread::JoinHandle<Tally>,
    sha: String,
    target_url: Option<String>,
}

impl Statuses {
    /// Checks the token against the repository (before anything runs), then starts the
    /// sending thread.
    pub(super) fn start(target: Target) -> Result<Statuses, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        let github = GitHub::with_token(&target.api_url, target.token.expose(), &target.repo)?;
        runtime
            .block_on(check_access(&github))
            .map_err(|e| format!("cannot report to {}: {e}", target.repo))?;
        let checks = target.kind == ReportKind::Checks;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("statuses".into())
            .spawn(move || runtime.block_on(deliver(github, checks, rx)))
            .map_err(|e| format!("statuses thread: {e}"))?;
        Ok(Statuses {
            tx,
            thread,
            sha: target.sha,
            target_url: target.target_url,
        })
    }

    /// Turns one pipeline's run events into status updates (for the output thread).
    pub(super) fn observer(&self, pipeline: &str) -> super::live::Observer {
        let tx = self.tx.clone();
        let pipeline = pipeline.to_string();
        let sha = self.sha.clone();
        let target_url = self.target_url.clone();
        let mut run_id = String::new();
        let mut annotations: HashMap<String, Vec<Annotation>> = HashMap::new();
        Box::new(move |event| {
            let (job, name, state, took_ms) = match event {
                RunEvent::RunStarted {
                    run_id: id, jobs, ..
                } => {
                    run_id = id.clone();
                    for job in jobs {
                        let update = Update {
                            report: report(
                                &pipeline,
                                &job.name,
                                &sha,
                                &target_url,
                                State::Pending,
                                None,
                            ),
                            annotations: Vec::new(),
                            run_id: run_id.clone(),
                            attempts: 0,
                        };
                        let _ = tx.send(update);
                    }
                    return;
                }
                RunEvent::StepFinished {
                    job,
                    annotations: found,
                    ..
                } => {
                    annotations
                        .entry(job.clone())
                        .or_default()
                        .extend(found.iter().cloned());
                    return;
                }
                RunEvent::JobStarted { job, name, .. } => (job, name, State::Running, None),
                RunEvent::JobFinished {
                    job,
                    name,
                    result,
                    allowed_failure,
                    duration_ms,
                    ..
                } => {
                    let state = match (result, allowed_failure) {
                        (Conclusion::Success, _) => State::Success,
                        (Conclusion::Failure, true) => State::AllowedFailure,
                        (Conclusion::Failure, false) => State::Failure,
                        (Conclusion::Cancelled, _) => State::Cancelled,
                        (Conclusion::Skipped, _) => State::Skipped,
                    };
                    (job, name, state, Some(*duration_ms as i64))
                }
                _ => return,
            };
            let update = Update {
                report: report(&pipeline, name, &sha, &target_url, state, took_ms),
                annotations: annotations.get(job).cloned().unwrap_or_default(),
                run_id: run_id.clone(),
                attempts: 0,
            };
            let _ = tx.send(update);
        })
    }

    /// Waits until every status is sent or given up (at most [`DRAIN`] after the run).
    pub(super) fn finish(self) -> Tally {
        drop(self.tx);
        self.thread.join().unwrap_or_default()
    }
}

/// The token check, tried again (three times) when GitHub fails or rate-limits.
async fn check_access(github: &GitHub) -> Result<(), String> {
    let mut attempt = 0;
    loop {
        let (wait, why) = match github.check_access().await {
            Sent::Delivered => return Ok(()),
            Sent::Refused(why) => return Err(why),
            Sent::Later(wait, why) => (wait, why),
            Sent::Failed(why) => (Duration::from_secs(1), why),
        };
        attempt += 1;
        if attempt > 3 {
            return Err(format!("GitHub did not answer the token check: {why}"));
        }
        tokio::time::sleep(wait.min(Duration::from_secs(10))).await;
    }
}

fn report(
    pipeline: &str,
    job: &str,
    sha: &str,
    target_url: &Option<String>,
    state: State,
    took_ms: Option<i64>,
) -> Report {
    Report {
        sha: sha.to_string(),
        git_ref: None,
        context: crate::forge::context(pipeline, Some(job)),
        state,
        description: crate::forge::description(state, took_ms),
        target_url: target_url.clone(),
        pipeline_id: None,
    }
}

/// The sending loop: the newest waiting state per context, one request at a time (so a
/// stage's states reach GitHub in order), rate limits and failures waited out.
async fn deliver(github: GitHub, checks: bool, mut rx: UnboundedReceiver<Update>) -> Tally {
    let mut waiting: IndexMap<String, Update> = IndexMap::new();
    let mut check_runs: HashMap<String, i64> = HashMap::new();
    let mut tally = Tally::default();
    let mut deadline: Option<Instant> = None;
    loop {
        while let Ok(update) = rx.try_recv() {
            waiting.insert(update.report.context.clone(), update);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            for (context, _) in waiting.drain(..) {
                let why = "not delivered within a minute of the run's end".to_string();
                tally.given_up.push((context, why));
            }
            break;
        }
        let Some((context, mut update)) = waiting.shift_remove_index(0) else {
            if deadline.is_some() {
                break;
            }
            match rx.recv().await {
                Some(update) => {
                    waiting.insert(update.report.context.clone(), update);
                }
                None => deadline = Some(Instant::now() + DRAIN),
            }
            continue;
        };
        let sent = if checks {
            let details = CheckDetails::new(&update.report, &update.run_id, &update.annotations);
            let (sent, id) = github
                .check(&update.report, &details, check_runs.get(&context).copied())
                .await;
            if let Some(id) = id {
                check_runs.insert(context.clone(), id);
            }
            sent
        } else {
            github.send(&update.report).await
        };
        let (wait, why) = match sent {
            Sent::Delivered => {
                tally.delivered += 1;
                continue;
            }
            Sent::Refused(why) => {
                tally.given_up.push((context, why));
                continue;
            }
            Sent::Later(wait, why) => (wait, why),
            Sent::Failed(why) => (Duration::from_millis(250 << update.attempts.min(8)), why),
        };
        update.attempts += 1;
        if update.attempts >= MAX_ATTEMPTS {
            tally.given_up.push((context, why));
            continue;
        }
        let wait = match deadline {
            Some(d) => wait.min(d.saturating_duration_since(Instant::now())),
            None => wait,
        };
        tokio::time::sleep(wait).await;
        // A newer state that arrived meanwhile replaces this one.
        waiting.entry(context).or_insert(update);
    }
    tally
}
