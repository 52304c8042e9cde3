//! The stress suite's analysis: every stage of the stepped load judged on the thresholds (and on
//! keeping to its schedule), and the breaking point located — the last stage of the unbroken run of
//! stages that met them, from the first.
//!
//! A stage where more than 1% of the iterations started late was not offered as planned. Either the
//! target was too slow — at its service time the stage needed more iterations in flight than
//! `max_in_flight` allows (Little's law: rate × mean service time), so they queued: the target
//! broke — or the generator itself could not keep up although there was room in flight. Such a
//! stage is generator-limited: its latencies (from the intended start) describe the generator's
//! backlog, and it ends the search. The breaking point then is "not found, above the last stage
//! that met", never the stage before it.

use std::collections::BTreeMap;
use std::time::Duration;

use super::assemble::{MAX_LATE_SHARE, Snapshot};
use super::generator::{Blame, Pace, SATURATED, mean_cpu};
use crate::metrics::LatencySummary;
use crate::metrics::timeline::behind_schedule;
use crate::result::{
    BreakingPoint, GeneratorLimit, ResultTotals, StageResult, StressMetrics, Verdict,
};
use crate::schedule::OpenStage;
use crate::thresholds::Threshold;
use crate::thresholds::catalogue::judged_per_stage;
use crate::thresholds::evaluate::{Values, judge};

/// Judges every stage; also returns the first stage's verdicts, which stand for the run's own.
pub fn judge_stages(
    s: &Snapshot<'_>,
    stages: &[OpenStage],
    thresholds: &[Threshold],
) -> (StressMetrics, BTreeMap<String, Verdict>) {
    let per_stage: Vec<Threshold> = thresholds
        .iter()
        .filter(|t| judged_per_stage(&t.metric))
        .cloned()
        .collect();
    let mut results = Vec::new();
    let mut paces = Vec::new();
    let mut offset = Duration::ZERO;
    for (i, (plan, stats)) in stages.iter().zip(&s.merged.stages).enumerate() {
        let totals = ResultTotals::from(&stats.totals, plan.iterations, 0);
        // Over the time the stage's iterations actually took to start, when that was longer than
        // the stage: a generator behind schedule starts them after the stage's own time is over.
        let began = s.load_start + offset;
        offset += plan.duration;
        let span = stats
            .last_start
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(began))
            .max(plan.duration);
        let mut stage = StageResult {
            stage: i + 1,
            rate_per_s: plan.rate.per_second,
            achieved_rate_per_s: stats.totals.iterations as f64 / span.as_secs_f64().max(1e-9),
            success_rate: stats.totals.success_rate(),
            latency_ms: LatencySummary::of(&stats.latency.all()),
            latency_ok_ms: LatencySummary::of(stats.latency.ok()),
            service_time_ms: LatencySummary::of(&stats.service),
            late: stats.late,
            errors: stats.errors.clone(),
            totals,
            met_thresholds: false,
            generator_limited: false,
            thresholds: Vec::new(),
        };
        let values = Values::of_stage(&stage);
        let mut verdicts = judge(&per_stage, &values);
        let on_time = values.get("schedule.on_time_rate");
        verdicts.push(Verdict {
            metric: "schedule.on_time_rate".into(),
            kind: "ratio".into(),
            condition: format!(">= {}", 1.0 - MAX_LATE_SHARE),
            actual: on_time,
            passed: on_time.is_some() && !behind_schedule(stats.late, stats.totals.iterations),
            note: Some(
                "built in: a stage the generator could not offer on time is not judged as the \
                 target's"
                    .into(),
            ),
            samples_range: None,
        });
        stage.met_thresholds = stats.totals.iterations > 0 && verdicts.iter().all(|v| v.passed);
        let (from, until) = (began, began + span);
        let seconds = s.timeline.iter().filter(|r| {
            let t = s.load_start + Duration::from_secs(r.t_s);
            t >= from && t < until
        });
        let pace = Pace {
            late: stats.late,
            achieved_rate_per_s: stage.achieved_rate_per_s,
            iterations: stats.totals.iterations,
            rate_per_s: plan.rate.per_second,
            mean_service_ms: stage.service_time_ms.as_ref().map(|l| l.mean),
            max_in_flight: plan.max_in_flight,
            cpu: mean_cpu(seconds),
        };
        stage.generator_limited = matches!(pace.blame(), Blame::Generator { .. });
        paces.push(pace);
        stage.thresholds = verdicts;
        results.push(stage);
    }
    let (breaking_point, broke, generator_limited) = locate(&results, |r| {
        let pace = &paces[r.stage - 1];
        GeneratorLimit {
            max_in_flight: pace.max_in_flight,
            needed_in_flight: pace.needed_in_flight(),
            harness_cpu: pace.cpu,
            ..limit_of(r)
        }
    });
    let base: BTreeMap<String, Verdict> = results
        .first()
        .map(|r| {
            r.thresholds
                .iter()
                .filter(|v| per_stage.iter().any(|t| t.metric == v.metric))
                .map(|v| {
                    let note = format!(
                        "judged on stage 1, the base load of {}/s",
                        trim(r.rate_per_s)
                    );
                    (
                        v.metric.clone(),
                        Verdict {
                            note: Some(note),
                            ..v.clone()
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (
        StressMetrics {
            stages: results,
            breaking_point,
            broke,
            generator_limited,
        },
        base,
    )
}

/// The breaking point of judged stages: the last of the unbroken run of stages that met the
/// thresholds, from the first; whether some stage broke; and the stage the generator could not offer
/// (described by `limit`), which ends the search before the target broke.
pub fn locate(
    stages: &[StageResult],
    limit: impl Fn(&StageResult) -> GeneratorLimit,
) -> (Option<BreakingPoint>, bool, Option<GeneratorLimit>) {
    let (mut unbroken, mut broke, mut limited) = (0, false, None);
    for r in stages {
        // Refusals and errors are the target's whatever the pace: a stage that failed on them broke,
        // late starts or not.
        let failed_on_its_own = r
            .thresholds
            .iter()
            .any(|v| !v.passed && !depends_on_pace(&v.metric));
        if r.generator_limited && !failed_on_its_own {
            limited = Some(limit(r));
            break;
        }
        if !r.met_thresholds {
            broke = true;
            break;
        }
        unbroken += 1;
    }
    let point = (unbroken > 0).then(|| BreakingPoint {
        stage: unbroken,
        rate_per_s: stages[unbroken - 1].rate_per_s,
    });
    (point, broke, limited)
}

/// What a stage's own figures say of a generator limit (the in-flight figures and the CPU are the
/// caller's to fill in).
pub fn limit_of(r: &StageResult) -> GeneratorLimit {
    GeneratorLimit {
        stage: r.stage,
        rate_per_s: r.rate_per_s,
        achieved_rate_per_s: r.achieved_rate_per_s,
        late: r.late,
        needed_in_flight: 0.0,
        max_in_flight: 0,
        harness_cpu: None,
        service_time_p95_ms: r.service_time_ms.as_ref().and_then(|l| l.p95),
        latency_p95_ms: r.latency_ms.as_ref().and_then(|l| l.p95),
    }
}

/// Whether a metric is distorted when the generator sets the pace: latencies (counted from intended
/// starts, and the service times of a saturated machine), throughput and keeping to the schedule.
fn depends_on_pace(metric: &str) -> bool {
    metric == "throughput"
        || [
            "latency.",
            "latency_ok.",
            "latency_failed.",
            "service_time.",
            "schedule.",
        ]
        .iter()
        .any(|p| metric.starts_with(p))
}

/// What the result says of a stress run whose generator fell behind before the target broke.
pub fn caveat(m: &StressMetrics) -> Option<String> {
    let g = m.generator_limited.as_ref()?;
    let held = m.breaking_point.as_ref().map_or_else(
        || "No stage before it was offered as planned either".to_string(),
        |bp| {
            format!(
                "Every stage up to {}/s met the thresholds, so the target's limit is above that, \
                 where this run could not offer the load",
                trim(bp.rate_per_s)
            )
        },
    );
    let gap = match (g.service_time_p95_ms, g.latency_p95_ms) {
        (Some(svc), Some(lat)) => format!(
            "; service time p95 was {} against a latency p95 of {} from the intended starts",
            crate::result::format_value("duration", svc),
            crate::result::format_value("duration", lat)
        ),
        _ => String::new(),
    };
    let why = match g.harness_cpu.filter(|c| *c >= SATURATED) {
        Some(cpu) => format!(
            "the harness used {:.0}% of the machine's cores",
            cpu * 100.0
        ),
        None => format!(
            "only {:.0} of the {} allowed in flight were needed at the target's service time",
            g.needed_in_flight, g.max_in_flight
        ),
    };
    Some(format!(
        "Breaking point not found: the generator fell behind at {}/s (stage {}: {} late starts, \
         {}/s achieved; {why}){gap}. {held}. Give the generator more CPU, or share the load \
         between machines.",
        trim(g.rate_per_s),
        g.stage,
        g.late,
        trim(g.achieved_rate_per_s),
    ))
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
