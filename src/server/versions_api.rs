//! The pipeline versions API: current versions (with `ETag`), history, diffs, sync,
//! rollback and unpin (`If-Match` → 412 when someone else changed the version first),
//! and each repository's schedules.

use super::App;
use super::api::{PageQuery, Reply, api_auth, error};
use super::config::Repo;
use super::store::Page;
use super::versions::{self, Outcome, SERVER_SCOPE};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;
use std::sync::Arc;

/// The repository named by the path (`owner/name`; nested GitLab groups URL-encoded).
/// The configured repository `owner/name` (case-insensitive, as the forges treat names).
pub(super) fn configured(app: &App, owner: &str, name: &str) -> Option<Repo> {
    let full = format!("{owner}/{name}");
    app.config()
        .repos
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(&full))
        .cloned()
}

fn repo(app: &App, owner: &str, name: &str) -> Result<Repo, super::api::ApiError> {
    configured(app, owner, name).ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            format!("repository `{owner}/{name}` is not configured"),
        )
    })
}

/// The caller holds an API token; the repository named and its versions' scope.
fn authorized(
    app: &App,
    headers: &HeaderMap,
    owner: &str,
    name: &str,
) -> Result<(Repo, String), super::api::ApiError> {
    api_auth(app, headers)?;
    let repo = repo(app, owner, name)?;
    let scope = versions::scope(&repo);
    Ok((repo, scope))
}

/// `If-Match: "<version_id>"` (quotes and a weak prefix allowed).
fn if_match(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::IF_MATCH)?.to_str().ok()?.trim();
    let value = value.strip_prefix("W/").unwrap_or(value);
    Some(value.trim_matches('"').to_string())
}

async fn current_of(app: &App, scope: &str) -> Reply {
    let current = app
        .store
        .current_version(scope)
        .await?
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "no version has been applied yet"))?;
    let last = app
        .store
        .version_history(
            scope,
            &Page {
                limit: 50,
                before: None,
            },
        )
        .await?
        .into_iter()
        .find(|h| h.status == "applied" && h.version_id == current.version_id);
    let etag = format!("\"{}\"", current.version_id);
    let body = crate::rest::CurrentVersion {
        scope: scope.to_string(),
        version_id: current.version_id,
        applied_at: current.applied_at,
        pinned: current.pinned,
        detected: current.detected,
        source: last.as_ref().map(|h| h.source.clone()),
        commit: last.as_ref().and_then(|h| h.commit.clone()),
        change_log: last.map_or(json!([]), |h| h.change_log),
    };
    Ok(([(header::ETAG, etag)], Json(body)).into_response())
}

#[utoipa::path(get, path = "/api/v1/version/current", summary = "the server's own version (config + pipeline directory): version_id (also the ETag), applied_at, source, change_log", responses((status = 200, description = "the current version", body = crate::rest::CurrentVersion), (status = 404, description = "none yet", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub(super) async fn server_current(State(app): State<Arc<App>>, headers: HeaderMap) -> Reply {
    api_auth(&app, &headers)?;
    current_of(&app, SERVER_SCOPE).await
}

#[utoipa::path(get, path = "/api/v1/version/history", summary = "the server's own version history, newest first", params(PageQuery), responses((status = 200, description = "a page of versions", body = crate::rest::VersionHistory), (status = 400, description = "a bad cursor or limit", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub(super) async fn server_history(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<PageQuery>,
) -> Reply {
    api_auth(&app, &headers)?;
    history_of(&app, SERVER_SCOPE, &q).await
}

async fn history_of(app: &App, scope: &str, q: &PageQuery) -> Reply {
    let page = q.page()?;
    let history = app.store.version_history(scope, &page).await?;
    let next = match history.last() {
        Some(last) if history.len() as i64 >= page.limit => Some(format!("{}.", last.id)),
        _ => None,
    };
    Ok(Json(crate::rest::VersionHistory {
        versions: history,
        next,
    })
    .into_response())
}

#[utoipa::path(get, path = "/api/v1/repos/{owner}/{name}/versions/current", summary = "the repository's current pipeline version (ETag: its id), whether a rollback pins it, and its change log", params(("owner" = String, Path, description = "the first part of the repository name"), ("name" = String, Path, description = "the rest of the repository name")), responses((status = 200, description = "the current version", body = crate::rest::CurrentVersion), (status = 404, description = "none yet", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub(super) async fn current(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
) -> Reply {
    let (_, scope) = authorized(&app, &headers, &owner, &name)?;
    current_of(&app, &scope).await
}

#[utoipa::path(get, path = "/api/v1/repos/{owner}/{name}/versions", summary = "the repository's version history, newest first: applied and rejected (with file:line:col errors) versions", params(("owner" = String, Path, description = "the first part of the repository name"), ("name" = String, Path, description = "the rest of the repository name"), PageQuery), responses((status = 200, description = "a page of versions", body = crate::rest::VersionHistory), (status = 404, description = "the repository is not configured", body = crate::rest::ErrorBody), (status = 400, description = "a bad cursor or limit", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub(super) async fn history(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<PageQuery>,
) -> Reply {
    let (_, scope) = authorized(&app, &headers, &owner, &name)?;
    history_of(&app, &scope, &q).await
}

#[utoipa::path(get, path = "/api/v1/repos/{owner}/{name}/versions/{a}/diff/{b}", summary = "what version b changes relative to version a", params(("owner" = String, Path, description = "the first part of the repository name"), ("name" = String, Path, description = "the rest of the repository name"), ("a" = String, Path, description = "a version id"), ("b" = String, Path, description = "a version id")), responses((status = 200, description = "the change log", body = crate::rest::VersionDiff), (status = 404, description = "no such version", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub(super) async fn diff(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((owner, name, a, b)): Path<(String, String, String, String)>,
) -> Reply {
    let (_, scope) = authorized(&app, &headers, &owner, &name)?;
    let mut both = Vec::new();
    for id in [&a, &b] {
        let definitions = versions::definitions(&app, &scope, id)
            .await
            .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?
            .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no version `{id}`")))?;
        both.push(definitions);
    }
    let changes = crate::versions::diff(&both[0], &both[1]);
    Ok(Json(crate::rest::VersionDiff {
        from: a,
        to: b,
        change_log: serde_json::to_value(changes).unwrap_or_default(),
    })
    .into_response())
}

/// An outcome as an answer: 412 for a lost compare-and-set, 422 for a rejected version.
fn answer(outcome: Result<Outcome, String>) -> Reply {
    let outcome = outcome.map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    let status = match &outcome {
        Outcome::Conflict { .. } => StatusCode::PRECONDITION_FAILED,
        Outcome::Rejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Outcome::Applied { .. } | Outcome::Unchanged { .. } => StatusCode::OK,
    };
    Ok((status, Json(outcome)).into_response())
}

#[utoipa::path(post, path = "/api/v1/repos/{owner}/{name}/sync", summary = "reads the default branch's pipeline definitions now; applies them when new and valid", params(("owner" = String, Path, description = "the first part of the repository name"), ("name" = String, Path, description = "the rest of the repository name")), responses((status = 200, description = "the outcome", body = crate::server::versions::Outcome), (status = 412, description = "If-Match is not the current version", body = crate::rest::ErrorBody), (status = 422, description = "the definitions do not validate", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub(super) async fn sync(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
) -> Reply {
    let (repo, _) = authorized(&app, &headers, &owner, &name)?;
    let expected = if_match(&headers);
    answer(versions::sync_repo(&app, &repo, None, "api", expected.as_deref()).await)
}

#[utoipa::path(post, path = "/api/v1/repos/{owner}/{name}/versions/{id}/rollback", summary = "makes a stored version current and pins scheduled and manual runs to it until the source shows a new version (or an unpin)", params(("owner" = String, Path, description = "the first part of the repository name"), ("name" = String, Path, description = "the rest of the repository name"), ("id" = String, Path, description = "the run (or runner, or version) id")), responses((status = 200, description = "the outcome", body = crate::server::versions::Outcome), (status = 412, description = "If-Match is not the current version", body = crate::rest::ErrorBody), (status = 422, description = "the version does not validate", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub(super) async fn rollback(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((owner, name, id)): Path<(String, String, String)>,
) -> Reply {
    let (_, scope) = authorized(&app, &headers, &owner, &name)?;
    let expected = if_match(&headers);
    answer(versions::rollback(&app, &scope, Some(&id), expected.as_deref()).await)
}

#[utoipa::path(post, path = "/api/v1/repos/{owner}/{name}/versions/unpin", summary = "ends a rollback: the version the source last showed becomes current again", params(("owner" = String, Path, description = "the first part of the repository name"), ("name" = String, Path, description = "the rest of the repository name")), responses((status = 200, description = "the outcome", body = crate::server::versions::Outcome), (status = 412, description = "If-Match is not the current version", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub(super) async fn unpin(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
) -> Reply {
    let (_, scope) = authorized(&app, &headers, &owner, &name)?;
    let expected = if_match(&headers);
    answer(versions::rollback(&app, &scope, None, expected.as_deref()).await)
}

#[derive(serde::Deserialize)]
pub(super) struct Upcoming {
    /// Start time (RFC 3339); default now.
    from: Option<String>,
    #[serde(default = "five")]
    count: usize,
}

fn five() -> usize {
    5
}

/// The repository's schedules (its current version's and its config's) with their next
/// fire times — the same as `tess schedule` computes — and the slots recorded lately.
#[utoipa::path(get, path = "/api/v1/repos/{owner}/{name}/schedules", summary = "the repository's schedules with their next fire times from `from` (RFC 3339, default now; `count`, default 5), and the slots recorded lately", params(("owner" = String, Path, description = "the first part of the repository name"), ("name" = String, Path, description = "the rest of the repository name")), responses((status = 200, description = "the schedules and slots", body = crate::rest::Schedules), (status = 400, description = "a bad `from`", body = crate::rest::ErrorBody), (status = 404, description = "the repository is not configured", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub(super) async fn schedules(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    axum::extract::Query(upcoming): axum::extract::Query<Upcoming>,
) -> Reply {
    let (repo, scope) = authorized(&app, &headers, &owner, &name)?;
    let from = match &upcoming.from {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|e| error(StatusCode::BAD_REQUEST, format!("`from`: {e}")))?
            .with_timezone(&chrono::Utc),
        None => chrono::Utc::now(),
    };
    Ok(Json(schedules_of(&app, &repo, &scope, from, upcoming.count).await?).into_response())
}

#[utoipa::path(post, path = "/api/v1/repos/{owner}/{name}/schedules/switch", summary = "switch a schedule on or off", params(("owner" = String, Path, description = "the first part of the repository name"), ("name" = String, Path, description = "the rest of the repository name")), request_body = crate::rest::ScheduleSwitch, responses((status = 200, description = "switched", body = crate::rest::ScheduleSwitch), (status = 404, description = "the repository is not configured or has no such schedule", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub(super) async fn switch_schedule(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    Json(switch): Json<crate::rest::ScheduleSwitch>,
) -> Reply {
    let (repo, scope) = authorized(&app, &headers, &owner, &name)?;
    switch_of(&app, &repo, &scope, &switch).await?;
    Ok(Json(switch).into_response())
}

/// The schedules of the repository's current version and of its config.
async fn current_schedules(
    app: &App,
    repo: &Repo,
    scope: &str,
) -> Result<Vec<super::scheduler::Schedule>, super::api::ApiError> {
    let definitions = versions::current_definitions(app, scope)
        .await
        .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e))?
        .map(|(_, d)| d)
        .unwrap_or_default();
    Ok(super::scheduler::schedules(repo, &definitions))
}

/// Switches one of the repository's schedules (`NotFound` for a key it does not have).
pub(super) async fn switch_of(
    app: &App,
    repo: &Repo,
    scope: &str,
    switch: &crate::rest::ScheduleSwitch,
) -> Result<(), super::api::ApiError> {
    let known: Vec<String> = current_schedules(app, repo, scope)
        .await?
        .into_iter()
        .map(|s| s.key)
        .collect();
    if !known.contains(&switch.schedule) {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!(
                "{} has no schedule `{}` (its schedules: {})",
                repo.name,
                switch.schedule,
                known.join(", ")
            ),
        ));
    }
    app.store
        .switch_schedule(scope, &switch.schedule, switch.enabled)
        .await?;
    tracing::info!(repo = %repo.name, schedule = %switch.schedule, enabled = switch.enabled, "schedule switched");
    Ok(())
}

/// A repository's schedules (its current version's and its config's) with their next
/// `count` fire times from `from`, and the slots recorded lately (the API's and the web
/// UI's answer).
pub(super) async fn schedules_of(
    app: &App,
    repo: &Repo,
    scope: &str,
    from: chrono::DateTime<chrono::Utc>,
    count: usize,
) -> Result<crate::rest::Schedules, super::api::ApiError> {
    let disabled = app.store.disabled_schedules(scope).await?;
    let list: Vec<crate::rest::Schedule> = current_schedules(app, repo, scope)
        .await?
        .iter()
        .map(|s| {
            let next: Vec<String> = s
                .cron
                .upcoming(from, s.timezone, count.min(100))
                .iter()
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .collect();
            let file = s.key.split('|').next().unwrap_or_default();
            crate::rest::Schedule {
                key: s.key.clone(),
                enabled: !disabled.contains(&s.key),
                file: if file == "config" { "tess.toml" } else { file }.to_string(),
                cron: s.cron.source.clone(),
                timezone: s.timezone.name().to_string(),
                git_ref: s.git_ref.clone(),
                next,
            }
        })
        .collect();
    let slots = app.store.slots(scope, 50).await?;
    Ok(crate::rest::Schedules {
        schedules: list,
        slots,
    })
}
