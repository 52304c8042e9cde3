//! Micro-benchmarks (criterion) of what every iteration or frame pays for: recording a latency into
//! a histogram (alone, and split by outcome as a worker records), reading an inbound WebSocket
//! frame and matching it (the driver reads only the members a pointer names), rendering a request
//! path and a frame template, and adding one second's histograms as `merge` does.
//!
//! `cargo bench --bench hot_paths` prints each with its spread; `-- --save-baseline main` keeps a
//! baseline in target/criterion, and `-- --baseline main` after a change says what moved (criterion
//! calls a change beyond its noise threshold, 1% by default, at 95% confidence). Filter with a name:
//! `cargo bench --bench hot_paths -- frame`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use harness::config::template::{JsonTemplate, Template};
use harness::drivers::ws::frame::Inbound;
use harness::metrics::Split;
use harness::metrics::histogram::{merge, new_histogram, record};
use harness::scenario::matcher::FrameMatcher;
use serde_json::{Value, json};

fn histograms(c: &mut Criterion) {
    let mut g = c.benchmark_group("histogram");
    g.throughput(Throughput::Elements(1));
    // Latencies spread over five decades, as a run's are: not one bucket hot in the cache.
    let samples: Vec<Duration> = (0..4096u64)
        .map(|i| Duration::from_micros(50 + (i * 7919) % 5_000_000))
        .collect();
    let mut h = new_histogram();
    let mut i = 0;
    g.bench_function("record", |b| {
        b.iter(|| {
            record(&mut h, black_box(samples[i % samples.len()]));
            i += 1;
        })
    });
    let mut split = Split::default();
    let mut i = 0;
    g.bench_function("record split by outcome (1 in 10 failed)", |b| {
        b.iter(|| {
            let failed = (i % 10 == 0).then_some("timeout");
            split.record(black_box(samples[i % samples.len()]), failed);
            i += 1;
        })
    });
    let mut second = new_histogram();
    for d in samples.iter().take(500) {
        record(&mut second, *d);
    }
    g.bench_function("add one second (500 samples) into a run's", |b| {
        b.iter_batched_ref(
            new_histogram,
            |total| merge(total, black_box(&second)),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Elements(1));
    let payload = "x".repeat(4096);
    let reply = serde_json::to_vec(&json!({
        "type": "reply",
        "ref": "r1a23-4711",
        "body": { "mid": 4711, "text": payload },
        "meta": { "server": "gateway-3", "at": 1733221234567u64 }
    }))
    .unwrap();
    let matcher = FrameMatcher::All(vec![
        FrameMatcher::equals("/type", "reply"),
        FrameMatcher::Exists {
            pointer: "/ref".into(),
            present: true,
        },
    ]);
    g.bench_function("read the correlation id (4 KiB frame)", |b| {
        b.iter(|| {
            let frame = Inbound::parse(black_box(&reply)).unwrap();
            black_box(frame.text("/ref"))
        })
    });
    g.bench_function("match type and ref (4 KiB frame)", |b| {
        b.iter(|| {
            let frame = Inbound::parse(black_box(&reply)).unwrap();
            black_box(matcher.matches(&frame))
        })
    });
    g.bench_function("full parse and match, for comparison (4 KiB frame)", |b| {
        b.iter(|| {
            let frame: Value = serde_json::from_slice(black_box(&reply)).unwrap();
            black_box(matcher.matches(&frame))
        })
    });
    g.finish();
}

fn templates(c: &mut Criterion) {
    let mut g = c.benchmark_group("template");
    g.throughput(Throughput::Elements(1));
    let vars: HashMap<String, Value> = [
        ("run_id", json!("r1a23beafbf650ac")),
        ("iteration", json!(4711)),
        ("item", json!("r1a23beafbf650ac-item-4711")),
        ("topic", json!("orders")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let path = Template::parse("/v2/items/{{item}}/move?by={{run_id}}").unwrap();
    g.bench_function("request path", |b| {
        b.iter(|| black_box(path.render(black_box(&vars)).unwrap()))
    });
    let frame: toml::Value = toml::from_str(
        r#"op = "publish"
topic = "{{topic}}"
body = { mid = "{{iteration}}", by = "{{run_id}}", tags = ["a", "b"] }"#,
    )
    .unwrap();
    let frame = JsonTemplate::from_toml(&frame).unwrap();
    g.bench_function("frame (a table with a nested body)", |b| {
        b.iter(|| black_box(frame.render(black_box(&vars)).unwrap()))
    });
    g.finish();
}

criterion_group!(hot_paths, histograms, frames, templates);
criterion_main!(hot_paths);
