//! The parts of `result.json` that WebSocket runs, policy probes and network faults add: `metrics.ws`,
//! `metrics.rate_limit`, `metrics.recovery`, and the named checks (`checks`) that hardening,
//! slow-consumer and rate-limit probes pass or fail.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::LatencySummary;

/// `metrics.ws`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WsMetrics {
    /// Connections opened (handshakes completed), reconnections included.
    pub connections: u64,
    /// Most connections open at once.
    #[serde(default)]
    pub peak_connections: u64,
    /// Connection attempts that failed (refused, handshake rejected, timed out).
    #[serde(default)]
    pub failed_connections: u64,
    /// Connections opened again after one was lost.
    #[serde(default)]
    pub reconnects: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
    /// Inbound frames that carried no correlation id (frames the protocol exempts not counted).
    #[serde(default)]
    pub frames_without_correlation: u64,
    /// The first of them, shortened and escaped, each with what was wrong.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uncorrelated_frames: Vec<String>,
    /// Frames carrying an id no request waited for any more (answers after a timeout): counted, not
    /// charged to another request.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub late_replies: u64,
    /// Acknowledged publishes received by every subscriber ÷ (acknowledged × subscribers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_rate: Option<f64>,
    /// Handshake latency: TCP connect plus the WebSocket upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<LatencySummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_hdr: Option<String>,
    /// The TLS handshake of each wss connection (part of `connect_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_handshake_ms: Option<LatencySummary>,
    /// Connections lost and opened again: from the loss to the connection (and, for subscribers, the
    /// subscription) being back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_ms: Option<LatencySummary>,
    /// Ping/pong round trips.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping_ms: Option<LatencySummary>,
    /// Application-level ping (`[websocket.app_ping]`) to its pong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_ping_ms: Option<LatencySummary>,
    /// Application-level pings that got no pong within their interval.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub app_pings_unanswered: u64,
    /// The server's clock against ours, from pongs carrying `server_time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_clock_offset_ms: Option<ClockOffsetSummary>,
    /// From a publish's send to its receipt by a subscriber.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_ms: Option<LatencySummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryReport>,
    /// Close codes the target sent, by code.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub close_codes: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_consumer: Option<SlowConsumerReport>,
}

/// How far the server's clock is from ours (positive: ahead), in milliseconds: each sample the time in
/// a pong less the middle of its round trip. Within a round trip of the truth; on one machine it
/// should be about 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClockOffsetSummary {
    pub samples: u64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

/// Delivery checked as a set, the way Jepsen does: every publish is acknowledged, failed or
/// indeterminate; at the end each subscriber's receipts are compared with that history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryReport {
    pub subscribers: u64,
    pub published: u64,
    pub acknowledged: u64,
    /// Refused by the target: must never be delivered.
    pub failed: u64,
    /// No answer (timeout, connection lost): may or may not be delivered.
    pub indeterminate: u64,
    /// Acknowledged × subscribers: the receipts owed.
    pub expected: u64,
    /// Receipts of acknowledged publishes (first copies only).
    pub received: u64,
    /// Acknowledged, and missing at some subscriber (counted per subscriber).
    pub lost: u64,
    /// Receipts beyond the first of one publish at one subscriber.
    pub duplicated: u64,
    /// Receipts older than one already received from the same publisher.
    pub out_of_order: u64,
    /// Receipts of publishes never sent, or refused.
    pub unexpected: u64,
    /// Indeterminate publishes that were delivered after all.
    pub recovered: u64,
    /// Receipts not owed: the subscriber was not subscribed when the publish went out (it was
    /// reconnecting), or lost its connection within a second after.
    #[serde(default)]
    pub not_owed: u64,
    /// Ids of the first lost publishes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost_ids: Vec<String>,
    /// Adjacent pairs of publishes a subscriber received in the other order from subscriber 0.
    #[serde(default)]
    pub order_disagreements: u64,
    /// Receipts ahead of a publish acknowledged before they were sent.
    #[serde(default)]
    pub real_time_violations: u64,
    /// The first order problems, described.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order_samples: Vec<String>,
}

/// The slow-consumer probe: how long the target took to disconnect a consumer that stopped reading, and
/// how the load's other connections fared meanwhile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlowConsumerReport {
    /// When the consumer stopped reading, from the start of the load.
    pub stalled_at_s: f64,
    /// Time from stopping to being disconnected; absent when it never was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnected_after_ms: Option<f64>,
    pub expect_within_ms: f64,
    /// Publishes to the stalled consumer's topic meanwhile, and their acknowledgement latency.
    pub published: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher_ack_ms: Option<LatencySummary>,
    /// The load's worst per-second p99 before the stall and during it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_p99_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub during_p99_ms: Option<f64>,
    /// The most `during_p99_ms` may be: twice the baseline, or the probe's `others_slowdown` above it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_p99_ms: Option<f64>,
    /// The load's failed iterations during the stall.
    #[serde(default)]
    pub during_failed: u64,
    /// How the disconnection was seen: `write_failed` (timed exactly), `closed` or `dropped` when the
    /// stalled connection read again after the stall (timed as "by then"), or `still_open`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub seen: String,
    /// The close code the endpoint sent, if its close frame was read, and the one expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_code: Option<u16>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub close_reason: String,
    #[serde(default)]
    pub expected_close_code: u16,
    /// Messages the stalled connection had been sent, read when it read again.
    #[serde(default)]
    pub delivered: u64,
    /// Publishes to its topic it never got: the endpoint's queue for it was bounded (or cleared on
    /// the close).
    #[serde(default)]
    pub discarded: u64,
}

/// `metrics.rate_limit`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RateLimitMetrics {
    pub offered: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Sent, and never answered.
    #[serde(default)]
    pub unanswered: u64,
    /// Refused for another reason than the limit (WebSocket: matched `rejection`, not
    /// `rate_limited`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refused: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inferred_rate_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inferred_burst: Option<f64>,
    /// The policy declared in the scenario; absent when the probe discovered the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_rate_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_burst: Option<f64>,
    /// Largest relative difference between inferred and declared that conforms.
    pub tolerance: f64,
    pub conforms: bool,
    /// Why it does not conform, or what limits the inference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// `Retry-After` on rejections (HTTP), or the protocol's `retry_after` (WebSocket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<RetryAfter>,
    /// The steps of the ramp that looked for the rate where refusals start, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ramp: Vec<RampStep>,
    /// Cumulative offered and accepted by send time, every 100 ms from the start of the burst.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<RateSample>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RetryAfter {
    pub present: u64,
    pub missing: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_s: Option<f64>,
}

impl RetryAfter {
    /// One rate-limit refusal and what it said of retrying: nothing (`None`), something that is not
    /// a number of seconds (`Some(None)`), or a number of seconds.
    pub fn record(&mut self, said: Option<Option<f64>>) {
        match said {
            None => self.missing += 1,
            Some(seconds) => {
                self.present += 1;
                if let Some(s) = seconds {
                    self.max_s = Some(self.max_s.map_or(s, |m| m.max(s)));
                }
            }
        }
    }
}

/// One step of the rate-limit probe's ramp.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RampStep {
    pub rate_per_s: f64,
    pub offered: u64,
    pub accepted: u64,
    pub rejected: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateSample {
    pub t_s: f64,
    pub offered: u64,
    pub accepted: u64,
}

/// One named check of a probe, passed or failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Dotted name, e.g. `hardening.size_over_limit`.
    pub name: String,
    pub passed: bool,
    /// What was expected and what happened.
    pub detail: String,
}

impl CheckResult {
    pub fn new(name: &str, passed: bool, detail: impl Into<String>) -> Self {
        Self {
            name: name.to_string(),
            passed,
            detail: detail.into(),
        }
    }
}

/// `metrics.recovery`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecoveryMetrics {
    pub windows: Vec<RecoveryWindow>,
}

/// One fault window and how the target came back after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryWindow {
    /// The fault, in words (`down from 10s until 20s`).
    pub fault: String,
    /// From the start of the load.
    pub from_s: f64,
    pub until_s: f64,
    /// From the end of the window to the first iteration that succeeded; absent: none did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_first_success_s: Option<f64>,
    /// From the end of the window to the end of the tenth success in a row; absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_recover_s: Option<f64>,
    /// Iterations meant to start during the window that failed.
    pub lost: u64,
    /// Publish mode: acknowledged publishes sent during the window (or until recovery) that some
    /// subscriber owed them never received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_lost: Option<u64>,
    /// The load over a stretch as long as the window before it, during it, and after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<WindowStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub during: Option<WindowStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<WindowStats>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    pub iterations: u64,
    pub success_rate: f64,
    /// The worst per-second p99.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst_p99_ms: Option<f64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
