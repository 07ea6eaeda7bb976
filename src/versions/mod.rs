//! Pipeline definitions as versioned configuration: a set of pipeline files read, validated
//! and normalized into a [`Definitions`] whose content hash is the version id; `diff.rs`
//! says what changed between two of them.

mod diff;

pub(crate) use diff::{Change, change_line, diff};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One validated set of pipeline definitions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Definitions {
    /// Each file read (pipelines and the files they include), relative to the root, as
    /// normalized JSON: formatting, comments and key order do not make a new version.
    pub files: BTreeMap<String, Json>,
    /// The model the diff speaks about, by pipeline file.
    pub pipelines: BTreeMap<String, PipelineModel>,
    /// The texts as read, so runs can be planned from this version later (rollback).
    pub sources: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineModel {
    pub name: String,
    pub dialect: String,
    /// GitHub's `on:`; GitLab's `workflow:`.
    pub triggers: Json,
    pub schedules: Vec<ScheduleDef>,
    /// Each job's definition (GitHub `jobs.<id>`, GitLab's top-level jobs), by id.
    pub jobs: IndexMap<String, Json>,
}

/// One `on.schedule` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleDef {
    pub cron: String,
    pub timezone: String,
}

/// Definitions that did not validate: every problem, located (`file:line:col`).
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The hash of the texts (there is no normalized form to hash).
    pub id: String,
    pub errors: String,
    pub sources: BTreeMap<String, String>,
}

/// Each file as normalized JSON: formatting, comments and key order make no new version.
fn normalized(sources: &BTreeMap<String, String>) -> BTreeMap<String, Json> {
    sources
        .iter()
        .map(|(file, text)| {
            let (node, _) = crate::spec::yaml::parse(file, text.as_bytes());
            (
                file.clone(),
                node.map_or(Json::Null, |n| canonical(&n.to_json())),
            )
        })
        .collect()
}

fn id_of(files: &BTreeMap<String, Json>) -> String {
    hash(&serde_json::to_string(files).unwrap_or_default())
}

/// GitLab's top-level keywords; every other visible key is a job.
const GITLAB_GLOBALS: [&str; 11] = [
    "default",
    "include",
    "stages",
    "variables",
    "workflow",
    "image",
    "services",
    "cache",
    "before_script",
    "after_script",
    "spec",
];

impl Definitions {
    /// Reads the pipelines under `root` at `paths` (files or directories, relative to it).
    pub fn read(root: &Path, paths: &[&str]) -> Result<Definitions, Rejected> {
        let paths: Vec<PathBuf> = paths
            .iter()
            .map(|p| root.join(p))
            .filter(|p| p.exists())
            .collect();
        let relative = |file: &str| {
            Path::new(file)
                .strip_prefix(root)
                .map_or_else(|_| file.to_string(), |p| p.display().to_string())
        };
        let loaded = match crate::load::load_with(&paths, None, None) {
            Ok(loaded) => loaded,
            Err(e) => {
                return Err(Rejected {
                    id: hash(&e),
                    errors: relative(&e),
                    sources: BTreeMap::new(),
                });
            }
        };
        let sources: BTreeMap<String, String> = loaded
            .sources
            .iter()
            .map(|(file, text)| (relative(file), text.clone()))
            .collect();
        if loaded.has_errors() {
            let root_prefix = format!("{}/", root.display());
            return Err(Rejected {
                id: hash(&serde_json::to_string(&sources).unwrap_or_default()),
                errors: loaded.render_diagnostics().replace(&root_prefix, ""),
                sources,
            });
        }
        let mut definitions = Definitions {
            sources,
            ..Definitions::default()
        };
        definitions.files = normalized(&definitions.sources);
        for pipeline in &loaded.pipelines {
            let file = relative(&pipeline.file);
            let document = definitions.files.get(&file).cloned().unwrap_or(Json::Null);
            let gitlab = pipeline.dialect == crate::spec::Dialect::GitLab;
            let jobs = match (&document, gitlab) {
                (Json::Object(top), true) => top
                    .iter()
                    .filter(|(k, _)| !k.starts_with('.') && !GITLAB_GLOBALS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                _ => document["jobs"]
                    .as_object()
                    .map(|jobs| jobs.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
            };
            let triggers = document
                .get(if gitlab { "workflow" } else { "on" })
                .cloned()
                .unwrap_or(Json::Null);
            let schedules = pipeline
                .on
                .schedules
                .iter()
                .map(|s| ScheduleDef {
                    cron: s.cron.source.clone(),
                    timezone: s.timezone.name().to_string(),
                })
                .collect();
            definitions.pipelines.insert(
                file,
                PipelineModel {
                    name: pipeline.name.clone(),
                    dialect: if gitlab { "gitlab" } else { "github" }.into(),
                    triggers,
                    schedules,
                    jobs,
                },
            );
        }
        Ok(definitions)
    }

    /// The version id: a hash of the normalized files.
    pub fn id(&self) -> String {
        id_of(&self.files)
    }

    /// The id of the version these sources (file relative to the root → text) are, without
    /// reading the rest of the definitions (the planner knows which version a run ran).
    pub fn id_of_sources(sources: &BTreeMap<String, String>) -> String {
        id_of(&normalized(sources))
    }

    /// Writes the sources under `root` (planning a run from this version).
    pub fn write_sources(&self, root: &Path) -> Result<(), String> {
        for (file, text) in &self.sources {
            let path = root.join(file);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }
}

/// Objects with their keys sorted, recursively.
pub(crate) fn canonical(value: &Json) -> Json {
    match value {
        Json::Object(map) => {
            let sorted: BTreeMap<&String, Json> =
                map.iter().map(|(k, v)| (k, canonical(v))).collect();
            Json::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Json::Array(items) => Json::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// The first 16 bytes of SHA-256, in hex.
pub(crate) fn hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}
