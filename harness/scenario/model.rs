//! A validated scenario: which suite, against which target, under which load, with which faults, and
//! the thresholds the run must meet. Built only by [`super::validate`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::config::units::format_duration;
pub use crate::faults::FaultKind;
pub use crate::kinds::{Embedded, LoadModel, Suite, TargetKind};
use crate::procedure::Procedure;
pub use crate::schedule::OpenStage;
use crate::thresholds::Threshold;

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// The file it came from, for messages.
    pub source: String,
    pub suite: Suite,
    /// `None`: draw one at run time (and record it).
    pub seed: Option<u64>,
    /// Budget of the whole run.
    pub timeout: Duration,
    pub iteration_timeout: Duration,
    pub allow_remote: bool,
    /// `redact = [...]`: more header and query parameter names whose values are secrets.
    pub redact: Vec<String>,
    pub target: Target,
    pub load: Load,
    pub faults: Faults,
    /// Websocket targets: how the driver talks to the endpoint.
    pub websocket: Option<super::websocket::WsSettings>,
    pub probes: super::websocket::Probes,
    pub thresholds: Vec<Threshold>,
    /// `[tls]`: trust, client certificate, server name.
    pub tls: crate::tls::TlsSettings,
    /// `[http]`: which HTTP, over how many connections.
    pub http: HttpTransport,
}

/// Which HTTP the clients speak, over how many connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpTransport {
    pub version: crate::kinds::HttpVersion,
    /// HTTP/2: connections the load's streams are spread over (default 1).
    pub connections: Option<usize>,
    /// Time every new connection (`metrics.http_connections`). Off by default: the layer that does
    /// it costs the client about a tenth of its requests per CPU-second.
    pub time_connections: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Url(url::Url),
    Embedded(Embedded),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Url(u) => write!(f, "{u}"),
            Endpoint::Embedded(e) => write!(f, "embedded {}", e.as_str()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Target {
    pub kind: TargetKind,
    pub endpoint: Endpoint,
    /// What one iteration does: the handoff procedure, or for `http` targets a one-step procedure made
    /// from `[target.request]`.
    pub procedure: Option<Arc<Procedure>>,
}

/// How iterations are paced.
#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    /// `iterations` spread over `concurrency` workers, each starting its next when the last ends.
    Closed { iterations: u64, concurrency: u32 },
    /// A fixed arrival rate; latency is measured from each iteration's intended start.
    Open(OpenStage),
    /// Open-model stages one after another.
    Stepped {
        stages: Vec<OpenStage>,
        /// When the stages were derived from a base rate: the factor between consecutive stages.
        stress_factor: Option<f64>,
    },
}

impl Load {
    pub fn model(&self) -> LoadModel {
        match self {
            Load::Closed { .. } => LoadModel::Closed,
            Load::Open(_) => LoadModel::Open,
            Load::Stepped { .. } => LoadModel::Stepped,
        }
    }

    /// Closed: the workers; open and stepped: the bound on iterations in flight.
    pub fn concurrency(&self) -> u32 {
        match self {
            Load::Closed { concurrency, .. } => *concurrency,
            Load::Open(s) => s.max_in_flight,
            Load::Stepped { stages, .. } => {
                stages.iter().map(|s| s.max_in_flight).max().unwrap_or(1)
            }
        }
    }

    /// Iterations the load plans to start.
    pub fn planned_iterations(&self) -> u64 {
        match self {
            Load::Closed { iterations, .. } => *iterations,
            Load::Open(s) => s.iterations,
            Load::Stepped { stages, .. } => stages.iter().map(|s| s.iterations).sum(),
        }
    }

    /// How long the schedule lasts, for models that have one.
    pub fn scheduled_duration(&self) -> Option<Duration> {
        match self {
            Load::Closed { .. } => None,
            Load::Open(s) => Some(s.duration),
            Load::Stepped { stages, .. } => Some(stages.iter().map(|s| s.duration).sum()),
        }
    }

    /// A one-line description: `100 it × 5 workers`, `20/s for 30s (≤ 100 in flight)`.
    pub fn summary(&self) -> String {
        match self {
            Load::Closed {
                iterations,
                concurrency,
            } => {
                format!("{iterations} it × {concurrency} workers")
            }
            Load::Open(s) => format!(
                "{} for {} ({} it, ≤ {} in flight)",
                s.rate,
                format_duration(s.duration),
                s.iterations,
                s.max_in_flight
            ),
            Load::Stepped {
                stages,
                stress_factor,
            } => {
                let first = stages
                    .first()
                    .map(|s| s.rate.to_string())
                    .unwrap_or_default();
                let last = stages
                    .last()
                    .map(|s| s.rate.to_string())
                    .unwrap_or_default();
                match stress_factor {
                    Some(f) => format!("{} stages {first} → {last} (×{f})", stages.len()),
                    None => format!("{} stages {first} → {last}", stages.len()),
                }
            }
        }
    }
}

/// Faults injected into a run: in-process into iterations, and on the target's side.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Faults {
    /// Share of iterations that get a fault, 0..=1.
    pub failure_rate: f64,
    pub kinds: Vec<FaultKind>,
    /// Delay added by the `latency` kind.
    pub latency: Option<Duration>,
    /// Chaos the target applies itself, set through its `/admin/chaos` route for the run.
    pub server: Option<ServerChaos>,
    /// Toxics the fault proxy applies between the harness and the target, over windows of the load.
    pub network: Vec<crate::proxy::Fault>,
}

impl Faults {
    /// Whether iterations get in-process faults.
    pub fn is_active(&self) -> bool {
        self.failure_rate > 0.0 && !self.kinds.is_empty()
    }

    /// Whether some network fault has a window that ends during the run (recovery is measured).
    pub fn has_windows(&self) -> bool {
        self.network.iter().any(|f| f.until.is_some())
    }

    /// Whether the run injects anything at all.
    pub fn injects_anything(&self) -> bool {
        self.is_active() || self.server.is_some() || !self.network.is_empty()
    }
}

/// The chaos controls of a target (the reference targets' `/admin/chaos`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerChaos {
    pub error_rate: f64,
    /// Error rates by route pattern.
    pub routes: Vec<(String, f64)>,
    pub latency: Duration,
    pub jitter: Duration,
    /// A down window: after this long, for that long.
    pub down: Option<(Duration, Duration)>,
    /// WebSocket targets: share of deliveries to subscribers dropped.
    pub drop_rate: f64,
}

impl ServerChaos {
    /// The body `PUT /admin/chaos` takes.
    pub fn to_json(&self) -> serde_json::Value {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut v = serde_json::json!({
            "error_rate": self.error_rate,
            "route_error_rates": self.routes.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            "latency_ms": ms(self.latency),
            "jitter_ms": ms(self.jitter),
        });
        if self.drop_rate > 0.0 {
            v["drop_rate"] = self.drop_rate.into();
        }
        if let Some((after, length)) = self.down {
            v["down_after_ms"] = ms(after).into();
            v["down_for_ms"] = ms(length).into();
        }
        v
    }
}
