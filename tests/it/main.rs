//! The integration test binary: table-driven semantics, the real-world corpus, and the CLI
//! contract run as real processes.

mod action;
mod cli;
mod containers;
mod corpus;
mod cron;
mod diagnostics;
mod expr;
mod faithful;
mod first_start;
mod fleet;
mod forge;
mod gates;
mod git_http;
mod gitlab;
mod glob;
mod hardening;
mod harness;
mod matrix;
mod plan;
mod remote_actions;
mod run;
mod schedules;
mod server;
mod support;
mod triggers;
mod upgrade;
mod versions;
mod web_ui;
mod yaml;
