//! The HTTP API: the runner protocol (`/api/v1/runner/…`, runner tokens) and the REST API
//! for people and tools (`/api/v1/…`, API tokens). No token, no data.

use super::App;
use super::store::{Claimed, NextClaim, Page, StoreError, now_ms};
use crate::protocol::{
    Complete, HeartbeatResponse, JobRef, Lease, LogChunk, PollRequest, RegisterRequest,
    RegisterResponse,
};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub(super) type Reply = Result<Response, ApiError>;

/// An error answer: a status and a message, sent as `{"error": "…"}`.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(crate::rest::ErrorBody { error: self.1 })).into_response()
    }
}

pub(super) fn error(status: StatusCode, message: impl std::fmt::Display) -> ApiError {
    ApiError(status, message.to_string())
}

/// So handlers use `?` on the store: a conflict is 409, a missing row 404, and a failing
/// database 503 (its message logged, not sent).
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Conflict(m) => error(StatusCode::CONFLICT, m),
            gap @ StoreError::LogGap { .. } => error(StatusCode::CONFLICT, gap.to_string()),
            StoreError::NotFound(m) => error(StatusCode::NOT_FOUND, m),
            StoreError::Invalid(m) => error(StatusCode::UNPROCESSABLE_ENTITY, m),
            StoreError::Db(m) => {
                tracing::error!(error = %m, "storage error");
                error(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable")
            }
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Checks an API token (write and read endpoints alike).
pub(super) fn api_auth(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = bearer(headers).unwrap_or_default();
    let ok = !given.is_empty()
        && app
            .api_tokens
            .iter()
            .any(|t| super::hooks::constant_time_eq(t.as_bytes(), given.as_bytes()));
    if ok {
        Ok(())
    } else {
        Err(error(StatusCode::UNAUTHORIZED, "an API token is required"))
    }
}

/// The runner a runner token belongs to.
async fn runner_auth(app: &App, headers: &HeaderMap) -> Result<String, ApiError> {
    let token = bearer(headers).unwrap_or_default();
    if token.is_empty() {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "a runner token is required",
        ));
    }
    // Tokens never change: each is looked up (by hash) once per server process.
    let hash = crate::token::sha256_hex(token.as_bytes());
    if let Some(id) = app
        .runner_ids
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&hash)
    {
        return Ok(id.clone());
    }
    match app.store.runner_by_token(token).await {
        Ok(Some(id)) => {
            let mut known = app
                .runner_ids
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            known.insert(hash, id.clone());
            Ok(id)
        }
        Ok(_) => Err(error(
            StatusCode::UNAUTHORIZED,
            "a runner token is required",
        )),
        Err(e) => Err(e.into()),
    }
}

// ---- runner protocol ----

#[utoipa::path(post, path = "/api/v1/runner/register", summary = "register a runner (with the registration token)", request_body = crate::protocol::RegisterRequest, responses((status = 200, description = "its id and token", body = crate::protocol::RegisterResponse), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)))]
pub async fn register(State(app): State<Arc<App>>, Json(req): Json<RegisterRequest>) -> Reply {
    let ok = app.registration_token.as_deref().is_some_and(|t| {
        super::hooks::constant_time_eq(t.as_bytes(), req.registration_token.as_bytes())
    });
    if !ok {
        return Err(error(StatusCode::UNAUTHORIZED, "bad registration token"));
    }
    let (runner_id, token) = app
        .store
        .register_runner(&req.name, &req.labels, &req.version)
        .await?;
    tracing::info!(runner = %runner_id, name = %req.name, "runner registered");
    Ok(Json(RegisterResponse { runner_id, token }).into_response())
}

/// Long-poll: a lease as soon as a matching job is queued, 204 after `wait_seconds`.
#[utoipa::path(post, path = "/api/v1/runner/poll", summary = "long-poll for a job", request_body = crate::protocol::PollRequest, responses((status = 200, description = "a lease", body = crate::protocol::Lease), (status = 204, description = "nothing queued for this runner within the wait"), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("runner" = [])))]
pub async fn poll(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Json(req): Json<PollRequest>,
) -> Reply {
    let runner = runner_auth(&app, &headers).await?;
    let now = now_ms();
    if app
        .presence
        .polled(&runner, now, req.free_slots, req.load.cpu, &req.version)
    {
        let draining = app
            .store
            .runner_seen(
                &runner,
                &req.labels,
                req.free_slots,
                &req.load,
                &req.version,
            )
            .await?;
        app.presence.set_draining(&runner, draining);
    }
    if app.presence.draining(&runner) || req.free_slots == 0 {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let wait = Duration::from_secs(req.wait_seconds.unwrap_or(30).min(30));
    let deadline = tokio::time::Instant::now() + wait;
    let next = NextClaim {
        runner_id: &runner,
        labels: &req.labels,
        ttl_ms: app.config().lease.ttl_seconds as i64 * 1000,
    };
    // Prefer the least-loaded runner: when another runner that is polling right now has
    // more free slots and a lighter host, this one gives it a head start.
    if app
        .presence
        .lighter_than(&runner, now, req.free_slots, req.load.cpu)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    loop {
        // Registered before looking, so a job queued in between still wakes us.
        let queued = app.queued.notified();
        if let Some(lease) = take_job(&app, &next).await? {
            return Ok(Json(lease).into_response());
        }
        // Other replicas queue jobs too: look again at least every half second.
        let nap = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .min(Duration::from_millis(500));
        if nap.is_zero() {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        tokio::select! {
            _ = queued => {}
            _ = tokio::time::sleep(nap) => {}
        }
    }
}

/// A lease of the first queued job the runner's labels allow, if there is one.
async fn take_job(app: &App, next: &NextClaim<'_>) -> Result<Option<Lease>, ApiError> {
    Ok(app
        .store
        .claim(next)
        .await?
        .map(|claimed| leased(app, next.runner_id, claimed)))
}

/// The lease of a job just claimed by `runner`.
fn leased(app: &App, runner: &str, claimed: Claimed) -> Lease {
    app.metrics
        .queue_wait((now_ms() - claimed.queued_at).max(0) as f64 / 1000.0);
    tracing::info!(run_id = %claimed.run_id, job = %claimed.job_key, attempt = claimed.attempt, runner = %runner, "job leased");
    app.lease(claimed)
}

#[utoipa::path(post, path = "/api/v1/runner/heartbeat", summary = "extend a lease; says whether to cancel or drain", request_body = crate::protocol::JobRef, responses((status = 200, description = "extended", body = crate::protocol::HeartbeatResponse), (status = 409, description = "the lease is no longer this attempt's", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("runner" = [])))]
pub async fn heartbeat(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Json(job): Json<JobRef>,
) -> Reply {
    let runner = runner_auth(&app, &headers).await?;
    let ttl_ms = app.config().lease.ttl_seconds as i64 * 1000;
    let cancel = app.store.heartbeat(&job, ttl_ms).await?;
    let drain = app.presence.draining(&runner);
    Ok(Json(HeartbeatResponse { cancel, drain }).into_response())
}

#[utoipa::path(post, path = "/api/v1/runner/logs", summary = "append log bytes at an offset (idempotent; gaps refused)", request_body = crate::protocol::LogChunk, responses((status = 200, description = "the stored length", body = crate::protocol::LogAck), (status = 409, description = "a stale attempt or a gap", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("runner" = [])))]
pub async fn logs(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Json(chunk): Json<LogChunk>,
) -> Reply {
    runner_auth(&app, &headers).await?;
    match app.store.append_log(&chunk).await {
        Ok(length) => {
            app.logs.grew(&chunk.job.run_id, &chunk.job.job_key);
            Ok(Json(crate::protocol::LogAck { length }).into_response())
        }
        // The runner learns where the stored log ends and goes on from there at once.
        Err(gap @ StoreError::LogGap { stored, .. }) => Ok((
            StatusCode::CONFLICT,
            Json(json!({"error": gap.to_string(), "length": stored})),
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(post, path = "/api/v1/runner/complete", summary = "report an attempt's result (idempotent, fenced)", request_body = crate::protocol::Complete, responses((status = 200, description = "stored; the slot's next lease when it asked and one is queued", body = crate::protocol::CompleteReply), (status = 409, description = "a stale attempt", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("runner" = [])))]
pub async fn complete(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Json(done): Json<Complete>,
) -> Reply {
    let runner = runner_auth(&app, &headers).await?;
    let ttl_ms = app.config().lease.ttl_seconds as i64 * 1000;
    let wanted = done
        .next
        .as_ref()
        .filter(|next| next.free_slots > 0 && !app.presence.draining(&runner))
        .map(|next| NextClaim {
            runner_id: &runner,
            labels: &next.labels,
            ttl_ms,
        });
    let completed = app.store.complete(&done, wanted.as_ref()).await?;
    app.logs.grew(&done.job.run_id, &done.job.job_key);
    tracing::info!(run_id = %done.job.run_id, job = %done.job.job_key, result = done.result.as_str(), "job completed");
    if let Some(ms) = completed.duration {
        app.metrics.job_duration(ms.max(0) as f64 / 1000.0);
        app.metrics.job_finished(done.result.as_str());
    }
    // Wake the long-polling runners only when there is something new for them.
    if completed.queued > 0 {
        app.queued.notify_waiters();
    }
    let next = match (completed.next, &wanted) {
        (Some(claimed), _) => claimed.map(|claimed| leased(&app, &runner, claimed)),
        (None, Some(next)) => take_job(&app, next).await?,
        (None, None) => None,
    };
    Ok(Json(crate::protocol::CompleteReply { next }).into_response())
}

// ---- REST API ----

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunFilter {
    repo: Option<String>,
    status: Option<String>,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    // Not `#[serde(flatten)]` of a `PageQuery`: flattened fields lose their types in a
    // query string.
    limit: Option<i64>,
    before: Option<String>,
}

/// `?limit=N&before=CURSOR` on every list; the answer's `next` is the cursor of the next
/// page (`null` on the last one).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    limit: Option<i64>,
    before: Option<String>,
}

impl PageQuery {
    pub(super) fn page(&self) -> Result<Page, ApiError> {
        let before = match &self.before {
            None => None,
            Some(cursor) => {
                let parsed = cursor
                    .split_once('.')
                    .and_then(|(key, id)| Some((key.parse().ok()?, id.to_string())));
                Some(parsed.ok_or_else(|| {
                    error(
                        StatusCode::BAD_REQUEST,
                        format!("`before={cursor}` is not a cursor from a `next` field"),
                    )
                })?)
            }
        };
        Ok(Page {
            limit: self.limit.unwrap_or(100).clamp(1, 1000),
            before,
        })
    }
}

/// The cursor after the last of `rows` (sorted by `key`, then id) when the page is full.
fn next_cursor<T>(rows: &[T], page: &Page, key: impl Fn(&T) -> (i64, &str)) -> Option<String> {
    match rows.last() {
        Some(last) if rows.len() as i64 >= page.limit => {
            let (sort, id) = key(last);
            Some(format!("{sort}.{id}"))
        }
        _ => None,
    }
}

#[utoipa::path(get, path = "/api/v1/runs", summary = "list runs, newest first", params(RunFilter), responses((status = 200, description = "a page of runs", body = crate::rest::RunList), (status = 400, description = "a bad cursor or limit", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub async fn list_runs(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(f): Query<RunFilter>,
) -> Reply {
    api_auth(&app, &headers)?;
    let page = PageQuery {
        limit: f.limit,
        before: f.before.clone(),
    }
    .page()?;
    let runs = app
        .store
        .runs(
            f.repo.as_deref(),
            f.status.as_deref(),
            f.git_ref.as_deref(),
            &page,
            None,
        )
        .await?;
    let next = next_cursor(&runs, &page, |r| (r.created_at, r.id.as_str()));
    Ok(Json(crate::rest::RunList { runs, next }).into_response())
}

#[utoipa::path(get, path = "/api/v1/runs/{id}", summary = "a run with its jobs", params(("id" = String, Path, description = "the run (or runner, or version) id")), responses((status = 200, description = "the run", body = crate::rest::RunDetail), (status = 404, description = "no such run", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub async fn show_run(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    api_auth(&app, &headers)?;
    let mut run = app
        .store
        .run(&id)
        .await?
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no run `{id}`")))?;
    // Say at once when no registered runner can ever take a queued job.
    let runners = app.store.runners(&Page::ALL).await?;
    {
        for job in run.jobs.iter_mut().filter(|j| j.state == "queued") {
            let labels = &job.labels;
            if !runners
                .iter()
                .any(|r| super::store::labels_match(labels, &r.labels))
            {
                let reason = if labels.iter().any(|l| l == crate::runner::CONTAINER) {
                    format!(
                        "no registered runner runs container jobs with the labels [{}] \
                         (a runner serves `{}` when its Docker API answers: DOCKER_HOST, \
                         --executor auto|container)",
                        labels.join(", "),
                        crate::runner::CONTAINER
                    )
                } else if *labels == [crate::runner::UNTAGGED] {
                    "no registered runner takes jobs without tags (tess runner --run-untagged true)"
                        .to_string()
                } else {
                    format!(
                        "no registered runner has the labels [{}] (tess runner --labels …; \
                         GitHub-hosted names with --hosted-labels)",
                        labels.join(", ")
                    )
                };
                job.waiting_reason = Some(reason);
            }
        }
    }
    Ok(Json(run).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    offset: Option<u64>,
    follow: Option<u8>,
}

/// A job's log from `offset` as Server-Sent Events: an event with what `render` makes of
/// each new piece of text (told when it is the last; an empty result sends nothing), then
/// an `end` event with the final state once the job has finished. The store is read again
/// when the runner uploads to this replica, and every half second (uploads to others). `?follow=1` sends the text as it is; the web UI its
/// HTML.
pub(super) fn follow_log(
    app: Arc<App>,
    run: String,
    job: String,
    offset: u64,
    render: impl FnMut(&str, bool) -> String + Send + 'static,
) -> Response {
    // Uploads to another replica are seen within this.
    const POLL: Duration = Duration::from_millis(500);
    use axum::response::sse::{Event, KeepAlive, Sse};
    let state = (app, offset, render, false);
    let stream =
        futures_util::stream::unfold(state, move |(app, mut offset, mut render, ended)| {
            let (run, job) = (run.clone(), job.clone());
            async move {
                if ended {
                    return None;
                }
                let grew = app.logs.watch(&run, &job);
                loop {
                    // Registered before reading, so an upload in between still wakes us.
                    let woken = grew.notified();
                    let Ok(Some((text, _, finished))) = app.store.log(&run, &job, offset).await
                    else {
                        let end = Event::default().event("end").data("gone");
                        return Some((
                            Ok::<_, std::convert::Infallible>(end),
                            (app, offset, render, true),
                        ));
                    };
                    offset += text.len() as u64;
                    let data = render(&text, finished);
                    if !data.is_empty() {
                        let event = Event::default().id(offset.to_string()).data(data);
                        return Some((Ok(event), (app, offset, render, false)));
                    }
                    if finished {
                        let end = Event::default().event("end").data("finished");
                        return Some((Ok(end), (app, offset, render, true)));
                    }
                    tokio::select! {
                        () = woken => {}
                        () = tokio::time::sleep(POLL) => {}
                    }
                }
            }
        });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[utoipa::path(get, path = "/api/v1/runs/{id}/jobs/{key}/log", summary = "a job's log (follow=1: Server-Sent Events until the job ends)", params(("id" = String, Path, description = "the run (or runner, or version) id"), ("key" = String, Path, description = "the job's key"), LogQuery), responses((status = 200, description = "the log from `offset` (text), or an event stream"), (status = 404, description = "no such job", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub async fn job_log(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((id, key)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Reply {
    api_auth(&app, &headers)?;
    let (text, attempt, finished) = app
        .store
        .log(&id, &key, q.offset.unwrap_or(0))
        .await?
        .ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                format!("no job `{key}` in run `{id}`"),
            )
        })?;
    if q.follow == Some(1) {
        let raw = |text: &str, _: bool| text.to_string();
        return Ok(follow_log(app, id, key, q.offset.unwrap_or(0), raw));
    }
    let mut response = text.into_response();
    let h = response.headers_mut();
    h.insert("x-tess-attempt", attempt.into());
    h.insert("x-tess-finished", (finished as i64).into());
    Ok(response)
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", summary = "cancel a run", params(("id" = String, Path, description = "the run (or runner, or version) id")), responses((status = 200, description = "cancel requested", body = crate::rest::CancelRequested), (status = 409, description = "the run is not running", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub async fn cancel_run(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    api_auth(&app, &headers)?;
    let cancelled = app.store.cancel_run(&id).await?;
    if !cancelled {
        return Err(error(
            StatusCode::CONFLICT,
            format!("run `{id}` is not running"),
        ));
    }
    Ok(Json(crate::rest::CancelRequested {
        id,
        cancel_requested: true,
    })
    .into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RerunQuery {
    failed: Option<u8>,
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/rerun", summary = "run again (failed=1: only failed jobs and their dependents)", params(("id" = String, Path, description = "the run (or runner, or version) id"), RerunQuery), responses((status = 201, description = "the new run", body = crate::rest::Rerun), (status = 404, description = "no such run", body = crate::rest::ErrorBody), (status = 409, description = "nothing to run again", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub async fn rerun(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<RerunQuery>,
) -> Reply {
    api_auth(&app, &headers)?;
    let new_id = app.store.rerun(&id, q.failed == Some(1)).await?;
    app.queued.notify_waiters();
    Ok((
        StatusCode::CREATED,
        Json(crate::rest::Rerun {
            id: new_id,
            rerun_of: id,
        }),
    )
        .into_response())
}

/// A manual run (`workflow_dispatch` / GitLab `web`), planned before the answer.
#[utoipa::path(post, path = "/api/v1/runs", summary = "start a manual run", request_body = crate::rest::ManualRun, responses((status = 201, description = "the runs it started", body = crate::rest::ManualRunStarted), (status = 404, description = "the repository is not configured", body = crate::rest::ErrorBody), (status = 422, description = "the pipeline does not plan", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub async fn create_run(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Json(req): Json<crate::rest::ManualRun>,
) -> Reply {
    api_auth(&app, &headers)?;
    let repo = app
        .config()
        .repos
        .iter()
        .find(|r| r.name == req.repo)
        .cloned()
        .ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                format!("repository `{}` is not configured", req.repo),
            )
        })?;
    let is_tag = req.git_ref.starts_with("refs/tags/");
    let mut event = crate::trigger::Event::new(
        crate::trigger::EventKind::Manual,
        crate::trigger::Event::full_ref(is_tag, &req.git_ref),
    );
    event.inputs = req.inputs;
    let trigger = crate::forge::payload::Trigger {
        repo: repo.name.clone(),
        event,
        before: None,
        base: None,
    };
    // A rollback pins manual runs to its version.
    let scope = super::versions::scope(&repo);
    let pinned = match super::versions::current_definitions(&app, &scope).await {
        Ok(Some((current, definitions))) if current.pinned => Some(definitions),
        Ok(_) => None,
        Err(e) => return Err(error(StatusCode::SERVICE_UNAVAILABLE, e)),
    };
    let planned = super::plan_off_thread(&app, &repo, trigger, pinned)
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?
        .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    for run in &planned.runs {
        app.store.create_run(run).await?;
    }
    app.queued.notify_waiters();
    Ok((
        StatusCode::CREATED,
        Json(crate::rest::ManualRunStarted {
            runs: planned.runs.iter().map(|r| r.id.clone()).collect(),
            not_started: planned.reasons,
        }),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/runners", summary = "registered runners (online, outdated)", params(PageQuery), responses((status = 200, description = "a page of runners", body = crate::rest::RunnerList), (status = 400, description = "a bad cursor or limit", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub async fn list_runners(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Reply {
    api_auth(&app, &headers)?;
    let page = q.page()?;
    let runners = app.store.runners(&page).await?;
    let runners: Vec<crate::rest::Runner> = runners
        .into_iter()
        .map(|r| crate::rest::Runner {
            online: app.runner_online(r.last_seen),
            outdated: r.version != env!("CARGO_PKG_VERSION"),
            registered: r,
        })
        .collect();
    // Runners are listed by id alone: the cursor's sort key is 0.
    let next = next_cursor(&runners, &page, |r| (0, r.registered.id.as_str()));
    Ok(Json(crate::rest::RunnerList { runners, next }).into_response())
}

#[utoipa::path(post, path = "/api/v1/runners/{id}/drain", summary = "ask a runner to drain (it finishes its jobs and takes no new one)", params(("id" = String, Path, description = "the runner id")), responses((status = 200, description = "draining", body = crate::rest::Draining), (status = 404, description = "no such runner", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub async fn drain_runner(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    api_auth(&app, &headers)?;
    Ok(Json(app.drain(&id, true).await?).into_response())
}

#[utoipa::path(post, path = "/api/v1/runners/{id}/resume", summary = "a drained runner takes jobs again", params(("id" = String, Path, description = "the runner id")), responses((status = 200, description = "resumed", body = crate::rest::Draining), (status = 404, description = "no such runner", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub async fn resume_runner(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    api_auth(&app, &headers)?;
    Ok(Json(app.drain(&id, false).await?).into_response())
}

impl App {
    /// Drains or resumes a runner, in the store and in this replica's presence.
    pub(super) async fn drain(
        &self,
        id: &str,
        draining: bool,
    ) -> Result<crate::rest::Draining, ApiError> {
        if !self.store.set_draining(id, draining).await? {
            return Err(error(StatusCode::NOT_FOUND, format!("no runner `{id}`")));
        }
        self.presence.set_draining(id, draining);
        Ok(crate::rest::Draining {
            id: id.to_string(),
            draining,
        })
    }
}

#[utoipa::path(get, path = "/api/v1/deliveries", summary = "webhook deliveries with status and reason", params(PageQuery), responses((status = 200, description = "a page of deliveries", body = crate::rest::DeliveryList), (status = 400, description = "a bad cursor or limit", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub async fn deliveries(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Reply {
    api_auth(&app, &headers)?;
    let page = q.page()?;
    let list = app.store.deliveries(&page).await?;
    let next = next_cursor(&list, &page, |d| (d.received_at, d.id.as_str()));
    Ok(Json(crate::rest::DeliveryList {
        deliveries: list,
        next,
    })
    .into_response())
}

/// The API described for tools (OpenAPI 3.1).
#[utoipa::path(get, path = "/api/v1/openapi.json", summary = "this document (OpenAPI 3.1, generated from the handlers and their types)", responses((status = 200, description = "the document")))]
pub async fn openapi() -> Response {
    (
        [("content-type", "application/json")],
        super::openapi::document(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/healthz", summary = "liveness", responses((status = 200, description = "the process answers")))]
pub async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/readyz", summary = "readiness: a write to the database commits", responses((status = 200, description = "ready"), (status = 503, description = "the database does not take a write", body = crate::rest::ErrorBody)))]
pub async fn readyz(State(app): State<Arc<App>>) -> Reply {
    app.store
        .ping()
        .await
        .map_err(|_| error(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable"))?;
    Ok("ready".into_response())
}

#[utoipa::path(get, path = "/metrics", summary = "Prometheus metrics (OpenMetrics text)", responses((status = 200, description = "the exposition")))]
pub async fn metrics(State(app): State<Arc<App>>) -> Reply {
    let (reports_pending, reports_given_up) = app.store.report_counts().await?;
    let gauges = super::metrics::Gauges {
        queue_depth: app.store.queued_labels().await?,
        runs: app.store.run_counts().await?,
        runners_online: app
            .store
            .runners(&Page::ALL)
            .await?
            .iter()
            .filter(|r| app.runner_online(r.last_seen))
            .count(),
        reports_pending,
        reports_given_up,
    };
    let text = app.metrics.render(&gauges);
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            super::metrics::CONTENT_TYPE,
        )],
        text,
    )
        .into_response())
}

/// Forge statuses not delivered: still to be sent, or given up (with the forge's answer).
#[utoipa::path(get, path = "/api/v1/reports", summary = "forge statuses not delivered: still to be sent (attempts, next try) or given up with the forge's answer", params(PageQuery), responses((status = 200, description = "a page of reports", body = crate::rest::ReportList), (status = 400, description = "a bad cursor or limit", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub async fn reports(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Reply {
    api_auth(&app, &headers)?;
    let page = q.page()?;
    let reports = app.store.undelivered_reports(&page).await?;
    let next = next_cursor(&reports, &page, |r| (r.id, ""));
    Ok(Json(crate::rest::ReportList { reports, next }).into_response())
}

impl App {
    /// The lease message for a claimed job: the stored part plus the repository's config.
    fn lease(&self, c: Claimed) -> Lease {
        let config = self.config();
        let repo = config.repos.iter().find(|r| r.name == c.repo);
        let secrets = repo
            .map(|r| {
                r.secrets
                    .iter()
                    .filter_map(|(k, s)| Some((k.clone(), s.resolve(&self.base_dir).ok()?)))
                    .collect()
            })
            .unwrap_or_default();
        let event: crate::trigger::Event = serde_json::from_str(&c.event_json)
            .unwrap_or_else(|_| crate::trigger::Event::new(crate::trigger::EventKind::Manual, ""));
        // The job's cache scope is its ref; it may also read its base branch's caches.
        let mut scopes = vec![event.git_ref.clone()];
        if let Some(base) = event.base.as_ref().filter(|b| !b.is_empty()) {
            scopes.push(format!("refs/heads/{base}"));
        }
        Lease {
            cache_token: Some(self.cache.token(&scopes)),
            run_id: c.run_id,
            job_key: c.job_key,
            job_name: c.job_name,
            attempt: c.attempt,
            lease_token: c.lease_token,
            lease_ttl_seconds: self.config().lease.ttl_seconds,
            heartbeat_seconds: self.config().lease.heartbeat_seconds,
            clone_url: repo.map(|r| r.clone_url.clone()).unwrap_or_default(),
            repo: c.repo,
            sha: c.sha,
            pipeline_file: c.file,
            event,
            needs: c.needs,
            env: repo.map(|r| r.env.clone()).unwrap_or_default(),
            secrets,
            spec: c.spec,
            played: c.played,
        }
    }
}
