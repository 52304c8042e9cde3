//! The HTML report: one self-contained file (inline CSS and SVG, no scripts, no external resources),
//! readable on a laptop and printable. Charts that do not apply to a run are left out.

use minijinja::value::Serde;
use serde::Serialize;

use super::charts::{self, Bars, Limit, Line, Marks, StagePoint};
use super::view::ReportView;
use super::{Exporter, ReportError};
use crate::metrics::histogram::decode;
use crate::result::RunResult;

pub struct Html;

/// Each chart as SVG markup, or absent.
#[derive(Debug, Default, Serialize)]
pub struct Charts {
    pub spectrum: Option<String>,
    pub latency: Option<String>,
    pub throughput: Option<String>,
    pub steps: Option<String>,
    pub rollback: Option<String>,
    pub handshake: Option<String>,
    pub delivery: Option<String>,
    pub rate_limit: Option<String>,
    /// Stress runs: latency, and failures, against each stage's offered rate.
    pub stress_latency: Option<String>,
    pub stress_failures: Option<String>,
}

/// Time windows to shade on the time charts: the run's fault windows, `(from_s, until_s)`.
pub fn shaded_windows(r: &RunResult) -> Vec<(f64, f64)> {
    r.metrics
        .recovery
        .iter()
        .flat_map(|rec| &rec.windows)
        .map(|w| (w.from_s, w.until_s))
        .collect()
}

/// The latency thresholds of `verdicts` that bound from above (`latency.p95 < 2s`), as lines to
/// draw on the latency charts they judge.
pub fn latency_limits(verdicts: &[crate::result::Verdict]) -> Vec<Limit> {
    use crate::thresholds::{Condition, MetricKind, Op};
    verdicts
        .iter()
        .filter(|v| v.metric.starts_with("latency.") || v.metric.starts_with("latency_ok."))
        .filter_map(|v| {
            let c = Condition::parse(&v.condition, MetricKind::Duration).ok()?;
            matches!(c.op, Op::Lt | Op::Le).then(|| Limit {
                label: format!("{} {}", v.metric, v.condition),
                value: c.value.canonical(),
            })
        })
        .collect()
}

/// Where each stage of a stepped load begins, in seconds into the load (none for one stage).
pub fn stage_boundaries(r: &RunResult) -> Vec<f64> {
    let mut at = 0.0;
    let mut out = Vec::new();
    for (i, s) in r.load.stages.iter().enumerate() {
        if i > 0 {
            out.push(at);
        }
        at += s.duration_s;
    }
    out
}

/// The stress charts: each stage's latency and failures against the rate it offered.
fn stress_charts(r: &RunResult) -> (Option<String>, Option<String>) {
    let Some(stress) = &r.metrics.stress else {
        return (None, None);
    };
    let points: Vec<StagePoint> = stress
        .stages
        .iter()
        .map(|s| {
            let l = s.latency_ok_ms.as_ref().or(s.latency_ms.as_ref());
            let n = s.totals.iterations as f64;
            let share = |k: u64| (n > 0.0).then(|| k as f64 / n);
            StagePoint {
                rate: s.rate_per_s,
                ok: [
                    l.and_then(|l| l.p50),
                    l.and_then(|l| l.p95),
                    l.and_then(|l| l.p99),
                ],
                all_p95: s.latency_ms.as_ref().and_then(|l| l.p95),
                failed: share(s.totals.failed),
                late: share(s.late),
                generator_limited: s.generator_limited,
            }
        })
        .collect();
    // The last stage within the thresholds: the breaking point when a later stage broke them,
    // else only as far as the run could judge.
    let label = if stress.broke && stress.generator_limited.is_none() {
        "breaking point: the last stage within the thresholds"
    } else {
        "last stage within the thresholds (no breaking point found)"
    };
    let breaking = stress
        .breaking_point
        .as_ref()
        .and_then(|bp| stress.stages.iter().position(|s| s.stage == bp.stage))
        .map(|i| (i, label));
    let limits = stress
        .stages
        .first()
        .map(|s| latency_limits(&s.thresholds))
        .unwrap_or_default();
    charts::versus_rate(&points, breaking, &limits)
}

impl Charts {
    pub fn of(r: &RunResult) -> Self {
        let m = &r.metrics;
        let mut spectrum_lines = Vec::new();
        // Succeeded iterations (every iteration in a result written before they were kept apart).
        let headline = m.latency_ok_hdr.as_deref().or(m.latency_hdr.as_deref());
        if let Some(h) = headline.and_then(|t| decode(t).ok()) {
            let label = match (m.latency_ok_hdr.is_some(), m.service_time_hdr.is_some()) {
                (true, true) => "succeeded, from intended start",
                (true, false) => "succeeded",
                (false, true) => "latency (from intended start)",
                (false, false) => "latency",
            };
            spectrum_lines.push(Line {
                label: label.into(),
                color: charts::BLUE_,
                points: charts::spectrum_points(&h),
                dashed: false,
            });
        }
        if let Some(h) = m.service_time_hdr.as_deref().and_then(|t| decode(t).ok()) {
            spectrum_lines.push(Line {
                label: "service time (uncorrected)".into(),
                color: charts::ORANGE_,
                points: charts::spectrum_points(&h),
                dashed: true,
            });
        }
        let windows = shaded_windows(r);
        let ordered: Vec<_> = super::view::steps_in_order(r).collect();
        let steps: Vec<String> = ordered.iter().map(|(id, _)| (*id).clone()).collect();
        let step_bars = [
            ("p50", charts::BLUE_, 0),
            ("p95", charts::ORANGE_, 1),
            ("p99", charts::RED_, 2),
        ]
        .into_iter()
        .map(|(label, color, which)| Bars {
            label: label.into(),
            color,
            values: ordered
                .iter()
                .map(|(_, s)| {
                    let l = s.latency_ok_ms.as_ref().unwrap_or(&s.latency_ms);
                    [l.p50, l.p95, l.p99][which].unwrap_or(0.0)
                })
                .collect(),
        })
        .collect::<Vec<_>>();
        let rollback = m
            .rollback
            .as_ref()
            .filter(|rb| rb.attempted > 0)
            .and_then(|_| {
                let by = super::view::rollbacks_in_order(r);
                let steps: Vec<String> = by.iter().map(|(s, _)| (*s).clone()).collect();
                charts::bars(
                    "Rollbacks by the step that failed",
                    "rollbacks",
                    &steps,
                    &[
                        Bars {
                            label: "verified".into(),
                            color: charts::GREEN_,
                            values: by.iter().map(|(_, c)| c.succeeded as f64).collect(),
                        },
                        Bars {
                            label: "failed verification".into(),
                            color: charts::RED_,
                            values: by
                                .iter()
                                .map(|(_, c)| c.attempted.saturating_sub(c.succeeded) as f64)
                                .collect(),
                        },
                    ],
                )
            });
        let limits = latency_limits(&r.thresholds);
        let boundaries = stage_boundaries(r);
        let (stress_latency, stress_failures) = stress_charts(r);
        Self {
            spectrum: charts::spectrum("Latency by percentile", &spectrum_lines, &limits),
            latency: charts::over_time(
                if m.latency_ok_hdr.is_some() {
                    "Latency of succeeded iterations over time (per second)"
                } else {
                    "Latency over time (per second)"
                },
                "latency (ms)",
                &charts::timeline_lines(&r.timeline, "", false),
                Marks {
                    shaded: &windows,
                    limits: &limits,
                    boundaries: &boundaries,
                    latency: true,
                },
            ),
            throughput: charts::over_time(
                "Iterations per second",
                "iterations",
                &charts::throughput_lines(&r.timeline),
                Marks {
                    shaded: &windows,
                    boundaries: &boundaries,
                    ..Marks::default()
                },
            ),
            steps: charts::bars("Latency by step", "latency (ms)", &steps, &step_bars),
            rollback,
            handshake: handshake_chart(r),
            delivery: delivery_chart(r),
            rate_limit: rate_limit_chart(r),
            stress_latency,
            stress_failures,
        }
    }
}

/// The WebSocket handshake's latency by percentile.
fn handshake_chart(r: &RunResult) -> Option<String> {
    let h = r
        .metrics
        .ws
        .as_ref()?
        .connect_hdr
        .as_deref()
        .and_then(|t| decode(t).ok())?;
    charts::spectrum(
        "WebSocket handshake latency by percentile",
        &[Line {
            label: "TCP connect + upgrade".into(),
            color: charts::PURPLE_,
            points: charts::spectrum_points(&h),
            dashed: false,
        }],
        &[],
    )
}

/// What went wrong with deliveries, by kind; none when nothing did (the table says so, and a chart
/// of zeros would say nothing).
fn delivery_chart(r: &RunResult) -> Option<String> {
    let d = r.metrics.ws.as_ref()?.delivery.as_ref()?;
    let counts = [
        d.lost,
        d.duplicated,
        d.out_of_order,
        d.unexpected,
        d.recovered,
    ];
    if counts.iter().all(|n| *n == 0) {
        return None;
    }
    let kinds = [
        "lost",
        "duplicated",
        "out of order",
        "unexpected",
        "recovered",
    ];
    charts::bars(
        "Delivery problems (receipts)",
        "receipts",
        &kinds.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        &[Bars {
            label: format!("of {} owed", d.expected),
            color: charts::RED_,
            values: counts.iter().map(|v| *v as f64).collect(),
        }],
    )
}

/// Offered against accepted over the probe, with the bucket's envelope (declared, else inferred):
/// `burst + rate × t` is the most such a limit lets through by time `t` after an idle period.
fn rate_limit_chart(r: &RunResult) -> Option<String> {
    let rl = r.metrics.rate_limit.as_ref()?;
    let pts = |f: fn(&crate::result::ws::RateSample) -> u64| -> Vec<(f64, f64)> {
        rl.series.iter().map(|s| (s.t_s, f(s) as f64)).collect()
    };
    let end = rl.series.last().map_or(0.0, |s| s.t_s);
    let bucket = match (rl.declared_rate_per_s, rl.declared_burst) {
        (Some(rate), Some(burst)) => Some(("declared", rate, burst)),
        _ => rl
            .inferred_rate_per_s
            .map(|rate| ("inferred", rate, rl.inferred_burst.unwrap_or(0.0))),
    };
    let mut lines = vec![
        Line {
            label: "offered".into(),
            color: charts::GREY_,
            points: pts(|s| s.offered),
            dashed: false,
        },
        Line {
            label: "accepted".into(),
            color: charts::BLUE_,
            points: pts(|s| s.accepted),
            dashed: false,
        },
    ];
    if let Some((which, rate, burst)) = bucket {
        lines.push(Line {
            label: format!("{which}: {burst:.0} + {rate:.1}/s × t"),
            color: charts::RED_,
            points: (0..=100)
                .map(|i| {
                    let t = end * f64::from(i) / 100.0;
                    (t, burst + rate * t)
                })
                .collect(),
            dashed: true,
        });
    }
    let title = match bucket {
        Some(("declared", ..)) => "Rate limit: offered and accepted, against the declared bucket",
        _ => "Rate limit: offered and accepted",
    };
    charts::over_time(title, "messages (cumulative)", &lines, Marks::default())
}

impl Exporter for Html {
    fn file_name(&self) -> &'static str {
        "report.html"
    }

    fn render(&self, result: &RunResult) -> Result<String, ReportError> {
        super::render(
            "report.html",
            minijinja::context! {
                r => Serde(ReportView::of(result)),
                charts => Serde(Charts::of(result)),
                version => env!("CARGO_PKG_VERSION"),
            },
        )
    }
}
