//! Tesseract CI: pipeline specs (GitHub Actions and GitLab CI syntax) → validated model →
//! plans (DAGs of jobs for an event) → `engine` → `exec`. `load` does the pre-plan I/O;
//! `server` and `runner` reuse the planner and the engine through `protocol`.

pub mod allocator;
mod cache_service;
pub mod cli;
pub mod diag;
pub mod engine;
pub mod exec;
pub mod expr;
mod fetch;
pub mod forge;
mod git;
pub mod load;
pub mod plan;
mod protocol;
pub mod rest;
pub mod runner;
pub mod server;
pub mod spec;
pub mod token;
pub mod trigger;
mod versions;
