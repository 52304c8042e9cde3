//! Live metrics of a run, for Prometheus (`harness run --metrics-listen ADDR`): what the run has
//! measured so far, kept from the same slices the journal gets, and at the end exactly the figures
//! of result.json. [`Live`] is an [`Observer`]; [`serve`] answers `GET /metrics` with it in the
//! OpenMetrics text format (prometheus-client encodes it).
//!
//! Counters add the journal's slices (every 250 ms) while the load runs; in flight and planned come
//! with each second's progress; WebSocket, delivery and rate-limit figures with each checkpoint
//! (every 10 s). When the run ends, every figure is set from the final result, so a scrape then
//! matches result.json.

mod serve;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

pub use serve::{MetricsServer, serve};

use crate::engine::{Observer, Progress};
use crate::journal::Entry;
use crate::metrics::histogram::{Hist, decode, merge, new_histogram};
use crate::plan::RunPlan;
use crate::result::{RunResult, Status};

/// The histogram's upper bounds, in seconds: 1 ms to a minute, about three to a decade.
pub const BUCKETS_S: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The run's figures as they stand.
#[derive(Debug, Default, Clone)]
struct Figures {
    succeeded: u64,
    failed: u64,
    late: u64,
    errors: BTreeMap<String, u64>,
    /// Every finished iteration's latency (microseconds).
    latency: Option<Hist>,
    planned: u64,
    in_flight: u64,
    /// The run has ended and these are its result's figures.
    finished: bool,
    status: Option<Status>,
    ws: Option<WsFigures>,
    rate_limit: Option<RateLimitFigures>,
    checks: Vec<(String, bool)>,
    /// Metric, condition, held.
    thresholds: Vec<(String, String, bool)>,
}

#[derive(Debug, Default, Clone)]
struct WsFigures {
    connections: u64,
    peak_connections: u64,
    failed_connections: u64,
    reconnects: u64,
    messages_sent: u64,
    messages_received: u64,
    /// published, acknowledged, received, lost, duplicated, out_of_order, unexpected, failed.
    delivery: Vec<(&'static str, u64)>,
}

#[derive(Debug, Default, Clone)]
struct RateLimitFigures {
    offered: u64,
    accepted: u64,
    rejected: u64,
    conforms: bool,
    inferred_rate_per_s: Option<f64>,
}

/// The live figures of one run, fed as an [`Observer`] and read by the exposition.
#[derive(Debug)]
pub struct Live {
    figures: Mutex<Figures>,
    /// The labels every series carries: scenario, shard, shards, run id.
    labels: Vec<(String, String)>,
}

impl Live {
    pub fn new(plan: &RunPlan) -> Arc<Self> {
        let id = &plan.identity;
        Arc::new(Self {
            figures: Mutex::new(Figures {
                planned: plan.load.planned(),
                ..Figures::default()
            }),
            labels: vec![
                ("scenario".into(), id.name.clone()),
                ("suite".into(), id.suite.as_str().into()),
                ("shard".into(), id.shard.index.to_string()),
                ("shards".into(), id.shard.count.to_string()),
                ("run_id".into(), id.run_id.clone()),
            ],
        })
    }

    fn figures(&self) -> std::sync::MutexGuard<'_, Figures> {
        self.figures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The run ended: every figure from its result, as result.json has them.
    pub fn finish(&self, r: &RunResult) {
        let mut f = self.figures();
        f.succeeded = r.totals.succeeded;
        f.failed = r.totals.failed;
        f.late = r.metrics.schedule.as_ref().map_or(f.late, |s| s.late);
        f.errors = r.metrics.errors.clone();
        if let Some(h) = r
            .metrics
            .latency_hdr
            .as_deref()
            .and_then(|t| decode(t).ok())
        {
            f.latency = Some(h);
        }
        f.in_flight = 0;
        f.finished = true;
        f.status = Some(r.status);
        f.checks = r
            .checks
            .iter()
            .map(|c| (c.name.clone(), c.passed))
            .collect();
        f.thresholds = r
            .thresholds
            .iter()
            .map(|v| (v.metric.clone(), v.condition.clone(), v.passed))
            .collect();
        take_extras(&mut f, r);
    }

    /// The OpenMetrics text of the figures as they stand.
    pub fn exposition(self: &Arc<Self>) -> String {
        let mut registry = Registry::with_labels(
            self.labels
                .iter()
                .map(|(k, v)| (k.clone().into(), v.clone().into())),
        );
        registry.register_collector(Box::new(Collector(self.clone())));
        let mut text = String::new();
        // Encoding into a String cannot fail: the encoder's only errors are the writer's.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }
}

/// The figures a checkpoint or the result has beyond the counts: WebSocket, delivery, rate limit.
fn take_extras(f: &mut Figures, r: &RunResult) {
    if let Some(ws) = &r.metrics.ws {
        let mut delivery = Vec::new();
        if let Some(d) = &ws.delivery {
            delivery = vec![
                ("published", d.published),
                ("acknowledged", d.acknowledged),
                ("failed", d.failed),
                ("received", d.received),
                ("lost", d.lost),
                ("duplicated", d.duplicated),
                ("out_of_order", d.out_of_order),
                ("unexpected", d.unexpected),
            ];
        }
        f.ws = Some(WsFigures {
            connections: ws.connections,
            peak_connections: ws.peak_connections,
            failed_connections: ws.failed_connections,
            reconnects: ws.reconnects,
            messages_sent: ws.messages_sent,
            messages_received: ws.messages_received,
            delivery,
        });
    }
    if let Some(rl) = &r.metrics.rate_limit {
        f.rate_limit = Some(RateLimitFigures {
            offered: rl.offered,
            accepted: rl.accepted,
            rejected: rl.rejected,
            conforms: rl.conforms,
            inferred_rate_per_s: rl.inferred_rate_per_s,
        });
    }
}

impl Observer for Live {
    fn progress(&self, p: &Progress) {
        let mut f = self.figures();
        f.in_flight = p.in_flight;
        f.planned = p.planned;
    }

    fn checkpoint(&self, partial: &RunResult) {
        take_extras(&mut self.figures(), partial);
    }

    fn journal(&self, entry: Entry) {
        let Entry::Slice { slice, .. } = entry else {
            return;
        };
        let mut f = self.figures();
        f.succeeded += slice.succeeded;
        f.failed += slice.failed;
        f.late += slice.late;
        for (k, n) in &slice.errors {
            *f.errors.entry(k.clone()).or_default() += n;
        }
        let all = slice.latency.all();
        merge(f.latency.get_or_insert_with(new_histogram), &all);
    }
}

/// Encodes [`Live`]'s figures at each scrape.
#[derive(Debug)]
struct Collector(Arc<Live>);

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    ConstCounter::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> std::fmt::Result {
    ConstGauge::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// One series per value of `label`.
fn family<M: EncodeMetric>(
    e: &mut DescriptorEncoder,
    descriptor: (&str, &str, MetricType),
    label: &str,
    series: impl IntoIterator<Item = (String, M)>,
) -> std::fmt::Result {
    labelled(
        e,
        descriptor,
        series
            .into_iter()
            .map(|(value, m)| (vec![(label.to_string(), value)], m)),
    )
}

/// One series per set of labels.
fn labelled<M: EncodeMetric>(
    e: &mut DescriptorEncoder,
    (name, help, kind): (&str, &str, MetricType),
    series: impl IntoIterator<Item = (Vec<(String, String)>, M)>,
) -> std::fmt::Result {
    let mut d = e.encode_descriptor(name, help, None, kind)?;
    for (labels, metric) in series {
        metric.encode(d.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A histogram from an HdrHistogram: each bucket counts the iterations at or below its bound (to
/// the HdrHistogram's three significant digits); the sum is the count times the mean.
struct Buckets<'a>(&'a Hist);

impl EncodeMetric for Buckets<'_> {
    fn encode(&self, mut e: prometheus_client::encoding::MetricEncoder) -> std::fmt::Result {
        let h = self.0;
        let mut buckets = Vec::with_capacity(BUCKETS_S.len() + 1);
        let mut below = 0;
        for bound in BUCKETS_S {
            let micros = (bound * 1e6) as u64;
            let upto = if h.is_empty() {
                0
            } else {
                h.count_between(0, micros)
            };
            buckets.push((bound, upto.saturating_sub(below)));
            below = upto;
        }
        buckets.push((f64::INFINITY, h.len().saturating_sub(below)));
        let sum = h.mean() * h.len() as f64 / 1e6;
        e.encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, h.len(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Passed => "passed",
        Status::Failed => "failed",
        Status::Aborted => "aborted",
    }
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let f = self.0.figures().clone();
        family(
            &mut e,
            (
                "harness_iterations",
                "Iterations finished, by outcome",
                MetricType::Counter,
            ),
            "outcome",
            [
                ("succeeded".to_string(), ConstCounter::new(f.succeeded)),
                ("failed".to_string(), ConstCounter::new(f.failed)),
            ],
        )?;
        family(
            &mut e,
            (
                "harness_errors",
                "Failed iterations by error kind (as result.json's errors)",
                MetricType::Counter,
            ),
            "kind",
            f.errors
                .iter()
                .map(|(k, n)| (k.clone(), ConstCounter::new(*n))),
        )?;
        counter(
            &mut e,
            "harness_late_starts",
            "Iterations that started later than their schedule allowed (open and stepped loads)",
            f.late,
        )?;
        gauge(
            &mut e,
            "harness_in_flight",
            "Iterations started and not yet finished",
            f.in_flight as f64,
        )?;
        gauge(
            &mut e,
            "harness_planned_iterations",
            "Iterations the run plans (this shard's share)",
            f.planned as f64,
        )?;
        let empty = new_histogram();
        Buckets(f.latency.as_ref().unwrap_or(&empty)).encode(e.encode_descriptor(
            "harness_iteration_duration_seconds",
            "Latency of finished iterations, from the intended start in open loads",
            None,
            MetricType::Histogram,
        )?)?;
        gauge(
            &mut e,
            "harness_run_finished",
            "1 once the run has ended and these are result.json's figures",
            flag(f.finished),
        )?;
        if let Some(status) = f.status {
            family(
                &mut e,
                (
                    "harness_run_status",
                    "1 for the run's status (passed, failed or aborted)",
                    MetricType::Gauge,
                ),
                "status",
                ["passed", "failed", "aborted"].map(|s| {
                    let is = status_word(status) == s;
                    (s.to_string(), ConstGauge::new(flag(is)))
                }),
            )?;
        }
        if let Some(ws) = &f.ws {
            for (name, help, v) in [
                (
                    "harness_ws_connections",
                    "WebSocket connections opened",
                    ws.connections,
                ),
                (
                    "harness_ws_connections_failed",
                    "WebSocket connections that failed to open",
                    ws.failed_connections,
                ),
                (
                    "harness_ws_reconnects",
                    "WebSocket reconnects",
                    ws.reconnects,
                ),
                (
                    "harness_ws_messages_sent",
                    "WebSocket messages sent",
                    ws.messages_sent,
                ),
                (
                    "harness_ws_messages_received",
                    "WebSocket messages received",
                    ws.messages_received,
                ),
            ] {
                counter(&mut e, name, help, v)?;
            }
            gauge(
                &mut e,
                "harness_ws_peak_connections",
                "Most WebSocket connections open at once",
                ws.peak_connections as f64,
            )?;
            if !ws.delivery.is_empty() {
                family(
                    &mut e,
                    (
                        "harness_ws_delivery_messages",
                        "Delivery check: messages by state (lost is known once owed deliveries are settled)",
                        MetricType::Gauge,
                    ),
                    "state",
                    ws.delivery
                        .iter()
                        .map(|(s, n)| (s.to_string(), ConstGauge::new(*n as f64))),
                )?;
            }
        }
        if let Some(rl) = &f.rate_limit {
            family(
                &mut e,
                (
                    "harness_rate_limit_probe_messages",
                    "Rate-limit probe: what it offered, and how the target answered",
                    MetricType::Gauge,
                ),
                "answer",
                [
                    ("offered", rl.offered),
                    ("accepted", rl.accepted),
                    ("rejected", rl.rejected),
                ]
                .map(|(s, n)| (s.to_string(), ConstGauge::new(n as f64))),
            )?;
            gauge(
                &mut e,
                "harness_rate_limit_conforms",
                "1 when the inferred rate limit conforms to the declared one",
                flag(rl.conforms),
            )?;
            if let Some(rate) = rl.inferred_rate_per_s {
                gauge(
                    &mut e,
                    "harness_rate_limit_inferred_per_second",
                    "The rate limit the probe inferred",
                    rate,
                )?;
            }
        }
        family(
            &mut e,
            (
                "harness_check_passed",
                "1 for each check that passed, 0 for each that failed (at the end)",
                MetricType::Gauge,
            ),
            "check",
            f.checks
                .iter()
                .map(|(n, ok)| (n.clone(), ConstGauge::new(flag(*ok)))),
        )?;
        labelled(
            &mut e,
            (
                "harness_threshold_passed",
                "1 for each threshold that held, 0 for each that failed (at the end)",
                MetricType::Gauge,
            ),
            f.thresholds.iter().map(|(metric, condition, ok)| {
                let labels = vec![
                    ("metric".to_string(), metric.clone()),
                    ("condition".to_string(), condition.clone()),
                ];
                (labels, ConstGauge::new(flag(*ok)))
            }),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
