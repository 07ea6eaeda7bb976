//! Pipeline versions on the server: each repository's definitions on its default branch,
//! and the server's own config with its pipeline directory, are detected (webhook, API,
//! poll, file watch), validated, diffed and applied by compare-and-set, or rolled back.

use super::App;
use super::config::{Config, Repo};
use super::store::{Applied, CurrentVersion, NewVersion};
use crate::versions::{Change, Definitions, Rejected};
use serde_json::Value as Json;
use std::path::Path;
use std::sync::Arc;

/// The server's own version (config + pipeline directory).
pub const SERVER_SCOPE: &str = "server";

/// A repository's versions are kept under this scope.
pub fn scope(repo: &Repo) -> String {
    format!("{}:{}", repo.forge.as_str(), repo.name)
}

/// Whether a push that touched `changed` may have changed the pipeline definitions: a file
/// where pipelines live, or (GitLab, whose local includes can be anywhere) any YAML file.
pub fn may_change_definitions(forge: super::config::Forge, changed: &[String]) -> bool {
    let paths = super::planner::pipeline_paths(forge);
    changed.iter().any(|file| {
        paths
            .iter()
            .any(|p| file == p || file.starts_with(&format!("{p}/")))
            || (forge == super::config::Forge::Gitlab
                && (file.ends_with(".yml") || file.ends_with(".yaml")))
    })
}

/// What a sync, rollback or unpin came to.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    Applied {
        version_id: String,
        #[schema(value_type = Vec<Object>)]
        change_log: Vec<Change>,
    },
    /// The source shows the version already detected.
    Unchanged { version_id: String },
    /// The definitions did not validate; the current version stays.
    Rejected { version_id: String, errors: String },
    /// `If-Match` named another version than the current one.
    Conflict { current: Option<String> },
}

/// Reads `repo`'s definitions at `sha` (or the default branch's head, fetched: the mirror
/// fetches when no SHA is given). Blocking (git).
fn read_repo(repo: &Repo, data_dir: &Path, sha: Option<&str>) -> Result<Read, String> {
    let mirror = super::planner::mirror(repo, data_dir, sha)?;
    let sha = match sha {
        Some(sha) => sha.to_string(),
        None => {
            let head = format!("refs/heads/{}", repo.default_branch());
            super::planner::resolve(repo, &mirror, &head)?
        }
    };
    let tree = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    super::planner::pipeline_tree(&mirror, repo.forge, &sha, tree.path())?;
    let paths = super::planner::pipeline_paths(repo.forge);
    Ok(Read {
        definitions: Definitions::read(tree.path(), paths),
        commit: Some(sha),
    })
}

struct Read {
    definitions: Result<Definitions, Rejected>,
    commit: Option<String>,
}

/// The definitions of a stored version.
pub async fn definitions(app: &App, scope: &str, id: &str) -> Result<Option<Definitions>, String> {
    let text = app
        .store
        .version_definitions(scope, id)
        .await
        .map_err(|e| e.to_string())?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| format!("stored version {id}: {e}")))
        .transpose()
}

/// The current version's definitions of a scope, if it has one.
pub async fn current_definitions(
    app: &App,
    scope: &str,
) -> Result<Option<(CurrentVersion, Definitions)>, String> {
    let Some(current) = app
        .store
        .current_version(scope)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let definitions = definitions(app, scope, &current.version_id)
        .await?
        .unwrap_or_default();
    Ok(Some((current, definitions)))
}

/// Detects the repository's definitions at `sha` (default: its default branch's head)
/// and applies them when they are new and valid.
pub async fn sync_repo(
    app: &Arc<App>,
    repo: &Repo,
    sha: Option<String>,
    source: &str,
    if_match: Option<&str>,
) -> Result<Outcome, String> {
    let scope = scope(repo);
    let heads = || {
        app.synced_heads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    if let Some(sha) = &sha
        && heads().get(&scope) == Some(sha)
    {
        let current = app
            .store
            .current_version(&scope)
            .await
            .map_err(|e| e.to_string())?;
        let version_id = current.map(|c| c.detected).unwrap_or_default();
        return Ok(Outcome::Unchanged { version_id });
    }
    let (repo_owned, data_dir) = (repo.clone(), app.data_dir.clone());
    let read =
        tokio::task::spawn_blocking(move || read_repo(&repo_owned, &data_dir, sha.as_deref()))
            .await
            .map_err(|e| format!("reading the definitions panicked: {e}"))??;
    let commit = read.commit.clone();
    let (outcome, newly_rejected) = apply_read(app, &scope, read, source, if_match).await?;
    if let Some(sha) = &commit
        && !matches!(outcome, Outcome::Conflict { .. })
    {
        heads().insert(scope.clone(), sha.clone());
    }
    // A push (webhook or polled) gets its failed run from planning; a rejection found
    // otherwise gets one here, so the commit shows why (once per rejected version).
    if let (Outcome::Rejected { errors, .. }, true, Some(sha)) = (&outcome, newly_rejected, commit)
        && !matches!(source, "webhook" | "poll")
    {
        let mut event = crate::trigger::Event::new(
            crate::trigger::EventKind::Push,
            format!("refs/heads/{}", repo.default_branch()),
        );
        event.sha = Some(sha.clone());
        let json = serde_json::to_string(&event).map_err(|e| e.to_string())?;
        let files = super::planner::pipeline_paths(repo.forge).join(", ");
        let mut run =
            super::planner::new_run(repo, &event, &sha, json, "definitions".into(), files);
        run.error = Some(errors.clone());
        app.store
            .create_run(&run)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(outcome)
}

/// Validates, diffs and applies what a source showed. Compare-and-set: when another
/// replica moves the version in between, it is read again (and the change found already
/// applied) — unless the caller named the version it expects (`If-Match`). With the
/// outcome: whether it is a rejection not recorded before.
async fn apply_read(
    app: &App,
    scope: &str,
    read: Read,
    source: &str,
    if_match: Option<&str>,
) -> Result<(Outcome, bool), String> {
    let commit = read.commit.as_deref();
    let definitions = match read.definitions {
        Ok(d) => d,
        Err(rejected) => {
            let new = app
                .store
                .reject_version(scope, &rejected.id, source, commit, &rejected.errors)
                .await
                .map_err(|e| e.to_string())?;
            tracing::warn!(scope, source, version = %rejected.id, errors = %rejected.errors, "pipeline definitions rejected");
            let outcome = Outcome::Rejected {
                version_id: rejected.id,
                errors: rejected.errors,
            };
            return Ok((outcome, new));
        }
    };
    let id = definitions.id();
    let stored = serde_json::to_string(&definitions).map_err(|e| e.to_string())?;
    for _ in 0..3 {
        let current = app
            .store
            .current_version(scope)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(expected) = if_match
            && current.as_ref().map(|c| c.version_id.as_str()) != Some(expected)
        {
            let current = current.map(|c| c.version_id);
            return Ok((Outcome::Conflict { current }, false));
        }
        if current.as_ref().is_some_and(|c| c.detected == id) {
            return Ok((Outcome::Unchanged { version_id: id }, false));
        }
        // The current definitions are read only now that there is something to diff.
        let old = match &current {
            Some(c) => self::definitions(app, scope, &c.version_id)
                .await?
                .unwrap_or_default(),
            None => Definitions::default(),
        };
        let change_log = crate::versions::diff(&old, &definitions);
        let new = NewVersion {
            scope,
            version_id: &id,
            definitions: &stored,
            source,
            commit,
            change_log: &serde_json::to_string(&change_log).map_err(|e| e.to_string())?,
            pin: false,
            detected: true,
        };
        match app.store.apply_version(&new, current.as_ref()).await {
            Ok(Applied::Applied) => {
                tracing::info!(scope, version = %id, source, changes = change_log.len(), "pipeline version applied");
                let outcome = Outcome::Applied {
                    version_id: id,
                    change_log,
                };
                return Ok((outcome, false));
            }
            Ok(Applied::Conflict { current }) if if_match.is_some() => {
                return Ok((Outcome::Conflict { current }, false));
            }
            Ok(Applied::Conflict { .. }) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("the version kept changing under this update; try again".into())
}

/// Makes a stored version current again (`rollback`), or the version last detected
/// (`unpin`, `target` = `None`). A rollback pins scheduled and manual runs to it until
/// the source shows a new version.
pub async fn rollback(
    app: &App,
    scope: &str,
    target: Option<&str>,
    if_match: Option<&str>,
) -> Result<Outcome, String> {
    let Some((current, old)) = current_definitions(app, scope).await? else {
        return Err("no version has been applied yet".into());
    };
    if let Some(expected) = if_match
        && expected != current.version_id
    {
        return Ok(Outcome::Conflict {
            current: Some(current.version_id),
        });
    }
    let id = target.unwrap_or(&current.detected);
    let Some(definitions) = definitions(app, scope, id).await? else {
        return Err(format!("no version `{id}`"));
    };
    let change_log = crate::versions::diff(&old, &definitions);
    let new = NewVersion {
        scope,
        version_id: id,
        // Stored already (it was just read): the insert keeps the stored row.
        definitions: "",
        source: if target.is_some() { "rollback" } else { "api" },
        commit: None,
        change_log: &serde_json::to_string(&change_log).map_err(|e| e.to_string())?,
        pin: target.is_some() && id != current.detected,
        detected: false,
    };
    match app
        .store
        .apply_version(&new, Some(&current))
        .await
        .map_err(|e| e.to_string())?
    {
        Applied::Applied => Ok(Outcome::Applied {
            version_id: id.to_string(),
            change_log,
        }),
        Applied::Conflict { current } => Ok(Outcome::Conflict { current }),
    }
}

/// The server's own definitions: its config (normalized, secrets redacted) and the
/// pipelines of its pipeline directory, with the config to apply (none without a file, or
/// when they are rejected).
fn read_server(config_path: Option<&Path>) -> (Read, Option<Config>) {
    let (definitions, config) = match config_path.map(server_definitions) {
        Some(Ok((definitions, config))) => (Ok(definitions), Some(config)),
        Some(Err(rejected)) => (Err(rejected), None),
        None => (Ok(Definitions::default()), None),
    };
    let read = Read {
        definitions,
        commit: None,
    };
    (read, config)
}

fn server_definitions(path: &Path) -> Result<(Definitions, Config), Rejected> {
    let rejected = |errors: String, text: &str| Rejected {
        id: crate::versions::hash(text),
        errors,
        sources: Default::default(),
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| rejected(format!("{}: {e}", path.display()), ""))?;
    let config =
        Config::parse(&text, &path.display().to_string()).map_err(|e| rejected(e, &text))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut definitions = match &config.pipelines_dir {
        Some(dir) => Definitions::read(base, &[&dir.display().to_string()])?,
        None => Definitions::default(),
    };
    let normalized = toml::from_str::<Json>(&text).map_or(Json::Null, |v| redact(&v, false));
    definitions
        .files
        .insert("tess.toml".into(), crate::versions::canonical(&normalized));
    Ok((definitions, config))
}

/// Inline secrets of a config as `***` (the `{ env = … }` / `{ file = … }` forms stay:
/// they name where a secret is, not what).
fn redact(value: &Json, secret: bool) -> Json {
    const SECRETS: [&str; 6] = [
        "webhook_secret",
        "token",
        "private_key",
        "registration_token",
        "api_tokens",
        "secrets",
    ];
    match value {
        Json::String(_) if secret => Json::String("***".into()),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| {
                    let inner = secret || (SECRETS.contains(&k.as_str()) && !is_reference(v));
                    (k.clone(), redact(v, inner))
                })
                .collect(),
        ),
        Json::Array(items) => Json::Array(items.iter().map(|v| redact(v, secret)).collect()),
        other => other.clone(),
    }
}

fn is_reference(v: &Json) -> bool {
    v.get("env").is_some() || v.get("file").is_some()
}

/// Config keys read once at start: a change to them is recorded but takes a restart.
const RESTART_KEYS: [&str; 7] = [
    "listen",
    "database_url",
    "database_connections",
    "data_dir",
    "public_url",
    "api_tokens",
    "registration_token",
];

/// Detects the server's own version; a valid new config is applied at once (hot reload:
/// repositories, reporting, leases and schedules; [`RESTART_KEYS`] take a restart).
pub async fn sync_server(app: &App, source: &str) -> Result<Outcome, String> {
    let path = app.config_path.clone();
    let (read, config) = tokio::task::spawn_blocking(move || read_server(path.as_deref()))
        .await
        .map_err(|e| format!("reading the config panicked: {e}"))?;
    let (outcome, _) = apply_read(app, SERVER_SCOPE, read, source, None).await?;
    if let (Outcome::Applied { change_log, .. }, Some(config)) = (&outcome, config) {
        let restart: Vec<&str> = RESTART_KEYS
            .into_iter()
            .filter(|k| changed_config_key(change_log, k))
            .collect();
        if !restart.is_empty() {
            tracing::warn!(fields = ?restart, "config changes that take a restart");
        }
        app.set_config(config);
    }
    Ok(outcome)
}

fn changed_config_key(change_log: &[Change], key: &str) -> bool {
    change_log
        .iter()
        .any(|c| c.pipeline == "tess.toml" && c.fields.iter().any(|f| f == key))
}
