//! Change detection without webhooks: every repository is read once at start, and polled
//! (`git ls-remote`) when configured to be — a new head is a push, planned like a webhook's;
//! the config file and the server's pipeline directory are watched (`notify`), hot-reloaded.

use super::App;
use super::versions::{Outcome, sync_repo, sync_server};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The server's version first, then each repository's; then polling.
pub(super) async fn run(app: Arc<App>) {
    log("server", "startup", sync_server(&app, "startup").await);
    let config = app.config();
    // A polled repository is read by its first poll (which knows the head it saw).
    for repo in config.repos.iter().filter(|r| r.poll_seconds.is_none()) {
        log(
            &repo.name,
            "startup",
            sync_repo(&app, repo, None, "startup", None).await,
        );
    }
    tracing::info!(repos = config.repos.len(), "definitions: startup done");
    poll(app).await;
}

/// Logs a sync that could not read the definitions (a rejection is logged where it is
/// recorded).
pub(super) fn log(what: &str, source: &str, outcome: Result<Outcome, String>) {
    if let Err(e) = outcome {
        tracing::warn!(what, source, error = %e, "cannot read pipeline definitions");
    }
}

/// Polls the repositories that ask for it: a new head of the default branch is synced.
async fn poll(app: Arc<App>) {
    let mut next: HashMap<String, Instant> = HashMap::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let config = app.config();
        for repo in &config.repos {
            let Some(every) = repo.poll_seconds else {
                continue;
            };
            let key = super::versions::scope(repo);
            let due = next.get(&key).is_none_or(|at| Instant::now() >= *at);
            if !due {
                continue;
            }
            next.insert(
                key.clone(),
                Instant::now() + Duration::from_secs(every.max(1)),
            );
            let (url, head) = (
                repo.clone_url.clone(),
                format!("refs/heads/{}", repo.default_branch()),
            );
            let listed = tokio::task::spawn_blocking(move || {
                let remote = crate::git::Remote::parse(&url);
                crate::git::run_remote(
                    std::path::Path::new("."),
                    &remote,
                    &["ls-remote", &remote.url, &head],
                )
            })
            .await;
            let sha = match listed {
                Ok(Ok(out)) => out.split_whitespace().next().map(String::from),
                Ok(Err(e)) => {
                    tracing::warn!(repo = %repo.name, error = %e, "polling failed");
                    continue;
                }
                Err(_) => continue,
            };
            let Some(sha) = sha else {
                continue;
            };
            match seen.get(&key) {
                Some(before) if *before == sha => {}
                // A new head: a push, as a webhook would have told (runs, statuses and the
                // new version all follow from planning it).
                Some(before) => {
                    if push_found(&app, repo, before, &sha).await {
                        seen.insert(key, sha);
                    }
                }
                None => {
                    let outcome = sync_repo(&app, repo, Some(sha.clone()), "poll", None).await;
                    if outcome.is_ok() {
                        seen.insert(key, sha);
                    }
                    log(&repo.name, "poll", outcome);
                }
            }
        }
    }
}

/// Records a push found by polling as a delivery (in the forge's own payload form) and
/// hands it to the planner; `false` when it could not be recorded.
async fn push_found(app: &App, repo: &super::config::Repo, before: &str, sha: &str) -> bool {
    use super::config::Forge;
    let head = format!("refs/heads/{}", repo.default_branch());
    let (event, payload) = match repo.forge {
        Forge::Github => (
            "push",
            serde_json::json!({"ref": head, "before": before, "after": sha, "created": false,
                "deleted": false, "repository": {"full_name": repo.name}}),
        ),
        Forge::Gitlab => (
            "Push Hook",
            serde_json::json!({"object_kind": "push", "ref": head, "before": before,
                "after": sha, "checkout_sha": sha,
                "project": {"path_with_namespace": repo.name}}),
        ),
    };
    let id = format!("{POLLED}{}:{}:{sha}", repo.forge.as_str(), repo.name);
    let record = super::store::Delivery {
        id: &id,
        forge: repo.forge.as_str(),
        event,
        repo: Some(&repo.name),
        status: "received",
        reason: Some("found by polling"),
        payload: &payload.to_string(),
    };
    match app.store.insert_delivery(&record).await {
        Ok(inserted) => {
            if inserted {
                app.metrics.delivery("polled");
                let _ = app.planner.send(id);
            }
            true
        }
        Err(e) => {
            tracing::warn!(repo = %repo.name, error = %e, "cannot record a polled push");
            false
        }
    }
}

/// Deliveries made by polling have ids starting with this.
pub(super) const POLLED: &str = "poll:";

/// Watches the config file and the pipeline directory; a change (after 200 ms of quiet,
/// as editors write in several steps) becomes a new server version.
pub(super) fn watch(app: Arc<App>) -> Result<(), String> {
    use notify::{RecursiveMode, Watcher};
    let Some(config_path) = app.config_path.clone() else {
        return Ok(());
    };
    let config_path = config_path
        .canonicalize()
        .map_err(|e| format!("{}: {e}", config_path.display()))?;
    let base = config_path.parent().map(PathBuf::from).unwrap_or_default();
    let pipelines = app.config().pipelines_dir.as_ref().map(|d| base.join(d));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watched = {
        let (config_path, pipelines) = (config_path.clone(), pipelines.clone());
        move |path: &std::path::Path| {
            path == config_path || pipelines.as_ref().is_some_and(|p| path.starts_with(p))
        }
    };
    // Polled (the paths are stat'ed twice a second, the config compared by content), not
    // inotify: the config's directory usually holds the SQLite database too, whose every
    // write would otherwise wake the watcher. Polling by path also sees an editor's
    // rename-over.
    let settings = notify::Config::default()
        .with_poll_interval(Duration::from_millis(500))
        .with_compare_contents(true);
    let handler = move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && event.paths.iter().any(|p| watched(p))
        {
            let _ = tx.send(());
        }
    };
    let mut watcher =
        notify::PollWatcher::new(handler, settings).map_err(|e| format!("file watch: {e}"))?;
    watcher
        .watch(&config_path, RecursiveMode::NonRecursive)
        .map_err(|e| format!("watching {}: {e}", config_path.display()))?;
    if let Some(dir) = pipelines.filter(|d| d.is_dir()) {
        watcher
            .watch(&dir, RecursiveMode::Recursive)
            .map_err(|e| format!("watching {}: {e}", dir.display()))?;
    }
    tokio::spawn(async move {
        let _watcher = watcher;
        while rx.recv().await.is_some() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            while rx.try_recv().is_ok() {}
            let before = app.config();
            log(
                "server",
                "file-watch",
                sync_server(&app, "file-watch").await,
            );
            // A repository the new config adds is read now, as at start.
            let config = app.config();
            for repo in config.repos.iter().filter(|r| r.poll_seconds.is_none()) {
                if before.repo(repo.forge, &repo.name).is_none() {
                    log(
                        &repo.name,
                        "config",
                        sync_repo(&app, repo, None, "config", None).await,
                    );
                }
            }
        }
    });
    Ok(())
}
