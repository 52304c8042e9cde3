//! Shards' timelines merged by wall-clock second: each shard's rows are moved by how much later its
//! load began than the earliest shard's (`load_started_at`), then every second's counts are added
//! and its percentiles taken from the sum of the seconds' histograms. The endurance suite's drift is
//! computed again from the merged seconds.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::sum::Missing;
use crate::metrics::histogram::{Hist, decode, merge, new_histogram};
use crate::metrics::timeline::{WindowStats, behind_schedule};
use crate::metrics::{Drift, TimelineRow};
use crate::result::RunResult;

/// One merged second, histograms and all.
#[derive(Default)]
struct Second {
    succeeded: u64,
    failed: u64,
    late: u64,
    all: Option<Hist>,
    ok: Option<Hist>,
    cpu: Option<f64>,
    /// The widest part of the second any shard's row covers.
    span: Option<f64>,
}

/// The merged timeline, and the drift between its first and last `drift_window_s` seconds.
pub fn merge_rows(
    parts: &[&RunResult],
    drift_window_s: Option<u64>,
) -> Result<(Vec<TimelineRow>, Option<Drift>), Missing> {
    let starts: Vec<Option<SystemTime>> = parts
        .iter()
        .map(|r| {
            r.load_started_at
                .as_deref()
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        })
        .collect();
    let earliest = starts.iter().flatten().min().copied();
    let mut seconds: BTreeMap<u64, Second> = BTreeMap::new();
    for (r, start) in parts.iter().zip(&starts) {
        let offset = match (start, earliest) {
            (Some(s), Some(e)) => s
                .duration_since(e)
                .map_or(0, |d| d.as_secs_f64().round() as u64),
            _ => 0,
        };
        for row in &r.timeline {
            let s = seconds.entry(row.t_s + offset).or_default();
            s.succeeded += row.succeeded;
            s.failed += row.failed;
            s.late += row.late;
            // A second is partial only where every shard's row of it is: the widest part.
            let span = row.span();
            s.span = Some(s.span.map_or(span, |v: f64| v.max(span)));
            s.cpu = match (s.cpu, row.harness_cpu) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            let what =
                |which: &str| format!("shard {}'s second {} ({which})", r.shard.index, row.t_s);
            if row.succeeded + row.failed > 0 {
                let all = row.hdr.as_deref().ok_or_else(|| {
                    format!(
                        "{} has no histogram: the result was not written as a shard (run it with \
                         --shard I/N)",
                        what("every iteration")
                    )
                })?;
                add(&mut s.all, all, &what("every iteration"))?;
            }
            if row.succeeded > 0 {
                let ok = row
                    .ok_hdr
                    .as_deref()
                    .ok_or_else(|| format!("{} has no histogram", what("succeeded iterations")))?;
                add(&mut s.ok, ok, &what("succeeded iterations"))?;
            }
        }
    }
    let q = |h: &Option<Hist>, p: f64| {
        h.as_ref()
            .filter(|h| !h.is_empty())
            .map(|h| h.value_at_quantile(p) as f64 / 1000.0)
    };
    let rows = seconds
        .iter()
        .map(|(t_s, s)| TimelineRow {
            t_s: *t_s,
            succeeded: s.succeeded,
            failed: s.failed,
            p50_ms: q(&s.all, 0.50),
            p95_ms: q(&s.all, 0.95),
            p99_ms: q(&s.all, 0.99),
            max_ms: s
                .all
                .as_ref()
                .filter(|h| !h.is_empty())
                .map(|h| h.max() as f64 / 1000.0),
            late: s.late,
            behind_schedule: behind_schedule(s.late, s.succeeded + s.failed),
            harness_cpu: s.cpu,
            ok_p50_ms: q(&s.ok, 0.50),
            ok_p95_ms: q(&s.ok, 0.95),
            ok_p99_ms: q(&s.ok, 0.99),
            hdr: None,
            ok_hdr: None,
            span_s: s.span.filter(|v| *v < 1.0),
        })
        .collect::<Vec<_>>();
    let drift = drift_window_s.and_then(|w| drift(&seconds, w.max(1)));
    Ok((rows, drift))
}

fn add(into: &mut Option<Hist>, text: &str, what: &str) -> Result<(), Missing> {
    let h = decode(text).map_err(|e| format!("{what}: its histogram cannot be read ({e})"))?;
    match into {
        Some(t) => merge(t, &h),
        None => *into = Some(h),
    }
    Ok(())
}

/// As a single run computes it: the first `window_s` seconds against the last, when the run had two
/// distinct windows.
fn drift(seconds: &BTreeMap<u64, Second>, window_s: u64) -> Option<Drift> {
    let last_t = *seconds.keys().next_back()?;
    if last_t + 1 < 2 * window_s {
        return None;
    }
    let window = |from: u64, until: u64| {
        let mut ok = new_histogram();
        let (mut n, mut failed) = (0, 0);
        for (_, s) in seconds.range(from..until) {
            n += s.succeeded + s.failed;
            failed += s.failed;
            if let Some(h) = &s.ok {
                merge(&mut ok, h);
            }
        }
        WindowStats {
            iterations: n,
            p95_ms: (!ok.is_empty()).then(|| ok.value_at_quantile(0.95) as f64 / 1000.0),
            error_rate: (n > 0).then(|| failed as f64 / n as f64),
        }
    };
    Some(Drift::between(
        window_s,
        window(0, window_s),
        window(last_t + 1 - window_s, last_t + 1),
    ))
}
