use std::time::Duration;

use super::*;
use crate::metrics::recorder::Interval;
use crate::plan::Overrides;

fn plan() -> RunPlan {
    let scenario = crate::scenario::Library::open(None)
        .unwrap()
        .load("RELIABILITY_STANDARD")
        .unwrap();
    crate::plan::build(
        &scenario,
        Overrides {
            seed: Some(1),
            ..Overrides::default()
        },
    )
    .unwrap()
}

/// The value of the series `name` whose labels contain every one of `labels` (`k="v"`).
fn value(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn slice(ok_ms: &[u64], timeouts: u64, late: u64) -> Entry {
    let mut s = Interval::default();
    for ms in ok_ms {
        s.latency.record(Duration::from_millis(*ms), None);
    }
    for _ in 0..timeouts {
        s.latency.record(Duration::from_secs(1), Some("timeout"));
    }
    s.succeeded = ok_ms.len() as u64;
    s.failed = timeouts;
    s.late = late;
    if timeouts > 0 {
        s.errors.insert("timeout".into(), timeouts);
    }
    Entry::Slice {
        at: Duration::from_millis(20),
        slice: s,
    }
}

#[test]
fn slices_add_up_and_the_histogram_counts_at_or_below_each_bound() {
    let live = Live::new(&plan());
    live.journal(slice(&[2, 20, 200], 1, 1));
    let text = live.exposition();
    let ok = |t: &str| value(t, "harness_iterations_total", &["outcome=\"succeeded\""]);
    assert_eq!(ok(&text), Some(3.0), "{text}");
    assert_eq!(
        value(&text, "harness_errors_total", &["kind=\"timeout\""]),
        Some(1.0)
    );
    assert_eq!(value(&text, "harness_late_starts_total", &[]), Some(1.0));
    let bucket = |t: &str, le: &str| {
        value(
            t,
            "harness_iteration_duration_seconds_bucket",
            &[&format!("le=\"{le}\"")],
        )
    };
    assert_eq!(bucket(&text, "0.001"), Some(0.0));
    assert_eq!(bucket(&text, "0.0025"), Some(1.0));
    assert_eq!(bucket(&text, "0.025"), Some(2.0));
    assert_eq!(bucket(&text, "0.25"), Some(3.0));
    assert_eq!(
        bucket(&text, "1.0"),
        Some(4.0),
        "a second is at or below 1.0"
    );
    assert_eq!(bucket(&text, "+Inf"), Some(4.0));
    let sum = value(&text, "harness_iteration_duration_seconds_sum", &[]).unwrap();
    assert!((sum - 1.222).abs() < 0.002, "{sum}");
    // Every series carries the run's labels.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            line.contains("scenario=\"RELIABILITY_STANDARD\"") && line.contains("run_id=\"r"),
            "{line}"
        );
    }

    live.journal(slice(&[5, 5], 0, 0));
    live.progress(&Progress {
        elapsed: Duration::from_secs(1),
        scheduled: None,
        planned: 100,
        done: 6,
        failed: 1,
        late: 1,
        in_flight: 4,
        last_second: 6,
        p95_ms: None,
    });
    let text = live.exposition();
    assert_eq!(ok(&text), Some(5.0));
    assert_eq!(value(&text, "harness_in_flight", &[]), Some(4.0));
    assert_eq!(value(&text, "harness_run_finished", &[]), Some(0.0));
    assert!(
        !text.contains("harness_run_status{"),
        "no status until it ends"
    );
}

#[test]
fn at_the_end_every_figure_is_the_results() {
    let r: RunResult = serde_json::from_str(include_str!(
        "../../tests/fixtures/results/failure-injection-broken-rollback.json"
    ))
    .unwrap();
    let live = Live::new(&plan());
    live.journal(slice(&[2, 3], 0, 0));
    live.finish(&r);
    let text = live.exposition();
    let get = |name: &str, labels: &[&str]| value(&text, name, labels).unwrap();
    assert_eq!(
        get("harness_iterations_total", &["outcome=\"succeeded\""]),
        r.totals.succeeded as f64
    );
    assert_eq!(
        get("harness_iterations_total", &["outcome=\"failed\""]),
        r.totals.failed as f64
    );
    for (kind, n) in &r.metrics.errors {
        let label = format!("kind=\"{kind}\"");
        assert_eq!(get("harness_errors_total", &[&label]), *n as f64);
    }
    let hist = decode(r.metrics.latency_hdr.as_deref().unwrap()).unwrap();
    assert_eq!(
        get("harness_iteration_duration_seconds_count", &[]),
        hist.len() as f64
    );
    assert_eq!(get("harness_run_finished", &[]), 1.0);
    assert_eq!(get("harness_run_status", &["status=\"failed\""]), 1.0);
    assert_eq!(get("harness_run_status", &["status=\"passed\""]), 0.0);
    for v in &r.thresholds {
        let metric = format!("metric=\"{}\"", v.metric);
        let held = get("harness_threshold_passed", &[&metric]);
        assert_eq!(held, if v.passed { 1.0 } else { 0.0 }, "{}", v.metric);
    }
}
