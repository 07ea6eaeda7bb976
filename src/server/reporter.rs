//! Delivers the outbox to the forges: each run's and job's newest state becomes a commit
//! status, at least once, retried with backoff and paused by rate limits, off the scheduler.

use super::App;
use super::config::{Forge, Repo};
use super::store::DueReport;
use crate::forge::{Report, Sent, State};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A forge client per repository (made once, with its token).
enum Client {
    GitHub(Box<crate::forge::github::GitHub>),
    GitLab(crate::forge::gitlab::GitLab),
}

impl Client {
    fn new(repo: &Repo, base_dir: &std::path::Path) -> Result<Option<(Client, String)>, String> {
        let Some(to) = &repo.report else {
            return Ok(None);
        };
        let api_url = to.api_url(repo.forge);
        let token = || {
            to.token
                .as_ref()
                .ok_or_else(|| format!("repository `{}`: `report` needs a `token`", repo.name))?
                .resolve(base_dir)
        };
        let client = match (repo.forge, to.app_id, &to.private_key) {
            (Forge::Github, Some(app_id), Some(key)) => {
                let app = crate::forge::github_app::AppAuth::new(
                    app_id,
                    &key.resolve(base_dir)?,
                    to.installation_id,
                )?;
                Client::GitHub(Box::new(crate::forge::github::GitHub::as_app(
                    &api_url, app, &repo.name,
                )?))
            }
            (Forge::Github, _, _) => Client::GitHub(Box::new(
                crate::forge::github::GitHub::with_token(&api_url, &token()?, &repo.name)?,
            )),
            (Forge::Gitlab, _, _) => Client::GitLab(crate::forge::gitlab::GitLab::new(
                &api_url,
                &token()?,
                &repo.name,
            )?),
        };
        Ok(Some((client, api_url)))
    }

    /// Sends a report; a check run made on the way is remembered for the next ones.
    async fn send(&self, app: &App, row: &DueReport, report: &Report) -> Sent {
        match self {
            Client::GitHub(c) if c.makes_check_runs() => {
                let details =
                    crate::forge::github::CheckDetails::new(report, &row.run_id, &row.annotations);
                let (sent, id) = c.check(report, &details, row.check_run_id).await;
                if let Some(id) = id.filter(|id| Some(*id) != row.check_run_id)
                    && let Err(e) = app
                        .store
                        .set_check_run(&row.run_id, row.job_key.as_deref(), id)
                        .await
                {
                    tracing::warn!(error = %e, "remembering a check run failed");
                }
                sent
            }
            Client::GitHub(c) => c.send(report).await,
            Client::GitLab(c) => c.send(report).await,
        }
    }
}

/// Claimed rows are not sent by another replica for this long: longer than a send may
/// take (the clients give up after 10 s), short enough that a crashed server's claims
/// soon pass to its successor.
const CLAIM_MS: i64 = 15_000;
/// How often the outbox rows of repositories that do not report are cleared.
const UNREPORTED_SWEEP: Duration = Duration::from_secs(5);
/// Sends in flight at once.
const PARALLEL: usize = 8;

pub(super) async fn run(app: Arc<App>) {
    let mut clients: HashMap<String, Option<(Arc<Client>, String)>> = HashMap::new();
    // Per API root: nothing is sent before this (a rate limit said so).
    let mut paused: HashMap<String, tokio::time::Instant> = HashMap::new();
    let mut config = app.config();
    let mut reporting = reporting_repos(&config);
    let mut swept = tokio::time::Instant::now();
    loop {
        // A new config (hot reload): clients are made again from it.
        let now_config = app.config();
        if !Arc::ptr_eq(&config, &now_config) {
            config = now_config;
            reporting = reporting_repos(&config);
            clients.clear();
        }
        if swept.elapsed() >= UNREPORTED_SWEEP {
            swept = tokio::time::Instant::now();
            if let Err(e) = app.store.mark_unreported(&reporting).await {
                tracing::warn!(error = %e, "marking unreported statuses failed");
            }
        }
        let due = match app.store.due_reports(100, CLAIM_MS, &reporting).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "reading the outbox failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if due.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let mut sends = Vec::new();
        for row in due {
            let key = format!("{}:{}", row.forge, row.repo);
            let client = clients.entry(key).or_insert_with(|| client_for(&app, &row));
            let Some((client, api)) = client.clone() else {
                // Its configuration cannot be used (logged when the client was made).
                record(
                    &app,
                    &row,
                    "failed",
                    None,
                    Some("no usable forge client"),
                    true,
                )
                .await;
                continue;
            };
            if let Some(until) = paused
                .get(&api)
                .filter(|u| **u > tokio::time::Instant::now())
            {
                let wait = until.duration_since(tokio::time::Instant::now());
                let retry_at = super::store::now_ms() + wait.as_millis() as i64;
                record(&app, &row, "rate limited", Some(retry_at), None, false).await;
                continue;
            }
            sends.push((row, client, api));
        }
        for batch in sends.chunks(PARALLEL) {
            let results = futures_util::future::join_all(batch.iter().map(|(row, client, _)| {
                let report = report_of(&app, row);
                let app = &app;
                async move { client.send(app, row, &report).await }
            }))
            .await;
            for ((row, _, api), sent) in batch.iter().zip(results) {
                if let Sent::Later(wait, _) = &sent {
                    paused.insert(api.clone(), tokio::time::Instant::now() + *wait);
                }
                settle(&app, row, sent).await;
            }
        }
    }
}

/// Only repositories with `[repo.report]` are read row by row; the others' outbox rows are
/// marked "unreported" in bulk now and then.
fn reporting_repos(config: &super::config::Config) -> Vec<(String, String)> {
    config
        .repos
        .iter()
        .filter(|r| r.report.is_some())
        .map(|r| (r.forge.as_str().to_string(), r.name.clone()))
        .collect()
}

fn client_for(app: &App, row: &DueReport) -> Option<(Arc<Client>, String)> {
    let config = app.config();
    let repo = config.repo(Forge::from_stored(&row.forge), &row.repo)?;
    match Client::new(repo, &app.base_dir) {
        Ok(made) => made.map(|(c, api)| (Arc::new(c), api)),
        Err(e) => {
            tracing::error!(repo = %row.repo, error = %e, "cannot report to the forge");
            None
        }
    }
}

/// What the forge is told about an outbox row.
fn report_of(app: &App, row: &DueReport) -> Report {
    let state = State::of_stored(&row.state, row.allowed_failure).unwrap_or(State::Pending);
    let context = crate::forge::context(&row.pipeline, row.job_name.as_deref());
    let took = row.started_at.zip(row.finished_at).map(|(a, b)| b - a);
    let git_ref = row
        .git_ref
        .strip_prefix("refs/heads/")
        .or_else(|| row.git_ref.strip_prefix("refs/tags/"))
        .unwrap_or(&row.git_ref);
    let description = match (&row.run_error, state, &row.job_name) {
        (Some(reason), State::Skipped, None) => format!("skipped: {reason}"),
        _ => crate::forge::description(state, took),
    };
    Report {
        sha: row.sha.clone(),
        git_ref: (!git_ref.is_empty()).then(|| git_ref.to_string()),
        context,
        state,
        description,
        target_url: Some(format!(
            "{}/api/v1/runs/{}",
            app.public_url.trim_end_matches('/'),
            row.run_id
        )),
        pipeline_id: row.forge_pipeline,
    }
}

/// Stores how a send went and counts it.
async fn settle(app: &App, row: &DueReport, sent: Sent) {
    let max = app.config().reporting.max_attempts;
    match sent {
        Sent::Delivered => record(app, row, "delivered", None, None, true).await,
        Sent::Later(wait, why) => {
            let at = super::store::now_ms() + wait.as_millis() as i64;
            tracing::warn!(run_id = %row.run_id, wait_s = wait.as_secs(), "forge rate limit; waiting");
            record(app, row, "rate limited", Some(at), Some(&why), false).await;
        }
        Sent::Failed(why) if row.attempts + 1 >= max => {
            tracing::error!(run_id = %row.run_id, error = %why, "giving up reporting a status");
            record(app, row, "failed", None, Some(&why), true).await;
        }
        Sent::Failed(why) => {
            let at = super::store::now_ms() + backoff(app, row.attempts).as_millis() as i64;
            record(app, row, "retrying", Some(at), Some(&why), true).await;
        }
        Sent::Refused(why) => {
            tracing::error!(run_id = %row.run_id, error = %why, "the forge refused a status");
            record(app, row, "refused", None, Some(&why), true).await;
        }
    }
}

async fn record(
    app: &App,
    row: &DueReport,
    result: &str,
    retry_at: Option<i64>,
    error: Option<&str>,
    count_attempt: bool,
) {
    app.metrics.report(&row.forge, result);
    if let Err(e) = app
        .store
        .reported(row, result, retry_at, error, count_attempt)
        .await
    {
        // The claim runs out and the row is sent again: at least once.
        tracing::warn!(error = %e, "recording a report failed");
    }
}

/// Exponential backoff with jitter: base × 2^attempts, ±25 %, at most ten minutes.
fn backoff(app: &App, attempts: i64) -> Duration {
    let base = app.config().reporting.backoff_ms as f64;
    let raw = base * 2f64.powi(attempts.clamp(0, 20) as i32);
    let jitter = 0.75 + crate::token::random_unit() * 0.5;
    Duration::from_millis((raw * jitter).min(600_000.0) as u64)
}
