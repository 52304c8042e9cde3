//! A run killed with SIGKILL loses nothing it measured: `harness run` is killed mid-load against a
//! server that counts the requests it answered, and `harness report DIR` rebuilds the result from
//! the journal with at least 99 % of them — and never more than the server answered. A run that
//! finishes leaves no journal behind.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use common::*;

/// A server that answers every request after a millisecond, counting the answers.
fn counting() -> (TestServer, Arc<AtomicU64>) {
    let answered = Arc::new(AtomicU64::new(0));
    let router = Router::new()
        .route(
            "/",
            get(|State(n): State<Arc<AtomicU64>>| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                n.fetch_add(1, Ordering::SeqCst);
                "ok"
            }),
        )
        .with_state(Arc::clone(&answered));
    (serve(router), answered)
}

const CONCURRENCY: u64 = 4;

fn scenario(iterations: u64) -> String {
    format!(
        r#"name = "killed"
suite = "endurance"
timeout = "60s"

[target]
kind = "http"
url = "http://127.0.0.1:1"

[load]
iterations = {iterations}
concurrency = {CONCURRENCY}

[thresholds]
success_rate = ">= 0.99"
"#
    )
}

#[test]
fn a_run_killed_mid_load_is_rebuilt_from_its_journal() {
    let (server, answered) = counting();
    let dir = temp_dir("journal-kill");
    let file = write_scenario(&dir, "killed", &scenario(10_000_000));
    let out = dir.join("out");
    let mut child = harness()
        .args(run_args(&file, &server.url, &out))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once it has done some thousands of requests (well past a 10 s checkpoint is not
    // needed: the journal alone must hold them), or after 40 s at the most.
    let waited = std::time::Instant::now();
    while answered.load(Ordering::SeqCst) < 10_000 && waited.elapsed() < Duration::from_secs(40) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended by itself"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // What the server answered by then; a request it answers after the kill was in flight.
    let before_kill = answered.load(Ordering::SeqCst);
    assert!(before_kill >= 10_000, "only {before_kill} requests in 40 s");
    assert!(out.join("journal.ndjson").exists());

    let o = run_harness(&["report", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("rebuilt"), "{}", stderr(&o));
    assert!(
        !out.join("journal.ndjson").exists(),
        "the journal is consumed"
    );
    let r = read_result(&out);
    assert_matches_schema(&r);
    assert_eq!(r["status"], "aborted");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("recovered from the journal"),
        "{}",
        r["reason"]
    );
    let recovered = r["totals"]["iterations"].as_u64().unwrap();
    let finished = before_kill.saturating_sub(CONCURRENCY);
    eprintln!("server answered {before_kill} before the kill; recovered {recovered}");
    assert!(
        recovered as f64 >= 0.99 * finished as f64,
        "recovered {recovered} of the {finished} requests finished before the kill"
    );
    assert!(
        recovered <= before_kill,
        "recovered {recovered}, more than the {before_kill} the server answered"
    );
    assert_eq!(
        r["metrics"]["latency_ms"]["count"].as_u64(),
        Some(recovered)
    );
    assert!(!r["timeline"].as_array().unwrap().is_empty());
    let judged = r["thresholds"][0]["actual"].as_f64();
    assert_eq!(
        judged,
        Some(1.0),
        "thresholds judged on the recovered figures"
    );
    assert!(out.join("report.html").exists());
}

#[test]
fn a_run_that_finishes_leaves_no_journal() {
    let (server, _) = counting();
    let dir = temp_dir("journal-done");
    let file = write_scenario(&dir, "killed", &scenario(200));
    let out = dir.join("out");
    let o = harness()
        .args(run_args(&file, &server.url, &out))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(!out.join("journal.ndjson").exists());
    assert_eq!(read_result(&out)["totals"]["iterations"], 200);
}
