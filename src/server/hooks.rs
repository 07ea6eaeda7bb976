//! `POST /hooks/github` and `POST /hooks/gitlab`: authenticate the delivery, then parse and
//! record it once, answer 202 (committed), and hand it to the planner. Nothing is stored
//! for a delivery that fails authentication.

use super::App;
use super::config::Forge;
use super::store::Delivery;
use crate::forge::payload::{self, Parsed};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use std::sync::Arc;

/// `X-Hub-Signature-256: sha256=<hex>` over the raw body, compared in constant time.
pub fn github_signature_ok(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Some(expected) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// Compares two secrets without an early exit on the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn reply(status: StatusCode, body: impl serde::Serialize) -> Response {
    (status, axum::Json(body)).into_response()
}

/// An error answer (`{"error": …}`).
fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    reply(
        status,
        crate::rest::ErrorBody {
            error: message.into(),
        },
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Longest repository name, event name and delivery id stored (longer is refused).
const MAX_NAME: usize = 512;

/// The request's parts a hook handler reads before the body.
struct Incoming {
    forge: Forge,
    event: Option<String>,
    delivery: Option<String>,
    /// The signature (GitHub) or token (GitLab) header; without it nothing is read.
    credential: Option<String>,
    form_encoded: bool,
    declared_length: Option<usize>,
}

fn incoming(forge: Forge, headers: &HeaderMap) -> Incoming {
    let (event, delivery, credential) = match forge {
        Forge::Github => (
            header(headers, "x-github-event"),
            header(headers, "x-github-delivery"),
            header(headers, "x-hub-signature-256"),
        ),
        Forge::Gitlab => (
            header(headers, "x-gitlab-event"),
            header(headers, "idempotency-key").or_else(|| header(headers, "x-gitlab-event-uuid")),
            header(headers, "x-gitlab-token"),
        ),
    };
    Incoming {
        forge,
        event: event.map(String::from),
        delivery: delivery.map(String::from),
        credential: credential.map(String::from),
        form_encoded: header(headers, "content-type")
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded")),
        declared_length: header(headers, "content-length").and_then(|n| n.parse().ok()),
    }
}

#[utoipa::path(post, path = "/hooks/github", summary = "GitHub webhook (X-Hub-Signature-256, X-GitHub-Event, X-GitHub-Delivery)", responses((status = 202, description = "accepted: stored and planned", body = crate::rest::DeliveryReceived), (status = 200, description = "a redelivery: nothing new stored", body = crate::rest::DeliveryReceived), (status = 400, description = "not a valid delivery", body = crate::rest::ErrorBody), (status = 401, description = "a bad signature", body = crate::rest::ErrorBody), (status = 404, description = "the repository is not configured", body = crate::rest::ErrorBody), (status = 413, description = "too large", body = crate::rest::ErrorBody)))]
pub async fn github(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    receive(app, incoming(Forge::Github, &headers), body).await
}

#[utoipa::path(post, path = "/hooks/gitlab", summary = "GitLab webhook (X-Gitlab-Token, X-Gitlab-Event, Idempotency-Key / X-Gitlab-Event-UUID)", responses((status = 202, description = "accepted: stored and planned", body = crate::rest::DeliveryReceived), (status = 200, description = "a redelivery: nothing new stored", body = crate::rest::DeliveryReceived), (status = 400, description = "not a valid delivery", body = crate::rest::ErrorBody), (status = 401, description = "a bad token", body = crate::rest::ErrorBody), (status = 404, description = "the project is not configured", body = crate::rest::ErrorBody), (status = 413, description = "too large", body = crate::rest::ErrorBody)))]
pub async fn gitlab(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    receive(app, incoming(Forge::Gitlab, &headers), body).await
}

/// Whether the delivery was signed (GitHub) or carries the token (GitLab) of `secret`.
fn authentic(forge: Forge, credential: &str, secret: &str, body: &[u8]) -> bool {
    match forge {
        Forge::Github => github_signature_ok(secret.as_bytes(), body, Some(credential)),
        Forge::Gitlab => constant_time_eq(credential.as_bytes(), secret.as_bytes()),
    }
}

fn unauthorized(app: &App, message: &str) -> Response {
    app.metrics.delivery("unauthorized");
    refuse(StatusCode::UNAUTHORIZED, message)
}

/// Authenticate, then parse, then record: nothing of a request that fails authentication
/// is read past its headers and the signature check, or stored (it is only counted).
async fn receive(app: Arc<App>, req: Incoming, body: Body) -> Response {
    let forge = req.forge;
    let forge_name = forge.as_str();
    let Some(credential) = req.credential else {
        return unauthorized(&app, "no signature or token header");
    };
    let body = match app
        .body_budget
        .read(body, req.declared_length, super::MAX_BODY)
        .await
    {
        Ok(held) => held,
        Err(e) => {
            app.metrics.delivery("bad_request");
            return refuse(e.status(), e.message());
        }
    };
    let raw = &body.bytes[..];
    // The secret that signed it, among the configured repositories' secrets; the
    // repository the payload names must be one that has it.
    let config = app.config();
    let mut matched = None;
    for repo in config.repos.iter().filter(|r| r.forge == forge) {
        let Some(secret) = &repo.webhook_secret else {
            continue;
        };
        match secret.resolve(&app.base_dir) {
            Ok(secret) if authentic(forge, &credential, &secret, raw) => {
                matched = Some(secret);
                break;
            }
            Ok(_) => {}
            Err(e) => tracing::error!(repo = %repo.name, error = %e, "webhook secret unavailable"),
        }
    }
    let Some(secret) = matched else {
        return unauthorized(&app, "bad signature or token");
    };
    let Some(event) = req.event.filter(|e| e.len() <= MAX_NAME) else {
        app.metrics.delivery("bad_request");
        return refuse(StatusCode::BAD_REQUEST, "no event header (or one too long)");
    };
    // GitHub offers `application/x-www-form-urlencoded` hooks: the JSON is the `payload`
    // field, and the signature covers the raw form body (checked above).
    let json_text = if req.form_encoded {
        match form_urlencoded::parse(raw).find(|(k, _)| k == "payload") {
            Some((_, v)) => v.into_owned().into_bytes(),
            None => {
                app.metrics.delivery("bad_request");
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "a form-encoded delivery without a `payload` field",
                );
            }
        }
    } else {
        raw.to_vec()
    };
    let parsed_json: serde_json::Value = match serde_json::from_slice(&json_text) {
        Ok(v) => v,
        Err(e) => {
            app.metrics.delivery("bad_request");
            let reason = format!("the body is not JSON: {e}");
            return refuse(StatusCode::BAD_REQUEST, reason);
        }
    };
    let parsed = match payload::parse(forge, &event, &parsed_json) {
        Ok(p) => p,
        Err(reason) => {
            app.metrics.delivery("bad_request");
            return refuse(StatusCode::BAD_REQUEST, reason);
        }
    };
    let repo_name = match &parsed {
        Parsed::Ping { repo } | Parsed::Ignored { repo, .. } => repo.clone(),
        Parsed::Trigger(t) => Some(t.repo.clone()),
    };
    if repo_name.as_ref().is_some_and(|n| n.len() > MAX_NAME)
        || req.delivery.as_ref().is_some_and(|d| d.len() > MAX_NAME)
    {
        app.metrics.delivery("bad_request");
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("a repository name or delivery id over {MAX_NAME} bytes"),
        );
    }
    let delivery_id = format!(
        "{forge_name}:{}",
        req.delivery
            .unwrap_or_else(|| super::store::sha256_hex(&json_text))
    );
    let repo = repo_name.as_deref().and_then(|n| config.repo(forge, n));
    let Some(repo) = repo else {
        // Signed with a configured secret, for a repository that is not configured (a
        // hook left on a renamed repository): recorded for the operator, never planned.
        let reason = format!(
            "repository `{}` is not configured",
            repo_name.as_deref().unwrap_or("?")
        );
        let record = Delivery {
            id: &delivery_id,
            forge: forge_name,
            event: &event,
            repo: repo_name.as_deref(),
            status: "rejected",
            reason: Some(&reason),
            payload: "",
        };
        if let Err(e) = app.store.insert_delivery(&record).await {
            return storage_unavailable(&app, &e);
        }
        app.metrics.delivery("unknown_repo");
        return refuse(StatusCode::NOT_FOUND, reason);
    };
    let own_secret = repo
        .webhook_secret
        .as_ref()
        .and_then(|s| s.resolve(&app.base_dir).ok());
    if own_secret.is_none_or(|own| !constant_time_eq(own.as_bytes(), secret.as_bytes())) {
        // Signed with another repository's secret.
        return unauthorized(&app, "bad signature or token");
    }
    let (status, reason) = match &parsed {
        Parsed::Ping { .. } => ("ignored", Some("ping".to_string())),
        Parsed::Ignored { reason, .. } => ("ignored", Some(reason.clone())),
        Parsed::Trigger(_) => ("received", None),
    };
    let text = String::from_utf8_lossy(&json_text);
    let record = Delivery {
        id: &delivery_id,
        forge: forge_name,
        event: &event,
        repo: repo_name.as_deref(),
        status,
        reason: reason.as_deref(),
        payload: &text,
    };
    match app.store.insert_delivery(&record).await {
        Ok(false) => {
            app.metrics.delivery("duplicate");
            reply(
                StatusCode::OK,
                crate::rest::DeliveryReceived {
                    delivery: delivery_id,
                    duplicate: true,
                    status: None,
                    reason: None,
                },
            )
        }
        Ok(true) => {
            app.metrics.delivery(status);
            if status == "received" {
                let _ = app.planner.send(delivery_id.clone());
            }
            reply(
                StatusCode::ACCEPTED,
                crate::rest::DeliveryReceived {
                    delivery: delivery_id,
                    duplicate: false,
                    status: Some(status.to_string()),
                    reason,
                },
            )
        }
        Err(e) => storage_unavailable(&app, &e),
    }
}

/// Not stored: the forge is told to deliver again later (a 202 always means committed).
fn storage_unavailable(app: &App, e: &super::store::StoreError) -> Response {
    tracing::error!(error = %e, "cannot record a delivery");
    app.metrics.delivery("storage_error");
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage unavailable; deliver again later",
    )
}
