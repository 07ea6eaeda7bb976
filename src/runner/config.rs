//! `runner.toml`: the runner's settings in a file (what a systemd unit or a container image
//! ships; `tess runner --config`); flags given on the command line win over it.

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerFile {
    pub server: Option<String>,
    /// Extra labels (`self-hosted`, the OS and the arch are implied).
    #[serde(default)]
    pub labels: Vec<String>,
    pub concurrency: Option<usize>,
    pub workdir: Option<PathBuf>,
    pub name: Option<String>,
    pub poll_seconds: Option<u64>,
    /// GitHub-hosted labels served (default on Linux: ubuntu-latest, ubuntu-24.04,
    /// ubuntu-22.04; `[]` for none).
    pub hosted_labels: Option<Vec<String>>,
    /// Take GitLab jobs without `tags` (default true).
    pub run_untagged: Option<bool>,
    /// After SIGTERM, running jobs get this long before they are cancelled (default 600).
    pub drain_timeout_seconds: Option<u64>,
    /// `auto` (default), `host` or `container`: where jobs that ask for containers run.
    pub executor: Option<crate::engine::containers::ExecutorMode>,
    /// A file holding the registration token (a systemd credential, a Kubernetes secret).
    pub registration_token_file: Option<PathBuf>,
}

impl RunnerFile {
    pub fn load(path: &Path) -> Result<RunnerFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        crate::diag::from_toml(&text, &path.display().to_string())
    }
}

/// The token in a file, without its trailing newline.
pub fn read_token(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|t| t.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|e| format!("{}: {e}", path.display()))
}
