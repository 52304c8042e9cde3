//! What the harness costs over a bare client: a closed load at 50 concurrency against a minimal HTTP
//! server on loopback, run through the harness engine and through a bare reqwest loop doing the same
//! work (same client settings, every response read to the end). Prints requests per second and
//! requests per CPU-second of this process for both, and the harness's share of the bare loop.
//!
//! The server runs in a child process (this binary, started again with `BENCH_ROLE=server`), so its
//! CPU is not counted against the client. Rounds alternate between the two, and the median of each is
//! reported. Run with `cargo bench --bench http_overhead`; `BENCH_ONLY=bare` or `BENCH_ONLY=harness`
//! runs one side alone, for a profiler. `BENCH_JOURNAL=1` has the harness write its crash-safe journal
//! as `harness run` does (a slice every 20 ms, a row every second), so the two runs' shares show what
//! journaling costs.

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

    let rt = common::runtime();
    let plan = plan(&url);
    // Warm up connections and code paths.
    rt.block_on(bare(&url));
    rt.block_on(engine::run(&plan, &Quiet, Signals::default()));

    let run_bare = || measure(|| rt.block_on(bare(&url)));
    let journaling = std::env::var_os("BENCH_JOURNAL").is_some();
    let run_harness = || {
        measure(|| {
            let r = if journaling {
                let observer = Journaling::default();
                let r = rt.block_on(engine::run(&plan, &observer, Signals::default()));
                observer.discard();
                r
            } else {
                rt.block_on(engine::run(&plan, &Quiet, Signals::default()))
            };
            assert_eq!(
                r.totals.succeeded,
                (CONCURRENCY * PER_WORKER) as u64,
                "{:?}",
                r.reason
            );
        })
    };
    let requests = (CONCURRENCY * PER_WORKER) as f64;
    // For profiling one side alone: BENCH_ONLY=bare or BENCH_ONLY=harness.
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        common::one_side(&only, ROUNDS, requests, "req", run_bare, run_harness);
        drop(server.stdin.take());
        let _ = server.wait();
        return;
    }
    let pairs = common::paired_rounds(ROUNDS, run_bare, run_harness);
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

    println!(
        "closed load, {CONCURRENCY} concurrent, {requests} requests per round, loopback, server in another process{}",
        if journaling { ", journal written" } else { "" }
    );
    common::print_shares(&pairs, requests, "req", "bare reqwest", ["", ""]);
    println!(
        "resident memory after a 20,000-iteration run: {rss_small:.1} MiB; after a 200,000-iteration run: {rss_large:.1} MiB"
    );
}

/// An observer that writes the journal as the CLI's does, into a temporary folder.
#[derive(Default)]
struct Journaling(std::sync::Mutex<Option<harness::journal::Journal>>);

impl Journaling {
    fn discard(&self) {
        if let Some(j) = self.0.lock().unwrap().take() {
            j.discard();
        }
    }
}

impl engine::Observer for Journaling {
    fn journal_start(&self, header: &harness::result::RunResult) {
        let dir = std::env::temp_dir().join(format!("bench-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        *self.0.lock().unwrap() = Some(harness::journal::Journal::create(&dir, header).unwrap());
    }

    fn journal(&self, entry: harness::journal::Entry) {
        if let Some(j) = self.0.lock().unwrap().as_ref() {
            j.write(entry);
        }
    }
}

/// The bare loop: the same client settings, each response read to the end and its status checked.
async fn bare(url: &str) {
    let client = Arc::new(
        harness::drivers::http::build_client(CONCURRENCY, &harness::net::Network::local().unwrap())
            .unwrap(),
    );
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
