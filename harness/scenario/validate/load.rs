//! The `[load]` table: closed, open and stepped models, checked against the run's budget and against
//! what the suite means.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::{DEFAULT_MAX_IN_FLIGHT, MAX_CONCURRENCY, MAX_STAGES, count, positive_rate};
use crate::config::Diagnostics;
use crate::config::checks::positive_duration;
use crate::config::units::Rate;
use crate::scenario::model::*;
use crate::scenario::raw::*;

pub(super) fn load(
    diag: &mut Diagnostics<'_>,
    raw: &Spanned<RawLoad>,
    budget: Option<Duration>,
) -> Option<Load> {
    let l = raw.get_ref();
    let span = raw.span();
    let model = match &l.model {
        Some(m) => *m.get_ref(),
        None if l.stages.is_some() || l.stress_factor.is_some() || l.base_rate.is_some() => {
            RawLoadModel::Stepped
        }
        None if l.rate.is_some() || l.duration.is_some() => RawLoadModel::Open,
        None => RawLoadModel::Closed,
    };
    // Keys that belong to another model are mistakes worth naming.
    let foreign: Vec<(&str, Option<Range<usize>>)> = match model {
        RawLoadModel::Closed => vec![
            ("rate", l.rate.as_ref().map(Spanned::span)),
            ("duration", l.duration.as_ref().map(Spanned::span)),
            ("max_in_flight", l.max_in_flight.as_ref().map(Spanned::span)),
            (
                "stages",
                l.stages.as_ref().and_then(|s| s.first()).map(Spanned::span),
            ),
            ("base_rate", l.base_rate.as_ref().map(Spanned::span)),
            ("stress_factor", l.stress_factor.as_ref().map(Spanned::span)),
        ],
        RawLoadModel::Open => vec![
            ("concurrency", l.concurrency.as_ref().map(Spanned::span)),
            (
                "stages",
                l.stages.as_ref().and_then(|s| s.first()).map(Spanned::span),
            ),
            ("base_rate", l.base_rate.as_ref().map(Spanned::span)),
            ("stress_factor", l.stress_factor.as_ref().map(Spanned::span)),
        ],
        RawLoadModel::Stepped => vec![
            ("iterations", l.iterations.as_ref().map(Spanned::span)),
            ("concurrency", l.concurrency.as_ref().map(Spanned::span)),
            ("rate", l.rate.as_ref().map(Spanned::span)),
            ("duration", l.duration.as_ref().map(Spanned::span)),
        ],
    };
    let model_name = model.as_str();
    let article = if model_name == "open" { "an" } else { "a" };
    for (key, at) in foreign {
        if let Some(at) = at {
            diag.error(
                at,
                format!("load.{key}"),
                format!("`{key}` has no meaning for {article} {model_name} load"),
                Some("remove it, or change load.model (closed: iterations, concurrency; open: rate, duration or iterations, max_in_flight; stepped: stages or base_rate, stress_factor, stage_duration)".to_string()),
            );
        }
    }
    let max_in_flight = match &l.max_in_flight {
        Some(m) => count(diag, m, "load.max_in_flight", MAX_CONCURRENCY).map(|v| v as u32),
        None => Some(DEFAULT_MAX_IN_FLIGHT),
    };
    let load = match model {
        RawLoadModel::Closed => {
            let iterations = match &l.iterations {
                Some(i) => count(diag, i, "load.iterations", i64::MAX),
                None => {
                    diag.missing(span.clone(), "load.iterations", "add iterations = 100");
                    None
                }
            };
            let concurrency = match &l.concurrency {
                Some(c) => count(diag, c, "load.concurrency", MAX_CONCURRENCY).map(|v| v as u32),
                None => Some(1),
            };
            Load::Closed {
                iterations: iterations?,
                concurrency: concurrency?,
            }
        }
        RawLoadModel::Open => Load::Open(open_stage(diag, l, span.clone(), max_in_flight?)?),
        RawLoadModel::Stepped => stepped(diag, l, span.clone(), max_in_flight?)?,
    };
    if let (Some(budget), Some(planned)) = (budget, load.scheduled_duration())
        && planned > budget
    {
        diag.error(
            span,
            "load",
            format!(
                "the load's schedule lasts {} but the run's timeout is {}",
                crate::config::units::format_duration(planned),
                crate::config::units::format_duration(budget)
            ),
            Some(
                "shorten the load or raise timeout (leave room for the last iterations to finish)"
                    .into(),
            ),
        );
    }
    Some(load)
}

fn open_stage(
    diag: &mut Diagnostics<'_>,
    l: &RawLoad,
    span: Range<usize>,
    max_in_flight: u32,
) -> Option<OpenStage> {
    let rate = l.rate.as_ref().map(|r| positive_rate(diag, r, "load.rate"));
    let duration = l
        .duration
        .as_ref()
        .map(|d| positive_duration(diag, d, "load.duration"));
    let iterations = l
        .iterations
        .as_ref()
        .map(|i| count(diag, i, "load.iterations", i64::MAX));
    let hint =
        "give two of rate, duration and iterations, e.g. rate = \"20/s\" and duration = \"30s\"";
    match (rate, duration, iterations) {
        (Some(r), Some(d), None) => {
            let (r, d) = (r?, d?);
            Some(OpenStage {
                rate: r,
                duration: d,
                iterations: ((r.per_second * d.as_secs_f64()).floor() as u64).max(1),
                max_in_flight,
            })
        }
        (Some(r), None, Some(n)) => {
            let (r, n) = (r?, n?);
            Some(OpenStage {
                rate: r,
                duration: Duration::from_secs_f64(n as f64 / r.per_second),
                iterations: n,
                max_in_flight,
            })
        }
        (None, Some(d), Some(n)) => {
            let (d, n) = (d?, n?);
            Some(OpenStage {
                rate: Rate::per_second(n as f64 / d.as_secs_f64()),
                duration: d,
                iterations: n,
                max_in_flight,
            })
        }
        (Some(_), Some(_), Some(_)) => {
            diag.error(
                span,
                "load",
                "rate, duration and iterations are all set, and may disagree",
                Some(hint.into()),
            );
            None
        }
        _ => {
            diag.error(
                span,
                "load",
                "an open load needs two of rate, duration and iterations",
                Some(hint.into()),
            );
            None
        }
    }
}

fn stepped(
    diag: &mut Diagnostics<'_>,
    l: &RawLoad,
    span: Range<usize>,
    max_in_flight: u32,
) -> Option<Load> {
    let derived = l.base_rate.is_some()
        || l.stress_factor.is_some()
        || l.stage_duration.is_some()
        || l.max_stages.is_some();
    match (&l.stages, derived) {
        (Some(stages), false) => {
            if stages.is_empty() {
                diag.error(
                    span,
                    "load.stages",
                    "stages is empty",
                    Some("list at least one { rate = \"…\", duration = \"…\" }".into()),
                );
                return None;
            }
            let mut out = Vec::new();
            for (i, s) in stages.iter().enumerate() {
                let key = format!("load.stages[{i}]");
                let rate = match &s.get_ref().rate {
                    Some(r) => positive_rate(diag, r, &format!("{key}.rate")),
                    None => {
                        diag.missing(s.span(), &format!("{key}.rate"), "add rate = \"20/s\"");
                        None
                    }
                };
                let duration = match &s.get_ref().duration {
                    Some(d) => positive_duration(diag, d, &format!("{key}.duration")),
                    None => {
                        diag.missing(
                            s.span(),
                            &format!("{key}.duration"),
                            "add duration = \"10s\"",
                        );
                        None
                    }
                };
                if let (Some(rate), Some(duration)) = (rate, duration) {
                    out.push(OpenStage {
                        rate,
                        duration,
                        iterations: ((rate.per_second * duration.as_secs_f64()).floor() as u64)
                            .max(1),
                        max_in_flight,
                    });
                }
            }
            (out.len() == stages.len()).then_some(Load::Stepped {
                stages: out,
                stress_factor: None,
            })
        }
        (Some(stages), true) => {
            diag.error(
                stages.first().map_or(span, Spanned::span),
                "load.stages",
                "stages and base_rate/stress_factor are both set",
                Some("list the stages yourself, or let base_rate × stress_factor generate them, not both".into()),
            );
            None
        }
        (None, _) => {
            let base = match &l.base_rate {
                Some(r) => positive_rate(diag, r, "load.base_rate"),
                None => {
                    diag.missing(
                        span.clone(),
                        "load.base_rate",
                        "add base_rate = \"10/s\", the first stage's rate (or list stages)",
                    );
                    None
                }
            };
            let factor = match &l.stress_factor {
                Some(f) if !(f.get_ref().is_finite() && *f.get_ref() > 1.0) => {
                    diag.error(
                        f.span(),
                        "load.stress_factor",
                        format!("stress_factor must be above 1, not {}", f.get_ref()),
                        Some("e.g. 2.0 doubles the rate each stage".into()),
                    );
                    None
                }
                Some(f) => Some(*f.get_ref()),
                None => {
                    diag.missing(
                        span.clone(),
                        "load.stress_factor",
                        "add stress_factor = 2.0",
                    );
                    None
                }
            };
            let stage_duration = match &l.stage_duration {
                Some(d) => positive_duration(diag, d, "load.stage_duration"),
                None => {
                    diag.missing(
                        span.clone(),
                        "load.stage_duration",
                        "add stage_duration = \"10s\"",
                    );
                    None
                }
            };
            let max_stages = match &l.max_stages {
                Some(m) => count(diag, m, "load.max_stages", MAX_STAGES),
                None => Some(5),
            };
            let (base, factor, duration, n) = (base?, factor?, stage_duration?, max_stages?);
            let stages = (0..n)
                .map(|i| {
                    let rate = Rate::per_second(base.per_second * factor.powi(i as i32));
                    OpenStage {
                        rate,
                        duration,
                        iterations: ((rate.per_second * duration.as_secs_f64()).floor() as u64)
                            .max(1),
                        max_in_flight,
                    }
                })
                .collect();
            Some(Load::Stepped {
                stages,
                stress_factor: Some(factor),
            })
        }
    }
}

/// Suites whose meaning a load model contradicts.
pub(super) fn suite_fits_load(
    diag: &mut Diagnostics<'_>,
    suite: Suite,
    load: &Load,
    span: Range<usize>,
) {
    let wanted = match (suite, load) {
        (Suite::Performance, Load::Closed { .. }) => Some((
            "the performance suite measures latency at a fixed arrival rate; a closed load hides stalls",
            "set model = \"open\" with rate and duration",
        )),
        (Suite::Stress, Load::Closed { .. } | Load::Open(_)) => Some((
            "the stress suite steps the load up to find a breaking point and needs stages",
            "set model = \"stepped\" with base_rate, stress_factor and stage_duration",
        )),
        _ => None,
    };
    if let Some((message, hint)) = wanted {
        diag.error(span, "load.model", message, Some(hint.into()));
    }
}
