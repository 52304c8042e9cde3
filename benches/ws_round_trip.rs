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

    let rt = common::runtime();
    let plan = plan(&url);
    rt.block_on(bare(&url));
    rt.block_on(engine::run(&plan, &Quiet, Signals::default()));

    let total = (CONNECTIONS * PER_CONNECTION) as f64;
    // Each side's p50 round trip, one per round, in the order the rounds ran.
    let (mut bare_p50s, mut harness_p50s) = (Vec::new(), Vec::new());
    let run_bare = || {
        measure(|| {
            let h = rt.block_on(bare(&url));
            bare_p50s.push(h.value_at_quantile(0.5) as f64 / 1000.0);
        })
    };
    let run_harness = || {
        measure(|| {
            let r = rt.block_on(engine::run(&plan, &Quiet, Signals::default()));
            assert_eq!(r.totals.succeeded, total as u64, "{:?}", r.reason);
            harness_p50s.push(r.metrics.latency_ms.and_then(|l| l.p50).unwrap_or(0.0));
        })
    };
    // For profiling one side alone: BENCH_ONLY=bare or BENCH_ONLY=harness.
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        common::one_side(&only, ROUNDS, total, "rt", run_bare, run_harness);
        drop(server.stdin.take());
        let _ = server.wait();
        return;
    }
    let pairs = common::paired_rounds(ROUNDS, run_bare, run_harness);
    drop(server.stdin.take());
    let _ = server.wait();

    let (bare_p50, _, _) = median(bare_p50s.clone());
    let (h_p50, _, _) = median(harness_p50s.clone());
    let (added, added_lo, added_hi) = median(
        bare_p50s
            .iter()
            .zip(&harness_p50s)
            .map(|(b, h)| h - b)
            .collect(),
    );
    println!(
        "echo round trips, {CONNECTIONS} connections, {total} per round, loopback, server in another process"
    );
    common::print_shares(
        &pairs,
        total,
        "rt",
        "bare tokio-tungstenite",
        [
            &format!("p50 {bare_p50:.3}ms  "),
            &format!("p50 {h_p50:.3}ms"),
        ],
    );
    println!("p50 the harness adds: {added:.3}ms (range {added_lo:.3}–{added_hi:.3}ms)");
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
            let config = harness::drivers::ws::conn::client_config(None);
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
