//! From a trigger to stored runs: fetch the commit into a server-side mirror, read the
//! pipeline files at that SHA, compute the changed files with git, and plan with the
//! shared planner. Blocking (git processes); the server calls it off the async threads.

use super::config::{Forge, Repo};
use super::objects::with_objects;
use super::store::{Gate, NewJob, NewRun, Supersede, random_hex};
use crate::forge::payload::Trigger;
use crate::git::{Remote, run as git};
use crate::plan::{PipelinePlan, plan_pipeline};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What planning a trigger produced.
#[derive(Debug)]
pub struct Planned {
    pub runs: Vec<NewRun>,
    /// Why pipelines did not start (filtered out by their triggers, no pipeline files).
    pub reasons: Vec<String>,
    /// The files the push or change touched, when known.
    pub changed: Option<Vec<String>>,
}

/// Serializes fetches into one mirror (concurrent `git fetch`es fail to lock refs).
fn mirror_lock(dir: &Path) -> std::sync::Arc<std::sync::Mutex<()>> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    Arc::clone(locks.entry(key).or_default())
}

/// Fetches everything into the mirror (one fetch at a time per mirror), from the URL the
/// config names now (a rotated token is used at once).
fn fetch(mirror: &Path, remote: &Remote) -> Result<(), String> {
    let lock = mirror_lock(mirror);
    let _held = lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    crate::git::run_remote(
        mirror,
        remote,
        &[
            "fetch",
            "--quiet",
            "--prune",
            &remote.url,
            crate::git::MIRROR_REFSPEC,
        ],
    )
    .map(drop)
}

/// The mirror of a repository, cloned on first use and fetched when `sha` is missing (or
/// not given). Whether it is there is asked of the mirror's object reader: no process.
pub fn mirror(repo: &Repo, data_dir: &Path, sha: Option<&str>) -> Result<PathBuf, String> {
    mirror_and_subject(repo, data_dir, sha).map(|(dir, _)| dir)
}

/// As [`mirror`], with the subject of `sha` when the mirror already held it (the reader's
/// answer to "is it there", kept for the run's title).
fn mirror_and_subject(
    repo: &Repo,
    data_dir: &Path,
    sha: Option<&str>,
) -> Result<(PathBuf, Option<String>), String> {
    let (dir, fresh) = clone_mirror(repo, data_dir)?;
    let subject = match sha {
        Some(sha) => with_objects(&dir, |o| o.commit_subject(sha))?,
        None => None,
    };
    if !fresh && subject.is_none() {
        fetch(&dir, &Remote::parse(&repo.clone_url))?;
    }
    Ok((dir, subject))
}

/// The mirror's directory, cloned when there is none yet (`true`: cloned just now, so it
/// has everything).
fn clone_mirror(repo: &Repo, data_dir: &Path) -> Result<(PathBuf, bool), String> {
    let remote = Remote::parse(&repo.clone_url);
    let forge = match repo.forge {
        Forge::Github => "github",
        Forge::Gitlab => "gitlab",
    };
    let dir = data_dir
        .join("mirrors")
        .join(forge)
        .join(format!("{}.git", repo.name.replace('/', "__")));
    let canonical = |dir: &Path| {
        dir.canonicalize()
            .map_err(|e| format!("{}: {e}", dir.display()))
    };
    if !dir.join("HEAD").exists() {
        std::fs::create_dir_all(dir.parent().unwrap_or(data_dir))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let tmp = dir.with_extension(format!("tmp-{}", random_hex(4)));
        let mut clone = Command::new("git");
        remote.authorize(&mut clone);
        let out = clone
            // `--no-local`: a local path is cloned through git's protocol, not by copying
            // its object directory, which may hold the objects of a push whose ref is not
            // written yet (the commit found, its branch not).
            .args(["clone", "--mirror", "--quiet", "--no-local", &remote.url])
            .arg(&tmp)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("git: {e}"))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(format!(
                "cannot clone {}: {}",
                remote.url,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        if std::fs::rename(&tmp, &dir).is_ok() {
            return Ok((canonical(&dir)?, true));
        }
        // Another clone (a planner's, a version sync's) won the race; it may be older than
        // the commit wanted, so that mirror is checked and fetched like any other.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok((canonical(&dir)?, false))
}

/// The pipeline files of `sha` in a fresh directory `into`. GitHub's are read from the
/// object store (its workflow directories only: nothing else is read when planning);
/// GitLab's need the whole tree (`rules:exists`, local includes), so it is exported.
pub fn pipeline_tree(mirror: &Path, forge: Forge, sha: &str, into: &Path) -> Result<(), String> {
    match forge {
        Forge::Github => {
            dot_git(mirror, sha, into)?;
            with_objects(mirror, |objects| {
                for dir in pipeline_paths(forge) {
                    objects.write_dir(sha, dir, into)?;
                }
                Ok(())
            })
        }
        Forge::Gitlab => export(mirror, sha, into),
    }
}

/// Where a commit's pipeline files are put to be planned: in memory when the host has a
/// tmpfs and the forge is GitHub (a few small files: making and removing their inodes on
/// ext4 was a third of a webhook's planning), else the system's temporary directory
/// (GitLab's is the commit's whole exported tree).
fn planning_dir(forge: Forge) -> std::io::Result<tempfile::TempDir> {
    let memory = Path::new("/dev/shm");
    let builder = tempfile::Builder::new();
    match forge {
        Forge::Github if memory.is_dir() => builder.tempdir_in(memory),
        _ => builder.tempdir(),
    }
}

/// The files of `sha` in a fresh directory, with a `.git` (see [`dot_git`]).
pub fn export(mirror: &Path, sha: &str, into: &Path) -> Result<(), String> {
    dot_git(mirror, sha, into)?;
    let mut archive = Command::new("git")
        .arg("-C")
        .arg(mirror)
        .args(["archive", "--format=tar", sha])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("git archive: {e}"))?;
    let stdout = archive.stdout.take().ok_or("git archive: no output")?;
    let tar = Command::new("tar")
        .args(["-x", "-C"])
        .arg(into)
        .stdin(stdout)
        .output()
        .map_err(|e| format!("tar: {e}"))?;
    let archived = archive.wait_with_output().map_err(|e| e.to_string())?;
    if !archived.status.success() || !tar.status.success() {
        return Err(format!(
            "cannot read {sha}: {}{}",
            String::from_utf8_lossy(&archived.stderr).trim(),
            String::from_utf8_lossy(&tar.stderr).trim()
        ));
    }
    Ok(())
}

/// A `.git` in `into` whose HEAD is `sha` and whose objects and refs are the mirror's (so
/// the loader finds the root and GitLab's `changes:compare_to` can diff). Made by hand:
/// `git init` costs more than the rest.
fn dot_git(mirror: &Path, sha: &str, into: &Path) -> Result<(), String> {
    let dot_git = into.join(".git");
    let io = |e: std::io::Error| format!("{}: {e}", dot_git.display());
    std::fs::create_dir_all(dot_git.join("objects/info")).map_err(io)?;
    std::fs::write(
        dot_git.join("objects/info/alternates"),
        format!("{}\n", mirror.join("objects").display()),
    )
    .map_err(io)?;
    std::fs::write(dot_git.join("HEAD"), format!("{sha}\n")).map_err(io)?;
    std::fs::write(
        dot_git.join("config"),
        "[core]\n\trepositoryformatversion = 0\n\tbare = false\n",
    )
    .map_err(io)?;
    std::os::unix::fs::symlink(mirror.join("refs"), dot_git.join("refs")).map_err(io)?;
    if mirror.join("packed-refs").exists() {
        std::os::unix::fs::symlink(mirror.join("packed-refs"), dot_git.join("packed-refs"))
            .map_err(io)?;
    }
    Ok(())
}

/// The commit `git_ref` names in the mirror (fetched by [`mirror`] when no SHA was known).
pub fn resolve(repo: &Repo, mirror: &Path, git_ref: &str) -> Result<String, String> {
    git(
        mirror,
        &["rev-parse", "--verify", &format!("{git_ref}^{{commit}}")],
    )
    .map_err(|_| format!("`{git_ref}` does not exist in {}", repo.name))
}

/// Where a repository's pipelines live.
pub fn pipeline_paths(forge: Forge) -> &'static [&'static str] {
    match forge {
        Forge::Github => &[".github/workflows", "pipelines"],
        Forge::Gitlab => &[".gitlab-ci.yml"],
    }
}

/// Plans `trigger` for `repo`: one run per pipeline it starts; a pipeline that does not
/// validate becomes a failed run carrying its diagnostics. With `definitions` (a pipeline
/// version: scheduled runs, and manual runs while a rollback pins one) the pipelines are
/// those instead of the commit's own.
pub fn plan(
    repo: &Repo,
    trigger: &Trigger,
    data_dir: &Path,
    definitions: Option<&crate::versions::Definitions>,
) -> Result<Planned, String> {
    let mut event = trigger.event.clone();
    let (mirror, known) = mirror_and_subject(repo, data_dir, event.sha.as_deref())?;
    let sha = match &event.sha {
        Some(s) => s.clone(),
        None => resolve(repo, &mirror, &event.git_ref)?,
    };
    // Read again only when the commit came with a fetch (or was resolved from a ref).
    let subject = match known {
        Some(subject) => Some(subject),
        None => with_objects(&mirror, |o| o.commit_subject(&sha))?,
    };
    let Some(subject) = subject else {
        return Err(format!("commit {sha} is not in {}", repo.name));
    };
    event.sha = Some(sha.clone());
    if event.project.is_none() && repo.forge == Forge::Gitlab {
        event.project = Some(repo.name.clone());
    }
    // Changed files, so `paths:` / `changes:` filters can be evaluated.
    let compare = match (&trigger.before, &trigger.base) {
        (Some(before), _) => Some(format!("{before}..{sha}")),
        (None, Some(base)) => Some(format!("{base}...{sha}")),
        _ => None,
    };
    if let Some(range) = compare {
        event.changed = git(&mirror, &["diff", "--name-only", &range])
            .ok()
            .map(|out| out.lines().map(String::from).collect());
    }
    let tree = planning_dir(repo.forge).map_err(|e| format!("temporary directory: {e}"))?;
    pipeline_tree(&mirror, repo.forge, &sha, tree.path())?;
    let candidates = pipeline_paths(repo.forge);
    if let Some(definitions) = definitions {
        for path in candidates {
            let path = tree.path().join(path);
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
        definitions.write_sources(tree.path())?;
    }
    let paths: Vec<PathBuf> = candidates
        .iter()
        .map(|p| tree.path().join(p))
        .filter(|p| p.exists())
        .collect();
    if paths.is_empty() {
        return Ok(Planned {
            runs: Vec::new(),
            reasons: vec![format!(
                "no pipeline files ({}) at {sha}",
                candidates.join(", ")
            )],
            changed: event.changed,
        });
    }
    let loaded = crate::load::load_with(&paths, None, Some(&event))?;
    let root = format!("{}/", tree.path().display());
    let relative = |s: &str| s.replace(&root, "");
    let event_json = serde_json::to_string(&event).map_err(|e| e.to_string())?;
    // The pipeline version the runs are of (the id `versions` gives these definitions).
    let version_id = match definitions {
        Some(d) => d.id(),
        None => crate::versions::Definitions::id_of_sources(
            &loaded
                .sources
                .iter()
                .map(|(file, text)| (relative(file), text.clone()))
                .collect(),
        ),
    };
    let title = Some(subject).filter(|t| !t.is_empty());
    let new_run = |pipeline: String, file: String| {
        let mut run = new_run(repo, &event, &sha, event_json.clone(), pipeline, file);
        run.title.clone_from(&title);
        run.version_id = Some(version_id.clone());
        run
    };
    let mut planned = Planned {
        runs: Vec::new(),
        reasons: Vec::new(),
        changed: event.changed.clone(),
    };
    // Files with errors: a failed run that shows every diagnostic, located.
    let mut broken: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.file.clone())
        .collect();
    broken.dedup();
    for file in &broken {
        let text: String = loaded
            .diagnostics
            .iter()
            .filter(|d| &d.file == file)
            .map(|d| d.render(loaded.sources.get(&d.file).map(String::as_str)))
            .collect();
        let shown = relative(file);
        let mut run = new_run(shown.clone(), shown);
        run.error = Some(relative(&text));
        planned.runs.push(run);
    }
    for pipeline in &loaded.pipelines {
        if broken.contains(&pipeline.file) {
            continue;
        }
        let file = relative(&pipeline.file);
        let (plan, diagnostics) = plan_pipeline(pipeline, Some(&event));
        if diagnostics
            .iter()
            .any(super::super::diag::Diagnostic::is_error)
        {
            let text: String = diagnostics
                .iter()
                .map(|d| d.render(loaded.sources.get(&d.file).map(String::as_str)))
                .collect();
            let mut run = new_run(pipeline.name.clone(), file);
            run.error = Some(relative(&text));
            planned.runs.push(run);
            continue;
        }
        if plan.triggered != Some(true) {
            let reason = plan.reason.as_deref().unwrap_or("not triggered");
            planned.reasons.push(format!("{file}: {reason}"));
            // A required check must not wait forever for a pipeline that will not run.
            let pull_request = event.github_name() == "pull_request";
            if pull_request
                && repo
                    .report
                    .as_ref()
                    .is_some_and(|r| r.skipped_pull_requests)
            {
                let mut run = new_run(plan.name.clone(), file);
                run.skipped = Some(reason.to_string());
                planned.runs.push(run);
            }
            continue;
        }
        let mut run = new_run(plan.name.clone(), file);
        run.reason.clone_from(&plan.reason);
        run.jobs = jobs(&plan, repo);
        run.concurrency = concurrency(pipeline, &event, &repo.name, &sha);
        run.cancel_on_job_failure = pipeline.dialect == crate::spec::Dialect::GitLab
            && pipeline.auto_cancel.on_job_failure == "all";
        planned.runs.push(run);
    }
    Ok(planned)
}

/// How many runs `concurrency.queue: max` keeps waiting in one group (GitHub's limit).
const MAX_QUEUED_RUNS: usize = 100;

/// The run's concurrency group, scoped to the repository: GitHub's workflow-level
/// `concurrency` (its expressions see `github.*`, including `workflow` and `repository`),
/// or for GitLab the ref (a newer pipeline auto-cancels interruptible older ones).
fn concurrency(
    pipeline: &crate::spec::Pipeline,
    event: &crate::trigger::Event,
    repo: &str,
    sha: &str,
) -> Option<(String, Supersede)> {
    use crate::expr::Value;
    use crate::plan::{PlanContext, interpolate};
    if pipeline.dialect == crate::spec::Dialect::GitLab {
        // `workflow:auto_cancel:on_new_commit: none`: a newer pipeline cancels nothing.
        if pipeline.auto_cancel.on_new_commit == "none" {
            return None;
        }
        let group = format!("{repo}:gitlab:{}", event.git_ref);
        let policy = match pipeline.auto_cancel.on_new_commit.as_str() {
            "interruptible" => Supersede::InterruptibleJobs,
            _ => Supersede::Interruptible,
        };
        return Some((group, policy));
    }
    let (group, cancel, queue) = match pipeline.concurrency.as_ref()? {
        Json::String(group) => (group.clone(), Json::Bool(false), 1),
        Json::Object(map) => (
            map.get("group")?.as_str()?.to_string(),
            map.get("cancel-in-progress")
                .cloned()
                .unwrap_or(Json::Bool(false)),
            // GitHub: `queue: max` keeps up to 100 runs waiting, `single` (default) one.
            match map.get("queue").and_then(Json::as_str) {
                Some("max") => MAX_QUEUED_RUNS,
                _ => 1,
            },
        ),
        _ => return None,
    };
    let inputs = Value::Object(
        event
            .inputs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    );
    let mut ctx = PlanContext::for_event(Some(event), inputs);
    if let Value::Object(mut github) = (*ctx.github).clone() {
        for (k, v) in [
            ("workflow", &pipeline.name),
            ("repository", &repo.to_string()),
            ("sha", &sha.to_string()),
        ] {
            github.insert(k.into(), Value::String(v.clone()));
        }
        ctx.github = std::rc::Rc::new(Value::Object(github));
    }
    let group = interpolate::string(&group, &ctx)?;
    let cancel = match cancel {
        Json::Bool(b) => b,
        Json::String(text) => interpolate::string(&text, &ctx).is_some_and(|t| t == "true"),
        _ => false,
    };
    let policy = if cancel {
        Supersede::CancelInProgress
    } else {
        Supersede::Queue(queue)
    };
    Some((format!("{repo}:{group}"), policy))
}

/// A run of `pipeline` (in `file`) for `event` at `sha`, with no jobs yet.
pub fn new_run(
    repo: &Repo,
    event: &crate::trigger::Event,
    sha: &str,
    event_json: String,
    pipeline: String,
    file: String,
) -> NewRun {
    NewRun {
        id: run_id(),
        repo: repo.name.clone(),
        forge: repo.forge.as_str().into(),
        pipeline,
        file,
        event: event.github_name().into(),
        git_ref: event.git_ref.clone(),
        sha: sha.to_string(),
        event_json,
        title: None,
        reason: None,
        version_id: None,
        error: None,
        skipped: None,
        jobs: Vec::new(),
        concurrency: None,
        cancel_on_job_failure: false,
    }
}

/// Time-ordered, unique run ids.
fn run_id() -> String {
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S%3f"),
        random_hex(3)
    )
}

fn jobs(plan: &PipelinePlan, repo: &Repo) -> Vec<NewJob> {
    let mut out: Vec<NewJob> = plan
        .jobs
        .iter()
        .map(|j| NewJob {
            key: j.key.clone(),
            id: j.id.clone(),
            name: j.name.clone(),
            needs: j.needs.iter().chain(&j.needs_skipped).cloned().collect(),
            labels: {
                let mut labels = match labels(&j.runs_on) {
                    // GitLab jobs without `tags` go to runners that take untagged jobs.
                    none if none.is_empty() && j.spec.gitlab.is_some() => {
                        vec![crate::runner::UNTAGGED.to_string()]
                    }
                    some => some,
                };
                let docker_steps = j.spec.steps.iter().any(|s| {
                    s.uses
                        .as_deref()
                        .is_some_and(|u| u.starts_with("docker://"))
                });
                if j.spec.container.is_some() || !j.spec.services.is_empty() || docker_steps {
                    labels.push(crate::runner::CONTAINER.to_string());
                }
                labels
            },
            has_condition: j.condition.is_some(),
            spec: serde_json::to_value(j).unwrap_or_default(),
            skipped: None,
            interruptible: j.spec.gitlab.as_ref().is_some_and(|g| g.interruptible),
            gate: gate(j, repo),
            inputs: crate::plan::input_forms(j),
        })
        .collect();
    out.extend(plan.skipped.iter().map(|s| NewJob {
        key: s.key.clone(),
        id: s.id.clone(),
        name: s.name.clone(),
        needs: Vec::new(),
        labels: Vec::new(),
        has_condition: false,
        spec: Json::Null,
        skipped: Some(s.reason.clone()),
        interruptible: true,
        gate: None,
        inputs: Vec::new(),
    }));
    out
}

/// Who must start the job: a person playing a GitLab manual job (blocking the pipeline when
/// it may not fail), or approving a deployment to a protected environment.
fn gate(job: &crate::plan::PlannedJob, repo: &Repo) -> Option<Gate> {
    if let Some(gl) = &job.spec.gitlab
        && gl.when == "manual"
    {
        let may_fail = job.spec.continue_on_error.as_ref().and_then(Json::as_bool);
        return Some(if may_fail == Some(false) {
            Gate::ManualBlocking
        } else {
            Gate::Manual
        });
    }
    let environment = match job.spec.environment.as_ref()? {
        Json::String(name) => name.as_str(),
        Json::Object(map) => map.get("name")?.as_str()?,
        _ => return None,
    };
    repo.protected_environments
        .iter()
        .any(|p| p == environment)
        .then(|| Gate::Approval(environment.to_string()))
}

/// The labels a runner must have: GitHub `runs-on` (a label, a list, or `{labels: …}`),
/// GitLab `tags`.
pub fn labels(runs_on: &Json) -> Vec<String> {
    let strings = |v: &Json| -> Vec<String> {
        match v {
            Json::String(s) => vec![s.clone()],
            Json::Array(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        }
    };
    match runs_on {
        Json::Object(map) => map.get("labels").map(strings).unwrap_or_default(),
        other => strings(other),
    }
}
