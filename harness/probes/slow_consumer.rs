//! Slow consumer: some way into the load, one connection subscribes to a topic of its own and stops
//! reading (with a small receive buffer, so it backs up quickly), while publishers flood that topic.
//! The endpoint should disconnect it within the declared time, with the declared close code; meanwhile
//! the load's own connections should not suffer. The stalled connection keeps sending small pings:
//! once the endpoint has cut it, a write fails, which times the disconnection without reading
//! anything. An endpoint may instead send its close frame behind the data the consumer never read and
//! keep the TCP connection open, waiting for the answer; so when the stall is over (or a write failed)
//! the flood stops and the stalled connection reads everything it was sent: how many messages, and
//! whether a close frame (which code) or the end of the connection is behind them. A server that never
//! disconnects it and one that does are told apart, and the publishes it never got show whether the
//! endpoint's queue for it was bounded.
//!
//! Whether the load held up is judged afterwards, from the run's timeline: see [`others_check`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::{ProbeError, WsEnv};
use crate::drivers::ws::FrameVars;
use crate::drivers::ws::conn::{self, Conn, Reply};
use crate::drivers::ws::stats::note;
use crate::metrics::histogram::{self, Hist};
use crate::metrics::{LatencySummary, TimelineRow};
use crate::result::CheckResult;
use crate::result::ws::SlowConsumerReport;
use crate::scenario::websocket::SlowConsumerProbe;

/// Receive buffer of the stalled connection.
const STALLED_RECV_BUFFER: u32 = 4096;
const PING_EVERY: Duration = Duration::from_millis(100);

/// How long the stalled connection, reading again, waits for a next frame before it calls the
/// endpoint quiet, and how long it reads at most.
const DRAIN_QUIET: Duration = Duration::from_secs(1);
const DRAIN_AT_MOST: Duration = Duration::from_secs(10);

/// What the probe saw; the load's side is added from the timeline.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub stalled_at: Instant,
    /// Exact when a write failed; otherwise when the stalled connection read again and found the
    /// connection ended (an upper bound).
    pub disconnected_after: Option<Duration>,
    pub published: u64,
    pub ack: Option<LatencySummary>,
    pub seen: Seen,
    /// Messages read when the stalled connection read again.
    pub delivered: u64,
    /// Why the probe could not run, if it could not.
    pub error: Option<String>,
}

/// How the end of the stalled connection showed itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// A ping could not be written: the endpoint had cut the connection.
    WriteFailed,
    /// Reading again, a close frame behind the unread data.
    Closed {
        code: u16,
        reason: String,
    },
    /// Reading again, the connection ended without a close frame.
    Dropped,
    StillOpen,
}

impl Seen {
    fn name(&self) -> &'static str {
        match self {
            Seen::WriteFailed => "write_failed",
            Seen::Closed { .. } => "closed",
            Seen::Dropped => "dropped",
            Seen::StillOpen => "still_open",
        }
    }
}

/// Runs the probe, starting `p.after` past `load_start`; `stop` ends it early.
pub async fn probe(
    env: Arc<WsEnv>,
    p: SlowConsumerProbe,
    load_start: Instant,
    stop: CancellationToken,
) -> Outcome {
    let mut outcome = Outcome {
        stalled_at: load_start + p.after,
        disconnected_after: None,
        published: 0,
        ack: None,
        seen: Seen::StillOpen,
        delivered: 0,
        error: None,
    };
    tokio::select! {
        _ = tokio::time::sleep_until((load_start + p.after).into()) => {}
        _ = stop.cancelled() => {
            outcome.error = Some("the run stopped before the probe began".into());
            return outcome;
        }
    }
    let run_id = Value::String(env.run_id.clone());
    let null = Value::Null;
    let path = p
        .path
        .render(&FrameVars {
            id: &null,
            seq: &null,
            publisher: &null,
            path: &null,
            payload: &null,
            run_id: &run_id,
            index: &null,
        })
        .unwrap_or_default();
    let stalled = match stall(&env, &path).await {
        Ok(s) => s,
        Err(e) => {
            outcome.error = Some(e.to_string());
            return outcome;
        }
    };
    outcome.stalled_at = Instant::now();
    let flood = CancellationToken::new();
    let published = Arc::new(AtomicU64::new(0));
    let acks = Arc::new(Mutex::new(histogram::new_histogram()));
    let mut publishers = Vec::new();
    for k in 0..p.publishers {
        let (env, p, path) = (Arc::clone(&env), p.clone(), path.clone());
        let (flood, published, acks) = (flood.clone(), Arc::clone(&published), Arc::clone(&acks));
        publishers.push(tokio::spawn(async move {
            publish(&env, &p, &path, k, &flood, &published, &acks).await
        }));
    }
    let (mut sink, mut unread) = stalled;
    let give_up = outcome.stalled_at + p.expect_within;
    let mut tick = tokio::time::interval(PING_EVERY);
    let mut write_failed = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => break,
        }
        if Instant::now() > give_up {
            break;
        }
        if sink.send(Message::Ping(vec![0u8; 4].into())).await.is_err() {
            outcome.disconnected_after = Some(outcome.stalled_at.elapsed());
            write_failed = true;
            break;
        }
    }
    flood.cancel();
    for p in publishers {
        let _ = p.await;
    }
    let resumed = outcome.stalled_at.elapsed();
    let (delivered, end) = drain(&mut unread, &env.shared.protocol).await;
    outcome.delivered = delivered;
    outcome.seen = match end {
        _ if write_failed => Seen::WriteFailed,
        Some(seen) => {
            outcome.disconnected_after = Some(resumed);
            seen
        }
        None => Seen::StillOpen,
    };
    drop((sink, unread));
    outcome.published = published.load(Ordering::Relaxed);
    outcome.ack = LatencySummary::of(&acks.lock().unwrap_or_else(|p| p.into_inner()));
    outcome
}

/// Whether a frame is one the protocol calls a delivery.
fn is_delivery(bytes: &[u8], protocol: &crate::scenario::WsProtocol) -> bool {
    crate::drivers::ws::frame::Inbound::parse(bytes).is_some_and(|f| protocol.delivery.matches(&f))
}

/// Reads what the stalled connection was sent: the deliveries, then how it ended (`None`: it did
/// not, within [`DRAIN_AT_MOST`], and went quiet).
async fn drain(unread: &mut Unread, protocol: &crate::scenario::WsProtocol) -> (u64, Option<Seen>) {
    let mut delivered = 0;
    let until = tokio::time::Instant::now() + DRAIN_AT_MOST;
    loop {
        let next = tokio::time::timeout(DRAIN_QUIET, unread.next());
        let next = match tokio::time::timeout_at(until, next).await {
            Ok(Ok(next)) => next,
            _ => return (delivered, None),
        };
        match next {
            Some(Ok(Message::Text(t))) => {
                delivered += u64::from(is_delivery(t.as_bytes(), protocol));
            }
            Some(Ok(Message::Binary(b))) => delivered += u64::from(is_delivery(&b, protocol)),
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = frame.map_or((1005, String::new()), |f| {
                    (u16::from(f.code), f.reason.to_string())
                });
                return (delivered, Some(Seen::Closed { code, reason }));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (delivered, Some(Seen::Dropped)),
        }
    }
}

type Sink = futures_util::stream::SplitSink<conn::Stream, Message>;
type Unread = futures_util::stream::SplitStream<conn::Stream>;

/// Opens the connection that will stop reading, subscribes it, and returns its halves.
async fn stall(env: &WsEnv, path: &str) -> Result<(Sink, Unread), ProbeError> {
    let failed = |what: String| ProbeError::SlowConsumer { what };
    let (ws, took) = conn::open(
        &env.url,
        env.addr,
        env.connect_timeout,
        Some(STALLED_RECV_BUFFER),
        &env.shared.protocol.setup,
        &env.shared.net,
    )
    .await
    .map_err(|e| failed(format!("could not open its connection: {e}")))?;
    note(&env.tally, |c| c.handshake(took));
    let (mut sink, mut stream) = ws.split();
    let protocol = &env.shared.protocol;
    let cid = format!("{}-slow-sub", env.run_id);
    let (id, path_v, null) = (
        Value::String(cid.clone()),
        Value::String(path.to_string()),
        Value::Null,
    );
    let frame = protocol
        .subscribe
        .render(&FrameVars {
            id: &id,
            seq: &null,
            publisher: &null,
            path: &path_v,
            payload: &null,
            run_id: &null,
            index: &null,
        })
        .unwrap_or_default();
    sink.send(Message::text(frame))
        .await
        .map_err(|e| failed(format!("could not subscribe: {e}")))?;
    let deadline = tokio::time::Instant::now() + env.connect_timeout;
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| {
                failed(format!(
                    "got no acknowledgement of its subscription to {path}"
                ))
            })?;
        match next {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                if protocol.subscribed.matches(&v) {
                    return Ok((sink, stream));
                }
                if protocol.rejection.matches(&v) {
                    return Err(failed(format!("had its subscription refused: {t}")));
                }
            }
            Some(Ok(_)) => {}
            _ => return Err(failed("lost its connection while subscribing".into())),
        }
    }
}

/// One publisher: publishes at its rate until told to stop, timing acknowledgements.
async fn publish(
    env: &WsEnv,
    p: &SlowConsumerProbe,
    path: &str,
    k: u32,
    flood: &CancellationToken,
    published: &AtomicU64,
    acks: &Mutex<Hist>,
) {
    let Ok(conn) = env.open(u32::MAX - 100 - k).await else {
        return;
    };
    let payload = "x".repeat(p.payload_size);
    let mut tick = tokio::time::interval(p.publish_rate.interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = flood.cancelled() => break,
        }
        n += 1;
        let cid = format!("{}-slow-pub-{k}-{n}", env.run_id);
        let sent = Instant::now();
        let reply = env
            .ask(
                &conn,
                &env.shared.protocol.publish,
                &cid,
                path,
                &payload,
                Duration::from_secs(5),
            )
            .await;
        match reply {
            Some(Reply::Answer(_)) => {
                published.fetch_add(1, Ordering::Relaxed);
                histogram::record(
                    &mut acks.lock().unwrap_or_else(|p| p.into_inner()),
                    sent.elapsed(),
                );
            }
            Some(Reply::Closed(_)) => break,
            _ => {}
        }
    }
    close(conn).await;
}

async fn close(conn: Conn) {
    conn.close().await;
}

/// The probe's report, with the load's timeline before and during the stall.
pub fn report(
    o: &Outcome,
    p: &SlowConsumerProbe,
    load_start: Instant,
    timeline: &[TimelineRow],
) -> SlowConsumerReport {
    let stalled_at_s = o
        .stalled_at
        .saturating_duration_since(load_start)
        .as_secs_f64();
    let disconnected_after_ms = o.disconnected_after.map(|d| d.as_secs_f64() * 1000.0);
    let expect_within_ms = p.expect_within.as_secs_f64() * 1000.0;
    let (before, during) = split(
        timeline,
        stalled_at_s,
        disconnected_after_ms.unwrap_or(expect_within_ms),
    );
    let worst = |rows: &[&TimelineRow]| rows.iter().filter_map(|r| r.p99_ms).reduce(f64::max);
    let baseline_p99_ms = worst(&before);
    let slowdown_ms = p.others_slowdown.as_secs_f64() * 1000.0;
    SlowConsumerReport {
        stalled_at_s,
        disconnected_after_ms,
        expect_within_ms,
        published: o.published,
        publisher_ack_ms: o.ack.clone(),
        baseline_p99_ms,
        during_p99_ms: worst(&during),
        allowed_p99_ms: baseline_p99_ms.map(|base| (base * 2.0).max(base + slowdown_ms)),
        during_failed: during.iter().map(|r| r.failed).sum(),
        seen: o.seen.name().to_string(),
        close_code: match &o.seen {
            Seen::Closed { code, .. } => Some(*code),
            _ => None,
        },
        close_reason: match &o.seen {
            Seen::Closed { reason, .. } => reason.chars().take(120).collect(),
            _ => String::new(),
        },
        expected_close_code: p.close_code,
        delivered: o.delivered,
        discarded: o.published.saturating_sub(o.delivered),
    }
}

/// The load's seconds wholly before the stall, and those overlapping it (from the stall to the
/// disconnection, or to the end of the allowed time when there was none).
fn split(
    timeline: &[TimelineRow],
    stalled_at_s: f64,
    window_ms: f64,
) -> (Vec<&TimelineRow>, Vec<&TimelineRow>) {
    let end = stalled_at_s + window_ms / 1000.0;
    let before = timeline
        .iter()
        .filter(|r| (r.t_s as f64) + 1.0 <= stalled_at_s)
        .collect();
    let during = timeline
        .iter()
        .filter(|r| {
            let t = r.t_s as f64;
            t + 1.0 > stalled_at_s && t < end
        })
        .collect();
    (before, during)
}

/// The two checks: disconnected in time, and the load's connections unharmed meanwhile.
pub fn checks(o: &Outcome, r: &SlowConsumerReport, timeline: &[TimelineRow]) -> Vec<CheckResult> {
    if let Some(e) = &o.error {
        return vec![CheckResult::new(
            "slow_consumer.disconnected",
            false,
            format!("the probe could not run: {e}"),
        )];
    }
    vec![disconnected_check(o, r), others_check(r, timeline)]
}

/// Disconnected in time, with the expected close code (a connection cut without a close frame counts
/// too: behind unread data, a consumer may never see one).
pub fn disconnected_check(o: &Outcome, r: &SlowConsumerReport) -> CheckResult {
    let name = "slow_consumer.disconnected";
    let within = r.expect_within_ms / 1000.0;
    let queue = if r.discarded > 0 {
        format!(
            "it had been sent {} of the {} publishes to its topic ({} discarded: its queue was bounded)",
            r.delivered, r.published, r.discarded
        )
    } else {
        format!(
            "it had been sent all {} publishes to its topic (none discarded)",
            r.published
        )
    };
    let after = r.disconnected_after_ms.unwrap_or(0.0) / 1000.0;
    match &o.seen {
        Seen::WriteFailed if after <= within => CheckResult::new(
            name,
            true,
            format!("cut {after:.1}s after it stopped reading (allowed {within:.0}s); {queue}"),
        ),
        Seen::WriteFailed => CheckResult::new(
            name,
            false,
            format!(
                "cut only {after:.1}s after it stopped reading (allowed {within:.0}s); {queue}"
            ),
        ),
        Seen::Closed { code, reason } if *code == r.expected_close_code => CheckResult::new(
            name,
            true,
            format!(
                "closed with {code}{} within {after:.1}s of stopping to read (allowed {within:.0}s; seen when it read again); {queue}",
                if reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({reason})")
                }
            ),
        ),
        Seen::Closed { code, reason } => CheckResult::new(
            name,
            false,
            format!(
                "closed with {code}{}, not the expected {}, within {after:.1}s of stopping to read; {queue}",
                if reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({reason})")
                },
                r.expected_close_code
            ),
        ),
        Seen::Dropped => CheckResult::new(
            name,
            true,
            format!(
                "the connection was cut without a close frame within {after:.1}s of stopping to read (allowed {within:.0}s); {queue}"
            ),
        ),
        Seen::StillOpen => CheckResult::new(
            name,
            false,
            format!(
                "still connected {within:.0}s after it stopped reading; reading again, {queue}"
            ),
        ),
    }
}

/// The load's worst second during the stall against its worst second before it: a p99 no higher than
/// the report's allowance (twice the one before, or `others_slowdown` above it, whichever is larger),
/// and a share of failures at most a point above the share before.
pub fn others_check(r: &SlowConsumerReport, timeline: &[TimelineRow]) -> CheckResult {
    let name = "slow_consumer.others_unaffected";
    let (Some(base), Some(during), Some(allowed)) =
        (r.baseline_p99_ms, r.during_p99_ms, r.allowed_p99_ms)
    else {
        return CheckResult::new(
            name,
            false,
            "the load had no seconds before and during the stall to compare; start the probe later (after) or run the load longer",
        );
    };
    let (before_rows, during_rows) = split(
        timeline,
        r.stalled_at_s,
        r.disconnected_after_ms.unwrap_or(r.expect_within_ms),
    );
    let share = |rows: &[&TimelineRow]| {
        let total: u64 = rows.iter().map(|r| r.succeeded + r.failed).sum();
        let failed: u64 = rows.iter().map(|r| r.failed).sum();
        if total > 0 {
            failed as f64 / total as f64
        } else {
            0.0
        }
    };
    let (before, during_share) = (share(&before_rows), share(&during_rows));
    let latency_ok = during <= allowed;
    // One point more failures than before is allowed.
    let failures_ok = during_share <= before + 0.01;
    CheckResult::new(
        name,
        latency_ok && failures_ok,
        format!(
            "the load's worst p99 per second: {base:.1}ms before, {during:.1}ms during the stall (allowed {allowed:.1}ms); {} failed during it ({:.1}% against {:.1}% before)",
            r.during_failed,
            during_share * 100.0,
            before * 100.0
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One second of the load: `ok` succeeded, `failed` failed, with this p99.
    fn second(t_s: u64, ok: u64, failed: u64, p99_ms: f64) -> TimelineRow {
        TimelineRow {
            t_s,
            succeeded: ok,
            failed,
            p50_ms: Some(p99_ms / 2.0),
            p95_ms: Some(p99_ms),
            p99_ms: Some(p99_ms),
            max_ms: Some(p99_ms),
            ..TimelineRow::default()
        }
    }

    fn probe(slowdown_ms: u64) -> SlowConsumerProbe {
        SlowConsumerProbe {
            after: Duration::from_secs(2),
            expect_within: Duration::from_secs(6),
            publishers: 1,
            publish_rate: crate::config::units::parse_rate("10/s").unwrap(),
            payload_size: 1024,
            path: crate::config::template::Template::parse("/slow").unwrap(),
            others_slowdown: Duration::from_millis(slowdown_ms),
            close_code: 1008,
        }
    }

    /// Stalled 2 s into the load, disconnected 3 s later.
    fn outcome(start: Instant) -> Outcome {
        Outcome {
            stalled_at: start + Duration::from_secs(2),
            disconnected_after: Some(Duration::from_secs(3)),
            published: 40,
            ack: None,
            seen: Seen::WriteFailed,
            delivered: 12,
            error: None,
        }
    }

    fn judge(timeline: &[TimelineRow], slowdown_ms: u64) -> (SlowConsumerReport, CheckResult) {
        let start = Instant::now();
        let r = report(&outcome(start), &probe(slowdown_ms), start, timeline);
        let check = others_check(&r, timeline);
        (r, check)
    }

    #[test]
    fn the_stall_is_judged_against_the_seconds_before_it() {
        // Seconds 0–1 before the stall, 2–4 during it, 5 after (its 900 ms is not held against it).
        let mut timeline: Vec<TimelineRow> = (0..6).map(|t| second(t, 100, 0, 2.0)).collect();
        timeline[1].p99_ms = Some(4.0);
        timeline[3].p99_ms = Some(60.0);
        timeline[5].p99_ms = Some(900.0);
        let (r, check) = judge(&timeline, 100);
        assert_eq!(r.baseline_p99_ms, Some(4.0));
        assert_eq!(r.during_p99_ms, Some(60.0));
        assert_eq!(r.allowed_p99_ms, Some(104.0));
        assert!(check.passed, "{}", check.detail);

        // A second of the stall far past the allowance fails, as does one within it when the
        // allowance is tighter.
        timeline[4].p99_ms = Some(1500.0);
        let (r, check) = judge(&timeline, 100);
        assert_eq!(r.during_p99_ms, Some(1500.0));
        assert!(!check.passed);
        assert!(check.detail.contains("1500.0ms during"), "{}", check.detail);
        timeline[4].p99_ms = Some(2.0);
        let (_, check) = judge(&timeline, 20);
        assert!(
            !check.passed,
            "60 ms against 4 + 20 allowed: {}",
            check.detail
        );
        // Twice the baseline is allowed when that is more than the slowdown.
        let (r, _) = judge(&timeline, 1);
        assert_eq!(r.allowed_p99_ms, Some(8.0));
    }

    #[test]
    fn failures_during_the_stall_fail_the_check_however_fast() {
        let mut timeline: Vec<TimelineRow> = (0..6).map(|t| second(t, 100, 0, 2.0)).collect();
        timeline[3].failed = 5;
        let (r, check) = judge(&timeline, 100);
        assert_eq!(r.during_failed, 5);
        assert!(!check.passed, "{}", check.detail);
        // A point more failures than before is tolerated.
        timeline[3].failed = 2;
        let (_, check) = judge(&timeline, 100);
        assert!(check.passed, "{}", check.detail);
    }

    #[test]
    fn without_seconds_before_the_stall_there_is_nothing_to_judge() {
        let timeline: Vec<TimelineRow> = (2..6).map(|t| second(t, 100, 0, 2.0)).collect();
        let (r, check) = judge(&timeline, 100);
        assert_eq!(r.allowed_p99_ms, None);
        assert!(!check.passed);
        assert!(
            check.detail.contains("start the probe later"),
            "{}",
            check.detail
        );
    }
}
