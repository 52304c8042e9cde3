//! The reference WebSocket server: the embedded default target of websocket scenarios, and what
//! `harness serve ws` runs. It holds the policy of seed 004, each limit configurable:
//! a per-connection token bucket (20 messages/s, burst 40; a message over it gets an error frame, and
//! repeated abuse a close with 1008), a 64 KiB message limit (close 1009), JSON validation with
//! normalised subscription paths, a correlation id on every outbound frame, publish/subscribe and
//! echo, and a capped send queue per connection whose consumer is disconnected once the queue has
//! stayed full past a grace period.
//!
//! Beside `/ws` it serves `/metrics` (counters), `/limits` (the policy), `/health`, and the chaos
//! controls at `/admin/chaos` (added latency, error and drop rates, a backend-down window). Test-only
//! defect modes break one part of the policy each, so tests can show the harness catches it.
//!
//! The WebSocket side is tokio-tungstenite, through axum's upgrade.

pub mod connection;
pub mod hub;
pub mod protocol;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use self::hub::{Counters, Hub};
use super::chaos::{self, Chaos, ChaosSettings};

/// Test-only faults of the server, one part of the policy broken each, which the harness must detect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WsDefects {
    /// Enforces 1.25 × the declared rate (25/s instead of 20) while `/limits` still says 20.
    pub loose_rate_limit: bool,
    /// Accepts messages of any size (up to the transport's own cap).
    pub no_size_limit: bool,
    /// Drops one delivery to a subscriber in every 500.
    pub drops_deliveries: bool,
    /// Error frames carry no correlation id.
    pub uncorrelated_errors: bool,
    /// Never disconnects a slow consumer.
    pub keep_slow_consumers: bool,
    /// Handles every message under one server-wide lock, and a publish waits for room in each
    /// subscriber's queue: a consumer that stops reading stalls every connection until it is evicted.
    pub blocking_fanout: bool,
}

/// Bytes read from a socket at a time (tungstenite zeroes this much before each read; its default of
/// 128 KiB would cost a thousand connections 128 MiB).
const READ_BUFFER: usize = 8 * 1024;

/// One delivery in this many is dropped by [`WsDefects::drops_deliveries`].
pub const DEFECT_DROP_EVERY: u64 = 500;

#[derive(Debug, Clone)]
pub struct WsConfig {
    /// Messages per second each connection may send, on average.
    pub rate_per_s: f64,
    /// Messages a connection idle long enough may send at once.
    pub burst: u32,
    /// Rejected messages within `abuse_window` after which the connection is closed with 1008; 0
    /// turns the abuse policy off.
    pub abuse_limit: u32,
    pub abuse_window: Duration,
    /// Largest message accepted, in bytes; larger ones close the connection with 1009.
    pub max_message_bytes: usize,
    /// Frames a connection's send queue holds.
    pub send_queue: usize,
    /// How long a send queue may stay full before its consumer is disconnected.
    pub slow_consumer_grace: Duration,
    pub chaos: ChaosSettings,
    /// Seed of the chaos controls' random choices.
    pub seed: u64,
    pub defects: WsDefects,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            rate_per_s: 20.0,
            burst: 40,
            abuse_limit: 300,
            abuse_window: Duration::from_secs(10),
            max_message_bytes: 64 * 1024,
            send_queue: 256,
            slow_consumer_grace: Duration::from_secs(2),
            chaos: ChaosSettings::default(),
            seed: 0,
            defects: WsDefects::default(),
        }
    }
}

impl WsConfig {
    /// The rate the bucket really refills at (the declared one, unless a defect loosens it).
    pub fn enforced_rate(&self) -> f64 {
        if self.defects.loose_rate_limit {
            self.rate_per_s * 1.25
        } else {
            self.rate_per_s
        }
    }

    /// The largest message the transport reads at all: well past the policy's limit, so that a message
    /// just over it is read whole and answered with a clean close 1009.
    fn transport_cap(&self) -> usize {
        self.max_message_bytes.saturating_mul(16).max(1024 * 1024)
    }
}

/// The server's state, shared by every connection.
pub struct App {
    pub config: WsConfig,
    pub hub: Hub,
    pub counters: Counters,
    pub chaos: Arc<Chaos>,
    ids: AtomicU64,
    deliveries: AtomicU64,
    /// Held while a message is handled, under [`WsDefects::blocking_fanout`] only.
    dispatch: tokio::sync::Mutex<()>,
}

impl App {
    fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A correlation id for a frame whose client gave none.
    fn new_correlation_id(&self) -> String {
        format!("srv-{}", self.next_id())
    }

    /// Whether this delivery is dropped, by chaos or by the drop defect.
    fn drops_delivery(&self) -> bool {
        let n = self.deliveries.fetch_add(1, Ordering::Relaxed) + 1;
        (self.config.defects.drops_deliveries && n.is_multiple_of(DEFECT_DROP_EVERY))
            || self.chaos.drops()
    }
}

/// The server's routes.
pub fn router(config: WsConfig) -> Router {
    let chaos = Arc::new(Chaos::new(config.chaos.clone(), config.seed));
    let app = Arc::new(App {
        config,
        hub: Hub::default(),
        counters: Counters::default(),
        chaos: Arc::clone(&chaos),
        ids: AtomicU64::new(0),
        deliveries: AtomicU64::new(0),
        dispatch: tokio::sync::Mutex::new(()),
    });
    Router::new()
        .route("/ws", get(upgrade))
        .route("/metrics", get(metrics))
        .route("/limits", get(limits))
        .route(
            "/health",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .with_state(app)
        .merge(chaos::admin_routes(chaos))
}

async fn upgrade(ws: WebSocketUpgrade, State(app): State<Arc<App>>) -> Response {
    let cap = app.config.transport_cap();
    ws.max_message_size(cap)
        .max_frame_size(cap)
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| connection::serve(socket, app))
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    axum::Json(app.counters.snapshot(&app.hub)).into_response()
}

async fn limits(State(app): State<Arc<App>>) -> Response {
    let c = &app.config;
    axum::Json(json!({
        "rate_per_s": c.rate_per_s,
        "burst": c.burst,
        "abuse_limit": c.abuse_limit,
        "abuse_window_s": c.abuse_window.as_secs_f64(),
        "max_message_bytes": c.max_message_bytes,
        "send_queue": c.send_queue,
        "slow_consumer_grace_s": c.slow_consumer_grace.as_secs_f64(),
    }))
    .into_response()
}

/// Serves on `listener` until `shutdown` completes. Open WebSocket connections are not waited for.
pub async fn serve<L>(
    listener: L,
    config: WsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    axum::serve(listener, router(config))
        .with_graceful_shutdown(shutdown)
        .await
}
