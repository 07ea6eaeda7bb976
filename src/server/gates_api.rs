//! The REST side of jobs a person starts: play a manual job (with its job inputs), approve
//! or decline a deployment waiting for an approval. The web UI's buttons call the same store.

use super::App;
use super::api::{Reply, api_auth};
use crate::rest::{JobStarted, PlayJob};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use std::sync::Arc;

#[utoipa::path(post, path = "/api/v1/runs/{id}/jobs/{key}/play", summary = "play a manual job, with its job inputs", params(("id" = String, Path, description = "the run id"), ("key" = String, Path, description = "the job's key")), request_body = crate::rest::PlayJob, responses((status = 202, description = "queued", body = crate::rest::JobStarted), (status = 404, description = "no such run or job", body = crate::rest::ErrorBody), (status = 409, description = "the job is not waiting to be played", body = crate::rest::ErrorBody), (status = 422, description = "an input the job does not declare, or a value that does not fit it", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub(super) async fn play(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((run, job)): Path<(String, String)>,
    body: Option<Json<PlayJob>>,
) -> Reply {
    api_auth(&app, &headers)?;
    let inputs = body.map(|Json(b)| b.inputs).unwrap_or_default();
    app.store.play(&run, &job, &inputs).await?;
    app.queued.notify_waiters();
    tracing::info!(run_id = %run, job = %job, "manual job played");
    Ok(started(run, job, "queued"))
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/jobs/{key}/approve", summary = "approve a deployment waiting for an approval", params(("id" = String, Path, description = "the run id"), ("key" = String, Path, description = "the job's key")), responses((status = 202, description = "queued", body = crate::rest::JobStarted), (status = 404, description = "no such run or job", body = crate::rest::ErrorBody), (status = 409, description = "the job is not waiting for an approval", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub(super) async fn approve(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((run, job)): Path<(String, String)>,
) -> Reply {
    api_auth(&app, &headers)?;
    app.store.review(&run, &job, true).await?;
    app.queued.notify_waiters();
    tracing::info!(run_id = %run, job = %job, "deployment approved");
    Ok(started(run, job, "queued"))
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/jobs/{key}/decline", summary = "decline a deployment waiting for an approval (the job fails)", params(("id" = String, Path, description = "the run id"), ("key" = String, Path, description = "the job's key")), responses((status = 202, description = "failed", body = crate::rest::JobStarted), (status = 404, description = "no such run or job", body = crate::rest::ErrorBody), (status = 409, description = "the job is not waiting for an approval", body = crate::rest::ErrorBody), (status = 401, description = "no or a wrong token", body = crate::rest::ErrorBody)), security(("api" = [])))]
pub(super) async fn decline(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((run, job)): Path<(String, String)>,
) -> Reply {
    api_auth(&app, &headers)?;
    app.store.review(&run, &job, false).await?;
    tracing::info!(run_id = %run, job = %job, "deployment declined");
    Ok(started(run, job, "failure"))
}

fn started(run: String, job: String, state: &str) -> axum::response::Response {
    (
        StatusCode::ACCEPTED,
        Json(JobStarted {
            run,
            job,
            state: state.into(),
        }),
    )
        .into_response()
}
