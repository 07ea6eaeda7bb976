//! A repository's schedules page: each schedule with its next fire times, and the slots
//! recorded lately (fired, missed, origin) with the runs they started.

use super::{App, context, html, key, segment, session};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub(super) async fn show(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    let session = match session(&app, &headers) {
        Ok(s) => s,
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
            context! { file => &s.file, cron => &s.cron, timezone => &s.timezone,
            ref => &s.git_ref, next => &s.next }
        })
        .collect();
    html(
        "schedules.html",
        context! {
            repo => &repo.name, base => format!("/repos/{}/{}", segment(&owner), segment(&name)),
            schedules => schedules, slots => slots, csrf => session.csrf(key(&app)),
        },
    )
}
