//! Prometheus metrics through `prometheus-client` (OpenMetrics text, `# HELP`/`# TYPE`,
//! label values escaped): counters and histograms kept in memory, gauges read from the
//! store when scraped.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Queue waits and job durations, seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 600.0,
];

/// The media type of what [`Metrics::render`] writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByResult {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByForgeResult {
    forge: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByLabels {
    labels: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByStatus {
    status: String,
}

/// The server's own counters and histograms (cheap to clone: handles to shared values).
pub struct Metrics {
    deliveries: Family<ByResult, Counter>,
    reports: Family<ByForgeResult, Counter>,
    lease_expiries: Counter,
    jobs_finished: Family<ByResult, Counter>,
    queue_wait: Histogram,
    job_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let metrics = Metrics {
            deliveries: Family::default(),
            reports: Family::default(),
            lease_expiries: Counter::default(),
            jobs_finished: Family::default(),
            queue_wait: Histogram::new(BUCKETS),
            job_duration: Histogram::new(BUCKETS),
        };
        // Every result a job can have is a series from the start (at 0), so an error-rate
        // alert has both its numerator and denominator before the first failure.
        for outcome in ["success", "failure", "cancelled", "skipped"] {
            metrics
                .jobs_finished
                .get_or_create(&result(outcome))
                .inc_by(0);
        }
        metrics
    }
}

/// What `/metrics` reads from the store at each scrape.
#[derive(Default)]
pub struct Gauges {
    pub queue_depth: Vec<(Vec<String>, i64)>,
    pub runs: Vec<(String, i64)>,
    pub runners_online: usize,
    /// Forge statuses still to be sent, and those given up.
    pub reports_pending: i64,
    pub reports_given_up: i64,
}

fn result(result: &str) -> ByResult {
    ByResult {
        result: result.to_string(),
    }
}

impl Metrics {
    pub fn delivery(&self, outcome: &str) {
        self.deliveries.get_or_create(&result(outcome)).inc();
    }

    pub fn report(&self, forge: &str, outcome: &str) {
        let labels = ByForgeResult {
            forge: forge.to_string(),
            result: outcome.to_string(),
        };
        self.reports.get_or_create(&labels).inc();
    }

    /// A job's result as its runner reported it (the error rate's numerator and denominator).
    pub fn job_finished(&self, outcome: &str) {
        self.jobs_finished.get_or_create(&result(outcome)).inc();
    }

    pub fn lease_expired(&self, n: usize) {
        self.lease_expiries.inc_by(n as u64);
    }

    pub fn queue_wait(&self, seconds: f64) {
        self.queue_wait.observe(seconds);
    }

    pub fn job_duration(&self, seconds: f64) {
        self.job_duration.observe(seconds);
    }

    /// The exposition text (OpenMetrics, see [`CONTENT_TYPE`]), with `gauges` as read from
    /// the store by the caller.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut registry = Registry::default();
        let queue_depth = Family::<ByLabels, Gauge>::default();
        for (labels, n) in &gauges.queue_depth {
            let labels = ByLabels {
                labels: labels.join(","),
            };
            queue_depth.get_or_create(&labels).set(*n);
        }
        registry.register(
            "tess_queue_depth",
            "Queued jobs by the label set they need",
            queue_depth,
        );
        let runs = Family::<ByStatus, Gauge>::default();
        for (status, n) in &gauges.runs {
            let status = ByStatus {
                status: status.clone(),
            };
            runs.get_or_create(&status).set(*n);
        }
        registry.register("tess_runs", "Stored runs by status", runs);
        let gauge = |value: i64| {
            let g = Gauge::<i64>::default();
            g.set(value);
            g
        };
        registry.register(
            "tess_runners_online",
            "Runners seen within three lease TTLs",
            gauge(gauges.runners_online as i64),
        );
        registry.register(
            "tess_forge_reports_pending",
            "Forge statuses still to be sent",
            gauge(gauges.reports_pending),
        );
        registry.register(
            "tess_forge_reports_given_up",
            "Forge statuses given up after their retries",
            gauge(gauges.reports_given_up),
        );
        registry.register(
            "tess_webhook_deliveries",
            "Webhook deliveries by what became of them",
            self.deliveries.clone(),
        );
        registry.register(
            "tess_lease_expiries",
            "Job leases that expired (the job was retried or failed)",
            self.lease_expiries.clone(),
        );
        registry.register(
            "tess_forge_reports",
            "Forge status sends by forge and result",
            self.reports.clone(),
        );
        registry.register(
            "tess_jobs_finished",
            "Finished jobs by result",
            self.jobs_finished.clone(),
        );
        registry.register_with_unit(
            "tess_queue_wait",
            "Time from queued to leased",
            Unit::Seconds,
            self.queue_wait.clone(),
        );
        registry.register_with_unit(
            "tess_job_duration",
            "Time from leased to finished",
            Unit::Seconds,
            self.job_duration.clone(),
        );
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}
