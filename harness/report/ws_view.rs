//! The parts of the view model for WebSocket runs and policy probes: the named checks, connections and
//! frames, delivery, the slow consumer, and rate-limit conformance. Each part is absent (or empty) when
//! the run has nothing for it.

use serde::Serialize;

use super::rows::{LatencyRow, Pair, latency_row, ms, opt_ms, pair, pct};
use crate::result::{RunResult, format_value};

#[derive(Debug, Serialize)]
pub struct CheckRow {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct WsView {
    pub facts: Vec<Pair>,
    pub latency: Vec<LatencyRow>,
    pub close_codes: Vec<Pair>,
    pub delivery: Option<Vec<Pair>>,
    pub lost_ids: Vec<String>,
    pub slow_consumer: Option<Vec<Pair>>,
    pub reconnect: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct WindowRow {
    pub fault: String,
    pub first_success: String,
    pub recovered: String,
    pub lost: String,
    pub before: String,
    pub during: String,
    pub after: String,
}

#[derive(Debug, Serialize)]
pub struct RateLimitView {
    pub conforms: bool,
    pub verdict: &'static str,
    pub facts: Vec<Pair>,
    pub note: Option<String>,
}

pub fn checks(r: &RunResult) -> Vec<CheckRow> {
    r.checks
        .iter()
        .map(|c| CheckRow {
            name: c.name.clone(),
            passed: c.passed,
            detail: c.detail.clone(),
        })
        .collect()
}

pub fn ws(r: &RunResult) -> Option<WsView> {
    let w = r.metrics.ws.as_ref()?;
    let mut latency = Vec::new();
    for (name, s) in [
        ("handshake", &w.connect_ms),
        ("TLS handshake", &w.tls_handshake_ms),
        ("ping round trip", &w.ping_ms),
        ("app ping round trip", &w.app_ping_ms),
        ("publish to receipt", &w.delivery_ms),
    ] {
        if let Some(s) = s {
            latency.push(latency_row(name, s));
        }
    }
    let delivery = w.delivery.as_ref().map(|d| {
        vec![
            pair("delivery rate", pct(w.delivery_rate)),
            pair("subscribers", d.subscribers.to_string()),
            pair(
                "publishes",
                format!(
                    "{} ({} acknowledged, {} refused, {} without an answer)",
                    d.published, d.acknowledged, d.failed, d.indeterminate
                ),
            ),
            pair("receipts", format!("{} of {} owed", d.received, d.expected)),
            pair("lost", d.lost.to_string()),
            pair("duplicated", d.duplicated.to_string()),
            pair("out of order (per publisher)", d.out_of_order.to_string()),
            pair(
                "order disagreements between subscribers",
                d.order_disagreements.to_string(),
            ),
            pair(
                "ahead of an earlier acknowledged publish",
                d.real_time_violations.to_string(),
            ),
            pair("unexpected", d.unexpected.to_string()),
            pair(
                "recovered (unanswered, delivered anyway)",
                d.recovered.to_string(),
            ),
        ]
    });
    let slow_consumer = w.slow_consumer.as_ref().map(|s| {
        vec![
            pair(
                "stopped reading at",
                format!("{:.1}s into the load", s.stalled_at_s),
            ),
            pair(
                "disconnected after",
                s.disconnected_after_ms
                    .map_or_else(|| "never (within the probe)".to_string(), ms),
            ),
            pair("allowed", ms(s.expect_within_ms)),
            pair("publishes meanwhile", s.published.to_string()),
            pair(
                "publisher acknowledgement p99",
                opt_ms(s.publisher_ack_ms.as_ref().and_then(|a| a.p99)),
            ),
            pair(
                "load's worst p99 per second, before → during",
                format!(
                    "{} → {} (allowed {})",
                    s.baseline_p99_ms.map_or("—".into(), ms),
                    s.during_p99_ms.map_or("—".into(), ms),
                    s.allowed_p99_ms.map_or("—".into(), ms)
                ),
            ),
            pair(
                "load's failures during the stall",
                s.during_failed.to_string(),
            ),
            pair(
                "seen by the consumer",
                match (s.seen.as_str(), s.close_code) {
                    ("", _) => "—".to_string(),
                    (seen, Some(code)) if s.close_reason.is_empty() => {
                        format!(
                            "{seen}, close code {code} (expected {})",
                            s.expected_close_code
                        )
                    }
                    (seen, Some(code)) => format!(
                        "{seen}, close code {code}: {} (expected {})",
                        s.close_reason, s.expected_close_code
                    ),
                    (seen, None) => format!(
                        "{seen}, no close frame read (expected {})",
                        s.expected_close_code
                    ),
                },
            ),
            pair(
                "publishes delivered to it / discarded",
                format!("{} / {}", s.delivered, s.discarded),
            ),
        ]
    });
    Some(WsView {
        facts: vec![
            pair(
                "connections",
                format!(
                    "{} opened (peak {} at once), {} failed, {} reconnects",
                    w.connections, w.peak_connections, w.failed_connections, w.reconnects
                ),
            ),
            pair(
                "frames",
                format!("{} sent, {} received", w.messages_sent, w.messages_received),
            ),
            pair(
                "frames without a correlation id",
                match w.uncorrelated_frames.first() {
                    Some(first) => format!("{} (first: {first})", w.frames_without_correlation),
                    None => w.frames_without_correlation.to_string(),
                },
            ),
            pair(
                "late replies (request already timed out)",
                w.late_replies.to_string(),
            ),
        ]
        .into_iter()
        .chain(app_ping_facts(w))
        .collect(),
        reconnect: w.reconnect_ms.as_ref().map(|r| {
            format!(
                "{} reconnections: p50 {}, max {} from the loss to the connection being back",
                r.count,
                opt_ms(r.p50),
                ms(r.max)
            )
        }),
        latency,
        close_codes: w
            .close_codes
            .iter()
            .map(|(k, v)| pair(k, v.to_string()))
            .collect(),
        delivery,
        lost_ids: w
            .delivery
            .as_ref()
            .map(|d| d.lost_ids.clone())
            .unwrap_or_default(),
        slow_consumer,
    })
}

/// The app ping's unanswered count and the server's clock, when the run sent app pings.
fn app_ping_facts(w: &crate::result::WsMetrics) -> Vec<Pair> {
    let mut out = Vec::new();
    if w.app_ping_ms.is_some() || w.app_pings_unanswered > 0 {
        out.push(pair(
            "app pings unanswered",
            w.app_pings_unanswered.to_string(),
        ));
    }
    if let Some(o) = &w.server_clock_offset_ms {
        out.push(pair(
            "server clock against ours",
            format!(
                "{:+.1} ms on average ({:+.1} to {:+.1}, {} pongs)",
                o.mean, o.min, o.max, o.samples
            ),
        ));
    }
    out
}

/// "conforms" / "does not conform" to a declared limit; "limit found" / "no limit found" without one.
pub fn rate_limit_verdict(rl: &crate::result::RateLimitMetrics) -> &'static str {
    match (rl.declared_rate_per_s.is_some(), rl.conforms) {
        (true, true) => "conforms",
        (true, false) => "does not conform",
        (false, true) => "limit found",
        (false, false) => "no limit found",
    }
}

pub fn rate_limit(r: &RunResult) -> Option<RateLimitView> {
    let rl = r.metrics.rate_limit.as_ref()?;
    let num = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.1}"));
    let declared = match (rl.declared_rate_per_s, rl.declared_burst) {
        (Some(rate), Some(burst)) => {
            format!("{} with a burst of {burst}", format_value("rate", rate))
        }
        _ => "nothing: the probe looked for the limit".into(),
    };
    let mut facts = vec![
        pair("declared", declared),
        pair(
            "inferred",
            format!(
                "{}/s with a burst of {}",
                num(rl.inferred_rate_per_s),
                num(rl.inferred_burst)
            ),
        ),
        pair("tolerance", pct(Some(rl.tolerance))),
        pair(
            "messages",
            format!(
                "{} offered, {} accepted, {} rejected, {} unanswered",
                rl.offered, rl.accepted, rl.rejected, rl.unanswered
            ),
        ),
    ];
    if let Some(ra) = &rl.retry_after {
        facts.push(pair(
            "Retry-After",
            format!(
                "on {} of {} rejections{}",
                ra.present,
                ra.present + ra.missing,
                ra.max_s
                    .map_or(String::new(), |m| format!(", at most {m}s"))
            ),
        ));
    }
    if !rl.ramp.is_empty() {
        let steps: Vec<String> = rl
            .ramp
            .iter()
            .map(|s| {
                format!(
                    "{:.0}/s: {} of {} refused",
                    s.rate_per_s, s.rejected, s.offered
                )
            })
            .collect();
        facts.push(pair("ramp", steps.join("; ")));
    }
    Some(RateLimitView {
        conforms: rl.conforms,
        verdict: rate_limit_verdict(rl),
        facts,
        note: rl.note.clone(),
    })
}

/// The fault windows, and the load and recovery around each.
pub fn windows(r: &RunResult) -> Vec<WindowRow> {
    let stats = |s: &Option<crate::result::WindowStats>| match s {
        Some(s) => format!(
            "{} it, {} ok, worst p99 {}",
            s.iterations,
            pct(Some(s.success_rate)),
            s.worst_p99_ms.map_or("—".into(), ms)
        ),
        None => "—".into(),
    };
    let after = |v: Option<f64>| v.map_or("never".into(), |s| ms(s * 1000.0));
    r.metrics
        .recovery
        .iter()
        .flat_map(|rec| &rec.windows)
        .map(|w| WindowRow {
            fault: w.fault.clone(),
            first_success: after(w.time_to_first_success_s),
            recovered: after(w.time_to_recover_s),
            lost: match w.messages_lost {
                Some(m) => format!("{} iterations, {m} messages", w.lost),
                None => format!("{} iterations", w.lost),
            },
            before: stats(&w.before),
            during: stats(&w.during),
            after: stats(&w.after),
        })
        .collect()
}
