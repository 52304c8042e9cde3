//! The application-level ping against a server with a heartbeat of its own, unlike the reference
//! server: requests are `{"kind":"req","ref":…}`, the heartbeat is `{"kind":"hb","n":…}` and its
//! answer `{"kind":"hb_ack","n":…,"server_ms":…}` carries no `ref` and the server's clock (which runs
//! seven seconds ahead here). Healthy, the run passes whole, the acks are not taken for frames missing
//! their id, and the clock offset is measured; with the heartbeat handler stuck (requests still
//! answered, control pings still ponged by the WebSocket layer) only the app-ping threshold fails.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::routing::get;
use common::*;
use harness::result::{RunResult, Status};
use serde_json::{Value, json};

/// How far ahead of ours the server's clock runs.
const SKEW_MS: f64 = 7_000.0;

async fn connection(mut socket: WebSocket, heartbeat_stuck: bool) {
    while let Some(Ok(msg)) = socket.recv().await {
        let Message::Text(text) = msg else { continue };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let reply = match v["kind"].as_str() {
            Some("req") => json!({"kind": "res", "ref": v["ref"], "data": v["data"]}),
            Some("hb") if heartbeat_stuck => continue,
            Some("hb") => {
                let now_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64()
                    * 1000.0;
                json!({"kind": "hb_ack", "n": v["n"], "server_ms": now_ms + SKEW_MS})
            }
            _ => json!({"kind": "res", "ref": v["ref"], "error": "unknown kind"}),
        };
        if socket.send(Message::text(reply.to_string())).await.is_err() {
            return;
        }
    }
}

fn server(heartbeat_stuck: bool) -> (TestServer, String) {
    let s = serve(Router::new().route(
        "/live",
        get(move |ws: WebSocketUpgrade| async move {
            ws.on_upgrade(move |socket| connection(socket, heartbeat_stuck))
        }),
    ));
    let url = s.url.replace("http://", "ws://") + "/live";
    (s, url)
}

const SCENARIO: &str = r#"name = "heartbeat"
suite = "reliability"
timeout = "30s"
iteration_timeout = "2s"

[target]
kind = "websocket"

[websocket]
mode = "echo"
connections = 3
ping_interval = "200ms"

[websocket.protocol]
echo = '{"kind":"req","ref":"{{id}}","data":"{{payload}}"}'
correlation_id = "/ref"

[websocket.app_ping]
send = '{"kind":"hb","n":{{seq}}}'
pong = { pointer = "/kind", equals = "hb_ack" }
server_time = "/server_ms"
interval = "200ms"

[load]
model = "open"
rate = "50/s"
duration = "2s"

[thresholds]
success_rate = ">= 0.999"
"ws.app_ping.unanswered" = "== 0"
"ws.frames_without_correlation" = "== 0"
"#;

fn run(heartbeat_stuck: bool) -> RunResult {
    let (_server, url) = server(heartbeat_stuck);
    run_plan(SCENARIO, &url, None)
}

/// The thresholds a run failed, but for keeping to its schedule: two of these runs side by side,
/// each with its server, can start a few of their 100 iterations late on two busy cores.
fn failed_but_for_pace(r: &RunResult) -> Vec<&str> {
    failed_thresholds(r)
        .into_iter()
        .filter(|m| !m.starts_with("schedule."))
        .collect()
}

#[test]
fn a_heartbeat_of_the_servers_own_is_timed_and_reads_the_servers_clock() {
    let r = run(false);
    assert!(
        failed_but_for_pace(&r).is_empty() && r.status != Status::Aborted,
        "{:?} {:#?}",
        r.reason,
        r.thresholds
    );
    let ws = r.metrics.ws.as_ref().unwrap();
    let app = ws.app_ping_ms.as_ref().expect("app pings were timed");
    assert!(app.count >= 3, "{app:?}");
    assert_eq!(ws.app_pings_unanswered, 0);
    // The acks carry no `ref`, and are not counted as frames missing one.
    assert_eq!(
        ws.frames_without_correlation, 0,
        "{:?}",
        ws.uncorrelated_frames
    );
    let offset = ws
        .server_clock_offset_ms
        .as_ref()
        .expect("the acks carry the clock");
    assert_eq!(offset.samples, app.count);
    // Within a round trip of the truth; a wide margin, since it is the figure, not the speed, on
    // trial here.
    assert!(
        (offset.mean - SKEW_MS).abs() < 1_000.0,
        "the server runs {SKEW_MS} ms ahead: {offset:?}"
    );
    assert!(offset.min <= offset.mean && offset.mean <= offset.max);
}

#[test]
fn a_stuck_heartbeat_fails_the_app_ping_while_control_pings_still_answer() {
    let r = run(true);
    assert_eq!(r.status, Status::Failed);
    assert_eq!(
        failed_but_for_pace(&r),
        vec!["ws.app_ping.unanswered"],
        "{:#?}",
        r.thresholds
    );
    let ws = r.metrics.ws.as_ref().unwrap();
    assert!(ws.app_pings_unanswered >= 3, "{ws:?}");
    assert!(ws.app_ping_ms.is_none());
    assert!(
        ws.ping_ms.as_ref().is_some_and(|p| p.count > 0),
        "the WebSocket layer still answers control pings: {ws:?}"
    );
    assert!(
        r.reason
            .as_deref()
            .unwrap_or("")
            .contains("ws.app_ping.unanswered")
    );
}
