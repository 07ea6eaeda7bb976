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

/// One box: a job, or the instances of a matrix job together.
struct Node<'a> {
    label: String,
    state: &'a str,
    /// The keys of the jobs it stands for, and of the jobs they need.
    keys: Vec<&'a str>,
    needs: Vec<&'a str>,
    title: String,
}

/// The state a matrix group shows: its most telling instance's.
fn summary<'a>(states: impl Iterator<Item = &'a str>) -> &'a str {
    const ORDER: [&str; 10] = [
        "failure",
        "cancelled",
        "approval",
        "manual",
        "running",
        "queued",
        "waiting",
        "pending",
        "success",
        "skipped",
    ];
    states
        .min_by_key(|s| ORDER.iter().position(|o| o == s).unwrap_or(ORDER.len()))
        .unwrap_or("skipped")
}

/// Matrix instances (jobs sharing an id) become one node, in plan order.
fn nodes(jobs: &[Job]) -> Vec<Node<'_>> {
    let mut out: Vec<Node> = Vec::new();
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for job in jobs {
        if let Some(&n) = by_id.get(job.id.as_str()) {
            let node = &mut out[n];
            node.keys.push(&job.key);
            node.needs.extend(job.needs.iter().map(String::as_str));
            continue;
        }
        by_id.insert(&job.id, out.len());
        out.push(Node {
            label: job.name.clone(),
            state: &job.state,
            keys: vec![&job.key],
            needs: job.needs.iter().map(String::as_str).collect(),
            title: String::new(),
        });
    }
    for node in &mut out {
        let members: Vec<&Job> = jobs
            .iter()
            .filter(|j| node.keys.contains(&j.key.as_str()))
            .collect();
        node.state = summary(members.iter().map(|j| j.state.as_str()));
        node.title = members
            .iter()
            .map(|j| format!("{} — {}", j.name, j.state))
            .collect::<Vec<_>>()
            .join("\n");
        if members.len() > 1 {
            let id = members[0].id.as_str();
            node.label = format!("{id} ({} instances)", members.len());
        }
    }
    out
}

/// The SVG of `jobs`, each box a link to its (first) job's log page under `base`.
pub(super) fn svg(jobs: &[Job], base: &str) -> String {
    let nodes = nodes(jobs);
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.keys.iter().map(move |k| (*k, i)))
        .collect();
    // Nodes come in plan order (needs first), so one pass settles every level.
    let mut level = vec![0usize; nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        level[i] = node
            .needs
            .iter()
            .filter_map(|n| index.get(n))
            .filter(|&&d| d < i)
            .map(|&d| level[d] + 1)
            .max()
            .unwrap_or(0);
    }
    let mut rows: HashMap<usize, usize> = HashMap::new();
    let mut place = vec![(0, 0); nodes.len()];
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
    let mut drawn = std::collections::HashSet::new();
    for (i, node) in nodes.iter().enumerate() {
        for &need in node.needs.iter().filter_map(|n| index.get(n)) {
            if need == i || !drawn.insert((need, i)) {
                continue;
            }
            let (x1, y1) = (place[need].0 + BOX_W, place[need].1 + BOX_H / 2);
            let (x2, y2) = (place[i].0, place[i].1 + BOX_H / 2);
            let _ = write!(
                out,
                "<path class=\"edge\" d=\"M{x1},{y1} C{},{y1} {},{y2} {x2},{y2}\"/>",
                x1 + GAP_X / 2,
                x2 - GAP_X / 2
            );
        }
    }
    for (i, node) in nodes.iter().enumerate() {
        let (x, y) = place[i];
        let label: String = node.label.chars().take(24).collect();
        let _ = write!(
            out,
            "<a href=\"{base}/jobs/{}\"><g class=\"job {}\"><title>{}</title>\
             <rect x=\"{x}\" y=\"{y}\" rx=\"6\" width=\"{BOX_W}\" height=\"{BOX_H}\"/>\
             <text x=\"{}\" y=\"{}\">{}</text></g></a>",
            super::segment(node.keys[0]),
            escape(node.state),
            escape(&node.title),
            x + 10,
            y + BOX_H / 2 + 5,
            escape(&label)
        );
    }
    out.push_str("</svg>");
    out
}
