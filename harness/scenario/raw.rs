//! The scenario file as written: serde structs mirroring the TOML, every field optional and spanned,
//! so that the second stage ([`super::validate`]) can say where a value is wrong or what is missing.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::model::{Embedded, FaultKind, Suite, TargetKind};
use super::websocket::WsMode;
use crate::procedure::raw::RawStep;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: Option<Spanned<String>>,
    pub description: Option<Spanned<String>>,
    pub suite: Option<Spanned<Suite>>,
    pub seed: Option<Spanned<i64>>,
    pub timeout: Option<Spanned<String>>,
    pub iteration_timeout: Option<Spanned<String>>,
    pub allow_remote: Option<Spanned<bool>>,
    /// Header and query parameter names whose values are secrets, beside the usual ones.
    pub redact: Option<Spanned<Vec<Spanned<String>>>>,
    pub target: Option<Spanned<RawTarget>>,
    pub load: Option<Spanned<RawLoad>>,
    pub faults: Option<Spanned<RawFaults>>,
    pub websocket: Option<Spanned<RawWebsocket>>,
    pub probes: Option<Spanned<RawProbes>>,
    pub tls: Option<Spanned<RawTls>>,
    pub http: Option<Spanned<RawHttp>>,
    /// Each metric's condition, or a list of them (a range: `[">= 1ms", "< 50ms"]`).
    pub thresholds: Option<Spanned<BTreeMap<Spanned<String>, Spanned<toml::Value>>>>,
}

/// `[tls]`: how the clients trust the target and present themselves.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// One CA file, or a list of them.
    pub ca: Option<Spanned<toml::Value>>,
    pub client_cert: Option<Spanned<String>>,
    pub client_key: Option<Spanned<String>>,
    pub server_name: Option<Spanned<String>>,
    pub min_version: Option<Spanned<String>>,
    pub insecure_skip_verify: Option<Spanned<bool>>,
}

/// `[http]`: which HTTP the clients speak.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub version: Option<Spanned<crate::kinds::HttpVersion>>,
    pub connections: Option<Spanned<i64>>,
    pub time_connections: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub kind: Option<Spanned<TargetKind>>,
    pub url: Option<Spanned<String>>,
    pub embedded: Option<Spanned<Embedded>>,
    pub procedure: Option<Spanned<String>>,
    pub variables: Option<BTreeMap<Spanned<String>, Spanned<toml::Value>>>,
    pub request: Option<Spanned<RawStep>>,
}

/// The load model as written (`model = "open"`): the shared [`LoadModel`].
pub use crate::kinds::LoadModel as RawLoadModel;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLoad {
    pub model: Option<Spanned<RawLoadModel>>,
    // closed
    pub iterations: Option<Spanned<i64>>,
    pub concurrency: Option<Spanned<i64>>,
    // open (also uses iterations)
    pub rate: Option<Spanned<String>>,
    pub duration: Option<Spanned<String>>,
    pub max_in_flight: Option<Spanned<i64>>,
    // stepped: explicit stages, or a base rate multiplied by the stress factor each stage
    pub stages: Option<Vec<Spanned<RawStage>>>,
    pub base_rate: Option<Spanned<String>>,
    pub stress_factor: Option<Spanned<f64>>,
    pub stage_duration: Option<Spanned<String>>,
    pub max_stages: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    pub rate: Option<Spanned<String>>,
    pub duration: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFaults {
    pub failure_rate: Option<Spanned<f64>>,
    pub kinds: Option<Spanned<Vec<Spanned<FaultKind>>>>,
    pub latency: Option<Spanned<String>>,
    pub server: Option<Spanned<RawServerChaos>>,
    /// `[[faults.network]]`: each a table of a toxic's parameters, read by the proxy's parser.
    pub network: Option<Vec<Spanned<RawNetworkFault>>>,
}

/// One `[[faults.network]]` entry as written: its keys and values, where each was.
pub type RawNetworkFault = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

/// Chaos the target itself applies, set through its `/admin/chaos` route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerChaos {
    pub error_rate: Option<Spanned<f64>>,
    pub routes: Option<BTreeMap<Spanned<String>, Spanned<f64>>>,
    pub latency: Option<Spanned<String>>,
    pub jitter: Option<Spanned<String>>,
    pub down_after: Option<Spanned<String>>,
    pub down_for: Option<Spanned<String>>,
    pub drop_rate: Option<Spanned<f64>>,
}

/// `[websocket]`: how a websocket run talks to its endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebsocket {
    pub mode: Option<Spanned<WsMode>>,
    pub connections: Option<Spanned<i64>>,
    pub subscribers: Option<Spanned<i64>>,
    pub path: Option<Spanned<String>>,
    pub payload_size: Option<Spanned<String>>,
    pub ping_interval: Option<Spanned<String>>,
    pub settle: Option<Spanned<String>>,
    pub connect_timeout: Option<Spanned<String>>,
    /// The largest message (and frame) the harness accepts from the endpoint.
    pub max_message_size: Option<Spanned<String>>,
    /// Handshake request headers.
    pub headers: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    /// Offered in `Sec-WebSocket-Protocol`.
    pub subprotocols: Option<Spanned<Vec<Spanned<String>>>>,
    /// `[[websocket.on_connect]]`: frames sent on every new connection, each awaiting its reply.
    pub on_connect: Option<Vec<Spanned<RawOnConnect>>>,
    /// `[websocket.app_ping]`: a ping in the endpoint's own protocol.
    pub app_ping: Option<Spanned<RawAppPing>>,
    pub protocol: Option<Spanned<RawProtocol>>,
}

/// `[websocket.app_ping]`: `send = '…'`, `pong = { … }`, optional `server_time` (a pointer) with its
/// `server_time_unit`, and `interval`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAppPing {
    pub send: Option<Spanned<String>>,
    pub pong: Option<Spanned<RawMatch>>,
    pub server_time: Option<Spanned<String>>,
    pub server_time_unit: Option<Spanned<String>>,
    pub interval: Option<Spanned<String>>,
}

/// `[[websocket.on_connect]]`: `send = '…'`, `expect = { … }` (a matcher for the reply to await).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOnConnect {
    pub send: Option<Spanned<String>>,
    pub expect: Option<Spanned<RawMatch>>,
}

/// `[websocket.protocol]`: frame templates and how inbound frames are recognised.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProtocol {
    pub echo: Option<Spanned<String>>,
    pub publish: Option<Spanned<String>>,
    pub subscribe: Option<Spanned<String>>,
    pub correlation_id: Option<Spanned<String>>,
    pub correlation_types: Option<Spanned<Vec<Spanned<String>>>>,
    pub uncorrelated: Option<Spanned<RawMatch>>,
    pub rejection: Option<Spanned<RawMatch>>,
    pub rate_limited: Option<Spanned<RawMatch>>,
    pub subscribed: Option<Spanned<RawMatch>>,
    pub delivery: Option<Spanned<RawMatch>>,
    pub delivery_id: Option<Spanned<String>>,
    pub delivery_publisher: Option<Spanned<String>>,
    pub delivery_seq: Option<Spanned<String>>,
    pub subscribed_path: Option<Spanned<String>>,
    /// Close code → `"refused"` or `"rate_limited"`.
    pub close_refusals: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
}

/// A frame matcher: `{ pointer = "/type", equals = "error" }`, one test on a pointer (`equals`,
/// `one_of`, `exists`, `matches`, `type`) or a combination (`not`, `all`, `any`). In `rate_limited`
/// also `retry_after` (a pointer) and `retry_after_unit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub pointer: Option<Spanned<String>>,
    pub equals: Option<Spanned<toml::Value>>,
    pub one_of: Option<Spanned<Vec<Spanned<toml::Value>>>>,
    pub exists: Option<Spanned<bool>>,
    pub matches: Option<Spanned<String>>,
    #[serde(rename = "type")]
    pub type_: Option<Spanned<toml::Value>>,
    pub not: Option<Box<Spanned<RawMatch>>>,
    pub all: Option<Spanned<Vec<Spanned<RawMatch>>>>,
    pub any: Option<Spanned<Vec<Spanned<RawMatch>>>>,
    pub retry_after: Option<Spanned<String>>,
    pub retry_after_unit: Option<Spanned<String>>,
}

/// `[probes.*]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbes {
    pub rate_limit: Option<Spanned<RawRateLimitProbe>>,
    pub hardening: Option<Spanned<RawHardening>>,
    pub slow_consumer: Option<Spanned<RawSlowConsumer>>,
    pub body_size: Option<Spanned<RawBodySizeProbe>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBodySizeProbe {
    pub path: Option<Spanned<String>>,
    pub method: Option<Spanned<String>>,
    pub content_type: Option<Spanned<String>>,
    pub body: Option<Spanned<String>>,
    pub headers: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    pub limit: Option<Spanned<String>>,
    pub search: Option<Spanned<Vec<Spanned<String>>>>,
    pub far_over: Option<Spanned<String>>,
    pub reject_status: Option<Spanned<Vec<Spanned<i64>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimitProbe {
    pub rate: Option<Spanned<String>>,
    pub burst: Option<Spanned<i64>>,
    pub tolerance: Option<Spanned<String>>,
    pub idle: Option<Spanned<String>>,
    pub burst_size: Option<Spanned<i64>>,
    pub sustain: Option<Spanned<String>>,
    pub over: Option<Spanned<f64>>,
    pub reject_status: Option<Spanned<Vec<Spanned<i64>>>>,
    pub path: Option<Spanned<String>>,
    pub require_retry_after: Option<Spanned<bool>>,
    pub start_rate: Option<Spanned<String>>,
    pub max_rate: Option<Spanned<String>>,
    pub step: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHardening {
    pub max_message_size: Option<Spanned<String>>,
    pub size_close_code: Option<Spanned<i64>>,
    pub malformed: Option<Spanned<Vec<Spanned<String>>>>,
    pub unknown_type: Option<Spanned<String>>,
    pub invalid_paths: Option<Spanned<Vec<Spanned<String>>>>,
    pub normalised_paths: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlowConsumer {
    pub after: Option<Spanned<String>>,
    pub expect_within: Option<Spanned<String>>,
    pub publishers: Option<Spanned<i64>>,
    pub publish_rate: Option<Spanned<String>>,
    pub payload_size: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub others_slowdown: Option<Spanned<String>>,
    pub close_code: Option<Spanned<i64>>,
}
