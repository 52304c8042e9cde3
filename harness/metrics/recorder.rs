//! What a share of the workers has measured. Workers record into a few [`Recorder`]s per runtime
//! thread, each behind its own mutex (so recording seldom contends, and memory does not grow with
//! concurrency); at the end, recorders merge by addition into the run's totals. Nothing here grows
//! with the number of iterations: histograms grow with the range of values, error samples are capped,
//! and the per-second timeline lives elsewhere ([`super::timeline`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::connections::ConnectionStats;
use super::histogram::{Hist, merge, new_histogram, record, record_millis};
use super::split::Split;
use crate::iteration::{IterationReport, Outcome};
use crate::taxonomy::ErrorKind;

/// Distinct example messages kept per error key.
pub const ERROR_SAMPLES: usize = 3;
/// Longest example message kept, in characters.
const SAMPLE_CHARS: usize = 300;

/// Iteration counts, the `totals` of `result.json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Iterations that ran to an outcome.
    pub iterations: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Failed iterations whose failure was a timeout.
    pub timed_out: u64,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.iterations += o.iterations;
        self.succeeded += o.succeeded;
        self.failed += o.failed;
        self.timed_out += o.timed_out;
    }

    pub fn success_rate(&self) -> Option<f64> {
        (self.iterations > 0).then(|| self.succeeded as f64 / self.iterations as f64)
    }
}

/// How often one kind of error happened, with a few of its messages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErrorCount {
    pub count: u64,
    pub samples: Vec<String>,
}

impl ErrorCount {
    fn note(&mut self, detail: &str) {
        self.count += 1;
        self.keep(detail);
    }

    fn keep(&mut self, detail: &str) {
        if self.samples.len() < ERROR_SAMPLES && !self.samples.iter().any(|s| s == detail) {
            let clipped: String = detail.chars().take(SAMPLE_CHARS).collect();
            self.samples.push(clipped);
        }
    }

    fn add(&mut self, o: &ErrorCount) {
        self.count += o.count;
        for s in &o.samples {
            self.keep(s);
        }
    }
}

/// Rollbacks attempted and verified, overall and by the step whose failure triggered them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollbackStats {
    /// Failures that called for no rollback: what took effect lies behind an irreversible step.
    pub withheld: u64,
    pub attempted: u64,
    pub succeeded: u64,
    /// `(attempted, succeeded)` per procedure step.
    pub by_step: Vec<(u64, u64)>,
    pub failure_samples: Vec<String>,
}

/// What retries cost: how many, of which failures, and the time spent waiting for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryStats {
    /// Iterations that retried anything.
    pub iterations: u64,
    /// Attempts beyond the first.
    pub retries: u64,
    /// The failures retried, by error kind.
    pub by_kind: BTreeMap<String, u64>,
    pub waited: Duration,
    pub honoured_retry_after: u64,
    pub beyond_cap: u64,
    pub over_budget: u64,
}

impl RetryStats {
    fn record(&mut self, t: &crate::iteration::RetryTrace) {
        if t.retried.is_empty() && t.beyond_cap == 0 && t.over_budget == 0 {
            return;
        }
        self.iterations += u64::from(!t.retried.is_empty());
        self.retries += t.retried.len() as u64;
        for kind in &t.retried {
            *self.by_kind.entry(kind.as_str().to_string()).or_default() += 1;
        }
        self.waited += t.waited;
        self.honoured_retry_after += u64::from(t.honoured_retry_after);
        self.beyond_cap += u64::from(t.beyond_cap);
        self.over_budget += u64::from(t.over_budget);
    }

    fn absorb(&mut self, o: &RetryStats) {
        self.iterations += o.iterations;
        self.retries += o.retries;
        for (k, v) in &o.by_kind {
            *self.by_kind.entry(k.clone()).or_default() += v;
        }
        self.waited += o.waited;
        self.honoured_retry_after += o.honoured_retry_after;
        self.beyond_cap += o.beyond_cap;
        self.over_budget += o.over_budget;
    }
}

/// What happened during one stage of a stepped load.
#[derive(Debug, Clone)]
pub struct StageStats {
    pub latency: Split,
    pub service: Hist,
    pub totals: Totals,
    pub late: u64,
    pub errors: BTreeMap<String, u64>,
    /// When its last iteration actually started: a generator that fell behind starts the stage's
    /// iterations after the stage's own time is over.
    pub last_start: Option<Instant>,
}

impl StageStats {
    fn new() -> Self {
        Self {
            latency: Split::default(),
            service: new_histogram(),
            totals: Totals::default(),
            late: 0,
            errors: BTreeMap::new(),
            last_start: None,
        }
    }
}

/// Data of the current second, which the timeline takes and resets once a second (and the journal,
/// in the slices it writes between).
#[derive(Debug, Clone, Default)]
pub struct Interval {
    pub latency: Split,
    pub succeeded: u64,
    pub failed: u64,
    pub late: u64,
    /// Failed iterations by error key (`http_5xx`, `timeout`, …), as `errors` counts them.
    pub errors: BTreeMap<String, u64>,
}

impl Interval {
    /// Adds `o` into this one.
    pub fn absorb(&mut self, o: &Interval) {
        self.latency.absorb(&o.latency);
        self.succeeded += o.succeeded;
        self.failed += o.failed;
        self.late += o.late;
        for (k, n) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += n;
        }
    }

    pub fn reset(&mut self) {
        self.latency.reset();
        self.succeeded = 0;
        self.failed = 0;
        self.late = 0;
        self.errors.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.succeeded == 0 && self.failed == 0 && self.late == 0
    }
}

/// When an iteration ran, as the executor saw it.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The schedule's start time for it (equal to `started` in a closed load).
    pub intended: Instant,
    pub started: Instant,
    pub finished: Instant,
    /// Whether it started later than the schedule allows.
    pub late: bool,
    /// Stage of a stepped load (0 otherwise).
    pub stage: usize,
}

#[derive(Debug, Clone)]
pub struct Recorder {
    pub totals: Totals,
    /// From the intended start: what a user waiting on the schedule experienced; succeeded and
    /// failed iterations apart.
    pub latency: Split,
    /// From the actual start: the service time alone.
    pub service: Hist,
    pub late: u64,
    /// Each step's time, by whether the step succeeded.
    pub steps: Vec<Split>,
    pub recorded: Vec<Hist>,
    pub errors: BTreeMap<String, ErrorCount>,
    pub warnings: BTreeMap<String, u64>,
    pub rollback: RollbackStats,
    pub retries: RetryStats,
    pub stages: Vec<StageStats>,
    pub interval: Interval,
    /// Whether service time differs from latency (open and stepped loads); in a closed load they
    /// are the same, and recording both would be work for nothing.
    track_service: bool,
    /// Acknowledged operations, kept only when the run checks invariants, and at most
    /// [`MAX_HISTORY`] per recorder.
    pub history: Vec<crate::invariants::Ack>,
    keep_history: bool,
    /// Writes to collections, kept only when the run reads them back, at most [`MAX_HISTORY`] per
    /// recorder.
    pub writes: Vec<crate::history::Write>,
    keep_writes: bool,
    /// What WebSocket connections did (absent until something is recorded).
    pub connections: Option<Box<ConnectionStats>>,
}

/// Most acknowledged operations one recorder keeps for the invariant check.
pub const MAX_HISTORY: usize = 250_000;

impl Recorder {
    /// A recorder for a procedure of `steps` steps, `recorded` recorded metrics and `stages` stages.
    pub fn new(steps: usize, recorded: usize, stages: usize) -> Self {
        Self {
            totals: Totals::default(),
            latency: Split::default(),
            service: new_histogram(),
            late: 0,
            steps: (0..steps).map(|_| Split::default()).collect(),
            recorded: (0..recorded).map(|_| new_histogram()).collect(),
            errors: BTreeMap::new(),
            warnings: BTreeMap::new(),
            rollback: RollbackStats {
                by_step: vec![(0, 0); steps],
                ..RollbackStats::default()
            },
            retries: RetryStats::default(),
            stages: (0..stages).map(|_| StageStats::new()).collect(),
            interval: Interval::default(),
            track_service: true,
            history: Vec::new(),
            keep_history: false,
            writes: Vec::new(),
            keep_writes: false,
            connections: None,
        }
    }

    /// The connection statistics, to record into.
    pub fn connections(&mut self) -> &mut ConnectionStats {
        self.connections.get_or_insert_with(Box::default)
    }

    /// A recorder that keeps the writes to collections (runs that read them back).
    pub fn with_writes(mut self) -> Self {
        self.keep_writes = true;
        self
    }

    /// A recorder that keeps the history of acknowledged operations (concurrency runs).
    pub fn with_history(mut self) -> Self {
        self.keep_history = true;
        self
    }

    /// A recorder that does not keep service time apart from latency (closed loads).
    pub fn without_service_time(mut self) -> Self {
        self.track_service = false;
        self
    }

    /// Records one finished iteration.
    pub fn record(&mut self, timing: &Timing, report: &IterationReport) {
        let latency = timing.finished.saturating_duration_since(timing.intended);
        let service = timing.finished.saturating_duration_since(timing.started);
        let failure = report.failure();
        let totals = Totals {
            iterations: 1,
            succeeded: u64::from(failure.is_none()),
            failed: u64::from(failure.is_some()),
            timed_out: u64::from(failure.is_some_and(|f| f.kind == ErrorKind::Timeout)),
        };
        self.totals.add(&totals);
        let kind = failure.map(|f| f.kind.as_str());
        self.latency.record(latency, kind);
        if self.track_service {
            record(&mut self.service, service);
        }
        self.interval.latency.record(latency, kind);
        self.interval.succeeded += totals.succeeded;
        self.interval.failed += totals.failed;
        self.interval.late += u64::from(timing.late);
        self.late += u64::from(timing.late);
        if let Some(stage) = self.stages.get_mut(timing.stage) {
            stage.totals.add(&totals);
            stage.last_start = stage.last_start.max(Some(timing.started));
            stage.latency.record(latency, kind);
            record(&mut stage.service, service);
            stage.late += u64::from(timing.late);
            if let Some(f) = failure {
                *stage.errors.entry(f.key()).or_default() += 1;
            }
        }
        if let Outcome::Failed(f) = &report.outcome {
            *self.interval.errors.entry(f.key()).or_default() += 1;
            let detail = match &f.step {
                Some(step) => format!("{step}: {}", f.detail),
                None => f.detail.clone(),
            };
            self.errors.entry(f.key()).or_default().note(&detail);
        }
        for s in &report.steps {
            if let Some(h) = self.steps.get_mut(s.step) {
                h.record(s.latency, (!s.ok).then_some("step"));
            }
        }
        for r in &report.recorded {
            if let Some(h) = self.recorded.get_mut(r.metric) {
                record_millis(h, r.millis);
            }
        }
        if self.keep_writes {
            let room = MAX_HISTORY.saturating_sub(self.writes.len());
            self.writes.extend(report.writes.iter().take(room).cloned());
        }
        if self.keep_history {
            let room = MAX_HISTORY.saturating_sub(self.history.len());
            self.history.extend(report.acks.iter().take(room).cloned());
        }
        for w in &report.warnings {
            *self.warnings.entry(w.clone()).or_default() += 1;
        }
        self.retries.record(&report.retries);
        self.rollback.withheld += u64::from(report.rollback_withheld);
        if let Some(rb) = &report.rollback {
            self.rollback.attempted += 1;
            self.rollback.succeeded += u64::from(rb.verified);
            if let Some(by) = self.rollback.by_step.get_mut(rb.failed_step) {
                by.0 += 1;
                by.1 += u64::from(rb.verified);
            }
            if let Some(d) = rb.detail.as_deref().filter(|_| !rb.verified)
                && self.rollback.failure_samples.len() < ERROR_SAMPLES
            {
                self.rollback
                    .failure_samples
                    .push(d.chars().take(SAMPLE_CHARS).collect());
            }
        }
    }

    /// Moves the current second's data out, leaving it empty.
    pub fn take_interval(&mut self, into: &mut Interval) {
        into.absorb(&self.interval);
        self.interval.reset();
    }

    /// Adds another recorder's measurements into this one (the current-second data excepted).
    pub fn absorb(&mut self, o: &Recorder) {
        self.totals.add(&o.totals);
        if let Some(c) = &o.connections {
            self.connections().absorb(c);
        }
        self.history.extend(o.history.iter().cloned());
        self.writes.extend(o.writes.iter().cloned());
        self.latency.absorb(&o.latency);
        merge(&mut self.service, &o.service);
        self.late += o.late;
        for (a, b) in self.steps.iter_mut().zip(&o.steps) {
            a.absorb(b);
        }
        for (a, b) in self.recorded.iter_mut().zip(&o.recorded) {
            merge(a, b);
        }
        for (k, v) in &o.errors {
            self.errors.entry(k.clone()).or_default().add(v);
        }
        for (k, v) in &o.warnings {
            *self.warnings.entry(k.clone()).or_default() += v;
        }
        self.retries.absorb(&o.retries);
        self.rollback.withheld += o.rollback.withheld;
        self.rollback.attempted += o.rollback.attempted;
        self.rollback.succeeded += o.rollback.succeeded;
        for (a, b) in self.rollback.by_step.iter_mut().zip(&o.rollback.by_step) {
            a.0 += b.0;
            a.1 += b.1;
        }
        for s in &o.rollback.failure_samples {
            if self.rollback.failure_samples.len() < ERROR_SAMPLES
                && !self.rollback.failure_samples.contains(s)
            {
                self.rollback.failure_samples.push(s.clone());
            }
        }
        for (a, b) in self.stages.iter_mut().zip(&o.stages) {
            a.totals.add(&b.totals);
            a.latency.absorb(&b.latency);
            merge(&mut a.service, &b.service);
            a.late += b.late;
            a.last_start = a.last_start.max(b.last_start);
            for (k, v) in &b.errors {
                *a.errors.entry(k.clone()).or_default() += v;
            }
        }
    }
}

/// Elapsed time as seconds since `start`, for timeline rows.
pub fn seconds_since(start: Instant, at: Instant) -> u64 {
    at.saturating_duration_since(start).as_secs()
}

/// `d` in milliseconds.
pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iteration::{Failure, RollbackOutcome, StepSample};

    fn timing(intended_ms: u64, started_ms: u64, finished_ms: u64) -> Timing {
        let t0 = Instant::now();
        Timing {
            intended: t0 + Duration::from_millis(intended_ms),
            started: t0 + Duration::from_millis(started_ms),
            finished: t0 + Duration::from_millis(finished_ms),
            late: started_ms > intended_ms,
            stage: 0,
        }
    }

    fn failed(kind: ErrorKind, rule: Option<&str>, detail: &str) -> IterationReport {
        IterationReport::failed(Failure {
            kind,
            rule: rule.map(str::to_string),
            step: Some("s1".into()),
            detail: detail.into(),
        })
    }

    #[test]
    fn latency_counts_from_the_intended_start_and_service_time_from_the_actual_one() {
        let mut r = Recorder::new(1, 0, 0);
        r.record(&timing(0, 900, 1000), &IterationReport::succeeded());
        assert_eq!(r.latency.all().max() / 1000, 1000);
        assert_eq!(r.service.max() / 1000, 100);
        assert_eq!(r.late, 1);
    }

    #[test]
    fn errors_are_counted_by_kind_and_rule_with_a_few_samples() {
        let mut r = Recorder::new(2, 0, 0);
        for i in 0..10 {
            r.record(
                &timing(0, 0, 5),
                &failed(ErrorKind::Http5xx, None, &format!("500: boom {}", i % 5)),
            );
        }
        r.record(
            &timing(0, 0, 5),
            &failed(ErrorKind::Validation, Some("VR001"), "phase not complete"),
        );
        r.record(
            &timing(0, 0, 5),
            &failed(ErrorKind::Timeout, None, "no answer in 2s"),
        );
        assert_eq!(
            r.totals,
            Totals {
                iterations: 12,
                succeeded: 0,
                failed: 12,
                timed_out: 1
            }
        );
        assert_eq!(r.errors["http_5xx"].count, 10);
        assert_eq!(r.errors["http_5xx"].samples.len(), ERROR_SAMPLES);
        assert_eq!(r.errors["validation.VR001"].count, 1);
        assert_eq!(
            r.errors["validation.VR001"].samples,
            ["s1: phase not complete"]
        );
    }

    #[test]
    fn recorders_merge_by_addition() {
        let mut a = Recorder::new(2, 0, 2);
        let mut b = Recorder::new(2, 0, 2);
        let mut ok = IterationReport::succeeded();
        ok.steps.push(StepSample {
            step: 1,
            latency: Duration::from_millis(3),
            ok: true,
        });
        a.record(&timing(0, 0, 10), &ok);
        let mut rb = failed(ErrorKind::Validation, Some("VR002"), "owner is a");
        rb.rollback = Some(RollbackOutcome {
            failed_step: 1,
            verified: false,
            detail: Some("owner still b".into()),
        });
        b.record(
            &Timing {
                stage: 1,
                ..timing(0, 0, 20)
            },
            &rb,
        );
        a.absorb(&b);
        assert_eq!(a.totals.iterations, 2);
        assert_eq!(a.latency.all().len(), 2);
        assert_eq!(a.steps[1].all().len(), 1);
        assert_eq!(a.rollback.attempted, 1);
        assert_eq!(a.rollback.succeeded, 0);
        assert_eq!(a.rollback.by_step[1], (1, 0));
        assert_eq!(a.stages[0].totals.succeeded, 1);
        assert_eq!(a.stages[1].totals.failed, 1);
        assert_eq!(a.rollback.failure_samples, ["owner still b"]);
    }

    #[test]
    fn taking_the_interval_empties_it() {
        let mut r = Recorder::new(0, 0, 0);
        r.record(&timing(0, 0, 7), &IterationReport::succeeded());
        let mut into = Interval::default();
        r.take_interval(&mut into);
        assert_eq!((into.succeeded, into.latency.all().len()), (1, 1));
        assert_eq!(
            (r.interval.succeeded, r.interval.latency.all().len()),
            (0, 0)
        );
        assert_eq!(r.latency.all().len(), 1, "the run's totals keep it");
    }
}
