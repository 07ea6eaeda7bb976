//! GitHub App authentication: a JWT signed with the app's private key (RS256) is traded for
//! an installation token, kept and renewed five minutes before it expires.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};

pub struct AppAuth {
    pub app_id: u64,
    key: RsaKeyPair,
    /// Looked up from the repository when not configured.
    pub installation_id: tokio::sync::Mutex<Option<u64>>,
    /// The installation token and when it expires (Unix seconds).
    pub token: tokio::sync::Mutex<Option<(String, i64)>>,
}

impl std::fmt::Debug for AppAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AppAuth {{ app_id: {}, key: <redacted> }}", self.app_id)
    }
}

impl AppAuth {
    /// `pem`: the private key GitHub gives an app (PKCS#1 `RSA PRIVATE KEY` or PKCS#8).
    pub fn new(app_id: u64, pem: &str, installation_id: Option<u64>) -> Result<AppAuth, String> {
        let body: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::trim)
            .collect();
        let der = STANDARD
            .decode(body)
            .map_err(|_| "the GitHub App private key is not PEM".to_string())?;
        let key = RsaKeyPair::from_der(&der)
            .or_else(|_| RsaKeyPair::from_pkcs8(&der))
            .map_err(|e| format!("the GitHub App private key cannot be used: {e}"))?;
        Ok(AppAuth {
            app_id,
            key,
            installation_id: tokio::sync::Mutex::new(installation_id),
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// The app's own token: valid ten minutes (issued a minute early, against clock skew).
    pub fn jwt(&self) -> Result<String, String> {
        let now = chrono::Utc::now().timestamp();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims =
            serde_json::json!({"iat": now - 60, "exp": now + 540, "iss": self.app_id.to_string()});
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let message = format!("{header}.{claims}");
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                message.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "signing the GitHub App token failed".to_string())?;
        Ok(format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}
