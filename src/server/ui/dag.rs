//! A run's jobs as an SVG graph laid out on the server: one column per level (the longest
//! chain of needs before the job), one box per job coloured by its state, an edge per need.

use crate::rest::Job;
use std::collections::HashMap;
use std::fmt::Write as _;

const BOX_W: usize = 180;
const BOX_H: usize = 34;
const GAP_X: usize = 50;
const GAP_Y: usize = 14;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The SVG of `jobs`, each box a link to its log page under `base`.
pub(super) fn svg(jobs: &[Job], base: &str) -> String {
    let index: HashMap<&str, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.key.as_str(), i))
        .collect();
    // Jobs come in plan order (needs first), so one pass settles every level.
    let mut level = vec![0usize; jobs.len()];
    for (i, job) in jobs.iter().enumerate() {
        level[i] = job
            .needs
            .iter()
            .filter_map(|n| index.get(n.as_str()))
            .filter(|&&d| d < i)
            .map(|&d| level[d] + 1)
            .max()
            .unwrap_or(0);
    }
    let mut rows: HashMap<usize, usize> = HashMap::new();
    let mut place = vec![(0, 0); jobs.len()];
    for (i, l) in level.iter().enumerate() {
        let row = rows.entry(*l).or_default();
        place[i] = (l * (BOX_W + GAP_X) + 10, *row * (BOX_H + GAP_Y) + 10);
        *row += 1;
    }
    let width = level.iter().max().map_or(0, |l| (l + 1) * (BOX_W + GAP_X)) + 10;
    let height = rows.values().max().map_or(0, |r| r * (BOX_H + GAP_Y)) + 10;
    let mut out = format!(
        "<svg class=\"dag\" role=\"img\" aria-label=\"the run's jobs and their needs\" \
         width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">"
    );
    for (i, job) in jobs.iter().enumerate() {
        for need in job.needs.iter().filter_map(|n| index.get(n.as_str())) {
            let (x1, y1) = (place[*need].0 + BOX_W, place[*need].1 + BOX_H / 2);
            let (x2, y2) = (place[i].0, place[i].1 + BOX_H / 2);
            let _ = write!(
                out,
                "<path class=\"edge\" d=\"M{x1},{y1} C{},{y1} {},{y2} {x2},{y2}\"/>",
                x1 + GAP_X / 2,
                x2 - GAP_X / 2
            );
        }
    }
    for (i, job) in jobs.iter().enumerate() {
        let (x, y) = place[i];
        let name: String = job.name.chars().take(24).collect();
        let _ = write!(
            out,
            "<a href=\"{base}/jobs/{}\"><g class=\"job {}\"><title>{} — {}</title>\
             <rect x=\"{x}\" y=\"{y}\" rx=\"6\" width=\"{BOX_W}\" height=\"{BOX_H}\"/>\
             <text x=\"{}\" y=\"{}\">{}</text></g></a>",
            percent_encoding::utf8_percent_encode(&job.key, percent_encoding::NON_ALPHANUMERIC),
            escape(&job.state),
            escape(&job.name),
            escape(&job.state),
            x + 10,
            y + BOX_H / 2 + 5,
            escape(&name)
        );
    }
    out.push_str("</svg>");
    out
}
