//! The short summary `harness run` prints when a run ends: status and why, counts, latency, rollbacks,
//! the stress suite's breaking point, drift, WebSocket delivery and rate-limit conformance, every
//! threshold's verdict with its actual value, and every named check.

use std::fmt::Write;

use crate::result::{RunResult, Status};

pub fn render(r: &RunResult) -> String {
    printable(&lines(r))
}

/// Drops what could rewrite the terminal: control characters other than line ends (escape
/// sequences start with one) and bidirectional overrides, wherever they came from.
fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| *c == '\n' || !crate::report::markdown::is_hidden(*c))
        .collect()
}

fn lines(r: &RunResult) -> String {
    let mut out = String::new();
    let status = match r.status {
        Status::Passed => "PASSED",
        Status::Failed => "FAILED",
        Status::Aborted => "ABORTED",
    };
    let _ = writeln!(
        out,
        "{} {status} — {} suite, seed {}, {:.1}s{}",
        r.scenario,
        r.suite,
        r.seed,
        r.duration_s,
        crate::report::view::shard_text(r)
            .map(|s| format!(", {s}"))
            .unwrap_or_default()
    );
    if let Some(reason) = &r.reason {
        let _ = writeln!(out, "  reason      {reason}");
    }
    for c in &r.caveats {
        let _ = writeln!(out, "  caveat      {c}");
    }
    let t = &r.totals;
    let mut counts = format!(
        "{} done: {} succeeded, {} failed",
        t.iterations, t.succeeded, t.failed
    );
    if t.timed_out > 0 {
        let _ = write!(counts, " ({} timed out)", t.timed_out);
    }
    if t.not_started + t.abandoned > 0 {
        let _ = write!(
            counts,
            "; {} not started, {} cut off",
            t.not_started, t.abandoned
        );
    }
    let _ = writeln!(out, "  iterations  {counts}");
    let m = &r.metrics;
    if let Some(sr) = m.success_rate {
        let rate = m
            .throughput_per_s
            .map(|t| format!(", {t:.1} iterations/s"))
            .unwrap_or_default();
        let _ = writeln!(out, "  success     {:.2}%{rate}", sr * 100.0);
    }
    let headline = match (&m.latency_ok_ms, &m.latency_ms) {
        (Some(l), _) => Some((l, "of the succeeded iterations")),
        (None, Some(l)) if m.latency_failed_ms.is_none() => Some((l, "")),
        _ => None,
    };
    if let Some((l, whose)) = headline {
        let _ = writeln!(
            out,
            "  latency     {}  max {:.2}ms {whose}",
            l.describe(&["p50", "p95", "p99"]),
            l.max
        );
    }
    if let Some(f) = &m.latency_failed_ms
        && t.iterations > 0
    {
        let kinds: Vec<String> = m
            .latency_failed_by_kind
            .iter()
            .map(|(k, s)| format!("{k} {}", s.count))
            .collect();
        let _ = writeln!(
            out,
            "  failed      {:.2}% of iterations ({}): {}  max {:.2}ms",
            f.count as f64 * 100.0 / t.iterations as f64,
            kinds.join(", "),
            f.describe(&["p50"]),
            f.max
        );
    }
    if let Some(s) = &m.service_time_ms {
        let _ = writeln!(
            out,
            "  service     {} (uncorrected)",
            s.describe(&["p50", "p99"])
        );
    }
    if let Some(s) = &m.schedule {
        let _ = writeln!(
            out,
            "  schedule    {:.1}/s intended, {:.1}/s achieved, {} late{}",
            s.intended_rate_per_s,
            s.achieved_rate_per_s,
            s.late,
            if s.fell_behind {
                " — the generator fell behind"
            } else {
                ""
            }
        );
    }
    if let Some(rb) = &m.rollback {
        let rate = rb
            .success_rate
            .map(|s| format!(" ({:.1}%)", s * 100.0))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  rollback    {} attempted, {} verified{rate}",
            rb.attempted, rb.succeeded
        );
    }
    if !m.errors.is_empty() {
        let list: Vec<String> = m.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "  errors      {}", list.join(", "));
    }
    if let Some(s) = &m.stress {
        let bp = match &s.breaking_point {
            _ if s.generator_limited.is_some() => {
                let g = s.generator_limited.as_ref().map_or(0.0, |g| g.rate_per_s);
                format!("not found: the generator fell behind at {g:.1}/s (see the caveat)")
            }
            Some(bp) if s.broke => format!(
                "stage {} at {:.1}/s (the next stage broke)",
                bp.stage, bp.rate_per_s
            ),
            Some(bp) => format!(
                "none: every stage up to {:.1}/s met the thresholds",
                bp.rate_per_s
            ),
            None => "even the first stage missed the thresholds".into(),
        };
        let _ = writeln!(out, "  breaking    {bp}");
    }
    if let Some(d) = &m.drift {
        let ratio = match (d.p95_ratio, d.p95_change_ms) {
            (Some(r), Some(c)) => format!("{r:.2}× ({c:+.2}ms)"),
            _ => "-".into(),
        };
        let change = d
            .error_rate_change
            .map_or("-".into(), |v| format!("{:+.2} pp", v * 100.0));
        let _ = writeln!(
            out,
            "  drift       p95 {ratio}, error rate {change} (last {}s against first)",
            d.window_s
        );
    }
    if let Some(c) = &m.http_connections {
        let took = c
            .connect_ms
            .as_ref()
            .map(|t| format!(", each {}", t.describe(&["p50", "max"])))
            .unwrap_or_default();
        let failed = if c.failed > 0 {
            format!(", {} failed", c.failed)
        } else {
            String::new()
        };
        let protocols: Vec<String> = r
            .target
            .http_protocols
            .iter()
            .map(|(v, n)| format!("{v} {n}"))
            .collect();
        let protocols = if protocols.is_empty() {
            String::new()
        } else {
            format!("; responses {}", protocols.join(", "))
        };
        let _ = writeln!(
            out,
            "  connections {} opened{failed}{took}{protocols}",
            c.opened
        );
    }
    if let Some(ws) = &m.ws {
        let connect = ws
            .connect_ms
            .as_ref()
            .map(|c| format!(", handshake {}", c.describe(&["p95"])))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  websocket   {} connections (peak {}){connect}; {} frames sent, {} received",
            ws.connections, ws.peak_connections, ws.messages_sent, ws.messages_received
        );
        if ws.frames_without_correlation > 0 || ws.late_replies > 0 {
            let _ = writeln!(
                out,
                "  frames      {} without a correlation id{}; {} late replies (their request had timed out)",
                ws.frames_without_correlation,
                ws.uncorrelated_frames
                    .first()
                    .map(|f| format!(" (first: {f})"))
                    .unwrap_or_default(),
                ws.late_replies
            );
        }
        if ws.app_ping_ms.is_some() || ws.app_pings_unanswered > 0 {
            let rtt = ws
                .app_ping_ms
                .as_ref()
                .map(|a| format!("round trip {}", a.describe(&["p50", "p99"])))
                .unwrap_or_else(|| "no pong".into());
            let clock = ws
                .server_clock_offset_ms
                .as_ref()
                .map(|o| format!("; server clock {:+.1} ms from ours", o.mean))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  app ping    {rtt}; {} unanswered{clock}",
                ws.app_pings_unanswered
            );
        }
        if let Some(d) = &ws.delivery {
            let rate = ws
                .delivery_rate
                .map_or("-".into(), |r| format!("{:.3}%", r * 100.0));
            let _ = writeln!(
                out,
                "  delivery    {rate} of {} owed receipts; {} lost, {} duplicated, {} out of order, {} unexpected",
                d.expected, d.lost, d.duplicated, d.out_of_order, d.unexpected
            );
        }
    }
    if let Some(rl) = &m.rate_limit {
        let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
        let against = match (rl.declared_rate_per_s, rl.declared_burst) {
            (Some(rate), Some(burst)) => format!("against declared {rate}/s burst {burst}"),
            _ => "(discovered, none declared)".into(),
        };
        let _ = writeln!(
            out,
            "  rate limit  inferred {}/s burst {} {against}: {}",
            f(rl.inferred_rate_per_s),
            f(rl.inferred_burst),
            crate::report::ws_view::rate_limit_verdict(rl)
        );
    }
    if let Some(view) = crate::report::body_size_view::body_size(r) {
        let facts: Vec<String> = view
            .facts
            .iter()
            .map(|p| format!("{} {}", p.key, p.value))
            .collect();
        let _ = writeln!(out, "  body size   {}; {}", view.verdict, facts.join("; "));
    }
    for w in m.recovery.iter().flat_map(|r| &r.windows) {
        let secs = |v: Option<f64>| v.map_or("never".to_string(), |v| format!("{v:.2}s"));
        let _ = writeln!(
            out,
            "  fault       {}: first success {} after, recovered {} after; {} failed during{}",
            w.fault,
            secs(w.time_to_first_success_s),
            secs(w.time_to_recover_s),
            w.lost,
            w.messages_lost
                .map(|n| format!(", {n} acknowledged messages lost"))
                .unwrap_or_default()
        );
    }
    let passed = r.thresholds.iter().filter(|v| v.passed).count();
    let _ = writeln!(
        out,
        "  thresholds  {passed} of {} passed",
        r.thresholds.len()
    );
    for v in &r.thresholds {
        let mark = if v.passed { "ok  " } else { "FAIL" };
        let note = v
            .note
            .as_deref()
            .map(|n| format!("  ({n})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "    {mark} {} {} — actual {}{note}",
            v.metric,
            v.condition,
            v.actual_text()
        );
    }
    if !r.checks.is_empty() {
        let passed = r.checks.iter().filter(|c| c.passed).count();
        let _ = writeln!(out, "  checks      {passed} of {} passed", r.checks.len());
        for c in &r.checks {
            let mark = if c.passed { "ok  " } else { "FAIL" };
            let _ = writeln!(out, "    {mark} {} — {}", c.name, c.detail);
        }
    }
    out
}
