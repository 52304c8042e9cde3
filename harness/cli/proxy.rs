//! `harness proxy --listen ADDR --upstream ADDR --toxic SPEC…`: the fault proxy on its own, for other
//! tools and manual tests, until Ctrl-C or SIGTERM. Both addresses must be on loopback unless remote
//! ones are allowed; every toxic's window counts from the moment the proxy starts.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use super::exit;
use crate::proxy::{Fault, Proxy, ProxyConfig};

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address to listen on, e.g. 127.0.0.1:9001.
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Address of the target, e.g. 127.0.0.1:9000.
    #[arg(long, value_name = "ADDR")]
    pub upstream: String,
    /// A toxic, repeatable: NAME[=VALUE][,KEY=VALUE…], e.g. latency=200ms,jitter=50ms;
    /// bandwidth=64KiB/s; slow_close=1s; timeout (a blackhole) or timeout=5s; reset_peer=100ms;
    /// slicer=1ms,average_size=64B,size_variation=16B; limit_data=10KiB; down,from=10s,until=20s.
    /// Common keys: direction=upstream|downstream|both, toxicity=0.5, from=…, until=….
    #[arg(long, value_name = "SPEC")]
    pub toxic: Vec<String>,
    /// Seed of the random choices (which connections a toxic hits, jitter).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Allow addresses outside loopback.
    #[arg(long)]
    pub allow_remote: bool,
}

pub fn run(args: ProxyArgs) -> anyhow::Result<u8> {
    let faults = args
        .toxic
        .iter()
        .map(|t| Fault::parse_spec(t).map_err(|e| anyhow::anyhow!("--toxic {t}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !args.allow_remote && !args.listen.ip().is_loopback() {
        bail!(
            "refusing to listen on {}: it is not a loopback address; pass --allow-remote if you mean it",
            args.listen
        );
    }
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let upstream = tokio::net::lookup_host(&args.upstream)
            .await
            .with_context(|| format!("--upstream {}: write HOST:PORT, e.g. 127.0.0.1:9000", args.upstream))?
            .next()
            .with_context(|| format!("--upstream {} resolves to no address", args.upstream))?;
        if !args.allow_remote && !upstream.ip().is_loopback() {
            bail!(
                "refusing to proxy to {upstream}: it is not a loopback address; pass --allow-remote if you mean it"
            );
        }
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let proxy = Proxy::start(
            listener,
            ProxyConfig {
                upstream,
                faults: faults.clone(),
                seed: args.seed,
                epoch: crate::proxy::Epoch::new(Instant::now()),
                connect_timeout: Duration::from_secs(5),
            },
        )?;
        // One write, and no panic if whoever started us has stopped reading our output.
        let mut banner = format!("proxying {} → {upstream}\n", proxy.addr);
        for f in &faults {
            banner.push_str(&format!("  toxic: {f}\n"));
        }
        let _ = std::io::stdout().lock().write_all(banner.as_bytes());
        super::run::interrupted().await;
        let stats = proxy.stats();
        proxy.stop().await;
        eprintln!(
            "{} connections ({} could not reach the upstream, {} cut), {} bytes up, {} down",
            stats.accepted, stats.refused, stats.cut, stats.bytes_up, stats.bytes_down
        );
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(exit::OK)
}
