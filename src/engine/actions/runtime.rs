//! What running actions needs beyond one job: where they come from ([`fetch::Source`]),
//! which node runs them, the tool cache, and the run's cache service (started on first use).

use crate::cache_service;
use crate::fetch;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

pub struct ActionsRuntime {
    pub source: Arc<fetch::Source>,
    /// `--node PATH`; else `node` on PATH.
    pub node: Option<PathBuf>,
    /// `--skip-unavailable`: an action that cannot run is a visible "not run", not a failure.
    pub skip_unavailable: bool,
    /// The built-in fast path for checkout / artifacts / cache (`--no-builtin-actions` off).
    pub builtins: bool,
    /// `RUNNER_TOOL_CACHE`: kept between runs so `setup-*` actions find what they installed.
    pub tool_cache: PathBuf,
    /// Where the cache service keeps its entries (`.tess/actions-cache` of the project).
    pub cache_store: PathBuf,
    started: OnceLock<Result<cache_service::Local, String>>,
    warned: Mutex<HashSet<String>>,
}

impl ActionsRuntime {
    pub fn new(source: Arc<fetch::Source>, cache_store: PathBuf) -> ActionsRuntime {
        ActionsRuntime {
            source,
            node: None,
            skip_unavailable: false,
            builtins: true,
            tool_cache: default_tool_cache(),
            cache_store,
            started: OnceLock::new(),
            warned: Mutex::new(HashSet::new()),
        }
    }

    /// The cache service for `scopes` (the run's ref, then the branches it may read): one
    /// started for this process on 127.0.0.1 when an action first needs it.
    pub fn cache(&self, scopes: &[String]) -> Result<cache_service::Endpoint, String> {
        let local = self
            .started
            .get_or_init(|| cache_service::Local::start(&self.cache_store));
        match local {
            Ok(local) => Ok(local.endpoint(scopes)),
            Err(e) => Err(e.clone()),
        }
    }

    /// True the first time `what` is asked (a warning is given once per run).
    pub fn first_time(&self, what: &str) -> bool {
        self.warned
            .lock()
            .map(|mut w| w.insert(what.to_string()))
            .unwrap_or(false)
    }

    /// The node program and its major version (`None`: it does not start).
    pub fn node(&self) -> (String, Option<u32>) {
        static VERSIONS: OnceLock<Mutex<std::collections::HashMap<String, Option<u32>>>> =
            OnceLock::new();
        let program = self
            .node
            .as_ref()
            .map_or_else(|| "node".to_string(), |p| p.display().to_string());
        let versions = VERSIONS.get_or_init(Default::default);
        let mut versions = versions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let major = *versions.entry(program.clone()).or_insert_with(|| {
            let out = std::process::Command::new(&program)
                .arg("--version")
                .stdin(std::process::Stdio::null())
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout);
            text.trim()
                .trim_start_matches('v')
                .split('.')
                .next()?
                .parse()
                .ok()
        });
        (program, major)
    }
}

/// `$RUNNER_TOOL_CACHE` as a self-hosted GitHub runner honours it, else the user's cache.
pub(crate) fn default_tool_cache() -> PathBuf {
    match std::env::var_os("RUNNER_TOOL_CACHE").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => fetch::user_cache_dir().join("toolcache"),
    }
}
