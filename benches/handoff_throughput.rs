//! Handoffs per second of PHASE_TRANSITION_STANDARD against the embedded reference handoff service at
//! concurrency 10, and the share of the CPU the harness itself used.
//!
//! Both run in this process, as in `harness run`, but on runtimes of their own with named threads, so
//! the CPU time of each side is read per thread from /proc/self/task. Run with
//! `cargo bench --bench handoff_throughput`.

mod common;

use harness::engine::{self, Quiet, RunPlan, Signals};
use harness::reference::handoff::HandoffConfig;
use harness::scenario::Embedded;

const CONCURRENCY: u32 = 10;
const HANDOFFS: u64 = 3000;
const ROUNDS: usize = 3;

fn main() {
    let service_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("svc")
        .enable_all()
        .build()
        .unwrap();
    let harness_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("harness")
        .enable_all()
        .build()
        .unwrap();
    let service = service_rt
        .block_on(harness::reference::start_handoff(HandoffConfig::default()))
        .unwrap();
    let mut plan = plan(&service.url);

    // Warm-up.
    harness_rt.block_on(engine::run(&plan, &Quiet, Signals::default()));

    println!(
        "PHASE_TRANSITION_STANDARD, closed load, {CONCURRENCY} concurrent, {HANDOFFS} handoffs per round \
         (each: 6 setup requests and 4 steps), embedded service in this process"
    );
    let mut rates = Vec::new();
    for round in 1..=ROUNDS {
        // Ids carry the run id; a new one per round keeps rounds from colliding on the service.
        plan.identity.run_id = format!("bench{}-{round}", std::process::id());
        let before = common::cpu_by_thread_group(&["svc", "harness"]);
        let started = std::time::Instant::now();
        let r = harness_rt.block_on(engine::run(&plan, &Quiet, Signals::default()));
        let wall = started.elapsed().as_secs_f64();
        let after = common::cpu_by_thread_group(&["svc", "harness"]);
        assert_eq!(
            r.totals.succeeded, HANDOFFS,
            "{:?} {:?}",
            r.reason, r.metrics.error_samples
        );
        let spent = |group: &str| {
            after.get(group).copied().unwrap_or(0.0) - before.get(group).copied().unwrap_or(0.0)
        };
        let (h, s) = (spent("harness"), spent("svc"));
        let rate = HANDOFFS as f64 / wall;
        rates.push(rate);
        let p = r.metrics.latency_ms.unwrap();
        println!(
            "round {round}: {rate:.0} handoffs/s ({:.0} requests/s), {}; CPU: harness {h:.2}s, \
             service {s:.2}s — the harness used {:.0}% of the CPU the two spent",
            rate * 10.0,
            p.describe(&["p50", "p99"]),
            100.0 * h / (h + s).max(1e-9)
        );
    }
    rates.sort_by(f64::total_cmp);
    println!("median: {:.0} handoffs/s", rates[rates.len() / 2]);
    service_rt.block_on(service.stop()).unwrap();
}

fn plan(url: &url::Url) -> RunPlan {
    let text = format!(
        "name = \"bench\"\nsuite = \"reliability\"\ntimeout = \"10m\"\n[target]\nkind = \"handoff\"\n\
         procedure = \"PHASE_TRANSITION_STANDARD\"\n[load]\nmodel = \"closed\"\niterations = {HANDOFFS}\n\
         concurrency = {CONCURRENCY}\n"
    );
    common::plan(&text, url, Some(Embedded::Handoff))
}
