//! Second stage of reading a scenario: raw structs into a [`Scenario`], reporting every problem with its
//! place — missing keys, bad durations and rates, loads that do not fit the budget, suites whose
//! meaning the load contradicts, procedures that do not resolve (or are themselves broken), and
//! thresholds on metrics this kind of run never produces.

use std::path::Path;
use std::time::Duration;

use toml::Spanned;

mod app_ping;
mod body_size;
mod load;
mod matcher;
mod network;
mod probes;
mod target;
mod transport;
mod websocket;

use super::model::*;
use super::raw::*;
use crate::config::checks::{self, positive_duration};
use crate::config::structured::display_key;
use crate::config::units::{Rate, parse_rate};
use crate::config::{Catalog, Diagnostics, Problem};
use crate::thresholds::{Condition, Lookup, RunShape, Threshold, catalogue as metrics};

/// Default per-iteration timeout when a scenario does not set one.
pub const DEFAULT_ITERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on iterations in flight for open and stepped loads.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 100;
/// Most stages a stress factor may generate; enough to go from 1/s to 1,000,000/s at ×2.
pub const MAX_STAGES: i64 = 20;
const MAX_CONCURRENCY: i64 = 100_000;

/// Where to find the procedures a scenario names.
pub struct Resolver<'a> {
    pub procedures: &'a Catalog,
    /// Directory of the scenario file, for procedures given as relative paths.
    pub base_dir: Option<&'a Path>,
}

/// Builds a scenario from its raw form. Problems in a procedure file it names go to `foreign`, since
/// they belong to another file.
pub fn scenario(
    diag: &mut Diagnostics<'_>,
    raw: RawScenario,
    expected_name: Option<&str>,
    resolver: &Resolver<'_>,
    foreign: &mut Vec<Problem>,
) -> Option<Scenario> {
    let name = checks::name(diag, raw.name.as_ref(), expected_name, "scenario");
    let suite = match &raw.suite {
        Some(s) => Some(*s.get_ref()),
        None => {
            diag.missing(
                0..0,
                "suite",
                "add suite = \"reliability\" (or performance, stress, failure_injection, concurrency, endurance)",
            );
            None
        }
    };
    let seed = match &raw.seed {
        Some(s) if *s.get_ref() < 0 => {
            diag.error(
                s.span(),
                "seed",
                "seed must not be negative",
                Some("use a whole number of 0 or more".into()),
            );
            None
        }
        Some(s) => Some(Some(*s.get_ref() as u64)),
        None => Some(None),
    };
    let timeout = match &raw.timeout {
        Some(t) => positive_duration(diag, t, "timeout"),
        None => {
            diag.missing(
                0..0,
                "timeout",
                "add timeout = \"60s\", the most the whole run may take",
            );
            None
        }
    };
    let iteration_timeout = match &raw.iteration_timeout {
        Some(t) => positive_duration(diag, t, "iteration_timeout"),
        None => Some(DEFAULT_ITERATION_TIMEOUT.min(timeout.unwrap_or(DEFAULT_ITERATION_TIMEOUT))),
    };
    if let (Some(t), Some(it), Some(raw_it)) = (timeout, iteration_timeout, &raw.iteration_timeout)
        && it > t
    {
        diag.error(
            raw_it.span(),
            "iteration_timeout",
            "iteration_timeout is longer than the whole run's timeout",
            Some("make it shorter than timeout".into()),
        );
    }

    let target = match &raw.target {
        Some(t) => target::target(diag, t, resolver, foreign),
        None => {
            diag.missing(
                0..0,
                "target",
                "add a [target] table, e.g. kind = \"handoff\" with procedure = \"PHASE_TRANSITION_STANDARD\"",
            );
            None
        }
    };
    let load = match &raw.load {
        Some(l) => load::load(diag, l, timeout),
        None => {
            diag.missing(
                0..0,
                "load",
                "add a [load] table, e.g. model = \"closed\", iterations = 100, concurrency = 5",
            );
            None
        }
    };
    let faults = match &raw.faults {
        Some(f) => faults(diag, f, load.as_ref().and_then(Load::scheduled_duration)),
        None => Some(Faults::default()),
    };

    if let (Some(suite), Some(load)) = (suite, &load) {
        load::suite_fits_load(
            diag,
            suite,
            load,
            raw.load.as_ref().map_or(0..0, Spanned::span),
        );
    }
    if let (Some(Suite::FailureInjection), Some(f)) = (suite, &faults)
        && !f.injects_anything()
    {
        let span = raw.faults.as_ref().map_or(
            raw.suite.as_ref().map_or(0..0, Spanned::span),
            Spanned::span,
        );
        diag.error(
                span,
                "faults",
                "the failure_injection suite injects nothing",
                Some("add [faults] with failure_rate = 0.1 and kinds = [\"error\", \"timeout\", \"validation\"]".into()),
            );
    }

    // Checked whatever else is broken, against what is known of the run.
    let kind = raw
        .target
        .as_ref()
        .and_then(|t| t.get_ref().kind.as_ref())
        .map(|k| *k.get_ref());
    let ws = websocket::websocket(diag, raw.websocket.as_ref(), kind, load.as_ref());
    let probes = probes::probes(diag, raw.probes.as_ref(), kind);
    // A WebSocket refusal says when to retry only where the protocol says to look.
    if let (Some(Some(w)), Some(p)) = (&ws, &probes)
        && p.rate_limit.as_ref().is_some_and(|r| r.require_retry_after)
        && w.protocol.retry_after.is_none()
    {
        let span = raw
            .probes
            .as_ref()
            .and_then(|p| p.get_ref().rate_limit.as_ref())
            .and_then(|r| r.get_ref().require_retry_after.as_ref())
            .map_or(0..0, Spanned::span);
        diag.error(
            span,
            "probes.rate_limit.require_retry_after",
            "the protocol does not say where a rate-limit refusal gives its retry time",
            Some(
                "add retry_after = \"/retry_after\" (and retry_after_unit = \"ms\" if it is in \
                 milliseconds) to [websocket.protocol.rate_limited]"
                    .into(),
            ),
        );
    }
    if let (Some(f), Some(k)) = (&faults, kind)
        && let Some(server) = &f.server
        && server.drop_rate > 0.0
        && k != TargetKind::Websocket
    {
        let span = raw.faults.as_ref().map_or(0..0, Spanned::span);
        diag.error(
            span,
            "faults.server.drop_rate",
            "drop_rate drops WebSocket deliveries; this target is not a WebSocket endpoint",
            Some("remove drop_rate, or use error_rate".into()),
        );
    }
    if let (Some(p), Some(t), Some(l)) = (&probes, timeout, &load) {
        let schedule = l.scheduled_duration().unwrap_or_default();
        let needed = p.time_before_load() + schedule;
        // A load that alone overruns the budget is reported with the load.
        if !p.time_before_load().is_zero() && schedule < t && needed > t {
            diag.error(
                raw.timeout.as_ref().map_or(0..0, Spanned::span),
                "timeout",
                format!(
                    "the probes before the load take up to {} and the load {}, more than the {} budget",
                    crate::config::units::format_duration(p.time_before_load()),
                    crate::config::units::format_duration(l.scheduled_duration().unwrap_or_default()),
                    crate::config::units::format_duration(t)
                ),
                Some(format!(
                    "raise timeout to at least \"{}\"",
                    crate::config::units::format_duration(needed + std::time::Duration::from_secs(10))
                )),
            );
        }
    }
    let procedure = target
        .as_ref()
        .and_then(|t| t.procedure.as_deref())
        .map(|p| p.facts());
    let shape = RunShape {
        kind,
        suite,
        load_model: load.as_ref().map(Load::model),
        procedure: procedure.as_ref(),
        procedure_known: target.is_some() || kind.is_some_and(|k| k == TargetKind::Websocket),
        fault_windows: faults.as_ref().is_none_or(Faults::has_windows),
        ws_mode: ws.as_ref().and_then(|w| w.as_ref().map(|w| w.mode)),
        probes: probes.as_ref().map(super::websocket::Probes::facts),
    };
    let thresholds = thresholds(diag, raw.thresholds.as_ref(), &shape);
    let tls = transport::tls(diag, raw.tls.as_ref());
    let http = transport::http(diag, raw.http.as_ref());

    if diag.has_errors() {
        return None;
    }
    Some(Scenario {
        name: name?,
        description: raw.description.map(Spanned::into_inner).unwrap_or_default(),
        source: diag.source().name.clone(),
        suite: suite?,
        seed: seed?,
        timeout: timeout?,
        iteration_timeout: iteration_timeout?,
        allow_remote: raw.allow_remote.is_some_and(|b| *b.get_ref()),
        redact: raw
            .redact
            .iter()
            .flat_map(|r| r.get_ref())
            .map(|n| n.get_ref().clone())
            .collect(),
        target: target?,
        load: load?,
        faults: faults?,
        websocket: ws?,
        probes: probes?,
        thresholds: thresholds?,
        tls: tls?,
        http: http?,
    })
}

pub(super) fn positive_rate(
    diag: &mut Diagnostics<'_>,
    value: &Spanned<String>,
    key: &str,
) -> Option<Rate> {
    match parse_rate(value.get_ref()) {
        Ok(r) => Some(r),
        Err(e) => {
            diag.error(value.span(), key, e.message, Some(e.hint));
            None
        }
    }
}

pub(super) fn count(
    diag: &mut Diagnostics<'_>,
    value: &Spanned<i64>,
    key: &str,
    max: i64,
) -> Option<u64> {
    let v = *value.get_ref();
    if v < 1 {
        diag.error(
            value.span(),
            key,
            format!("must be at least 1, not {v}"),
            Some("give a positive whole number".into()),
        );
        None
    } else if v > max {
        diag.error(
            value.span(),
            key,
            format!("{v} is more than the {max} this harness allows"),
            None,
        );
        None
    } else {
        Some(v as u64)
    }
}

fn faults(
    diag: &mut Diagnostics<'_>,
    raw: &Spanned<RawFaults>,
    schedule: Option<std::time::Duration>,
) -> Option<Faults> {
    let f = raw.get_ref();
    let failure_rate = match &f.failure_rate {
        Some(r) if !(0.0..=1.0).contains(r.get_ref()) => {
            diag.error(
                r.span(),
                "faults.failure_rate",
                format!("failure_rate {} is outside 0..1", r.get_ref()),
                Some("write the share of steps to fail, e.g. 0.1 for 10%".into()),
            );
            None
        }
        Some(r) => Some(*r.get_ref()),
        None => Some(0.0),
    };
    let kinds: Vec<FaultKind> = f
        .kinds
        .as_ref()
        .map(|k| k.get_ref().iter().map(|k| *k.get_ref()).collect())
        .unwrap_or_default();
    if failure_rate.is_some_and(|r| r > 0.0)
        && kinds.is_empty()
        && !diag.was_dropped("faults.kinds")
    {
        diag.error(
            f.failure_rate.as_ref().map_or(raw.span(), Spanned::span),
            "faults.kinds",
            "failure_rate is set but no kinds of fault are listed",
            Some(
                "add kinds = [\"error\", \"timeout\", \"validation\", \"latency\"] (any of them)"
                    .into(),
            ),
        );
    }
    let latency = match &f.latency {
        Some(l) => positive_duration(diag, l, "faults.latency").map(Some),
        None if kinds.contains(&FaultKind::Latency) => {
            diag.missing(
                raw.span(),
                "faults.latency",
                "add latency = \"250ms\", the delay the latency fault adds",
            );
            None
        }
        None => Some(None),
    };
    let server = match &f.server {
        Some(s) => server_chaos(diag, s).map(Some),
        None => Some(None),
    };
    let network = network::network(diag, f.network.as_deref().unwrap_or_default(), schedule);
    Some(Faults {
        failure_rate: failure_rate?,
        kinds,
        latency: latency?,
        server: server?,
        network: network?,
    })
}

fn server_chaos(diag: &mut Diagnostics<'_>, raw: &Spanned<RawServerChaos>) -> Option<ServerChaos> {
    let s = raw.get_ref();
    let ratio = |diag: &mut Diagnostics<'_>, key: &str, v: &Spanned<f64>| {
        if (0.0..=1.0).contains(v.get_ref()) {
            Some(*v.get_ref())
        } else {
            diag.error(
                v.span(),
                key,
                format!("{} is outside 0..1", v.get_ref()),
                Some("a share of requests, e.g. 0.05 for 5%".into()),
            );
            None
        }
    };
    let mut ok = true;
    let error_rate = match &s.error_rate {
        Some(v) => ratio(diag, "faults.server.error_rate", v),
        None => Some(0.0),
    };
    ok &= error_rate.is_some();
    let mut routes = Vec::new();
    for (route, rate) in s.routes.iter().flatten() {
        let key = format!(
            "faults.server.routes.{}",
            crate::config::structured::display_key(route.get_ref())
        );
        if !route.get_ref().starts_with('/') {
            diag.error(
                route.span(),
                &key,
                "a route pattern starts with `/`",
                Some("e.g. \"/api/v1/coordination/resources/{id}/transfer\"".into()),
            );
            ok = false;
        }
        match ratio(diag, &key, rate) {
            Some(r) => routes.push((route.get_ref().clone(), r)),
            None => ok = false,
        }
    }
    let duration = |diag: &mut Diagnostics<'_>, key: &str, v: &Option<Spanned<String>>| match v {
        None => Some(None),
        Some(v) => match crate::config::units::parse_duration(v.get_ref()) {
            Ok(d) => Some(Some(d)),
            Err(e) => {
                diag.error(v.span(), key, e.message, Some(e.hint));
                None
            }
        },
    };
    let latency = duration(diag, "faults.server.latency", &s.latency);
    let jitter = duration(diag, "faults.server.jitter", &s.jitter);
    let down_after = duration(diag, "faults.server.down_after", &s.down_after);
    let down_for = duration(diag, "faults.server.down_for", &s.down_for);
    let down = match (down_after?, down_for?) {
        (Some(a), Some(f)) => Some((a, f)),
        (None, None) => None,
        _ => {
            diag.error(
                raw.span(),
                "faults.server",
                "down_after and down_for go together",
                Some("give both, e.g. down_after = \"10s\" and down_for = \"5s\"".into()),
            );
            return None;
        }
    };
    if !ok {
        return None;
    }
    let drop_rate = match &s.drop_rate {
        Some(v) => ratio(diag, "faults.server.drop_rate", v),
        None => Some(0.0),
    };
    Some(ServerChaos {
        drop_rate: drop_rate?,
        error_rate: error_rate?,
        routes,
        latency: latency?.unwrap_or_default(),
        jitter: jitter?.unwrap_or_default(),
        down,
    })
}

fn thresholds(
    diag: &mut Diagnostics<'_>,
    raw: Option<&Spanned<std::collections::BTreeMap<Spanned<String>, Spanned<toml::Value>>>>,
    shape: &RunShape<'_>,
) -> Option<Vec<Threshold>> {
    let mut entries: Vec<_> = raw
        .map(|t| t.get_ref().iter().collect())
        .unwrap_or_default();
    entries.sort_by_key(|(k, _)| k.span().start);
    let mut out = Vec::new();
    let mut ok = true;
    for (metric, condition) in entries {
        let key = format!("thresholds.{}", display_key(metric.get_ref()));
        let kind = match metrics::lookup(metric.get_ref(), shape) {
            Lookup::Found(kind) => kind,
            Lookup::NotProduced { needs } => {
                ok = false;
                diag.error(
                    metric.span(),
                    &key,
                    format!(
                        "this run never produces `{}`, so the threshold could never be checked",
                        metric.get_ref()
                    ),
                    Some(format!(
                        "it comes from {needs}; remove the threshold or change the scenario"
                    )),
                );
                continue;
            }
            Lookup::Unknown { suggestion } => {
                ok = false;
                diag.error(
                    metric.span(),
                    &key,
                    format!("unknown metric `{}`", metric.get_ref()),
                    Some(match suggestion {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "see the README's list of metrics".to_string(),
                    }),
                );
                continue;
            }
        };
        let texts: Option<Vec<&str>> = match condition.get_ref() {
            toml::Value::String(s) => Some(vec![s.as_str()]),
            toml::Value::Array(items) if !items.is_empty() => {
                items.iter().map(toml::Value::as_str).collect()
            }
            _ => None,
        };
        let Some(texts) = texts else {
            ok = false;
            diag.error(
                condition.span(),
                &key,
                "a threshold is a condition, or a list of conditions that must all hold",
                Some("write it as \"< 50ms\", or as [\">= 1ms\", \"< 50ms\"] for a range".into()),
            );
            continue;
        };
        for text in texts {
            match Condition::parse(text, kind) {
                Ok(c) => out.push(Threshold {
                    metric: metric.get_ref().clone(),
                    kind,
                    condition: c,
                }),
                Err(e) => {
                    ok = false;
                    diag.error(condition.span(), &key, e.message, Some(e.hint));
                }
            }
        }
    }
    ok.then_some(out)
}
