//! `tess server`: receives forge webhooks, plans runs with the shared planner, stores them
//! durably and leases their jobs to `tess runner` agents (which run them with the engine).

pub mod api;
pub mod config;
pub mod connections;
mod detect;
pub mod first_start;
mod gates_api;
pub mod hooks;
pub mod limits;
mod log_watch;
pub mod metrics;
mod objects;
mod openapi;
pub mod planner;
pub mod presence;
mod reporter;
mod scheduler;
pub mod store;
mod ui;
pub mod versions;
pub(crate) mod versions_api;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use config::Config;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use store::Store;
use tokio::sync::{Notify, mpsc};
use tracing::Instrument;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// GitHub caps webhook payloads at 25 MB.
pub const MAX_BODY: usize = 25 * 1024 * 1024;

pub struct App {
    /// Replaced whole when a new config version is applied (hot reload): read it with
    /// [`App::config`].
    pub config: std::sync::RwLock<Arc<Config>>,
    /// The config file, when there is one (its directory is watched).
    pub config_path: Option<PathBuf>,
    /// Where people reach this server (links in forge statuses).
    pub public_url: String,
    /// The directory of the config file (relative paths in it start here).
    pub base_dir: PathBuf,
    pub data_dir: PathBuf,
    pub store: Store,
    pub api_tokens: Vec<String>,
    pub registration_token: Option<String>,
    /// Woken whenever jobs are queued, so long-polling runners answer at once.
    pub queued: Notify,
    /// Wakes the live log streams of a job when its log grows.
    pub logs: log_watch::LogWatch,
    /// Delivery ids to plan, in arrival order (the planner task owns planning).
    pub planner: mpsc::UnboundedSender<String>,
    pub metrics: metrics::Metrics,
    pub presence: presence::Presence,
    /// Per repository scope: the commit whose definitions were read last (the same commit
    /// pushed or polled again is not read again).
    pub synced_heads: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Request bodies in memory at once.
    pub body_budget: limits::BodyBudget,
    /// Runner ids by token hash, as looked up so far.
    pub runner_ids: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// The cache service `@actions/cache` in runners' jobs talks to (a token per lease).
    pub cache: crate::cache_service::Served,
    /// Signs the web UI's session cookies (kept in the data directory: sessions survive a
    /// restart).
    pub session_key: String,
}

impl App {
    /// Whether a runner last seen at `last_seen` (ms) counts as online now: seen within three
    /// lease TTLs.
    pub fn runner_online(&self, last_seen: i64) -> bool {
        last_seen >= store::now_ms() - 3 * self.config().lease.ttl_seconds as i64 * 1000
    }

    /// The config as now applied.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(
            &self
                .config
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Applies a new config (a new server version).
    pub fn set_config(&self, config: Config) {
        *self
            .config
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(config);
    }
}

pub struct Options {
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
    pub database_url: Option<String>,
}

pub fn router(app: Arc<App>) -> Router {
    let (routes, _) = api_router().split_for_parts();
    routes
        .merge(ui::router())
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

/// Every route with its OpenAPI operation (`openapi::document` is made from the same).
fn api_router() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(hooks::github))
        .routes(routes!(hooks::gitlab))
        .routes(routes!(api::healthz))
        .routes(routes!(api::readyz))
        .routes(routes!(api::metrics))
        .routes(routes!(api::openapi))
        .routes(routes!(api::register))
        .routes(routes!(api::poll))
        .routes(routes!(api::heartbeat))
        .routes(routes!(api::logs))
        .routes(routes!(api::complete))
        .routes(routes!(api::list_runs, api::create_run))
        .routes(routes!(api::show_run))
        .routes(routes!(api::cancel_run))
        .routes(routes!(api::rerun))
        .routes(routes!(gates_api::play))
        .routes(routes!(gates_api::approve))
        .routes(routes!(gates_api::decline))
        .routes(routes!(api::job_log))
        .routes(routes!(api::list_runners))
        .routes(routes!(api::drain_runner))
        .routes(routes!(api::resume_runner))
        .routes(routes!(api::deliveries))
        .routes(routes!(api::reports))
        .routes(routes!(versions_api::server_current))
        .routes(routes!(versions_api::server_history))
        .routes(routes!(versions_api::history))
        .routes(routes!(versions_api::current))
        .routes(routes!(versions_api::unpin))
        .routes(routes!(versions_api::diff))
        .routes(routes!(versions_api::rollback))
        .routes(routes!(versions_api::sync))
        .routes(routes!(versions_api::schedules))
        .routes(routes!(versions_api::switch_schedule))
}

fn resolve_all(secrets: &[config::Secret], base: &Path) -> Result<Vec<String>, String> {
    secrets.iter().map(|s| s.resolve(base)).collect()
}

/// Runs the server until SIGINT/SIGTERM.
/// Why the server could not start: the operator's input, or the environment.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration (or a file it names) is wrong: fix it and start again.
    #[error("{0}")]
    Invalid(String),
    /// The environment failed (the database is down, the port is taken, a disk is full):
    /// the same start may work later.
    #[error("{0}")]
    Runtime(String),
}

impl From<String> for StartError {
    fn from(message: String) -> StartError {
        StartError::Invalid(message)
    }
}

impl From<store::StoreError> for StartError {
    fn from(e: store::StoreError) -> StartError {
        StartError::Runtime(format!("database: {e}"))
    }
}

pub fn run(mut options: Options) -> Result<(), StartError> {
    // Without a config the server writes a starter one in `tess-data/` and keeps its
    // database and tokens beside it; repositories added to it later are hot-reloaded.
    let has_config = options.config.is_some();
    let config_path = match options.config.clone() {
        Some(path) => path,
        None => first_start::starter_config()?,
    };
    options.config = Some(config_path.clone());
    let base_dir = config_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let config = Config::load(&config_path)?;
    let listen = options.listen.unwrap_or_else(|| config.listen.clone());
    let data_dir = match (&config.data_dir, has_config) {
        (Some(dir), _) => base_dir.join(dir),
        (None, true) => base_dir.join("tess-data"),
        (None, false) => base_dir.clone(),
    };
    first_start::create_private_dir(&data_dir)?;
    let database_url = first_start::database_url(
        &options
            .database_url
            .or_else(|| config.database_url.clone())
            .unwrap_or_else(|| base_dir.join("tess.db").display().to_string()),
    )?;
    let database_connections = config.database_connections;
    let mut api_tokens = resolve_all(&config.api_tokens, &base_dir)?;
    let registration_token = config
        .registration_token
        .as_ref()
        .map(|t| t.resolve(&base_dir))
        .transpose()?;
    // Tokens the config does not give are generated once and kept in the data directory.
    let tokens = first_start::GeneratedTokens {
        registration: match registration_token {
            Some(_) => None,
            None => Some(first_start::stored_token(
                &data_dir,
                first_start::REGISTRATION_TOKEN_FILE,
            )?),
        },
        admin: match api_tokens.is_empty() {
            false => None,
            true => Some(first_start::stored_token(
                &data_dir,
                first_start::ADMIN_TOKEN_FILE,
            )?),
        },
    };
    let registration_token =
        registration_token.or_else(|| tokens.registration.clone().map(|t| t.0));
    if let Some((admin, _)) = &tokens.admin {
        api_tokens.push(admin.clone());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| StartError::Runtime(e.to_string()))?;
    runtime.block_on(async move {
        let store = Store::connect(&database_url, database_connections)
            .await
            .map_err(|e| {
                StartError::Runtime(format!(
                    "database {} (host {}): {e}",
                    redact_url(&database_url),
                    first_start::database_host(&database_url)
                ))
            })?;
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| StartError::Runtime(format!("cannot listen on {listen}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartError::Runtime(e.to_string()))?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let (planner_tx, planner_rx) = mpsc::unbounded_channel();
        // Signs the cache tokens leases carry: kept in the data directory, so a restart
        // does not invalidate the tokens of running jobs.
        let (cache_key, _) = first_start::stored_token(&data_dir, "cache-key")?;
        let (session_key, _) = first_start::stored_token(&data_dir, "session-key")?;
        let cache = crate::cache_service::Served::new(
            &data_dir.join("actions-cache"),
            cache_key.into_bytes(),
        )?;
        let app = Arc::new(App {
            cache,
            session_key,
            public_url,
            config: std::sync::RwLock::new(Arc::new(config)),
            config_path: options.config.clone(),
            base_dir,
            data_dir,
            store,
            api_tokens,
            registration_token,
            queued: Notify::new(),
            logs: log_watch::LogWatch::default(),
            planner: planner_tx,
            metrics: metrics::Metrics::default(),
            runner_ids: Default::default(),
            body_budget: Default::default(),
            synced_heads: Default::default(),
            presence: Default::default(),
        });
        // Jobs that were running when this server stopped keep their runners: the time it
        // was down does not count against their leases.
        let ttl_ms = app.config().lease.ttl_seconds as i64 * 1000;
        match app.store.grant_lease_grace(ttl_ms).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "running jobs get a full lease to heartbeat"),
            Err(e) => return Err(e.into()),
        }
        // Deliveries a crash left unplanned are planned first.
        for id in app.store.unplanned_deliveries(i64::MAX).await? {
            let _ = app.planner.send(id);
        }
        tokio::spawn(plan_deliveries(Arc::clone(&app), planner_rx));
        tokio::spawn(watch_leases(Arc::clone(&app)));
        tokio::spawn(reporter::run(Arc::clone(&app)));
        tokio::spawn(detect::run(Arc::clone(&app)));
        tokio::spawn(scheduler::run(
            Arc::clone(&app),
            scheduler::Clock::from_env(),
        ));
        detect::watch(Arc::clone(&app))?;
        first_start::announce(
            &tokens,
            &app.data_dir,
            &app.public_url,
            !addr.ip().is_loopback(),
            (!has_config).then_some(config_path.as_path()),
        );
        // Tests and scripts read this line to learn the port (`--listen 127.0.0.1:0`).
        println!("tess server listening on http://{addr}");
        tracing::info!(%addr, database = %redact_url(&database_url), "server started");
        let limits = app.config().http.clone();
        let routes = router(Arc::clone(&app)).merge(app.cache.router());
        connections::serve(listener, routes, limits, shutdown()).await;
        Ok(())
    })
}

pub(crate) fn redact_url(url: &str) -> String {
    // postgres://user:password@host → postgres://user:***@host
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The planner: one delivery at a time, claimed with compare-and-set so that replicas
/// sharing a database plan each delivery once.
async fn plan_deliveries(app: Arc<App>, mut rx: mpsc::UnboundedReceiver<String>) {
    while let Some(id) = rx.recv().await {
        let claimed = match app.store.claim_delivery(&id).await {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(delivery = %id, error = %e, "cannot claim a delivery");
                continue;
            }
        };
        // The claim is renewed while planning, so another replica (or this one after a
        // restart) takes it back within seconds only when this planner is gone.
        let renew = tokio::spawn({
            let (app, id) = (Arc::clone(&app), id.clone());
            async move {
                let every = std::time::Duration::from_millis(store::PLANNING_CLAIM_MS as u64 / 4);
                loop {
                    tokio::time::sleep(every).await;
                    if let Err(e) = app.store.renew_delivery_claim(&id).await {
                        tracing::warn!(delivery = %id, error = %e, "cannot renew a planning claim");
                    }
                }
            }
        });
        // A task of its own, so that a panic while planning fails one delivery, not the loop.
        let span = tracing::info_span!("plan", delivery = %id);
        let planning = tokio::spawn({
            let app = Arc::clone(&app);
            let source = if id.starts_with(detect::POLLED) {
                "poll"
            } else {
                "webhook"
            };
            async move { plan_one(&app, &claimed, source).await }.instrument(span)
        });
        let (status, reason, runs) = planning.await.unwrap_or_else(|e| {
            (
                "error",
                Some(format!("the planner panicked: {e}")),
                Vec::new(),
            )
        });
        renew.abort();
        match app
            .store
            .finish_delivery(&id, status, reason.as_deref(), &runs)
            .await
        {
            Ok(()) => {
                tracing::info!(delivery = %id, status, runs = runs.len(), "delivery planned");
                app.queued.notify_waiters();
            }
            Err(e) => tracing::error!(delivery = %id, error = %e, "cannot store the plan"),
        }
    }
}

/// Plans one delivery; `source` (`webhook`, `poll`) is where a new version found on the
/// default branch is said to come from.
async fn plan_one(
    app: &Arc<App>,
    (forge, event, payload_text): &(String, String, String),
    source: &'static str,
) -> (&'static str, Option<String>, Vec<store::NewRun>) {
    let forge = config::Forge::from_stored(forge);
    let trigger = serde_json::from_str(payload_text)
        .map_err(|e| e.to_string())
        .and_then(|json| crate::forge::payload::parse(forge, event, &json));
    let trigger = match trigger {
        Ok(crate::forge::payload::Parsed::Trigger(t)) => t,
        Ok(_) => return ("ignored", Some("nothing to plan".into()), Vec::new()),
        Err(e) => return ("error", Some(e), Vec::new()),
    };
    let Some(repo) = app.config().repo(forge, &trigger.repo).cloned() else {
        return (
            "rejected",
            Some("repository is no longer configured".into()),
            Vec::new(),
        );
    };
    // A push to the default branch may bring new pipeline definitions: read once the
    // planner has fetched the commit — unless its changed files leave them alone.
    let default_head = format!("refs/heads/{}", repo.default_branch());
    let new_definitions = (trigger.event.git_ref == default_head
        && trigger.event.kind == crate::trigger::EventKind::Push)
        .then(|| (Arc::clone(app), repo.clone(), trigger.event.sha.clone()));
    let planned = plan_off_thread(app, &repo, *trigger, None).await;
    let changed = match &planned {
        Ok(Ok(p)) => p.changed.clone(),
        _ => None,
    };
    if let Some((app, repo, sha)) = new_definitions
        && changed.is_none_or(|c| versions::may_change_definitions(repo.forge, &c))
    {
        tokio::spawn(async move {
            let outcome = versions::sync_repo(&app, &repo, sha, source, None).await;
            detect::log(&repo.name, source, outcome);
        });
    }
    match planned {
        Ok(Ok(p)) if p.runs.is_empty() => ("ignored", Some(p.reasons.join("; ")), Vec::new()),
        Ok(Ok(p)) => {
            let reason = (!p.reasons.is_empty()).then(|| p.reasons.join("; "));
            ("planned", reason, p.runs)
        }
        Ok(Err(e)) => ("error", Some(e), Vec::new()),
        Err(e) => (
            "error",
            Some(format!("the planner panicked: {e}")),
            Vec::new(),
        ),
    }
}

/// Plans off the async threads (planning runs git); `definitions` as for
/// [`planner::plan`]. The outer error is a panic of the planner.
pub async fn plan_off_thread(
    app: &App,
    repo: &config::Repo,
    trigger: crate::forge::payload::Trigger,
    definitions: Option<crate::versions::Definitions>,
) -> Result<Result<planner::Planned, String>, tokio::task::JoinError> {
    let (repo, data_dir) = (repo.clone(), app.data_dir.clone());
    tokio::task::spawn_blocking(move || {
        planner::plan(&repo, &trigger, &data_dir, definitions.as_ref())
    })
    .await
}

/// Expired leases go back to the queue (or fail after the last attempt); unfinished runs
/// are re-checked so no dependent is left waiting.
async fn watch_leases(app: Arc<App>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    let mut sweeps = 0u64;
    loop {
        tick.tick().await;
        match app
            .store
            .expire_leases(app.config().lease.max_attempts)
            .await
        {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(expired = n, "leases expired");
                app.metrics.lease_expired(n);
                app.queued.notify_waiters();
            }
            Err(e) => tracing::error!(error = %e, "lease check failed"),
        }
        sweeps += 1;
        // Planning claims of planners that died, and deliveries a dead replica received.
        if sweeps.is_multiple_of(4) {
            let received_before = store::now_ms() - 3 * store::PLANNING_CLAIM_MS;
            match app.store.unplanned_deliveries(received_before).await {
                Ok(ids) => {
                    for id in ids {
                        let _ = app.planner.send(id);
                    }
                }
                Err(e) => tracing::error!(error = %e, "unplanned deliveries check failed"),
            }
        }
        if sweeps.is_multiple_of(10) {
            if let Err(e) = app.store.advance_open_runs().await {
                tracing::error!(error = %e, "run sweep failed");
            }
            app.queued.notify_waiters();
        }
    }
}
