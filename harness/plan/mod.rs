//! The plan of a run: a validated scenario resolved, once, into everything the engine needs and
//! nothing it has to work out again — the run's identity (name, suite, seed, run id, shard), its
//! budget, the load ([`LoadPlan`], which makes the schedule), the target ([`TargetPlan`]: what one
//! iteration does, and [`Endpoint`]: where it goes), the faults, the probes, and what is judged.
//!
//! [`build`] is where a scenario meets the command line's overrides (`--target`, `--seed`,
//! `--allow-remote`): a target the run may not reach is refused here, before anything runs. The
//! engine reads a [`RunPlan`] and never a [`Scenario`]; a plan has no impossible states (a WebSocket
//! target always has its settings, a procedure target its procedure).

pub mod descriptors;
pub mod load;
pub mod memory;

pub use load::LoadPlan;

use std::sync::Arc;
use std::time::Duration;

use url::Url;

pub use crate::faults::FaultKind;
use crate::kinds::{Embedded, Suite, TargetKind};
use crate::procedure::Procedure;
use crate::proxy::Fault as NetworkFault;
use crate::result::Shard;
pub use crate::scenario::ServerChaos;
pub use crate::scenario::websocket::{
    BodySizeProbe, HardeningProbe, Probes, RateLimitProbe, SlowConsumerProbe, WsSettings,
};
use crate::scenario::{Endpoint as ScenarioEndpoint, Scenario};
use crate::thresholds::Threshold;

/// Longest grace iterations in flight get once the run is told to stop.
pub const MAX_GRACE: Duration = Duration::from_secs(3);

/// A run, resolved.
#[derive(Debug, Clone)]
pub struct RunPlan {
    pub identity: Identity,
    pub budget: Budget,
    pub endpoint: Endpoint,
    /// Requests may go to hosts outside loopback (the user said so).
    pub allow_remote: bool,
    /// How every client reaches the target (reach, TLS, HTTP version).
    pub net: crate::net::Network,
    /// Header and query parameter names whose values are secrets, beside the usual ones.
    pub redact: Vec<String>,
    pub target: TargetPlan,
    pub load: LoadPlan,
    pub faults: FaultsPlan,
    pub probes: Probes,
    pub judgement: Judgement,
    /// When the load is to begin (`--start-at`): shards started apart line their timelines up on it.
    pub start_at: Option<std::time::SystemTime>,
}

/// The plan of a scenario written as `text` (no procedures beyond the built-in ones), with no
/// overrides: for tests.
#[cfg(test)]
pub(crate) fn of_text(text: &str) -> RunPlan {
    let source = crate::config::Source::new("test.toml", text);
    let procedures = crate::procedure::catalog(&[]).unwrap();
    let resolver = crate::scenario::validate::Resolver {
        procedures: &procedures,
        base_dir: None,
    };
    let s = crate::scenario::parse(&source, None, &resolver).unwrap_or_else(|e| panic!("{e}"));
    build(&s, Overrides::default()).unwrap()
}

/// The least a WebSocket connection accepts in one message when the scenario declares no limit.
pub const MIN_MAX_MESSAGE: usize = 1 << 20;

/// The message limit of a run whose frames carry `payload` bytes of padding (and whose slow-consumer
/// probe publishes `probe_payload`): four times the larger, and at least [`MIN_MAX_MESSAGE`] — what
/// the endpoint's answers to them need with room to spare, and no more, so a hostile endpoint cannot
/// make the harness buffer 16 MiB per connection.
pub fn default_max_message(payload: usize, probe_payload: usize) -> usize {
    payload
        .max(probe_payload)
        .saturating_mul(4)
        .max(MIN_MAX_MESSAGE)
}

/// What the run is, for its result and for the ids it creates on the target.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub name: String,
    pub description: String,
    pub suite: Suite,
    /// Every random choice of the run derives from it.
    pub seed: u64,
    /// Unique to this run (time and process, not the seed), so two runs with one seed never collide
    /// on a long-lived target.
    pub run_id: String,
    pub shard: Shard,
}

/// How long the run and each iteration may take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// The whole run, probes before the load included.
    pub timeout: Duration,
    pub iteration: Duration,
}

impl Budget {
    /// How long iterations in flight get to finish once the run is told to stop.
    pub fn grace(&self) -> Duration {
        self.iteration.min(MAX_GRACE)
    }
}

/// Where the target is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// At this URL; `embedded` when it is a reference target the caller started there.
    At {
        url: Url,
        embedded: Option<Embedded>,
    },
    /// A reference target the engine starts on 127.0.0.1 for the run, and stops after it.
    Start(Embedded),
}

impl Endpoint {
    /// The reference target serving the run, if it is one.
    pub fn embedded(&self) -> Option<Embedded> {
        match self {
            Endpoint::At { embedded, .. } => *embedded,
            Endpoint::Start(e) => Some(*e),
        }
    }
}

/// What one iteration does.
#[derive(Debug, Clone)]
pub enum TargetPlan {
    /// One HTTP request per iteration (a one-step procedure made from `[target.request]`).
    Request(Arc<Procedure>),
    /// A handoff procedure over HTTP.
    Procedure(Arc<Procedure>),
    /// Frames over a pool of WebSocket connections.
    WebSocket(Box<WsSettings>),
}

impl TargetPlan {
    pub fn kind(&self) -> TargetKind {
        match self {
            TargetPlan::Request(_) => TargetKind::Http,
            TargetPlan::Procedure(_) => TargetKind::Handoff,
            TargetPlan::WebSocket(_) => TargetKind::Websocket,
        }
    }

    /// The procedure an HTTP iteration runs.
    pub fn procedure(&self) -> Option<&Arc<Procedure>> {
        match self {
            TargetPlan::Request(p) | TargetPlan::Procedure(p) => Some(p),
            TargetPlan::WebSocket(_) => None,
        }
    }
}

/// Faults of the run: injected into iterations, set on the target, applied on the network.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultsPlan {
    pub injected: Option<Injection>,
    /// Chaos the target applies itself, through its `/admin/chaos` route, for the run.
    pub server: Option<ServerChaos>,
    /// Toxics of the fault proxy, over windows of the load.
    pub network: Vec<NetworkFault>,
}

impl FaultsPlan {
    /// Whether some network fault has a window that ends during the run (recovery is measured).
    pub fn has_windows(&self) -> bool {
        self.network.iter().any(|f| f.until.is_some())
    }
}

/// In-process faults: which share of iterations get one, of which kinds.
#[derive(Debug, Clone, PartialEq)]
pub struct Injection {
    pub rate: f64,
    pub kinds: Vec<FaultKind>,
    /// What the `latency` kind adds.
    pub latency: Duration,
}

/// What the run is judged on.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub thresholds: Vec<Threshold>,
    /// The stress suite: every stage judged, the breaking point located.
    pub breaking_point: bool,
    /// The endurance suite: seconds of the first and last windows compared for drift.
    pub drift_window_s: Option<u64>,
    /// The concurrency suite on a procedure: the acknowledged history checked against the state.
    pub invariants: bool,
    /// The procedure writes to collections (`history` steps) and reads them back (`[read_back]`).
    pub history: bool,
}

/// What the command line (or a test) sets beside the scenario.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Where the target is, instead of the scenario's endpoint.
    pub target: Option<Url>,
    /// The `target` URL is a reference target the caller started.
    pub embedded: Option<Embedded>,
    pub seed: Option<u64>,
    /// Default: made from the time and the process.
    pub run_id: Option<String>,
    /// Default: 0 of 1.
    pub shard: Option<Shard>,
    pub allow_remote: bool,
    /// TLS settings given on the command line, over the scenario's `[tls]`.
    pub tls: crate::tls::TlsSettings,
    /// `--http`, over the scenario's `[http] version`.
    pub http: Option<crate::kinds::HttpVersion>,
    /// `--start-at`: when the load begins.
    pub start_at: Option<std::time::SystemTime>,
}

/// Why a scenario cannot run as asked. Nothing was run (exit 2).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("--target {url}: a {kind} target needs a {expected} URL")]
    Scheme {
        url: Url,
        kind: TargetKind,
        expected: &'static str,
    },
    /// A TLS file that cannot be read or used.
    #[error("TLS: {0}")]
    Tls(String),
    #[error(
        "refusing to send load to {url}: it is not a loopback address. Load, stress and chaos runs \
         are meant for targets on this machine; if you really mean to test a remote host you own, \
         pass --allow-remote (or set allow_remote = true in the scenario)"
    )]
    NotLoopback { url: Url },
    #[error("{source_file}: {what} (the scenario was not fully validated)")]
    Incomplete {
        source_file: String,
        what: &'static str,
    },
}

/// Resolves `scenario` with `overrides` into a plan.
pub fn build(scenario: &Scenario, overrides: Overrides) -> Result<RunPlan, PlanError> {
    let allow_remote = overrides.allow_remote || scenario.allow_remote;
    let shard = overrides.shard.unwrap_or(Shard::WHOLE);
    let kind = scenario.target.kind;
    let endpoint = match (overrides.target, &scenario.target.endpoint) {
        (Some(url), _) => {
            let expected: &[&str] = match kind {
                TargetKind::Websocket => &["ws", "wss"],
                TargetKind::Handoff | TargetKind::Http => &["http", "https"],
            };
            if !expected.contains(&url.scheme()) {
                return Err(PlanError::Scheme {
                    url,
                    kind,
                    expected: if kind == TargetKind::Websocket {
                        "ws:// or wss://"
                    } else {
                        "http:// or https://"
                    },
                });
            }
            Endpoint::At {
                url,
                embedded: overrides.embedded,
            }
        }
        (None, ScenarioEndpoint::Url(url)) => Endpoint::At {
            url: url.clone(),
            embedded: None,
        },
        (None, ScenarioEndpoint::Embedded(e)) => Endpoint::Start(*e),
    };
    if let Endpoint::At { url, .. } = &endpoint
        && !allow_remote
        && !crate::net::is_loopback(url)
    {
        return Err(PlanError::NotLoopback { url: url.clone() });
    }
    let incomplete = |what| PlanError::Incomplete {
        source_file: scenario.source.clone(),
        what,
    };
    let target = match kind {
        TargetKind::Websocket => {
            let mut settings = scenario
                .websocket
                .clone()
                .ok_or_else(|| incomplete("a websocket target has no [websocket] settings"))?;
            // A shard holds its share of the connections and of the delivery subscribers.
            settings.connections = shard.split(settings.connections);
            if settings.subscribers > 0 {
                settings.subscribers = shard.split(settings.subscribers);
            }
            let probe_payload = scenario
                .probes
                .slow_consumer
                .as_ref()
                .map_or(0, |p| p.payload_size);
            settings.protocol.setup.max_message = Some(
                settings
                    .max_message_size
                    .unwrap_or_else(|| default_max_message(settings.payload_size, probe_payload)),
            );
            TargetPlan::WebSocket(Box::new(settings))
        }
        TargetKind::Handoff | TargetKind::Http => {
            let procedure = scenario
                .target
                .procedure
                .clone()
                .ok_or_else(|| incomplete("the target has no procedure to run"))?;
            if kind == TargetKind::Handoff {
                TargetPlan::Procedure(procedure)
            } else {
                TargetPlan::Request(procedure)
            }
        }
    };
    let load = LoadPlan::from(&scenario.load).sharded(shard);
    let suite = scenario.suite;
    let f = &scenario.faults;
    let faults = FaultsPlan {
        injected: f.is_active().then(|| Injection {
            rate: f.failure_rate,
            kinds: f.kinds.clone(),
            latency: f.latency.unwrap_or_default(),
        }),
        server: f.server.clone(),
        network: f.network.clone(),
    };
    let judgement = Judgement {
        thresholds: scenario.thresholds.clone(),
        breaking_point: suite == Suite::Stress && !load.judged_stages().is_empty(),
        drift_window_s: (suite == Suite::Endurance).then(|| {
            let secs = load
                .scheduled_duration()
                .unwrap_or(scenario.timeout)
                .as_secs();
            (secs / 10).clamp(2, 60)
        }),
        invariants: suite == Suite::Concurrency
            && kind == TargetKind::Handoff
            && target
                .procedure()
                .is_some_and(|p| p.steps.iter().any(|s| s.ack.is_some())),
        history: target.procedure().is_some_and(|p| p.read_back.is_some()),
    };
    let tls = scenario.tls.clone().overlay(&overrides.tls);
    let net = crate::net::Network {
        reach: crate::net::Reach::of(allow_remote),
        tls: Arc::new(crate::tls::ClientTls::new(&tls).map_err(|e| PlanError::Tls(e.to_string()))?),
        http: overrides.http.unwrap_or(scenario.http.version),
        http2_connections: scenario.http.connections.unwrap_or(1),
        time_connections: scenario.http.time_connections,
    };
    Ok(RunPlan {
        identity: Identity {
            name: scenario.name.clone(),
            description: scenario.description.clone(),
            suite,
            seed: overrides.seed.or(scenario.seed).unwrap_or_else(draw_seed),
            run_id: overrides.run_id.unwrap_or_else(new_run_id),
            shard,
        },
        budget: Budget {
            timeout: scenario.timeout,
            iteration: scenario.iteration_timeout,
        },
        endpoint,
        allow_remote,
        net,
        redact: scenario.redact.clone(),
        target,
        load,
        faults,
        // The probes need the target to themselves and measure it once: the first shard runs them.
        probes: if shard.index == 0 {
            scenario.probes.clone()
        } else {
            Probes::default()
        },
        judgement,
        start_at: overrides.start_at,
    })
}

/// Seeds the harness draws itself stay below 2^53, so every JSON reader holds them exactly (a seed
/// the user gives may be any u64; `seed_text` keeps it exact for the others).
pub const DRAWN_SEED_BOUND: u64 = 1 << 53;

fn draw_seed() -> u64 {
    rand::random::<u64>() % DRAWN_SEED_BOUND
}

/// A short id unique to this run: time and process, not the seed.
fn new_run_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("r{:x}{:04x}", millis, std::process::id() & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::LoadModel;
    use crate::scenario::Library;

    fn builtin(name: &str) -> Scenario {
        Library::open(None)
            .and_then(|l| l.load(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn at(url: &str) -> Overrides {
        Overrides {
            target: Some(Url::parse(url).unwrap()),
            seed: Some(9),
            run_id: Some("t".into()),
            ..Overrides::default()
        }
    }

    #[test]
    fn every_load_model_and_target_kind_resolves() {
        let cases = [
            (
                "RELIABILITY_STANDARD",
                TargetKind::Handoff,
                LoadModel::Closed,
            ),
            ("PERFORMANCE_STANDARD", TargetKind::Handoff, LoadModel::Open),
            ("STRESS_STANDARD", TargetKind::Handoff, LoadModel::Stepped),
            (
                "WS_LATENCY_DELIVERY_STANDARD",
                TargetKind::Websocket,
                LoadModel::Open,
            ),
            (
                "WS_STRESS_STANDARD",
                TargetKind::Websocket,
                LoadModel::Stepped,
            ),
        ];
        for (name, kind, model) in cases {
            let plan = build(&builtin(name), Overrides::default()).unwrap();
            assert_eq!(plan.target.kind(), kind, "{name}");
            assert_eq!(plan.load.model(), model, "{name}");
            assert!(
                matches!(plan.endpoint, Endpoint::Start(_)),
                "{name}: no target given, so the reference target is started"
            );
            assert_eq!(
                plan.target.procedure().is_some(),
                kind != TargetKind::Websocket,
                "{name}"
            );
        }
        let stress = build(&builtin("STRESS_STANDARD"), Overrides::default()).unwrap();
        assert!(stress.judgement.breaking_point);
        assert_eq!(stress.load.judged_stages().len(), 8);
        let endurance = build(&builtin("ENDURANCE_STANDARD"), Overrides::default()).unwrap();
        assert_eq!(endurance.judgement.drift_window_s, Some(15));
        let concurrency = build(&builtin("CONCURRENCY_STANDARD"), Overrides::default()).unwrap();
        assert!(concurrency.judgement.invariants);
        let injection =
            build(&builtin("FAILURE_INJECTION_STANDARD"), Overrides::default()).unwrap();
        let i = injection.faults.injected.expect("faults are injected");
        assert_eq!(i.rate, 0.1);
        assert!(!injection.faults.network.is_empty());
    }

    #[test]
    fn overrides_set_the_identity_and_the_target() {
        let plan = build(
            &builtin("RELIABILITY_STANDARD"),
            at("http://127.0.0.1:8080"),
        )
        .unwrap();
        assert_eq!(plan.identity.seed, 9);
        assert_eq!(plan.identity.run_id, "t");
        assert_eq!(plan.identity.shard, Shard { index: 0, count: 1 });
        assert_eq!(
            plan.endpoint,
            Endpoint::At {
                url: Url::parse("http://127.0.0.1:8080").unwrap(),
                embedded: None
            }
        );
        assert_eq!(plan.budget.grace(), Duration::from_secs(3));
        let drawn = build(&builtin("RELIABILITY_STANDARD"), Overrides::default()).unwrap();
        assert!(!drawn.identity.run_id.is_empty());
        for _ in 0..100 {
            let s = build(&builtin("RELIABILITY_STANDARD"), Overrides::default()).unwrap();
            assert!(s.identity.seed < DRAWN_SEED_BOUND, "{}", s.identity.seed);
        }
    }

    #[test]
    fn a_target_the_run_may_not_reach_is_refused_before_anything_runs() {
        let s = builtin("RELIABILITY_STANDARD");
        let err = build(&s, at("http://10.1.2.3:80")).unwrap_err();
        assert!(matches!(err, PlanError::NotLoopback { .. }), "{err}");
        assert!(err.to_string().contains("--allow-remote"), "{err}");
        let allowed = Overrides {
            allow_remote: true,
            ..at("http://10.1.2.3:80")
        };
        assert!(build(&s, allowed).is_ok());

        let err = build(&s, at("ws://127.0.0.1:9000/ws")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--target ws://127.0.0.1:9000/ws: a handoff target needs a http:// or https:// URL"
        );
        let ws = builtin("WS_LATENCY_DELIVERY_STANDARD");
        let err = build(&ws, at("http://127.0.0.1:9000/")).unwrap_err();
        assert!(matches!(err, PlanError::Scheme { .. }), "{err}");
        // TLS targets pass the same gate.
        assert!(build(&s, at("https://127.0.0.1:8443")).is_ok());
        let err = build(&s, at("https://10.1.2.3:443")).unwrap_err();
        assert!(matches!(err, PlanError::NotLoopback { .. }), "{err}");
        let missing = Overrides {
            tls: crate::tls::TlsSettings {
                ca: vec!["/nonexistent/ca.pem".into()],
                ..Default::default()
            },
            ..at("https://127.0.0.1:8443")
        };
        let err = build(&s, missing).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("TLS: cannot read CA certificate /nonexistent/ca.pem"),
            "{err}"
        );
    }

    #[test]
    fn impossible_combinations_never_reach_the_plan() {
        let text = r#"name = "bad"
suite = "stress"
timeout = "30s"
[target]
kind = "http"
url = "http://127.0.0.1:1"
[load]
iterations = 10
concurrency = 2
"#;
        let source = crate::config::Source::new("bad.toml", text);
        let procedures = crate::procedure::catalog(&[]).unwrap();
        let resolver = crate::scenario::validate::Resolver {
            procedures: &procedures,
            base_dir: None,
        };
        let problems = crate::scenario::parse(&source, None, &resolver).unwrap_err();
        let text = problems.to_string();
        assert!(
            text.starts_with("bad.toml:7:1: load.model:") && text.contains("stepped"),
            "a stress suite on a closed load is refused where the load is: {text}"
        );
    }
}
