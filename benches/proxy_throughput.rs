//! What the fault proxy costs with no toxic: bulk transfer (MB/s) over loopback through the proxy
//! beside a direct connection, and the p50 round trip of small echoes through each (the difference is
//! what a pass-through proxy adds to every exchange).
//!
//! A sink-and-echo server, the proxy and the client run in this process, each on a runtime of its own
//! (one thread each). Rounds alternate between direct and proxied; medians are reported. Run with
//! `cargo bench --bench proxy_throughput`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod common;

use common::median;
use harness::metrics::histogram::{self, Hist};
use harness::proxy::{Epoch, Proxy, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bytes sent per bulk round.
const BULK: usize = 128 * 1024 * 1024;
/// Echo round trips per latency round.
const ECHOES: usize = 5_000;
const ROUNDS: usize = 7;

fn main() {
    // The server and the proxy each on a thread of their own, as they would be in separate
    // processes; the client on a third.
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    };
    let (server_rt, proxy_rt) = (runtime(), runtime());
    let direct = server_rt.block_on(async {
        let sink = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = sink.local_addr().unwrap();
        tokio::spawn(serve(sink));
        addr
    });
    let proxied = proxy_rt.block_on(async {
        let proxy = Proxy::start(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            ProxyConfig {
                upstream: direct,
                faults: Vec::new(),
                seed: 0,
                epoch: Epoch::new(Instant::now()),
                connect_timeout: Duration::from_secs(5),
            },
        )
        .unwrap();
        let addr = proxy.addr;
        // Lives as long as the runtime: the benchmark ends with the process.
        std::mem::forget(proxy);
        addr
    });

    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Warm-up: the first connections and pages of each path.
    client.block_on(bulk(direct, BULK / 8));
    client.block_on(bulk(proxied, BULK / 8));

    let (mut d_mbs, mut p_mbs, mut d_p50, mut p_p50) = (vec![], vec![], vec![], vec![]);
    for round in 0..ROUNDS {
        let order = if round % 2 == 0 {
            [(direct, false), (proxied, true)]
        } else {
            [(proxied, true), (direct, false)]
        };
        for (addr, via_proxy) in order {
            let took = client.block_on(bulk(addr, BULK));
            let mbs = BULK as f64 / took.as_secs_f64() / 1e6;
            let p50 = client.block_on(echoes(addr));
            println!(
                "round {round} {:>7}: {mbs:>8.0} MB/s, echo p50 {:.3} ms",
                if via_proxy { "proxied" } else { "direct" },
                p50
            );
            if via_proxy {
                p_mbs.push(mbs);
                p_p50.push(p50);
            } else {
                d_mbs.push(mbs);
                d_p50.push(p50);
            }
        }
    }
    let (dm, pm) = (median(d_mbs), median(p_mbs));
    let (dl, pl) = (median(d_p50), median(p_p50));
    println!();
    println!(
        "bulk transfer of {} MiB, median of {ROUNDS} rounds:",
        BULK >> 20
    );
    println!(
        "  direct  {:>8.0} MB/s (min {:.0}, max {:.0})",
        dm.0, dm.1, dm.2
    );
    println!(
        "  proxied {:>8.0} MB/s (min {:.0}, max {:.0}) = {:.0}% of direct",
        pm.0,
        pm.1,
        pm.2,
        pm.0 / dm.0 * 100.0
    );
    println!("echo of 64 bytes, {ECHOES} round trips, p50 (median of rounds):");
    println!("  direct  {:.3} ms", dl.0);
    println!(
        "  proxied {:.3} ms: the proxy adds {:+.3} ms",
        pl.0,
        pl.0 - dl.0
    );
}

/// Each connection says what it is with its first byte: `b` sinks bytes until the client shuts its
/// side, then answers the count; `e` echoes until closed.
async fn serve(listener: TcpListener) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            continue;
        };
        let _ = s.set_nodelay(true);
        tokio::spawn(async move {
            let mut kind = [0u8; 1];
            if s.read_exact(&mut kind).await.is_err() {
                return;
            }
            let mut buf = vec![0u8; 64 * 1024];
            if kind[0] == b'b' {
                let mut total = 0u64;
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                }
                let _ = s.write_all(&total.to_be_bytes()).await;
            } else {
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
    }
}

/// Sends `bytes` and waits for the server to confirm it had them all.
async fn bulk(addr: SocketAddr, bytes: usize) -> Duration {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let block = vec![7u8; 256 * 1024];
    let started = Instant::now();
    s.write_all(b"b").await.unwrap();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len());
        s.write_all(&block[..n]).await.unwrap();
        left -= n;
    }
    s.shutdown().await.unwrap();
    let mut count = [0u8; 8];
    s.read_exact(&mut count).await.unwrap();
    assert_eq!(
        u64::from_be_bytes(count),
        bytes as u64,
        "bytes went missing"
    );
    started.elapsed()
}

/// Echo round trips of 64 bytes on one connection; returns the p50 in milliseconds.
async fn echoes(addr: SocketAddr) -> f64 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(b"e").await.unwrap();
    let mut hist: Hist = histogram::new_histogram();
    let out = [1u8; 64];
    let mut back = [0u8; 64];
    for _ in 0..ECHOES {
        let started = Instant::now();
        s.write_all(&out).await.unwrap();
        s.read_exact(&mut back).await.unwrap();
        histogram::record(&mut hist, started.elapsed());
    }
    hist.value_at_quantile(0.5) as f64 / 1000.0
}
