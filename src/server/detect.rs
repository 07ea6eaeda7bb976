//! Change detection without webhooks: every repository is read once at start, then polled
//! (`git ls-remote`) when configured to be; the config file and the server's pipeline
//! directory are watched (`notify`) and hot-reloaded.

use super::App;
use super::versions::{Outcome, sync_repo, sync_server};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The server's version first, then each repository's; then polling.
pub async fn run(app: Arc<App>) {
    log("server", "startup", sync_server(&app, "startup").await);
    let config = app.config();
    for repo in &config.repos {
        log(
            &repo.name,
            "startup",
            sync_repo(&app, repo, None, "startup", None).await,
        );
    }
    tracing::info!(repos = config.repos.len(), "definitions: startup done");
    poll(app).await;
}

fn log(what: &str, source: &str, outcome: Result<Outcome, String>) {
    match outcome {
        Ok(Outcome::Rejected { errors, .. }) => {
            tracing::warn!(what, source, %errors, "pipeline definitions rejected");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(what, source, error = %e, "cannot read pipeline definitions"),
    }
}

/// Polls the repositories that ask for it: a new head of the default branch is synced.
async fn poll(app: Arc<App>) {
    let mut next: HashMap<String, Instant> = HashMap::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let config = app.config();
        for repo in config.repos.iter() {
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
                crate::git::run(std::path::Path::new("."), &["ls-remote", &url, &head])
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
            if seen.get(&key) == Some(&sha) {
                continue;
            }
            let outcome = sync_repo(&app, repo, Some(sha.clone()), "poll", None).await;
            if outcome.is_ok() {
                seen.insert(key, sha);
            }
            log(&repo.name, "poll", outcome);
        }
    }
}

/// Watches the config file and the pipeline directory; a change (after 200 ms of quiet,
/// as editors write in several steps) becomes a new server version.
pub fn watch(app: Arc<App>) -> Result<(), String> {
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
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && event.paths.iter().any(|p| watched(p))
        {
            let _ = tx.send(());
        }
    })
    .map_err(|e| format!("file watch: {e}"))?;
    // The directory, not the file: editors replace files by renaming over them.
    watcher
        .watch(&base, RecursiveMode::NonRecursive)
        .map_err(|e| format!("watching {}: {e}", base.display()))?;
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
            log(
                "server",
                "file-watch",
                sync_server(&app, "file-watch").await,
            );
        }
    });
    Ok(())
}
