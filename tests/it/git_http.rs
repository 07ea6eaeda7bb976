//! A git server on 127.0.0.1 speaking git's smart HTTP protocol (`git http-backend` behind
//! a small HTTP server, as a forge serves repositories), with repositories at
//! `{url}/{owner}/{repo}`; the shared action archives are published into it as tags.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub(crate) struct GitHttp {
    pub url: String,
    pub root: PathBuf,
    _runtime: tokio::runtime::Runtime,
}

impl GitHttp {
    pub(crate) fn start(root: &Path) -> GitHttp {
        use axum::body::Bytes;
        use axum::extract::{Path as UrlPath, RawQuery, State};
        use axum::http::{HeaderMap, Method, StatusCode};
        use axum::response::{IntoResponse, Response};
        std::fs::create_dir_all(root).expect("git root");
        async fn cgi(
            State(root): State<PathBuf>,
            method: Method,
            headers: HeaderMap,
            UrlPath(path): UrlPath<String>,
            RawQuery(query): RawQuery,
            body: Bytes,
        ) -> Response {
            let header = move |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            let output = tokio::task::spawn_blocking(move || {
                let mut child = Command::new("git")
                    .arg("http-backend")
                    .env("GIT_PROJECT_ROOT", &root)
                    .env("GIT_HTTP_EXPORT_ALL", "1")
                    .env("PATH_INFO", format!("/{path}"))
                    .env("QUERY_STRING", query.unwrap_or_default())
                    .env("REQUEST_METHOD", method.as_str())
                    .env("CONTENT_TYPE", header("content-type"))
                    .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
                    .env("GIT_PROTOCOL", header("git-protocol"))
                    .env("REMOTE_ADDR", "127.0.0.1")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("git http-backend");
                let mut stdin = child.stdin.take().expect("stdin");
                let writer = std::thread::spawn(move || {
                    let _ = stdin.write_all(&body);
                });
                let mut out = Vec::new();
                child
                    .stdout
                    .take()
                    .expect("stdout")
                    .read_to_end(&mut out)
                    .expect("read");
                let _ = writer.join();
                let _ = child.wait();
                out
            })
            .await
            .expect("cgi");
            // CGI: headers, a blank line, the body.
            let split = output
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|i| (i, 4))
                .or_else(|| output.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
            let Some((end, sep)) = split else {
                return StatusCode::BAD_GATEWAY.into_response();
            };
            let head = String::from_utf8_lossy(&output[..end]).to_string();
            let mut response = Response::builder();
            for line in head.lines() {
                let Some((name, value)) = line.split_once(':') else {
                    continue;
                };
                let value = value.trim();
                if name.eq_ignore_ascii_case("status") {
                    let code = value.split(' ').next().unwrap_or("200");
                    response = response.status(code.parse::<u16>().unwrap_or(200));
                } else {
                    response = response.header(name.trim(), value);
                }
            }
            response
                .body(axum::body::Body::from(output[end + sep..].to_vec()))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::any(cgi))
            .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
            .with_state(root.to_path_buf());
        let (addr, runtime) = crate::harness::serve_on_loopback(app, 2);
        GitHttp {
            url: format!("http://{addr}"),
            root: root.to_path_buf(),
            _runtime: runtime,
        }
    }

    /// Publishes `files` (a directory) as `owner/repo` with `tag` on its only commit, and
    /// returns the commit.
    pub(crate) fn publish_dir(&self, repository: &str, dir: &Path, tag: &str) -> String {
        let bare = self.root.join(repository);
        if !bare.exists() {
            crate::harness::git(
                &self.root,
                &["init", "-q", "--bare", "-b", "main", repository],
            );
        }
        crate::harness::git(dir, &["init", "-q", "-b", "main"]);
        crate::harness::git(dir, &["add", "-A"]);
        crate::harness::git(
            dir,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.com",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                tag,
            ],
        );
        crate::harness::git(dir, &["tag", "-f", tag]);
        let bare_str = bare.display().to_string();
        crate::harness::git(
            dir,
            &[
                "push",
                "-q",
                "-f",
                &bare_str,
                "HEAD:refs/heads/main",
                &format!("refs/tags/{tag}"),
            ],
        );
        crate::harness::git_out(dir, &["rev-parse", "HEAD"])
    }

    /// Publishes one of `../shared/actions`' archives (`owner__repo@tag.tar.gz`) as
    /// `owner/repo` at `tag`; `None` (said, or failed under CI) without the archives.
    pub(crate) fn publish_shared(&self, archive: &str) -> Option<String> {
        let dir = shared_actions()?;
        let (name, tag) = archive.split_once('@').expect("owner__repo@tag");
        let repository = name.replace("__", "/");
        let unpacked = tempfile::tempdir().expect("tempdir");
        let status = Command::new("tar")
            .arg("-xzf")
            .arg(dir.join(format!("{archive}.tar.gz")))
            .arg("-C")
            .arg(unpacked.path())
            .status()
            .expect("tar");
        assert!(status.success(), "unpacking {archive}");
        // One top-level folder named after the repository.
        let top = std::fs::read_dir(unpacked.path())
            .expect("unpacked")
            .flatten()
            .next()
            .expect("a folder")
            .path();
        Some(self.publish_dir(&repository, &top, tag))
    }
}

/// `../shared/actions` (or `$TESS_SHARED/actions`).
pub(crate) fn shared_actions() -> Option<PathBuf> {
    let root = std::env::var_os("TESS_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let dir = root.join("actions");
    if dir.is_dir() {
        return Some(dir);
    }
    crate::support::skip_or_fail(&format!(
        "the shared actions are missing ({}; set TESS_SHARED)",
        dir.display()
    ));
    None
}
