//! What the harness costs over a bare client: a closed load at 50 concurrency against a minimal HTTP
//! server on loopback, run through the harness engine and through a bare reqwest loop doing the same
//! work (same client settings, every response read to the end). Prints requests per second and
//! requests per CPU-second of this process for both, and the harness's share of the bare loop.
//!
//! The server runs in a child process (this binary, started again with `BENCH_ROLE=server`), so its
//! CPU is not counted against the client. Rounds alternate between the two, and the median of each is
//! reported. Run with `cargo bench --bench http_overhead`; `BENCH_ONLY=bare` or `BENCH_ONLY=harness`
//! runs one side alone, for a profiler.

use std::sync::Arc;

mod common;

use common::{measure, resident_mib};
use harness::engine::{self, Quiet, RunPlan, Signals};

const CONCURRENCY: usize = 50;
const PER_WORKER: usize = 1000;
const ROUNDS: usize = 9;

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
    // Warm up connections and code paths.
    rt.block_on(bare(&url));
    rt.block_on(engine::run(&plan, &Quiet, Signals::default()));

    // Rounds come in pairs, run back to back with the order alternating, so that a machine whose
    // speed drifts (a shared host) affects both sides of a pair alike; the ratio of each pair is the
    // measurement, and the median ratio the result.
    let run_bare = || measure(|| rt.block_on(bare(&url)));
    let run_harness = || {
        measure(|| {
            let r = rt.block_on(engine::run(&plan, &Quiet, Signals::default()));
            assert_eq!(
                r.totals.succeeded,
                (CONCURRENCY * PER_WORKER) as u64,
                "{:?}",
                r.reason
            );
        })
    };
    // For profiling one side alone: BENCH_ONLY=bare or BENCH_ONLY=harness.
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        for _ in 0..ROUNDS {
            let (wall, cpu) = if only == "bare" {
                run_bare()
            } else {
                run_harness()
            };
            println!(
                "{only}: {:.0} req/s, {:.0} req/CPU-s",
                (CONCURRENCY * PER_WORKER) as f64 / wall,
                (CONCURRENCY * PER_WORKER) as f64 / cpu
            );
        }
        drop(server.stdin.take());
        let _ = server.wait();
        return;
    }
    let mut pairs = Vec::new();
    for round in 0..ROUNDS {
        let (b, h) = if round % 2 == 0 {
            let b = run_bare();
            (b, run_harness())
        } else {
            let h = run_harness();
            (run_bare(), h)
        };
        pairs.push((b, h));
    }
    // Memory must not grow with the number of iterations: resident memory after ten times more.
    let rss_small = {
        rt.block_on(engine::run(
            &plan_with(&url, 20_000),
            &Quiet,
            Signals::default(),
        ));
        resident_mib()
    };
    let rss_large = {
        rt.block_on(engine::run(
            &plan_with(&url, 200_000),
            &Quiet,
            Signals::default(),
        ));
        resident_mib()
    };
    drop(server.stdin.take());
    let _ = server.wait();

    let requests = (CONCURRENCY * PER_WORKER) as f64;
    let median = common::median;
    let (bare_rps, _, _) = median(pairs.iter().map(|(b, _)| requests / b.0).collect());
    let (bare_eff, _, _) = median(pairs.iter().map(|(b, _)| requests / b.1).collect());
    let (h_rps, _, _) = median(pairs.iter().map(|(_, h)| requests / h.0).collect());
    let (h_eff, _, _) = median(pairs.iter().map(|(_, h)| requests / h.1).collect());
    println!(
        "closed load, {CONCURRENCY} concurrent, {requests} requests per round, loopback, server in another process"
    );
    println!(
        "bare reqwest     {bare_rps:>10.0} req/s  {bare_eff:>10.0} req/CPU-s   (medians of {ROUNDS} rounds)"
    );
    println!("harness engine   {h_rps:>10.0} req/s  {h_eff:>10.0} req/CPU-s");
    let (rps, rps_lo, rps_hi) = median(pairs.iter().map(|(b, h)| b.0 / h.0).collect());
    let (eff, eff_lo, eff_hi) = median(pairs.iter().map(|(b, h)| b.1 / h.1).collect());
    println!(
        "resident memory after a 20,000-iteration run: {rss_small:.1} MiB; after a 200,000-iteration run: {rss_large:.1} MiB"
    );
    println!(
        "harness / bare, median of paired rounds: {:.1}% of the throughput (range {:.1}–{:.1}%), \
         {:.1}% of the requests per CPU-second (range {:.1}–{:.1}%)",
        100.0 * rps,
        100.0 * rps_lo,
        100.0 * rps_hi,
        100.0 * eff,
        100.0 * eff_lo,
        100.0 * eff_hi
    );
}

/// The bare loop: the same client settings, each response read to the end and its status checked.
async fn bare(url: &str) {
    let client = Arc::new(harness::drivers::http::build_client(CONCURRENCY).unwrap());
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, url) = (Arc::clone(&client), url.to_string());
        tasks.push(tokio::spawn(async move {
            for _ in 0..PER_WORKER {
                let resp = client.get(&url).send().await.unwrap();
                assert!(resp.status().is_success());
                let _ = resp.bytes().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn plan(url: &str) -> RunPlan {
    plan_with(url, CONCURRENCY * PER_WORKER)
}

fn plan_with(url: &str, iterations: usize) -> RunPlan {
    let text = format!(
        "name = \"bench\"\nsuite = \"reliability\"\ntimeout = \"10m\"\n[target]\nkind = \"http\"\n\
         url = \"{url}\"\n[load]\nmodel = \"closed\"\niterations = {iterations}\nconcurrency = {CONCURRENCY}\n"
    );
    common::plan(
        &text,
        &url::Url::parse(url).expect("the server's URL"),
        None,
    )
}

/// The minimal server: `GET /` answers `ok`; stops when stdin closes.
fn serve() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("bench-server")
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("http://{}", listener.local_addr().unwrap());
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        axum::serve(listener, router)
            .with_graceful_shutdown(common::stdin_closed())
            .await
            .unwrap();
    });
}
