//! `harness serve handoff|ws`: runs a reference target on its own, for manual tests and other tools,
//! until Ctrl-C or SIGTERM, then shuts down gracefully. Binds loopback unless remote access is allowed.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use super::exit;
use crate::config::units::{parse_duration, parse_rate, parse_size};
use crate::reference::chaos::ChaosSettings;
use crate::reference::handoff::{self, Defects, HandoffConfig, reports::Role};
use crate::reference::ws::{self, WsConfig, WsDefects};
use crate::tls::server::{ServerTls, TlsListener};

/// Which reference target, with the options that apply to it.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(subcommand)]
    pub target: ServeTarget,
}

#[derive(Debug, clap::Subcommand)]
pub enum ServeTarget {
    /// The agent hand-off report and coordination API, e.g. `harness serve handoff --bind 127.0.0.1:8080`.
    Handoff(HandoffArgs),
    /// The WebSocket server (endpoint at /ws, metrics at /metrics), e.g. `harness serve ws --bind 127.0.0.1:8081`.
    Ws(WsArgs),
}

/// Options of both reference targets: where they listen, TLS, chaos, and the rate limit.
#[derive(Debug, Args)]
pub struct Common {
    /// Address to listen on (loopback unless --allow-remote).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub bind: SocketAddr,
    /// Allow listening on an address outside loopback.
    #[arg(long)]
    pub allow_remote: bool,
    /// Share of requests answered 500 (chaos).
    #[arg(long, value_name = "RATE", default_value_t = 0.0)]
    pub error_rate: f64,
    /// Share of requests to one route answered 500, as ROUTE=RATE (repeatable), e.g.
    /// /api/v1/coordination/resources/{id}/transfer=0.2.
    #[arg(long, value_name = "ROUTE=RATE")]
    pub route_error_rate: Vec<String>,
    /// Latency added to every request, e.g. 20ms (chaos).
    #[arg(long, value_name = "DURATION")]
    pub latency: Option<String>,
    /// Up to this much more latency, uniformly (chaos).
    #[arg(long, value_name = "DURATION")]
    pub jitter: Option<String>,
    /// The backend goes down this long after start… (chaos; with --down-for).
    #[arg(long, value_name = "DURATION", requires = "down_for")]
    pub down_after: Option<String>,
    /// …for this long, answering 503.
    #[arg(long, value_name = "DURATION", requires = "down_after")]
    pub down_for: Option<String>,
    /// Messages (or requests) a full token bucket allows at once (default 40).
    #[arg(long, value_name = "N", default_value_t = 40)]
    pub burst: u32,
    /// Seed of the chaos controls' random choices.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Serve over TLS (https / wss) with this certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Require a client certificate signed by this CA (mTLS; with --tls-cert).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_client_ca: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HandoffDefect {
    /// Checkpoint restores answer 200 but restore nothing.
    BrokenRollback,
    /// Transfers skip the resource lock.
    SkipLock,
}

#[derive(Debug, Args)]
pub struct HandoffArgs {
    #[command(flatten)]
    pub common: Common,
    /// One bucket for the whole service, answering 429 with Retry-After (default: no limit).
    #[arg(long, value_name = "RATE")]
    pub rate_limit: Option<String>,
    /// A test-only defect the harness must catch (repeatable).
    #[arg(long, value_enum)]
    pub defect: Vec<HandoffDefect>,
    /// Roles whose approval completes a report's sign-off, comma-separated.
    #[arg(
        long,
        value_name = "ROLES",
        default_value = "developer,tech_lead,qa_engineer",
        value_delimiter = ','
    )]
    pub required_sign_offs: Vec<String>,
    /// Time a transfer's durable write takes, under the resource lock.
    #[arg(long, value_name = "DURATION", default_value = "1ms")]
    pub persist_delay: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WsDefect {
    /// Enforces 25/s while declaring 20/s.
    LooseRateLimit,
    /// Accepts messages of any size.
    NoSizeLimit,
    /// Drops one delivery in 500.
    DropsDeliveries,
    /// Error frames without a correlation id.
    UncorrelatedErrors,
    /// Never disconnects slow consumers.
    KeepSlowConsumers,
    /// One message handled at a time, publishes waiting on full queues.
    BlockingFanout,
}

#[derive(Debug, Args)]
pub struct WsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Rate limit per connection (default 20/s).
    #[arg(long, value_name = "RATE")]
    pub rate_limit: Option<String>,
    /// A test-only defect the harness must catch (repeatable).
    #[arg(long, value_enum)]
    pub defect: Vec<WsDefect>,
    /// Rejected messages within 10s after which a connection is closed with 1008 (0: never).
    #[arg(long, value_name = "N", default_value_t = 300)]
    pub abuse_limit: u32,
    /// Largest message accepted; larger ones close the connection with 1009.
    #[arg(long, value_name = "SIZE", default_value = "64KiB")]
    pub max_message_size: String,
    /// Frames each connection's send queue holds.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub send_queue: usize,
    /// How long a send queue may stay full before its consumer is disconnected.
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    pub slow_consumer_grace: String,
    /// Share of deliveries to subscribers dropped (chaos).
    #[arg(long, value_name = "RATE", default_value_t = 0.0)]
    pub drop_rate: f64,
}

fn duration(flag: &str, value: &str) -> anyhow::Result<std::time::Duration> {
    parse_duration(value).map_err(|e| anyhow::anyhow!("--{flag} {value}: {e}"))
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Common {
    fn chaos(&self, drop_rate: f64) -> anyhow::Result<ChaosSettings> {
        let mut routes = std::collections::BTreeMap::new();
        for r in &self.route_error_rate {
            let (route, rate) = r.rsplit_once('=').with_context(|| {
                format!("--route-error-rate {r}: write ROUTE=RATE, e.g. /health=0.5")
            })?;
            let rate: f64 = rate
                .parse()
                .with_context(|| format!("--route-error-rate {r}: `{rate}` is not a number"))?;
            routes.insert(route.to_string(), rate);
        }
        let settings = ChaosSettings {
            error_rate: self.error_rate,
            route_error_rates: routes,
            latency_ms: self
                .latency
                .as_deref()
                .map(|l| duration("latency", l))
                .transpose()?
                .map_or(0.0, ms),
            jitter_ms: self
                .jitter
                .as_deref()
                .map(|j| duration("jitter", j))
                .transpose()?
                .map_or(0.0, ms),
            down_after_ms: self
                .down_after
                .as_deref()
                .map(|d| duration("down-after", d))
                .transpose()?
                .map(ms),
            down_for_ms: self
                .down_for
                .as_deref()
                .map(|d| duration("down-for", d))
                .transpose()?
                .map(ms),
            drop_rate,
        };
        settings
            .check()
            .map_err(|e| anyhow::anyhow!("chaos settings: {}", e.message))?;
        Ok(settings)
    }
}

fn rate_limit(text: Option<&str>) -> anyhow::Result<Option<f64>> {
    text.map(|r| {
        parse_rate(r)
            .map(|r| r.per_second)
            .map_err(|e| anyhow::anyhow!("--rate-limit {r}: {} — {}", e.message, e.hint))
    })
    .transpose()
}

impl HandoffArgs {
    fn roles(&self) -> anyhow::Result<Vec<Role>> {
        self.required_sign_offs
            .iter()
            .map(|r| {
                serde_json::from_value(serde_json::Value::String(r.trim().to_string())).map_err(|_| {
                    anyhow::anyhow!(
                        "--required-sign-offs: `{r}` is not a role (developer, tech_lead, qa_engineer, \\
                         security_reviewer, product_owner, architect)"
                    )
                })
            })
            .collect()
    }

    fn config(&self) -> anyhow::Result<HandoffConfig> {
        Ok(HandoffConfig {
            required_sign_offs: self.roles()?,
            persist_delay: duration("persist-delay", &self.persist_delay)?,
            defects: Defects {
                broken_rollback: self.defect.contains(&HandoffDefect::BrokenRollback),
                skip_lock: self.defect.contains(&HandoffDefect::SkipLock),
            },
            chaos: self.common.chaos(0.0)?,
            seed: self.common.seed,
            rate_limit: rate_limit(self.rate_limit.as_deref())?
                .map(|rate| (rate, self.common.burst)),
            ..HandoffConfig::default()
        })
    }
}

impl WsArgs {
    fn config(&self) -> anyhow::Result<WsConfig> {
        let defaults = WsConfig::default();
        let size = parse_size(&self.max_message_size).map_err(|e| {
            anyhow::anyhow!(
                "--max-message-size {}: {} — {}",
                self.max_message_size,
                e.message,
                e.hint
            )
        })?;
        Ok(WsConfig {
            rate_per_s: rate_limit(self.rate_limit.as_deref())?.unwrap_or(defaults.rate_per_s),
            burst: self.common.burst,
            abuse_limit: self.abuse_limit,
            max_message_bytes: usize::try_from(size).unwrap_or(usize::MAX),
            send_queue: self.send_queue.max(1),
            slow_consumer_grace: duration("slow-consumer-grace", &self.slow_consumer_grace)?,
            chaos: self.common.chaos(self.drop_rate)?,
            seed: self.common.seed,
            defects: WsDefects {
                loose_rate_limit: self.defect.contains(&WsDefect::LooseRateLimit),
                no_size_limit: self.defect.contains(&WsDefect::NoSizeLimit),
                drops_deliveries: self.defect.contains(&WsDefect::DropsDeliveries),
                uncorrelated_errors: self.defect.contains(&WsDefect::UncorrelatedErrors),
                keep_slow_consumers: self.defect.contains(&WsDefect::KeepSlowConsumers),
                blocking_fanout: self.defect.contains(&WsDefect::BlockingFanout),
            },
            ..defaults
        })
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<u8> {
    let (target, args) = match &args.target {
        ServeTarget::Handoff(h) => (Config::Handoff(h.config()?), &h.common),
        ServeTarget::Ws(w) => (Config::Ws(w.config()?), &w.common),
    };
    if !args.allow_remote && !args.bind.ip().is_loopback() {
        bail!(
            "refusing to listen on {}: it is not a loopback address; pass --allow-remote if you mean it",
            args.bind
        );
    }
    init_logging();
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("cannot listen on {}", args.bind))?;
        let addr = listener.local_addr()?;
        let shutdown = async {
            super::run::interrupted().await;
            tracing::info!("shutting down");
        };
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(
                ServerTls {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: args.tls_client_ca.clone(),
                }
                .config()?,
            ),
            _ => None,
        };
        let secure = if tls.is_some() { "s" } else { "" };
        match target {
            Config::Handoff(config) => {
                tracing::info!(%addr, defects = ?config.defects, chaos = ?config.chaos, tls = tls.is_some(), "reference handoff service listening");
                println!("listening on http{secure}://{addr}");
                match tls {
                    Some(tls) => handoff::serve(TlsListener::new(listener, tls)?, config, shutdown).await,
                    None => handoff::serve(listener, config, shutdown).await,
                }
            }
            Config::Ws(config) => {
                tracing::info!(%addr, defects = ?config.defects, chaos = ?config.chaos, tls = tls.is_some(), "reference WebSocket server listening");
                println!("listening on ws{secure}://{addr}/ws (metrics at http{secure}://{addr}/metrics)");
                match tls {
                    Some(tls) => ws::serve(TlsListener::new(listener, tls)?, config, shutdown).await,
                    None => ws::serve(listener, config, shutdown).await,
                }
            }
        }
        .context("the server stopped with an error")
    })?;
    Ok(exit::OK)
}

enum Config {
    Handoff(HandoffConfig),
    Ws(WsConfig),
}

/// Structured logs on stderr; `RUST_LOG` overrides the level (`RUST_LOG=debug` shows every request).
/// Colour only on a terminal, and never with `NO_COLOR` set (<https://no-color.org>).
fn init_logging() {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(!no_color && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
