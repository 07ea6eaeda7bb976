//! Graphviz and Mermaid renderings of plans.

use crate::plan::PipelinePlan;

pub(super) fn node_id(pipeline: usize, job: usize) -> String {
    format!("p{pipeline}_j{job}")
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

pub(super) fn dot(plans: &[PipelinePlan]) -> String {
    let mut out =
        String::from("digraph tess {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n");
    for (pi, p) in plans.iter().enumerate() {
        out.push_str(&format!(
            "  subgraph cluster_{pi} {{\n    label=\"{}\";\n",
            escape(&p.name)
        ));
        for (ji, j) in p.jobs.iter().enumerate() {
            out.push_str(&format!(
                "    {} [label=\"{}\"];\n",
                node_id(pi, ji),
                escape(&j.name)
            ));
        }
        out.push_str("  }\n");
        for (ji, j) in p.jobs.iter().enumerate() {
            for need in &j.needs {
                if let Some(ni) = p.jobs.iter().position(|n| &n.key == need) {
                    out.push_str(&format!("  {} -> {};\n", node_id(pi, ni), node_id(pi, ji)));
                }
            }
        }
    }
    out.push_str("}\n");
    out
}

pub(super) fn mermaid(plans: &[PipelinePlan]) -> String {
    let mut out = String::from("flowchart LR\n");
    for (pi, p) in plans.iter().enumerate() {
        out.push_str(&format!(
            "  subgraph p{pi} [\"{}\"]\n",
            p.name.replace('"', "#quot;")
        ));
        for (ji, j) in p.jobs.iter().enumerate() {
            out.push_str(&format!(
                "    {}[\"{}\"]\n",
                node_id(pi, ji),
                j.name.replace('"', "#quot;")
            ));
        }
        out.push_str("  end\n");
        for (ji, j) in p.jobs.iter().enumerate() {
            for need in &j.needs {
                if let Some(ni) = p.jobs.iter().position(|n| &n.key == need) {
                    out.push_str(&format!("  {} --> {}\n", node_id(pi, ni), node_id(pi, ji)));
                }
            }
        }
    }
    out
}
