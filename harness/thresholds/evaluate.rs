//! Judging thresholds against what a run measured. A result's metrics are flattened once into values
//! by threshold name (`latency.p95`, `errors.timeout`, `rollback.success_rate`, …); each threshold
//! is then looked up and compared.
//!
//! Missing data never passes silently: a threshold on a metric the run produced no value for fails,
//! with a note saying so. The one exception is a rate over rollbacks when no rollback was needed,
//! which passes with a note (nothing failed, so nothing had to be undone).
//!
//! A percentile the run had too few samples to report is known only to lie between the smallest and
//! the largest sample. Its threshold passes when every value in that range would meet it (`p99 < 2s`
//! with a max of 40 ms), with a note; otherwise it fails, saying how many iterations it needs.

use std::collections::BTreeMap;

use super::catalogue::CATALOGUE;
use super::{Condition, MetricKind, Threshold};
use crate::result::{RunResult, StageResult, Verdict};

/// Metric values by threshold name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Values(BTreeMap<String, f64>, BTreeMap<String, Bound>);

/// What is known of a percentile the samples were too few to report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub min: f64,
    pub max: f64,
    pub samples: u64,
    /// Samples it would need.
    pub needed: u64,
}

impl Values {
    pub fn get(&self, name: &str) -> Option<f64> {
        if let Some(v) = self.0.get(name) {
            return Some(*v);
        }
        // No error of a kind is a measured zero, not missing data.
        if name.starts_with("errors.") || name == "warnings" {
            return Some(0.0);
        }
        None
    }

    pub fn set(&mut self, name: impl Into<String>, value: f64) {
        self.0.insert(name.into(), value);
    }

    /// Notes that `name` is a percentile too few samples support, and what they bound it by.
    pub fn bound(&mut self, name: impl Into<String>, bound: Bound) {
        self.1.insert(name.into(), bound);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &f64)> {
        self.0.iter()
    }

    /// Everything a whole run produced, each metric read as the catalogue says.
    pub fn of_result(r: &RunResult) -> Self {
        let mut v = Values::default();
        for m in CATALOGUE {
            (m.read)(r, &mut v);
        }
        v
    }

    /// What one stage of a stepped load produced, for the metrics a stage can be judged on.
    pub fn of_stage(s: &StageResult) -> Self {
        let mut v = Values::default();
        for read in CATALOGUE.iter().filter_map(|m| m.stage) {
            read(s, &mut v);
        }
        v
    }
}

/// Judges each threshold against `values`.
pub fn judge(thresholds: &[Threshold], values: &Values) -> Vec<Verdict> {
    thresholds.iter().map(|t| judge_one(t, values)).collect()
}

/// Judges one threshold.
pub fn judge_one(t: &Threshold, values: &Values) -> Verdict {
    let condition = t.condition.to_string();
    match values.get(&t.metric) {
        Some(actual) => Verdict {
            metric: t.metric.clone(),
            kind: t.kind.as_str().into(),
            condition,
            actual: Some(actual),
            passed: t.condition.holds(actual),
            note: None,
            samples_range: None,
        },
        None if values.1.contains_key(&t.metric) => {
            let b = values.1[&t.metric];
            let stat = t.metric.rsplit('.').next().unwrap_or_default();
            let too_few = format!(
                "{} samples are too few for a {stat} (it needs {})",
                b.samples, b.needed
            );
            let holds = t.condition.holds_throughout(b.min, b.max);
            let misses = t.condition.misses_throughout(b.min, b.max);
            let (lo, hi) = (
                crate::result::format_value("duration", b.min),
                crate::result::format_value("duration", b.max),
            );
            Verdict {
                metric: t.metric.clone(),
                kind: t.kind.as_str().into(),
                condition,
                actual: None,
                passed: holds,
                note: Some(if holds {
                    format!("{too_few}; passed because every sample, {lo} to {hi}, meets it")
                } else if misses {
                    format!("{too_few}; failed because no sample, {lo} to {hi}, meets it")
                } else {
                    format!(
                        "{too_few}, and the samples, {lo} to {hi}, do not settle it: run at \
                         least {} iterations",
                        b.needed
                    )
                }),
                samples_range: Some([b.min, b.max]),
            }
        }
        None if t.metric == "rollback.success_rate"
            && values.get("rollback.attempted") == Some(0.0) =>
        {
            Verdict {
                metric: t.metric.clone(),
                kind: t.kind.as_str().into(),
                condition,
                actual: None,
                passed: true,
                note: Some("no rollback was attempted, so none failed".into()),
                samples_range: None,
            }
        }
        None => Verdict {
            metric: t.metric.clone(),
            kind: t.kind.as_str().into(),
            condition,
            actual: None,
            passed: false,
            note: Some(no_data(&t.metric, values)),
            samples_range: None,
        },
    }
}

fn no_data(metric: &str, values: &Values) -> String {
    if values.get("iterations") == Some(0.0) {
        return "no iteration completed, so there is nothing to judge".into();
    }
    if metric == "breaking_point.rate" {
        return "even the first stage missed the thresholds, so there is no breaking point".into();
    }
    if metric.starts_with("drift.") {
        return "the run was too short to compare a first and a last window".into();
    }
    "the run produced no value for this metric".into()
}

/// Judges a result's thresholds again on its figures as they now stand (recovered from a journal,
/// merged from shards). A threshold whose condition cannot be read back keeps its verdict; a
/// verdict's note (a built-in threshold's) is kept.
pub fn rejudge(r: &mut RunResult) {
    let values = Values::of_result(r);
    r.thresholds = r.thresholds.iter().map(|v| rejudged(v, &values)).collect();
}

/// A verdict judged again on `values`: kept as it was when its condition cannot be read back, and
/// keeping its note (a built-in threshold's) when the new one has none.
pub fn rejudged(v: &Verdict, values: &Values) -> Verdict {
    let threshold = MetricKind::parse(&v.kind).and_then(|kind| {
        Some(Threshold {
            metric: v.metric.clone(),
            kind,
            condition: Condition::parse(&v.condition, kind).ok()?,
        })
    });
    match threshold {
        Some(t) => {
            let mut new = judge_one(&t, values);
            if new.note.is_none() {
                new.note = v.note.clone();
            }
            new
        }
        None => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::LoadModel;
    use crate::result::{
        HistogramInfo, LoadInfo, Metrics, ResultTotals, RollbackMetrics, Shard, Status, TargetInfo,
    };
    use crate::thresholds::{Condition, MetricKind};

    /// The values of a result with these totals and metrics.
    fn of_run(totals: &ResultTotals, metrics: &Metrics) -> Values {
        Values::of_result(&RunResult {
            schema_version: 1,
            scenario: "s".into(),
            description: String::new(),
            suite: "reliability".into(),
            seed: 1,
            seed_text: "1".into(),
            run_id: "r".into(),
            status: Status::Passed,
            reason: None,
            started_at: String::new(),
            finished_at: String::new(),
            duration_s: 1.0,
            load_started_at: None,
            shard: Shard { index: 0, count: 1 },
            merged_from: None,
            target: TargetInfo {
                kind: "http".into(),
                url: "http://127.0.0.1:1/".into(),
                embedded: None,
                procedure: None,
                tls: None,
                http_version: None,
                http_protocols: Default::default(),
                websocket: None,
            },
            load: LoadInfo {
                model: LoadModel::Closed,
                planned_iterations: totals.iterations,
                concurrency: 1,
                iteration_timeout_ms: 1000.0,
                timeout_ms: 1000.0,
                rate_per_s: None,
                stages: Vec::new(),
                faults: None,
            },
            totals: *totals,
            metrics: metrics.clone(),
            timeline: Vec::new(),
            thresholds: Vec::new(),
            checks: Vec::new(),
            caveats: Vec::new(),
            notes: Vec::new(),
            histograms: HistogramInfo::default(),
            environment: None,
        })
    }

    fn threshold(metric: &str, kind: MetricKind, cond: &str) -> Threshold {
        Threshold {
            metric: metric.into(),
            kind,
            condition: Condition::parse(cond, kind).unwrap(),
        }
    }

    fn totals(ok: u64, failed: u64) -> ResultTotals {
        ResultTotals {
            iterations: ok + failed,
            succeeded: ok,
            failed,
            timed_out: 0,
            not_started: 0,
            abandoned: 0,
        }
    }

    #[test]
    fn verdicts_carry_the_actual_value() {
        let mut m = Metrics::default();
        m.errors.insert("validation.VR001".into(), 2);
        let v = of_run(&totals(98, 2), &m);
        let verdicts = judge(
            &[
                threshold("success_rate", MetricKind::Ratio, ">= 0.99"),
                threshold("errors.timeout", MetricKind::Count, "== 0"),
                threshold("errors.validation", MetricKind::Count, "<= 2"),
            ],
            &v,
        );
        assert_eq!(
            (verdicts[0].actual, verdicts[0].passed),
            (Some(0.98), false)
        );
        assert_eq!(
            (verdicts[1].actual, verdicts[1].passed),
            (Some(0.0), true),
            "no timeouts is a measured zero"
        );
        assert_eq!((verdicts[2].actual, verdicts[2].passed), (Some(2.0), true));
    }

    #[test]
    fn missing_data_fails_except_rollbacks_nobody_needed() {
        let mut m = Metrics::default();
        let v = of_run(&totals(10, 0), &m);
        let p95 = judge_one(&threshold("latency.p95", MetricKind::Duration, "< 1s"), &v);
        assert!(!p95.passed);
        assert_eq!(
            p95.note.as_deref(),
            Some("the run produced no value for this metric")
        );

        m.rollback = Some(RollbackMetrics {
            withheld_irreversible: 0,
            attempted: 0,
            succeeded: 0,
            success_rate: None,
            by_step: Default::default(),
            failures: vec![],
        });
        let v = of_run(&totals(10, 0), &m);
        let rb = judge_one(
            &threshold("rollback.success_rate", MetricKind::Ratio, ">= 0.9"),
            &v,
        );
        assert!(rb.passed);
        assert_eq!(rb.actual, None);

        let v = of_run(&totals(0, 0), &Metrics::default());
        let sr = judge_one(&threshold("success_rate", MetricKind::Ratio, ">= 0.9"), &v);
        assert!(!sr.passed);
        assert!(sr.note.unwrap().contains("no iteration completed"));
    }

    #[test]
    fn a_percentile_too_few_samples_support_is_judged_on_their_range() {
        let mut h = crate::metrics::histogram::new_histogram();
        for ms in 1..=100 {
            crate::metrics::histogram::record(&mut h, std::time::Duration::from_millis(ms));
        }
        let m = Metrics {
            latency_ok_ms: crate::metrics::LatencySummary::of(&h),
            ..Metrics::default()
        };
        assert_eq!(
            m.latency_ok_ms.as_ref().unwrap().p999,
            None,
            "100 samples report no p99.9"
        );
        let v = of_run(&totals(100, 0), &m);
        let loose = judge_one(
            &threshold("latency_ok.p99", MetricKind::Duration, "< 2s"),
            &v,
        );
        assert!(loose.passed && loose.actual.is_none());
        assert_eq!(
            loose.note.as_deref(),
            Some(
                "100 samples are too few for a p99 (it needs 1000); passed because every \
                 sample, 1.00ms to 100.0ms, meets it"
            )
        );
        let tight = judge_one(
            &threshold("latency_ok.p99", MetricKind::Duration, "< 50ms"),
            &v,
        );
        assert!(!tight.passed);
        assert!(
            tight
                .note
                .as_deref()
                .unwrap()
                .contains("do not settle it: run at least 1000 iterations")
        );
        assert_eq!(tight.actual_text(), "between 1.00ms and 100.0ms");
        let hopeless = judge_one(
            &threshold("latency_ok.p99", MetricKind::Duration, "< 1ms"),
            &v,
        );
        assert!(!hopeless.passed);
        assert!(hopeless.note.unwrap().contains("failed because no sample"));
        let p90 = judge_one(
            &threshold("latency_ok.p90", MetricKind::Duration, "< 50ms"),
            &v,
        );
        assert_eq!(
            (p90.passed, p90.actual.map(f64::round)),
            (false, Some(90.0))
        );
    }
}
