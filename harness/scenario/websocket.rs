//! What a websocket scenario says beyond the common parts: how the driver talks to the endpoint (the
//! `[websocket]` table and its `protocol`), and which probes of the endpoint's policy run
//! (`[probes.*]`, which also apply to HTTP targets for the rate limit).
//!
//! The protocol is data, not code: outbound frames are templates, and replies, refusals, subscription
//! acknowledgements and deliveries are recognised by [`FrameMatcher`]s on JSON pointers, so the driver
//! works against endpoints it was not written for. The defaults are the reference server's protocol.

use std::collections::BTreeMap;
use std::time::Duration;

pub use super::matcher::{FrameMatcher, JsonType};
use crate::config::template::Template;
use crate::config::units::Rate;

pub use crate::kinds::WsMode;

/// The variables a frame template may use.
pub const FRAME_VARIABLES: &[&str] = &[
    "id",
    "seq",
    "publisher",
    "path",
    "payload",
    "run_id",
    "index",
];

#[derive(Debug, Clone, PartialEq)]
pub struct WsSettings {
    pub mode: WsMode,
    /// Connections the iterations are spread over.
    pub connections: u32,
    /// Publish mode: connections subscribed to `path` that check delivery.
    pub subscribers: u32,
    /// Topic of publish mode (may use `{{run_id}}`).
    pub path: Template,
    /// Bytes of padding in each frame's `{{payload}}`.
    pub payload_size: usize,
    /// Interval of ping/pong round trips on every connection; `None`: no pings.
    pub ping_interval: Option<Duration>,
    /// How long to wait, after the last acknowledgement, for deliveries still on their way.
    pub settle: Duration,
    pub connect_timeout: Duration,
    /// The largest message the endpoint may send, as declared (`websocket.max_message_size`); the
    /// plan sets the limit every connection holds from it, or from the frames the run sends.
    pub max_message_size: Option<usize>,
    pub protocol: WsProtocol,
}

/// What a close code the endpoint sends means, when the protocol says it is a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// Refused (invalid input, not allowed).
    Refused,
    /// Over the rate limit.
    RateLimited,
}

impl RefusalKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "refused" => Some(RefusalKind::Refused),
            "rate_limited" => Some(RefusalKind::RateLimited),
            _ => None,
        }
    }
}

/// Where a rate-limit refusal says when to try again.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryAfterPointer {
    pub pointer: String,
    /// Seconds per unit of the number found there (1 for seconds, 0.001 for milliseconds).
    pub unit_s: f64,
}

/// What every connection does as it opens: handshake headers and subprotocols, then frames sent
/// (authentication, say), each awaiting the reply its matcher recognises.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnSetup {
    pub headers: Vec<(String, String)>,
    pub subprotocols: Vec<String>,
    pub on_connect: Vec<OnConnect>,
    /// The largest message and frame a connection accepts (bytes); `None`: the client's default.
    /// A larger one fails the connection as `too_large` before it is buffered.
    pub max_message: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OnConnect {
    /// The frame (its `{{id}}` a fresh id).
    pub send: Template,
    /// The reply to wait for; `None`: send and go on.
    pub expect: Option<FrameMatcher>,
}

/// A ping in the endpoint's own protocol (a JSON frame answered by a JSON frame), sent on every
/// connection beside or instead of WebSocket control pings: some servers answer control pings in their
/// network layer while the application behind them is stuck, or do not answer them at all.
#[derive(Debug, Clone, PartialEq)]
pub struct AppPing {
    /// The frame (`{{id}}` a fresh id, `{{seq}}` the connection's ping count from 1).
    pub send: Template,
    /// Recognises the pong. One app ping is in flight per connection, so the pong needs no id.
    pub pong: FrameMatcher,
    /// Where the pong carries the server's clock, if it does.
    pub server_time: Option<ServerTime>,
    pub interval: Duration,
}

/// A number in a frame that is a time on the server's clock since the Unix epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerTime {
    pub pointer: String,
    /// Seconds per unit (1 for seconds, 0.001 for milliseconds, 1e-6 for microseconds).
    pub unit_s: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WsProtocol {
    /// How a connection is set up before it carries the load.
    pub setup: ConnSetup,
    /// An application-level ping, if the scenario asks for one.
    pub app_ping: Option<AppPing>,
    pub echo: Template,
    pub publish: Template,
    pub subscribe: Template,
    /// JSON pointer to the correlation id in inbound frames.
    pub correlation_id: String,
    /// The JSON types a correlation id may have (a value of another type counts as no id).
    pub correlation_types: Vec<JsonType>,
    /// Frames that need carry no correlation id (server pushes, replies to unparseable input).
    pub uncorrelated: FrameMatcher,
    /// A frame meaning the endpoint refused a message.
    pub rejection: FrameMatcher,
    /// A frame meaning "over the rate limit": judged on its own, wherever it appears.
    pub rate_limited: FrameMatcher,
    /// Where a rate-limit frame says when to retry, if it does.
    pub retry_after: Option<RetryAfterPointer>,
    /// Close codes that refuse the messages waiting on the connection, and what they mean.
    pub close_refusals: BTreeMap<u16, RefusalKind>,
    pub subscribed: FrameMatcher,
    /// A frame delivered to a subscriber.
    pub delivery: FrameMatcher,
    /// Pointers into a delivery: the publish's id, its publisher and its sequence number.
    pub delivery_id: String,
    pub delivery_publisher: String,
    pub delivery_seq: String,
    /// Pointer to the (normalised) path in a subscription acknowledgement.
    pub subscribed_path: String,
}

impl Default for WsProtocol {
    fn default() -> Self {
        let t = |s: &str| Template::parse(s).unwrap_or_else(|_| Template::literal(s));
        Self {
            setup: ConnSetup::default(),
            app_ping: None,
            echo: t(r#"{"type":"echo","correlation_id":"{{id}}","payload":"{{payload}}"}"#),
            publish: t(
                r#"{"type":"publish","path":"{{path}}","correlation_id":"{{id}}","data":{"id":"{{id}}","publisher":"{{publisher}}","seq":{{seq}},"payload":"{{payload}}"}}"#,
            ),
            subscribe: t(r#"{"type":"subscribe","path":"{{path}}","correlation_id":"{{id}}"}"#),
            correlation_id: "/correlation_id".into(),
            correlation_types: vec![JsonType::String, JsonType::Number],
            uncorrelated: FrameMatcher::never(),
            rejection: FrameMatcher::equals("/type", "error"),
            rate_limited: FrameMatcher::equals("/error/code", "rate_limited"),
            retry_after: None,
            close_refusals: BTreeMap::new(),
            subscribed: FrameMatcher::equals("/type", "subscribed"),
            delivery: FrameMatcher::equals("/type", "message"),
            delivery_id: "/data/id".into(),
            delivery_publisher: "/data/publisher".into(),
            delivery_seq: "/data/seq".into(),
            subscribed_path: "/path".into(),
        }
    }
}

/// Probes of the endpoint's policy, each run once per run beside the load.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Probes {
    pub rate_limit: Option<RateLimitProbe>,
    pub hardening: Option<HardeningProbe>,
    pub slow_consumer: Option<SlowConsumerProbe>,
    /// HTTP targets: the request body size the target accepts.
    pub body_size: Option<BodySizeProbe>,
}

impl Probes {
    pub fn any(&self) -> bool {
        self.rate_limit.is_some()
            || self.hardening.is_some()
            || self.slow_consumer.is_some()
            || self.body_size.is_some()
    }

    /// What the metric catalogue needs to know of them.
    pub fn facts(&self) -> crate::thresholds::ProbeFacts {
        crate::thresholds::ProbeFacts {
            rate_limit: self.rate_limit.is_some(),
            hardening: self.hardening.is_some(),
            slow_consumer: self.slow_consumer.is_some(),
            body_size: self.body_size.is_some(),
        }
    }

    /// Longest time the probes that run before the load may take.
    pub fn time_before_load(&self) -> Duration {
        let rate = self
            .rate_limit
            .as_ref()
            .map_or(Duration::ZERO, RateLimitProbe::longest);
        let hardening = if self.hardening.is_some() {
            Duration::from_secs(10)
        } else {
            Duration::ZERO
        };
        let body_size = self
            .body_size
            .as_ref()
            .map_or(Duration::ZERO, BodySizeProbe::longest);
        rate + hardening + body_size
    }
}

/// Rate-limit conformance: an idle period, a burst well past the declared burst, then a sustained rate
/// above the declared rate; the rate and burst are inferred and compared with the declared policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitProbe {
    /// The policy the target declares; without one the probe discovers the limit.
    pub declared: Option<DeclaredLimit>,
    /// Discovery: the first rate of the ramp (doubled each step until refusals start), the rate it
    /// gives up at, and how long each step lasts.
    pub start_rate: f64,
    pub max_rate: f64,
    pub step: Duration,
    /// Largest relative difference between inferred and declared still conforming.
    pub tolerance: f64,
    pub idle: Duration,
    /// Messages sent at once after the idle period.
    pub burst_size: u32,
    /// Length of the sustained phase.
    pub sustain: Duration,
    /// The sustained phase offers this multiple of the declared rate (or of the ramp's rate that met
    /// the first refusals).
    pub over: f64,
    /// HTTP targets: statuses that mean "rejected by the limit".
    pub reject_status: Vec<u16>,
    /// HTTP targets: the request path the probe sends.
    pub path: String,
    /// HTTP targets: every rejection must carry `Retry-After`.
    pub require_retry_after: bool,
}

impl RateLimitProbe {
    /// How long the probe takes against a target that answers: idle, the burst, every step of the
    /// ramp up to `max_rate`, and the sustained phase, with half a second for each phase's answers
    /// and 3 s for the last ones. (A target that leaves messages unanswered adds up to 3 s a phase.)
    pub fn longest(&self) -> Duration {
        let settle = Duration::from_millis(500);
        let from = match self.declared {
            Some(d) => d.rate.per_second * self.over,
            None => self.start_rate,
        };
        let mut steps = 0u32;
        let mut rate = from;
        while rate < self.max_rate && steps < 64 {
            steps += 1;
            rate *= 2.0;
        }
        let ramp = match self.declared {
            // The declared phase is the first, and lasts `sustain`.
            Some(_) => self.sustain + settle + (self.step + settle) * steps,
            None => (self.step + settle) * (steps + 1),
        };
        self.idle + settle + ramp + self.sustain + Duration::from_secs(3)
    }
}

/// The largest request body an HTTP target accepts: bodies of exactly `limit` and `limit + 1` bytes
/// and one far over it, sent to `path`; the limit declared, or found by bisection between a size
/// accepted and a size refused.
#[derive(Debug, Clone, PartialEq)]
pub struct BodySizeProbe {
    pub method: String,
    pub path: String,
    pub content_type: String,
    /// The body around its `{{payload}}` padding.
    pub prefix: String,
    pub suffix: String,
    pub headers: Vec<(String, String)>,
    pub declared: Option<u64>,
    /// Bisection bounds: a size that should be accepted and one that should be refused.
    pub search: Option<(u64, u64)>,
    /// The size far over the limit; by default four times it, at least 1 MiB more.
    pub far_over: Option<u64>,
    /// Statuses that refuse a body as too large.
    pub reject_status: Vec<u16>,
}

/// The largest body the size probe sends.
pub const MAX_BODY: u64 = 256 * 1024 * 1024;

impl BodySizeProbe {
    /// The body of exactly `size` bytes: the padding fills what the template leaves.
    pub fn body(&self, size: u64) -> Option<Vec<u8>> {
        let fixed = (self.prefix.len() + self.suffix.len()) as u64;
        let pad = size.checked_sub(fixed)?;
        let mut b = Vec::with_capacity(size as usize);
        b.extend_from_slice(self.prefix.as_bytes());
        b.resize(b.len() + pad as usize, b'x');
        b.extend_from_slice(self.suffix.as_bytes());
        Some(b)
    }

    /// The size far over `limit` the probe sends.
    pub fn far_over(&self, limit: u64) -> u64 {
        self.far_over
            .unwrap_or_else(|| (limit.saturating_mul(4)).max(limit + 1024 * 1024))
            .min(MAX_BODY)
    }

    /// How long the probe takes against a target that answers: a request per bisection step and
    /// three more, about a second each with room to spare.
    pub fn longest(&self) -> Duration {
        let steps = self
            .search
            .map_or(0, |(lo, hi)| 66 - (hi.saturating_sub(lo)).leading_zeros());
        Duration::from_secs(1) * (steps + 3)
    }
}

/// A token bucket as the target declares it: a rate, and a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeclaredLimit {
    pub rate: Rate,
    pub burst: u32,
}

/// Input hardening: sizes around the limit, malformed JSON, unknown types, invalid subscription paths,
/// path normalisation, and a correlation id on every frame the endpoint sends.
#[derive(Debug, Clone, PartialEq)]
pub struct HardeningProbe {
    pub max_message_bytes: usize,
    /// Close code expected for a message over the limit.
    pub size_close_code: u16,
    pub malformed: Vec<String>,
    pub unknown_type: Template,
    pub invalid_paths: Vec<String>,
    /// Path as sent → path the acknowledgement must carry.
    pub normalised_paths: BTreeMap<String, String>,
}

/// Slow consumer: one subscriber stops reading while publishers flood its topic; the endpoint should
/// disconnect it within `expect_within`, and the load's other connections should not suffer.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowConsumerProbe {
    /// Starts this long into the load, so the load has a baseline.
    pub after: Duration,
    pub expect_within: Duration,
    pub publishers: u32,
    /// Per publisher.
    pub publish_rate: Rate,
    pub payload_size: usize,
    pub path: Template,
    /// How much the load's worst per-second p99 may rise during the stall above its worst before
    /// (or twice that worst, if larger). A consumer whose stall spreads to the others costs them
    /// seconds; scheduler noise on a busy machine costs tens of milliseconds.
    pub others_slowdown: Duration,
    /// The close code the endpoint should disconnect it with.
    pub close_code: u16,
}
