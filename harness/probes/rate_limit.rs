//! Rate-limit conformance. After an idle period (so a token bucket is full), a burst well past the
//! declared burst is sent at once, then a sustained rate above the declared rate. From what was accepted
//! and rejected, and when it was sent, the probe infers the rate (accepted per second in the sustained
//! phase, which starts with the bucket drained) and the burst (accepted in the burst, less what the
//! rate refilled meanwhile), and compares both with the policy declared in the scenario.
//!
//! The same question is asked of WebSocket endpoints (rejections are the frames the protocol's
//! `rate_limited` matcher recognises, wherever they appear, or closes with a code it names) and of
//! HTTP ones (rejections are 429 or 503, which should carry `Retry-After`).

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::task::JoinSet;
use url::Url;

use super::{ProbeError, WsEnv};
use crate::drivers::ws::conn::Reply;
use crate::result::ws::{RateSample, RetryAfter};
use crate::result::{CheckResult, RateLimitMetrics};
use crate::scenario::websocket::RateLimitProbe;

/// How long replies may take after the last message was sent.
const ANSWER_WAIT: Duration = Duration::from_secs(3);
/// Width of the series' bins.
const BIN_S: f64 = 0.1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Burst,
    Sustain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accepted,
    /// Refused as over the limit.
    Rejected,
    /// Refused for another reason (the protocol's `rejection`, not its `rate_limited`).
    Refused,
    Unanswered,
}

/// One message the probe sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub phase: Phase,
    /// Seconds from the first message of the burst.
    pub sent_s: f64,
    pub answer: Answer,
}

/// What the probe is about to do, for the progress display.
pub fn describe(p: &RateLimitProbe) -> String {
    use crate::config::units::format_duration;
    format!(
        "probing the rate limit: {} idle, a burst of {}, then {:.0}/s for {}",
        format_duration(p.idle),
        p.burst_size,
        p.rate.per_second * p.over,
        format_duration(p.sustain)
    )
}

/// The sending plan: when each message goes, from the start of the burst.
pub fn plan(p: &RateLimitProbe) -> Vec<(Phase, Duration)> {
    let mut out: Vec<(Phase, Duration)> = (0..p.burst_size)
        .map(|_| (Phase::Burst, Duration::ZERO))
        .collect();
    let rate = p.rate.per_second * p.over;
    let n = (rate * p.sustain.as_secs_f64()).round().max(2.0) as u64;
    // The sustained phase starts one interval after the burst, with the bucket drained.
    for k in 1..=n {
        out.push((Phase::Sustain, Duration::from_secs_f64(k as f64 / rate)));
    }
    out
}

/// Infers the rate and the burst from the samples and judges them against the declared policy.
pub fn infer(samples: &[Sample], p: &RateLimitProbe) -> RateLimitMetrics {
    let declared_rate = p.rate.per_second;
    let declared_burst = f64::from(p.burst);
    let count = |phase: Phase, answer: Answer| {
        samples
            .iter()
            .filter(|s| s.phase == phase && s.answer == answer)
            .count() as f64
    };
    let span = |phase: Phase| {
        let times: Vec<f64> = samples
            .iter()
            .filter(|s| s.phase == phase)
            .map(|s| s.sent_s)
            .collect();
        let lo = times.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (times.len(), if times.is_empty() { 0.0 } else { hi - lo })
    };
    let (sustained, sustain_span) = span(Phase::Sustain);
    // n messages evenly spaced span (n - 1) gaps; the phase lasts n gaps.
    let sustain_secs = if sustained > 1 {
        sustain_span * sustained as f64 / (sustained as f64 - 1.0)
    } else {
        0.0
    };
    let mut notes = Vec::new();
    let inferred_rate = if count(Phase::Sustain, Answer::Rejected) == 0.0 {
        notes.push(format!(
            "nothing was rejected at {:.1}/s: the limit, if any, is above that",
            declared_rate * p.over
        ));
        None
    } else if sustain_secs > 0.0 {
        Some(count(Phase::Sustain, Answer::Accepted) / sustain_secs)
    } else {
        None
    };
    let (_, burst_span) = span(Phase::Burst);
    let inferred_burst = if count(Phase::Burst, Answer::Rejected) == 0.0 {
        notes.push(format!(
            "all {} messages of the burst were accepted: the burst allowed is at least that",
            count(Phase::Burst, Answer::Accepted)
        ));
        None
    } else {
        let refill = inferred_rate.unwrap_or(declared_rate) * burst_span;
        Some((count(Phase::Burst, Answer::Accepted) - refill).max(0.0))
    };
    let within =
        |inferred: Option<f64>, declared: f64, slack: f64, what: &str, notes: &mut Vec<String>| {
            match inferred {
                Some(v) if (v - declared).abs() <= slack => true,
                Some(v) => {
                    notes.push(format!(
                        "inferred {what} {v:.1} is {:+.0}% off the declared {declared}",
                        (v - declared) / declared * 100.0
                    ));
                    false
                }
                None => false,
            }
        };
    let rate_ok = within(
        inferred_rate,
        declared_rate,
        p.tolerance * declared_rate,
        "rate",
        &mut notes,
    );
    let burst_ok = within(
        inferred_burst,
        declared_burst,
        (p.tolerance * declared_burst).max(1.0),
        "burst",
        &mut notes,
    );
    let unanswered = samples
        .iter()
        .filter(|s| s.answer == Answer::Unanswered)
        .count() as u64;
    if unanswered > 0 {
        notes.push(format!("{unanswered} messages were never answered"));
    }
    let refused = samples
        .iter()
        .filter(|s| s.answer == Answer::Refused)
        .count() as u64;
    if refused > 0 {
        notes.push(format!(
            "{refused} messages were refused for another reason than the rate limit (they matched \
             `rejection`, not `rate_limited`: if they are the throttle, describe them in \
             [websocket.protocol] rate_limited)"
        ));
    }
    RateLimitMetrics {
        offered: samples.len() as u64,
        accepted: samples
            .iter()
            .filter(|s| s.answer == Answer::Accepted)
            .count() as u64,
        rejected: samples
            .iter()
            .filter(|s| s.answer == Answer::Rejected)
            .count() as u64,
        unanswered,
        refused,
        inferred_rate_per_s: inferred_rate,
        inferred_burst,
        declared_rate_per_s: declared_rate,
        declared_burst,
        tolerance: p.tolerance,
        conforms: rate_ok && burst_ok,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
        retry_after: None,
        series: series(samples),
    }
}

/// Cumulative offered and accepted by send time.
fn series(samples: &[Sample]) -> Vec<RateSample> {
    let end = samples.iter().map(|s| s.sent_s).fold(0.0, f64::max);
    let bins = (end / BIN_S).ceil() as usize + 1;
    let mut offered = vec![0u64; bins + 1];
    let mut accepted = vec![0u64; bins + 1];
    for s in samples {
        let b = ((s.sent_s / BIN_S).floor() as usize + 1).min(bins);
        offered[b] += 1;
        if s.answer == Answer::Accepted {
            accepted[b] += 1;
        }
    }
    let (mut o, mut a) = (0, 0);
    (0..=bins)
        .map(|b| {
            o += offered[b];
            a += accepted[b];
            RateSample {
                t_s: b as f64 * BIN_S,
                offered: o,
                accepted: a,
            }
        })
        .collect()
}

/// The conformance check, named for reports.
pub fn check(m: &RateLimitMetrics) -> CheckResult {
    let fmt = |v: Option<f64>| v.map_or("none".to_string(), |v| format!("{v:.1}"));
    CheckResult::new(
        "rate_limit.conforms",
        m.conforms,
        format!(
            "declared {}/s burst {}, inferred {}/s burst {} (tolerance {:.0}%){}",
            m.declared_rate_per_s,
            m.declared_burst,
            fmt(m.inferred_rate_per_s),
            fmt(m.inferred_burst),
            m.tolerance * 100.0,
            m.note.as_ref().map_or(String::new(), |n| format!(": {n}"))
        ),
    )
}

/// Runs the probe against a WebSocket endpoint, on a connection of its own.
pub async fn probe_ws(env: &WsEnv, p: &RateLimitProbe) -> Result<RateLimitMetrics, ProbeError> {
    let conn = env.open(u32::MAX).await?;
    tokio::time::sleep(p.idle).await;
    let protocol = &env.shared.protocol;
    let payload = Value::String(String::new());
    let run_id = Value::String(env.run_id.clone());
    let null = Value::Null;
    let mut waiting = Vec::new();
    let t0 = tokio::time::Instant::now();
    let mut closed = None;
    for (i, (phase, at)) in plan(p).into_iter().enumerate() {
        tokio::time::sleep_until(t0 + at).await;
        let sent_s = t0.elapsed().as_secs_f64();
        let cid = format!("{}-rl-{i}", env.run_id);
        let id = Value::String(cid.clone());
        let sent = conn
            .request(&cid, |seq| {
                let seq = Value::from(seq);
                protocol
                    .echo
                    .render(&crate::drivers::ws::FrameVars {
                        id: &id,
                        seq: &seq,
                        publisher: &null,
                        path: &null,
                        payload: &payload,
                        run_id: &run_id,
                        index: &null,
                    })
                    .unwrap_or_default()
            })
            .await;
        match sent {
            Ok(rx) => waiting.push((phase, sent_s, rx)),
            Err(c) => {
                closed = Some(c);
                break;
            }
        }
    }
    let deadline = tokio::time::Instant::now() + ANSWER_WAIT;
    let mut samples = Vec::with_capacity(waiting.len());
    let mut retry = RetryAfter::default();
    for (phase, sent_s, rx) in waiting {
        let answer = match tokio::time::timeout_at(deadline, conn.wait(rx)).await {
            Ok(Reply::Answer(_)) => Answer::Accepted,
            Ok(Reply::Rejected {
                rate_limited: true,
                retry_after_s,
                ..
            }) => {
                match retry_after_s {
                    Some(s) => {
                        retry.present += 1;
                        retry.max_s = Some(retry.max_s.map_or(s, |m: f64| m.max(s)));
                    }
                    None => retry.missing += 1,
                }
                Answer::Rejected
            }
            Ok(Reply::Rejected { .. }) => Answer::Refused,
            _ => Answer::Unanswered,
        };
        samples.push(Sample {
            phase,
            sent_s,
            answer,
        });
    }
    let closed = closed.or_else(|| conn.closed_by());
    conn.close().await;
    let mut m = infer(&samples, p);
    if protocol.retry_after.is_some() || p.require_retry_after {
        m.retry_after = Some(retry);
    }
    if let Some(c) = closed.filter(|c| c.code.is_some_and(|code| code != 1000)) {
        let note = format!("the endpoint closed the probe's connection: {c}");
        m.note = Some(match m.note {
            Some(n) => format!("{n}; {note}"),
            None => note,
        });
    }
    Ok(m)
}

/// Runs the probe against an HTTP endpoint: `GET {base}{path}`, rejections by status.
pub async fn probe_http(
    base: &Url,
    p: &RateLimitProbe,
    timeout: Duration,
    net: &crate::net::Network,
) -> Result<RateLimitMetrics, ProbeError> {
    let url = base.join(&p.path).map_err(|source| ProbeError::Url {
        base: base.clone(),
        path: p.path.clone(),
        source,
    })?;
    let client = crate::drivers::http::build_client(p.burst_size as usize, net)
        .map_err(ProbeError::Client)?;
    tokio::time::sleep(p.idle).await;
    let t0 = Instant::now();
    let mut tasks = JoinSet::new();
    for (phase, at) in plan(p) {
        tokio::time::sleep_until((t0 + at).into()).await;
        let sent_s = t0.elapsed().as_secs_f64();
        let (client, url, reject) = (client.clone(), url.clone(), p.reject_status.clone());
        tasks.spawn(async move {
            let answer = match client.get(url).timeout(timeout).send().await {
                Ok(resp) if reject.contains(&resp.status().as_u16()) => {
                    let retry = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .map(|v| v.trim().parse::<f64>().ok());
                    (Answer::Rejected, Some(retry))
                }
                Ok(_) => (Answer::Accepted, None),
                Err(_) => (Answer::Unanswered, None),
            };
            (phase, sent_s, answer)
        });
    }
    let mut samples = Vec::new();
    let mut retry = RetryAfter::default();
    while let Some(done) = tasks.join_next().await {
        let Ok((phase, sent_s, (answer, header))) = done else {
            continue;
        };
        match header {
            Some(Some(seconds)) => {
                retry.present += 1;
                if let Some(s) = seconds {
                    retry.max_s = Some(retry.max_s.map_or(s, |m: f64| m.max(s)));
                }
            }
            Some(None) => retry.missing += 1,
            None => {}
        }
        samples.push(Sample {
            phase,
            sent_s,
            answer,
        });
    }
    samples.sort_by(|a, b| a.sent_s.total_cmp(&b.sent_s));
    let mut m = infer(&samples, p);
    m.retry_after = Some(retry);
    Ok(m)
}

/// Longest the load waits for a drained bucket to refill.
pub const MAX_REFILL_WAIT: Duration = Duration::from_secs(30);

/// How long a bucket the probe drained takes to fill again: its burst at its rate (as inferred, else
/// as declared), or the longest `Retry-After` the target sent if that is longer; with a tenth more for
/// good measure, and at most [`MAX_REFILL_WAIT`]. The load waits this long after the probe, so that
/// its first requests do not meet the limit the probe left exhausted.
pub fn refill_time(m: &RateLimitMetrics) -> Duration {
    let rate = m
        .inferred_rate_per_s
        .filter(|r| *r > 0.0)
        .unwrap_or(m.declared_rate_per_s);
    let burst = m.inferred_burst.unwrap_or(m.declared_burst).max(1.0);
    let refill = if rate > 0.0 { burst / rate } else { 0.0 };
    let asked = m.retry_after.and_then(|r| r.max_s).unwrap_or(0.0);
    let seconds = refill.max(asked) * 1.1;
    Duration::from_secs_f64(seconds.clamp(0.0, MAX_REFILL_WAIT.as_secs_f64()))
}

/// The Retry-After check of an HTTP probe that requires it.
pub fn retry_after_check(m: &RateLimitMetrics) -> Option<CheckResult> {
    let r = m.retry_after?;
    Some(CheckResult::new(
        "rate_limit.retry_after",
        r.missing == 0 && r.present > 0,
        format!(
            "{} of {} rate-limit refusals said when to retry",
            r.present,
            r.present + r.missing
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::units::parse_rate;
    use crate::reference::bucket::TokenBucket;

    fn probe(rate: &str, burst: u32) -> RateLimitProbe {
        RateLimitProbe {
            rate: parse_rate(rate).unwrap(),
            burst,
            tolerance: 0.1,
            idle: Duration::from_secs(3),
            burst_size: burst * 3,
            sustain: Duration::from_secs(5),
            over: 2.0,
            reject_status: vec![429, 503],
            path: "/".into(),
            require_retry_after: false,
        }
    }

    /// What a bucket of `rate`/`burst` answers to the probe's plan.
    fn simulate(p: &RateLimitProbe, rate: f64, burst: u32) -> Vec<Sample> {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(rate, burst, t0);
        plan(p)
            .into_iter()
            .enumerate()
            .map(|(i, (phase, at))| {
                // The burst goes out over a few milliseconds, as it does on a real socket.
                let at = match phase {
                    Phase::Burst => at + Duration::from_micros(i as u64 * 50),
                    Phase::Sustain => at,
                };
                let answer = if bucket.try_take(t0 + at) {
                    Answer::Accepted
                } else {
                    Answer::Rejected
                };
                Sample {
                    phase,
                    sent_s: at.as_secs_f64(),
                    answer,
                }
            })
            .collect()
    }

    #[test]
    fn a_bucket_as_declared_conforms() {
        let p = probe("20/s", 40);
        let m = infer(&simulate(&p, 20.0, 40), &p);
        assert!(m.conforms, "{m:?}");
        let rate = m.inferred_rate_per_s.unwrap();
        assert!((rate - 20.0).abs() < 1.0, "{rate}");
        let burst = m.inferred_burst.unwrap();
        assert!((burst - 40.0).abs() <= 1.5, "{burst}");
        assert_eq!(m.offered, 120 + 200);
        let last = m.series.last().unwrap();
        assert_eq!((last.offered, last.accepted), (m.offered, m.accepted));
    }

    #[test]
    fn a_looser_rate_or_a_bigger_burst_does_not() {
        let p = probe("20/s", 40);
        let m = infer(&simulate(&p, 25.0, 40), &p);
        assert!(!m.conforms);
        assert!((m.inferred_rate_per_s.unwrap() - 25.0).abs() < 1.0);
        assert!(m.note.unwrap().contains("rate"));
        let m = infer(&simulate(&p, 20.0, 60), &p);
        assert!(!m.conforms);
        assert!((m.inferred_burst.unwrap() - 60.0).abs() <= 1.5);
    }

    #[test]
    fn no_limit_at_all_is_said_plainly() {
        let p = probe("20/s", 40);
        let m = infer(&simulate(&p, 10_000.0, 10_000), &p);
        assert!(!m.conforms);
        assert_eq!(m.rejected, 0);
        assert!(m.note.unwrap().contains("nothing was rejected"));
    }
}
