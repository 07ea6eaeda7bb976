//! Web UI sessions: a signed cookie (`HttpOnly`, `SameSite=Strict`, `Secure` behind
//! https) that names which API token logged in — removing the token from the config ends
//! its sessions — and the CSRF token every state-changing form carries.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub(super) const COOKIE: &str = "tess_session";
/// A session lasts this long.
const LIFETIME_MS: i64 = 12 * 3600 * 1000;

/// A logged-in session, as read back from its cookie.
pub(super) struct Session {
    nonce: String,
}

fn sign(key: &[u8], text: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(text.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A short fingerprint of an API token (never the token itself).
fn fingerprint(token: &str) -> String {
    crate::token::sha256_hex(token.as_bytes())[..16].to_string()
}

/// The cookie's value for a login with `token`.
pub(super) fn issue(key: &[u8], token: &str, now_ms: i64) -> String {
    let payload = format!(
        "{}.{}.{}",
        now_ms + LIFETIME_MS,
        crate::token::random_hex(16),
        fingerprint(token)
    );
    let signature = sign(key, &payload);
    format!("{payload}.{signature}")
}

/// The session a cookie value holds, when its signature is ours, it has not expired and
/// its token is still one of `tokens`.
pub(super) fn check(key: &[u8], value: &str, tokens: &[String], now_ms: i64) -> Option<Session> {
    let (payload, signature) = value.rsplit_once('.')?;
    let expected = sign(key, payload);
    if !crate::server::hooks::constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
        return None;
    }
    let mut parts = payload.split('.');
    let expires: i64 = parts.next()?.parse().ok()?;
    let nonce = parts.next()?.to_string();
    let token = parts.next()?;
    let known = tokens.iter().any(|t| fingerprint(t) == token);
    (expires > now_ms && known).then_some(Session { nonce })
}

impl Session {
    /// The CSRF token of this session's forms.
    pub(super) fn csrf(&self, key: &[u8]) -> String {
        sign(key, &format!("csrf:{}", self.nonce))[..32].to_string()
    }
}

/// `Set-Cookie` for `value` (an empty value clears it).
pub(super) fn set_cookie(value: &str, secure: bool) -> String {
    let max_age = if value.is_empty() {
        0
    } else {
        LIFETIME_MS / 1000
    };
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// The session cookie's value in a `Cookie` header.
pub(super) fn from_headers(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(String::from)
        })
}
