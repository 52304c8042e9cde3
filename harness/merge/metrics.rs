//! `metrics` of shards, merged: every latency from the sum of the shards' histograms, counts added,
//! rates worked out again from the merged counts. What a probe measured (rate limit, body size,
//! slow consumer) ran on one shard and is kept as that shard measured it.

use std::collections::{BTreeMap, BTreeSet};

use super::sum::{self, Missing, counts, examples, optional, share, summaries, summary_maps};
use crate::engine::stress::{limit_of, locate};
use crate::metrics::LatencySummary;
use crate::metrics::histogram::encode;
use crate::metrics::timeline::behind_schedule;
use crate::result::ws::DeliveryReport;
use crate::result::*;
use crate::thresholds::evaluate::{Values, rejudged};

/// Examples of a kind kept after a merge (error messages, frames, ids).
const EXAMPLES: usize = 5;

/// The merged metrics of `parts` (in shard order), whose merged totals are `totals`.
pub fn merge_metrics(parts: &[&RunResult], totals: &ResultTotals) -> Result<Metrics, Missing> {
    let ms: Vec<&Metrics> = parts.iter().map(|r| &r.metrics).collect();
    let all = sum::encoded(
        "metrics.latency_hdr",
        ms.iter().map(|m| m.latency_hdr.as_deref()),
    )?;
    let ok = sum::encoded(
        "metrics.latency_ok_hdr",
        ms.iter().map(|m| m.latency_ok_hdr.as_deref()),
    )?;
    let service = sum::encoded(
        "metrics.service_time_hdr",
        ms.iter().map(|m| m.service_time_hdr.as_deref()),
    )?;
    let success_rate = share(totals.succeeded, totals.iterations);
    let mut out = Metrics {
        success_rate,
        error_rate: success_rate.map(|s| 1.0 - s),
        // The shards ran side by side: their throughputs add.
        throughput_per_s: optional(ms.iter().map(|m| m.throughput_per_s)),
        latency_ms: all.as_ref().and_then(LatencySummary::of),
        latency_hdr: all.as_ref().filter(|h| !h.is_empty()).map(encode),
        latency_ok_ms: ok.as_ref().and_then(LatencySummary::of),
        latency_ok_hdr: ok.as_ref().filter(|h| !h.is_empty()).map(encode),
        latency_ok_blocks: blocks(&ms)?,
        latency_failed_ms: summaries(
            "metrics.latency_failed_ms",
            ms.iter().map(|m| m.latency_failed_ms.as_ref()),
        )?,
        latency_failed_by_kind: summary_maps(
            "metrics.latency_failed_by_kind",
            ms.iter().map(|m| &m.latency_failed_by_kind),
        )?,
        service_time_ms: service.as_ref().and_then(LatencySummary::of),
        service_time_hdr: service.as_ref().filter(|h| !h.is_empty()).map(encode),
        steps: steps(&ms)?,
        recorded: summary_maps("metrics.recorded", ms.iter().map(|m| &m.recorded))?,
        rollback: rollback(&ms),
        http_connections: http_connections(&ms)?,
        retries: retries(&ms),
        errors: counts(ms.iter().map(|m| &m.errors)),
        error_samples: {
            let kinds: BTreeSet<&String> = ms.iter().flat_map(|m| m.error_samples.keys()).collect();
            kinds
                .into_iter()
                .map(|k| {
                    let lists = ms.iter().filter_map(|m| m.error_samples.get(k));
                    (
                        k.clone(),
                        examples(lists, crate::metrics::recorder::ERROR_SAMPLES),
                    )
                })
                .collect()
        },
        warnings: counts(ms.iter().map(|m| &m.warnings)),
        schedule: schedule(&ms, totals),
        stress: None,
        drift: None,
        invariants: invariants(&ms),
        history: history(&ms),
        ws: ws(&ms)?,
        rate_limit: first(&ms, |m| m.rate_limit.as_ref()),
        body_size: first(&ms, |m| m.body_size.as_ref()),
        recovery: recovery(&ms),
    };
    out.stress = stress(&ms)?;
    Ok(out)
}

/// What the one shard that measured it measured (a probe's figures).
fn first<T: Clone>(ms: &[&Metrics], get: impl Fn(&Metrics) -> Option<&T>) -> Option<T> {
    ms.iter().find_map(|m| get(m)).cloned()
}

/// Block by block: the shards' loads began together (`--start-at`), so block k of each is the same
/// stretch of time.
fn blocks(ms: &[&Metrics]) -> Result<Option<LatencyBlocks>, Missing> {
    let parts: Vec<&LatencyBlocks> = ms
        .iter()
        .filter_map(|m| m.latency_ok_blocks.as_ref())
        .collect();
    let Some(block_s) = parts.first().map(|b| b.block_s) else {
        return Ok(None);
    };
    if parts.iter().any(|b| b.block_s != block_s) {
        return Ok(None);
    }
    let longest = parts.iter().map(|b| b.hdr.len()).max().unwrap_or(0);
    let mut hdr = Vec::with_capacity(longest);
    for k in 0..longest {
        let what = format!("metrics.latency_ok_blocks[{k}]");
        if let Some(h) = sum::encoded(
            &what,
            parts.iter().map(|b| b.hdr.get(k).map(String::as_str)),
        )? {
            hdr.push(encode(&h));
        }
    }
    Ok(Some(LatencyBlocks { block_s, hdr }))
}

fn steps(ms: &[&Metrics]) -> Result<BTreeMap<String, StepMetrics>, Missing> {
    let names: BTreeSet<&String> = ms.iter().flat_map(|m| m.steps.keys()).collect();
    let mut out = BTreeMap::new();
    for name in names {
        let parts: Vec<&StepMetrics> = ms.iter().filter_map(|m| m.steps.get(name)).collect();
        let what = format!("metrics.steps.{name}");
        let Some(latency) = summaries(&what, parts.iter().map(|s| Some(&s.latency_ms)))? else {
            continue;
        };
        out.insert(
            name.clone(),
            StepMetrics {
                index: parts[0].index,
                name: parts[0].name.clone(),
                latency_ms: latency,
                latency_ok_ms: summaries(&what, parts.iter().map(|s| s.latency_ok_ms.as_ref()))?,
            },
        );
    }
    Ok(out)
}

fn rollback(ms: &[&Metrics]) -> Option<RollbackMetrics> {
    let parts: Vec<&RollbackMetrics> = ms.iter().filter_map(|m| m.rollback.as_ref()).collect();
    if parts.is_empty() {
        return None;
    }
    let attempted = parts.iter().map(|r| r.attempted).sum();
    let succeeded = parts.iter().map(|r| r.succeeded).sum();
    let mut by_step: BTreeMap<String, RollbackCount> = BTreeMap::new();
    for r in &parts {
        for (step, c) in &r.by_step {
            let e = by_step.entry(step.clone()).or_insert(RollbackCount {
                attempted: 0,
                succeeded: 0,
            });
            e.attempted += c.attempted;
            e.succeeded += c.succeeded;
        }
    }
    Some(RollbackMetrics {
        withheld_irreversible: parts.iter().map(|r| r.withheld_irreversible).sum(),
        attempted,
        succeeded,
        success_rate: share(succeeded, attempted),
        by_step,
        failures: examples(parts.iter().map(|r| &r.failures), 10),
    })
}

fn http_connections(ms: &[&Metrics]) -> Result<Option<HttpConnections>, Missing> {
    let parts: Vec<&HttpConnections> = ms
        .iter()
        .filter_map(|m| m.http_connections.as_ref())
        .collect();
    if parts.is_empty() {
        return Ok(None);
    }
    let connect = sum::encoded(
        "metrics.http_connections.connect_hdr",
        parts.iter().map(|c| c.connect_hdr.as_deref()),
    )?;
    Ok(Some(HttpConnections {
        opened: parts.iter().map(|c| c.opened).sum(),
        failed: parts.iter().map(|c| c.failed).sum(),
        connect_ms: connect.as_ref().and_then(LatencySummary::of),
        connect_hdr: connect.as_ref().filter(|h| !h.is_empty()).map(encode),
    }))
}

fn retries(ms: &[&Metrics]) -> Option<RetryMetrics> {
    let parts: Vec<&RetryMetrics> = ms.iter().filter_map(|m| m.retries.as_ref()).collect();
    (!parts.is_empty()).then(|| RetryMetrics {
        iterations: parts.iter().map(|r| r.iterations).sum(),
        retries: parts.iter().map(|r| r.retries).sum(),
        by_kind: counts(parts.iter().map(|r| &r.by_kind)),
        waited_s: parts.iter().map(|r| r.waited_s).sum(),
        honoured_retry_after: parts.iter().map(|r| r.honoured_retry_after).sum(),
        beyond_cap: parts.iter().map(|r| r.beyond_cap).sum(),
        over_budget: parts.iter().map(|r| r.over_budget).sum(),
    })
}

fn schedule(ms: &[&Metrics], totals: &ResultTotals) -> Option<ScheduleMetrics> {
    let parts: Vec<&ScheduleMetrics> = ms.iter().filter_map(|m| m.schedule.as_ref()).collect();
    if parts.is_empty() {
        return None;
    }
    let late: u64 = parts.iter().map(|s| s.late).sum();
    Some(ScheduleMetrics {
        intended_rate_per_s: parts.iter().map(|s| s.intended_rate_per_s).sum(),
        achieved_rate_per_s: parts.iter().map(|s| s.achieved_rate_per_s).sum(),
        late,
        on_time_rate: share(late, totals.iterations).map_or(1.0, |l| 1.0 - l),
        fell_behind: behind_schedule(late, totals.iterations),
    })
}

/// Each shard checked its own acknowledged operations against the service's state.
fn invariants(ms: &[&Metrics]) -> Option<crate::invariants::InvariantReport> {
    let parts: Vec<_> = ms.iter().filter_map(|m| m.invariants.as_ref()).collect();
    (!parts.is_empty()).then(|| crate::invariants::InvariantReport {
        acknowledged: parts.iter().map(|r| r.acknowledged).sum(),
        resources: parts.iter().map(|r| r.resources).max().unwrap_or(0),
        violations: parts.iter().map(|r| r.violations).sum(),
        details: examples(parts.iter().map(|r| &r.details), 10),
    })
}

/// Each shard read back the collections it wrote (its own keys).
fn history(ms: &[&Metrics]) -> Option<crate::history::HistoryReport> {
    let parts: Vec<_> = ms.iter().filter_map(|m| m.history.as_ref()).collect();
    (!parts.is_empty()).then(|| crate::history::HistoryReport {
        keys: parts.iter().map(|r| r.keys).sum(),
        acknowledged: parts.iter().map(|r| r.acknowledged).sum(),
        indeterminate: parts.iter().map(|r| r.indeterminate).sum(),
        lost: parts.iter().map(|r| r.lost).sum(),
        duplicated: parts.iter().map(|r| r.duplicated).sum(),
        unexpected: parts.iter().map(|r| r.unexpected).sum(),
        unreadable: parts.iter().map(|r| r.unreadable).sum(),
        details: examples(parts.iter().map(|r| &r.details), 10),
    })
}

fn ws(ms: &[&Metrics]) -> Result<Option<WsMetrics>, Missing> {
    let parts: Vec<&WsMetrics> = ms.iter().filter_map(|m| m.ws.as_ref()).collect();
    if parts.is_empty() {
        return Ok(None);
    }
    let total = |f: fn(&WsMetrics) -> u64| parts.iter().map(|w| f(w)).sum::<u64>();
    let summary = |what: &str, f: fn(&WsMetrics) -> Option<&LatencySummary>| {
        summaries(&format!("metrics.ws.{what}"), parts.iter().map(|w| f(w)))
    };
    let delivery = delivery(&parts);
    let offsets: Vec<&ClockOffsetSummary> = parts
        .iter()
        .filter_map(|w| w.server_clock_offset_ms.as_ref())
        .collect();
    let connect = sum::encoded(
        "metrics.ws.connect_hdr",
        parts.iter().map(|w| w.connect_hdr.as_deref()),
    )?;
    Ok(Some(WsMetrics {
        connections: total(|w| w.connections),
        // The shards held their connections at the same time.
        peak_connections: total(|w| w.peak_connections),
        failed_connections: total(|w| w.failed_connections),
        reconnects: total(|w| w.reconnects),
        messages_sent: total(|w| w.messages_sent),
        messages_received: total(|w| w.messages_received),
        frames_without_correlation: total(|w| w.frames_without_correlation),
        uncorrelated_frames: examples(parts.iter().map(|w| &w.uncorrelated_frames), EXAMPLES),
        late_replies: total(|w| w.late_replies),
        delivery_rate: delivery
            .as_ref()
            .and_then(|d| share(d.received, d.expected)),
        connect_ms: connect.as_ref().and_then(LatencySummary::of),
        connect_hdr: connect.as_ref().filter(|h| !h.is_empty()).map(encode),
        tls_handshake_ms: summary("tls_handshake_ms", |w| w.tls_handshake_ms.as_ref())?,
        reconnect_ms: summary("reconnect_ms", |w| w.reconnect_ms.as_ref())?,
        ping_ms: summary("ping_ms", |w| w.ping_ms.as_ref())?,
        app_ping_ms: summary("app_ping_ms", |w| w.app_ping_ms.as_ref())?,
        app_pings_unanswered: total(|w| w.app_pings_unanswered),
        server_clock_offset_ms: (!offsets.is_empty()).then(|| {
            let samples: u64 = offsets.iter().map(|o| o.samples).sum();
            ClockOffsetSummary {
                samples,
                mean: offsets
                    .iter()
                    .map(|o| o.mean * o.samples as f64)
                    .sum::<f64>()
                    / samples.max(1) as f64,
                min: offsets.iter().map(|o| o.min).fold(f64::INFINITY, f64::min),
                max: offsets
                    .iter()
                    .map(|o| o.max)
                    .fold(f64::NEG_INFINITY, f64::max),
            }
        }),
        delivery_ms: summary("delivery_ms", |w| w.delivery_ms.as_ref())?,
        delivery,
        close_codes: counts(parts.iter().map(|w| &w.close_codes)),
        slow_consumer: parts.iter().find_map(|w| w.slow_consumer.clone()),
    }))
}

/// Each shard checked delivery to its own subscribers of its own publishes: the sets add.
fn delivery(parts: &[&WsMetrics]) -> Option<DeliveryReport> {
    let ds: Vec<&DeliveryReport> = parts.iter().filter_map(|w| w.delivery.as_ref()).collect();
    if ds.is_empty() {
        return None;
    }
    let total = |f: fn(&DeliveryReport) -> u64| ds.iter().map(|d| f(d)).sum::<u64>();
    Some(DeliveryReport {
        subscribers: total(|d| d.subscribers),
        published: total(|d| d.published),
        acknowledged: total(|d| d.acknowledged),
        failed: total(|d| d.failed),
        indeterminate: total(|d| d.indeterminate),
        expected: total(|d| d.expected),
        received: total(|d| d.received),
        lost: total(|d| d.lost),
        duplicated: total(|d| d.duplicated),
        out_of_order: total(|d| d.out_of_order),
        unexpected: total(|d| d.unexpected),
        recovered: total(|d| d.recovered),
        not_owed: total(|d| d.not_owed),
        lost_ids: examples(ds.iter().map(|d| &d.lost_ids), 20),
        order_disagreements: total(|d| d.order_disagreements),
        real_time_violations: total(|d| d.real_time_violations),
        order_samples: examples(ds.iter().map(|d| &d.order_samples), EXAMPLES),
    })
}

/// Window by window: every shard saw the same fault windows (they start with the load).
fn recovery(ms: &[&Metrics]) -> Option<RecoveryMetrics> {
    let parts: Vec<&RecoveryMetrics> = ms.iter().filter_map(|m| m.recovery.as_ref()).collect();
    let first = parts.first()?;
    let windows = first
        .windows
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let each: Vec<&RecoveryWindow> =
                parts.iter().filter_map(|p| p.windows.get(i)).collect();
            let stats = |f: fn(&RecoveryWindow) -> Option<&WindowStats>| {
                let s: Vec<&WindowStats> = each.iter().filter_map(|w| f(w)).collect();
                let n: u64 = s.iter().map(|s| s.iterations).sum();
                (!s.is_empty()).then(|| WindowStats {
                    iterations: n,
                    success_rate: s
                        .iter()
                        .map(|s| s.success_rate * s.iterations as f64)
                        .sum::<f64>()
                        / n.max(1) as f64,
                    worst_p99_ms: s.iter().filter_map(|s| s.worst_p99_ms).reduce(f64::max),
                })
            };
            RecoveryWindow {
                fault: w.fault.clone(),
                from_s: w.from_s,
                until_s: w.until_s,
                // The first success anywhere; recovered once every shard had.
                time_to_first_success_s: each
                    .iter()
                    .filter_map(|w| w.time_to_first_success_s)
                    .reduce(f64::min),
                time_to_recover_s: each
                    .iter()
                    .map(|w| w.time_to_recover_s)
                    .collect::<Option<Vec<f64>>>()
                    .and_then(|t| t.into_iter().reduce(f64::max)),
                lost: each.iter().map(|w| w.lost).sum(),
                messages_lost: each
                    .iter()
                    .filter_map(|w| w.messages_lost)
                    .reduce(|a, b| a + b),
                before: stats(|w| w.before.as_ref()),
                during: stats(|w| w.during.as_ref()),
                after: stats(|w| w.after.as_ref()),
            }
        })
        .collect();
    Some(RecoveryMetrics { windows })
}

/// The stress suite: each stage's shares added and judged again, the breaking point located again
/// on the merged stages. A stage some shard could not offer on time was not offered as planned.
fn stress(ms: &[&Metrics]) -> Result<Option<StressMetrics>, Missing> {
    let all: Vec<&StressMetrics> = ms.iter().filter_map(|m| m.stress.as_ref()).collect();
    let Some(first) = all.first() else {
        return Ok(None);
    };
    let mut stages = Vec::new();
    for (i, base) in first.stages.iter().enumerate() {
        let each: Vec<&StageResult> = all.iter().filter_map(|s| s.stages.get(i)).collect();
        let what = format!("metrics.stress.stages[{}]", i + 1);
        let mut totals = each[0].totals;
        for t in each.iter().skip(1).map(|s| s.totals) {
            totals.iterations += t.iterations;
            totals.succeeded += t.succeeded;
            totals.failed += t.failed;
            totals.timed_out += t.timed_out;
            totals.not_started += t.not_started;
            totals.abandoned += t.abandoned;
        }
        let late: u64 = each.iter().map(|s| s.late).sum();
        let mut stage = StageResult {
            stage: base.stage,
            rate_per_s: each.iter().map(|s| s.rate_per_s).sum(),
            achieved_rate_per_s: each.iter().map(|s| s.achieved_rate_per_s).sum(),
            totals,
            success_rate: share(totals.succeeded, totals.iterations),
            latency_ms: summaries(&what, each.iter().map(|s| s.latency_ms.as_ref()))?,
            latency_ok_ms: summaries(&what, each.iter().map(|s| s.latency_ok_ms.as_ref()))?,
            service_time_ms: summaries(&what, each.iter().map(|s| s.service_time_ms.as_ref()))?,
            late,
            errors: counts(each.iter().map(|s| &s.errors)),
            met_thresholds: false,
            generator_limited: each.iter().any(|s| s.generator_limited),
            thresholds: Vec::new(),
        };
        let values = Values::of_stage(&stage);
        stage.thresholds = base
            .thresholds
            .iter()
            .map(|v| match v.metric.as_str() {
                "schedule.on_time_rate" => Verdict {
                    actual: values.get("schedule.on_time_rate"),
                    passed: totals.iterations > 0 && !behind_schedule(late, totals.iterations),
                    ..v.clone()
                },
                _ => rejudged(v, &values),
            })
            .collect();
        stage.met_thresholds = totals.iterations > 0 && stage.thresholds.iter().all(|v| v.passed);
        stages.push(stage);
    }
    let (breaking_point, broke, generator_limited) = locate(&stages, |r| {
        // As the shard that could not keep up saw it, with the merged stage's rates.
        let seen = all
            .iter()
            .filter_map(|s| s.generator_limited.as_ref())
            .find(|g| g.stage == r.stage);
        GeneratorLimit {
            needed_in_flight: seen.map_or(0.0, |g| g.needed_in_flight),
            max_in_flight: seen.map_or(0, |g| g.max_in_flight),
            harness_cpu: seen.and_then(|g| g.harness_cpu),
            ..limit_of(r)
        }
    });
    Ok(Some(StressMetrics {
        breaking_point,
        stages,
        broke,
        generator_limited,
    }))
}
