//! What may make a run's figures mislead, said where a reader looks (the terminal summary,
//! summary.md, the report's verdict area): a closed load whose slowest iteration sits far beyond its
//! p99 (a stall the closed model hides), and seconds of an open load the generator could not offer
//! on time (the latencies then describe the generator's backlog).

use super::generator::{Blame, Pace, mean_cpu};
use crate::metrics::{LatencySummary, TimelineRow};
use crate::result::{Metrics, format_value};

/// The slowest iteration at least this many times the highest percentile reported, and this much
/// beyond it, says a stall may be hidden.
const STALL_RATIO: f64 = 10.0;
const STALL_MS: f64 = 100.0;

/// The caveats of a run whose load allowed `max_in_flight` iterations at once.
pub fn of(
    metrics: &Metrics,
    timeline: &[TimelineRow],
    scheduled: bool,
    max_in_flight: u32,
) -> Vec<String> {
    let mut out = Vec::new();
    let headline = metrics.latency_ok_ms.clone().or(metrics.latency_ms.clone());
    if !scheduled
        && let Some(l) = &headline
        && let Some(c) = hidden_stall(l, metrics.throughput_per_s)
    {
        out.push(c);
    }
    if scheduled
        && metrics.stress.is_none()
        && let Some(c) = behind(timeline, metrics, max_in_flight)
    {
        out.push(c);
    }
    if let Some(c) = metrics.stress.as_ref().and_then(super::stress::caveat) {
        out.push(c);
    }
    out
}

/// A closed load's slowest iteration far beyond its tail: a stall the workers waited out.
fn hidden_stall(l: &LatencySummary, achieved: Option<f64>) -> Option<String> {
    let (name, p) = [
        ("p99", l.p99),
        ("p95", l.p95),
        ("p90", l.p90),
        ("p50", l.p50),
    ]
    .into_iter()
    .find_map(|(n, v)| v.map(|v| (n, v)))?;
    if l.max < STALL_RATIO * p || l.max - p < STALL_MS {
        return None;
    }
    let open = achieved.map_or_else(String::new, |rate| {
        format!(
            " (model = \"open\", rate = \"{}/s\", the rate this run achieved)",
            rate.round()
        )
    });
    Some(format!(
        "A stall may be hidden: the slowest iteration took {}, {:.0}× the {name} of {}. A closed \
         load waits for a stalled target, so the stall slows the load instead of showing in the \
         percentiles (coordinated omission); run it as an open load{open} to see it.",
        format_value("duration", l.max),
        l.max / p,
        format_value("duration", p)
    ))
}

/// An open load that started more of its iterations late than it may: who set the pace, and when.
fn behind(timeline: &[TimelineRow], m: &Metrics, max_in_flight: u32) -> Option<String> {
    let schedule = m.schedule.as_ref()?;
    let seconds: Vec<&TimelineRow> = timeline.iter().filter(|r| r.behind_schedule).collect();
    let pace = Pace {
        late: schedule.late,
        achieved_rate_per_s: schedule.achieved_rate_per_s,
        iterations: timeline.iter().map(|r| r.succeeded + r.failed).sum(),
        rate_per_s: schedule.intended_rate_per_s,
        mean_service_ms: m.service_time_ms.as_ref().map(|s| s.mean),
        max_in_flight,
        cpu: mean_cpu(seconds.iter().copied()),
    };
    let when = match (seconds.first(), seconds.last()) {
        (Some(a), Some(b)) => format!(
            " ({} second(s) behind, from {} s to {} s)",
            seconds.len(),
            a.t_s,
            b.t_s + 1
        ),
        _ => String::new(),
    };
    let gap = match (
        m.service_time_ms.as_ref().and_then(|s| s.p95),
        m.latency_ok_ms
            .as_ref()
            .or(m.latency_ms.as_ref())
            .and_then(|l| l.p95),
    ) {
        (Some(svc), Some(lat)) => format!(
            " Service time p95 was {} against a latency p95 of {} from the intended starts.",
            format_value("duration", svc),
            format_value("duration", lat)
        ),
        _ => String::new(),
    };
    match pace.blame() {
        Blame::OnTime => None,
        Blame::Target { needed_in_flight } => Some(format!(
            "{} iterations started late{when} because all {max_in_flight} allowed in flight were \
             busy: at {}/s and the target's mean service time it needed about {needed_in_flight:.0} \
             at once. The latencies include that wait, as its users' would.{gap}",
            schedule.late,
            schedule.intended_rate_per_s.round()
        )),
        Blame::Generator { saturated, .. } => Some(format!(
            "The generator fell behind{when}: {} iterations started late{}, so the run describes \
             a lighter load than planned and its latencies the generator's backlog.{gap}",
            schedule.late,
            saturated.map_or_else(String::new, |c| format!(
                " with the harness using {:.0}% of the machine's cores",
                c * 100.0
            ))
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(p99: f64, max: f64) -> LatencySummary {
        LatencySummary {
            count: 2000,
            min: 1.0,
            mean: 2.0,
            p50: Some(2.0),
            p90: Some(3.0),
            p95: Some(3.5),
            p99: Some(p99),
            p999: None,
            max,
            hdr: None,
        }
    }

    #[test]
    fn a_closed_run_with_its_slowest_far_beyond_its_p99_is_told_so() {
        let c = hidden_stall(&summary(4.0, 1000.0), Some(812.4)).unwrap();
        assert!(c.contains("1.00s, 250× the p99 of 4.00ms"), "{c}");
        assert!(c.contains("rate = \"812/s\""), "{c}");
        assert!(
            hidden_stall(&summary(4.0, 30.0), None).is_none(),
            "a tail, not a stall"
        );
        assert!(
            hidden_stall(&summary(40.0, 300.0), None).is_none(),
            "under 10×"
        );
    }

    #[test]
    fn an_open_load_behind_schedule_names_who_set_the_pace() {
        let row = |t_s, late, cpu| TimelineRow {
            t_s,
            succeeded: 100,
            late,
            behind_schedule: late > 1,
            harness_cpu: Some(cpu),
            ..TimelineRow::default()
        };
        let rows = [
            row(0, 0, 0.3),
            row(1, 40, 0.95),
            row(2, 60, 0.97),
            row(3, 1, 0.4),
        ];
        let mut m = Metrics {
            schedule: Some(crate::result::ScheduleMetrics {
                intended_rate_per_s: 100.0,
                achieved_rate_per_s: 100.0,
                late: 101,
                on_time_rate: 0.75,
                fell_behind: true,
            }),
            ..Metrics::default()
        };
        let c = behind(&rows, &m, 50).unwrap();
        assert!(
            c.starts_with("The generator fell behind (2 second(s) behind, from 1 s to 3 s): 101"),
            "{c}"
        );
        assert!(c.contains("96% of the machine's cores"), "{c}");
        // Not saturated, and a slow target: 100/s at 800 ms needs 80 in flight, more than 50.
        let cool: Vec<TimelineRow> = rows
            .iter()
            .map(|r| TimelineRow {
                harness_cpu: Some(0.2),
                ..r.clone()
            })
            .collect();
        m.service_time_ms = Some(summary(900.0, 1000.0));
        m.service_time_ms.as_mut().unwrap().mean = 800.0;
        let c = behind(&cool, &m, 50).unwrap();
        assert!(c.contains("all 50 allowed in flight were busy"), "{c}");
        // The same service time, but only 10/s achieved: 8 in flight on average, the bound had room
        // and the generator is to blame.
        m.schedule.as_mut().unwrap().achieved_rate_per_s = 10.0;
        let c = behind(&cool, &m, 50).unwrap();
        assert!(c.starts_with("The generator fell behind"), "{c}");
        assert!(behind(&rows[..1], &Metrics::default(), 50).is_none());
    }
}
