//! `tess runs`: a client for a `tess server`'s API (list, show, wait, logs, cancel, rerun).

use crate::engine::Conclusion;
use crate::rest::{RunDetail, RunList};
use std::io::{BufRead, BufReader, Write};

pub(super) enum Action {
    List,
    Show(String),
    Wait {
        run: String,
        timeout: std::time::Duration,
    },
    Logs {
        run: String,
        job: String,
        follow: bool,
        raw: bool,
    },
    Cancel(String),
    Rerun {
        run: String,
        failed: bool,
    },
}

pub(super) fn agent() -> reqwest::blocking::Client {
    // No overall timeout: `logs --follow` streams until the job ends.
    reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .unwrap_or_else(|_| reqwest::blocking::Client::new())
}

/// Job keys can hold spaces, slashes and parentheses: escape them for one path segment.
pub(super) fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(super) fn call(
    method: &str,
    url: &str,
    token: &str,
) -> Result<reqwest::blocking::Response, super::CliError> {
    let request = match method {
        "POST" => agent().post(url),
        _ => agent().get(url),
    };
    let response = request
        .bearer_auth(token)
        .send()
        // Not reached (refused, timed out): the server or the network, not the input.
        .map_err(|e| super::CliError::Runtime(format!("{url}: {e}")))?;
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let body = response.text().unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(String::from))
        .unwrap_or(body);
    let message = format!("{url}: {status}: {message}");
    Err(if status.is_server_error() {
        super::CliError::Runtime(message)
    } else {
        super::CliError::Invalid(message)
    })
}

/// The answer of `method url`, read as the API's type `T` (see `rest`).
pub(super) fn json<T: serde::de::DeserializeOwned>(
    method: &str,
    url: &str,
    token: &str,
) -> Result<T, super::CliError> {
    let text = call(method, url, token)?
        .text()
        .map_err(|e| super::CliError::Runtime(format!("{url}: {e}")))?;
    Ok(serde_json::from_str(&text).map_err(|e| format!("{url}: not the expected answer: {e}"))?)
}

/// The run id that means "the newest run".
const LATEST: &str = "latest";

fn newest_run(base: &str, token: &str) -> Result<Option<String>, super::CliError> {
    let runs: RunList = json("GET", &format!("{base}/runs?limit=1"), token)?;
    Ok(runs.runs.into_iter().next().map(|r| r.id))
}

/// `tess runs wait`: polls the run once a second (a terminal's pace) until it ends.
fn wait(
    base: &str,
    token: &str,
    id: &str,
    timeout: std::time::Duration,
    out: &mut impl Write,
) -> Result<u8, super::CliError> {
    let deadline = std::time::Instant::now() + timeout;
    let w = |e: std::io::Error| e.to_string();
    let mut announced = std::collections::HashSet::new();
    let mut id = (id != LATEST).then(|| id.to_string());
    loop {
        if id.is_none() {
            id = newest_run(base, token)?;
        }
        if let Some(id) = &id {
            let run: RunDetail = json("GET", &format!("{base}/runs/{}", segment(id)), token)?;
            let status = run.run.status.as_str();
            for j in &run.jobs {
                let (state, key) = (j.state.as_str(), &j.key);
                let done = ["success", "failed", "cancelled", "skipped"].contains(&state);
                if done && announced.insert(key.clone()) {
                    let why = j
                        .error
                        .as_ref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default();
                    writeln!(out, "  {key}: {state}{why}").map_err(w)?;
                }
            }
            if ["success", "failed", "cancelled"].contains(&status) {
                writeln!(out, "run {id}: {status}").map_err(w)?;
                return Ok(u8::from(status != "success"));
            }
        }
        if std::time::Instant::now() >= deadline {
            writeln!(out, "gave up after {} s", timeout.as_secs()).map_err(w)?;
            return Ok(1);
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// The stored log as a reader wants it: each step a section (`▸ name`, its lines indented),
/// `##[error]`-style markers as words; whole lines only (a chunk may end mid-line).
pub(super) struct LogRenderer {
    raw: bool,
    lines: crate::exec::WholeLines,
    in_section: bool,
}

impl LogRenderer {
    pub(super) fn new(raw: bool) -> LogRenderer {
        LogRenderer {
            raw,
            lines: crate::exec::WholeLines::default(),
            in_section: false,
        }
    }

    pub(super) fn push(&mut self, chunk: &str) -> String {
        if self.raw {
            return chunk.to_string();
        }
        let Some(complete) = self.lines.push(chunk) else {
            return String::new();
        };
        let mut out = String::new();
        for line in complete.lines() {
            self.line(line, &mut out);
        }
        out
    }

    /// What is left after the last newline.
    pub(super) fn finish(&mut self) -> String {
        let rest = self.lines.finish();
        let mut out = String::new();
        if !rest.is_empty() {
            self.line(&rest, &mut out);
        }
        out
    }

    fn line(&mut self, line: &str, out: &mut String) {
        if let Some(title) = line.strip_prefix("##[group]") {
            self.in_section = true;
            out.push_str(&format!("▸ {title}\n"));
            return;
        }
        if line.starts_with("##[endgroup]") {
            self.in_section = false;
            return;
        }
        let text = ["error", "warning", "notice", "debug"]
            .iter()
            .find_map(|level| {
                line.strip_prefix(&format!("##[{level}]"))
                    .map(|m| format!("{level}: {m}"))
            })
            .unwrap_or_else(|| line.to_string());
        if self.in_section {
            out.push_str("  ");
        }
        out.push_str(&text);
        out.push('\n');
    }
}

pub(super) fn run(server: &str, token: &str, action: Action) -> Result<u8, super::CliError> {
    let base = format!("{}/api/v1", server.trim_end_matches('/'));
    let mut out = std::io::stdout().lock();
    let w = |e: std::io::Error| e.to_string();
    let resolve = |id: String| -> Result<String, super::CliError> {
        if id != LATEST {
            return Ok(id);
        }
        Ok(newest_run(&base, token)?.ok_or("the server has no runs yet")?)
    };
    match action {
        Action::List => {
            let runs: RunList = json("GET", &format!("{base}/runs"), token)?;
            let header = format!(
                "{:<28} {:<10} {:<20} {:<24} PIPELINE",
                "ID", "STATUS", "REPO", "REF"
            );
            writeln!(out, "{header}").map_err(w)?;
            for r in &runs.runs {
                writeln!(
                    out,
                    "{:<28} {:<10} {:<20} {:<24} {}",
                    r.id, r.status, r.repo, r.git_ref, r.pipeline
                )
                .map_err(w)?;
            }
        }
        Action::Wait { run, timeout } => return wait(&base, token, &run, timeout, &mut out),
        Action::Show(id) => {
            let id = resolve(id)?;
            let detail: RunDetail = json("GET", &format!("{base}/runs/{}", segment(&id)), token)?;
            let run = &detail.run;
            writeln!(
                out,
                "run {}: {} ({} {} at {})",
                run.id, run.status, run.event, run.git_ref, run.sha
            )
            .map_err(w)?;
            if let Some(error) = &run.error {
                writeln!(out, "{error}").map_err(w)?;
            }
            for j in &detail.jobs {
                let note = j
                    .waiting_reason
                    .as_deref()
                    .or(j.error.as_deref())
                    .unwrap_or("");
                writeln!(
                    out,
                    "  {:<30} {:<10} attempt {} {}",
                    j.key, j.state, j.attempt, note
                )
                .map_err(w)?;
                // How the failed steps ended, as `tess run` shows them.
                let steps: Vec<crate::protocol::StepRecord> =
                    serde_json::from_value(j.steps.clone()).unwrap_or_default();
                for step in steps {
                    if matches!(step.outcome, Conclusion::Failure | Conclusion::Cancelled) {
                        writeln!(out, "    step {}: {}", step.name, step.detail).map_err(w)?;
                    }
                }
            }
        }
        Action::Logs {
            run,
            job,
            follow,
            raw,
        } => {
            let run = resolve(run)?;
            let url = format!("{base}/runs/{}/jobs/{}/log", segment(&run), segment(&job));
            let mut render = LogRenderer::new(raw);
            if !follow {
                let text = call("GET", &url, token)?
                    .text()
                    .map_err(|e| super::CliError::Runtime(format!("{url}: {e}")))?;
                out.write_all(render.push(&text).as_bytes()).map_err(w)?;
                out.write_all(render.finish().as_bytes()).map_err(w)?;
                return Ok(0);
            }
            let response = call("GET", &format!("{url}?follow=1"), token)?;
            let reader = BufReader::new(response);
            // An event's `data:` lines joined with newlines are one chunk of the log.
            let (mut event, mut data) = (String::new(), Vec::<String>::new());
            for line in reader.lines() {
                let line = line.map_err(|e| e.to_string())?;
                if let Some(name) = line.strip_prefix("event:") {
                    event = name.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push(d.strip_prefix(' ').unwrap_or(d).to_string());
                } else if line.is_empty() {
                    if event == "end" {
                        out.write_all(render.finish().as_bytes()).map_err(w)?;
                        return Ok(0);
                    }
                    if !data.is_empty() {
                        out.write_all(render.push(&data.join("\n")).as_bytes())
                            .map_err(w)?;
                        out.flush().map_err(w)?;
                    }
                    event.clear();
                    data.clear();
                }
            }
        }
        Action::Cancel(id) => {
            let _: crate::rest::CancelRequested = json(
                "POST",
                &format!("{base}/runs/{}/cancel", segment(&id)),
                token,
            )?;
            writeln!(out, "cancel requested for {id}").map_err(w)?;
        }
        Action::Rerun { run, failed } => {
            let query = if failed { "?failed=1" } else { "" };
            let reply: crate::rest::Rerun = json(
                "POST",
                &format!("{base}/runs/{}/rerun{query}", segment(&run)),
                token,
            )?;
            writeln!(out, "{}", reply.id).map_err(w)?;
        }
    }
    Ok(0)
}
