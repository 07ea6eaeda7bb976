//! Human and JSON output for `validate`, `plan` and `schedule`.

use crate::load::Loaded;
use crate::plan::PipelinePlan;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

fn summary(loaded: &Loaded) -> String {
    let errors = loaded.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = loaded.diagnostics.len() - errors;
    let mut files: Vec<&str> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.file.as_str())
        .collect();
    files.dedup();
    if errors == 0 {
        format!(
            "{} pipeline file(s) valid{}",
            loaded.pipelines.len(),
            if warnings > 0 {
                format!(", {warnings} warning(s)")
            } else {
                String::new()
            }
        )
    } else {
        format!(
            "{errors} error(s), {warnings} warning(s) in {} file(s)",
            files.len()
        )
    }
}

pub(super) fn validate(loaded: &Loaded, as_json: bool) {
    if as_json {
        let files: Vec<&str> = loaded.pipelines.iter().map(|p| p.file.as_str()).collect();
        let out = json!({
            "valid": !loaded.has_errors(),
            "files": files,
            "diagnostics": loaded.diagnostics,
        });
        print_json(&out);
    } else {
        anstream::eprint!("{}", loaded.render_diagnostics_styled());
        if loaded.has_errors() {
            eprintln!("{}", summary(loaded));
        } else {
            println!("{}", summary(loaded));
        }
    }
}

/// `tess plan --json`, serialized straight from the plan (no intermediate JSON tree).
#[derive(serde::Serialize)]
struct PlanOutput<'a> {
    pipelines: &'a [PipelinePlan],
    diagnostics: &'a [crate::diag::Diagnostic],
}

/// Writes pretty JSON to stdout through one buffered, locked handle.
fn print_json(value: &impl serde::Serialize) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let _ = serde_json::to_writer_pretty(&mut out, value);
    let _ = writeln!(out);
}

pub(super) fn plan(loaded: &Loaded, plans: &[PipelinePlan], as_json: bool) {
    if as_json {
        print_json(&PlanOutput {
            pipelines: plans,
            diagnostics: &loaded.diagnostics,
        });
        return;
    }
    anstream::eprint!("{}", loaded.render_diagnostics_styled());
    let mut out = String::new();
    for p in plans {
        let dialect = match p.dialect {
            crate::spec::Dialect::GitHub => "github",
            crate::spec::Dialect::GitLab => "gitlab",
        };
        out.push_str(&format!("{} ({}, {dialect})\n", p.name, p.file));
        match (p.triggered, &p.reason) {
            (Some(true), Some(r)) => out.push_str(&format!("  runs: {r}\n")),
            (Some(false), Some(r)) => out.push_str(&format!("  does not run: {r}\n")),
            _ => out.push_str("  no event given: listing every job\n"),
        }
        if !p.jobs.is_empty() {
            out.push_str(&table(p));
        }
        for s in &p.skipped {
            out.push_str(&format!("  skipped {}: {}\n", s.key, s.reason));
        }
        for include in &p.skipped_includes {
            out.push_str(&format!("  include left out: {include}\n"));
        }
        out.push('\n');
    }
    print!("{out}");
}

/// The NEEDS column: short lists in full, long ones (fan-in of a matrix) abbreviated.
fn needs_cell(needs: &[String]) -> String {
    match needs.len() {
        0 => "-".into(),
        1..=3 => needs.join(", "),
        n => format!("{}, … ({n} jobs)", needs[..2].join(", ")),
    }
}

fn table(p: &PipelinePlan) -> String {
    // GitLab plans also say which rule added each job.
    let with_why = p.jobs.iter().any(|j| j.spec.selected_because.is_some());
    let rows: Vec<Vec<String>> = p
        .jobs
        .iter()
        .map(|j| {
            let runs_on = match &j.runs_on {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => "-".into(),
                other => other.to_string(),
            };
            let mut row = vec![
                j.level.to_string(),
                j.key.clone(),
                needs_cell(&j.needs),
                runs_on,
                j.condition.clone().unwrap_or_default(),
            ];
            if with_why {
                row.push(j.spec.selected_because.clone().unwrap_or_default());
            }
            row
        })
        .collect();
    let mut header = vec!["LEVEL", "JOB", "NEEDS", "RUNS-ON", "IF (at run time)"];
    if with_why {
        header.push("WHY");
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::from("  ");
        for (i, cell) in cells.iter().enumerate() {
            s.push_str(&format!("{cell:<width$}  ", width = widths[i]));
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(&header);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        out.push_str(&line(&cells));
    }
    out
}

pub(super) fn schedule(loaded: &Loaded, from: DateTime<Utc>, count: usize, as_json: bool) {
    let mut entries = Vec::new();
    for p in &loaded.pipelines {
        for s in &p.on.schedules {
            let next: Vec<String> = s
                .cron
                .upcoming(from, s.timezone, count)
                .iter()
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                .collect();
            entries.push(json!({
                "file": p.file,
                "cron": s.cron.source,
                "timezone": s.timezone.name(),
                "next": next,
            }));
        }
    }
    if as_json {
        let out = json!({ "schedules": entries, "diagnostics": loaded.diagnostics });
        print_json(&out);
        return;
    }
    anstream::eprint!("{}", loaded.render_diagnostics_styled());
    for e in &entries {
        println!(
            "{}  `{}` ({})",
            e["file"].as_str().unwrap_or_default(),
            e["cron"].as_str().unwrap_or_default(),
            e["timezone"].as_str().unwrap_or_default()
        );
        for t in e["next"].as_array().into_iter().flatten() {
            println!("  {}", t.as_str().unwrap_or_default());
        }
    }
    if entries.is_empty() {
        println!("no schedules");
    }
}
