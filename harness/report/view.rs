//! The view model every report is rendered from: the result's facts, formatted for people and
//! arranged by section. Sections that do not apply to a run are `None` or empty, and templates leave
//! them out. Strings that came from a target or a scenario stay as they are here; the templates
//! escape them.

use serde::Serialize;

use super::rows::{LatencyRow, Pair, latency_row, ms, opt_ms, pair, pct};
use crate::result::{RunResult, Status, format_value};

#[derive(Debug, Serialize)]
pub struct ReportView {
    pub scenario: String,
    pub description: String,
    pub suite: String,
    pub status: &'static str,
    pub passed: bool,
    pub reason: Option<String>,
    /// Exact whatever its size (`seed_text`).
    pub seed: String,
    /// `shard 2 of 4`, or what a merged result was made from; absent for a run of the whole load.
    pub shard: Option<String>,
    pub run_id: String,
    pub started_at: String,
    pub finished_at: String,
    pub duration: String,
    pub target: Vec<Pair>,
    pub load: Vec<Pair>,
    pub verdicts: Vec<VerdictRow>,
    pub thresholds_passed: usize,
    pub totals: Vec<Pair>,
    pub latency: Vec<LatencyRow>,
    pub steps: Vec<LatencyRow>,
    pub recorded: Vec<LatencyRow>,
    pub rollback: Option<RollbackView>,
    pub errors: Vec<ErrorRow>,
    pub warnings: Vec<Pair>,
    pub schedule: Option<Vec<Pair>>,
    pub stress: Option<StressView>,
    pub drift: Option<Vec<Pair>>,
    pub invariants: Option<InvariantsView>,
    pub checks: Vec<super::ws_view::CheckRow>,
    pub checks_passed: usize,
    pub ws: Option<super::ws_view::WsView>,
    pub rate_limit: Option<super::ws_view::RateLimitView>,
    pub body_size: Option<super::body_size_view::BodySizeView>,
    pub windows: Vec<super::ws_view::WindowRow>,
    pub caveats: Vec<String>,
    pub notes: Vec<String>,
    pub precision: String,
}

#[derive(Debug, Serialize)]
pub struct VerdictRow {
    pub metric: String,
    pub condition: String,
    pub actual: String,
    pub passed: bool,
    pub note: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RollbackView {
    pub attempted: u64,
    pub succeeded: u64,
    pub rate: String,
    pub by_step: Vec<RollbackRow>,
    pub failures: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RollbackRow {
    pub step: String,
    pub attempted: u64,
    pub verified: u64,
    pub failed: u64,
}

#[derive(Debug, Serialize)]
pub struct ErrorRow {
    pub kind: String,
    pub count: u64,
    pub samples: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct StressView {
    pub breaking_point: String,
    pub stages: Vec<StageRow>,
}

#[derive(Debug, Serialize)]
pub struct StageRow {
    pub stage: usize,
    pub rate: String,
    pub achieved: String,
    pub iterations: u64,
    pub success: String,
    pub p95: String,
    pub late: u64,
    pub met: bool,
    /// The generator, not the target, set this stage's pace.
    pub generator_limited: bool,
}

#[derive(Debug, Serialize)]
pub struct InvariantsView {
    pub acknowledged: u64,
    pub resources: u64,
    pub violations: u64,
    pub details: Vec<String>,
}

/// Rollbacks by failed step, in the order the steps run.
pub fn rollbacks_in_order(r: &RunResult) -> Vec<(&String, &crate::result::RollbackCount)> {
    let mut by: Vec<_> = r
        .metrics
        .rollback
        .iter()
        .flat_map(|rb| rb.by_step.iter())
        .collect();
    by.sort_by_key(|(step, _)| r.metrics.steps.get(*step).map_or(usize::MAX, |s| s.index));
    by
}

/// A procedure's steps in the order they run.
pub fn steps_in_order(
    r: &RunResult,
) -> impl Iterator<Item = (&String, &crate::result::StepMetrics)> {
    let mut steps: Vec<_> = r.metrics.steps.iter().collect();
    steps.sort_by_key(|(_, s)| s.index);
    steps.into_iter()
}

impl ReportView {
    pub fn of(r: &RunResult) -> Self {
        let m = &r.metrics;
        let status = match r.status {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Aborted => "aborted",
        };
        let mut target = vec![pair("kind", &r.target.kind), pair("url", &r.target.url)];
        if let Some(e) = &r.target.embedded {
            target.push(pair(
                "embedded",
                format!("the reference {e} target, started by the harness"),
            ));
        }
        if let Some(p) = &r.target.procedure {
            target.push(pair("procedure", p));
        }
        if let Some(ws) = &r.target.websocket {
            target.push(pair("mode", &ws.mode));
            target.push(pair("connections", ws.connections.to_string()));
            if ws.subscribers > 0 {
                target.push(pair("subscribers", ws.subscribers.to_string()));
            }
            target.push(pair("payload", format!("{} bytes", ws.payload_bytes)));
            if let Some(ping) = ws.ping_interval_ms {
                target.push(pair("ping every", ms(ping as f64)));
            }
        }
        let l = &r.load;
        let mut load = vec![
            pair("model", l.model.as_str()),
            pair("planned iterations", l.planned_iterations.to_string()),
            pair(
                if !l.model.is_scheduled() {
                    "concurrency"
                } else {
                    "max in flight"
                },
                l.concurrency.to_string(),
            ),
            pair("iteration timeout", ms(l.iteration_timeout_ms)),
            pair("budget", ms(l.timeout_ms)),
        ];
        if let Some(rate) = l.rate_per_s {
            load.push(pair("rate", format_value("rate", rate)));
        }
        if !l.stages.is_empty() {
            let rates: Vec<String> = l
                .stages
                .iter()
                .map(|s| format_value("rate", s.rate_per_s))
                .collect();
            load.push(pair("stages", rates.join(" → ")));
        }
        if let Some(f) = &l.faults {
            load.push(pair(
                "faults",
                format!(
                    "{} of iterations ({} injected): {}",
                    pct(Some(f.failure_rate)),
                    f.injected,
                    f.kinds.join(", ")
                ),
            ));
        }
        let network: Vec<String> = m
            .recovery
            .iter()
            .flat_map(|rec| &rec.windows)
            .map(|w| w.fault.clone())
            .collect();
        if !network.is_empty() {
            load.push(pair("network faults", network.join("; ")));
        }
        let t = &r.totals;
        let mut totals = vec![
            pair("iterations", t.iterations.to_string()),
            pair("succeeded", t.succeeded.to_string()),
            pair("failed", t.failed.to_string()),
            pair("timed out", t.timed_out.to_string()),
            pair("success rate", pct(m.success_rate)),
        ];
        if let Some(tp) = m.throughput_per_s {
            totals.push(pair("throughput", format_value("rate", tp)));
        }
        if t.not_started + t.abandoned > 0 {
            totals.push(pair("not started", t.not_started.to_string()));
            totals.push(pair("cut off in flight", t.abandoned.to_string()));
        }
        // Succeeded iterations first: that is the latency the headline and summary.md give.
        let mut latency = Vec::new();
        let from = if m.service_time_ms.is_some() {
            " (from intended start)"
        } else {
            ""
        };
        match (&m.latency_ok_ms, &m.latency_failed_ms, &m.latency_ms) {
            (Some(ok), None, _) => latency.push(latency_row(&format!("latency{from}"), ok)),
            (ok, Some(failed), all) => {
                if let Some(ok) = ok {
                    latency.push(latency_row(&format!("succeeded{from}"), ok));
                }
                latency.push(latency_row("failed", failed));
                if let Some(all) = all {
                    latency.push(latency_row("all iterations", all));
                }
            }
            (None, None, Some(all)) => latency.push(latency_row(&format!("latency{from}"), all)),
            (None, None, None) => {}
        }
        if let Some(s) = &m.service_time_ms {
            latency.push(latency_row("service time (uncorrected)", s));
        }
        Self {
            scenario: r.scenario.clone(),
            description: r.description.clone(),
            suite: r.suite.clone(),
            status,
            passed: r.status == Status::Passed,
            reason: r.reason.clone(),
            seed: if r.seed_text.is_empty() {
                r.seed.to_string()
            } else {
                r.seed_text.clone()
            },
            shard: shard_text(r),
            run_id: r.run_id.clone(),
            started_at: r.started_at.clone(),
            finished_at: r.finished_at.clone(),
            duration: format!("{:.1}s", r.duration_s),
            target,
            load,
            thresholds_passed: r.thresholds.iter().filter(|v| v.passed).count(),
            verdicts: r
                .thresholds
                .iter()
                .map(|v| VerdictRow {
                    metric: v.metric.clone(),
                    condition: v.condition.clone(),
                    actual: v.actual_text(),
                    passed: v.passed,
                    note: v.note.clone(),
                })
                .collect(),
            totals,
            latency,
            steps: steps_in_order(r)
                .map(|(id, s)| latency_row(&format!("{id} — {}", s.name), &s.latency_ms))
                .collect(),
            recorded: m
                .recorded
                .iter()
                .map(|(name, s)| latency_row(name, s))
                .collect(),
            rollback: m.rollback.as_ref().map(|rb| RollbackView {
                attempted: rb.attempted,
                succeeded: rb.succeeded,
                rate: pct(rb.success_rate),
                by_step: rollbacks_in_order(r)
                    .into_iter()
                    .map(|(step, c)| RollbackRow {
                        step: step.clone(),
                        attempted: c.attempted,
                        verified: c.succeeded,
                        failed: c.attempted.saturating_sub(c.succeeded),
                    })
                    .collect(),
                failures: rb.failures.clone(),
            }),
            errors: m
                .errors
                .iter()
                .map(|(k, count)| ErrorRow {
                    kind: k.clone(),
                    count: *count,
                    samples: m.error_samples.get(k).cloned().unwrap_or_default(),
                })
                .collect(),
            warnings: m
                .warnings
                .iter()
                .map(|(k, v)| pair(k, v.to_string()))
                .collect(),
            schedule: m.schedule.as_ref().map(|s| {
                vec![
                    pair("intended rate", format_value("rate", s.intended_rate_per_s)),
                    pair("achieved rate", format_value("rate", s.achieved_rate_per_s)),
                    pair("started late", s.late.to_string()),
                    pair("on time", pct(Some(s.on_time_rate))),
                    pair(
                        "generator fell behind",
                        if s.fell_behind { "yes" } else { "no" },
                    ),
                ]
            }),
            stress: m.stress.as_ref().map(|s| StressView {
                breaking_point: match (&s.breaking_point, s.broke) {
                    _ if s.generator_limited.is_some() => {
                        let g = s.generator_limited.as_ref().map_or(0.0, |g| g.rate_per_s);
                        format!(
                            "not found: the generator fell behind at {} before the target broke{}",
                            format_value("rate", g),
                            s.breaking_point
                                .as_ref()
                                .map(|bp| format!(
                                    "; every stage up to {} met the thresholds",
                                    format_value("rate", bp.rate_per_s)
                                ))
                                .unwrap_or_default()
                        )
                    }
                    (Some(bp), true) => format!(
                        "stage {} at {}: the last stage, counting up, that met the thresholds",
                        bp.stage,
                        format_value("rate", bp.rate_per_s)
                    ),
                    (Some(bp), false) => {
                        format!(
                            "none reached: every stage up to {} met the thresholds",
                            format_value("rate", bp.rate_per_s)
                        )
                    }
                    (None, _) => "even the first stage missed the thresholds".into(),
                },
                stages: s
                    .stages
                    .iter()
                    .map(|st| StageRow {
                        stage: st.stage,
                        rate: format_value("rate", st.rate_per_s),
                        achieved: format_value("rate", st.achieved_rate_per_s),
                        iterations: st.totals.iterations,
                        success: pct(st.success_rate),
                        p95: opt_ms(
                            st.latency_ok_ms
                                .as_ref()
                                .or(st.latency_ms.as_ref())
                                .and_then(|l| l.p95),
                        ),
                        late: st.late,
                        met: st.met_thresholds,
                        generator_limited: st.generator_limited,
                    })
                    .collect(),
            }),
            drift: m.drift.as_ref().map(|d| {
                let w = |x: &crate::metrics::timeline::WindowStats| {
                    format!(
                        "p95 {}, error rate {} ({} iterations)",
                        x.p95_ms.map_or("—".into(), ms),
                        pct(x.error_rate),
                        x.iterations
                    )
                };
                vec![
                    pair("window", format!("{}s", d.window_s)),
                    pair("first window", w(&d.first)),
                    pair("last window", w(&d.last)),
                    pair(
                        "p95 change",
                        d.p95_change_ms.map_or("—".into(), |c| {
                            format!("{}{}", if c >= 0.0 { "+" } else { "−" }, ms(c.abs()))
                        }),
                    ),
                    pair(
                        "p95 ratio",
                        d.p95_ratio.map_or("—".into(), |v| format!("{v:.2}×")),
                    ),
                    pair(
                        "error rate change",
                        d.error_rate_change
                            .map_or("—".into(), |c| format!("{:+.2} pp", c * 100.0)),
                    ),
                ]
            }),
            invariants: m.invariants.as_ref().map(|i| InvariantsView {
                acknowledged: i.acknowledged,
                resources: i.resources,
                violations: i.violations,
                details: i.details.clone(),
            }),
            checks: super::ws_view::checks(r),
            checks_passed: r.checks.iter().filter(|c| c.passed).count(),
            ws: super::ws_view::ws(r),
            rate_limit: super::ws_view::rate_limit(r),
            body_size: super::body_size_view::body_size(r),
            windows: super::ws_view::windows(r),
            caveats: r.caveats.clone(),
            notes: r.notes.clone(),
            precision: format!(
                "HdrHistogram, {} significant digits, values in {} (encoded: {})",
                r.histograms.significant_digits, r.histograms.unit, r.histograms.encoding
            ),
        }
    }
}
/// Which part of a run a result holds: `shard 2 of 4`, `merged from 4 shards`, `a partial merge of
/// 3 of 4 shards (0, 1, 3)`; `None` for a run of the whole load.
pub fn shard_text(r: &RunResult) -> Option<String> {
    if let Some(m) = &r.merged_from {
        let indices = m
            .indices
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        return Some(if m.partial {
            format!(
                "a partial merge of {} of {} shards ({indices})",
                m.indices.len(),
                m.shards
            )
        } else {
            format!("merged from {} shards", m.shards)
        });
    }
    (r.shard.count > 1).then(|| format!("shard {} of {}", r.shard.index, r.shard.count))
}
