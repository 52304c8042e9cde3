//! Putting the fault proxy between the load and the target for runs with `[[faults.network]]`: the
//! proxy listens on 127.0.0.1 at a port the system picks and forwards to the target's address; the
//! load's URL is rewritten to go through it. Probes, preflight checks and admin calls keep going to
//! the target directly. The fault windows count from the start of the load.

use std::time::{Duration, Instant};

use url::Url;

use super::error::TargetError;
use crate::proxy::{Epoch, Fault, Proxy, ProxyConfig};

/// The proxy of a run, and the URL the load uses through it.
pub struct Interposed {
    proxy: Proxy,
    epoch: std::sync::Arc<Epoch>,
    pub url: Url,
}

impl Interposed {
    /// Starts the fault windows' clock (at the start of the load).
    pub fn start_clock(&self, t0: Instant) {
        self.epoch.set(t0);
    }

    /// Stops the proxy; returns a note for the result.
    pub async fn stop(self, faults: &[Fault]) -> String {
        let stats = self.proxy.stats();
        let addr = self.proxy.addr;
        self.proxy.stop().await;
        let faults: Vec<String> = faults.iter().map(|f| f.to_string()).collect();
        format!(
            "Network faults ({}) were applied by the fault proxy at {addr}: {} connections through it, {} cut by outages, {} that could not reach the target.",
            faults.join("; "),
            stats.accepted,
            stats.cut,
            stats.refused
        )
    }
}

/// Starts the proxy when the plan has network faults.
pub async fn interpose(
    faults: &[Fault],
    target: &Url,
    seed: u64,
    reach: crate::net::Reach,
) -> Result<Option<Interposed>, TargetError> {
    if faults.is_empty() {
        return Ok(None);
    }
    let upstream = crate::net::resolve(target, reach).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(TargetError::Proxy)?;
    let epoch = Epoch::new(Instant::now());
    let proxy = Proxy::start(
        listener,
        ProxyConfig {
            upstream,
            faults: faults.to_vec(),
            seed,
            epoch: std::sync::Arc::clone(&epoch),
            connect_timeout: Duration::from_secs(5),
        },
    )
    .map_err(TargetError::Proxy)?;
    let mut url = target.clone();
    let route = || TargetError::Route {
        url: target.clone(),
    };
    url.set_host(Some("127.0.0.1")).map_err(|_| route())?;
    url.set_port(Some(proxy.addr.port())).map_err(|_| route())?;
    Ok(Some(Interposed { proxy, epoch, url }))
}
