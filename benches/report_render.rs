//! Rendering the reports of a one-hour run: 3,600 timeline rows and a histogram of a million
//! latencies. Prints the time each report takes to render and its size; the HTML must render in under
//! a second and stay under 2 MB. Run with `cargo bench --bench report_render`.

use std::time::{Duration, Instant};

use harness::metrics::histogram::{encode, new_histogram, record};
use harness::metrics::{LatencySummary, TimelineRow};
use harness::report::{Exporter, html::Html, junit::Junit, markdown::Markdown};
use harness::result::RunResult;
use harness::result::write::read_json;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn one_hour() -> RunResult {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/results/failure-injection-broken-rollback.json");
    let mut r = read_json(&path).expect("the fixture result");
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (mut latency, mut service) = (new_histogram(), new_histogram());
    for _ in 0..1_000_000 {
        let ms = 2.0 + rng.random::<f64>().powi(8) * 400.0;
        record(&mut latency, Duration::from_secs_f64(ms / 1000.0));
        record(&mut service, Duration::from_secs_f64(ms * 0.8 / 1000.0));
    }
    r.metrics.latency_ms = LatencySummary::of(&latency);
    r.metrics.latency_hdr = Some(encode(&latency));
    r.metrics.service_time_hdr = Some(encode(&service));
    r.metrics.service_time_ms = LatencySummary::of(&service);
    r.timeline = (0..3600)
        .map(|t| {
            let wobble = (t as f64 / 300.0).sin();
            TimelineRow {
                t_s: t,
                succeeded: 270 + (wobble * 20.0) as u64,
                failed: u64::from(t % 97 == 0),
                p50_ms: Some(3.0 + wobble),
                p95_ms: Some(8.0 + 2.0 * wobble),
                p99_ms: Some(20.0 + 5.0 * wobble + rng.random::<f64>() * 5.0),
                max_ms: Some(60.0 + rng.random::<f64>() * 40.0),
                ok_p50_ms: Some(3.0 + wobble),
                ok_p95_ms: Some(8.0 + 2.0 * wobble),
                ok_p99_ms: Some(19.0 + 5.0 * wobble),
                ..TimelineRow::default()
            }
        })
        .collect();
    r.duration_s = 3600.0;
    r
}

fn main() {
    let r = one_hour();
    if let Ok(path) = std::env::var("BENCH_WRITE_HTML") {
        std::fs::write(path, Html.render(&r).expect("renders")).expect("written");
    }
    println!(
        "a one-hour run: {} timeline rows, {} latencies",
        r.timeline.len(),
        r.metrics.latency_ms.as_ref().map_or(0, |l| l.count)
    );
    for (name, exporter) in [
        ("report.html", &Html as &dyn Exporter),
        ("junit.xml", &Junit),
        ("summary.md", &Markdown),
    ] {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..5 {
            let t = Instant::now();
            size = exporter.render(&r).expect("renders").len();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "{name:<12} {:>8.1} ms (median of 5)  {:>8.1} KiB",
            times[2].as_secs_f64() * 1e3,
            size as f64 / 1024.0
        );
    }
}
