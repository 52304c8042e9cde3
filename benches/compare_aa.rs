//! How often `harness compare` cries wolf, and how small a slowdown it catches.
//!
//! 1. A/A: `AA_PAIRS` (default 20) pairs of back-to-back runs of REGRESSION_STANDARD against the
//!    embedded reference handoff service, each pair compared at the default noise band; prints, per
//!    metric, how many pairs were called regressed (and improved), and the widest change seen.
//! 2. Slowdowns: against a server of this benchmark that answers in 10 ms (or 10 ms × (1 + x)),
//!    `SLOW_PAIRS` (default 5) pairs per slowdown x of 5%, 10%, 20% and 30%, at the default band;
//!    prints how many pairs each latency percentile was called regressed in.
//!
//! Run with `cargo bench --bench compare_aa` on a quiet machine (every run is 12 s of load:
//! about 15 minutes in all). Nothing else should run meanwhile: the figures are the noise of the
//! machine as much as the tool's.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use harness::compare::{self, Options, Verdict};
use harness::engine::{self, Quiet, Signals};
use harness::plan::{self, Overrides};
use harness::result::RunResult;
use harness::scenario::Library;

const SLOWDOWNS: [f64; 4] = [0.05, 0.10, 0.20, 0.30];

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run(rt: &tokio::runtime::Runtime, plan: &harness::plan::RunPlan) -> RunResult {
    let r = rt.block_on(engine::run(plan, &Quiet, Signals::default()));
    assert!(
        r.totals.iterations > 0 && r.status != harness::result::Status::Aborted,
        "{:?}",
        r.reason
    );
    r
}

/// A server answering `GET /` after `ms` milliseconds, on a thread and runtime of its own.
fn server(ms: f64) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("http://{}", listener.local_addr().unwrap()))
                .unwrap();
            let app = Router::new().route(
                "/",
                get(move || async move {
                    tokio::time::sleep(Duration::from_secs_f64(ms / 1000.0)).await;
                    "ok"
                }),
            );
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

#[derive(Default)]
struct Tally {
    regressed: usize,
    improved: usize,
    not_compared: usize,
    widest: f64,
}

fn tally(comparisons: &[compare::Comparison]) -> BTreeMap<String, Tally> {
    let mut out: BTreeMap<String, Tally> = BTreeMap::new();
    for c in comparisons {
        for m in &c.metrics {
            let t = out.entry(m.metric.clone()).or_default();
            match m.verdict {
                Verdict::Regressed => t.regressed += 1,
                Verdict::Improved => t.improved += 1,
                Verdict::NotCompared => t.not_compared += 1,
                Verdict::WithinNoise => {}
            }
            let change = m
                .change
                .trim_end_matches('%')
                .trim_end_matches(" pp")
                .parse::<f64>()
                .unwrap_or(0.0);
            t.widest = t.widest.max(change.abs());
        }
    }
    out
}

fn main() {
    let rt = common::runtime();
    let opts = Options::default();
    let aa_pairs = env_count("AA_PAIRS", 20);
    let slow_pairs = env_count("SLOW_PAIRS", 5);

    let scenario = Library::open(None)
        .and_then(|l| l.load("REGRESSION_STANDARD"))
        .expect("REGRESSION_STANDARD is built in");
    let plan = plan::build(
        &scenario,
        Overrides {
            seed: Some(1),
            ..Overrides::default()
        },
    )
    .expect("its plan resolves");
    run(&rt, &plan); // warm up
    println!(
        "A/A: {aa_pairs} pairs of REGRESSION_STANDARD, default band ±{:.0}%",
        opts.noise * 100.0
    );
    let mut aa = Vec::new();
    for i in 0..aa_pairs {
        let (a, b) = (run(&rt, &plan), run(&rt, &plan));
        let c = compare::compare(&a, &b, &opts);
        println!(
            "  pair {:>2}: {}",
            i + 1,
            c.metrics
                .iter()
                .filter(|m| m.verdict != Verdict::NotCompared)
                .map(|m| format!("{} {} → {} ({})", m.metric, m.base, m.new, m.change))
                .collect::<Vec<_>>()
                .join(", ")
        );
        aa.push(c);
    }
    for (metric, t) in tally(&aa) {
        println!(
            "  {metric}: {} of {aa_pairs} called regressed, {} improved, {} not compared; \
             widest change {:.1}",
            t.regressed, t.improved, t.not_compared, t.widest
        );
    }

    println!(
        "Slowdowns: {slow_pairs} pairs each against a 10 ms server, 200/s for 12 s, default band"
    );
    let text = r#"name = "slow"
suite = "performance"
timeout = "60s"
[target]
kind = "http"
url = "http://127.0.0.1:1"
[load]
model = "open"
rate = "200/s"
duration = "12s"
max_in_flight = 100
"#;
    let dir = std::env::temp_dir().join(format!("harness-aa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("slow.toml");
    std::fs::write(&path, text).unwrap();
    let slow_scenario = Library::open(Some(&dir))
        .and_then(|l| l.load(path.to_str().unwrap()))
        .unwrap();
    let base_url = server(10.0);
    let plan_for = |url: &str| {
        plan::build(
            &slow_scenario,
            Overrides {
                target: Some(url::Url::parse(url).unwrap()),
                seed: Some(1),
                ..Overrides::default()
            },
        )
        .unwrap()
    };
    let base_plan = plan_for(&base_url);
    for x in SLOWDOWNS {
        let slow_plan = plan_for(&server(10.0 * (1.0 + x)));
        let mut comparisons = Vec::new();
        for _ in 0..slow_pairs {
            let (a, b) = (run(&rt, &base_plan), run(&rt, &slow_plan));
            comparisons.push(compare::compare(&a, &b, &opts));
        }
        let t = tally(&comparisons);
        let caught = |m: &str| t.get(m).map_or(0, |t| t.regressed);
        println!(
            "  +{:.0}%: p50 caught in {} of {slow_pairs}, p95 in {}, p99 in {}",
            x * 100.0,
            caught("latency_ok.p50"),
            caught("latency_ok.p95"),
            caught("latency_ok.p99")
        );
    }
}
