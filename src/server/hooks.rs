//! `POST /hooks/github` and `POST /hooks/gitlab`: authenticate the delivery, record it once,
//! answer 202, and hand it to the planner. Nothing is stored for a delivery that fails
//! authentication.

use super::App;
use super::config::Forge;
use super::store::Delivery;
use crate::forge::payload::{self, Parsed};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
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

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub async fn github(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let event = header(&headers, "x-github-event").map(String::from);
    let delivery = header(&headers, "x-github-delivery").map(String::from);
    let signature = header(&headers, "x-hub-signature-256").map(String::from);
    receive(
        app,
        Forge::Github,
        event,
        delivery,
        body,
        move |secret, body| github_signature_ok(secret.as_bytes(), body, signature.as_deref()),
    )
    .await
}

pub async fn gitlab(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let event = header(&headers, "x-gitlab-event").map(String::from);
    let delivery = header(&headers, "idempotency-key")
        .or_else(|| header(&headers, "x-gitlab-event-uuid"))
        .map(String::from);
    let token = header(&headers, "x-gitlab-token").map(String::from);
    receive(
        app,
        Forge::Gitlab,
        event,
        delivery,
        body,
        move |secret, _| {
            token
                .as_deref()
                .is_some_and(|t| constant_time_eq(t.as_bytes(), secret.as_bytes()))
        },
    )
    .await
}

async fn receive(
    app: Arc<App>,
    forge: Forge,
    event: Option<String>,
    delivery: Option<String>,
    body: Bytes,
    authentic: impl FnOnce(&str, &[u8]) -> bool,
) -> Response {
    let forge_name = forge.as_str();
    let Some(event) = event else {
        app.metrics.delivery("bad_request");
        return reply(StatusCode::BAD_REQUEST, json!({"error": "no event header"}));
    };
    let parsed_json: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            app.metrics.delivery("bad_request");
            let reason = format!("the body is not JSON: {e}");
            return reply(StatusCode::BAD_REQUEST, json!({"error": reason}));
        }
    };
    let parsed = match payload::parse(forge, &event, &parsed_json) {
        Ok(p) => p,
        Err(reason) => {
            app.metrics.delivery("bad_request");
            return reply(StatusCode::BAD_REQUEST, json!({"error": reason}));
        }
    };
    let repo_name = match &parsed {
        Parsed::Ping { repo } | Parsed::Ignored { repo, .. } => repo.clone(),
        Parsed::Trigger(t) => Some(t.repo.clone()),
    };
    let delivery_id = format!(
        "{forge_name}:{}",
        delivery.unwrap_or_else(|| super::store::sha256_hex(&body))
    );
    let text = String::from_utf8_lossy(&body);
    let config = app.config();
    let repo = repo_name.as_deref().and_then(|n| config.repo(forge, n));
    let Some(repo) = repo else {
        // Recorded (an operator wants to see misconfigured hooks), never planned.
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
        let _ = app.store.insert_delivery(&record).await;
        app.metrics.delivery("unknown_repo");
        return reply(StatusCode::NOT_FOUND, json!({"error": reason}));
    };
    let secret = match repo
        .webhook_secret
        .as_ref()
        .map(|s| s.resolve(&app.base_dir))
    {
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            tracing::error!(repo = %repo.name, error = %e, "webhook secret unavailable");
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "the webhook secret is not available"}),
            );
        }
        None => {
            return reply(
                StatusCode::UNAUTHORIZED,
                json!({"error": "no webhook secret is configured for this repository"}),
            );
        }
    };
    if !authentic(&secret, &body) {
        app.metrics.delivery("unauthorized");
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "bad signature or token"}),
        );
    }
    let (status, reason) = match &parsed {
        Parsed::Ping { .. } => ("ignored", Some("ping".to_string())),
        Parsed::Ignored { reason, .. } => ("ignored", Some(reason.clone())),
        Parsed::Trigger(_) => ("received", None),
    };
    let record = Delivery {
        id: &delivery_id,
        forge: forge_name,
        event: &event,
        repo: repo_name.as_deref(),
        status,
        reason: reason.as_deref(),
        payload: &text,
    };
    let inserted = app.store.insert_delivery(&record).await;
    match inserted {
        Ok(false) => {
            app.metrics.delivery("duplicate");
            reply(
                StatusCode::OK,
                json!({"delivery": delivery_id, "duplicate": true}),
            )
        }
        Ok(true) => {
            app.metrics.delivery(status);
            if status == "received" {
                let _ = app.planner.send(delivery_id.clone());
            }
            reply(
                StatusCode::ACCEPTED,
                json!({"delivery": delivery_id, "status": status, "reason": reason}),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot record a delivery");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "storage unavailable"}),
            )
        }
    }
}
