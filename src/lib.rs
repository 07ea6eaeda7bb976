//! Tesseract CI: pipeline specs (GitHub Actions syntax) → validated model → plans (DAGs of
//! jobs for an event). Layers: `spec` → `plan`, using `trigger` and `expr`; `load` does I/O.

pub mod cli;
pub mod diag;
pub mod engine;
pub mod exec;
pub mod expr;
pub mod git;
pub mod load;
pub mod plan;
pub mod spec;
pub mod trigger;
