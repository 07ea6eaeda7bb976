//! The web UI at `/`: server-rendered pages (minijinja templates embedded in the binary)
//! for runs, a run's DAG and jobs, a job's live log, and runners, behind a cookie session.
//! Pages work without JavaScript; `app.js` adds live updates and the log stream.

mod dag;
mod gates;
mod log;
mod schedules;
mod session;
mod versions;

use super::App;
use super::store::{Page, now_ms};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::{Environment, context};
use serde::Deserialize;
use std::sync::Arc;

/// A log longer than this is shown from its tail (the whole is a download away), so a
/// 100 MB log does not freeze the browser.
const SHOWN_LOG_BYTES: usize = 1 << 20;

pub(super) fn router() -> axum::Router<Arc<App>> {
    axum::Router::new()
        .route("/", get(runs))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/runs/{id}", get(run))
        .route("/runs/{id}/cancel", post(cancel))
        .route("/runs/{id}/rerun", post(rerun))
        .route("/runs/{id}/jobs/{key}", get(job_log))
        .route("/runs/{id}/jobs/{key}/play", post(gates::play))
        .route("/runs/{id}/jobs/{key}/review", post(gates::review))
        .route("/runs/{id}/jobs/{key}/raw", get(raw_log))
        .route("/runs/{id}/jobs/{key}/live", get(live_log))
        .route("/repos/{owner}/{name}/versions", get(versions::show))
        .route(
            "/repos/{owner}/{name}/versions/{id}/rollback",
            post(versions::rollback),
        )
        .route(
            "/repos/{owner}/{name}/versions/unpin",
            post(versions::unpin),
        )
        .route("/repos/{owner}/{name}/versions/diff", get(versions::diff))
        .route("/repos/{owner}/{name}/schedules", get(schedules::show))
        .route(
            "/repos/{owner}/{name}/schedules/switch",
            post(schedules::switch),
        )
        .route("/runners", get(runners))
        .route("/runners/{id}/drain", post(drain))
        .route("/ui/app.css", get(css))
        .route("/ui/app.js", get(js))
}

fn templates() -> &'static Environment<'static> {
    static ENV: std::sync::OnceLock<Environment<'static>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, text) in [
            ("base.html", include_str!("templates/base.html")),
            ("login.html", include_str!("templates/login.html")),
            ("runs.html", include_str!("templates/runs.html")),
            ("runs_rows.html", include_str!("templates/runs_rows.html")),
            ("run.html", include_str!("templates/run.html")),
            ("run_rows.html", include_str!("templates/run_rows.html")),
            ("log.html", include_str!("templates/log.html")),
            ("runners.html", include_str!("templates/runners.html")),
            ("versions.html", include_str!("templates/versions.html")),
            (
                "versions_diff.html",
                include_str!("templates/versions_diff.html"),
            ),
            ("schedules.html", include_str!("templates/schedules.html")),
        ] {
            env.add_template(name, text)
                .expect("the embedded templates parse");
        }
        env
    })
}

/// The state icons the pages show.
fn icons() -> std::collections::BTreeMap<&'static str, &'static str> {
    [
        ("success", "✓"),
        ("failure", "✗"),
        ("failed", "✗"),
        ("cancelled", "⊘"),
        ("skipped", "○"),
        ("running", "●"),
        ("queued", "◌"),
        ("pending", "◌"),
        ("waiting", "◌"),
        ("manual", "▶"),
        ("approval", "⏸"),
    ]
    .into_iter()
    .collect()
}

fn html(name: &str, ctx: minijinja::Value) -> Response {
    match templates().get_template(name).and_then(|t| t.render(ctx)) {
        Ok(page) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            page,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "a page did not render");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page did not render").into_response()
        }
    }
}

fn key(app: &App) -> &[u8] {
    app.session_key.as_bytes()
}

/// Why a request gets no page.
enum Refusal {
    /// No valid session: to the login page.
    Login,
    /// A form without this session's CSRF token.
    Forged,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Login => Redirect::to("/login").into_response(),
            Refusal::Forged => (
                StatusCode::FORBIDDEN,
                "this form is stale or was not sent by this site: reload the page and try again",
            )
                .into_response(),
        }
    }
}

/// The request's session.
fn session(app: &App, headers: &HeaderMap) -> Result<session::Session, Refusal> {
    session::from_headers(headers)
        .and_then(|v| session::check(key(app), &v, &app.api_tokens, now_ms()))
        .ok_or(Refusal::Login)
}

/// Who is looking at a page.
enum Viewer {
    /// Logged in: sees everything, may press buttons.
    Member(session::Session),
    /// No session, on a page of a repository configured `public = true`: reads only.
    Visitor,
}

impl Viewer {
    /// The CSRF token the page's forms carry; empty for a visitor, whose page has none.
    fn csrf(&self, app: &App) -> String {
        match self {
            Viewer::Member(s) => s.csrf(key(app)),
            Viewer::Visitor => String::new(),
        }
    }
}

/// The request's viewer for a page of `repo` (`None`: a page across repositories, open to
/// visitors when any repository is public).
fn viewer(app: &App, headers: &HeaderMap, repo: Option<&str>) -> Result<Viewer, Refusal> {
    if let Ok(s) = session(app, headers) {
        return Ok(Viewer::Member(s));
    }
    let config = app.config();
    let public = config
        .repos
        .iter()
        .any(|r| r.public && repo.is_none_or(|name| r.name == name));
    if public {
        Ok(Viewer::Visitor)
    } else {
        Err(Refusal::Login)
    }
}

/// The viewer of a page of run `id` (its repository decides whether a visitor may see it).
async fn viewer_of_run(app: &App, headers: &HeaderMap, id: &str) -> Result<Viewer, Response> {
    if let Ok(s) = session(app, headers) {
        return Ok(Viewer::Member(s));
    }
    let repo = match app.store.run(id).await {
        Ok(Some(d)) => d.run.repo,
        Ok(None) => return Err((StatusCode::NOT_FOUND, format!("no run `{id}`")).into_response()),
        Err(e) => return Err(store_failed(e)),
    };
    viewer(app, headers, Some(&repo)).map_err(IntoResponse::into_response)
}

/// The repositories a visitor may see.
fn public_repos(app: &App) -> Vec<String> {
    let config = app.config();
    config
        .repos
        .iter()
        .filter(|r| r.public)
        .map(|r| r.name.clone())
        .collect()
}

/// A state-changing form: a session and its CSRF token.
fn authorized_form(app: &App, headers: &HeaderMap, csrf: &str) -> Result<(), Refusal> {
    let session = session(app, headers)?;
    let expected = session.csrf(key(app));
    if crate::server::hooks::constant_time_eq(expected.as_bytes(), csrf.as_bytes()) {
        Ok(())
    } else {
        Err(Refusal::Forged)
    }
}

fn store_failed(e: super::store::StoreError) -> Response {
    tracing::error!(error = %e, "storage error in the web UI");
    (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable").into_response()
}

/// `12s`, `3m 4s`, `2h 5m`.
fn duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, s % 3600 / 60),
    }
}

fn ago(ms: i64, now: i64) -> String {
    format!("{} ago", duration(now - ms))
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[derive(Deserialize, Default)]
struct RunFilter {
    repo: Option<String>,
    status: Option<String>,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    before: Option<String>,
    /// `1`: only the table's rows (live updates).
    rows: Option<u8>,
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

async fn runs(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(f): Query<RunFilter>,
) -> Response {
    let viewer = match viewer(&app, &headers, None) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let visible = matches!(viewer, Viewer::Visitor).then(|| public_repos(&app));
    let before = f.before.as_deref().and_then(|c| {
        let (sort, id) = c.split_once('.')?;
        Some((sort.parse().ok()?, id.to_string()))
    });
    let page = Page { limit: 50, before };
    let git_ref = non_empty(&f.git_ref).map(|r| {
        if r.starts_with("refs/") {
            r.to_string()
        } else {
            format!("refs/heads/{r}")
        }
    });
    let list = match app
        .store
        .runs(
            non_empty(&f.repo),
            non_empty(&f.status),
            git_ref.as_deref(),
            &page,
            visible.as_deref(),
        )
        .await
    {
        Ok(l) => l,
        Err(e) => return store_failed(e),
    };
    let now = now_ms();
    let rows: Vec<minijinja::Value> = list
        .iter()
        .map(|r| {
            let end = r.finished_at.unwrap_or(now);
            context! {
                id => &r.id, pipeline => &r.pipeline, repo => &r.repo, ref => &r.git_ref,
                sha => &r.sha, event => &r.event, status => &r.status, title => &r.title,
                duration => duration(end - r.created_at),
                created_ago => ago(r.created_at, now), created_iso => iso(r.created_at),
            }
        })
        .collect();
    let query = |before: Option<String>, rows: bool| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("repo", &f.repo),
            ("status", &f.status),
            ("ref", &f.git_ref),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                q.append_pair(k, v);
            }
        }
        if let Some(b) = before {
            q.append_pair("before", &b);
        }
        if rows {
            q.append_pair("rows", "1");
        }
        format!("/?{}", q.finish())
    };
    let next = (list.len() as i64 >= page.limit)
        .then(|| {
            list.last()
                .map(|r| query(Some(format!("{}.{}", r.created_at, r.id)), false))
        })
        .flatten();
    let ctx = context! {
        runs => rows, icons => icons(), csrf => viewer.csrf(&app),
        filter => context! { repo => &f.repo, status => &f.status, ref => &f.git_ref },
        // Only the first page updates itself: later pages are history.
        live_url => if f.before.is_none() { query(None, true) } else { String::new() },
        next => next,
    };
    html(
        if f.rows == Some(1) {
            "runs_rows.html"
        } else {
            "runs.html"
        },
        ctx,
    )
}

#[derive(Deserialize, Default)]
struct RowsOnly {
    rows: Option<u8>,
}

async fn run(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<RowsOnly>,
) -> Response {
    let detail = match app.store.run(&id).await {
        Ok(Some(d)) => d,
        Ok(None) => return (StatusCode::NOT_FOUND, format!("no run `{id}`")).into_response(),
        Err(e) => return store_failed(e),
    };
    let viewer = match viewer(&app, &headers, Some(&detail.run.repo)) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let now = now_ms();
    let jobs: Vec<minijinja::Value> = detail
        .jobs
        .iter()
        .map(|j| {
            let duration = j
                .started_at
                .map(|s| duration(j.finished_at.unwrap_or(now) - s))
                .unwrap_or_default();
            context! {
                name => &j.name, key_url => segment(&j.key), state => &j.state,
                attempt => &j.attempt, runner => &j.runner,
                queued => j.queued_at.map(|q| ago(q, now)).unwrap_or_default(),
                duration => duration, why => j.error.clone().or(j.waiting_reason.clone()).or_else(|| gates::why(j)),
            }
        })
        .collect();
    let base = format!("/runs/{}", segment(&id));
    let ctx = context! {
        run => context! {
            id => &detail.run.id, pipeline => &detail.run.pipeline, repo => &detail.run.repo,
            event => &detail.run.event, ref => &detail.run.git_ref, sha => &detail.run.sha,
            file => &detail.run.file, status => &detail.run.status, error => &detail.run.error,
            title => &detail.run.title, reason => &detail.run.reason,
            version => &detail.run.version_id,
            versions_url => format!("/repos/{}/versions", detail.run.repo.split('/').map(segment).collect::<Vec<_>>().join("/")),
        },
        gates => gates::forms(&detail.jobs),
        jobs => jobs, icons => icons(), csrf => viewer.csrf(&app),
        // The rows alone (live updates, every second) need no graph.
        dag => if q.rows == Some(1) { String::new() } else { dag::svg(&detail.jobs, &base) },
        live_url => format!("{base}?rows=1"),
    };
    // `?rows=1`: the jobs table's rows alone (live updates).
    html(
        if q.rows == Some(1) {
            "run_rows.html"
        } else {
            "run.html"
        },
        ctx,
    )
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
    failed: Option<String>,
}

async fn cancel(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = authorized_form(&app, &headers, &form.csrf) {
        return r.into_response();
    }
    match app.store.cancel_run(&id).await {
        Ok(_) => Redirect::to(&format!("/runs/{}", segment(&id))).into_response(),
        Err(e) => store_failed(e),
    }
}

async fn rerun(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = authorized_form(&app, &headers, &form.csrf) {
        return r.into_response();
    }
    match app
        .store
        .rerun(&id, form.failed.as_deref() == Some("1"))
        .await
    {
        Ok(new_id) => {
            app.queued.notify_waiters();
            Redirect::to(&format!("/runs/{}", segment(&new_id))).into_response()
        }
        Err(super::store::StoreError::Conflict(m)) => (StatusCode::CONFLICT, m).into_response(),
        Err(e) => store_failed(e),
    }
}

async fn job_log(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((id, job_key)): Path<(String, String)>,
) -> Response {
    let detail = match app.store.run(&id).await {
        Ok(Some(d)) => d,
        Ok(None) => return (StatusCode::NOT_FOUND, format!("no run `{id}`")).into_response(),
        Err(e) => return store_failed(e),
    };
    let viewer = match viewer(&app, &headers, Some(&detail.run.repo)) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let Some(job) = detail.jobs.iter().find(|j| j.key == job_key) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no job `{job_key}` in run `{id}`"),
        )
            .into_response();
    };
    let (text, attempt, finished) = match app.store.log(&id, &job_key, 0).await {
        Ok(Some(l)) => l,
        Ok(None) => (String::new(), 0, false),
        Err(e) => return store_failed(e),
    };
    // A long log is shown from its tail, at a line boundary.
    // (Searched as bytes: the cut may fall inside a character; after a `\n` never does.)
    let shown_from = text.len().checked_sub(SHOWN_LOG_BYTES).map_or(0, |cut| {
        text.as_bytes()[cut..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |n| cut + n + 1)
    });
    let skipped = text[..shown_from].matches('\n').count();
    let mut renderer = log::Renderer::starting_at(skipped + 1);
    let mut lines = renderer.push(&text[shown_from..]);
    if finished {
        lines.push_str(&renderer.finish());
    }
    let base = format!("/runs/{}/jobs/{}", segment(&id), segment(&job_key));
    // The stream goes on from the last whole line shown.
    let streamed_from = text.rfind('\n').map_or(0, |n| n + 1);
    let ctx = context! {
        run => context! { id => &detail.run.id, pipeline => &detail.run.pipeline,
            repo => &detail.run.repo, sha => &detail.run.sha },
        job => context! { name => &job.name, state => &job.state },
        key_url => segment(&job_key), attempt => attempt, finished => finished,
        lines => lines, annotations => renderer.annotations.iter().map(|a| context! { line => a.line, level => a.level, text => &a.text }).collect::<Vec<_>>(), icons => icons(),
        skipped => skipped, csrf => viewer.csrf(&app),
        live_url => format!("{base}/live?offset={streamed_from}&line={}",
            text[..streamed_from].matches('\n').count() + 1),
    };
    html("log.html", ctx)
}

async fn raw_log(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((id, job_key)): Path<(String, String)>,
) -> Response {
    if let Err(r) = viewer_of_run(&app, &headers, &id).await {
        return r;
    }
    match app.store.log(&id, &job_key, 0).await {
        Ok(Some((text, _, _))) => {
            let file: String = format!("{id}-{job_key}.log")
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            (
                [
                    (
                        header::CONTENT_TYPE,
                        "text/plain; charset=utf-8".to_string(),
                    ),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{file}\""),
                    ),
                ],
                text,
            )
                .into_response()
        }
        Ok(None) => (StatusCode::NOT_FOUND, "no such job").into_response(),
        Err(e) => store_failed(e),
    }
}

#[derive(Deserialize)]
struct LiveQuery {
    offset: u64,
    line: usize,
}

/// Server-Sent Events of the log from `offset`, each event the HTML of the new lines
/// (rendered here, like the page), then an `end` event when the job has finished.
async fn live_log(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((id, job_key)): Path<(String, String)>,
    Query(q): Query<LiveQuery>,
) -> Response {
    if let Err(r) = viewer_of_run(&app, &headers, &id).await {
        return r;
    }
    let mut renderer = log::Renderer::starting_at(q.line);
    let render = move |text: &str, last: bool| {
        let mut html = renderer.push(text);
        if last {
            html.push_str(&renderer.finish());
        }
        html
    };
    super::api::follow_log(app, id, job_key, q.offset, render)
}

async fn runners(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let session = match session(&app, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let list = match app.store.runners(&Page::ALL).await {
        Ok(l) => l,
        Err(e) => return store_failed(e),
    };
    let now = now_ms();
    let rows: Vec<minijinja::Value> = list
        .iter()
        .map(|r| {
            let busy = r.load.as_ref().is_some_and(|l| l.running_jobs > 0);
            let state = match (app.runner_online(r.last_seen), r.draining, busy) {
                (false, _, _) => "lost",
                (true, true, _) => "draining",
                (true, false, true) => "busy",
                (true, false, false) => "idle",
            };
            context! {
                id => &r.id, name => &r.name, labels => &r.labels, version => &r.version,
                outdated => &r.version != env!("CARGO_PKG_VERSION"), state => state,
                free_slots => &r.free_slots, draining => &r.draining,
                load => r.load.as_ref().map(|l| format!("{} jobs, cpu {:.0}%", l.running_jobs, l.cpu * 100.0)),
                last_seen_ago => ago(r.last_seen, now),
            }
        })
        .collect();
    html(
        "runners.html",
        context! { runners => rows, csrf => session.csrf(key(&app)) },
    )
}

#[derive(Deserialize)]
struct DrainForm {
    csrf: String,
    /// `0`: resume.
    drain: Option<String>,
}

async fn drain(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DrainForm>,
) -> Response {
    if let Err(r) = authorized_form(&app, &headers, &form.csrf) {
        return r.into_response();
    }
    match app.drain(&id, form.drain.as_deref() != Some("0")).await {
        Ok(_) => Redirect::to("/runners").into_response(),
        Err(e) => e.into_response(),
    }
}

async fn login_page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if session(&app, &headers).is_ok() {
        return Redirect::to("/").into_response();
    }
    html("login.html", context! {})
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(app): State<Arc<App>>, Form(form): Form<LoginForm>) -> Response {
    let known = app
        .api_tokens
        .iter()
        .any(|t| crate::server::hooks::constant_time_eq(t.as_bytes(), form.token.as_bytes()));
    if !known {
        let page = html(
            "login.html",
            context! { error => "That is not an API token of this server." },
        );
        return (StatusCode::UNAUTHORIZED, page).into_response();
    }
    let value = session::issue(key(&app), &form.token, now_ms());
    let secure = app.public_url.starts_with("https://");
    (
        [(header::SET_COOKIE, session::set_cookie(&value, secure))],
        Redirect::to("/"),
    )
        .into_response()
}

async fn logout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = authorized_form(&app, &headers, &form.csrf) {
        return r.into_response();
    }
    let secure = app.public_url.starts_with("https://");
    (
        [(header::SET_COOKIE, session::set_cookie("", secure))],
        Redirect::to("/login"),
    )
        .into_response()
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("app.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("app.js"),
    )
        .into_response()
}
