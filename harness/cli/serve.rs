//! `harness serve handoff`: runs a reference target on its own, for manual tests and other tools,
//! until Ctrl-C or SIGTERM, then shuts down gracefully. Binds loopback unless remote access is allowed.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use super::exit;
use crate::config::units::parse_duration;
use crate::reference::chaos::ChaosSettings;
use crate::reference::handoff::{self, Defects, HandoffConfig, reports::Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Which {
    /// The agent hand-off report and coordination API.
    Handoff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Defect {
    /// Checkpoint restores answer 200 but restore nothing.
    BrokenRollback,
    /// Transfers skip the resource lock.
    SkipLock,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Which reference target.
    #[arg(value_enum)]
    pub which: Which,
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
    /// A test-only defect the harness must catch (repeatable).
    #[arg(long, value_enum)]
    pub defect: Vec<Defect>,
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
    /// Seed of the chaos controls' random choices.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

fn duration(flag: &str, value: &str) -> anyhow::Result<std::time::Duration> {
    parse_duration(value).map_err(|e| anyhow::anyhow!("--{flag} {value}: {e}"))
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl ServeArgs {
    fn chaos(&self) -> anyhow::Result<ChaosSettings> {
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
        };
        settings
            .check()
            .map_err(|e| anyhow::anyhow!("chaos settings: {}", e.message))?;
        Ok(settings)
    }

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
}

pub fn run(args: ServeArgs) -> anyhow::Result<u8> {
    if !args.allow_remote && !args.bind.ip().is_loopback() {
        bail!(
            "refusing to listen on {}: it is not a loopback address; pass --allow-remote if you mean it",
            args.bind
        );
    }
    let Which::Handoff = args.which;
    let config = HandoffConfig {
        required_sign_offs: args.roles()?,
        persist_delay: duration("persist-delay", &args.persist_delay)?,
        defects: Defects {
            broken_rollback: args.defect.contains(&Defect::BrokenRollback),
            skip_lock: args.defect.contains(&Defect::SkipLock),
        },
        chaos: args.chaos()?,
        seed: args.seed,
        ..HandoffConfig::default()
    };
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("cannot listen on {}", args.bind))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, defects = ?config.defects, chaos = ?config.chaos, "reference handoff service listening");
        println!("listening on http://{addr}");
        handoff::serve(listener, config, async {
            super::run::interrupted().await;
            tracing::info!("shutting down: finishing requests in progress");
        })
        .await
        .context("the server stopped with an error")
    })?;
    Ok(exit::OK)
}

/// Structured logs on stderr; `RUST_LOG` overrides the level (`RUST_LOG=debug` shows every request).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
