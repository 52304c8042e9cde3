//! Running scenarios against test servers started on 127.0.0.1:0: what the engine measures (latency,
//! the coordinated-omission correction, procedures with captures, rules and verified rollbacks,
//! stress stages, drift), and what a user of `harness run` gets (exit codes, result.json that matches
//! the schema, interrupts, budgets, refusals).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use common::*;
use harness::plan::RunPlan;
use harness::result::{RunResult, Status};
use harness::scenario::Library;
use serde_json::{Value, json};

fn plan(text: &str, url: &str) -> RunPlan {
    let dir = temp_dir("plan");
    let path = write_scenario(&dir, "scenario", text);
    let library = Library::open(Some(&dir)).unwrap();
    let scenario = match library.load(path.to_str().unwrap()) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    plan_for(&scenario, url, None, 42, "test")
}

fn run(text: &str, url: &str) -> RunResult {
    execute(&plan(text, url))
}

#[test]
fn closed_load_measures_a_fixed_delay() {
    let server = serve(delayed(20));
    let r = run(
        r#"name = "fixed"
           suite = "reliability"
           timeout = "30s"
           [target]
           kind = "http"
           url = "http://127.0.0.1:1"
           [load]
           iterations = 80
           concurrency = 4
           [thresholds]
           success_rate = ">= 1.0"
           "latency_ok.p50" = [">= 20ms", "< 1s"]"#,
        &server.url,
    );
    assert_eq!(r.status, Status::Passed, "{:?}", r.reason);
    assert_eq!(r.totals.iterations, 80);
    let range: Vec<&str> = r
        .thresholds
        .iter()
        .filter(|v| v.metric == "latency_ok.p50" && v.passed)
        .map(|v| v.condition.as_str())
        .collect();
    assert_eq!(range, [">= 20ms", "< 1s"], "a range is two verdicts");
    let l = r.metrics.latency_ms.unwrap();
    let p50 = l.p50.expect("80 iterations support a p50");
    assert!(
        (20.0..=35.0).contains(&p50),
        "p50 {p50} should be the 20ms delay plus a little"
    );
    // 80 iterations leave 8 beyond p90 and fewer beyond p95 and further: those are absent, and a
    // note says what each would need.
    assert!(l.p90.is_none() && l.p95.is_none() && l.p99.is_none() && l.p999.is_none());
    let note = r
        .notes
        .iter()
        .find(|n| n.contains("are not reported"))
        .unwrap_or_else(|| panic!("{:?}", r.notes));
    assert!(
        note.contains("of the 80 succeeded") && note.contains("p999 needs 10000"),
        "{note}"
    );
    assert!(
        r.metrics.service_time_ms.is_none(),
        "a closed load has no separate service time"
    );
    assert!(
        r.notes.iter().any(|n| n.contains("coordinated omission")),
        "{:?}",
        r.notes
    );
    assert!(
        r.timeline.iter().map(|row| row.succeeded).sum::<u64>() == 80,
        "the timeline accounts for every iteration"
    );
}

/// A server that stops answering for one second every three seconds, starting one second in.
fn freezing() -> Router {
    let start = Instant::now();
    Router::new().route(
        "/",
        get(move || async move {
            let t = start.elapsed().as_secs_f64();
            if t >= 1.0 && (t - 1.0) % 3.0 < 1.0 {
                let left = 1.0 - (t - 1.0) % 3.0;
                tokio::time::sleep(Duration::from_secs_f64(left)).await;
            }
            "ok"
        }),
    )
}

#[test]
fn an_open_load_shows_the_stall_that_service_time_hides() {
    let server = serve(freezing());
    let r = run(
        r#"name = "freeze"
           suite = "performance"
           timeout = "30s"
           [target]
           kind = "http"
           url = "http://127.0.0.1:1"
           [load]
           model = "open"
           rate = "100/s"
           duration = "6s"
           max_in_flight = 1"#,
        &server.url,
    );
    let corrected = r.metrics.latency_ms.unwrap();
    let uncorrected = r.metrics.service_time_ms.unwrap();
    // 600 iterations: p95 is the highest percentile they support (p99 needs 1000).
    assert_eq!(corrected.p99, None, "600 iterations are too few for a p99");
    let (c95, u95) = (corrected.p95.unwrap(), uncorrected.p95.unwrap());
    assert!(
        c95 >= 500.0,
        "corrected p95 {c95}ms must show the 1s freezes"
    );
    assert!(u95 < 100.0, "uncorrected p95 {u95}ms hides them");
    let schedule = r.metrics.schedule.unwrap();
    assert!(schedule.late > 0 && schedule.fell_behind, "{schedule:?}");
    assert_eq!(
        r.status,
        Status::Failed,
        "a run whose generator fell behind is not green"
    );
    let implicit = r
        .thresholds
        .iter()
        .find(|v| v.metric == "schedule.on_time_rate")
        .unwrap();
    assert!(!implicit.passed);
}

/// A small stateful service: items with an owner, moves between owners, and a defect mode in which
/// moving an item back answers 200 but changes nothing.
#[derive(Clone, Default)]
struct Items {
    owners: Arc<Mutex<HashMap<String, String>>>,
    broken_undo: bool,
    flaky: Arc<AtomicU64>,
    tried: Arc<Mutex<std::collections::HashSet<String>>>,
}

fn items(broken_undo: bool) -> Router {
    let state = Items {
        broken_undo,
        ..Items::default()
    };
    Router::new()
        .route(
            "/items",
            post(|State(s): State<Items>, Json(body): Json<Value>| async move {
                let id = body["id"].as_str().unwrap_or_default().to_string();
                let owner = body["owner"].as_str().unwrap_or_default().to_string();
                s.owners.lock().unwrap().insert(id.clone(), owner.clone());
                (StatusCode::CREATED, Json(json!({"id": id, "owner": owner, "version": 1})))
            }),
        )
        .route(
            "/items/{id}",
            get(|State(s): State<Items>, UrlPath(id): UrlPath<String>| async move {
                match s.owners.lock().unwrap().get(&id) {
                    Some(o) => (StatusCode::OK, Json(json!({"id": id, "owner": o}))),
                    None => (StatusCode::NOT_FOUND, Json(json!({"error": format!("no item {id}")}))),
                }
            }),
        )
        .route(
            "/items/{id}/move",
            post(|State(s): State<Items>, UrlPath(id): UrlPath<String>, Json(body): Json<Value>| async move {
                let to = body["to"].as_str().unwrap_or_default().to_string();
                if !(s.broken_undo && to == "a") {
                    s.owners.lock().unwrap().insert(id.clone(), to.clone());
                }
                Json(json!({"id": id, "owner": to, "lock_wait_ms": 1.5}))
            }),
        )
        .route(
            "/flaky/{id}",
            get(|State(s): State<Items>, UrlPath(id): UrlPath<String>| async move {
                // The first attempt for each item fails; the retry succeeds.
                let first = s.tried.lock().unwrap().insert(id);
                s.flaky.fetch_add(1, Ordering::Relaxed);
                if first {
                    (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "try again"})))
                } else {
                    (StatusCode::OK, Json(json!({"ok": true})))
                }
            }),
        )
        .with_state(state)
}

const ITEMS_PROCEDURE: &str = r#"
name = "MOVE_ITEM"

[variables]
item = "{{run_id}}-item-{{iteration}}"

[[setup]]
method = "POST"
path = "/items"
body = { id = "{{item}}", owner = "a" }
expect_status = 201

[[steps]]
id = "move"
method = "POST"
path = "/items/{{item}}/move"
body = { to = "b" }
capture = { moved_to = "/owner" }
record = { "lock.acquire" = "/lock_wait_ms" }

[[steps]]
id = "flaky"
path = "/flaky/{{item}}"
retries = 2

[[steps]]
id = "confirm"
path = "/items/{{item}}"

[[rules]]
id = "T1"
severity = "critical"
step = "confirm"
check = { pointer = "/owner", equals = "{{want}}" }

[[rules]]
id = "T2"
severity = "medium"
step = "confirm"
check = { pointer = "/owner", equals = "nobody" }

[[rollbacks]]
id = "undo_move"
undoes = ["move"]

[[rollbacks.steps]]
method = "POST"
path = "/items/{{item}}/move"
body = { to = "a" }

[[rollbacks.verify]]
path = "/items/{{item}}"
checks = [{ pointer = "/owner", equals = "a" }]
"#;

fn items_scenario(dir: &std::path::Path, want: &str) -> String {
    std::fs::create_dir_all(dir.join("procedures")).unwrap();
    std::fs::write(
        dir.join("procedures/MOVE_ITEM.toml"),
        ITEMS_PROCEDURE.replace(
            "[variables]\n",
            &format!("[variables]\nwant = \"{want}\"\n"),
        ),
    )
    .unwrap();
    format!(
        r#"name = "items"
           suite = "failure_injection"
           timeout = "30s"
           [target]
           kind = "handoff"
           url = "http://127.0.0.1:1"
           procedure = "{}/procedures/MOVE_ITEM.toml"
           [load]
           iterations = 12
           concurrency = 3
           [faults]
           failure_rate = 0.0001
           kinds = ["latency"]
           latency = "1ms"
           [thresholds]
           "rollback.success_rate" = ">= 0.9"
           "lock.acquire.p95" = "< 100ms"
           "steps.move.latency.p95" = "< 1s""#,
        dir.display()
    )
}

fn run_in(dir: &std::path::Path, text: &str, url: &str) -> RunResult {
    let path = write_scenario(dir, "scenario", text);
    let scenario = Library::open(Some(dir))
        .unwrap()
        .load(path.to_str().unwrap())
        .unwrap_or_else(|e| panic!("{e}"));
    let plan = plan_for(&scenario, url, None, 7, "t");
    execute(&plan)
}

#[test]
fn a_procedure_captures_retries_validates_and_succeeds() {
    let server = serve(items(false));
    let dir = temp_dir("proc-ok");
    let r = run_in(&dir, &items_scenario(&dir, "b"), &server.url);
    assert_eq!(
        r.totals.succeeded, 12,
        "{:?} {:?}",
        r.reason, r.metrics.error_samples
    );
    assert_eq!(r.status, Status::Passed, "{:?}", r.reason);
    for step in ["move", "flaky", "confirm"] {
        assert_eq!(
            r.metrics.steps[step].latency_ms.count, 12,
            "{step} has a latency per iteration"
        );
    }
    assert_eq!(r.metrics.recorded["lock.acquire"].count, 12);
    assert!((r.metrics.recorded["lock.acquire"].mean - 1.5).abs() < 0.01);
    assert_eq!(
        r.metrics.warnings.get("T2"),
        Some(&12),
        "a medium rule is a warning, not a failure"
    );
    let rb = r.metrics.rollback.unwrap();
    assert_eq!((rb.attempted, rb.success_rate), (0, None));
    let v = r
        .thresholds
        .iter()
        .find(|v| v.metric == "rollback.success_rate")
        .unwrap();
    assert!(
        v.passed && v.note.is_some(),
        "no rollback was needed: {v:?}"
    );
}

#[test]
fn a_failed_critical_rule_rolls_back_and_verification_decides() {
    let server = serve(items(false));
    let dir = temp_dir("proc-rollback");
    let r = run_in(&dir, &items_scenario(&dir, "c"), &server.url);
    assert_eq!(r.totals.failed, 12);
    assert_eq!(r.metrics.errors.get("validation.T1"), Some(&12));
    let sample = &r.metrics.error_samples["validation.T1"][0];
    assert!(
        sample.contains("/owner is \"b\", expected \"c\""),
        "{sample}"
    );
    let rb = r.metrics.rollback.unwrap();
    assert_eq!((rb.attempted, rb.succeeded), (12, 12));
    assert_eq!(rb.by_step["confirm"].attempted, 12);

    // The same run against a service whose undo answers 200 but restores nothing.
    let broken = serve(items(true));
    let dir = temp_dir("proc-broken");
    let r = run_in(&dir, &items_scenario(&dir, "c"), &broken.url);
    let rb = r.metrics.rollback.unwrap();
    assert_eq!(
        (rb.attempted, rb.succeeded, rb.success_rate),
        (12, 0, Some(0.0))
    );
    assert!(
        rb.failures[0].contains("/owner is \"b\", expected \"a\""),
        "{:?}",
        rb.failures
    );
    let v = r
        .thresholds
        .iter()
        .find(|v| v.metric == "rollback.success_rate")
        .unwrap();
    assert!(!v.passed);
    assert_eq!(r.status, Status::Failed);
}

#[test]
fn the_stress_suite_finds_a_breaking_point() {
    // About 100 requests a second at most: four at a time, 40ms each.
    let gate = Arc::new(tokio::sync::Semaphore::new(4));
    let router = Router::new().route(
        "/",
        get(move || {
            let gate = Arc::clone(&gate);
            async move {
                let _permit = gate.acquire().await.unwrap();
                tokio::time::sleep(Duration::from_millis(40)).await;
                "ok"
            }
        }),
    );
    let server = serve(router);
    let r = run(
        r#"name = "stress"
           suite = "stress"
           timeout = "30s"
           iteration_timeout = "5s"
           [target]
           kind = "http"
           url = "http://127.0.0.1:1"
           [load]
           model = "stepped"
           base_rate = "20/s"
           stress_factor = 4.0
           stage_duration = "2s"
           max_stages = 3
           max_in_flight = 64
           [thresholds]
           "latency.p95" = "< 200ms"
           "breaking_point.rate" = ">= 10/s""#,
        &server.url,
    );
    let stress = r.metrics.stress.unwrap();
    assert_eq!(stress.stages.len(), 3);
    assert!(
        stress.stages[0].met_thresholds,
        "20/s is well within capacity: {:?}",
        stress.stages[0].thresholds
    );
    assert!(!stress.stages[2].met_thresholds, "320/s is far beyond it");
    assert!(stress.broke);
    let bp = stress.breaking_point.unwrap();
    assert!(bp.rate_per_s < 320.0 && bp.stage >= 1, "{bp:?}");
    assert_eq!(
        r.status,
        Status::Passed,
        "the base stage held and the breaking point is above 10/s: {:?}",
        r.reason
    );
    let base = r
        .thresholds
        .iter()
        .find(|v| v.metric == "latency.p95")
        .unwrap();
    assert!(base.note.as_deref().unwrap_or_default().contains("stage 1"));
}

/// A server that answers in 20 ms, except from 1 s to 2 s after it starts, when it refuses at once
/// with 503 (an outage behind a fast proxy).
fn refusing_for_a_second() -> Router {
    let start = Instant::now();
    Router::new().route(
        "/",
        get(move || async move {
            let t = start.elapsed().as_secs_f64();
            if (1.0..2.0).contains(&t) {
                return (StatusCode::SERVICE_UNAVAILABLE, "down");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            (StatusCode::OK, "ok")
        }),
    )
}

#[test]
fn refusals_in_an_outage_do_not_make_the_service_look_fast() {
    let server = serve(refusing_for_a_second());
    let r = run(
        r#"name = "outage"
           suite = "performance"
           timeout = "30s"
           [target]
           kind = "http"
           url = "http://127.0.0.1:1"
           [target.request]
           path = "/"
           retries = 0
           [load]
           model = "open"
           rate = "100/s"
           duration = "4s"
           max_in_flight = 50"#,
        &server.url,
    );
    let m = &r.metrics;
    let ok = m.latency_ok_ms.as_ref().unwrap();
    let failed = m.latency_failed_ms.as_ref().unwrap();
    assert!(
        ok.p50.unwrap() >= 20.0,
        "succeeded iterations took 20 ms: {ok:?}"
    );
    assert!(
        failed.p50.unwrap() < 10.0,
        "refusals were instant: {failed:?}"
    );
    assert_eq!(
        ok.count + failed.count,
        m.latency_ms.as_ref().unwrap().count
    );
    assert!(
        (80..=120).contains(&failed.count),
        "about a second's worth refused: {failed:?}"
    );
    assert_eq!(
        m.latency_failed_by_kind.keys().collect::<Vec<_>>(),
        ["http_5xx"]
    );
    // The second of the outage: all iterations' p50 drops to the refusals', the succeeded ones'
    // does not (there are none, or they took their 20 ms).
    let outage = r
        .timeline
        .iter()
        .find(|row| row.failed > row.succeeded)
        .expect("a second mostly refused");
    assert!(outage.p50_ms.unwrap() < 10.0, "{outage:?}");
    assert!(outage.ok_p50_ms.is_none_or(|p| p >= 20.0), "{outage:?}");
    let summary = harness::cli::summary_text(&r);
    assert!(
        summary.contains("of the succeeded iterations")
            && summary.contains("% of iterations (http_5xx"),
        "{summary}"
    );
}

#[test]
fn a_stage_beyond_the_generator_is_not_the_targets_breaking_point() {
    // 50,000/s is far past what this machine's generator can start; the server answers at once.
    let server = serve(delayed(0));
    let r = run(
        r#"name = "beyond"
           suite = "stress"
           timeout = "60s"
           iteration_timeout = "5s"
           [target]
           kind = "http"
           url = "http://127.0.0.1:1"
           [load]
           model = "stepped"
           max_in_flight = 200
           stages = [{ rate = "20/s", duration = "2s" }, { rate = "50000/s", duration = "200ms" }]
           [thresholds]
           "latency_ok.p95" = "< 500ms"
           "breaking_point.rate" = ">= 10/s""#,
        &server.url,
    );
    let stress = r.metrics.stress.clone().unwrap();
    assert!(stress.stages[0].met_thresholds, "{:?}", stress.stages[0]);
    let last = &stress.stages[1];
    assert!(last.late > 100, "the generator fell behind: {last:?}");
    assert!(
        last.generator_limited,
        "and the generator, not the target, set the pace: {last:?}"
    );
    assert!(
        !stress.broke,
        "the target never broke in what it was offered"
    );
    let limit = stress.generator_limited.as_ref().unwrap();
    assert_eq!(limit.stage, 2);
    assert!(
        limit.achieved_rate_per_s < 50_000.0,
        "the stage's own rate was not achieved: {limit:?}"
    );
    assert_eq!(stress.breaking_point.as_ref().map(|bp| bp.stage), Some(1));
    let caveat = r.caveats.join(" ");
    assert!(
        caveat.starts_with("Breaking point not found: the generator fell behind at 50000/s"),
        "{caveat}"
    );
}

#[test]
fn the_endurance_suite_reports_drift() {
    // Latency grows with time: 5ms at the start, about 45ms after eight seconds.
    let start = Instant::now();
    let router = Router::new().route(
        "/",
        get(move || async move {
            let ms = 5.0 + 5.0 * start.elapsed().as_secs_f64();
            tokio::time::sleep(Duration::from_secs_f64(ms / 1000.0)).await;
            "ok"
        }),
    );
    let server = serve(router);
    let r = run(
        r#"name = "soak"
           suite = "endurance"
           timeout = "20s"
           [target]
           kind = "http"
           url = "http://127.0.0.1:1"
           [load]
           model = "open"
           rate = "20/s"
           duration = "8s"
           max_in_flight = 10
           [thresholds]
           "drift.p95_ratio" = "< 1.5""#,
        &server.url,
    );
    let drift = r.metrics.drift.unwrap();
    assert!(drift.p95_ratio.unwrap() > 2.0, "{drift:?}");
    let v = r
        .thresholds
        .iter()
        .find(|v| v.metric == "drift.p95_ratio")
        .unwrap();
    assert!(!v.passed);
}

#[test]
fn the_same_seed_replays_the_same_faults() {
    let server = serve(items(false));
    let dir = temp_dir("seed");
    let text = items_scenario(&dir, "b")
        .replace("failure_rate = 0.0001", "failure_rate = 0.5")
        .replace(
            "kinds = [\"latency\"]",
            "kinds = [\"error\", \"validation\"]",
        );
    let a = run_in(&dir, &text, &server.url);
    let b = run_in(&dir, &text, &server.url);
    assert_eq!(a.load.faults.as_ref().unwrap().injected, 6);
    assert_eq!(a.metrics.errors, b.metrics.errors);
    assert_eq!(a.metrics.errors.get("injected"), Some(&6));
    let rb = a.metrics.rollback.unwrap();
    assert!(rb.attempted > 0, "faults after the move step roll it back");
    assert_eq!(rb.success_rate, Some(1.0));
}

// ---- the command line ---------------------------------------------------------------------------

fn scenario_file(dir: &std::path::Path, body: &str) -> String {
    write_scenario(
        dir,
        "cli",
        &format!("name = \"cli\"\nsuite = \"reliability\"\n{body}"),
    )
    .to_str()
    .unwrap()
    .to_string()
}

/// A server that answers `GET /i/N` and remembers every N it was asked for.
fn recording(seen: Arc<Mutex<Vec<u64>>>) -> Router {
    Router::new().route(
        "/i/{n}",
        get(move |UrlPath(n): UrlPath<u64>| {
            let seen = Arc::clone(&seen);
            async move {
                seen.lock().unwrap().push(n);
                "ok"
            }
        }),
    )
}

#[test]
fn a_seed_beyond_two_to_the_53_replays_from_its_text() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = serve(recording(Arc::clone(&seen)));
    let dir = temp_dir("big-seed");
    let file = scenario_file(
        &dir,
        "timeout = \"20s\"\n[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:1\"\n\
         [target.request]\npath = \"/i/{{iteration}}\"\n[load]\niterations = 60\nconcurrency = 3\n\
         [faults]\nfailure_rate = 0.25\nkinds = [\"error\"]\n",
    );
    // Which iterations the injected errors kept from the server: the seed's fault schedule.
    let sent_with = |seed: &str| -> (Vec<u64>, serde_json::Value) {
        seen.lock().unwrap().clear();
        let out = dir.join(format!("out-{seed}"));
        let o = run_harness(&[
            "run",
            &file,
            "--target",
            &server.url,
            "--seed",
            seed,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let mut sent = seen.lock().unwrap().clone();
        sent.sort_unstable();
        (sent, read_result(&out))
    };
    let big = (1u64 << 63) + 5;
    let (first, r) = sent_with(&big.to_string());
    assert_matches_schema(&r);
    assert_eq!(r["seed_text"], big.to_string());
    assert_eq!(
        r["seed"].as_u64(),
        Some(big),
        "the number is exact for a u64 reader too"
    );
    assert_eq!(first.len(), 45, "a quarter of 60 never sent");
    let (again, _) = sent_with(r["seed_text"].as_str().unwrap());
    assert_eq!(first, again, "the seed's text replays the same schedule");
    let (other, _) = sent_with(&(big + 1).to_string());
    assert_ne!(first, other, "another seed, another schedule");
}

#[test]
fn a_breached_threshold_exits_1_with_its_verdict_recorded() {
    let server = serve(delayed(10));
    let dir = temp_dir("breach");
    let file = scenario_file(
        &dir,
        "timeout = \"20s\"\n[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:1\"\n[load]\niterations = 200\n\
         concurrency = 4\n[thresholds]\n\"latency.p95\" = \"< 1ms\"\nsuccess_rate = \">= 0.9\"\n",
    );
    let out_dir = dir.join("out");
    let o = run_harness(&[
        "run",
        &file,
        "--target",
        &server.url,
        "--out",
        out_dir.to_str().unwrap(),
        "--seed",
        "5",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = read_result(&out_dir);
    assert_matches_schema(&r);
    assert_eq!(r["status"], "failed");
    assert_eq!(r["seed"], 5);
    let p95 = r["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["metric"] == "latency.p95")
        .unwrap();
    assert_eq!(p95["passed"], false);
    assert!(p95["actual"].as_f64().unwrap() >= 10.0);
    let out = stdout(&o);
    assert!(out.contains("FAIL latency.p95 < 1ms"), "{out}");
    assert_eq!(
        out.lines().last().unwrap(),
        out_dir.to_str().unwrap(),
        "the folder is the last line"
    );
}

#[test]
fn a_completed_run_whose_result_cannot_be_written_exits_3_with_the_path() {
    let server = serve(delayed(1));
    let dir = temp_dir("unwritable");
    let file = scenario_file(
        &dir,
        "timeout = \"20s\"\n[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:1\"\n[load]\niterations = 5\n",
    );
    // result.json cannot replace a folder of that name, whoever runs the test.
    let out_dir = dir.join("out");
    let blocked = out_dir.join("result.json");
    std::fs::create_dir_all(&blocked).unwrap();
    std::fs::write(blocked.join("keep"), "").unwrap();
    let o = run_harness(&[
        "run",
        &file,
        "--target",
        &server.url,
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("cannot write {}", blocked.display())),
        "the message names the file: {err}"
    );
    assert!(
        stdout(&o).contains("cli PASSED"),
        "the run's verdict is still shown: {}",
        stdout(&o)
    );
}

#[test]
fn sigint_writes_an_aborted_result_with_partial_counts_and_exits_3() {
    let server = serve(delayed(50));
    let dir = temp_dir("sigint");
    let file = scenario_file(
        &dir,
        "timeout = \"60s\"\n[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:1\"\n[load]\niterations = 100000\nconcurrency = 2\n",
    );
    let out_dir = dir.join("out");
    let child = harness()
        .args([
            "run",
            &file,
            "--target",
            &server.url,
            "--out",
            out_dir.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let r = read_result(&out_dir);
    assert_matches_schema(&r);
    assert_eq!(r["status"], "aborted");
    assert!(r["reason"].as_str().unwrap().contains("interrupted"));
    let done = r["totals"]["iterations"].as_u64().unwrap();
    assert!((10..100000).contains(&done), "partial counts kept: {done}");
    assert!(r["totals"]["not_started"].as_u64().unwrap() > 0);
    assert!(r["metrics"]["latency_ms"]["p50"].as_f64().unwrap() >= 50.0);
}

#[test]
fn a_run_over_its_budget_is_aborted_and_keeps_what_it_measured() {
    let server = serve(delayed(300));
    let dir = temp_dir("budget");
    let file = scenario_file(
        &dir,
        "timeout = \"2s\"\niteration_timeout = \"1s\"\n[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:1\"\n\
         [load]\niterations = 100\nconcurrency = 1\n",
    );
    let out_dir = dir.join("out");
    let started = Instant::now();
    let o = run_harness(&[
        "run",
        &file,
        "--target",
        &server.url,
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let r = read_result(&out_dir);
    assert_matches_schema(&r);
    assert_eq!(r["status"], "aborted");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("exceeded its 2s budget"),
        "{}",
        r["reason"]
    );
    assert!(r["totals"]["iterations"].as_u64().unwrap() >= 3);
}

#[test]
fn an_unreachable_target_exits_3_with_a_result_saying_why() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = temp_dir("unreachable");
    let file = scenario_file(
        &dir,
        "timeout = \"5s\"\n[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:1\"\n[load]\niterations = 5\n",
    );
    let out_dir = dir.join("out");
    let target = format!("http://127.0.0.1:{port}");
    let o = run_harness(&[
        "run",
        &file,
        "--target",
        &target,
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3));
    let r = read_result(&out_dir);
    assert_matches_schema(&r);
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .starts_with("target unreachable"),
        "{}",
        r["reason"]
    );
}

#[test]
fn targets_outside_loopback_are_refused_unless_allowed() {
    let dir = temp_dir("remote");
    let file = scenario_file(
        &dir,
        "timeout = \"5s\"\n[target]\nkind = \"http\"\nurl = \"http://192.0.2.10:80\"\n[load]\niterations = 1\n",
    );
    let o = run_harness(&["run", &file, "--out", dir.join("out").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("refusing to send load to http://192.0.2.10/"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.join("out/result.json").exists(), "nothing was run");
}

#[test]
fn progress_lines_go_to_stderr_when_not_on_a_terminal() {
    let server = serve(delayed(5));
    let dir = temp_dir("progress");
    let file = scenario_file(
        &dir,
        "timeout = \"20s\"\n[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:1\"\n[load]\nmodel = \"open\"\nrate = \"20/s\"\nduration = \"2s\"\n",
    );
    let o = run_harness(&[
        "run",
        &file,
        "--target",
        &server.url,
        "--out",
        dir.join("out").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("running cli (reliability)"), "{err}");
    assert!(
        err.lines().any(|l| l.contains("done,") && l.contains("/s")),
        "{err}"
    );
    let quiet = run_harness(&[
        "run",
        &file,
        "--target",
        &server.url,
        "--out",
        dir.join("q").to_str().unwrap(),
        "-q",
    ]);
    assert!(stderr(&quiet).is_empty(), "{}", stderr(&quiet));
}

#[test]
fn a_run_needing_more_open_files_than_allowed_is_refused_with_the_figures() {
    let dir = temp_dir("nofile");
    let file = scenario_file(
        &dir,
        "timeout = \"10s\"\n[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:9\"\n[load]\niterations = 5000\nconcurrency = 1000\n",
    );
    let out = dir.join("out");
    // The shell lowers both limits, so the harness cannot raise its own past 256.
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 256 && exec \"$0\" run {file} --out {} --quiet",
            out.display()
        ))
        .arg(env!("CARGO_BIN_EXE_harness"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for said in [
        "1064 open files",
        "may open 256",
        "client connections 1000",
        "ulimit -n",
    ] {
        assert!(err.contains(said), "{said}: {err}");
    }
    assert!(!out.exists(), "nothing was run");
}

#[test]
fn a_run_estimated_beyond_its_memory_limit_is_refused_naming_the_setting() {
    let dir = temp_dir("memory");
    let file = scenario_file(
        &dir,
        "timeout = \"10s\"\n[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:9\"\n[load]\niterations = 5000\nconcurrency = 1000\n",
    );
    let out = dir.join("out");
    let o = run_harness(&[
        "run",
        &file,
        "--memory-limit",
        "40MiB",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for said in [
        "HTTP workers 40 MiB",
        "more than the 40 MiB",
        "Lower load.concurrency",
    ] {
        assert!(err.contains(said), "{said}: {err}");
    }
    assert!(!out.exists(), "nothing was run");
    let o = run_harness(&["run", &file, "--memory-limit", "lots"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("write e.g. 2GiB"), "{}", stderr(&o));
}
