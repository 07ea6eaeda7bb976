//! The GitLab CI front end: `.gitlab-ci.yml` (with local includes, `extends`, `!reference`
//! and hidden jobs) lowered into the same `Pipeline` the GitHub syntax produces.

pub mod inputs;
mod lower;
mod merge;

pub use lower::{include_admitted, lower};
pub use merge::{Given, IncludeRules, IncludeSource, Resolved, resolve, with_inputs};
