//! Prometheus metrics: counters and histograms kept in memory, gauges read from the store
//! when scraped.

use std::collections::BTreeMap;
use std::sync::Mutex;

const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 600.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    total: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.total += 1;
    }

    fn render(&self, name: &str, out: &mut String) {
        out.push_str(&format!("# TYPE {name} histogram\n"));
        for (i, b) in BUCKETS.iter().enumerate() {
            out.push_str(&format!("{name}_bucket{{le=\"{b}\"}} {}\n", self.counts[i]));
        }
        out.push_str(&format!("{name}_bucket{{le=\"+Inf\"}} {}\n", self.total));
        out.push_str(&format!(
            "{name}_sum {}\n{name}_count {}\n",
            self.sum, self.total
        ));
    }
}

#[derive(Default)]
struct Inner {
    deliveries: BTreeMap<String, u64>,
    /// Forge status sends by (forge, result).
    reports: BTreeMap<(String, String), u64>,
    lease_expiries: u64,
    /// Finished jobs by result.
    jobs_finished: BTreeMap<String, u64>,
    queue_wait: Histogram,
    job_duration: Histogram,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn delivery(&self, result: &str) {
        self.with(|m| *m.deliveries.entry(result.to_string()).or_default() += 1);
    }

    pub fn report(&self, forge: &str, result: &str) {
        self.with(|m| {
            *m.reports
                .entry((forge.to_string(), result.to_string()))
                .or_default() += 1
        });
    }

    /// A job's result as its runner reported it (the error rate's numerator and denominator).
    pub fn job_finished(&self, result: &str) {
        self.with(|m| *m.jobs_finished.entry(result.to_string()).or_default() += 1);
    }

    pub fn lease_expired(&self, n: usize) {
        self.with(|m| m.lease_expiries += n as u64);
    }

    pub fn queue_wait(&self, seconds: f64) {
        self.with(|m| m.queue_wait.observe(seconds));
    }

    pub fn job_duration(&self, seconds: f64) {
        self.with(|m| m.job_duration.observe(seconds));
    }

    /// The exposition text; `gauges` are read from the store by the caller.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        out.push_str("# TYPE tess_queue_depth gauge\n");
        for (labels, n) in &gauges.queue_depth {
            let labels = labels.join(",").replace('"', "'");
            out.push_str(&format!("tess_queue_depth{{labels=\"{labels}\"}} {n}\n"));
        }
        out.push_str("# TYPE tess_runs gauge\n");
        for (status, n) in &gauges.runs {
            out.push_str(&format!("tess_runs{{status=\"{status}\"}} {n}\n"));
        }
        out.push_str(&format!(
            "# TYPE tess_runners_online gauge\ntess_runners_online {}\n",
            gauges.runners_online
        ));
        out.push_str(&format!(
            "# TYPE tess_forge_reports_pending gauge\ntess_forge_reports_pending {}\n",
            gauges.reports_pending
        ));
        out.push_str(&format!(
            "# TYPE tess_forge_reports_given_up gauge\ntess_forge_reports_given_up {}\n",
            gauges.reports_given_up
        ));
        self.with(|m| {
            out.push_str("# TYPE tess_webhook_deliveries_total counter\n");
            for (result, n) in &m.deliveries {
                out.push_str(&format!(
                    "tess_webhook_deliveries_total{{result=\"{result}\"}} {n}\n"
                ));
            }
            out.push_str(&format!(
                "# TYPE tess_lease_expiries_total counter\ntess_lease_expiries_total {}\n",
                m.lease_expiries
            ));
            out.push_str("# TYPE tess_forge_reports_total counter\n");
            for ((forge, result), n) in &m.reports {
                out.push_str(&format!(
                    "tess_forge_reports_total{{forge=\"{forge}\",result=\"{result}\"}} {n}\n"
                ));
            }
            out.push_str("# TYPE tess_jobs_finished_total counter\n");
            for (result, n) in &m.jobs_finished {
                out.push_str(&format!(
                    "tess_jobs_finished_total{{result=\"{result}\"}} {n}\n"
                ));
            }
            m.queue_wait.render("tess_queue_wait_seconds", &mut out);
            m.job_duration.render("tess_job_duration_seconds", &mut out);
        });
        out
    }
}

#[derive(Default)]
pub struct Gauges {
    pub queue_depth: Vec<(Vec<String>, i64)>,
    pub runs: Vec<(String, i64)>,
    pub runners_online: usize,
    /// Forge statuses still to be sent, and those given up.
    pub reports_pending: i64,
    pub reports_given_up: i64,
}
