//! What `tess server` needs to work the first time without a config: its data directory,
//! a database URL users can write the way they expect, and generated tokens kept on disk.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The token files in the data directory (mode 0600).
pub const REGISTRATION_TOKEN_FILE: &str = "registration-token";
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// A database URL as sqlx takes it. SQLite URLs are made absolute and get `mode=rwc`, so a
/// file that does not exist yet is created (with its directory): `sqlite://relative.db`,
/// `sqlite:relative.db`, `sqlite:///abs/path.db` and a bare path all mean a file, relative
/// paths starting in the current directory. `sqlite::memory:` is refused: a server's runs
/// must survive it.
pub fn database_url(raw: &str) -> Result<String, String> {
    if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
        return Ok(raw.to_string());
    }
    let rest = match raw.strip_prefix("sqlite:") {
        Some(rest) => rest.strip_prefix("//").unwrap_or(rest),
        None if raw.contains("://") => {
            let scheme = raw.split("://").next().unwrap_or_default();
            return Err(format!(
                "database URL `{}`: unknown scheme `{scheme}` (use sqlite://PATH, postgres://… or a file path)",
                super::redact_url(raw)
            ));
        }
        None => raw,
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path == ":memory:" || path.is_empty() || query.split('&').any(|p| p == "mode=memory") {
        return Err(format!(
            "database URL `{raw}`: an in-memory database loses every run when the server stops; \
             give a file (sqlite://tess.db) or a PostgreSQL URL"
        ));
    }
    let path = Path::new(path);
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| format!("the current directory: {e}"))?
            .join(path)
    };
    if let Some(dir) = absolute.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("database directory {}: {e}", dir.display()))?;
    }
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    if !params.iter().any(|p| p.starts_with("mode=")) {
        params.push("mode=rwc");
    }
    Ok(format!(
        "sqlite://{}?{}",
        absolute.display(),
        params.join("&")
    ))
}

/// The host (and port) a database URL names, for messages.
pub fn database_host(url: &str) -> String {
    let after = url.split_once("://").map_or(url, |(_, r)| r);
    let after = after.rsplit_once('@').map_or(after, |(_, h)| h);
    let host = after.split(['/', '?']).next().unwrap_or_default();
    if host.is_empty() {
        "localhost".into()
    } else {
        host.to_string()
    }
}

/// A token kept in the data directory: read when there, else generated and written
/// (mode 0600, never overwritten). `true` when it was generated now.
pub fn stored_token(data_dir: &Path, file: &str) -> Result<(String, bool), String> {
    let path = data_dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok((text.trim().to_string(), false)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let token = crate::token::random_hex(24);
    // A temporary file renamed into place: a crash never leaves half a token, and two
    // servers starting at once keep one (the later rename loses to nothing: both read back).
    let tmp = data_dir.join(format!(".{file}.{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(format!("{token}\n").as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| std::fs::hard_link(&tmp, &path));
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok((token, true)),
        // Another server made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            stored_token(data_dir, file).map(|(t, _)| (t, false))
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The tokens the server uses when its config names none, and whether any was made now.
pub struct GeneratedTokens {
    pub registration: Option<(String, bool)>,
    pub admin: Option<(String, bool)>,
}

/// Prints the start-up notes a new user needs: the commands that use the tokens (shown
/// once, when generated), where they are kept, and what a non-loopback address exposes.
pub fn announce(
    tokens: &GeneratedTokens,
    data_dir: &Path,
    url: &str,
    listen_public: bool,
    starter_config: Option<&Path>,
) {
    let file = |name: &str| data_dir.join(name).display().to_string();
    let mut lines = Vec::new();
    match &tokens.registration {
        Some((token, true)) => lines.push(format!(
            "registration token created in {} (mode 0600); register a runner with:\n  \
             tess runner --server {url} --registration-token {token}",
            file(REGISTRATION_TOKEN_FILE)
        )),
        Some((_, false)) => lines.push(format!(
            "runners register with the token in {}:\n  \
             tess runner --server {url} --registration-token-file {}",
            file(REGISTRATION_TOKEN_FILE),
            file(REGISTRATION_TOKEN_FILE)
        )),
        None => {}
    }
    match &tokens.admin {
        Some((token, true)) => lines.push(format!(
            "admin API token created in {} (mode 0600); use it with:\n  \
             tess runs --server {url} --token {token} list",
            file(ADMIN_TOKEN_FILE)
        )),
        Some((_, false)) => lines.push(format!(
            "the admin API token is in {}:\n  \
             tess runs --server {url} --token \"$(cat {})\" list",
            file(ADMIN_TOKEN_FILE),
            file(ADMIN_TOKEN_FILE)
        )),
        None => {}
    }
    if let Some(config) = starter_config {
        lines.push(format!(
            "no --config given: using {} (add [[repo]] sections there; saved changes apply \
             without a restart)",
            config.display()
        ));
    }
    if listen_public && starter_config.is_some() {
        lines.push(
            "warning: listening on a non-loopback address without a config: the webhook \
             endpoints (/hooks/*), the runner API (registration token required), the API \
             (admin token required), /healthz, /readyz and /metrics are reachable from the \
             network"
                .into(),
        );
    }
    for line in lines {
        println!("{line}");
    }
}

/// The config of a server started without `--config`: `tess-data/tess.toml` in the current
/// directory, written once with commented examples. It is watched like any config, so
/// repositories added to it later are served without a restart.
pub fn starter_config() -> Result<PathBuf, String> {
    let dir = std::env::current_dir()
        .map_err(|e| format!("the current directory: {e}"))?
        .join("tess-data");
    create_private_dir(&dir)?;
    let path = dir.join("tess.toml");
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut f) => f
            .write_all(STARTER_CONFIG.as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    Ok(path)
}

/// The data directory, created readable by its owner only (it holds the tokens and the
/// database) when it does not exist yet.
pub fn create_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(format!("{}: {e}", dir.display())),
    }
}

const STARTER_CONFIG: &str = r#"# tess server configuration, written by the first `tess server` started without --config.
# Saved changes are applied at once (no restart). The tokens are in registration-token
# and admin-token beside this file; the database is tess.db. See examples/tess.toml.

# listen = "127.0.0.1:8080"

# [[repo]]
# forge = "github"                       # or "gitlab"
# name = "octo-org/hello"
# clone_url = "https://github.com/octo-org/hello.git"
# webhook_secret = { env = "HELLO_WEBHOOK_SECRET" }
"#;
