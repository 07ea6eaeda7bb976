//! The runtime's cache service, as `@actions/cache` calls it — the REST API under
//! `ACTIONS_CACHE_URL`, and the twirp API under `ACTIONS_RESULTS_URL` (with uploads to a
//! blob URL, as to Azure) when `ACTIONS_CACHE_SERVICE_V2` is set — so the real
//! `actions/cache` and actions built on it save and restore: entries kept on disk by key,
//! version and scope (the branch), matched as GitHub documents ("Matching a cache key").

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What an action is given: `ACTIONS_CACHE_URL` (with its trailing `/`) and
/// `ACTIONS_RUNTIME_TOKEN`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    pub token: String,
}

/// Scopes a token may read, first the one it writes (its run's ref), then fallbacks (the
/// base branch of a pull request, the default branch).
#[derive(Debug, Clone)]
struct Grant {
    scopes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    id: u64,
    key: String,
    version: String,
    scope: String,
    size: u64,
    created_ms: u64,
    committed: bool,
}

struct Service {
    store: PathBuf,
    /// This service's URL (`None`: taken from each request's `Host`, as a server is reached
    /// by whatever name its runners use).
    base: Option<String>,
    grants: Mutex<HashMap<String, Grant>>,
    /// A server's: tokens are signed grants (`tess1.<scopes>.<hmac>`), valid across restarts.
    key: Option<Vec<u8>>,
    /// Serialises reservations and commits (one service per store on a host at a time is
    /// the usual case; files are renamed into place for the rest).
    lock: Mutex<()>,
}

/// A service started by this process on 127.0.0.1 for its runs (`tess run`, a runner).
pub(crate) struct Local {
    service: Arc<Service>,
}

impl Local {
    pub(crate) fn start(store: &Path) -> Result<Local, String> {
        std::fs::create_dir_all(store.join("entries"))
            .map_err(|e| format!("cache service: {}: {e}", store.display()))?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("cache service: bind: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("cache service: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let service = Arc::new(Service {
            store: store.to_path_buf(),
            base: Some(format!("http://{addr}/")),
            grants: Mutex::new(HashMap::new()),
            key: None,
            lock: Mutex::new(()),
        });
        let app = router(Arc::clone(&service));
        std::thread::Builder::new()
            .name("cache-service".into())
            .spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                runtime.block_on(async move {
                    if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
                        let _ = axum::serve(listener, app).await;
                    }
                });
            })
            .map_err(|e| format!("cache service: {e}"))?;
        Ok(Local { service })
    }

    /// A token for one job: it writes to `scopes[0]` and reads all of `scopes`.
    pub(crate) fn endpoint(&self, scopes: &[String]) -> Endpoint {
        let token = crate::token::random_hex(16);
        if let Ok(mut grants) = self.service.grants.lock() {
            grants.insert(
                token.clone(),
                Grant {
                    scopes: scopes.to_vec(),
                },
            );
        }
        Endpoint {
            url: self.service.base.clone().unwrap_or_default(),
            token,
        }
    }
}

/// The cache service inside `tess server`, for its runners: entries under the server's
/// data directory, tokens signed with a key kept there, handed out with each lease.
pub struct Served {
    service: Arc<Service>,
}

impl Served {
    pub fn new(store: &Path, key: Vec<u8>) -> Result<Served, String> {
        std::fs::create_dir_all(store.join("entries"))
            .map_err(|e| format!("cache service: {}: {e}", store.display()))?;
        Ok(Served {
            service: Arc::new(Service {
                store: store.to_path_buf(),
                base: None,
                grants: Mutex::new(HashMap::new()),
                key: Some(key),
                lock: Mutex::new(()),
            }),
        })
    }

    /// The routes, to merge into the server's.
    pub fn router(&self) -> axum::Router {
        router(Arc::clone(&self.service))
    }

    /// A token that writes to `scopes[0]` and reads all of `scopes`.
    pub fn token(&self, scopes: &[String]) -> String {
        let payload = hex(scopes.join("\n").as_bytes());
        let mac = self.service.sign(&payload);
        format!("tess1.{payload}.{mac}")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn router(service: Arc<Service>) -> axum::Router {
    axum::Router::new()
        .route("/_apis/artifactcache/cache", get(lookup))
        .route("/_apis/artifactcache/caches", get(list).post(reserve))
        .route(
            "/_apis/artifactcache/caches/{id}",
            axum::routing::patch(upload).post(commit),
        )
        .route("/_apis/artifactcache/archive/{id}", get(download))
        .route(
            "/twirp/github.actions.results.api.v1.CacheService/{method}",
            axum::routing::post(twirp),
        )
        .route("/tess/cache/{id}", axum::routing::put(blob_put))
        .with_state(service)
}

impl Service {
    fn grant(&self, headers: &HeaderMap) -> Option<Grant> {
        self.grant_of(bearer(headers)?)
    }

    fn grant_of(&self, token: &str) -> Option<Grant> {
        if let Some(grant) = self.grants.lock().ok()?.get(token) {
            return Some(grant.clone());
        }
        let mut parts = token.strip_prefix("tess1.")?.split('.');
        let (payload, mac) = (parts.next()?, parts.next()?);
        if !crate::server::hooks::constant_time_eq(self.sign(payload).as_bytes(), mac.as_bytes()) {
            return None;
        }
        let scopes = String::from_utf8(unhex(payload)?).ok()?;
        Some(Grant {
            scopes: scopes.split('\n').map(String::from).collect(),
        })
    }

    fn sign(&self, payload: &str) -> String {
        use hmac::{Hmac, KeyInit, Mac};
        let Some(key) = &self.key else {
            return String::new();
        };
        let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key) else {
            return String::new();
        };
        mac.update(payload.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// This service's URL as the client reached it.
    fn base(&self, headers: &HeaderMap) -> String {
        if let Some(base) = &self.base {
            return base.clone();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("127.0.0.1");
        let scheme = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("http");
        format!("{scheme}://{host}/")
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.store.join("entries").join(id.to_string())
    }

    fn entries(&self) -> Vec<Entry> {
        let Ok(dirs) = std::fs::read_dir(self.store.join("entries")) else {
            return Vec::new();
        };
        dirs.flatten()
            .filter_map(|d| std::fs::read(d.path().join("entry.json")).ok())
            .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
            .collect()
    }

    fn entry(&self, id: u64) -> Option<Entry> {
        let bytes = std::fs::read(self.dir(id).join("entry.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn save(&self, entry: &Entry) -> std::io::Result<()> {
        let dir = self.dir(entry.id);
        std::fs::create_dir_all(&dir)?;
        let partial = dir.join("entry.json.partial");
        std::fs::write(&partial, serde_json::to_vec(entry)?)?;
        std::fs::rename(partial, dir.join("entry.json"))
    }
}

/// GitHub's order: in each scope, the key exactly, then the key as a prefix, then each
/// restore key as a prefix (newest first); the fallback scopes only after the own scope.
fn find<'e>(
    entries: &'e [Entry],
    keys: &[&str],
    version: &str,
    scopes: &[String],
) -> Option<&'e Entry> {
    let usable = |e: &&Entry| e.committed && e.version == version;
    for scope in scopes {
        let in_scope: Vec<&Entry> = entries
            .iter()
            .filter(usable)
            .filter(|e| &e.scope == scope)
            .collect();
        let newest = |prefix: &str| {
            in_scope
                .iter()
                .filter(|e| e.key.starts_with(prefix))
                .max_by_key(|e| e.created_ms)
                .copied()
        };
        if let Some(primary) = keys.first()
            && let Some(e) = in_scope.iter().find(|e| e.key == *primary)
        {
            return Some(e);
        }
        for key in keys {
            if let Some(e) = newest(key) {
                return Some(e);
            }
        }
    }
    None
}

#[derive(Deserialize)]
struct LookupQuery {
    keys: String,
    version: String,
}

async fn lookup(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Query(query): Query<LookupQuery>,
) -> Response {
    let Some(grant) = service.grant(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let keys: Vec<&str> = query.keys.split(',').filter(|k| !k.is_empty()).collect();
    let entries = service.entries();
    match find(&entries, &keys, &query.version, &grant.scopes) {
        Some(e) => {
            let token = bearer(&headers).unwrap_or_default();
            axum::Json(serde_json::json!({
                "cacheKey": e.key,
                "scope": e.scope,
                "cacheVersion": e.version,
                "creationTime": e.created_ms,
                // The download has no Authorization header: the URL carries the token
                // (and `@actions/cache` masks the URL).
                "archiveLocation": service.archive_url(&service.base(&headers), e.id, token),
            }))
            .into_response()
        }
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    key: String,
}

async fn list(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    let Some(grant) = service.grant(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let caches: Vec<serde_json::Value> = service
        .entries()
        .into_iter()
        .filter(|e| e.committed && e.key == query.key && grant.scopes.contains(&e.scope))
        .map(|e| serde_json::json!({"cacheKey": e.key, "cacheVersion": e.version, "scope": e.scope, "creationTime": e.created_ms}))
        .collect();
    axum::Json(serde_json::json!({"totalCount": caches.len(), "artifactCaches": caches}))
        .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReserveBody {
    key: String,
    version: String,
    #[serde(default)]
    cache_size: Option<u64>,
}

async fn reserve(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<ReserveBody>,
) -> Response {
    let Some(grant) = service.grant(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    match service.reserve(&grant, body.key, body.version, body.cache_size) {
        Ok(id) => (
            StatusCode::CREATED,
            axum::Json(serde_json::json!({"cacheId": id})),
        )
            .into_response(),
        Err(Reserve::Taken(message)) => (
            StatusCode::CONFLICT,
            axum::Json(serde_json::json!({ "message": message })),
        )
            .into_response(),
        Err(Reserve::Io(e)) => (StatusCode::INSUFFICIENT_STORAGE, e).into_response(),
    }
}

enum Reserve {
    Taken(String),
    Io(String),
}

impl Service {
    /// A new, empty, uncommitted entry in the grant's own scope.
    fn reserve(
        &self,
        grant: &Grant,
        key: String,
        version: String,
        size: Option<u64>,
    ) -> Result<u64, Reserve> {
        let scope = grant.scopes.first().cloned().unwrap_or_default();
        let _one = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // An entry is immutable: a second save of the same key, version and scope is
        // refused, as GitHub refuses it ("Unable to reserve cache … another job may be
        // creating this cache").
        let taken = self
            .entries()
            .iter()
            .any(|e| e.key == key && e.version == version && e.scope == scope);
        if taken {
            return Err(Reserve::Taken(format!(
                "Cache already exists. Scope: {scope}, Key: {key}, Version: {version}"
            )));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let id = now * 1000 + u64::from(rand_u16() % 1000);
        let entry = Entry {
            id,
            key,
            version,
            scope,
            size: size.unwrap_or(0),
            created_ms: now,
            committed: false,
        };
        self.save(&entry)
            .and_then(|()| std::fs::write(self.dir(id).join("archive"), b""))
            .map_err(|e| Reserve::Io(e.to_string()))?;
        Ok(id)
    }

    /// Marks an uploaded entry complete, once its archive has the size the client says.
    fn commit(&self, id: u64, size: u64) -> Result<(), (StatusCode, String)> {
        let _one = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(mut entry) = self.entry(id).filter(|e| !e.committed) else {
            return Err((
                StatusCode::NOT_FOUND,
                format!("no cache entry {id} to commit"),
            ));
        };
        let actual = std::fs::metadata(self.dir(id).join("archive")).map_or(0, |m| m.len());
        if actual != size {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("the upload has {actual} bytes, the commit says {size}"),
            ));
        }
        entry.size = actual;
        entry.committed = true;
        self.save(&entry)
            .map_err(|e| (StatusCode::INSUFFICIENT_STORAGE, e.to_string()))
    }

    fn archive_url(&self, base: &str, id: u64, token: &str) -> String {
        format!("{base}_apis/artifactcache/archive/{id}?token={token}")
    }
}

fn rand_u16() -> u16 {
    u16::from_str_radix(&crate::token::random_hex(2), 16).unwrap_or(0)
}

/// Writes a request body to `path` at `offset` as it arrives (an archive chunk is up to
/// 64 MiB: never held in memory whole).
async fn stream_to(
    body: axum::body::Body,
    path: &Path,
    offset: Option<u64>,
) -> std::io::Result<()> {
    use futures_util::StreamExt;
    let mut file = match offset {
        Some(start) => {
            let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
            file.seek(SeekFrom::Start(start))?;
            file
        }
        None => std::fs::File::create(path)?,
    };
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(std::io::Error::other)?;
        file.write_all(&chunk)?;
    }
    file.flush()
}

async fn upload(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<u64>,
    body: axum::body::Body,
) -> Response {
    if service.grant(&headers).is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Some(entry) = service.entry(id).filter(|e| !e.committed) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // `Content-Range: bytes START-END/*`
    let start = headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes "))
        .and_then(|v| v.split('-').next())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(start) = start else {
        return (
            StatusCode::BAD_REQUEST,
            "Content-Range: bytes START-END/* is required",
        )
            .into_response();
    };
    let written = stream_to(body, &service.dir(entry.id).join("archive"), Some(start)).await;
    match written {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (StatusCode::INSUFFICIENT_STORAGE, e.to_string()).into_response(),
    }
}

#[derive(Deserialize)]
struct CommitBody {
    size: u64,
}

async fn commit(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<u64>,
    axum::Json(body): axum::Json<CommitBody>,
) -> Response {
    if service.grant(&headers).is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let _one = service
        .lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(mut entry) = service.entry(id).filter(|e| !e.committed) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let actual = std::fs::metadata(service.dir(id).join("archive")).map_or(0, |m| m.len());
    if actual != body.size {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "the upload has {actual} bytes, the commit says {}",
                body.size
            ),
        )
            .into_response();
    }
    entry.size = actual;
    entry.committed = true;
    match service.save(&entry) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (StatusCode::INSUFFICIENT_STORAGE, e.to_string()).into_response(),
    }
}

#[derive(Deserialize)]
struct DownloadQuery {
    token: String,
}

async fn download(
    State(service): State<Arc<Service>>,
    UrlPath(id): UrlPath<u64>,
    Query(query): Query<DownloadQuery>,
) -> Response {
    let Some(grant) = service.grant_of(&query.token) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let Some(entry) = service
        .entry(id)
        .filter(|e| e.committed && grant.scopes.contains(&e.scope))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match tokio::fs::read(service.dir(entry.id).join("archive")).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// The twirp (JSON) methods of `github.actions.results.api.v1.CacheService`; requests use
/// the proto field names, answers the JSON names.
async fn twirp(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    UrlPath(method): UrlPath<String>,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> Response {
    let Some(token) = bearer(&headers).map(String::from) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let Some(grant) = service.grant_of(&token) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let text = |name: &str| body[name].as_str().unwrap_or_default().to_string();
    let answer = match method.as_str() {
        "CreateCacheEntry" => match service.reserve(&grant, text("key"), text("version"), None) {
            Ok(id) => serde_json::json!({
                "ok": true,
                "signedUploadUrl": format!("{}tess/cache/{id}?sig={token}", service.base(&headers)),
            }),
            Err(Reserve::Taken(message)) => serde_json::json!({"ok": false, "message": message}),
            Err(Reserve::Io(e)) => return (StatusCode::INSUFFICIENT_STORAGE, e).into_response(),
        },
        "FinalizeCacheEntryUpload" => {
            let scope = grant.scopes.first().cloned().unwrap_or_default();
            let (key, version) = (text("key"), text("version"));
            let size = body["size_bytes"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| body["size_bytes"].as_u64())
                .unwrap_or(0);
            let pending = service
                .entries()
                .into_iter()
                .filter(|e| {
                    !e.committed && e.key == key && e.version == version && e.scope == scope
                })
                .max_by_key(|e| e.created_ms);
            match pending.map(|e| (e.id, service.commit(e.id, size))) {
                Some((id, Ok(()))) => serde_json::json!({"ok": true, "entryId": id.to_string()}),
                Some((_, Err((_, message)))) => {
                    serde_json::json!({"ok": false, "message": message})
                }
                None => {
                    serde_json::json!({"ok": false, "message": format!("no upload of {key} to finalize")})
                }
            }
        }
        "GetCacheEntryDownloadURL" => {
            let mut keys = vec![text("key")];
            if let Some(more) = body["restore_keys"].as_array() {
                keys.extend(more.iter().filter_map(|k| k.as_str().map(String::from)));
            }
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let entries = service.entries();
            match find(&entries, &keys, &text("version"), &grant.scopes) {
                Some(e) => serde_json::json!({
                    "ok": true,
                    "signedDownloadUrl": service.archive_url(&service.base(&headers), e.id, &token),
                    "matchedKey": e.key,
                }),
                None => serde_json::json!({"ok": false}),
            }
        }
        other => {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(
                    serde_json::json!({"code": "bad_route", "msg": format!("no method {other}")}),
                ),
            )
                .into_response();
        }
    };
    axum::Json(answer).into_response()
}

#[derive(Deserialize)]
struct BlobQuery {
    sig: String,
    comp: Option<String>,
    blockid: Option<String>,
}

/// The signed upload URL, as the Azure blob client writes to it: one `PUT` of the whole
/// archive, or blocks (`comp=block`) and then the list that orders them (`comp=blocklist`).
async fn blob_put(
    State(service): State<Arc<Service>>,
    UrlPath(id): UrlPath<u64>,
    Query(query): Query<BlobQuery>,
    body: axum::body::Body,
) -> Response {
    if service.grant_of(&query.sig).is_none() {
        return StatusCode::FORBIDDEN.into_response();
    }
    let Some(entry) = service.entry(id).filter(|e| !e.committed) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let dir = service.dir(entry.id);
    let blocks = dir.join("blocks");
    let written = match (query.comp.as_deref(), &query.blockid) {
        (Some("block"), Some(block)) => match std::fs::create_dir_all(&blocks) {
            Ok(()) => {
                let file = blocks.join(crate::token::sha256_hex(block.as_bytes()));
                stream_to(body, &file, None).await
            }
            Err(e) => Err(e),
        },
        (Some("blocklist"), _) => {
            // <BlockList><Latest>ID</Latest>…</BlockList>, in order.
            let Ok(body) = axum::body::to_bytes(body, 1024 * 1024).await else {
                return (StatusCode::PAYLOAD_TOO_LARGE, "block list over 1 MiB").into_response();
            };
            let xml = String::from_utf8_lossy(&body);
            let ids = regex::Regex::new(r"<(?:Latest|Uncommitted|Committed)>([^<]*)</")
                .map(|re| {
                    re.captures_iter(&xml)
                        .map(|c| c[1].to_string())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            let block_file = |id: &String| blocks.join(crate::token::sha256_hex(id.as_bytes()));
            if let Some(block) = ids.iter().find(|id| !block_file(id).is_file()) {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("block {block} was not uploaded"),
                )
                    .into_response();
            }
            // Block files appended in order, never all in memory.
            let joined = std::fs::File::create(dir.join("archive")).and_then(|mut archive| {
                for id in &ids {
                    std::io::copy(&mut std::fs::File::open(block_file(id))?, &mut archive)?;
                }
                archive.flush()
            });
            let _ = std::fs::remove_dir_all(&blocks);
            joined
        }
        _ => stream_to(body, &dir.join("archive"), None).await,
    };
    match written {
        Ok(()) => (StatusCode::CREATED, [("etag", format!("\"{id}\""))]).into_response(),
        Err(e) => (StatusCode::INSUFFICIENT_STORAGE, e.to_string()).into_response(),
    }
}
