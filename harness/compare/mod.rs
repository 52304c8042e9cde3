//! Comparing two results: for p50, p95, p99, success rate, rollback success rate and throughput, the
//! change and a verdict that accounts for noise. A bootstrap interval (see [`bootstrap`]) is computed
//! for each change; a metric has *regressed* only when the whole interval lies beyond its noise band
//! in the bad direction, *improved* when it lies beyond the band in the good one, and is *within
//! noise* otherwise.
//!
//! Latencies and throughput change relatively (band in percent of the base); success rates change in
//! percentage points (band in points), since near 100% a relative change hides a doubled failure rate.

pub mod bootstrap;
pub mod context;

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use self::bootstrap::{Counts, Interval, Window};
use crate::metrics::LatencySummary;
use crate::metrics::histogram::decode;
use crate::report::charts::{self, Line};
use crate::thresholds::catalogue::{self, Compared, Estimator, MetricKind};
use minijinja::value::Serde;

use crate::report::{ReportError, render};
use crate::result::{RunResult, format_value};

/// Default noise band: 5% for relative changes, 5 percentage points for rates.
pub const DEFAULT_NOISE: f64 = 0.05;
/// Default floor of the band for latencies, in milliseconds: a latency that moves by less than this
/// is within noise whatever its relative change. On a shared machine the scheduler alone moves a
/// sub-millisecond tail by tens of percent between two runs of the same thing.
pub const DEFAULT_NOISE_FLOOR_MS: f64 = 0.5;
/// Fewest per-second windows (with data) in each run for the per-second method.
pub const MIN_WINDOWS: usize = 10;
/// Fewest iterations each run must have beyond a latency percentile for it to be judged: a p99 of 300
/// iterations rests on its slowest 3, which one scheduler hiccup moves by half, in either run. The
/// same rule decides whether a result reports the percentile at all.
pub const MIN_TAIL: f64 = crate::metrics::histogram::MIN_BEYOND;

/// How to judge.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub noise: f64,
    /// Bands for particular metrics, by name (`latency.p99` → 0.1).
    pub noise_for: BTreeMap<String, f64>,
    /// Latencies: the band is at least this many milliseconds of the base value.
    pub floor_ms: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            noise: DEFAULT_NOISE,
            noise_for: BTreeMap::new(),
            floor_ms: DEFAULT_NOISE_FLOOR_MS,
        }
    }
}

/// The metrics compared, in order (those the metric catalogue says `compare` judges).
pub fn metrics() -> impl Iterator<Item = &'static str> + Clone {
    catalogue::compared().map(|(_, c)| c.name)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Improved,
    WithinNoise,
    Regressed,
    /// Not in both runs, or too little data to estimate the noise.
    NotCompared,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricComparison {
    pub metric: String,
    pub base: String,
    pub new: String,
    /// The change, as shown: `+12.3%` or `-1.20 pp`.
    pub change: String,
    /// The 95% interval of the change, as shown.
    pub interval: String,
    pub band: String,
    pub verdict: Verdict,
    /// How the noise was estimated, or why the metric was not compared.
    pub method: String,
    /// The change, its interval and the band as numbers (relative, or in points), for the chart.
    #[serde(skip)]
    pub drawn: Option<Drawn>,
}

/// A judged change as numbers: what the comparison chart draws.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drawn {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    pub band: f64,
    /// In percentage points (rates), else relative.
    pub points: bool,
    pub rise_is_bad: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub base: RunLabel,
    pub new: RunLabel,
    pub metrics: Vec<MetricComparison>,
    pub regressed: Vec<String>,
    /// The metrics that could not be judged, each with why (and what it would need).
    pub not_judged: Vec<String>,
    pub warnings: Vec<String>,
    /// The facts that are not the same in both runs (load, seed, target, harness, machine, …).
    pub differences: Vec<context::Difference>,
    /// Each step's p95, side by side (no verdict: where a judged change came from).
    pub steps: Vec<context::SideBySide>,
    /// Each error kind's count, side by side.
    pub errors: Vec<context::SideBySide>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunLabel {
    pub scenario: String,
    pub status: String,
    pub started_at: String,
    pub seed: u64,
    pub run_id: String,
}

fn label(r: &RunResult) -> RunLabel {
    RunLabel {
        scenario: r.scenario.clone(),
        status: format!("{:?}", r.status).to_lowercase(),
        started_at: r.started_at.clone(),
        seed: r.seed,
        run_id: r.run_id.clone(),
    }
}

/// Regressed (or improved) only when both the change shown and its whole interval lie beyond the
/// band in the bad (or good) direction.
fn judge(i: &Interval, band: f64, rise_is_bad: bool) -> Verdict {
    let (worse, worse_low, worse_high) = if rise_is_bad {
        (i.estimate, i.low, i.high)
    } else {
        (-i.estimate, -i.high, -i.low)
    };
    if worse > band && worse_low > band {
        Verdict::Regressed
    } else if worse < -band && worse_high < -band {
        Verdict::Improved
    } else {
        Verdict::WithinNoise
    }
}

/// The band a latency takes from the floor (`floor_ms` of its base value, relatively) when that is
/// wider than `relative`; `None` when the relative band stands.
fn floor_band(relative: f64, floor_ms: f64, kind: MetricKind, base: Option<f64>) -> Option<f64> {
    match base {
        Some(b) if kind == MetricKind::Duration && b > 0.0 => {
            Some(floor_ms / b).filter(|f| *f > relative)
        }
        _ => None,
    }
}

fn show_change(v: f64, points: bool) -> String {
    if points {
        format!("{:+.2} pp", v * 100.0)
    } else {
        format!("{:+.1}%", v * 100.0)
    }
}

/// Compares `new` against `base`.
pub fn compare(base: &RunResult, new: &RunResult, opts: &Options) -> Comparison {
    let mut rng = ChaCha8Rng::seed_from_u64(0x0C0_FFEE);
    let mut warnings = Vec::new();
    if base.scenario != new.scenario {
        warnings.push(format!(
            "the runs are of different scenarios ({} and {})",
            base.scenario, new.scenario
        ));
    }
    for (which, r) in [("base", base), ("new", new)] {
        if r.status == crate::result::Status::Aborted {
            warnings.push(format!(
                "the {which} run was aborted: {}",
                r.reason.as_deref().unwrap_or("no reason given")
            ));
        }
    }
    let mut metrics = Vec::new();
    for (family, compared) in catalogue::compared() {
        let metric = compared.name;
        let relative = opts.noise_for.get(metric).copied().unwrap_or(opts.noise);
        let points = compared.in_points;
        let (base_v, new_v, interval, method) = estimate(&mut rng, compared, base, new);
        let floored = floor_band(relative, opts.floor_ms, family.kind, base_v);
        let band = floored.unwrap_or(relative);
        let kind = family.kind.as_str();
        let show = |v: Option<f64>| v.map_or("—".to_string(), |v| format_value(kind, v));
        let (verdict, method) = match (&interval, method) {
            (Some(i), Method::Estimated(how)) => (judge(i, band, compared.rise_is_bad), how),
            (_, Method::NotCompared(why)) => (Verdict::NotCompared, why),
            (None, Method::Estimated(how)) => (
                Verdict::NotCompared,
                format!("{how}: too little data for an interval"),
            ),
        };
        metrics.push(MetricComparison {
            metric: metric.to_string(),
            base: show(base_v),
            new: show(new_v),
            change: interval.map_or_else(
                || match (base_v, new_v) {
                    (Some(b), Some(n)) if points => show_change(n - b, true),
                    (Some(b), Some(n)) if b > 0.0 => show_change(n / b - 1.0, false),
                    _ => "—".into(),
                },
                |i| show_change(i.estimate, points),
            ),
            interval: interval.map_or("—".into(), |i| {
                format!(
                    "{} … {}",
                    show_change(i.low, points),
                    show_change(i.high, points)
                )
            }),
            band: if points {
                format!("±{:.1} pp", band * 100.0)
            } else if floored.is_some() {
                format!("±{:.1}% (the {} ms floor)", band * 100.0, opts.floor_ms)
            } else {
                format!("±{:.1}%", band * 100.0)
            },
            verdict,
            method,
            drawn: interval.map(|i| Drawn {
                estimate: i.estimate,
                low: i.low,
                high: i.high,
                band,
                points,
                rise_is_bad: compared.rise_is_bad,
            }),
        });
    }
    Comparison {
        base: label(base),
        new: label(new),
        regressed: metrics
            .iter()
            .filter(|m| m.verdict == Verdict::Regressed)
            .map(|m| m.metric.clone())
            .collect(),
        not_judged: metrics
            .iter()
            .filter(|m| m.verdict == Verdict::NotCompared)
            .map(|m| format!("{}: {}", m.metric, m.method))
            .collect(),
        metrics,
        warnings,
        differences: context::differences(base, new),
        steps: context::steps(base, new),
        errors: context::errors(base, new),
    }
}

/// Why a latency percentile cannot be judged from runs of these sizes, if it cannot.
fn too_few_beyond(q: f64, base: u64, new: u64) -> Option<String> {
    let beyond = |n: u64| n as f64 * (1.0 - q);
    if beyond(base) >= MIN_TAIL && beyond(new) >= MIN_TAIL {
        return None;
    }
    let needed = (MIN_TAIL / (1.0 - q)).round();
    Some(format!(
        "too few iterations: {base} and {new} leave {:.0} and {:.0} beyond this percentile, and it \
         needs {MIN_TAIL:.0} in each run ({needed:.0} iterations) to estimate the noise",
        beyond(base).floor(),
        beyond(new).floor()
    ))
}

/// How a change was estimated, or why it could not be.
enum Method {
    /// The samples the interval came from, in words.
    Estimated(String),
    /// Why the metric is not compared.
    NotCompared(String),
}

type Estimate = (Option<f64>, Option<f64>, Option<Interval>, Method);

/// A run's latency histogram for comparing: its succeeded iterations, or, in a result written before
/// they were kept apart, every iteration (and the words that say so).
fn latency_of(r: &RunResult) -> Option<(crate::metrics::Hist, LatencySummary, &'static str)> {
    let m = &r.metrics;
    if let (Some(text), Some(s)) = (m.latency_ok_hdr.as_deref(), m.latency_ok_ms.clone()) {
        return Some((decode(text).ok()?, s, "succeeded"));
    }
    if m.latency_failed_ms.is_none()
        && let (Some(text), Some(s)) = (m.latency_hdr.as_deref(), m.latency_ms.clone())
    {
        return Some((decode(text).ok()?, s, "all (an older result)"));
    }
    None
}

/// A run's blocks of succeeded iterations, ready to resample: seconds per block, and the blocks that
/// hold any.
fn blocks_of(r: &RunResult) -> Option<(u64, Vec<bootstrap::Sparse>)> {
    let b = r.metrics.latency_ok_blocks.as_ref()?;
    let blocks: Vec<bootstrap::Sparse> = b
        .hdr
        .iter()
        .filter_map(|text| decode(text).ok())
        .filter(|h| !h.is_empty())
        .map(|h| bootstrap::sparse(&h))
        .collect();
    Some((b.block_s, blocks))
}

fn estimate(rng: &mut ChaCha8Rng, c: &Compared, base: &RunResult, new: &RunResult) -> Estimate {
    let (mb, mn) = (&base.metrics, &new.metrics);
    match c.estimator {
        Estimator::Quantile(q) => {
            let stat_name = c.name.rsplit('.').next().unwrap_or_default();
            let (Some((hb, sb, whose)), Some((hn, sn, _))) = (latency_of(base), latency_of(new))
            else {
                let why = "no latency of succeeded iterations in both runs".to_string();
                return (None, None, None, Method::NotCompared(why));
            };
            // The percentile shown, which is what changes: value_at_quantile of the same histogram.
            let (vb, vn) = (sb.stat(stat_name), sn.stat(stat_name));
            if let Some(why) = too_few_beyond(q, sb.count, sn.count) {
                return (vb, vn, None, Method::NotCompared(why));
            }
            if let (Some(bb), Some(bn)) = (blocks_of(base), blocks_of(new))
                && bb.1.len() >= MIN_WINDOWS
                && bn.1.len() >= MIN_WINDOWS
            {
                let seconds = if bb.0 == bn.0 {
                    format!("{} s", bb.0)
                } else {
                    format!("{} s and {} s", bb.0, bn.0)
                };
                let method = format!(
                    "{} and {} blocks of {seconds} of succeeded iterations, each resampled whole",
                    bb.1.len(),
                    bn.1.len()
                );
                let interval = bootstrap::blocks_quantile_relative(rng, &bb.1, &bn.1, q).map(|i| {
                    match (vb, vn) {
                        (Some(b), Some(n)) if b > 0.0 => i.around(n / b - 1.0),
                        _ => i,
                    }
                });
                return (vb, vn, interval, Method::Estimated(method));
            }
            let method = format!(
                "{} and {} {whose} iterations, resampled",
                sb.count, sn.count
            );
            let interval = bootstrap::quantile_relative(rng, &hb, &hn, q);
            (vb, vn, interval, Method::Estimated(method))
        }
        Estimator::SuccessRate => {
            let counts = |r: &RunResult| -> Vec<Counts> {
                r.timeline
                    .iter()
                    .map(|row| (row.succeeded as f64, (row.succeeded + row.failed) as f64))
                    .filter(|c| c.1 > 0.0)
                    .collect()
            };
            let (cb, cn) = (counts(base), counts(new));
            if cb.len() >= MIN_WINDOWS && cn.len() >= MIN_WINDOWS {
                let method = format!("per-second windows ({} and {})", cb.len(), cn.len());
                return (
                    mb.success_rate,
                    mn.success_rate,
                    bootstrap::windows_ratio_difference(rng, &cb, &cn),
                    Method::Estimated(method),
                );
            }
            let t = |r: &RunResult| (r.totals.succeeded as f64, r.totals.iterations as f64);
            let method = format!(
                "iterations ({} and {})",
                base.totals.iterations, new.totals.iterations
            );
            (
                mb.success_rate,
                mn.success_rate,
                bootstrap::counts_difference(rng, t(base), t(new)),
                Method::Estimated(method),
            )
        }
        Estimator::RollbackRate => {
            let rb = |r: &RunResult| {
                r.metrics
                    .rollback
                    .as_ref()
                    .map(|x| (x.succeeded as f64, x.attempted as f64))
            };
            match (rb(base), rb(new)) {
                (Some(b), Some(n)) if b.1 > 0.0 && n.1 > 0.0 => {
                    let method = format!("rollbacks ({} and {})", b.1, n.1);
                    (
                        Some(b.0 / b.1),
                        Some(n.0 / n.1),
                        bootstrap::counts_difference(rng, b, n),
                        Method::Estimated(method),
                    )
                }
                _ => (
                    None,
                    None,
                    None,
                    Method::NotCompared("no rollback was attempted in both runs".into()),
                ),
            }
        }
        Estimator::Throughput => {
            let per_second = |r: &RunResult| -> Vec<Window> {
                // Whole seconds only: the last row of a run is usually a fraction of one.
                let n = r.timeline.len().saturating_sub(1);
                r.timeline[..n]
                    .iter()
                    .map(|row| Window {
                        value: (row.succeeded + row.failed) as f64,
                        weight: 1.0,
                    })
                    .collect()
            };
            let (wb, wn) = (per_second(base), per_second(new));
            let (tb, tn) = (mb.throughput_per_s, mn.throughput_per_s);
            if wb.len() < MIN_WINDOWS || wn.len() < MIN_WINDOWS {
                let why = format!(
                    "fewer than {MIN_WINDOWS} whole seconds in a run ({} and {}), too few to \
                     estimate the noise; it needs runs of at least {} s",
                    wb.len(),
                    wn.len(),
                    MIN_WINDOWS + 1
                );
                return (tb, tn, None, Method::NotCompared(why));
            }
            let method = format!("per-second windows ({} and {})", wb.len(), wn.len());
            // The interval of the per-second mean, carried over to the throughput shown.
            let interval = match (tb, tn, bootstrap::windows_relative(rng, &wb, &wn)) {
                (Some(b), Some(n), Some(i)) if b > 0.0 => Some(i.around(n / b - 1.0)),
                _ => None,
            };
            (tb, tn, interval, Method::Estimated(method))
        }
    }
}

/// The comparison as Markdown.
/// The version of the JSON shape `compare --json` prints (schemas/compare.schema.json).
pub const JSON_SCHEMA_VERSION: u32 = 1;

/// The comparison as JSON for scripts: every field of [`Comparison`], with its shape's version.
pub fn json(c: &Comparison) -> Result<String, serde_json::Error> {
    #[derive(Serialize)]
    struct Versioned<'a> {
        schema_version: u32,
        #[serde(flatten)]
        comparison: &'a Comparison,
    }
    serde_json::to_string_pretty(&Versioned {
        schema_version: JSON_SCHEMA_VERSION,
        comparison: c,
    })
}

pub fn markdown(c: &Comparison) -> Result<String, ReportError> {
    render("compare.md", minijinja::context! { c => Serde(c) })
}

/// The comparison as a self-contained HTML page: each change against its noise band, both
/// percentile spectra, and each percentile's timeline for both runs. Base is blue and solid, new
/// orange and dashed, on every chart.
pub fn html(c: &Comparison, base: &RunResult, new: &RunResult) -> Result<String, ReportError> {
    const BASE: charts::RGBColor = charts::BLUE_;
    const NEW: charts::RGBColor = charts::ORANGE_;
    let spectrum_line = |r: &RunResult, label: &str, color, dashed| {
        r.metrics
            .latency_hdr
            .as_deref()
            .and_then(|t| decode(t).ok())
            .map(|h| Line {
                label: label.to_string(),
                color,
                points: charts::spectrum_points(&h),
                dashed,
            })
    };
    let spectra: Vec<Line> = [
        spectrum_line(base, "base", BASE, false),
        spectrum_line(new, "new", NEW, true),
    ]
    .into_iter()
    .flatten()
    .collect();
    let percentile = |which: usize| {
        let mut lines = Vec::new();
        for (r, label, color, dashed) in [(base, "base", BASE, false), (new, "new", NEW, true)] {
            let mut line = charts::timeline_lines(&r.timeline, "", dashed).swap_remove(which);
            line.label = format!("{label} {}", line.label);
            line.color = color;
            lines.push(line);
        }
        let name = ["p50", "p95", "p99"][which];
        charts::over_time(
            &format!("{name} over time (per second): base and new"),
            "latency (ms)",
            &lines,
            charts::Marks {
                latency: true,
                ..charts::Marks::default()
            },
        )
    };
    let changes: Vec<charts::Change> = c
        .metrics
        .iter()
        .filter_map(|m| {
            let d = m.drawn?;
            Some(charts::Change {
                label: if d.points {
                    format!("{} (pp)", m.metric)
                } else {
                    m.metric.clone()
                },
                estimate: d.estimate * 100.0,
                low: d.low * 100.0,
                high: d.high * 100.0,
                band: d.band * 100.0,
                verdict: match m.verdict {
                    Verdict::Regressed => "regressed",
                    Verdict::Improved => "improved",
                    _ => "within noise",
                },
            })
        })
        .collect();
    let timelines: Vec<String> = (0..3).filter_map(percentile).collect();
    render(
        "compare.html",
        minijinja::context! {
            c => Serde(c),
            changes => charts::changes("Each change with its 95% interval, against its noise band", &changes),
            spectrum => charts::spectrum("Latency by percentile: base and new", &spectra, &[]),
            timelines => timelines,
            version => env!("CARGO_PKG_VERSION"),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_percentile_needs_ten_iterations_beyond_it_in_each_run() {
        assert_eq!(too_few_beyond(0.99, 1000, 1000), None);
        assert_eq!(too_few_beyond(0.95, 200, 300), None);
        let why = too_few_beyond(0.99, 300, 2000).unwrap();
        assert!(
            why.contains("300 and 2000 leave 3 and 20") && why.contains("(1000 iterations)"),
            "{why}"
        );
        assert!(too_few_beyond(0.95, 199, 1000).is_some());
        assert!(too_few_beyond(0.50, 19, 1000).is_some());
    }

    #[test]
    fn a_latency_band_is_never_narrower_than_the_floor() {
        let d = MetricKind::Duration;
        // 0.5 ms of a 1 ms p95 is 50%: a move from 1.0 to 1.3 ms is within it.
        let band = floor_band(0.05, 0.5, d, Some(1.0)).unwrap();
        assert!((band - 0.5).abs() < 1e-12);
        let moved = Interval {
            estimate: 0.3,
            low: 0.2,
            high: 0.4,
        };
        assert_eq!(judge(&moved, band, true), Verdict::WithinNoise);
        assert_eq!(judge(&moved, 0.05, true), Verdict::Regressed);
        // At 20 ms the floor is 2.5%, narrower than the relative band, which stands.
        assert_eq!(floor_band(0.05, 0.5, d, Some(20.0)), None);
        // Rates and counts have no floor.
        assert_eq!(floor_band(0.05, 0.5, MetricKind::Ratio, Some(0.001)), None);
        assert_eq!(floor_band(0.05, 0.5, d, None), None);
    }
}
