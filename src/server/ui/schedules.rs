//! A repository's schedules page: each schedule with its next fire times, and the slots
//! recorded lately (fired, missed, origin) with the runs they started.

use super::{App, context, html, segment};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use std::sync::Arc;

pub(super) async fn show(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    let viewer = match super::viewer(&app, &headers, Some(&format!("{owner}/{name}"))) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let Some(repo) = crate::server::versions_api::configured(&app, &owner, &name) else {
        return (StatusCode::NOT_FOUND, "no such repository").into_response();
    };
    let scope = crate::server::versions::scope(&repo);
    let list =
        match crate::server::versions_api::schedules_of(&app, &repo, &scope, chrono::Utc::now(), 5)
            .await
        {
            Ok(l) => l,
            Err(e) => return e.into_response(),
        };
    let slots: Vec<minijinja::Value> = list
        .slots
        .iter()
        .map(|s| {
            context! {
                schedule => &s.schedule, slot => super::iso(s.slot), status => &s.status,
                runs => s.runs.iter().map(|r| context! { id => r, url => format!("/runs/{}", segment(r)) }).collect::<Vec<_>>(),
            }
        })
        .collect();
    let schedules: Vec<minijinja::Value> = list
        .schedules
        .iter()
        .map(|s| {
            context! { key => &s.key, enabled => s.enabled, file => &s.file, cron => &s.cron,
            timezone => &s.timezone, ref => &s.git_ref, next => &s.next }
        })
        .collect();
    html(
        "schedules.html",
        context! {
            repo => &repo.name, base => format!("/repos/{}/{}", segment(&owner), segment(&name)),
            schedules => schedules, slots => slots, csrf => viewer.csrf(&app),
        },
    )
}

#[derive(serde::Deserialize)]
pub(super) struct SwitchForm {
    csrf: String,
    schedule: String,
    /// `1` on, `0` off.
    enabled: String,
}

pub(super) async fn switch(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    Form(form): Form<SwitchForm>,
) -> Response {
    if let Err(r) = super::authorized_form(&app, &headers, &form.csrf) {
        return r.into_response();
    }
    let Some(repo) = crate::server::versions_api::configured(&app, &owner, &name) else {
        return (StatusCode::NOT_FOUND, "no such repository").into_response();
    };
    let scope = crate::server::versions::scope(&repo);
    let switch = crate::rest::ScheduleSwitch {
        schedule: form.schedule,
        enabled: form.enabled == "1",
    };
    match crate::server::versions_api::switch_of(&app, &repo, &scope, &switch).await {
        Ok(()) => Redirect::to(&format!(
            "/repos/{}/{}/schedules",
            segment(&owner),
            segment(&name)
        ))
        .into_response(),
        Err(e) => e.into_response(),
    }
}
