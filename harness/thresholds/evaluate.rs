//! Judging thresholds against what a run measured. A result's metrics are flattened once into values
//! by threshold name (`latency.p95`, `errors.timeout`, `rollback.success_rate`, …); each threshold
//! is then looked up and compared.
//!
//! Missing data never passes silently: a threshold on a metric the run produced no value for fails,
//! with a note saying so. The one exception is a rate over rollbacks when no rollback was needed,
//! which passes with a note (nothing failed, so nothing had to be undone).

use std::collections::BTreeMap;

use super::Threshold;
use crate::metrics::LatencySummary;
use crate::result::{Metrics, ResultTotals, StageResult, Verdict};
use crate::thresholds::metrics::STATS;

/// Metric values by threshold name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Values(BTreeMap<String, f64>);

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

    pub fn iter(&self) -> impl Iterator<Item = (&String, &f64)> {
        self.0.iter()
    }

    fn summary(&mut self, prefix: &str, s: Option<&LatencySummary>) {
        if let Some(s) = s {
            for stat in STATS {
                if let Some(v) = s.stat(stat) {
                    self.set(format!("{prefix}.{stat}"), v);
                }
            }
        }
    }

    fn totals(&mut self, t: &ResultTotals) {
        self.set("iterations", t.iterations as f64);
        self.set("succeeded", t.succeeded as f64);
        self.set("failed", t.failed as f64);
        self.set("timed_out", t.timed_out as f64);
        if t.iterations > 0 {
            self.set("success_rate", t.succeeded as f64 / t.iterations as f64);
            self.set("error_rate", t.failed as f64 / t.iterations as f64);
        }
    }

    fn errors(&mut self, errors: &BTreeMap<String, u64>) {
        let mut validation = 0;
        for (k, v) in errors {
            self.set(format!("errors.{k}"), *v as f64);
            if k.starts_with("validation.") {
                validation += v;
            }
        }
        self.set("errors.validation", validation as f64);
    }

    fn ws(&mut self, ws: &crate::result::WsMetrics) {
        self.set("ws.connections", ws.connections as f64);
        self.set("ws.peak_connections", ws.peak_connections as f64);
        self.set(
            "ws.frames_without_correlation",
            ws.frames_without_correlation as f64,
        );
        self.summary("ws.connect", ws.connect_ms.as_ref());
        self.summary("ws.ping", ws.ping_ms.as_ref());
        self.summary("ws.delivery", ws.delivery_ms.as_ref());
        if let Some(rate) = ws.delivery_rate {
            self.set("ws.delivery_rate", rate);
        }
        if let Some(d) = &ws.delivery {
            self.set("ws.lost", d.lost as f64);
            self.set("ws.duplicated", d.duplicated as f64);
            self.set("ws.out_of_order", d.out_of_order as f64);
            self.set("ws.unexpected", d.unexpected as f64);
        }
        if let Some(ms) = ws
            .slow_consumer
            .as_ref()
            .and_then(|s| s.disconnected_after_ms)
        {
            self.set("slow_consumer.disconnect_time", ms);
        }
    }

    /// Everything a whole run produced.
    pub fn of_run(totals: &ResultTotals, m: &Metrics) -> Self {
        let mut v = Values::default();
        v.totals(totals);
        if let Some(t) = m.throughput_per_s {
            v.set("throughput", t);
        }
        v.summary("latency", m.latency_ms.as_ref());
        v.summary("service_time", m.service_time_ms.as_ref());
        v.errors(&m.errors);
        for (id, step) in &m.steps {
            v.summary(&format!("steps.{id}.latency"), Some(&step.latency_ms));
        }
        for (name, s) in &m.recorded {
            v.summary(name, Some(s));
        }
        v.set("warnings", m.warnings.values().sum::<u64>() as f64);
        if let Some(rb) = &m.rollback {
            v.set("rollback.attempted", rb.attempted as f64);
            v.set("rollback.succeeded", rb.succeeded as f64);
            if let Some(rate) = rb.success_rate {
                v.set("rollback.success_rate", rate);
            }
        }
        if let Some(s) = &m.schedule {
            v.set("schedule.late", s.late as f64);
            v.set("schedule.on_time_rate", s.on_time_rate);
        }
        if let Some(bp) = m.stress.as_ref().and_then(|s| s.breaking_point.as_ref()) {
            v.set("breaking_point.rate", bp.rate_per_s);
        }
        if let Some(inv) = &m.invariants {
            v.set("invariants.violations", inv.violations as f64);
        }
        if let Some(ws) = &m.ws {
            v.ws(ws);
        }
        if let Some(rl) = &m.rate_limit {
            v.set("rate_limit.conforms", if rl.conforms { 1.0 } else { 0.0 });
            if let Some(r) = rl.inferred_rate_per_s {
                v.set("rate_limit.inferred_rate", r);
            }
            if let Some(b) = rl.inferred_burst {
                v.set("rate_limit.inferred_burst", b);
            }
        }
        if let Some(r) = &m.recovery {
            // The slowest window decides; a window never recovered leaves no value (and the
            // threshold fails with a note).
            let worst = |f: fn(&crate::result::RecoveryWindow) -> Option<f64>| {
                r.windows
                    .iter()
                    .map(f)
                    .try_fold(0.0f64, |acc, v| v.map(|v| acc.max(v)))
            };
            if let Some(t) = worst(|w| w.time_to_recover_s) {
                v.set("recovery.time", t * 1000.0);
            }
            if let Some(t) = worst(|w| w.time_to_first_success_s) {
                v.set("recovery.time_to_first_success", t * 1000.0);
            }
            v.set(
                "recovery.lost",
                r.windows
                    .iter()
                    .map(|w| w.lost + w.messages_lost.unwrap_or(0))
                    .sum::<u64>() as f64,
            );
        }
        if let Some(d) = &m.drift {
            if let Some(r) = d.p95_ratio {
                v.set("drift.p95_ratio", r);
            }
            if let Some(c) = d.p95_change_ms {
                v.set("drift.p95_change", c);
            }
            if let Some(c) = d.error_rate_change {
                v.set("drift.error_rate_change", c);
            }
        }
        v
    }

    /// What one stage of a stepped load produced.
    pub fn of_stage(s: &StageResult) -> Self {
        let mut v = Values::default();
        v.totals(&s.totals);
        v.set("throughput", s.achieved_rate_per_s);
        v.summary("latency", s.latency_ms.as_ref());
        v.summary("service_time", s.service_time_ms.as_ref());
        v.errors(&s.errors);
        if s.totals.iterations > 0 {
            v.set("schedule.late", s.late as f64);
            v.set(
                "schedule.on_time_rate",
                1.0 - s.late as f64 / s.totals.iterations as f64,
            );
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
        },
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
            }
        }
        None => Verdict {
            metric: t.metric.clone(),
            kind: t.kind.as_str().into(),
            condition,
            actual: None,
            passed: false,
            note: Some(no_data(&t.metric, values)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::RollbackMetrics;
    use crate::thresholds::{Condition, MetricKind};

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
        let v = Values::of_run(&totals(98, 2), &m);
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
        let v = Values::of_run(&totals(10, 0), &m);
        let p95 = judge_one(&threshold("latency.p95", MetricKind::Duration, "< 1s"), &v);
        assert!(!p95.passed);
        assert_eq!(
            p95.note.as_deref(),
            Some("the run produced no value for this metric")
        );

        m.rollback = Some(RollbackMetrics {
            attempted: 0,
            succeeded: 0,
            success_rate: None,
            by_step: Default::default(),
            failures: vec![],
        });
        let v = Values::of_run(&totals(10, 0), &m);
        let rb = judge_one(
            &threshold("rollback.success_rate", MetricKind::Ratio, ">= 0.9"),
            &v,
        );
        assert!(rb.passed);
        assert_eq!(rb.actual, None);

        let v = Values::of_run(&totals(0, 0), &Metrics::default());
        let sr = judge_one(&threshold("success_rate", MetricKind::Ratio, ">= 0.9"), &v);
        assert!(!sr.passed);
        assert!(sr.note.unwrap().contains("no iteration completed"));
    }
}
