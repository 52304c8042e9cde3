//! The `[probes.*]` tables: rate-limit conformance (websocket and HTTP targets), input hardening and
//! slow consumer (websocket targets), each with defaults fit for the reference server.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::Spanned;

use super::websocket::{duration, size, template};
use super::{count, positive_rate};
use crate::config::Diagnostics;
use crate::config::units::parse_ratio;
use crate::scenario::model::TargetKind;
use crate::scenario::raw::{RawHardening, RawProbes, RawRateLimitProbe, RawSlowConsumer};
use crate::scenario::websocket::{
    DeclaredLimit, FRAME_VARIABLES, HardeningProbe, Probes, RateLimitProbe, SlowConsumerProbe,
};

/// Malformed messages the hardening probe sends by default.
pub const DEFAULT_MALFORMED: &[&str] = &[
    r#"{"type": "echo", "correlation_id": "#,
    "not json at all",
    "[1, 2",
];

/// Subscription paths the hardening probe expects the reference server to refuse.
pub fn default_invalid_paths() -> Vec<String> {
    let mut v: Vec<String> = ["", "no-leading-slash", "/", "/a/../b", "/a b", "/<script>"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.push(format!("/{}", "a".repeat(300)));
    v
}

pub(super) fn probes(
    diag: &mut Diagnostics<'_>,
    raw: Option<&Spanned<RawProbes>>,
    kind: Option<TargetKind>,
) -> Option<Probes> {
    let Some(raw) = raw else {
        return Some(Probes::default());
    };
    let p = raw.get_ref();
    let websocket_only = |diag: &mut Diagnostics<'_>, span: std::ops::Range<usize>, key: &str| {
        if kind.is_some_and(|k| k != TargetKind::Websocket) {
            diag.error(
                span,
                key,
                format!("[{key}] probes a WebSocket endpoint"),
                Some("remove it, or set target.kind = \"websocket\"".into()),
            );
            false
        } else {
            true
        }
    };
    let rate_limit = match &p.rate_limit {
        Some(r) => rate_limit(diag, r, kind).map(Some),
        None => Some(None),
    };
    let hardening = match &p.hardening {
        Some(h) if websocket_only(diag, h.span(), "probes.hardening") => {
            hardening(diag, h.get_ref()).map(Some)
        }
        Some(_) => None,
        None => Some(None),
    };
    let slow_consumer = match &p.slow_consumer {
        Some(s) if websocket_only(diag, s.span(), "probes.slow_consumer") => {
            slow_consumer(diag, s.get_ref()).map(Some)
        }
        Some(_) => None,
        None => Some(None),
    };
    let body_size = match &p.body_size {
        Some(b) => super::body_size::body_size(diag, b, kind).map(Some),
        None => Some(None),
    };
    Some(Probes {
        rate_limit: rate_limit?,
        hardening: hardening?,
        slow_consumer: slow_consumer?,
        body_size: body_size?,
    })
}

/// A list of HTTP statuses (`default` when absent or empty); `None` when one is not a status.
pub(super) fn statuses(
    diag: &mut Diagnostics<'_>,
    raw: Option<&Spanned<Vec<Spanned<i64>>>>,
    key: &str,
    default: &[u16],
) -> Option<Vec<u16>> {
    let mut out = Vec::new();
    let mut ok = true;
    for s in raw.iter().flat_map(|s| s.get_ref()) {
        match u16::try_from(*s.get_ref()) {
            Ok(code) if (100..600).contains(&code) => out.push(code),
            _ => {
                diag.error(
                    s.span(),
                    key,
                    format!("{} is not an HTTP status", s.get_ref()),
                    Some(format!("e.g. {default:?}")),
                );
                ok = false;
            }
        }
    }
    if out.is_empty() {
        out = default.to_vec();
    }
    ok.then_some(out)
}

/// Discovery's defaults: messages in the burst, the ramp's first rate and the rate it gives up at.
const DISCOVERY_BURST: u32 = 500;
const DISCOVERY_START: f64 = 10.0;
const DISCOVERY_MAX: f64 = 5000.0;

fn rate_limit(
    diag: &mut Diagnostics<'_>,
    raw: &Spanned<RawRateLimitProbe>,
    kind: Option<TargetKind>,
) -> Option<RateLimitProbe> {
    let r = raw.get_ref();
    let key = |k: &str| format!("probes.rate_limit.{k}");
    // Both, or neither: then the probe finds the limit itself.
    let rate = r
        .rate
        .as_ref()
        .map(|v| positive_rate(diag, v, &key("rate")));
    let burst = r
        .burst
        .as_ref()
        .map(|b| count(diag, b, &key("burst"), 1_000_000).map(|b| b as u32));
    let declared = match (rate, burst) {
        (None, None) => Some(None),
        (Some(Some(rate)), Some(Some(burst))) => Some(Some(DeclaredLimit { rate, burst })),
        (Some(_), None) | (None, Some(_)) => {
            let (have, lacks, example) = match r.rate {
                Some(_) => ("rate", "burst", "burst = 40"),
                None => ("burst", "rate", "rate = \"20/s\""),
            };
            diag.missing(
                raw.span(),
                &key(lacks),
                format!(
                    "a declared limit has a rate and a burst: add {example} beside {have}, or remove \
                     {have} to let the probe discover the limit"
                ),
            );
            None
        }
        _ => None,
    };
    let (rate, burst) = match declared.flatten() {
        Some(d) => (Some(d.rate), Some(d.burst)),
        None => (None, None),
    };
    let tolerance = match &r.tolerance {
        None => Some(0.1),
        Some(t) => match parse_ratio(t.get_ref()) {
            Ok(v) if v > 0.0 && v < 1.0 => Some(v),
            Ok(v) => {
                diag.error(
                    t.span(),
                    key("tolerance"),
                    format!("{v} is outside 0..1"),
                    Some("e.g. \"10%\"".into()),
                );
                None
            }
            Err(e) => {
                diag.error(t.span(), key("tolerance"), e.message, Some(e.hint));
                None
            }
        },
    };
    let refill = match (rate, burst) {
        (Some(rate), Some(burst)) => {
            Duration::from_secs_f64(f64::from(burst) / rate.per_second * 1.5)
                .max(Duration::from_secs(1))
        }
        _ => Duration::from_secs(3),
    };
    let idle = duration(diag, r.idle.as_ref(), &key("idle"), refill);
    let burst_size = match &r.burst_size {
        Some(b) => count(diag, b, &key("burst_size"), 100_000).map(|b| b as u32),
        None => Some(burst.map_or(DISCOVERY_BURST, |b| b.saturating_mul(3).max(b + 10))),
    };
    if let (Some(size), Some(burst), Some(raw_size)) = (burst_size, burst, &r.burst_size)
        && size <= burst
    {
        diag.error(
            raw_size.span(),
            key("burst_size"),
            format!("a burst of {size} cannot show a limit of {burst}"),
            Some(format!(
                "send well past the declared burst, e.g. {}",
                burst * 3
            )),
        );
    }
    let sustain = duration(
        diag,
        r.sustain.as_ref(),
        &key("sustain"),
        Duration::from_secs(5),
    );
    let over = match &r.over {
        None => Some(2.0),
        Some(o) if *o.get_ref() > 1.0 && *o.get_ref() <= 100.0 => Some(*o.get_ref()),
        Some(o) => {
            diag.error(
                o.span(),
                key("over"),
                format!("{} does not exceed the declared rate", o.get_ref()),
                Some("offer more than the declared rate, e.g. over = 2.0".into()),
            );
            None
        }
    };
    let http = kind.is_none_or(|k| k != TargetKind::Websocket);
    for (k, span) in [
        ("reject_status", r.reject_status.as_ref().map(Spanned::span)),
        ("path", r.path.as_ref().map(Spanned::span)),
    ] {
        if let (false, Some(span)) = (http, span) {
            diag.error(
                span,
                key(k),
                format!("{k} is for HTTP targets; a WebSocket endpoint refuses with error frames"),
                Some(format!("remove {k}")),
            );
        }
    }
    let reject_status = statuses(
        diag,
        r.reject_status.as_ref(),
        &key("reject_status"),
        &[429, 503],
    );
    let path = match (&r.path, kind) {
        (Some(p), _) if !p.get_ref().starts_with('/') => {
            diag.error(
                p.span(),
                key("path"),
                "a request path starts with `/`",
                Some("e.g. \"/health\"".into()),
            );
            None
        }
        (Some(p), _) => Some(p.get_ref().clone()),
        (None, Some(TargetKind::Handoff)) => Some("/health".into()),
        (None, _) => Some("/".into()),
    };
    let mut ramp_rate = |field: &str, v: Option<&Spanned<String>>, default: f64| match v {
        None => Some(default),
        Some(v) => positive_rate(diag, v, &key(field)).map(|r| r.per_second),
    };
    let start_rate = ramp_rate("start_rate", r.start_rate.as_ref(), DISCOVERY_START);
    // Past a declaration, the ramp looks a few doublings further (16 × what it first offered).
    let declared_from = rate.zip(over).map(|(rate, over)| rate.per_second * over);
    let max_rate = ramp_rate(
        "max_rate",
        r.max_rate.as_ref(),
        declared_from.map_or(DISCOVERY_MAX, |from| from * 16.0),
    );
    let ramp_from = declared_from.or(start_rate);
    if let (Some(lo), Some(hi), Some(raw_max)) = (ramp_from, max_rate, &r.max_rate)
        && hi <= lo
    {
        let (what, hint) = match declared_from {
            Some(_) => (
                "the first offer (over × the declared rate)",
                "max_rate must exceed over × rate",
            ),
            None => ("where it starts", "max_rate must exceed start_rate"),
        };
        diag.error(
            raw_max.span(),
            key("max_rate"),
            format!("the ramp gives up at {hi}/s, not above {what} ({lo}/s)"),
            Some(hint.into()),
        );
    }
    let step = duration(diag, r.step.as_ref(), &key("step"), Duration::from_secs(1));
    if let (Some(step), Some(raw_step)) = (step, &r.step)
        && step < Duration::from_millis(200)
    {
        diag.error(
            raw_step.span(),
            key("step"),
            format!(
                "a step of {} is too short to tell a rate",
                crate::config::units::format_duration(step)
            ),
            Some("give each step of the ramp at least 200ms, e.g. step = \"1s\"".into()),
        );
    }
    if let (Some(hi), Some(raw_max)) = (max_rate, &r.max_rate)
        && hi > 100_000.0
    {
        diag.error(
            raw_max.span(),
            key("max_rate"),
            format!("{hi}/s is more than the probe can offer from one client"),
            Some("at most 100000/s".into()),
        );
    }
    Some(RateLimitProbe {
        declared: declared?,
        start_rate: start_rate?,
        max_rate: max_rate?,
        step: step?,
        tolerance: tolerance?,
        idle: idle?,
        burst_size: burst_size?,
        sustain: sustain?,
        over: over?,
        reject_status: reject_status?,
        path: path?,
        require_retry_after: r.require_retry_after.as_ref().is_some_and(|b| *b.get_ref()),
    })
}

fn hardening(diag: &mut Diagnostics<'_>, h: &RawHardening) -> Option<HardeningProbe> {
    let key = |k: &str| format!("probes.hardening.{k}");
    let max = size(
        diag,
        h.max_message_size.as_ref(),
        &key("max_message_size"),
        64 * 1024,
    );
    if max == Some(0) {
        diag.error(
            h.max_message_size.as_ref().map_or(0..0, Spanned::span),
            key("max_message_size"),
            "the limit must be at least one byte",
            None,
        );
    }
    let close = match &h.size_close_code {
        None => Some(1009),
        Some(c) => match u16::try_from(*c.get_ref()) {
            Ok(code) if (1000..5000).contains(&code) => Some(code),
            _ => {
                diag.error(
                    c.span(),
                    key("size_close_code"),
                    format!("{} is not a WebSocket close code", c.get_ref()),
                    Some(
                        "close codes run from 1000 to 4999; 1009 means \"message too big\"".into(),
                    ),
                );
                None
            }
        },
    };
    let strings = |v: &Option<Spanned<Vec<Spanned<String>>>>| -> Option<Vec<String>> {
        v.as_ref()
            .map(|v| v.get_ref().iter().map(|s| s.get_ref().clone()).collect())
    };
    let unknown_type = template(
        diag,
        h.unknown_type.as_ref(),
        &key("unknown_type"),
        r#"{"type":"no_such_type","correlation_id":"{{id}}"}"#,
        FRAME_VARIABLES,
    );
    let normalised_paths = match &h.normalised_paths {
        Some(m) => m
            .get_ref()
            .iter()
            .map(|(k, v)| (k.get_ref().clone(), v.get_ref().clone()))
            .collect(),
        None => BTreeMap::from([(
            "/Probe//Normalised/".to_string(),
            "/probe/normalised".to_string(),
        )]),
    };
    if max? == 0 {
        return None;
    }
    Some(HardeningProbe {
        max_message_bytes: max?,
        size_close_code: close?,
        malformed: strings(&h.malformed)
            .unwrap_or_else(|| DEFAULT_MALFORMED.iter().map(|s| s.to_string()).collect()),
        unknown_type: unknown_type?,
        invalid_paths: strings(&h.invalid_paths).unwrap_or_else(default_invalid_paths),
        normalised_paths,
    })
}

fn slow_consumer(diag: &mut Diagnostics<'_>, s: &RawSlowConsumer) -> Option<SlowConsumerProbe> {
    let key = |k: &str| format!("probes.slow_consumer.{k}");
    let after = duration(
        diag,
        s.after.as_ref(),
        &key("after"),
        Duration::from_secs(3),
    );
    let expect_within = duration(
        diag,
        s.expect_within.as_ref(),
        &key("expect_within"),
        Duration::from_secs(10),
    );
    let publishers = match &s.publishers {
        Some(p) => count(diag, p, &key("publishers"), 1000).map(|p| p as u32),
        None => Some(8),
    };
    let publish_rate = match &s.publish_rate {
        Some(r) => positive_rate(diag, r, &key("publish_rate")),
        None => crate::config::units::parse_rate("18/s").ok(),
    };
    let payload_size = size(
        diag,
        s.payload_size.as_ref(),
        &key("payload_size"),
        60 * 1024,
    );
    let path = template(
        diag,
        s.path.as_ref(),
        &key("path"),
        "/probe/slow/{{run_id}}",
        &["run_id"],
    );
    let others_slowdown = duration(
        diag,
        s.others_slowdown.as_ref(),
        &key("others_slowdown"),
        Duration::from_millis(100),
    );
    let close_code = match &s.close_code {
        None => Some(1008),
        Some(c) => match u16::try_from(*c.get_ref()) {
            Ok(code) if (1000..=4999).contains(&code) => Some(code),
            _ => {
                diag.error(
                    c.span(),
                    key("close_code"),
                    format!("{} is not a WebSocket close code", c.get_ref()),
                    Some("close codes run from 1000 to 4999; 1008 is \"policy violation\"".into()),
                );
                None
            }
        },
    };
    Some(SlowConsumerProbe {
        close_code: close_code?,
        after: after?,
        expect_within: expect_within?,
        publishers: publishers?,
        publish_rate: publish_rate?,
        payload_size: payload_size?,
        path: path?,
        others_slowdown: others_slowdown?,
    })
}
