//! The one-second timeline. Once a second the engine takes each worker's current-second data, merges
//! it, and appends one row; the rows are what reports plot and what `compare` uses as samples. It also
//! keeps, for the endurance suite, the first and the latest window of the run so that drift (p95 and
//! error rate of the last window against the first) can be computed exactly at the end.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::histogram::{Hist, encode, merge, new_histogram};
use super::recorder::{Interval, Recorder};

/// One second of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    /// Start of the second, from the start of the run.
    pub t_s: u64,
    pub succeeded: u64,
    pub failed: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub p95_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_ms: Option<f64>,
    /// Iterations due this second that started late.
    #[serde(skip_serializing_if = "is_zero", default)]
    pub late: u64,
    /// More of this second's iterations started late than the schedule allows.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub behind_schedule: bool,
    /// Share of the machine's cores the harness process used this second (its embedded reference
    /// target included, when it runs one); absent where the system does not say.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub harness_cpu: Option<f64>,
    /// The same percentiles of the second's succeeded iterations alone.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ok_p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ok_p95_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ok_p99_ms: Option<f64>,
    /// The second's histograms, all iterations and the succeeded ones: kept by shards, so that
    /// `merge` adds their seconds exactly.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hdr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ok_hdr: Option<String>,
    /// Seconds the row covers when less than one: the load's last, partial second (its counts are
    /// of that part; a rate is count / span).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub span_s: Option<f64>,
}

impl TimelineRow {
    /// Seconds the row covers: one, or less for the last, partial second.
    pub fn span(&self) -> f64 {
        self.span_s.filter(|s| *s > 0.0 && *s < 1.0).unwrap_or(1.0)
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Share of late starts beyond which a second, a stage or a run did not get the load it claims.
pub const MAX_LATE_SHARE: f64 = 0.01;

/// Whether `late` of `n` iterations starting late puts them behind schedule: more than
/// [`MAX_LATE_SHARE`] of them, and more than one (a single late start is timer jitter).
pub fn behind_schedule(late: u64, n: u64) -> bool {
    late > 1 && late as f64 > MAX_LATE_SHARE * n as f64
}

/// Latency and errors of one window of the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    pub iterations: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub p95_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_rate: Option<f64>,
}

/// How the run changed between its first and last windows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    pub window_s: u64,
    pub first: WindowStats,
    pub last: WindowStats,
    /// p95 of the last window ÷ p95 of the first.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub p95_ratio: Option<f64>,
    /// p95 of the last window − p95 of the first, in milliseconds: how much it grew, which stays
    /// meaningful when latencies are small and their ratio is noise.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub p95_change_ms: Option<f64>,
    /// Error rate of the last window − error rate of the first.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_rate_change: Option<f64>,
}

struct DriftWindows {
    window_s: u64,
    first: Interval,
    /// The most recent `window_s` seconds, oldest first.
    recent: VecDeque<Interval>,
}

/// Histograms of the succeeded iterations in blocks of whole seconds, encoded as each block ends,
/// so that `compare` can resample whole stretches of time. At most about [`MAX_BLOCKS`] of them.
#[derive(Debug, Clone)]
struct Blocks {
    block_s: u64,
    current: Hist,
    done: Vec<String>,
}

/// The most blocks a run keeps: each a few hundred bytes in `result.json`.
pub const MAX_BLOCKS: u64 = 1000;

/// Seconds per block for a run that may last `seconds`.
pub fn block_seconds(seconds: u64) -> u64 {
    seconds.div_ceil(MAX_BLOCKS).max(1)
}

pub struct Timeline {
    rows: Vec<TimelineRow>,
    blocks: Blocks,
    scratch: Interval,
    cumulative: Hist,
    /// Completed, failed and late iterations so far.
    counts: (u64, u64, u64),
    /// The process's CPU seconds, and when they were read, at the last row.
    cpu: Option<(std::time::Instant, f64)>,
    drift: Option<DriftWindows>,
    /// Each row keeps its second's histograms.
    keep_histograms: bool,
}

fn empty_interval() -> Interval {
    Interval::default()
}

impl Timeline {
    /// `drift_window_s`: keep first and last windows of this many seconds (endurance runs).
    /// `block_s`: seconds per block of the succeeded iterations' histograms (see [`block_seconds`]).
    pub fn new(drift_window_s: Option<u64>, block_s: u64) -> Self {
        Self {
            rows: Vec::new(),
            blocks: Blocks {
                block_s: block_s.max(1),
                current: new_histogram(),
                done: Vec::new(),
            },
            scratch: empty_interval(),
            cumulative: new_histogram(),
            counts: (0, 0, 0),
            cpu: super::cpu::process_seconds().map(|s| (std::time::Instant::now(), s)),
            drift: drift_window_s.map(|w| DriftWindows {
                window_s: w.max(1),
                first: empty_interval(),
                recent: VecDeque::new(),
            }),
            keep_histograms: false,
        }
    }

    /// A timeline whose rows keep their seconds' histograms (a shard's, for `merge`).
    pub fn with_histograms(mut self) -> Self {
        self.keep_histograms = true;
        self
    }

    /// The last row covers only `span_s` of its second (the load ended within it).
    pub fn last_covers(&mut self, span_s: f64) {
        if let Some(row) = self.rows.last_mut()
            && span_s > 0.0
            && span_s < 1.0
        {
            row.span_s = Some(span_s);
        }
    }

    /// Takes every worker's current-second data and appends the row for second `t_s`.
    pub fn tick(&mut self, recorders: &[Arc<Mutex<Recorder>>], t_s: u64) -> &TimelineRow {
        self.tick_with_slice(recorders, t_s).1
    }

    /// Takes what the recorders measured since the last call into the current second, and returns
    /// it: the slice the journal writes.
    pub fn gather(&mut self, recorders: &[Arc<Mutex<Recorder>>]) -> Interval {
        let mut slice = Interval::default();
        for r in recorders {
            // A worker that panicked mid-record leaves consistent counters; keep its data.
            let mut r = r.lock().unwrap_or_else(|p| p.into_inner());
            r.take_interval(&mut slice);
        }
        self.scratch.absorb(&slice);
        slice
    }

    /// As [`Timeline::tick`], returning also the slice gathered since the last [`Timeline::gather`].
    pub fn tick_with_slice(
        &mut self,
        recorders: &[Arc<Mutex<Recorder>>],
        t_s: u64,
    ) -> (Interval, &TimelineRow) {
        let slice = self.gather(recorders);
        let harness_cpu = self.cpu_share();
        let all = self.scratch.latency.all();
        let ok = self.scratch.latency.ok();
        let q = |h: &Hist, p: f64| (!h.is_empty()).then(|| h.value_at_quantile(p) as f64 / 1000.0);
        self.rows.push(TimelineRow {
            t_s,
            succeeded: self.scratch.succeeded,
            failed: self.scratch.failed,
            p50_ms: q(&all, 0.50),
            p95_ms: q(&all, 0.95),
            p99_ms: q(&all, 0.99),
            max_ms: (!all.is_empty()).then(|| all.max() as f64 / 1000.0),
            ok_p50_ms: q(ok, 0.50),
            ok_p95_ms: q(ok, 0.95),
            ok_p99_ms: q(ok, 0.99),
            late: self.scratch.late,
            behind_schedule: behind_schedule(
                self.scratch.late,
                self.scratch.succeeded + self.scratch.failed,
            ),
            harness_cpu,
            hdr: (self.keep_histograms && !all.is_empty()).then(|| encode(&all)),
            ok_hdr: (self.keep_histograms && !ok.is_empty()).then(|| encode(ok)),
            span_s: None,
        });
        merge(&mut self.cumulative, ok);
        merge(&mut self.blocks.current, ok);
        if (t_s + 1).is_multiple_of(self.blocks.block_s) {
            self.blocks.done.push(encode(&self.blocks.current));
            self.blocks.current.reset();
        }
        self.counts.0 += self.scratch.succeeded + self.scratch.failed;
        self.counts.1 += self.scratch.failed;
        self.counts.2 += self.scratch.late;
        if let Some(d) = &mut self.drift {
            if t_s < d.window_s {
                add_interval(&mut d.first, &self.scratch);
            }
            d.recent.push_back(self.scratch.clone());
            while d.recent.len() as u64 > d.window_s {
                d.recent.pop_front();
            }
        }
        self.scratch.reset();
        (slice, self.rows.last().expect("a row was just pushed"))
    }

    /// The share of the cores used since the last row (and the reading for the next).
    fn cpu_share(&mut self) -> Option<f64> {
        let now = (std::time::Instant::now(), super::cpu::process_seconds()?);
        let (at, used) = self.cpu.replace(now)?;
        let wall = now.0.saturating_duration_since(at).as_secs_f64();
        (wall > 0.0).then(|| ((now.1 - used) / wall / super::cpu::cores()).clamp(0.0, 1.0))
    }

    /// Seconds per block, and every block so far (the one under way included, when it has data).
    pub fn blocks(&self) -> (u64, Vec<String>) {
        let mut all = self.blocks.done.clone();
        if !self.blocks.current.is_empty() {
            all.push(encode(&self.blocks.current));
        }
        (self.blocks.block_s, all)
    }

    pub fn rows(&self) -> &[TimelineRow] {
        &self.rows
    }

    pub fn into_rows(self) -> Vec<TimelineRow> {
        self.rows
    }

    /// Completed, failed and late iterations up to the last row.
    pub fn counts(&self) -> (u64, u64, u64) {
        self.counts
    }

    /// p95 of the iterations that succeeded so far, in milliseconds.
    pub fn running_p95(&self) -> Option<f64> {
        (!self.cumulative.is_empty())
            .then(|| self.cumulative.value_at_quantile(0.95) as f64 / 1000.0)
    }

    /// Drift between the first and last windows; `None` unless windows were kept, or when the run was
    /// too short to have two distinct windows.
    pub fn drift(&self) -> Option<Drift> {
        let d = self.drift.as_ref()?;
        if (self.rows.len() as u64) < 2 * d.window_s {
            return None;
        }
        let mut last = empty_interval();
        for i in &d.recent {
            add_interval(&mut last, i);
        }
        Some(Drift::between(
            d.window_s,
            window_stats(&d.first),
            window_stats(&last),
        ))
    }
}

impl Drift {
    /// The drift from the `first` window of `window_s` seconds to the `last`.
    pub fn between(window_s: u64, first: WindowStats, last: WindowStats) -> Self {
        Drift {
            window_s,
            p95_ratio: match (first.p95_ms, last.p95_ms) {
                (Some(a), Some(b)) if a > 0.0 => Some(b / a),
                _ => None,
            },
            p95_change_ms: match (first.p95_ms, last.p95_ms) {
                (Some(a), Some(b)) => Some(b - a),
                _ => None,
            },
            error_rate_change: match (first.error_rate, last.error_rate) {
                (Some(a), Some(b)) => Some(b - a),
                _ => None,
            },
            first,
            last,
        }
    }
}

fn add_interval(into: &mut Interval, from: &Interval) {
    into.latency.absorb(&from.latency);
    into.succeeded += from.succeeded;
    into.failed += from.failed;
}

fn window_stats(i: &Interval) -> WindowStats {
    let n = i.succeeded + i.failed;
    WindowStats {
        iterations: n,
        // Of succeeded iterations: refusals during an outage would make the window look fast.
        p95_ms: (!i.latency.ok().is_empty())
            .then(|| i.latency.ok().value_at_quantile(0.95) as f64 / 1000.0),
        error_rate: (n > 0).then(|| i.failed as f64 / n as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iteration::{Failure, IterationReport};
    use crate::metrics::recorder::Timing;
    use crate::taxonomy::ErrorKind;
    use std::time::{Duration, Instant};

    fn run_second(rec: &Arc<Mutex<Recorder>>, latency_ms: u64, ok: u64, failed: u64) {
        let t0 = Instant::now();
        let timing = Timing {
            intended: t0,
            started: t0,
            finished: t0 + Duration::from_millis(latency_ms),
            late: false,
            stage: 0,
        };
        let mut r = rec.lock().unwrap();
        for _ in 0..ok {
            r.record(&timing, &IterationReport::succeeded());
        }
        for _ in 0..failed {
            r.record(
                &timing,
                &IterationReport::failed(Failure {
                    kind: ErrorKind::Http5xx,
                    rule: None,
                    step: None,
                    detail: "500".into(),
                }),
            );
        }
    }

    #[test]
    fn one_row_per_second_with_percentiles_only_when_something_completed() {
        let rec = Arc::new(Mutex::new(Recorder::new(0, 0, 0)));
        let mut tl = Timeline::new(None, 1);
        run_second(&rec, 10, 5, 1);
        let row = tl.tick(std::slice::from_ref(&rec), 0).clone();
        assert_eq!((row.t_s, row.succeeded, row.failed), (0, 5, 1));
        assert!((row.p50_ms.unwrap() - 10.0).abs() < 0.1);
        let quiet = tl.tick(std::slice::from_ref(&rec), 1).clone();
        assert_eq!((quiet.succeeded, quiet.failed, quiet.p50_ms), (0, 0, None));
        assert_eq!(tl.rows().len(), 2);
    }

    #[test]
    fn drift_compares_the_last_window_with_the_first() {
        let rec = Arc::new(Mutex::new(Recorder::new(0, 0, 0)));
        let mut tl = Timeline::new(Some(2), 1);
        for (t, (ms, ok, failed)) in [
            (10, 10, 0),
            (10, 10, 0),
            (15, 10, 0),
            (20, 9, 1),
            (20, 8, 2),
        ]
        .into_iter()
        .enumerate()
        {
            run_second(&rec, ms, ok, failed);
            tl.tick(std::slice::from_ref(&rec), t as u64);
        }
        let d = tl.drift().unwrap();
        assert_eq!(d.window_s, 2);
        assert_eq!(d.first.iterations, 20);
        assert_eq!(d.last.iterations, 20);
        assert!((d.p95_ratio.unwrap() - 2.0).abs() < 0.01, "{d:?}");
        assert!((d.error_rate_change.unwrap() - 0.15).abs() < 1e-9, "{d:?}");
        assert!(
            Timeline::new(Some(10), 1).drift().is_none(),
            "too short for two windows"
        );
    }
}
