//! The output actor of `tess run`: the only writer of the terminal and the per-job log
//! files. Lines arrive whole (never interleaved mid-line) through a bounded channel.

use crate::engine::{Conclusion, RunEvent, file_name};
use crate::exec::{Outcome, Stream};
use anstyle::{AnsiColor, Style};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::mpsc::Receiver;

/// Lines kept per step for the failure excerpt.
const EXCERPT_LINES: usize = 12;

pub(super) struct Summary {
    /// One per job (its last attempt): key, display name, result, allowed failure, duration ms.
    pub jobs: Vec<(String, String, Conclusion, bool, u64)>,
    pub failures: Vec<Failure>,
    pub result: Option<Conclusion>,
    pub duration_ms: u64,
    /// Jobs that succeeded with steps that could not run (`--skip-unavailable`).
    pub skipped_steps: std::collections::HashSet<String>,
}

pub(super) struct Failure {
    pub key: String,
    pub job: String,
    pub step: String,
    pub detail: Outcome,
    pub tail: Vec<String>,
}

struct JobOutput {
    name: String,
    color: Style,
    log: Option<BufWriter<File>>,
    steps: HashMap<usize, String>,
    tails: HashMap<usize, Vec<String>>,
    /// Steps started with `background: true`.
    background: std::collections::HashSet<usize>,
}

/// Each job's prefix colour, in turn.
const COLORS: [AnsiColor; 6] = [
    AnsiColor::Cyan,
    AnsiColor::Magenta,
    AnsiColor::Yellow,
    AnsiColor::Blue,
    AnsiColor::Green,
    AnsiColor::BrightCyan,
];

fn fg(colour: AnsiColor) -> Style {
    Style::new().fg_color(Some(colour.into()))
}

/// Sees each event before it is shown.
pub(super) type Observer = Box<dyn FnMut(&RunEvent) + Send>;

/// How the run is shown.
pub(super) struct Display {
    /// One JSON event per line instead of text.
    pub json: bool,
    /// GitHub Actions: each job's output in a `::group::` of its own, printed when the job
    /// ends (groups cannot interleave); only starts and ends are printed live.
    pub grouped: bool,
    /// Sees every event first (action mode's statuses).
    pub observer: Option<Observer>,
}

pub(super) fn consume(
    events: Receiver<RunEvent>,
    run_dir: PathBuf,
    mut display: Display,
) -> Summary {
    let json = display.json;
    // Lines printed as they come (not in grouped or JSON mode).
    let live = !json && !display.grouped;
    let stdout = std::io::stdout();
    // `--color`, `NO_COLOR`, `CLICOLOR_FORCE` and whether stdout is a terminal decide. The
    // jobs' own output is written as it came (their colours included), so stdout is not
    // wrapped in an `anstream` stream, which would strip them.
    let color = live && anstream::AutoStream::choice(&stdout) != anstream::ColorChoice::Never;
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut jobs: HashMap<String, JobOutput> = HashMap::new();
    let mut width = 0;
    let mut summary = Summary {
        jobs: Vec::new(),
        failures: Vec::new(),
        result: None,
        duration_ms: 0,
        skipped_steps: Default::default(),
    };
    let paint = |style: Style, text: &str| {
        if color {
            format!("{style}{text}{style:#}")
        } else {
            text.to_string()
        }
    };
    loop {
        // Flush whenever the channel is momentarily empty, so output stays live.
        let event = match events.try_recv() {
            Ok(e) => e,
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                let _ = out.flush();
                match events.recv() {
                    Ok(e) => e,
                    Err(_) => break,
                }
            }
            Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
        };
        if let Some(observe) = &mut display.observer {
            observe(&event);
        }
        if json {
            write_json(&mut out, &event);
        }
        match event {
            RunEvent::RunStarted { jobs: list, .. } => {
                width = list
                    .iter()
                    .map(|j| j.name.chars().count())
                    .max()
                    .unwrap_or(0)
                    .min(40);
                for (i, j) in list.into_iter().enumerate() {
                    let log = File::create(run_dir.join(format!("{}.log", file_name(&j.key))))
                        .ok()
                        .map(|f| BufWriter::with_capacity(64 * 1024, f));
                    let o = JobOutput {
                        name: j.name,
                        color: fg(COLORS[i % COLORS.len()]),
                        log,
                        steps: HashMap::new(),
                        tails: HashMap::new(),
                        background: Default::default(),
                    };
                    jobs.insert(j.key, o);
                }
            }
            RunEvent::JobStarted { job, ts, .. } => {
                if let Some(j) = jobs.get_mut(&job) {
                    write_log(j, &ts, "##[job] started");
                    if display.grouped {
                        let _ = writeln!(out, "▶ {} started", j.name);
                    }
                }
            }
            RunEvent::StepStarted {
                job,
                step,
                name,
                background,
                ts,
            } => {
                if let Some(j) = jobs.get_mut(&job) {
                    write_log(j, &ts, &format!("##[step] {name}"));
                    if live {
                        let _ = writeln!(
                            out,
                            "{} {}",
                            prefix(j, width, &paint),
                            paint(Style::new().bold(), &format!("▶ {name}"))
                        );
                    }
                    if background {
                        j.background.insert(step);
                    }
                    j.steps.insert(step, name);
                }
            }
            RunEvent::Log {
                job,
                step,
                stream,
                text,
                ts,
            } => {
                if let Some(j) = jobs.get_mut(&job) {
                    if let Some(log) = &mut j.log {
                        for line in text.split('\n') {
                            let _ = match stream {
                                Stream::Stdout => writeln!(log, "{ts} {line}"),
                                Stream::Stderr => writeln!(log, "{ts} [stderr] {line}"),
                            };
                        }
                    }
                    if live {
                        let mut p = prefix(j, width, &paint);
                        // A background step's lines say whose they are.
                        if let Some(s) = step.filter(|s| j.background.contains(s))
                            && let Some(name) = j.steps.get(&s)
                        {
                            p.push_str(&format!(" [{name}]"));
                        }
                        for line in text.split('\n') {
                            let _ = writeln!(out, "{p} {line}");
                        }
                    }
                    if let Some(s) = step {
                        let tail = j.tails.entry(s).or_default();
                        tail.extend(
                            text.rsplit('\n')
                                .take(EXCERPT_LINES)
                                .map(String::from)
                                .collect::<Vec<_>>()
                                .into_iter()
                                .rev(),
                        );
                        let extra = tail.len().saturating_sub(EXCERPT_LINES);
                        tail.drain(..extra);
                    }
                }
            }
            RunEvent::StepFinished {
                job,
                step,
                name,
                outcome,
                conclusion,
                detail,
                duration_ms,
                ts,
                ..
            } => {
                if let Some(j) = jobs.get_mut(&job) {
                    let secs = duration_ms as f64 / 1000.0;
                    write_log(
                        j,
                        &ts,
                        &format!("##[step] {name}: {} ({secs:.2}s)", conclusion.as_str()),
                    );
                    if live {
                        let mark = match (outcome, conclusion) {
                            _ if matches!(detail, Outcome::Unavailable(_)) => {
                                paint(fg(AnsiColor::Yellow), "⚠")
                            }
                            (Conclusion::Success, _) => paint(fg(AnsiColor::Green), "✓"),
                            (Conclusion::Skipped, _) => paint(fg(AnsiColor::BrightBlack), "○"),
                            (Conclusion::Failure, Conclusion::Success) => {
                                paint(fg(AnsiColor::Yellow), "✗ (continue-on-error)")
                            }
                            _ => paint(fg(AnsiColor::Red), "✗"),
                        };
                        let detail_text = if outcome == Conclusion::Failure
                            || outcome == Conclusion::Cancelled
                            || matches!(detail, Outcome::Unavailable(_))
                        {
                            format!(": {}", detail.describe())
                        } else {
                            String::new()
                        };
                        let _ = writeln!(
                            out,
                            "{} {mark} {name} ({secs:.2}s){detail_text}",
                            prefix(j, width, &paint)
                        );
                    }
                    if outcome == Conclusion::Failure {
                        summary.failures.push(Failure {
                            key: job.clone(),
                            job: j.name.clone(),
                            step: name,
                            detail,
                            tail: j.tails.remove(&step).unwrap_or_default(),
                        });
                    } else {
                        j.tails.remove(&step);
                    }
                }
            }
            RunEvent::JobFinished {
                job,
                name,
                result,
                allowed_failure,
                duration_ms,
                ts,
                not_run,
                ..
            } => {
                if result == Conclusion::Success && !not_run.is_empty() {
                    summary.skipped_steps.insert(job.clone());
                } else {
                    summary.skipped_steps.remove(&job);
                }
                if let Some(j) = jobs.get_mut(&job) {
                    write_log(j, &ts, &format!("##[job] {}", result.as_str()));
                    if let Some(log) = &mut j.log {
                        let _ = log.flush();
                    }
                    if display.grouped {
                        let title = format!(
                            "{} — {} ({:.1}s)",
                            j.name,
                            if allowed_failure {
                                "failure (allowed)"
                            } else {
                                result.as_str()
                            },
                            duration_ms as f64 / 1000.0
                        );
                        let log = run_dir.join(format!("{}.log", file_name(&job)));
                        print_group(&mut out, &title, &log);
                    }
                }
                // A retried job keeps only its last attempt (and its failures if it failed).
                summary.jobs.retain(|(k, ..)| *k != job);
                if result != Conclusion::Failure {
                    summary.failures.retain(|f| f.key != job);
                }
                summary
                    .jobs
                    .push((job, name, result, allowed_failure, duration_ms));
            }
            RunEvent::RunFinished {
                result,
                duration_ms,
                ..
            } => {
                summary.result = Some(result);
                summary.duration_ms = duration_ms;
            }
        }
    }
    let _ = out.flush();
    summary
}

/// A job's log (without its timestamps) as one collapsible GitHub Actions group.
fn print_group(out: &mut impl Write, title: &str, log: &std::path::Path) {
    use std::io::BufRead;
    let _ = writeln!(out, "::group::{}", title.replace('\n', " "));
    if let Ok(file) = File::open(log) {
        for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
            let text = line.split_once(' ').map_or("", |(_, rest)| rest);
            // `##[` starts GitHub's own log commands: the log's markers are shown plainly.
            if text.starts_with("##[job]") {
                continue;
            }
            match text.strip_prefix("##[step] ") {
                Some(step) => writeln!(out, "── {step}"),
                None => writeln!(out, "{text}"),
            }
            .ok();
        }
    }
    let _ = writeln!(out, "::endgroup::");
}

fn prefix(j: &JobOutput, width: usize, paint: &dyn Fn(Style, &str) -> String) -> String {
    let name: String = j.name.chars().take(width).collect();
    paint(j.color, &format!("{name:<width$} |"))
}

fn write_log(j: &mut JobOutput, ts: &str, text: &str) {
    if let Some(log) = &mut j.log {
        let _ = writeln!(log, "{ts} {text}");
    }
}

/// One JSON object per line; a multi-line log event becomes one event per line.
fn write_json(out: &mut impl Write, event: &RunEvent) {
    if let RunEvent::Log {
        job,
        step,
        stream,
        text,
        ts,
    } = event
    {
        for line in text.split('\n') {
            let v = serde_json::json!({"type": "log", "job": job, "step": step, "stream": stream, "line": line, "ts": ts});
            let _ = writeln!(out, "{v}");
        }
        return;
    }
    let Ok(mut value) = serde_json::to_value(event) else {
        return;
    };
    // A job that passed with steps not run says so in its result.
    if let RunEvent::JobFinished {
        result: Conclusion::Success,
        not_run,
        ..
    } = event
        && !not_run.is_empty()
    {
        value["result"] = "skipped-steps".into();
    }
    let _ = writeln!(out, "{value}");
}

pub(super) fn print_summary(summary: &Summary, run_id: &str, run_dir: &std::path::Path) {
    let mut out = String::new();
    let width = summary
        .jobs
        .iter()
        .map(|j| j.1.chars().count())
        .max()
        .unwrap_or(3)
        .max(3);
    out.push_str(&format!(
        "\n{:<width$}  {:<17}  DURATION\n",
        "JOB", "RESULT"
    ));
    for (key, name, result, allowed, ms) in &summary.jobs {
        // Allowed failures are warnings, not errors.
        let shown = if *allowed {
            "failure (allowed)"
        } else if summary.skipped_steps.contains(key) {
            "skipped-steps"
        } else {
            result.as_str()
        };
        out.push_str(&format!(
            "{name:<width$}  {:<17}  {:.2}s\n",
            shown,
            *ms as f64 / 1000.0
        ));
    }
    for f in &summary.failures {
        out.push_str(&format!(
            "\n── {} / {} ({}) ──\n",
            f.job,
            f.step,
            f.detail.describe()
        ));
        for line in &f.tail {
            out.push_str(&format!("  {line}\n"));
        }
    }
    let result = summary.result.map_or("unknown", Conclusion::as_str);
    out.push_str(&format!(
        "\nrun {run_id}: {result} in {:.2}s; logs in {}\n",
        summary.duration_ms as f64 / 1000.0,
        run_dir.display()
    ));
    print!("{out}");
}
