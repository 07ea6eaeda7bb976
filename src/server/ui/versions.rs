//! The pipeline-versions page of a repository: its history (applied and rejected, with
//! the change log or the errors), the current version, and rollback / unpin through the
//! store's compare-and-set — a page that is out of date gets a conflict, not a silent win.

use super::{App, Refusal, authorized_form, context, html, icons, segment};
use crate::server::store::Page;
use crate::server::versions::{self, Outcome};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::sync::Arc;

/// The page, with `flash` said at its top.
async fn page(
    app: &App,
    headers: &HeaderMap,
    owner: &str,
    name: &str,
    flash: Option<String>,
) -> Response {
    let viewer = match super::viewer(app, headers, Some(&format!("{owner}/{name}"))) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let Some(repo) = crate::server::versions_api::configured(app, owner, name) else {
        return (StatusCode::NOT_FOUND, "no such repository").into_response();
    };
    let scope = versions::scope(&repo);
    let current = match app.store.current_version(&scope).await {
        Ok(c) => c,
        Err(e) => return super::store_failed(e),
    };
    let history = match app
        .store
        .version_history(
            &scope,
            &Page {
                limit: 50,
                before: None,
            },
        )
        .await
    {
        Ok(h) => h,
        Err(e) => return super::store_failed(e),
    };
    let current_id = current.as_ref().map(|c| c.version_id.clone());
    let now = crate::server::store::now_ms();
    let entries: Vec<minijinja::Value> = history
        .iter()
        .map(|h| {
            let changes: Vec<String> = h
                .change_log
                .as_array()
                .into_iter()
                .flatten()
                .map(crate::versions::change_line)
                .collect();
            context! {
                version_id => &h.version_id, short => h.version_id.chars().take(12).collect::<String>(),
                status => &h.status, source => &h.source,
                commit => h.commit.as_deref().map(|c| c.chars().take(12).collect::<String>()),
                at => super::ago(h.at, now), error => &h.error, changes => changes,
                current => current_id.as_deref() == Some(h.version_id.as_str()),
                applied => h.status == "applied",
            }
        })
        .collect();
    let base = format!("/repos/{}/{}", segment(owner), segment(name));
    html(
        "versions.html",
        context! {
            repo => &repo.name, base => base, entries => entries, icons => icons(),
            current => current_id, pinned => current.as_ref().is_some_and(|c| c.pinned),
            csrf => viewer.csrf(app), flash => flash,
        },
    )
}

pub(super) async fn show(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    page(&app, &headers, &owner, &name, None).await
}

#[derive(Deserialize)]
pub(super) struct ChangeForm {
    csrf: String,
    /// The current version the page showed: the compare-and-set's expectation.
    if_match: String,
}

async fn change(
    app: &App,
    headers: &HeaderMap,
    (owner, name): (&str, &str),
    target: Option<&str>,
    form: &ChangeForm,
) -> Response {
    if let Err(r) = authorized_form(app, headers, &form.csrf) {
        return r.into_response();
    }
    let Some(repo) = crate::server::versions_api::configured(app, owner, name) else {
        return Refusal::Login.into_response();
    };
    let scope = versions::scope(&repo);
    match versions::rollback(app, &scope, target, Some(&form.if_match)).await {
        Ok(Outcome::Conflict { current }) => {
            let flash = format!(
                "Not changed: the current version is now {} — someone changed it after this \
                 page was loaded. The page below is up to date; try again if you still want to.",
                current.as_deref().unwrap_or("none")
            );
            let page = page(app, headers, owner, name, Some(flash)).await;
            (StatusCode::CONFLICT, page).into_response()
        }
        Ok(Outcome::Rejected { errors, .. }) => {
            let page = page(
                app,
                headers,
                owner,
                name,
                Some(format!("Rejected: {errors}")),
            )
            .await;
            (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
        }
        Ok(_) => Redirect::to(&format!(
            "/repos/{}/{}/versions",
            segment(owner),
            segment(name)
        ))
        .into_response(),
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, e).into_response(),
    }
}

pub(super) async fn rollback(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((owner, name, id)): Path<(String, String, String)>,
    Form(form): Form<ChangeForm>,
) -> Response {
    change(&app, &headers, (&owner, &name), Some(&id), &form).await
}

pub(super) async fn unpin(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    Form(form): Form<ChangeForm>,
) -> Response {
    change(&app, &headers, (&owner, &name), None, &form).await
}

#[derive(Deserialize)]
pub(super) struct DiffQuery {
    from: String,
    to: String,
}

/// What changed from one stored version to another, as the change log words it.
pub(super) async fn diff(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<DiffQuery>,
) -> Response {
    if let Err(r) = super::viewer(&app, &headers, Some(&format!("{owner}/{name}"))) {
        return r.into_response();
    }
    let Some(repo) = crate::server::versions_api::configured(&app, &owner, &name) else {
        return (StatusCode::NOT_FOUND, "no such repository").into_response();
    };
    let scope = versions::scope(&repo);
    let mut both = Vec::new();
    for id in [&q.from, &q.to] {
        match versions::definitions(&app, &scope, id).await {
            Ok(Some(d)) => both.push(d),
            Ok(None) => {
                return (StatusCode::NOT_FOUND, format!("no version `{id}`")).into_response();
            }
            Err(e) => {
                tracing::error!(error = %e, "a version could not be read");
                return (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable").into_response();
            }
        }
    }
    let changes: Vec<String> = crate::versions::diff(&both[0], &both[1])
        .iter()
        .map(|c| crate::versions::change_line(&serde_json::to_value(c).unwrap_or_default()))
        .collect();
    let short = |id: &str| id.chars().take(12).collect::<String>();
    html(
        "versions_diff.html",
        context! {
            repo => &repo.name, base => format!("/repos/{}/{}", segment(&owner), segment(&name)),
            from => short(&q.from), to => short(&q.to), changes => changes,
        },
    )
}
