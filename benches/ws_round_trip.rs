//! What the harness costs over a bare WebSocket client: echo round trips over 50 connections against
//! the reference WebSocket server (its rate limit lifted), through the harness engine and through a
//! bare tokio-tungstenite loop that sends the same frames and waits for each reply (with the same
//! WebSocket settings as the harness's connections, TCP_NODELAY included, so only the harness's own
//! work differs). Prints round trips
//! per second and per CPU-second of this process for both, the harness's share of the bare loop, and
//! the p50 round trip of each (the difference is what the harness adds).
//!
//! The server runs in a child process (this binary, started again with `BENCH_ROLE=server`), so its
//! CPU is not counted against the client. Rounds alternate between the two sides in pairs; medians
//! are reported. Run with `cargo bench --bench ws_round_trip`; `BENCH_ONLY=bare` or
//! `BENCH_ONLY=harness` runs one side alone, for a profiler.

use std::time::{Duration, Instant};

mod common;

use common::{measure, median};
use futures_util::{SinkExt, StreamExt};
use harness::engine::{self, Quiet, RunPlan, Signals};
use harness::metrics::histogram::{self, Hist};
use tokio_tungstenite::tungstenite::Message;

const CONNECTIONS: usize = 50;
const PER_CONNECTION: usize = 2000;
const ROUNDS: usize = 7;
const PAYLOAD: usize = 64;

fn main() {
    if std::env::var("BENCH_ROLE").as_deref() == Ok("server") {
        return serve();
    }
    let (mut server, url) = common::spawn_server();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let plan = plan(&url);
    rt.block_on(bare(&url));
    rt.block_on(engine::run(&plan, &Quiet, Signals::default()));

    let total = (CONNECTIONS * PER_CONNECTION) as f64;
    // For profiling one side alone: BENCH_ONLY=bare or BENCH_ONLY=harness.
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        for _ in 0..ROUNDS {
            let (wall, cpu) = measure(|| {
                if only == "bare" {
                    rt.block_on(bare(&url));
                } else {
                    let r = rt.block_on(engine::run(&plan, &Quiet, Signals::default()));
                    eprintln!(
                        "load throughput {:?}, duration {:.2}s, p50 {:?}",
                        r.metrics.throughput_per_s,
                        r.duration_s,
                        r.metrics.latency_ms.map(|l| l.p50)
                    );
                }
            });
            println!(
                "{only}: {:.0} rt/s, {:.0} rt/CPU-s",
                total / wall,
                total / cpu
            );
        }
        drop(server.stdin.take());
        let _ = server.wait();
        return;
    }
    let mut pairs = Vec::new();
    let mut p50s = Vec::new();
    for round in 0..ROUNDS {
        let mut bare_p50 = 0.0;
        let mut harness_p50 = 0.0;
        let mut run_bare = || {
            measure(|| {
                let h = rt.block_on(bare(&url));
                bare_p50 = h.value_at_quantile(0.5) as f64 / 1000.0;
            })
        };
        let mut run_harness = || {
            measure(|| {
                let r = rt.block_on(engine::run(&plan, &Quiet, Signals::default()));
                assert_eq!(r.totals.succeeded, total as u64, "{:?}", r.reason);
                harness_p50 = r.metrics.latency_ms.map_or(0.0, |l| l.p50);
            })
        };
        let (b, h) = if round % 2 == 0 {
            let b = run_bare();
            (b, run_harness())
        } else {
            let h = run_harness();
            (run_bare(), h)
        };
        pairs.push((b, h));
        p50s.push((bare_p50, harness_p50));
    }
    drop(server.stdin.take());
    let _ = server.wait();

    let (bare_rps, _, _) = median(pairs.iter().map(|(b, _)| total / b.0).collect());
    let (bare_eff, _, _) = median(pairs.iter().map(|(b, _)| total / b.1).collect());
    let (h_rps, _, _) = median(pairs.iter().map(|(_, h)| total / h.0).collect());
    let (h_eff, _, _) = median(pairs.iter().map(|(_, h)| total / h.1).collect());
    let (rps, rps_lo, rps_hi) = median(pairs.iter().map(|(b, h)| b.0 / h.0).collect());
    let (eff, eff_lo, eff_hi) = median(pairs.iter().map(|(b, h)| b.1 / h.1).collect());
    let (bare_p50, _, _) = median(p50s.iter().map(|p| p.0).collect());
    let (h_p50, _, _) = median(p50s.iter().map(|p| p.1).collect());
    let (added, added_lo, added_hi) = median(p50s.iter().map(|p| p.1 - p.0).collect());
    println!(
        "echo round trips, {CONNECTIONS} connections, {total} per round, loopback, server in another process"
    );
    println!(
        "bare tokio-tungstenite {bare_rps:>9.0} rt/s {bare_eff:>9.0} rt/CPU-s  p50 {bare_p50:.3}ms  (medians of {ROUNDS} rounds)"
    );
    println!("harness engine         {h_rps:>9.0} rt/s {h_eff:>9.0} rt/CPU-s  p50 {h_p50:.3}ms");
    println!(
        "harness / bare, median of paired rounds: {:.1}% of the throughput (range {:.1}–{:.1}%), \
         {:.1}% of the round trips per CPU-second (range {:.1}–{:.1}%)",
        100.0 * rps,
        100.0 * rps_lo,
        100.0 * rps_hi,
        100.0 * eff,
        100.0 * eff_lo,
        100.0 * eff_hi
    );
    println!(
        "p50 the harness adds: {:.3}ms (range {:.3}–{:.3}ms)",
        added, added_lo, added_hi
    );
}

fn frame(i: usize) -> String {
    format!(
        r#"{{"type":"echo","correlation_id":"bare-{i}","payload":"{}"}}"#,
        "x".repeat(PAYLOAD)
    )
}

/// The bare loop: per connection, send a frame and wait for the next text frame, timing each.
async fn bare(url: &str) -> Hist {
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let config = harness::drivers::ws::conn::client_config();
            let (mut ws, _) =
                tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true)
                    .await
                    .expect("handshake");
            let mut h = histogram::new_histogram();
            for i in 0..PER_CONNECTION {
                let started = Instant::now();
                ws.send(Message::text(frame(c * PER_CONNECTION + i)))
                    .await
                    .expect("send");
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(_))) => break,
                        Some(Ok(_)) => continue,
                        other => panic!("the echo endpoint went away: {other:?}"),
                    }
                }
                histogram::record(&mut h, started.elapsed());
            }
            let _ = ws.close(None).await;
            h
        }));
    }
    let mut all = histogram::new_histogram();
    for t in tasks {
        histogram::merge(&mut all, &t.await.expect("a bare connection"));
    }
    all
}

fn plan(url: &str) -> RunPlan {
    let text = format!(
        "name = \"bench\"\nsuite = \"reliability\"\ntimeout = \"10m\"\n[target]\nkind = \"websocket\"\n\
         url = \"{url}\"\n[websocket]\nmode = \"echo\"\nconnections = {CONNECTIONS}\n\
         ping_interval = \"0s\"\npayload_size = \"{PAYLOAD}B\"\n[load]\nmodel = \"closed\"\n\
         iterations = {}\nconcurrency = {CONNECTIONS}\n",
        CONNECTIONS * PER_CONNECTION
    );
    common::plan(
        &text,
        &url::Url::parse(url).expect("the server's URL"),
        None,
    )
}

/// The reference server with its rate limit lifted; stops when stdin closes.
fn serve() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("bench-server")
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("ws://{}/ws", listener.local_addr().unwrap());
        let config = harness::reference::ws::WsConfig {
            rate_per_s: 1e12,
            burst: u32::MAX,
            abuse_limit: 0,
            slow_consumer_grace: Duration::from_secs(3600),
            ..Default::default()
        };
        harness::reference::ws::serve(listener, config, common::stdin_closed())
            .await
            .unwrap();
    });
}
