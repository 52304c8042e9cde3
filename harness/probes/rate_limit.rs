//! Rate-limit conformance and discovery. After an idle period (so a token bucket is full), a burst
//! well past the burst is sent at once, then a sustained rate above the limit. From what was accepted
//! and rejected, and when it was sent, the probe infers the rate (accepted per second in the sustained
//! phase, which starts with the bucket drained) and the burst (accepted in the burst, less what the
//! rate refilled meanwhile).
//!
//! With a declared limit the sustained phase offers `over` times the declared rate, and the inferred
//! figures are compared with the declaration. Without one — or when the declared rate met no refusal,
//! so the real limit is higher than declared — the probe ramps: it offers `start_rate`, doubling every
//! `step`, until a step meets refusals (or `max_rate` meets none), then sustains `over` times that rate.
//!
//! The same question is asked of WebSocket endpoints (rejections are the frames the protocol's
//! `rate_limited` matcher recognises, wherever they appear, or closes with a code it names) and of
//! HTTP ones (rejections are 429 or 503, which should carry `Retry-After`).

use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use url::Url;

use super::{ProbeError, WsEnv};
use crate::drivers::ws::conn::{ClosedBy, Conn, Reply};
use crate::result::ws::{RampStep, RateSample, RetryAfter};
use crate::result::{CheckResult, RateLimitMetrics};
use crate::scenario::websocket::RateLimitProbe;

/// How long replies may take after the last message of a phase was sent.
const ANSWER_WAIT: Duration = Duration::from_secs(3);
/// Width of the series' bins.
const BIN_S: f64 = 0.1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Burst,
    /// A step of the ramp that looks for the rate where refusals start.
    Ramp,
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
    match p.declared {
        Some(d) => format!(
            "probing the rate limit: {} idle, a burst of {}, then {:.0}/s for {}",
            format_duration(p.idle),
            p.burst_size,
            d.rate.per_second * p.over,
            format_duration(p.sustain)
        ),
        None => format!(
            "discovering the rate limit: {} idle, a burst of {}, then from {:.0}/s doubling every {} \
             until refusals start (at most {:.0}/s)",
            format_duration(p.idle),
            p.burst_size,
            p.start_rate,
            format_duration(p.step),
            p.max_rate
        ),
    }
}

/// A way of sending the probe's messages and hearing their answers.
trait Channel {
    type Pending;
    /// Sends message `i`; `None` once the target has closed the channel.
    async fn send(&mut self, i: usize) -> Option<Self::Pending>;
    /// The answer to a message sent, waiting until `deadline` at most.
    async fn answer(&mut self, pending: Self::Pending, deadline: Instant) -> Answer;
}

/// The adaptive sender: phases of messages, each settled before the next is chosen when the choice
/// depends on its answers.
struct Driver<'a, C: Channel> {
    channel: C,
    p: &'a RateLimitProbe,
    t0: Instant,
    sent: usize,
    closed: bool,
    unsettled: Vec<(Phase, f64, C::Pending)>,
    samples: Vec<Sample>,
    ramp: Vec<RampStep>,
}

impl<'a, C: Channel> Driver<'a, C> {
    fn new(channel: C, p: &'a RateLimitProbe) -> Self {
        Self {
            channel,
            p,
            t0: Instant::now(),
            sent: 0,
            closed: false,
            unsettled: Vec::new(),
            samples: Vec::new(),
            ramp: Vec::new(),
        }
    }

    async fn send_one(&mut self, phase: Phase) {
        if self.closed {
            return;
        }
        let sent_s = self.t0.elapsed().as_secs_f64();
        match self.channel.send(self.sent).await {
            Some(pending) => self.unsettled.push((phase, sent_s, pending)),
            None => self.closed = true,
        }
        self.sent += 1;
    }

    /// `n` messages, at once or at `pace` per second.
    async fn burst(&mut self, n: u32, pace: Option<f64>) {
        match pace {
            Some(pace) => self.count_paced(Phase::Burst, pace, u64::from(n), 0).await,
            None => {
                for _ in 0..n {
                    self.send_one(Phase::Burst).await;
                }
            }
        }
    }

    /// `rate` per second for `length` (at least two messages), the first one interval from now.
    async fn paced(&mut self, phase: Phase, rate: f64, length: Duration) {
        let n = (rate * length.as_secs_f64()).round().max(2.0) as u64;
        self.count_paced(phase, rate, n, 1).await;
    }

    /// `n` messages at `rate` per second, the first `first` intervals from now.
    async fn count_paced(&mut self, phase: Phase, rate: f64, n: u64, first: u64) {
        let start = Instant::now();
        for k in first..first + n {
            if self.closed {
                return;
            }
            tokio::time::sleep_until(start + Duration::from_secs_f64(k as f64 / rate)).await;
            self.send_one(phase).await;
        }
    }

    /// Waits for every answer outstanding.
    async fn settle(&mut self) {
        let deadline = Instant::now() + ANSWER_WAIT;
        for (phase, sent_s, pending) in std::mem::take(&mut self.unsettled) {
            let answer = self.channel.answer(pending, deadline).await;
            self.samples.push(Sample {
                phase,
                sent_s,
                answer,
            });
        }
    }

    fn count(&self, phase: Phase, answer: Answer) -> u64 {
        self.samples
            .iter()
            .filter(|s| s.phase == phase && s.answer == answer)
            .count() as u64
    }

    /// One step of the ramp, settled; whether it met refusals.
    async fn ramp_step(&mut self, rate: f64) -> bool {
        let from = self.samples.len() + self.unsettled.len();
        self.paced(Phase::Ramp, rate, self.p.step).await;
        self.settle().await;
        let step = &self.samples[from.min(self.samples.len())..];
        let count = |a: Answer| step.iter().filter(|s| s.answer == a).count() as u64;
        let rejected = count(Answer::Rejected);
        self.ramp.push(RampStep {
            rate_per_s: rate,
            offered: step.len() as u64,
            accepted: count(Answer::Accepted),
            rejected,
        });
        rejected > 0
    }

    /// Ramps from `from` to `p.max_rate`; the rate of the first step that met refusals.
    async fn ramp(&mut self, from: f64) -> Option<f64> {
        let mut rate = from.min(self.p.max_rate);
        loop {
            if self.ramp_step(rate).await {
                return Some(rate);
            }
            if self.closed || rate >= self.p.max_rate {
                return None;
            }
            rate = (rate * 2.0).min(self.p.max_rate);
        }
    }

    /// The whole probe: burst, then the sustained phase at the declared rate or at the rate the ramp
    /// found. Returns the samples in the order they were sent, and the ramp's steps.
    async fn run(mut self, burst_pace: Option<f64>) -> (Vec<Sample>, Vec<RampStep>, C) {
        let p = self.p;
        self.burst(p.burst_size, burst_pace).await;
        // Every answer to the burst before anything else: requests of the burst still arriving would
        // take the tokens of what follows.
        self.settle().await;
        let ramp_from = match p.declared {
            Some(d) => {
                let rate = d.rate.per_second * p.over;
                self.paced(Phase::Sustain, rate, p.sustain).await;
                self.settle().await;
                if self.count(Phase::Sustain, Answer::Rejected) > 0 {
                    None
                } else {
                    // Nothing refused at the declared rate: the limit is higher than declared (or
                    // there is none). What was sent becomes a step of the ramp that looks for it.
                    for s in self
                        .samples
                        .iter_mut()
                        .filter(|s| s.phase == Phase::Sustain)
                    {
                        s.phase = Phase::Ramp;
                    }
                    let offered = self
                        .samples
                        .iter()
                        .filter(|s| s.phase == Phase::Ramp)
                        .count();
                    self.ramp.push(RampStep {
                        rate_per_s: rate,
                        offered: offered as u64,
                        accepted: self.count(Phase::Ramp, Answer::Accepted),
                        rejected: 0,
                    });
                    (rate < p.max_rate).then_some(rate * 2.0)
                }
            }
            None => Some(p.start_rate),
        };
        if let Some(from) = ramp_from
            && !self.closed
            && let Some(found) = self.ramp(from).await
        {
            self.paced(Phase::Sustain, found * p.over, p.sustain).await;
        }
        self.settle().await;
        (self.samples, self.ramp, self.channel)
    }
}

/// Infers the rate and the burst from the samples and judges them: against the declared policy if
/// there is one, else the limit conforms when one was found.
pub fn infer(samples: &[Sample], ramp: Vec<RampStep>, p: &RateLimitProbe) -> RateLimitMetrics {
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
    let sustain_secs = if sustained > 1 {
        sustain_span * sustained as f64 / (sustained as f64 - 1.0)
    } else {
        0.0
    };
    let mut notes = Vec::new();
    let first_refusal = ramp.iter().find(|s| s.rejected > 0).map(|s| s.rate_per_s);
    if let Some(d) = p.declared
        && ramp.first().is_some_and(|s| s.rejected == 0)
    {
        notes.push(format!(
            "nothing was rejected at {:.1}/s ({} × the declared rate)",
            d.rate.per_second * p.over,
            p.over
        ));
    }
    if let Some(at) = first_refusal {
        notes.push(format!(
            "the ramp met the first refusals at {at:.1}/s and sustained {:.1}/s",
            at * p.over
        ));
    }
    let inferred_rate = if sustained == 0 {
        if let Some(last) = ramp.last() {
            notes.push(format!(
                "nothing was rejected up to {:.1}/s: the limit, if any, is above that (raise \
                 max_rate to look further)",
                last.rate_per_s
            ));
        }
        None
    } else if count(Phase::Sustain, Answer::Rejected) == 0.0 {
        notes.push(format!(
            "nothing was rejected at {:.1}/s: the limit, if any, is above that",
            sustained as f64 / sustain_secs.max(f64::MIN_POSITIVE)
        ));
        None
    } else {
        drained_rate(samples)
    };
    // While the burst arrives the bucket refills, and the messages still arriving take what it
    // refilled: the burst allowed is what was accepted less the rate over the time the burst was sent
    // in (messages arrive as they were sent: one connection keeps their order, and an HTTP burst is
    // paced so that the target keeps up with it).
    let burst_span = span(Phase::Burst).1;
    let inferred_burst = if count(Phase::Burst, Answer::Rejected) == 0.0 {
        notes.push(format!(
            "all {} messages of the burst were accepted: the burst allowed is at least that",
            count(Phase::Burst, Answer::Accepted)
        ));
        None
    } else {
        let rate = inferred_rate
            .or(p.declared.map(|d| d.rate.per_second))
            .unwrap_or(0.0);
        // The bucket was full, a whole number of tokens: of what refilled, the whole tokens were
        // taken — on average half a token less than the refill.
        let refilled = (rate * burst_span - 0.5).max(0.0);
        Some((count(Phase::Burst, Answer::Accepted) - refilled).max(0.0))
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
    let conforms = match p.declared {
        Some(d) => {
            let declared_rate = d.rate.per_second;
            let declared_burst = f64::from(d.burst);
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
            rate_ok && burst_ok
        }
        None => inferred_rate.is_some(),
    };
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
        declared_rate_per_s: p.declared.map(|d| d.rate.per_second),
        declared_burst: p.declared.map(|d| f64::from(d.burst)),
        tolerance: p.tolerance,
        conforms,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
        retry_after: None,
        ramp,
        series: series(samples),
    }
}

/// The rate a drained bucket refills at: the sustained phase's accepted messages after its first
/// refusal (when the bucket was empty), per second from that refusal to its last message.
fn drained_rate(samples: &[Sample]) -> Option<f64> {
    let sustain: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.phase == Phase::Sustain)
        .collect();
    let first = sustain.iter().position(|s| s.answer == Answer::Rejected)?;
    let after = &sustain[first + 1..];
    let secs = after.last()?.sent_s - sustain[first].sent_s;
    let accepted = after
        .iter()
        .filter(|s| s.answer == Answer::Accepted)
        .count();
    (secs > 0.0).then(|| accepted as f64 / secs)
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
    let declared = match (m.declared_rate_per_s, m.declared_burst) {
        (Some(rate), Some(burst)) => format!("declared {rate}/s burst {burst}, "),
        _ => "no declared limit, ".into(),
    };
    CheckResult::new(
        "rate_limit.conforms",
        m.conforms,
        format!(
            "{declared}inferred {}/s burst {}{}{}",
            fmt(m.inferred_rate_per_s),
            fmt(m.inferred_burst),
            if m.declared_rate_per_s.is_some() {
                format!(" (tolerance {:.0}%)", m.tolerance * 100.0)
            } else {
                String::new()
            },
            m.note.as_ref().map_or(String::new(), |n| format!(": {n}"))
        ),
    )
}

/// The probe's own WebSocket connection.
struct WsChannel<'a> {
    env: &'a WsEnv,
    conn: Conn,
    closed: Option<ClosedBy>,
    retry: RetryAfter,
}

impl Channel for WsChannel<'_> {
    type Pending = tokio::sync::oneshot::Receiver<Reply>;

    async fn send(&mut self, i: usize) -> Option<Self::Pending> {
        let protocol = &self.env.shared.protocol;
        let cid = format!("{}-rl-{i}", self.env.run_id);
        let id = Value::String(cid.clone());
        let (payload, run_id, null) = (
            Value::String(String::new()),
            Value::String(self.env.run_id.clone()),
            Value::Null,
        );
        let sent = self
            .conn
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
            Ok(rx) => Some(rx),
            Err(c) => {
                self.closed = Some(c);
                None
            }
        }
    }

    async fn answer(&mut self, rx: Self::Pending, deadline: Instant) -> Answer {
        match tokio::time::timeout_at(deadline, self.conn.wait(rx)).await {
            Ok(Reply::Answer(_)) => Answer::Accepted,
            Ok(Reply::Rejected {
                rate_limited: true,
                retry_after_s,
                ..
            }) => {
                self.retry.record(retry_after_s.map(Some));
                Answer::Rejected
            }
            Ok(Reply::Rejected { .. }) => Answer::Refused,
            _ => Answer::Unanswered,
        }
    }
}

/// Runs the probe against a WebSocket endpoint, on a connection of its own.
pub async fn probe_ws(env: &WsEnv, p: &RateLimitProbe) -> Result<RateLimitMetrics, ProbeError> {
    let conn = env.open(u32::MAX).await?;
    tokio::time::sleep(p.idle).await;
    let channel = WsChannel {
        env,
        conn,
        closed: None,
        retry: RetryAfter::default(),
    };
    // One connection: the messages of the burst arrive in the order, and about as fast as, they go.
    let (samples, ramp, channel) = Driver::new(channel, p).run(None).await;
    let closed = channel.closed.or_else(|| channel.conn.closed_by());
    channel.conn.close().await;
    let mut m = infer(&samples, ramp, p);
    if env.shared.protocol.retry_after.is_some() || p.require_retry_after {
        m.retry_after = Some(channel.retry);
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

/// `GET {base}{path}` on a client of the probe's own; each request runs as its own task.
struct HttpChannel {
    client: reqwest::Client,
    url: Url,
    timeout: Duration,
    reject: std::sync::Arc<[u16]>,
    retry: RetryAfter,
}

/// An HTTP answer, and for a rejection the `Retry-After` it carried (`Some(None)`: present but not
/// in seconds).
type HttpAnswer = (Answer, Option<Option<f64>>);

impl Channel for HttpChannel {
    type Pending = JoinHandle<HttpAnswer>;

    async fn send(&mut self, _: usize) -> Option<Self::Pending> {
        let (client, url, reject, timeout) = (
            self.client.clone(),
            self.url.clone(),
            self.reject.clone(),
            self.timeout,
        );
        Some(tokio::spawn(async move {
            match client.get(url).timeout(timeout).send().await {
                Ok(resp) if reject.contains(&resp.status().as_u16()) => {
                    let retry = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .map(|v| v.to_str().ok().and_then(|v| v.trim().parse::<f64>().ok()));
                    (Answer::Rejected, retry)
                }
                Ok(_) => (Answer::Accepted, None),
                Err(_) => (Answer::Unanswered, None),
            }
        }))
    }

    async fn answer(&mut self, task: Self::Pending, _deadline: Instant) -> Answer {
        // Each request has its own timeout: waiting for the task is bounded by it.
        match task.await {
            Ok((answer, header)) => {
                if answer == Answer::Rejected {
                    self.retry.record(header);
                }
                answer
            }
            Err(_) => Answer::Unanswered,
        }
    }
}

/// How fast an HTTP burst goes. Concurrent requests sent all at once reach the target over however
/// long it takes to work through them, in no particular order, so the time the bucket refilled in is
/// unknown; sent at a pace the target keeps up with, they arrive when they were sent. The pace is
/// the burst in 200 ms, and at least ten times the declared rate, so that the bucket still empties.
fn http_burst_pace(p: &RateLimitProbe) -> f64 {
    let declared = p.declared.map_or(0.0, |d| d.rate.per_second * 10.0);
    (f64::from(p.burst_size) * 5.0).max(declared)
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
    let mut channel = HttpChannel {
        client,
        url,
        timeout,
        reject: p.reject_status.clone().into(),
        retry: RetryAfter::default(),
    };
    // A burst that has to open its connections arrives over a long time, during which the bucket
    // refills: open them first, as many as the burst needs at once, and let `idle` refill what
    // that took.
    let mut warm = Vec::with_capacity(p.burst_size as usize);
    for i in 0..p.burst_size as usize {
        warm.extend(channel.send(i).await);
    }
    for task in warm {
        let _ = task.await;
    }
    tokio::time::sleep(p.idle).await;
    channel.retry = RetryAfter::default();
    let (samples, ramp, channel) = Driver::new(channel, p).run(Some(http_burst_pace(p))).await;
    let mut m = infer(&samples, ramp, p);
    m.retry_after = Some(channel.retry);
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
        .or(m.declared_rate_per_s)
        .unwrap_or(0.0);
    let burst = m
        .inferred_burst
        .or(m.declared_burst)
        // A burst never refused is at least what the burst sent.
        .unwrap_or(m.accepted as f64)
        .max(1.0);
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
    use crate::scenario::websocket::DeclaredLimit;

    fn probe(rate: &str, burst: u32) -> RateLimitProbe {
        let mut p = discover();
        p.declared = Some(DeclaredLimit {
            rate: parse_rate(rate).unwrap(),
            burst,
        });
        p.burst_size = burst * 3;
        p
    }

    fn discover() -> RateLimitProbe {
        RateLimitProbe {
            declared: None,
            start_rate: 10.0,
            max_rate: 5000.0,
            step: Duration::from_secs(1),
            tolerance: 0.1,
            idle: Duration::from_secs(3),
            burst_size: 500,
            sustain: Duration::from_secs(5),
            over: 2.0,
            reject_status: vec![429, 503],
            path: "/".into(),
            require_retry_after: false,
        }
    }

    /// A token bucket answering on the paused clock; the burst goes out over a few milliseconds,
    /// as it does on a real socket.
    struct Bucket {
        bucket: TokenBucket,
        base: (Instant, std::time::Instant),
    }

    impl Channel for Bucket {
        type Pending = bool;

        async fn send(&mut self, _: usize) -> Option<bool> {
            tokio::time::sleep(Duration::from_micros(50)).await;
            let now = self.base.1 + (Instant::now() - self.base.0);
            Some(self.bucket.try_take(now))
        }

        async fn answer(&mut self, accepted: bool, _: Instant) -> Answer {
            if accepted {
                Answer::Accepted
            } else {
                Answer::Rejected
            }
        }
    }

    /// What a bucket of `rate`/`burst` answers to the probe, on a paused clock.
    async fn against(p: &RateLimitProbe, rate: f64, burst: u32) -> RateLimitMetrics {
        let base = (Instant::now(), std::time::Instant::now());
        let bucket = Bucket {
            bucket: TokenBucket::new(rate, burst, base.1),
            base,
        };
        let (samples, ramp, _) = Driver::new(bucket, p).run(None).await;
        infer(&samples, ramp, p)
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_as_declared_conforms() {
        let p = probe("20/s", 40);
        let m = against(&p, 20.0, 40).await;
        assert!(m.conforms, "{m:?}");
        let rate = m.inferred_rate_per_s.unwrap();
        assert!((rate - 20.0).abs() < 1.0, "{rate}");
        let burst = m.inferred_burst.unwrap();
        assert!((burst - 40.0).abs() <= 1.5, "{burst}");
        assert_eq!(m.offered, 120 + 200);
        assert!(m.ramp.is_empty(), "{:?}", m.ramp);
        let last = m.series.last().unwrap();
        assert_eq!((last.offered, last.accepted), (m.offered, m.accepted));
    }

    #[tokio::test(start_paused = true)]
    async fn a_looser_rate_or_a_bigger_burst_does_not() {
        let p = probe("20/s", 40);
        let m = against(&p, 25.0, 40).await;
        assert!(!m.conforms);
        assert!((m.inferred_rate_per_s.unwrap() - 25.0).abs() < 1.0);
        assert!(m.note.unwrap().contains("rate"));
        let m = against(&p, 20.0, 60).await;
        assert!(!m.conforms);
        assert!((m.inferred_burst.unwrap() - 60.0).abs() <= 1.5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_declaration_below_the_real_limit_is_found_out() {
        // Declared 20/s; the target allows 100/s: 40/s meets no refusal, so the probe ramps on.
        let p = probe("20/s", 40);
        let m = against(&p, 100.0, 40).await;
        assert!(!m.conforms, "{m:?}");
        let rate = m.inferred_rate_per_s.unwrap();
        assert!((rate - 100.0).abs() < 5.0, "{rate}");
        let rates: Vec<f64> = m.ramp.iter().map(|s| s.rate_per_s).collect();
        assert_eq!(rates, [40.0, 80.0, 160.0], "{:?}", m.ramp);
        let note = m.note.unwrap();
        assert!(note.contains("nothing was rejected at 40.0/s"), "{note}");
        assert!(note.contains("+400% off the declared 20"), "{note}");
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_declaration_the_limit_is_discovered() {
        for (rate, burst) in [(40.0, 25), (3.0, 5), (700.0, 120)] {
            let m = against(&discover(), rate, burst).await;
            assert!(m.conforms, "{rate}/s burst {burst}: {m:?}");
            let inferred = m.inferred_rate_per_s.unwrap();
            assert!((inferred - rate).abs() <= rate * 0.05, "{rate}: {inferred}");
            let b = m.inferred_burst.unwrap();
            assert!((b - f64::from(burst)).abs() <= 1.5, "{burst}: {b}");
            let first = m.ramp.iter().find(|s| s.rejected > 0).unwrap().rate_per_s;
            assert!(
                first > rate && first <= rate * 2.0 + 10.0,
                "{rate}: {first}"
            );
            assert_eq!(m.declared_rate_per_s, None);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_bigger_than_the_probe_still_gives_the_rate() {
        let m = against(&discover(), 40.0, 2000).await;
        assert!(m.conforms, "{m:?}");
        assert!((m.inferred_rate_per_s.unwrap() - 40.0).abs() <= 2.0);
        assert_eq!(m.inferred_burst, None);
        assert!(m.note.unwrap().contains("burst allowed is at least"));
    }

    #[tokio::test(start_paused = true)]
    async fn no_limit_at_all_is_said_plainly() {
        let p = probe("20/s", 40);
        let mut p = p;
        p.max_rate = 200.0;
        let m = against(&p, 100_000.0, 100_000).await;
        assert!(!m.conforms);
        assert_eq!(m.rejected, 0);
        let note = m.note.unwrap();
        assert!(
            note.contains("nothing was rejected up to 200.0/s"),
            "{note}"
        );
        let mut d = discover();
        d.max_rate = 100.0;
        let m = against(&d, 100_000.0, 100_000).await;
        assert!(!m.conforms);
        let rates: Vec<f64> = m.ramp.iter().map(|s| s.rate_per_s).collect();
        assert_eq!(rates, [10.0, 20.0, 40.0, 80.0, 100.0]);
    }
}
