//! The table of the catalogue: every metric, in the order the README lists them, with how each is
//! read from a result. See the module above for what the fields mean.

use super::{Compared, Estimator, Metric, MetricKind, RunShape, STATS};
use crate::kinds::Suite;
use crate::metrics::LatencySummary;
use crate::result::{RecoveryWindow, RunResult};
use crate::thresholds::evaluate::{Bound, Values};

fn every(_: &RunShape<'_>) -> bool {
    true
}

fn summary(v: &mut Values, prefix: &str, s: Option<&LatencySummary>) {
    let Some(s) = s else { return };
    for stat in STATS {
        if let Some(x) = s.stat(stat) {
            v.set(format!("{prefix}.{stat}"), x);
        } else if let Some((_, needed)) = s.unsupported(stat) {
            let bound = Bound {
                min: s.min,
                max: s.max,
                samples: s.count,
                needed,
            };
            v.bound(format!("{prefix}.{stat}"), bound);
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
        name: "latency_ok.p50",
        estimator: Estimator::Quantile(0.50),
        rise_is_bad: true,
        in_points: false,
    },
    Compared {
        name: "latency_ok.p95",
        estimator: Estimator::Quantile(0.95),
        rise_is_bad: true,
        in_points: false,
    },
    Compared {
        name: "latency_ok.p99",
        estimator: Estimator::Quantile(0.99),
        rise_is_bad: true,
        in_points: false,
    },
];

const WEBSOCKET: &str = "a websocket target";
const PUBLISH: &str = "a websocket target in publish mode";
const RATE_LIMIT: &str = "the rate-limit probe ([probes.rate_limit])";
const BODY_SIZE: &str = "the body-size probe ([probes.body_size])";
const WINDOWS: &str = "network fault windows ([[faults.network]])";
const ENDURANCE: &str = "the endurance suite";
const ROLLBACKS: &str = "a handoff target whose procedure has rollbacks";
const SCHEDULED: &str = "an open or stepped load";
const RETRIES: &str = "a request with retries > 0";
const HISTORY: &str = "a procedure with `history` steps and `[read_back]`";

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
        pattern: "latency.{stat}",
        kind: MetricKind::Duration,
        applies: every,
        needs: "",
        about: "every completed iteration, succeeded or failed; from each iteration's intended \
                start under an open load",
        read: |r, v| summary(v, "latency", r.metrics.latency_ms.as_ref()),
        stage: Some(|s, v| summary(v, "latency", s.latency_ms.as_ref())),
        compare: &[],
    },
    Metric {
        pattern: "latency_ok.{stat}",
        kind: MetricKind::Duration,
        applies: every,
        needs: "",
        about: "succeeded iterations only (what summaries, reports and compare headline)",
        read: |r, v| summary(v, "latency_ok", r.metrics.latency_ok_ms.as_ref()),
        stage: Some(|s, v| summary(v, "latency_ok", s.latency_ok_ms.as_ref())),
        compare: LATENCY_COMPARED,
    },
    Metric {
        pattern: "latency_failed.{stat}",
        kind: MetricKind::Duration,
        applies: every,
        needs: "",
        about: "failed iterations only; no value when none failed",
        read: |r, v| summary(v, "latency_failed", r.metrics.latency_failed_ms.as_ref()),
        stage: None,
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
        about: "every attempt of the step",
        read: |r, v| {
            for (id, step) in &r.metrics.steps {
                summary(v, &format!("steps.{id}.latency"), Some(&step.latency_ms));
            }
        },
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "steps.{step}.latency_ok.{stat}",
        kind: MetricKind::Duration,
        applies: |s| s.is_handoff(),
        needs: "a handoff target (its procedure's steps)",
        about: "the times the step succeeded",
        read: |r, v| {
            for (id, step) in &r.metrics.steps {
                let ok = step.latency_ok_ms.as_ref();
                summary(v, &format!("steps.{id}.latency_ok"), ok);
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
        pattern: "retries.count",
        kind: MetricKind::Count,
        applies: |s| s.has_retries(),
        needs: RETRIES,
        about: "attempts beyond the first: failures the retries absorbed (by kind in result.json)",
        read: |r, v| {
            if let Some(rt) = &r.metrics.retries {
                v.set("retries.count", rt.retries as f64);
            }
        },
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "history.{finding}",
        kind: MetricKind::Count,
        applies: |s| s.has_history(),
        needs: HISTORY,
        about: "finding: lost (acknowledged, not stored), duplicated (stored more often than written), \
                unexpected (stored, never written), violations (the three together), indeterminate, \
                unreadable (collections that could not be read back)",
        read: |r, v| {
            if let Some(h) = &r.metrics.history {
                for (name, n) in [
                    ("lost", h.lost),
                    ("duplicated", h.duplicated),
                    ("unexpected", h.unexpected),
                    ("violations", h.violations()),
                    ("indeterminate", h.indeterminate),
                    ("unreadable", h.unreadable),
                    ("acknowledged", h.acknowledged),
                ] {
                    v.set(format!("history.{name}"), n as f64);
                }
            }
        },
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
        applies: |s| {
            s.is_handoff() && s.is_suite(Suite::Concurrency) && s.procedure_has(|p| p.has_acks)
        },
        needs: "the concurrency suite against a handoff target with `ack = \"transfer\"` steps",
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
        pattern: "http.connect.{stat}",
        kind: MetricKind::Duration,
        applies: |s| !s.is_ws(),
        needs: "an http or handoff target with [http] time_connections = true",
        about: "each new connection: the TCP connect and, for https, the TLS handshake",
        read: |r, v| {
            summary(
                v,
                "http.connect",
                r.metrics
                    .http_connections
                    .as_ref()
                    .and_then(|c| c.connect_ms.as_ref()),
            )
        },
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "http.connections",
        kind: MetricKind::Count,
        applies: |s| !s.is_ws(),
        needs: "an http or handoff target with [http] time_connections = true",
        about: "connections opened (keep-alive and HTTP/2 keep this low)",
        read: |r, v| {
            if let Some(c) = &r.metrics.http_connections {
                v.set("http.connections", c.opened as f64);
            }
        },
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "ws.tls_handshake.{stat}",
        kind: MetricKind::Duration,
        applies: |s| s.is_ws(),
        needs: "a wss:// target",
        about: "the TLS handshake of each connection (part of ws.connect)",
        read: |r, v| {
            summary(
                v,
                "ws.tls_handshake",
                r.metrics
                    .ws
                    .as_ref()
                    .and_then(|w| w.tls_handshake_ms.as_ref()),
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
        pattern: "ws.app_ping.{stat}",
        kind: MetricKind::Duration,
        applies: |s| s.is_ws(),
        needs: "a websocket target with [websocket.app_ping]",
        about: "the endpoint's own ping frame to its pong",
        read: |r, v| {
            summary(
                v,
                "ws.app_ping",
                r.metrics.ws.as_ref().and_then(|w| w.app_ping_ms.as_ref()),
            )
        },
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "ws.app_ping.unanswered",
        kind: MetricKind::Count,
        applies: |s| s.is_ws(),
        needs: "a websocket target with [websocket.app_ping]",
        about: "app pings with no pong within their interval",
        read: |r, v| {
            if r.metrics
                .ws
                .as_ref()
                .is_some_and(|w| w.app_ping_ms.is_some() || w.app_pings_unanswered > 0)
            {
                ws_count(r, v, "ws.app_ping.unanswered", |w| w.app_pings_unanswered);
            }
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
        pattern: "ws.order_disagreements",
        kind: MetricKind::Count,
        applies: |s| s.publishes(),
        needs: PUBLISH,
        about: "adjacent publishes a subscriber received the other way round from the first subscriber",
        read: |r, v| delivery(r, v, "ws.order_disagreements", |d| d.order_disagreements),
        stage: None,
        compare: &[],
    },
    Metric {
        pattern: "ws.real_time_violations",
        kind: MetricKind::Count,
        applies: |s| s.publishes(),
        needs: PUBLISH,
        about: "receipts ahead of a publish acknowledged before they were sent",
        read: |r, v| delivery(r, v, "ws.real_time_violations", |d| d.real_time_violations),
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
        pattern: "body_size.limit",
        kind: MetricKind::Count,
        applies: |s| s.probes_body_size(),
        needs: BODY_SIZE,
        about: "bytes: the largest body accepted with the next byte refused",
        read: |r, v| {
            if let Some(x) = r.metrics.body_size.as_ref().and_then(|b| b.found_limit) {
                v.set("body_size.limit", x as f64);
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
