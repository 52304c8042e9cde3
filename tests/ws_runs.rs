//! WebSocket runs end to end against the reference WebSocket server: every policy check passes against
//! the server as shipped, and each test-only defect is caught by its own check while the others still
//! pass; a thousand connections are held; the suites run against a WebSocket endpoint; the rate-limit
//! probe works on HTTP targets too; lost connections are reopened; a dead or wrong endpoint is said so.

mod common;

use axum::Router;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::routing::get;
use common::*;
use harness::reference::handoff::HandoffConfig;
use harness::reference::ws::{WsConfig, WsDefects};
use harness::result::{RunResult, Status};
use harness::scenario::Embedded;

/// Every probe, beside a publish load with four subscribers.
const POLICY: &str = r#"
name = "ws_policy"
suite = "reliability"
timeout = "60s"
iteration_timeout = "2s"

[target]
kind = "websocket"

[websocket]
mode = "publish"
connections = 10
subscribers = 4

[load]
model = "open"
rate = "100/s"
duration = "6s"
max_in_flight = 50

[probes.rate_limit]
rate = "20/s"
burst = 40
idle = "2500ms"
sustain = "3s"

[probes.hardening]

[probes.slow_consumer]
after = "1s"
expect_within = "6s"
# A debug build flooding 60 KiB frames on a shared 2-core machine: the load's p99 has reached 92 ms
# with another test binary running beside it. A stall that spreads costs 2 s (blocking-fanout).
others_slowdown = "500ms"

[thresholds]
"ws.lost" = "== 0"
success_rate = ">= 0.999"
# In place of the built-in 99 %: two of these runs side by side on a 2-core machine, each flooding a
# slow consumer, have started 9 of 600 iterations late together (one shared stall), on main as well.
"schedule.on_time_rate" = ">= 0.95"
"#;

/// Every named check the policy scenario makes.
const CHECKS: [&str; 11] = [
    "rate_limit.conforms",
    "hardening.size_under_limit",
    "hardening.size_at_limit",
    "hardening.size_over_limit",
    "hardening.malformed_json",
    "hardening.unknown_type",
    "hardening.invalid_paths",
    "hardening.path_normalisation",
    "slow_consumer.disconnected",
    "slow_consumer.others_unaffected",
    "hardening.correlation_ids",
];

/// Runs `text` against a reference WebSocket server started with `config`.
/// At most two runs at once: the suite has two cores, and fourteen runs side by side have starved
/// the load of a time-sensitive check (a stalled fan-out measured 149 ms instead of seconds) often
/// enough to fail one test in three.
static RUN_SLOTS: (std::sync::Mutex<u32>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// A share of the two slots: one, or both for a run that must have the machine to itself.
struct Slot(u32);

impl Slot {
    fn take() -> Slot {
        Slot::weighing(1)
    }

    fn weighing(w: u32) -> Slot {
        let (count, freed) = &RUN_SLOTS;
        let mut n = count.lock().unwrap_or_else(|p| p.into_inner());
        while *n + w > 2 {
            n = freed.wait(n).unwrap_or_else(|p| p.into_inner());
        }
        *n += w;
        Slot(w)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let (count, freed) = &RUN_SLOTS;
        *count.lock().unwrap_or_else(|p| p.into_inner()) -= self.0;
        freed.notify_all();
    }
}

fn run_against(text: &str, config: WsConfig) -> RunResult {
    let _slot = Slot::take();
    run_against_in_slot(text, config)
}

fn run_against_in_slot(text: &str, config: WsConfig) -> RunResult {
    let rt = runtime();
    let server = rt.block_on(harness::reference::start_ws(config)).unwrap();
    let url = server.url.to_string();
    // The run gets a runtime of its own, as `harness run` does.
    let result = std::thread::spawn({
        let text = text.to_string();
        move || run_plan(&text, &url, Some(Embedded::Websocket))
    })
    .join()
    .unwrap();
    rt.block_on(server.stop()).unwrap();
    result
}

/// No threshold failed; if one did, every verdict and the connection figures are shown. The
/// generator's own pace (`schedule.*`) is a fact about this machine, shared by the whole suite, not
/// about the endpoint: a miss there is printed, not failed.
fn assert_no_failed_thresholds(r: &RunResult) {
    let (pace, failed): (Vec<&str>, Vec<&str>) = failed_thresholds(r)
        .into_iter()
        .partition(|m| m.starts_with("schedule."));
    if !pace.is_empty() {
        eprintln!("tolerated on a busy machine: {pace:?}");
    }
    assert_eq!(
        failed,
        Vec::<&str>::new(),
        "{:#?} {:#?}",
        r.thresholds,
        r.metrics.ws
    );
}

#[test]
fn every_policy_check_passes_against_the_reference_server() {
    let r = run_against(POLICY, WsConfig::default());
    let names: Vec<&str> = r.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), CHECKS.len(), "{names:?}");
    for c in CHECKS {
        assert!(names.contains(&c), "{c} missing from {names:?}");
    }
    assert_eq!(failed_checks(&r), Vec::<&str>::new(), "{:#?}", r.checks);
    assert_passed_but_for_pace(&r, "the run");

    let rl = r.metrics.rate_limit.as_ref().unwrap();
    let rate = rl.inferred_rate_per_s.unwrap();
    let burst = rl.inferred_burst.unwrap();
    assert!((rate - 20.0).abs() <= 2.0, "inferred rate {rate}");
    assert!((burst - 40.0).abs() <= 4.0, "inferred burst {burst}");
    assert!(rl.rejected > 0 && !rl.series.is_empty());

    let ws = r.metrics.ws.as_ref().unwrap();
    let d = ws.delivery.as_ref().unwrap();
    assert_eq!(d.subscribers, 4);
    assert_eq!(d.acknowledged, 600);
    assert_eq!(d.expected, 2400);
    assert_eq!(
        (d.lost, d.duplicated, d.out_of_order, d.unexpected),
        (0, 0, 0, 0)
    );
    assert_eq!(ws.delivery_rate, Some(1.0));
    assert!(ws.connect_ms.as_ref().is_some_and(|c| c.count >= 14));
    assert!(
        ws.ping_ms.is_some(),
        "pings every second on every connection"
    );
    assert!(ws.delivery_ms.as_ref().is_some_and(|l| l.count == 2400));
    assert_eq!(
        ws.close_codes.get("1009"),
        Some(&1),
        "the over-limit message"
    );
    assert_eq!(ws.frames_without_correlation, 0);
    let slow = ws.slow_consumer.as_ref().unwrap();
    let after = slow.disconnected_after_ms.unwrap();
    // The server's grace is 2 s; its queue must fill first.
    assert!((2000.0..6000.0).contains(&after), "{after}ms");

    let html = harness::report::html::Html;
    let page = harness::report::Exporter::render(&html, &r).unwrap();
    for id in [
        "chart-rate-limit",
        "chart-handshake",
        "id=\"checks\"",
        "id=\"websocket\"",
    ] {
        assert!(page.contains(id), "{id} missing from the report");
    }
    // Every receipt as owed: no chart of zeros.
    let d = ws.delivery.as_ref().unwrap();
    if d.lost + d.duplicated + d.out_of_order + d.unexpected + d.recovered == 0 {
        assert!(!page.contains("chart-delivery"), "a chart of zeros");
    }
}

/// Runs the policy scenario against a server with `defects` and returns what failed.
fn with_defect(defects: WsDefects) -> RunResult {
    run_against(
        POLICY,
        WsConfig {
            defects,
            ..WsConfig::default()
        },
    )
}

#[test]
fn a_rate_limit_looser_than_declared_is_caught() {
    let r = with_defect(WsDefects {
        loose_rate_limit: true,
        ..WsDefects::default()
    });
    assert_eq!(
        failed_checks(&r),
        vec!["rate_limit.conforms"],
        "{:#?}",
        r.checks
    );
    assert_no_failed_thresholds(&r);
    let rate = r
        .metrics
        .rate_limit
        .as_ref()
        .unwrap()
        .inferred_rate_per_s
        .unwrap();
    assert!((rate - 25.0).abs() <= 2.5, "inferred {rate}/s");
    assert_eq!(r.status, Status::Failed);
}

#[test]
fn a_missing_size_limit_is_caught() {
    let r = with_defect(WsDefects {
        no_size_limit: true,
        ..WsDefects::default()
    });
    assert_eq!(
        failed_checks(&r),
        vec!["hardening.size_over_limit"],
        "{:#?}",
        r.checks
    );
    assert_no_failed_thresholds(&r);
}

#[test]
fn dropped_deliveries_are_caught() {
    let r = with_defect(WsDefects {
        drops_deliveries: true,
        ..WsDefects::default()
    });
    assert_eq!(failed_checks(&r), Vec::<&str>::new(), "{:#?}", r.checks);
    let failed: Vec<&str> = failed_thresholds(&r)
        .into_iter()
        .filter(|m| !m.starts_with("schedule."))
        .collect();
    assert_eq!(failed, vec!["ws.lost"]);
    let d = r.metrics.ws.as_ref().unwrap().delivery.clone().unwrap();
    assert!(d.lost > 0 && !d.lost_ids.is_empty(), "{d:?}");
    assert_eq!((d.duplicated, d.out_of_order), (0, 0));
    let page = harness::report::Exporter::render(&harness::report::html::Html, &r).unwrap();
    assert!(page.contains("chart-delivery"), "the losses are drawn");
}

#[test]
fn error_frames_without_correlation_ids_are_caught() {
    let r = with_defect(WsDefects {
        uncorrelated_errors: true,
        ..WsDefects::default()
    });
    assert_eq!(
        failed_checks(&r),
        vec!["hardening.correlation_ids"],
        "{:#?}",
        r.checks
    );
    assert_no_failed_thresholds(&r);
}

#[test]
fn a_slow_consumer_that_stalls_everyone_is_caught() {
    // The server handles one message at a time and waits for room in full queues: the stalled
    // consumer is still disconnected in time, but the load stalls behind it until then. Alone on
    // the machine: beside another run, the flood has reached the stalled consumer too late to block
    // anyone (a 149 ms stall).
    let _alone = Slot::weighing(2);
    let r = run_against_in_slot(
        POLICY,
        WsConfig {
            defects: WsDefects {
                blocking_fanout: true,
                ..WsDefects::default()
            },
            ..WsConfig::default()
        },
    );
    assert_eq!(
        failed_checks(&r),
        vec!["slow_consumer.others_unaffected"],
        "{:#?}",
        r.checks
    );
    let slow = r
        .metrics
        .ws
        .as_ref()
        .unwrap()
        .slow_consumer
        .clone()
        .unwrap();
    let (during, allowed) = (slow.during_p99_ms.unwrap(), slow.allowed_p99_ms.unwrap());
    assert!(during > allowed || slow.during_failed > 0, "{slow:?}");
    assert_eq!(r.status, Status::Failed);
}

#[test]
fn a_server_that_keeps_slow_consumers_is_caught() {
    let _slot = Slot::take();
    // The server runs on its own, as a user would start it, with the defect switched on.
    let (mut server, url) = serve_reference("ws", "keep-slow-consumers");
    let r = run_plan(POLICY, &url, None);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(
        failed_checks(&r),
        vec!["slow_consumer.disconnected"],
        "{:#?}",
        r.checks
    );
    assert!(
        r.metrics
            .ws
            .as_ref()
            .unwrap()
            .slow_consumer
            .as_ref()
            .unwrap()
            .disconnected_after_ms
            .is_none()
    );
}

#[test]
fn a_thousand_connections_are_held() {
    // Holding the connections is the point here; latency on a shared test machine is not.
    let text =
        builtin("WS_CONCURRENCY_STANDARD").replace("duration = \"15s\"", "duration = \"3s\"");
    let r = run_against(&text, WsConfig::default());
    assert!(
        r.thresholds
            .iter()
            .filter(|v| v.metric.starts_with("ws.") || v.metric == "success_rate")
            .all(|v| v.passed),
        "{:#?}",
        r.thresholds
    );
    let ws = r.metrics.ws.as_ref().unwrap();
    assert!(ws.peak_connections >= 1000, "{ws:?}");
    assert_eq!(ws.connections, 1000);
    assert_eq!(ws.failed_connections, 0);
    assert_eq!(r.totals.succeeded, 3000);
}

#[test]
fn the_stress_suite_finds_where_the_rate_limit_starts_refusing() {
    // 10 connections × 20/s per connection: 200/s is the most the endpoint accepts, so the third
    // stage (400/s) breaks on refusals. (Stage 1 can also miss its schedule on a busy test machine,
    // so the test looks at the refusals, not only at the breaking point.)
    let text = builtin("WS_STRESS_STANDARD")
        .replace("connections = 100", "connections = 10")
        .replace("stage_duration = \"8s\"", "stage_duration = \"3s\"")
        .replace("max_stages = 6", "max_stages = 3");
    let r = run_against(&text, WsConfig::default());
    let stress = r.metrics.stress.as_ref().unwrap();
    let refused = |i: usize| {
        stress.stages[i]
            .errors
            .get("rate_limited")
            .copied()
            .unwrap_or(0)
    };
    assert_eq!((refused(0), refused(1)), (0, 0), "{stress:#?}");
    assert!(refused(2) > 100, "{stress:#?}");
    assert!(!stress.stages[2].met_thresholds);
    // A stage before it that the generator could not keep to ends the judging there, said as such
    // (a busy test machine); otherwise the third stage is where it broke.
    assert!(
        stress.broke
            || stress
                .generator_limited
                .as_ref()
                .is_some_and(|g| g.stage < 3),
        "{stress:#?}\n{:#?}",
        r.timeline
    );
    assert!(
        stress
            .breaking_point
            .as_ref()
            .is_none_or(|bp| bp.stage <= 2)
    );
}

#[test]
fn failure_injection_is_measured_on_both_sides() {
    let text =
        builtin("WS_FAILURE_INJECTION_STANDARD").replace("duration = \"20s\"", "duration = \"5s\"");
    let r = run_against(&text, WsConfig::default());
    assert_passed_but_for_pace(&r, "the run");
    let e = &r.metrics.errors;
    // Injected errors and injected timeouts both count as `injected`, as they do on HTTP targets:
    // one fault injector for every driver. No iteration ran out of its own time.
    assert!(e.get("injected").copied().unwrap_or(0) > 0, "{e:?}");
    assert_eq!(e.get("timeout"), None, "{e:?}");
    assert!(
        e.get("rejected").copied().unwrap_or(0) > 0,
        "server-side errors: {e:?}"
    );
    let d = r.metrics.ws.as_ref().unwrap().delivery.clone().unwrap();
    assert!(
        d.failed > 0,
        "refused publishes are failed, never owed: {d:?}"
    );
    assert_eq!((d.duplicated, d.out_of_order), (0, 0));
    assert!(r.notes.iter().all(|n| !n.contains("could not be cleared")));
}

#[test]
fn the_endurance_suite_reports_drift_for_a_websocket_endpoint() {
    let text = builtin("WS_ENDURANCE_STANDARD").replace("duration = \"170s\"", "duration = \"8s\"");
    let r = run_against(&text, WsConfig::default());
    assert_passed_but_for_pace(&r, "the run");
    let drift = r.metrics.drift.as_ref().unwrap();
    assert!(drift.p95_change_ms.is_some());
    assert_eq!(r.metrics.ws.as_ref().unwrap().delivery_rate, Some(1.0));
}

const HTTP_LIMIT: &str = r#"
name = "http_limit"
suite = "reliability"
timeout = "30s"

[target]
kind = "http"
url = "http://127.0.0.1:1"

[target.request]
method = "GET"
path = "/health"

[load]
model = "open"
rate = "5/s"
duration = "2s"

[probes.rate_limit]
rate = "DECLARED"
burst = 40
idle = "2500ms"
sustain = "3s"
path = "/health"
require_retry_after = true
"#;

fn http_limit_run(declared: &str) -> RunResult {
    let _slot = Slot::take();
    let rt = runtime();
    let service = rt
        .block_on(harness::reference::start_handoff(HandoffConfig {
            rate_limit: Some((20.0, 40)),
            ..HandoffConfig::default()
        }))
        .unwrap();
    let url = service.url.to_string();
    let text = HTTP_LIMIT.replace("DECLARED", declared);
    let r = std::thread::spawn(move || run_plan(&text, &url, None))
        .join()
        .unwrap();
    rt.block_on(service.stop()).unwrap();
    r
}

#[test]
fn an_http_rate_limit_is_inferred_with_its_retry_after() {
    let r = http_limit_run("20/s");
    assert_eq!(failed_checks(&r), Vec::<&str>::new(), "{:#?}", r.checks);
    let rl = r.metrics.rate_limit.as_ref().unwrap();
    assert!(rl.conforms, "{rl:?}");
    let ra = rl.retry_after.unwrap();
    assert!(ra.present > 0 && ra.missing == 0, "{ra:?}");
    assert_passed_but_for_pace(&r, "the run");

    let r = http_limit_run("10/s");
    assert_eq!(failed_checks(&r), vec!["rate_limit.conforms"]);
    assert!(
        r.metrics
            .rate_limit
            .as_ref()
            .unwrap()
            .note
            .as_ref()
            .unwrap()
            .contains("off the declared")
    );
}

/// A WebSocket endpoint that answers three echoes per connection, then closes it.
fn closes_after_three() -> Router {
    Router::new().route(
        "/ws",
        get(|ws: WebSocketUpgrade| async move {
            ws.on_upgrade(|mut socket| async move {
                for _ in 0..3 {
                    let Some(Ok(Message::Text(t))) = socket.recv().await else {
                        return;
                    };
                    let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
                    let reply =
                        serde_json::json!({"type": "echo", "correlation_id": v["correlation_id"]});
                    if socket.send(Message::text(reply.to_string())).await.is_err() {
                        return;
                    }
                }
                let _ = socket.send(Message::Close(None)).await;
            })
        }),
    )
}

#[test]
fn lost_connections_are_reopened_with_backoff() {
    let _slot = Slot::take();
    let server = serve(closes_after_three());
    let url = format!("{}/ws", server.url.replace("http://", "ws://"));
    let r = run_plan(
        r#"name = "reopen"
           suite = "reliability"
           timeout = "30s"
           iteration_timeout = "1s"
           [target]
           kind = "websocket"
           [websocket]
           connections = 2
           ping_interval = "0s"
           [load]
           model = "open"
           rate = "20/s"
           duration = "3s"
           max_in_flight = 2
        "#,
        &url,
        None,
    );
    let ws = r.metrics.ws.as_ref().unwrap();
    // Each connection serves three iterations and is closed; the driver opens it again on next use.
    assert!(ws.reconnects >= 15, "{ws:?}");
    assert!(ws.close_codes.values().sum::<u64>() >= 15, "{ws:?}");
    assert!(
        r.totals.succeeded >= 55,
        "{:?} {:?}",
        r.totals,
        r.metrics.errors
    );
}

#[test]
fn a_dead_or_wrong_endpoint_is_said_plainly() {
    let o = run_harness(&[
        "run",
        "WS_RATE_LIMIT_STANDARD",
        "--target",
        "ws://127.0.0.1:1/ws",
        "--out",
        temp_dir("dead").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert!(stdout(&o).contains("target unreachable"), "{}", stdout(&o));

    let http = serve(delayed(0));
    let target = http.url.replace("http://", "ws://");
    let o = run_harness(&[
        "run",
        "WS_RATE_LIMIT_STANDARD",
        "--target",
        &target,
        "--out",
        temp_dir("wrong").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("instead of switching protocols"),
        "{}",
        stdout(&o)
    );
}
