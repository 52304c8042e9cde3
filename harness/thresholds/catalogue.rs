//! The catalogue of metrics: every metric a threshold may name is defined here once — its name, its
//! kind, which runs produce it (and what a run needs to), how its value is read from a result (and
//! from one stage of a stepped load, where a stage can be judged on it), and whether and how
//! `compare` judges it. Validation, judging, `compare` and the README's table of metrics all come
//! from this one table.
//!
//! It is built from plain facts of a run ([`RunShape`]), so this module imports nothing above it.

use std::fmt;

use super::evaluate::Values;
use crate::kinds::{LoadModel, Suite, TargetKind, WsMode};
use crate::metrics::LatencySummary;
use crate::result::{RecoveryWindow, RunResult, StageResult};
use crate::taxonomy::ErrorKind;

/// What a metric measures, which decides how its condition is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Written with a unit (`"< 50ms"`), compared in milliseconds.
    Duration,
    /// A fraction, written `0.95` or `95%`.
    Ratio,
    /// A whole count.
    Count,
    /// Per second, written `"20/s"`.
    Rate,
    /// A plain number (e.g. a drift ratio).
    Number,
    /// `true` or `false`.
    Bool,
}

impl MetricKind {
    /// The name used in results: `duration`, `ratio`, `count`, `rate`, `number`, `bool`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Duration => "duration",
            MetricKind::Ratio => "ratio",
            MetricKind::Count => "count",
            MetricKind::Rate => "rate",
            MetricKind::Number => "number",
            MetricKind::Bool => "bool",
        }
    }
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetricKind::Duration => "a duration",
            MetricKind::Ratio => "a ratio",
            MetricKind::Count => "a count",
            MetricKind::Rate => "a rate",
            MetricKind::Number => "a number",
            MetricKind::Bool => "true or false",
        })
    }
}

/// Summary statistics of every latency histogram.
pub const STATS: &[&str] = &[
    "count", "min", "mean", "p50", "p90", "p95", "p99", "p999", "max",
];

/// What the catalogue needs to know of a procedure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcedureFacts {
    pub steps: Vec<String>,
    pub rules: Vec<String>,
    /// Names of the timings its steps record.
    pub records: Vec<String>,
    pub has_rollbacks: bool,
    /// Medium or low rules, whose failures are warnings.
    pub has_warnings: bool,
}

/// Which probes a run has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeFacts {
    pub rate_limit: bool,
    pub hardening: bool,
    pub slow_consumer: bool,
}

/// What the catalogue needs to know about a run. Parts may be unknown (`None`) when the scenario
/// around a threshold is itself broken; the catalogue is then lenient about them, so that one mistake
/// does not hide the thresholds' own problems or invent new ones.
#[derive(Debug, Clone, Copy)]
pub struct RunShape<'a> {
    pub kind: Option<TargetKind>,
    pub suite: Option<Suite>,
    pub load_model: Option<LoadModel>,
    /// The procedure, when the target has one and it resolved.
    pub procedure: Option<&'a ProcedureFacts>,
    /// False when the target names a procedure that could not be read.
    pub procedure_known: bool,
    /// Whether the scenario schedules network fault windows.
    pub fault_windows: bool,
    /// Websocket targets: what an iteration does, when known.
    pub ws_mode: Option<WsMode>,
    /// The probes, when the `[probes]` table could be read.
    pub probes: Option<ProbeFacts>,
}

impl RunShape<'_> {
    fn is_kind(&self, kind: TargetKind) -> bool {
        self.kind.is_none_or(|k| k == kind)
    }
    fn is_handoff(&self) -> bool {
        self.is_kind(TargetKind::Handoff)
    }
    fn is_suite(&self, suite: Suite) -> bool {
        self.suite.is_none_or(|s| s == suite)
    }
    fn procedure_has(&self, test: impl Fn(&ProcedureFacts) -> bool) -> bool {
        if !self.procedure_known {
            return true;
        }
        self.procedure.is_some_and(test)
    }
    fn has_rollbacks(&self) -> bool {
        self.is_handoff() && self.procedure_has(|p| p.has_rollbacks)
    }
    fn has_warnings(&self) -> bool {
        self.procedure_has(|p| p.has_warnings)
    }
    fn has_rules(&self) -> bool {
        self.procedure_has(|p| !p.rules.is_empty())
    }
    fn has_records(&self) -> bool {
        self.procedure_has(|p| !p.records.is_empty())
    }
    fn is_scheduled(&self) -> bool {
        self.load_model.is_none_or(LoadModel::is_scheduled)
    }
    fn is_ws(&self) -> bool {
        self.is_kind(TargetKind::Websocket)
    }
    fn publishes(&self) -> bool {
        self.is_ws() && self.ws_mode.is_none_or(|m| m == WsMode::Publish)
    }
    fn probes_rate_limit(&self) -> bool {
        self.probes.is_none_or(|p| p.rate_limit)
    }
    fn probes_slow_consumer(&self) -> bool {
        self.is_ws() && self.probes.is_none_or(|p| p.slow_consumer)
    }
}

/// How `compare` estimates a metric's change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Estimator {
    /// A latency percentile (0..1): per-second windows or iterations from the histograms.
    Quantile(f64),
    /// Succeeded ÷ iterations.
    SuccessRate,
    /// Verified ÷ attempted rollbacks.
    RollbackRate,
    /// Iterations per second.
    Throughput,
}

/// Whether and how `compare` judges a metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compared {
    /// The concrete name compared (`latency.p95`).
    pub name: &'static str,
    pub estimator: Estimator,
    /// A rise is bad (latencies) rather than good (rates, throughput).
    pub rise_is_bad: bool,
    /// The change is in percentage points (success rates), not relative to the base.
    pub in_points: bool,
}

/// One metric, or a family of them (`latency.{stat}`).
pub struct Metric {
    /// Dotted pattern; `{stat}`, `{step}`, `{error}`, `{rule}` and `{record}` stand for one segment
    /// each.
    pub pattern: &'static str,
    /// Kind of the metric (for `{stat}` families, of every stat but `count`).
    pub kind: MetricKind,
    pub applies: fn(&RunShape<'_>) -> bool,
    /// What a run needs to produce it, for messages and the README; empty: every run does.
    pub needs: &'static str,
    /// More for the README, if anything.
    pub about: &'static str,
    /// Reads its values from a result.
    pub read: fn(&RunResult, &mut Values),
    /// Reads its values from one stage of a stepped load, when a stage can be judged on it.
    pub stage: Option<fn(&StageResult, &mut Values)>,
    /// What `compare` judges of it.
    pub compare: &'static [Compared],
}

fn every(_: &RunShape<'_>) -> bool {
    true
}

fn summary(v: &mut Values, prefix: &str, s: Option<&LatencySummary>) {
    if let Some(s) = s {
        for stat in STATS {
            if let Some(x) = s.stat(stat) {
                v.set(format!("{prefix}.{stat}"), x);
            }
        }
    }
}

type Totals = crate::result::ResultTotals;

/// A share of the iterations, when there were any.
fn share(v: &mut Values, name: &str, t: &Totals, part: fn(&Totals) -> u64) {
    if t.iterations > 0 {
        v.set(name, part(t) as f64 / t.iterations as f64);
    }
}

fn errors(v: &mut Values, errors: &std::collections::BTreeMap<String, u64>) {
    let mut validation = 0;
    for (k, n) in errors {
        v.set(format!("errors.{k}"), *n as f64);
        if k.starts_with("validation.") {
            validation += n;
        }
    }
    v.set("errors.validation", validation as f64);
}

fn ws_count(r: &RunResult, v: &mut Values, name: &str, f: fn(&crate::result::WsMetrics) -> u64) {
    if let Some(ws) = &r.metrics.ws {
        v.set(name, f(ws) as f64);
    }
}

fn delivery(
    r: &RunResult,
    v: &mut Values,
    name: &str,
    f: fn(&crate::result::ws::DeliveryReport) -> u64,
) {
    if let Some(d) = r.metrics.ws.as_ref().and_then(|w| w.delivery.as_ref()) {
        v.set(name, f(d) as f64);
    }
}

/// The slowest window decides; a window never recovered leaves no value (and the threshold fails
/// with a note).
fn worst_window(r: &RunResult, v: &mut Values, name: &str, f: fn(&RecoveryWindow) -> Option<f64>) {
    if let Some(rec) = &r.metrics.recovery
        && let Some(t) = rec
            .windows
            .iter()
            .map(f)
            .try_fold(0.0f64, |acc, x| x.map(|x| acc.max(x)))
    {
        v.set(name, t * 1000.0);
    }
}

fn drift(r: &RunResult, v: &mut Values, name: &str, f: fn(&crate::metrics::Drift) -> Option<f64>) {
    if let Some(x) = r.metrics.drift.as_ref().and_then(f) {
        v.set(name, x);
    }
}

const LATENCY_COMPARED: &[Compared] = &[
    Compared {
        name: "latency.p50",
        estimator: Estimator::Quantile(0.50),
        rise_is_bad: true,
        in_points: false,
    },
    Compared {
        name: "latency.p95",
        estimator: Estimator::Quantile(0.95),
        rise_is_bad: true,
        in_points: false,
    },
    Compared {
        name: "latency.p99",
        estimator: Estimator::Quantile(0.99),
        rise_is_bad: true,
        in_points: false,
    },
];

const WEBSOCKET: &str = "a websocket target";
const PUBLISH: &str = "a websocket target in publish mode";
const RATE_LIMIT: &str = "the rate-limit probe ([probes.rate_limit])";
const WINDOWS: &str = "network fault windows ([[faults.network]])";
const ENDURANCE: &str = "the endurance suite";
const ROLLBACKS: &str = "a handoff target whose procedure has rollbacks";
const SCHEDULED: &str = "an open or stepped load";

/// Every metric, in the order the README lists them.
pub const CATALOGUE: &[Metric] = &[
    Metric {
        pattern: "iterations",
        kind: MetricKind::Count,
        applies: every,
        needs: "",
        about: "iterations that ran to an outcome",
        read: |r, v| v.set("iterations", r.totals.iterations as f64),
        stage: Some(|s, v| v.set("iterations", s.totals.iterations as f64)),
        compare: &[],
    },
    Metric {
        pattern: "succeeded",
        kind: MetricKind::Count,
        applies: every,
        needs: "",
        about: "",
        read: |r, v| v.set("succeeded", r.totals.succeeded as f64),
        stage: Some(|s, v| v.set("succeeded", s.totals.succeeded as f64)),
        compare: &[],
    },
    Metric {
        pattern: "failed",
        kind: MetricKind::Count,
        applies: every,
        needs: "",
        about: "",
        read: |r, v| v.set("failed", r.totals.failed as f64),
        stage: Some(|s, v| v.set("failed", s.totals.failed as f64)),
        compare: &[],
    },
    Metric {
        pattern: "timed_out",
        kind: MetricKind::Count,
        applies: every,
        needs: "",
        about: "",
        read: |r, v| v.set("timed_out", r.totals.timed_out as f64),
        stage: Some(|s, v| v.set("timed_out", s.totals.timed_out as f64)),
        compare: &[],
    },
    Metric {
        pattern: "success_rate",
        kind: MetricKind::Ratio,
        applies: every,
        needs: "",
        about: "succeeded ÷ iterations",
        read: |r, v| share(v, "success_rate", &r.totals, |t| t.succeeded),
        stage: Some(|s, v| share(v, "success_rate", &s.totals, |t| t.succeeded)),
        compare: &[Compared {
            name: "success_rate",
            estimator: Estimator::SuccessRate,
            rise_is_bad: false,
            in_points: true,
        }],
    },
    Metric {
        pattern: "error_rate",
        kind: MetricKind::Ratio,
        applies: every,
        needs: "",
        about: "failed ÷ iterations",
        read: |r, v| share(v, "error_rate", &r.totals, |t| t.failed),
        stage: Some(|s, v| share(v, "error_rate", &s.totals, |t| t.failed)),
        compare: &[],
    },
    Metric {
        pattern: "throughput",
        kind: MetricKind::Rate,
        applies: every,
        needs: "",
        about: "iterations per second of the load",
        read: |r, v| {
            if let Some(t) = r.metrics.throughput_per_s {
                v.set("throughput", t);
            }
        },
        stage: Some(|s, v| v.set("throughput", s.achieved_rate_per_s)),
        compare: &[Compared {
            name: "throughput",
            estimator: Estimator::Throughput,
            rise_is_bad: false,
            in_points: false,
        }],
    },
    Metric {
        pattern: "latency.{stat}",
        kind: MetricKind::Duration,
        applies: every,
        needs: "",
        about: "from each iteration's intended start under an open load",
        read: |r, v| summary(v, "latency", r.metrics.latency_ms.as_ref()),
        stage: Some(|s, v| summary(v, "latency", s.latency_ms.as_ref())),
        compare: LATENCY_COMPARED,
    },
    Metric {
        pattern: "errors.{error}",
        kind: MetricKind::Count,
        applies: every,
        needs: "",
        about: "a measured zero when none happened",
        read: |r, v| errors(v, &r.metrics.errors),
        stage: Some(|s, v| errors(v, &s.errors)),
        compare: &[],
    },
    Metric {
        pattern: "checks.failed",
        kind: MetricKind::Count,
        applies: every,
        needs: "",
        about: "the probes' named checks that failed",
        read: |r, v| {
            let failed = r.checks.iter().filter(|c| !c.passed).count();
            v.set("checks.failed", failed as f64);
        },
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "errors.validation.{rule}",
        kind: MetricKind::Count,
        applies: |s| s.has_rules(),
        needs: "a procedure with validation rules",
        about: "",
        read: |r, v| errors(v, &r.metrics.errors),
        stage: Some(|s, v| errors(v, &s.errors)),
        compare: &[],
    },
    Metric {
        pattern: "service_time.{stat}",
        kind: MetricKind::Duration,
        applies: |s| s.is_scheduled(),
        needs: "an open or stepped load (a closed load has no intended start times)",
        about: "uncorrected, from each iteration's actual start",
        read: |r, v| summary(v, "service_time", r.metrics.service_time_ms.as_ref()),
        stage: Some(|s, v| summary(v, "service_time", s.service_time_ms.as_ref())),
        compare: &[],
    },
    Metric {
        pattern: "schedule.late",
        kind: MetricKind::Count,
        applies: |s| s.is_scheduled(),
        needs: SCHEDULED,
        about: "iterations that started more than one interval late",
        read: |r, v| {
            if let Some(s) = &r.metrics.schedule {
                v.set("schedule.late", s.late as f64);
            }
        },
        stage: Some(|s, v| {
            if s.totals.iterations > 0 {
                v.set("schedule.late", s.late as f64);
            }
        }),
        compare: &[],
    },
    Metric {
        pattern: "schedule.on_time_rate",
        kind: MetricKind::Ratio,
        applies: |s| s.is_scheduled(),
        needs: SCHEDULED,
        about: "the share of iterations that started on time",
        read: |r, v| {
            if let Some(s) = &r.metrics.schedule {
                v.set("schedule.on_time_rate", s.on_time_rate);
            }
        },
        stage: Some(|s, v| {
            if s.totals.iterations > 0 {
                let late = s.late as f64 / s.totals.iterations as f64;
                v.set("schedule.on_time_rate", 1.0 - late);
            }
        }),
        compare: &[],
    },
    Metric {
        pattern: "steps.{step}.latency.{stat}",
        kind: MetricKind::Duration,
        applies: |s| s.is_handoff(),
        needs: "a handoff target (its procedure's steps)",
        about: "",
        read: |r, v| {
            for (id, step) in &r.metrics.steps {
                summary(v, &format!("steps.{id}.latency"), Some(&step.latency_ms));
            }
        },
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "warnings",
        kind: MetricKind::Count,
        applies: |s| s.has_warnings(),
        needs: "a procedure with medium or low validation rules",
        about: "",
        read: |r, v| v.set("warnings", r.metrics.warnings.values().sum::<u64>() as f64),
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "rollback.attempted",
        kind: MetricKind::Count,
        applies: |s| s.has_rollbacks(),
        needs: ROLLBACKS,
        about: "",
        read: |r, v| {
            if let Some(rb) = &r.metrics.rollback {
                v.set("rollback.attempted", rb.attempted as f64);
            }
        },
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "rollback.succeeded",
        kind: MetricKind::Count,
        applies: |s| s.has_rollbacks(),
        needs: ROLLBACKS,
        about: "verified: the state read back matched",
        read: |r, v| {
            if let Some(rb) = &r.metrics.rollback {
                v.set("rollback.succeeded", rb.succeeded as f64);
            }
        },
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "rollback.success_rate",
        kind: MetricKind::Ratio,
        applies: |s| s.has_rollbacks(),
        needs: ROLLBACKS,
        about: "verified ÷ attempted",
        read: |r, v| {
            if let Some(rate) = r.metrics.rollback.as_ref().and_then(|rb| rb.success_rate) {
                v.set("rollback.success_rate", rate);
            }
        },
        stage: None,
        compare: &[Compared {
            name: "rollback.success_rate",
            estimator: Estimator::RollbackRate,
            rise_is_bad: false,
            in_points: true,
        }],
    },
    Metric {
        pattern: "{record}.{stat}",
        kind: MetricKind::Duration,
        applies: |s| s.has_records(),
        needs: "a procedure step that records it (record = { \"name\" = \"/pointer\" })",
        about: "e.g. `lock.acquire.p95`",
        read: |r, v| {
            for (name, s) in &r.metrics.recorded {
                summary(v, name, Some(s));
            }
        },
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "invariants.violations",
        kind: MetricKind::Count,
        applies: |s| s.is_handoff() && s.is_suite(Suite::Concurrency),
        needs: "the concurrency suite against a handoff target",
        about: "",
        read: |r, v| {
            if let Some(inv) = &r.metrics.invariants {
                v.set("invariants.violations", inv.violations as f64);
            }
        },
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "breaking_point.rate",
        kind: MetricKind::Rate,
        applies: |s| s.is_suite(Suite::Stress),
        needs: "the stress suite",
        about: "",
        read: |r, v| {
            if let Some(bp) = r
                .metrics
                .stress
                .as_ref()
                .and_then(|s| s.breaking_point.as_ref())
            {
                v.set("breaking_point.rate", bp.rate_per_s);
            }
        },
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "drift.p95_ratio",
        kind: MetricKind::Number,
        applies: |s| s.is_suite(Suite::Endurance),
        needs: ENDURANCE,
        about: "p95 of the last window ÷ p95 of the first",
        read: |r, v| drift(r, v, "drift.p95_ratio", |d| d.p95_ratio),
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "drift.p95_change",
        kind: MetricKind::Duration,
        applies: |s| s.is_suite(Suite::Endurance),
        needs: ENDURANCE,
        about: "how much p95 grew",
        read: |r, v| drift(r, v, "drift.p95_change", |d| d.p95_change_ms),
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "drift.error_rate_change",
        kind: MetricKind::Number,
        applies: |s| s.is_suite(Suite::Endurance),
        needs: ENDURANCE,
        about: "",
        read: |r, v| drift(r, v, "drift.error_rate_change", |d| d.error_rate_change),
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "ws.connect.{stat}",
        kind: MetricKind::Duration,
        applies: |s| s.is_ws(),
        needs: WEBSOCKET,
        about: "handshakes: TCP connect and upgrade",
        read: |r, v| {
            summary(
                v,
                "ws.connect",
                r.metrics.ws.as_ref().and_then(|w| w.connect_ms.as_ref()),
            )
        },
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "ws.ping.{stat}",
        kind: MetricKind::Duration,
        applies: |s| s.is_ws(),
        needs: "a websocket target (with ping_interval set)",
        about: "",
        read: |r, v| {
            summary(
                v,
                "ws.ping",
                r.metrics.ws.as_ref().and_then(|w| w.ping_ms.as_ref()),
            )
        },
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "ws.connections",
        kind: MetricKind::Count,
        applies: |s| s.is_ws(),
        needs: WEBSOCKET,
        about: "handshakes completed, reconnections included",
        read: |r, v| ws_count(r, v, "ws.connections", |w| w.connections),
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "ws.peak_connections",
        kind: MetricKind::Count,
        applies: |s| s.is_ws(),
        needs: WEBSOCKET,
        about: "",
        read: |r, v| ws_count(r, v, "ws.peak_connections", |w| w.peak_connections),
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "ws.failed_connections",
        kind: MetricKind::Count,
        applies: |s| s.is_ws(),
        needs: WEBSOCKET,
        about: "connection attempts refused, rejected or timed out",
        read: |r, v| ws_count(r, v, "ws.failed_connections", |w| w.failed_connections),
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "ws.reconnects",
        kind: MetricKind::Count,
        applies: |s| s.is_ws(),
        needs: WEBSOCKET,
        about: "connections opened again after one was lost",
        read: |r, v| ws_count(r, v, "ws.reconnects", |w| w.reconnects),
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "ws.frames_without_correlation",
        kind: MetricKind::Count,
        applies: |s| s.is_ws(),
        needs: WEBSOCKET,
        about: "",
        read: |r, v| {
            ws_count(r, v, "ws.frames_without_correlation", |w| {
                w.frames_without_correlation
            })
        },
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "ws.delivery_rate",
        kind: MetricKind::Ratio,
        applies: |s| s.publishes(),
        needs: PUBLISH,
        about: "",
        read: |r, v| {
            if let Some(rate) = r.metrics.ws.as_ref().and_then(|w| w.delivery_rate) {
                v.set("ws.delivery_rate", rate);
            }
        },
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "ws.delivery.{stat}",
        kind: MetricKind::Duration,
        applies: |s| s.publishes(),
        needs: PUBLISH,
        about: "from a publish's send to its receipt",
        read: |r, v| {
            let d = r.metrics.ws.as_ref().and_then(|w| w.delivery_ms.as_ref());
            summary(v, "ws.delivery", d)
        },
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "ws.lost",
        kind: MetricKind::Count,
        applies: |s| s.publishes(),
        needs: PUBLISH,
        about: "",
        read: |r, v| delivery(r, v, "ws.lost", |d| d.lost),
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "ws.duplicated",
        kind: MetricKind::Count,
        applies: |s| s.publishes(),
        needs: PUBLISH,
        about: "",
        read: |r, v| delivery(r, v, "ws.duplicated", |d| d.duplicated),
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "ws.out_of_order",
        kind: MetricKind::Count,
        applies: |s| s.publishes(),
        needs: PUBLISH,
        about: "",
        read: |r, v| delivery(r, v, "ws.out_of_order", |d| d.out_of_order),
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "ws.unexpected",
        kind: MetricKind::Count,
        applies: |s| s.publishes(),
        needs: PUBLISH,
        about: "",
        read: |r, v| delivery(r, v, "ws.unexpected", |d| d.unexpected),
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "rate_limit.conforms",
        kind: MetricKind::Bool,
        applies: |s| s.probes_rate_limit(),
        needs: RATE_LIMIT,
        about: "",
        read: |r, v| {
            if let Some(rl) = &r.metrics.rate_limit {
                v.set("rate_limit.conforms", if rl.conforms { 1.0 } else { 0.0 });
            }
        },
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "rate_limit.inferred_rate",
        kind: MetricKind::Rate,
        applies: |s| s.probes_rate_limit(),
        needs: RATE_LIMIT,
        about: "",
        read: |r, v| {
            if let Some(x) = r
                .metrics
                .rate_limit
                .as_ref()
                .and_then(|r| r.inferred_rate_per_s)
            {
                v.set("rate_limit.inferred_rate", x);
            }
        },
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "rate_limit.inferred_burst",
        kind: MetricKind::Number,
        applies: |s| s.probes_rate_limit(),
        needs: RATE_LIMIT,
        about: "",
        read: |r, v| {
            if let Some(x) = r.metrics.rate_limit.as_ref().and_then(|r| r.inferred_burst) {
                v.set("rate_limit.inferred_burst", x);
            }
        },
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "slow_consumer.disconnect_time",
        kind: MetricKind::Duration,
        applies: |s| s.probes_slow_consumer(),
        needs: "the slow-consumer probe ([probes.slow_consumer])",
        about: "",
        read: |r, v| {
            let ms = r
                .metrics
                .ws
                .as_ref()
                .and_then(|w| w.slow_consumer.as_ref())
                .and_then(|s| s.disconnected_after_ms);
            if let Some(ms) = ms {
                v.set("slow_consumer.disconnect_time", ms);
            }
        },
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "recovery.time",
        kind: MetricKind::Duration,
        applies: |s| s.fault_windows,
        needs: WINDOWS,
        about: "the slowest window: from its end until the target is back",
        read: |r, v| worst_window(r, v, "recovery.time", |w| w.time_to_recover_s),
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "recovery.time_to_first_success",
        kind: MetricKind::Duration,
        applies: |s| s.fault_windows,
        needs: WINDOWS,
        about: "",
        read: |r, v| {
            worst_window(r, v, "recovery.time_to_first_success", |w| {
                w.time_to_first_success_s
            })
        },
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "recovery.lost",
        kind: MetricKind::Count,
        applies: |s| s.fault_windows,
        needs: WINDOWS,
        about: "iterations failed and acknowledged messages lost, over every window",
        read: |r, v| {
            if let Some(rec) = &r.metrics.recovery {
                let lost: u64 = rec
                    .windows
                    .iter()
                    .map(|w| w.lost + w.messages_lost.unwrap_or(0))
                    .sum();
                v.set("recovery.lost", lost as f64);
            }
        },
        stage: None,
        compare: &[],
    },
];

/// The first words of the metrics the harness itself produces (`latency`, `ws`, `recovery`, …): a
/// name a procedure records must not start with one.
pub fn reserved_roots() -> impl Iterator<Item = &'static str> {
    CATALOGUE
        .iter()
        .filter_map(|f| f.pattern.split('.').next())
        .filter(|root| !root.starts_with('{'))
}

/// Whether one stage of a stepped load can be judged on `name`.
pub fn judged_per_stage(name: &str) -> bool {
    CATALOGUE
        .iter()
        .any(|m| m.stage.is_some() && matches_pattern(m.pattern, name))
}

/// Every metric `compare` judges, in order, with its entry.
pub fn compared() -> impl Iterator<Item = (&'static Metric, &'static Compared)> + Clone {
    CATALOGUE
        .iter()
        .flat_map(|m| m.compare.iter().map(move |c| (m, c)))
}

/// A metric name a run of some shape produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSpec {
    pub name: String,
    pub kind: MetricKind,
}

/// Every metric a run of this shape produces, by name.
pub fn available(shape: &RunShape<'_>) -> Vec<MetricSpec> {
    let mut out = Vec::new();
    for family in CATALOGUE.iter().filter(|f| (f.applies)(shape)) {
        for name in expand(family.pattern, shape) {
            let kind = if name.ends_with(".count") {
                MetricKind::Count
            } else {
                family.kind
            };
            out.push(MetricSpec { name, kind });
        }
    }
    out
}

fn expand(pattern: &str, shape: &RunShape<'_>) -> Vec<String> {
    let facts = |f: fn(&ProcedureFacts) -> &Vec<String>| -> Vec<String> {
        shape.procedure.map(|p| f(p).clone()).unwrap_or_default()
    };
    let mut names = vec![String::new()];
    for (i, seg) in pattern.split('.').enumerate() {
        let choices: Vec<String> = match seg {
            "{stat}" => STATS.iter().map(|s| s.to_string()).collect(),
            "{error}" => ErrorKind::ALL
                .iter()
                .filter(|k| **k != ErrorKind::Validation)
                .map(|k| k.as_str().to_string())
                .chain(std::iter::once("validation".to_string()))
                .collect(),
            "{step}" => facts(|p| &p.steps),
            "{rule}" => facts(|p| &p.rules),
            "{record}" => facts(|p| &p.records),
            literal => vec![literal.to_string()],
        };
        names = names
            .iter()
            .flat_map(|prefix| {
                choices.iter().map(move |c| {
                    if i == 0 {
                        c.clone()
                    } else {
                        format!("{prefix}.{c}")
                    }
                })
            })
            .collect();
    }
    names
}

/// Looks a metric name up for a run of this shape.
pub enum Lookup {
    Found(MetricKind),
    /// The name exists, but this run does not produce it; says what would.
    NotProduced {
        needs: &'static str,
    },
    /// No such metric; the nearest known name, if any is close.
    Unknown {
        suggestion: Option<String>,
    },
}

pub fn lookup(name: &str, shape: &RunShape<'_>) -> Lookup {
    let here = available(shape);
    if let Some(spec) = here.iter().find(|s| s.name == name) {
        return Lookup::Found(spec.kind);
    }
    if let Some(family) = CATALOGUE.iter().find(|f| matches_pattern(f.pattern, name)) {
        if !(family.applies)(shape) {
            return Lookup::NotProduced {
                needs: family.needs,
            };
        }
        // Names of steps, rules and records cannot be checked when the procedure is unknown.
        if !shape.procedure_known {
            let kind = if name.ends_with(".count") {
                MetricKind::Count
            } else {
                family.kind
            };
            return Lookup::Found(kind);
        }
    }
    let suggestion = crate::config::suggest::nearest(name, here.iter().map(|s| s.name.as_str()))
        .map(str::to_string);
    // With the procedure unknown, `name.p95` may be a metric one of its steps records; give it the
    // benefit of the doubt unless it is a near miss of a metric the run does produce.
    let (root, stat) = name.rsplit_once('.').unwrap_or_default();
    if !shape.procedure_known && suggestion.is_none() && !root.is_empty() && STATS.contains(&stat) {
        let kind = if stat == "count" {
            MetricKind::Count
        } else {
            MetricKind::Duration
        };
        return Lookup::Found(kind);
    }
    Lookup::Unknown { suggestion }
}

/// Whether `name` has the form of `pattern`, whatever the run (`{step}` and `{rule}` match any segment).
fn matches_pattern(pattern: &str, name: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let n: Vec<&str> = name.split('.').collect();
    p.len() == n.len()
        && p.iter().zip(&n).all(|(p, n)| match *p {
            "{stat}" => STATS.contains(n),
            "{step}" | "{rule}" => !n.is_empty(),
            "{error}" => ErrorKind::ALL.iter().any(|k| k.as_str() == *n),
            lit => lit == *n,
        })
}

/// The README's table of metrics, one row per entry of the catalogue.
pub fn markdown_table() -> String {
    let kinds: &[(&str, &str)] = &[
        ("{stat}", "<stat>"),
        ("{step}", "<step id>"),
        ("{error}", "<kind>"),
        ("{rule}", "<rule id>"),
        ("{record}", "<recorded name>"),
    ];
    let mut out = String::from("| metric | kind | produced by |\n| --- | --- | --- |\n");
    for m in CATALOGUE {
        let mut name = m.pattern.to_string();
        for (from, to) in kinds {
            name = name.replace(from, to);
        }
        let by = if m.needs.is_empty() {
            "every run".to_string()
        } else {
            m.needs.to_string()
        };
        let by = if m.about.is_empty() {
            by
        } else {
            format!("{by}; {}", m.about)
        };
        let by = if m.pattern.contains("{error}") {
            let kinds: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
            format!("{by}; kinds: {}", kinds.join(", "))
        } else {
            by
        };
        out.push_str(&format!(
            "| `{name}` | {} | {} |\n",
            m.kind.as_str(),
            by.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_of_the_catalogue_reserves_its_first_word() {
        let roots: Vec<&str> = reserved_roots().collect();
        for root in [
            "latency",
            "errors",
            "ws",
            "rate_limit",
            "slow_consumer",
            "recovery",
        ] {
            assert!(roots.contains(&root), "{root} is not reserved: {roots:?}");
        }
        assert!(
            roots.iter().all(|r| !r.starts_with('{')),
            "a placeholder is not a word: {roots:?}"
        );
    }

    #[test]
    fn every_pattern_is_defined_once_and_compared_names_are_its_own() {
        let mut seen = std::collections::BTreeSet::new();
        for m in CATALOGUE {
            assert!(seen.insert(m.pattern), "{} twice", m.pattern);
            for c in m.compare {
                assert!(
                    matches_pattern(m.pattern, c.name),
                    "{} ∉ {}",
                    c.name,
                    m.pattern
                );
            }
        }
        assert_eq!(compared().count(), 6);
    }
}

#[cfg(test)]
mod readme {
    /// The README's table of metrics is the catalogue's, row for row.
    #[test]
    fn the_readme_lists_exactly_the_catalogue() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
        let (begin, end) = ("<!-- metrics: begin -->\n", "<!-- metrics: end -->");
        let table = readme
            .split_once(begin)
            .and_then(|(_, rest)| rest.split_once(end))
            .map(|(table, _)| table)
            .expect("the README marks its table of metrics");
        let expected = super::markdown_table();
        assert!(
            table == expected,
            "the README's table of metrics differs from the catalogue; put this between the \
             markers:\n{expected}"
        );
    }
}
