//! The fault proxy: a TCP proxy that sits between the harness and any target (HTTP or WebSocket) and
//! applies toxics to the data, Toxiproxy-style — latency with jitter, a bandwidth limit, a slow close,
//! a timeout or blackhole, a reset, slicing, a data limit — each over a window of the run and on a
//! share of the connections, and `down` windows during which it refuses new connections and cuts
//! open ones. `harness proxy` runs it on its own; a scenario's `[[faults.network]]` puts one in front
//! of its target for the run.
//!
//! Which connections a toxic hits, and every random delay, come from the seed: the same seed and the
//! same order of connections give the same faults.

pub mod link;
pub mod toxic;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::link::{Counters, Link};
pub use self::toxic::{Direction, Fault, Toxic};

/// Time zero of the fault windows, which may be moved later once (a run sets it to the start of its
/// load, after its connections are open).
#[derive(Debug)]
pub struct Epoch {
    base: Instant,
    offset_ns: AtomicU64,
}

impl Epoch {
    pub fn new(at: Instant) -> Arc<Self> {
        Arc::new(Self {
            base: at,
            offset_ns: AtomicU64::new(0),
        })
    }

    /// Moves time zero to `at` (not before the proxy's start).
    pub fn set(&self, at: Instant) {
        let offset = at.saturating_duration_since(self.base).as_nanos() as u64;
        self.offset_ns.store(offset, Ordering::Relaxed);
    }

    pub fn at(&self) -> Instant {
        self.base + Duration::from_nanos(self.offset_ns.load(Ordering::Relaxed))
    }

    /// Time since time zero (zero before it).
    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.at())
    }
}

/// What the proxy needs to know.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub upstream: SocketAddr,
    pub faults: Vec<Fault>,
    pub seed: u64,
    /// Time zero of the fault windows.
    pub epoch: Arc<Epoch>,
    /// How long connecting upstream may take.
    pub connect_timeout: Duration,
}

/// The proxy's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ProxyStats {
    pub accepted: u64,
    /// Connections that could not reach the upstream.
    pub refused: u64,
    /// Connections cut by an outage.
    pub cut: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

/// A running proxy; stop it with [`Proxy::stop`].
pub struct Proxy {
    pub addr: SocketAddr,
    counters: Arc<Counters>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Starts proxying connections to `listener` (bound by the caller, e.g. on 127.0.0.1:0).
    pub fn start(listener: TcpListener, config: ProxyConfig) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept(
            listener,
            addr,
            config,
            Arc::clone(&counters),
            stop.clone(),
        ));
        Ok(Self {
            addr,
            counters,
            stop,
            task,
        })
    }

    pub fn stats(&self) -> ProxyStats {
        let g = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let c = &self.counters;
        ProxyStats {
            accepted: g(&c.accepted),
            refused: g(&c.refused),
            cut: g(&c.cut),
            bytes_up: g(&c.bytes_up),
            bytes_down: g(&c.bytes_down),
        }
    }

    /// Stops accepting and cuts every connection.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// The outage windows open at `t`, and when the next one opens after `t`.
fn outage(faults: &[Fault], t: Duration) -> (bool, Option<Duration>) {
    let downs = faults.iter().filter(|f| f.toxic == Toxic::Down);
    let now = downs.clone().any(|f| f.active(t));
    let next = downs.map(|f| f.from).filter(|from| *from > t).min();
    (now, next)
}

/// When every outage open at `t` has ended (`None`: one never ends).
fn outage_end(faults: &[Fault], t: Duration) -> Option<Duration> {
    let mut end = t;
    loop {
        let at = end;
        let covering = faults
            .iter()
            .filter(|f| f.toxic == Toxic::Down && f.active(at));
        let mut moved = false;
        for f in covering {
            let until = f.until?;
            if until > end {
                end = until;
                moved = true;
            }
        }
        if !moved {
            return Some(end);
        }
    }
}

async fn accept(
    listener: TcpListener,
    addr: SocketAddr,
    config: ProxyConfig,
    counters: Arc<Counters>,
    stop: CancellationToken,
) {
    let links: Arc<Mutex<Vec<Weak<Link>>>> = Arc::default();
    let mut listener = Some(listener);
    let mut index: u64 = 0;
    loop {
        let t = config.epoch.elapsed();
        let (down, next_down) = outage(&config.faults, t);
        if down {
            // Refuse new connections (no listener at all) and cut the open ones.
            listener = None;
            cut_all(&links, &counters);
            let Some(end) = outage_end(&config.faults, t) else {
                stop.cancelled().await;
                return;
            };
            tokio::select! {
                _ = tokio::time::sleep_until((config.epoch.at() + end).into()) => {}
                _ = stop.cancelled() => return,
            }
            continue;
        }
        let current = match listener.take() {
            Some(l) => l,
            None => match rebind(addr, &stop).await {
                Some(l) => l,
                None => return,
            },
        };
        let wake = next_down.map(|n| config.epoch.at() + n);
        let accepted = tokio::select! {
            a = current.accept() => Some(a),
            _ = sleep_until_opt(wake) => None,
            _ = stop.cancelled() => {
                cut_all(&links, &counters);
                return;
            }
        };
        listener = Some(current);
        let Some(Ok((client, _))) = accepted else {
            continue;
        };
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        index += 1;
        let mut rng =
            ChaCha8Rng::seed_from_u64(config.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let faults: Vec<Fault> = config
            .faults
            .iter()
            .filter(|f| f.toxic != Toxic::Down)
            .filter(|f| f.toxicity >= 1.0 || rng.random_bool(f.toxicity.clamp(0.0, 1.0)))
            .copied()
            .collect();
        let link = Link::new(faults, Arc::clone(&config.epoch));
        {
            let mut all = links.lock().unwrap_or_else(|p| p.into_inner());
            all.retain(|l| l.strong_count() > 0);
            all.push(Arc::downgrade(&link));
        }
        let (counters, upstream, timeout) = (
            Arc::clone(&counters),
            config.upstream,
            config.connect_timeout,
        );
        tokio::spawn(async move {
            match tokio::time::timeout(timeout, TcpStream::connect(upstream)).await {
                Ok(Ok(up)) => link::run(client, up, link, rng, counters).await,
                _ => {
                    counters.refused.fetch_add(1, Ordering::Relaxed);
                    let _ = client.set_zero_linger();
                }
            }
        });
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn cut_all(links: &Mutex<Vec<Weak<Link>>>, counters: &Counters) {
    let all = std::mem::take(&mut *links.lock().unwrap_or_else(|p| p.into_inner()));
    for l in all.iter().filter_map(Weak::upgrade) {
        l.cut();
        counters.cut.fetch_add(1, Ordering::Relaxed);
    }
}

/// Listens on `addr` again after an outage (retrying briefly if the port is not free yet).
async fn rebind(addr: SocketAddr, stop: &CancellationToken) -> Option<TcpListener> {
    for _ in 0..100 {
        match TcpListener::bind(addr).await {
            Ok(l) => return Some(l),
            Err(_) => tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = stop.cancelled() => return None,
            },
        }
    }
    tracing::warn!(%addr, "the proxy could not listen again after an outage");
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down(from: u64, until: Option<u64>) -> Fault {
        Fault {
            toxic: Toxic::Down,
            direction: Direction::Both,
            toxicity: 1.0,
            from: Duration::from_secs(from),
            until: until.map(Duration::from_secs),
        }
    }

    #[test]
    fn overlapping_outages_end_together() {
        let faults = [down(5, Some(10)), down(8, Some(12)), down(20, None)];
        let s = Duration::from_secs;
        assert_eq!(outage(&faults, s(1)), (false, Some(s(5))));
        assert!(outage(&faults, s(6)).0);
        assert_eq!(outage_end(&faults, s(6)), Some(s(12)));
        assert_eq!(outage(&faults, s(13)), (false, Some(s(20))));
        assert_eq!(outage_end(&faults, s(21)), None);
    }
}
