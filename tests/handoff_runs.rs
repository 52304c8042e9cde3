//! The standard configurations running end to end against the reference handoff service: the README's
//! main job, rollbacks verified (and a broken rollback caught), invariants under concurrency (and a
//! service that skips its locks caught), server-side chaos set and cleared, and every standard
//! configuration running (the long ones with shortened schedules, to keep the suite fast).

mod common;

use common::*;
use harness::engine::{self, Quiet, Signals};
use harness::reference::handoff::{Defects, HandoffConfig};
use harness::result::{RunResult, Status};
use harness::scenario::Embedded;

/// One run against a reference service at a time, so runs do not slow each other down. Even alone,
/// CONCURRENCY_STANDARD's `lock.acquire.p95 < 100ms` (50 workers queueing on 5 locks) has come out at
/// 117 ms on a loaded CI machine, so these tests judge the shipped latency thresholds only as
/// measured (`assert_passed_but_for_latency`), never as a pass/fail of the behaviour under test.
static ONE_RUN_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs a scenario text against a reference service started with `config`.
fn run_against_service(text: &str, config: HandoffConfig, seed: u64) -> RunResult {
    let _alone = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let scenario = scenario_of(text);
    let rt = runtime();
    rt.block_on(async {
        let service = harness::reference::start_handoff(config).await.unwrap();
        let plan = plan_for(
            &scenario,
            service.url.as_str(),
            Some(Embedded::Handoff),
            seed,
            &format!("e2e{seed}"),
        );
        let result = engine::run(&plan, &Quiet, Signals::default()).await;
        service.stop().await.unwrap();
        assert_matches_schema(&serde_json::to_value(&result).unwrap());
        result
    })
}

#[test]
fn the_main_job_runs_with_no_target_given() {
    let dir = temp_dir("main-job");
    let out = dir.join("out");
    let o = harness()
        .args([
            "run",
            "RELIABILITY_STANDARD",
            "--seed",
            "11",
            "--out",
            out.to_str().unwrap(),
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let r = read_result(&out);
    assert_matches_schema(&r);
    assert_eq!(r["target"]["embedded"], "handoff");
    assert_eq!(r["target"]["procedure"], "PHASE_TRANSITION_STANDARD");
    assert_eq!(r["totals"]["succeeded"], 100);
    for step in [
        "phase_completion",
        "resource_handoff",
        "state_sync",
        "handoff_validation",
    ] {
        assert_eq!(
            r["metrics"]["steps"][step]["latency_ms"]["count"], 100,
            "{step}"
        );
    }
    assert!(
        stderr(&o).contains("against the embedded handoff reference target at http://127.0.0.1:")
    );
}

#[test]
fn failure_injection_rolls_back_and_verifies() {
    let r = run_against_service(
        builtin("FAILURE_INJECTION_STANDARD"),
        HandoffConfig::default(),
        3,
    );
    let rb = r.metrics.rollback.as_ref().unwrap();
    assert!(rb.attempted > 0, "{rb:?}");
    assert_eq!(rb.success_rate, Some(1.0), "{rb:?}");
    assert_eq!(r.status, Status::Passed, "{:?}", r.reason);
    assert!(r.metrics.errors.get("injected").copied().unwrap_or(0) > 0);
    assert!(
        rb.by_step
            .keys()
            .any(|s| s == "state_sync" || s == "handoff_validation"),
        "{rb:?}"
    );
}

#[test]
fn a_rollback_that_restores_nothing_is_caught_and_fails_the_run() {
    // The service runs on its own, as a user would start it, with the defect switched on.
    let (mut server, url) = serve_reference("handoff", "broken-rollback");
    let dir = temp_dir("broken-rollback");
    let out = dir.join("out");
    let o = run_harness(&[
        "run",
        "FAILURE_INJECTION_STANDARD",
        "--target",
        &url,
        "--seed",
        "3",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let r = read_result(&out);
    let rb = &r["metrics"]["rollback"];
    assert!(rb["attempted"].as_u64().unwrap() > 0);
    assert!(rb["success_rate"].as_f64().unwrap() < 0.9, "{rb}");
    assert!(
        rb["failures"][0]
            .as_str()
            .unwrap()
            .contains("state_rollback"),
        "{rb}"
    );
    let v = r["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["metric"] == "rollback.success_rate")
        .unwrap();
    assert_eq!(v["passed"], false);
}

#[test]
fn concurrency_finds_no_violation_in_a_correct_service_and_catches_skipped_locks() {
    let text = builtin("CONCURRENCY_STANDARD").replace("iterations = 1500", "iterations = 500");
    let ok = run_against_service(&text, HandoffConfig::default(), 5);
    let inv = ok.metrics.invariants.as_ref().unwrap();
    assert_eq!(
        (inv.violations, inv.acknowledged, inv.resources),
        (0, 500, 5),
        "{:?}",
        inv.details
    );
    assert_passed_but_for_latency(&ok, "CONCURRENCY_STANDARD, correct service");
    assert!(ok.metrics.recorded["lock.acquire"].count >= 500);

    let broken = run_against_service(
        &text,
        HandoffConfig {
            defects: Defects {
                skip_lock: true,
                ..Defects::default()
            },
            ..HandoffConfig::default()
        },
        5,
    );
    let inv = broken.metrics.invariants.as_ref().unwrap();
    assert!(inv.violations > 0, "skipping the lock must be caught");
    assert!(
        inv.details
            .iter()
            .any(|d| d.contains("acknowledged transfer lost")),
        "{:?}",
        inv.details
    );
    assert_eq!(broken.status, Status::Failed);
}

#[test]
fn server_side_chaos_is_applied_for_the_run_and_cleared_after() {
    let text = builtin("RELIABILITY_STANDARD").replace(
        "[thresholds]",
        "[faults.server]\nroutes = { \"/api/v1/coordination/workflows/{id}\" = 0.3 }\nlatency = \"1ms\"\n\n[thresholds]",
    );
    let r = run_against_service(&text, HandoffConfig::default(), 9);
    let five = r.metrics.errors.get("http_5xx").copied().unwrap_or(0);
    assert!(five > 0, "{:?}", r.metrics.errors);
    assert!(r.metrics.error_samples["http_5xx"][0].contains("injected error (chaos)"));
    assert!(
        r.notes.iter().all(|n| !n.contains("could not be cleared")),
        "{:?}",
        r.notes
    );
}

#[test]
fn every_standard_configuration_runs_against_the_reference_service() {
    // The long schedules shortened; everything else (procedures, rules, thresholds) as shipped.
    let runs = [
        (
            "RELIABILITY_STANDARD",
            builtin("RELIABILITY_STANDARD").to_string(),
        ),
        (
            "PERFORMANCE_STANDARD",
            builtin("PERFORMANCE_STANDARD").replace("rate = \"5/s\"", "rate = \"50/s\""),
        ),
        (
            "STRESS_STANDARD",
            builtin("STRESS_STANDARD")
                .replace("stage_duration = \"10s\"", "stage_duration = \"1s\"")
                .replace("max_stages = 8", "max_stages = 3"),
        ),
        (
            "FAILURE_INJECTION_STANDARD",
            builtin("FAILURE_INJECTION_STANDARD").to_string(),
        ),
        (
            "CONCURRENCY_STANDARD",
            builtin("CONCURRENCY_STANDARD").replace("iterations = 1500", "iterations = 300"),
        ),
        (
            "ENDURANCE_STANDARD",
            builtin("ENDURANCE_STANDARD").replace("duration = \"150s\"", "duration = \"8s\""),
        ),
        (
            "REPORT_SIGNOFF_STANDARD",
            builtin("REPORT_SIGNOFF_STANDARD").to_string(),
        ),
    ];
    for (name, text) in runs {
        let r = run_against_service(&text, HandoffConfig::default(), 21);
        assert_passed_but_for_latency(&r, name);
        assert!(r.totals.iterations > 0, "{name}");
    }
}
