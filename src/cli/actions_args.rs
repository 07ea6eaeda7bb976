//! The flags of `tess run` and `tess runner` that say where actions come from and how
//! they run, turned into the engine's [`ActionsRuntime`].

use crate::engine::ActionsRuntime;
use crate::fetch::Source;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Debug, Clone, Default)]
pub(super) struct ActionsArgs {
    /// Where `owner/repo@ref` actions and reusable workflows are fetched from by git
    /// (`{URL}/{owner}/{repo}`): github.com, GitHub Enterprise, a Gitea-style mirror.
    #[arg(
        long,
        env = "TESS_ACTIONS_SERVER",
        default_value = "https://github.com"
    )]
    pub actions_server: String,
    /// A token for the actions server (sent to git as an Authorization header).
    #[arg(long, env = "TESS_ACTIONS_TOKEN", hide_env_values = true)]
    pub actions_token: Option<String>,
    /// Use only actions already in the cache (`$TESS_ACTIONS_CACHE`, else
    /// `~/.cache/tess/actions`); a missing one is named.
    #[arg(long)]
    pub offline: bool,
    /// Use a local checkout for an action, `owner/repo@ref=PATH` (repeatable).
    #[arg(long = "local-action", value_name = "ACTION=PATH")]
    pub local_actions: Vec<String>,
    /// The node that runs JavaScript actions (default: `node` on PATH).
    #[arg(long, value_name = "PATH")]
    pub node: Option<PathBuf>,
    /// An action that cannot run here is shown as ⚠ not run (the job's result
    /// `skipped-steps`) instead of failing its step.
    #[arg(long)]
    pub skip_unavailable: bool,
    /// Run the real actions/checkout, upload-artifact, download-artifact and cache instead
    /// of tess's built-in fast path.
    #[arg(long)]
    pub no_builtin_actions: bool,
}

impl ActionsArgs {
    /// Where actions and reusable workflows come from.
    pub(super) fn source(&self) -> Result<Arc<Source>, String> {
        let mut source = Source::new(
            &self.actions_server,
            self.actions_token.clone(),
            self.offline,
            Source::default_cache(),
        );
        for spec in &self.local_actions {
            source = source.with_override(spec)?;
        }
        Ok(Arc::new(source))
    }

    /// `cache_store`: where the cache service keeps entries (the project's or runner's).
    pub(super) fn runtime(
        &self,
        source: Arc<Source>,
        cache_store: PathBuf,
    ) -> Result<ActionsRuntime, String> {
        let mut runtime = ActionsRuntime::new(source, cache_store);
        runtime.node = self.node.clone();
        runtime.skip_unavailable = self.skip_unavailable;
        runtime.builtins = !self.no_builtin_actions;
        Ok(runtime)
    }

    /// The actions server when it is not github.com: jobs see it as `GITHUB_SERVER_URL`
    /// (actions/checkout clones from there, as on GitHub Enterprise).
    pub(super) fn server_url(&self) -> Option<&str> {
        let url = self.actions_server.trim_end_matches('/');
        (url != "https://github.com").then_some(url)
    }
}
