//! The run page's buttons for jobs a person starts: a play form per manual job (a field per
//! job input, its default filled in) and approve / decline for a deployment under review.

use super::{App, authorized_form, segment, store_failed};
use crate::rest::Job;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use std::collections::HashMap;
use std::sync::Arc;

/// What a job at its gate waits for, for the jobs table.
pub(super) fn why(job: &Job) -> Option<String> {
    match (job.state.as_str(), job.gate.as_deref()) {
        ("manual", Some("manual-blocking")) => {
            Some("manual job: the pipeline waits until someone plays it".into())
        }
        ("manual", _) => Some("manual job: starts when someone plays it".into()),
        ("approval", _) => Some(format!(
            "waits for an approval to deploy to `{}`",
            job.environment.as_deref().unwrap_or_default()
        )),
        _ => None,
    }
}

/// The forms of the jobs waiting at their gates.
pub(super) fn forms(jobs: &[Job]) -> Vec<minijinja::Value> {
    jobs.iter()
        .filter(|j| j.state == "manual" || j.state == "approval")
        .map(|j| {
            let inputs: Vec<minijinja::Value> = j
                .inputs
                .iter()
                .map(|i| {
                    context! {
                        name => &i.name, kind => &i.kind, description => &i.description,
                        default => i.default.as_ref().map(input_text).unwrap_or_default(),
                        options => i.options.iter().map(input_text).collect::<Vec<_>>(),
                    }
                })
                .collect();
            context! {
                name => &j.name, key_url => segment(&j.key), state => &j.state,
                environment => &j.environment, inputs => inputs,
            }
        })
        .collect()
}

/// An input's value as a form field holds it (strings bare, the rest as JSON).
fn input_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(super) async fn play(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((id, job_key)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let csrf = form.get("csrf").map_or("", String::as_str);
    if let Err(r) = authorized_form(&app, &headers, csrf) {
        return r.into_response();
    }
    // Fields `input.NAME`; an empty one keeps the input's default.
    let inputs = form
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("input.")?.to_string(), v.clone())))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let done = app.store.play(&id, &job_key, &inputs).await;
    answer(&app, &id, done)
}

pub(super) async fn review(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((id, job_key)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let csrf = form.get("csrf").map_or("", String::as_str);
    if let Err(r) = authorized_form(&app, &headers, csrf) {
        return r.into_response();
    }
    let approve = form.get("decision").map(String::as_str) == Some("approve");
    let done = app.store.review(&id, &job_key, approve).await;
    answer(&app, &id, done)
}

/// Back to the run page, or the reason the button did nothing.
fn answer(app: &App, id: &str, done: Result<(), crate::server::store::StoreError>) -> Response {
    use crate::server::store::StoreError;
    match done {
        Ok(()) => {
            app.queued.notify_waiters();
            Redirect::to(&format!("/runs/{}", segment(id))).into_response()
        }
        Err(StoreError::Conflict(m)) => (StatusCode::CONFLICT, m).into_response(),
        Err(StoreError::Invalid(m)) => (StatusCode::UNPROCESSABLE_ENTITY, m).into_response(),
        Err(StoreError::NotFound(m)) => (StatusCode::NOT_FOUND, m).into_response(),
        Err(e) => store_failed(e),
    }
}
