//! A WebSocket gateway with a protocol of its own, unlike the reference server's: `op` for the message
//! kind, `id` for the correlation id, a greeting pushed on connect without an id, two refusal shapes
//! (`{"op":"err",…}` for bad input, `{"op":"throttled",…,"retry_ms":…}` over its per-connection token
//! bucket), a documented `"id": null` on the error that answers a frame that is not JSON, and a close
//! with 1009 past 8 KiB. One scenario describes it; every probe is judged against it: healthy it passes
//! whole, and each defect fails exactly the check that should see it.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::routing::get;
use common::*;
use harness::result::{RunResult, Status};
use serde_json::{Value, json};

#[derive(Clone, Copy, PartialEq)]
struct Gate {
    /// Tokens per second of each connection's bucket.
    rate: f64,
    burst: f64,
    /// Errors for unknown ops carry no id (a defect: the client cannot tell which message failed).
    errors_without_ids: bool,
    /// The handshake must carry `Authorization: Bearer t0ken` and offer the `gate.v1` subprotocol,
    /// and the first frame must be `{"op":"auth","token":"t0ken",…}`; until then everything is refused.
    auth: bool,
}

const HEALTHY: Gate = Gate {
    rate: 20.0,
    burst: 10.0,
    errors_without_ids: false,
    auth: false,
};

const MAX_FRAME: usize = 8 * 1024;

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, gate: &Gate) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * gate.rate).min(gate.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn valid_topic(t: &str) -> bool {
    t.len() <= 64
        && t.strip_prefix('/').is_some_and(|rest| {
            !rest.is_empty()
                && rest.split('/').all(|seg| {
                    !seg.is_empty()
                        && seg
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                })
        })
}

/// Topics are case-insensitive, and repeated or trailing slashes do not count.
fn normalise(t: &str) -> String {
    let segments: Vec<&str> = t.split('/').filter(|s| !s.is_empty()).collect();
    if !t.starts_with('/') || segments.is_empty() {
        return t.to_string();
    }
    format!("/{}", segments.join("/")).to_lowercase()
}

fn answer(gate: &Gate, bucket: &mut Bucket, authed: &mut bool, text: &str) -> Value {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return json!({"op": "err", "id": null, "why": "unparseable"});
    };
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    if gate.auth && !*authed {
        if v["op"] == "auth" && v["token"] == "t0ken" {
            *authed = true;
            return json!({"op": "authed", "id": id});
        }
        return json!({"op": "err", "id": id, "why": "not authenticated"});
    }
    if !bucket.take(gate) {
        return json!({"op": "throttled", "id": id, "retry_ms": 50});
    }
    match v["op"].as_str() {
        Some("echo") => json!({"op": "echoed", "id": id, "body": v["body"]}),
        Some("sub") => match v["topic"].as_str().map(normalise) {
            Some(t) if valid_topic(&t) => json!({"op": "subbed", "id": id, "topic": t}),
            _ => json!({"op": "err", "id": id, "why": "bad topic"}),
        },
        _ if gate.errors_without_ids => json!({"op": "err", "why": "unknown op"}),
        _ => json!({"op": "err", "id": id, "why": "unknown op"}),
    }
}

async fn connection(mut socket: WebSocket, gate: Gate) {
    let hello = json!({"op": "hello", "server": "gate/1"}).to_string();
    if socket.send(Message::text(hello)).await.is_err() {
        return;
    }
    let mut bucket = Bucket {
        tokens: gate.burst,
        at: Instant::now(),
    };
    let mut authed = false;
    while let Some(Ok(msg)) = socket.recv().await {
        let Message::Text(text) = msg else { continue };
        if text.len() > MAX_FRAME {
            let close = CloseFrame {
                code: 1009,
                reason: "too big".into(),
            };
            let _ = socket.send(Message::Close(Some(close))).await;
            return;
        }
        let reply = answer(&gate, &mut bucket, &mut authed, &text).to_string();
        if socket.send(Message::text(reply)).await.is_err() {
            return;
        }
    }
}

fn server(gate: Gate) -> (TestServer, String) {
    let shared = Arc::new(Mutex::new(gate));
    let s = serve(
        Router::new()
            .route(
                "/socket",
                get(
                    |ws: WebSocketUpgrade,
                     headers: axum::http::HeaderMap,
                     State(g): State<Arc<Mutex<Gate>>>| async move {
                        use axum::response::IntoResponse;
                        let gate = *g.lock().unwrap();
                        let bearer = headers.get("authorization").and_then(|v| v.to_str().ok());
                        if gate.auth && bearer != Some("Bearer t0ken") {
                            return axum::http::StatusCode::UNAUTHORIZED.into_response();
                        }
                        ws.protocols(["gate.v1"])
                            .on_upgrade(move |socket| connection(socket, gate))
                            .into_response()
                    },
                ),
            )
            .with_state(shared),
    );
    let url = s.url.replace("http://", "ws://") + "/socket";
    (s, url)
}

const SCENARIO: &str = r#"name = "gate"
suite = "reliability"
timeout = "60s"
iteration_timeout = "2s"

[target]
kind = "websocket"

[websocket]
mode = "echo"
connections = 4

[websocket.protocol]
echo = '{"op":"echo","id":"{{id}}","body":"{{payload}}"}'
subscribe = '{"op":"sub","topic":"{{path}}","id":"{{id}}"}'
correlation_id = "/id"
correlation_types = ["string"]
# The greeting, and the documented null-id answer to a frame that is not JSON.
uncorrelated = { any = [
    { pointer = "/op", equals = "hello" },
    { all = [{ pointer = "/op", equals = "err" }, { pointer = "/id", type = "null" }] },
] }
rejection = { pointer = "/op", equals = "err" }
rate_limited = { pointer = "/op", equals = "throttled", retry_after = "/retry_ms", retry_after_unit = "ms" }
subscribed = { pointer = "/op", equals = "subbed" }
subscribed_path = "/topic"

[load]
model = "open"
rate = "20/s"
duration = "3s"
max_in_flight = 20

[probes.rate_limit]
rate = "20/s"
burst = 10
tolerance = "10%"
require_retry_after = true

[probes.hardening]
max_message_size = "8KiB"
size_close_code = 1009
unknown_type = '{"op":"frobnicate","id":"{{id}}"}'
normalised_paths = { "/Chat//Room-1/" = "/chat/room-1" }

[thresholds]
success_rate = ">= 0.999"
"errors.rate_limited" = "== 0"
"#;

fn run(gate: Gate) -> RunResult {
    let (_server, url) = server(gate);
    run_plan(SCENARIO, &url, None)
}

fn check<'a>(r: &'a RunResult, name: &str) -> &'a harness::result::CheckResult {
    r.checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}: {:?}", r.checks))
}

#[test]
fn a_healthy_gateway_with_its_own_protocol_passes_every_probe() {
    let r = run(HEALTHY);
    assert_passed_but_for_pace(&r, "the run");
    assert!(failed_checks(&r).is_empty(), "{:#?}", r.checks);
    let rl = r.metrics.rate_limit.as_ref().unwrap();
    assert!(
        rl.rejected > 0 && rl.refused == 0,
        "throttles are judged on their own: {rl:?}"
    );
    let retry = rl.retry_after.unwrap();
    assert_eq!(retry.missing, 0, "{retry:?}");
    assert_eq!(retry.max_s, Some(0.05), "{retry:?}");
    let ws = r.metrics.ws.as_ref().unwrap();
    assert_eq!(ws.frames_without_correlation, 0, "{ws:?}");
}

#[test]
fn a_gateway_throttling_at_25_when_20_is_declared_fails_only_the_rate_check() {
    let r = run(Gate {
        rate: 25.0,
        ..HEALTHY
    });
    assert_eq!(
        failed_checks(&r),
        vec!["rate_limit.conforms"],
        "{:#?}",
        r.checks
    );
    let inferred = r
        .metrics
        .rate_limit
        .as_ref()
        .unwrap()
        .inferred_rate_per_s
        .unwrap();
    assert!(
        (inferred - 25.0).abs() <= 25.0 * 0.05,
        "25/s inferred within 5%: {inferred}"
    );
}

#[test]
fn with_no_declared_limit_the_gateways_own_is_discovered() {
    // The scenario says nothing of the limit: the probe ramps until the gateway throttles, then
    // infers its 25/s and burst of 10 from a sustained phase above it.
    let text = SCENARIO
        .replace("rate = \"20/s\"\nburst = 10\n", "")
        // Room for the whole ramp, were the gateway never to throttle.
        .replace("timeout = \"60s\"", "timeout = \"90s\"");
    assert_ne!(text, SCENARIO);
    let (_server, url) = server(Gate {
        rate: 25.0,
        ..HEALTHY
    });
    let r = run_plan(&text, &url, None);
    assert!(failed_checks(&r).is_empty(), "{:#?}", r.checks);
    let rl = r.metrics.rate_limit.as_ref().unwrap();
    assert_eq!(rl.declared_rate_per_s, None);
    let rate = rl.inferred_rate_per_s.unwrap();
    assert!((rate - 25.0).abs() <= 25.0 * 0.05, "25/s within 5%: {rl:?}");
    let burst = rl.inferred_burst.unwrap();
    assert!(
        (burst - 10.0).abs() <= 10.0 * 0.05,
        "a burst of 10 within 5%: {rl:?}"
    );
    println!(
        "discovered {rate:.2}/s, burst {burst:.2}; ramp {:?}",
        rl.ramp
    );
    let first = rl.ramp.iter().find(|s| s.rejected > 0).unwrap();
    assert!(
        first.rate_per_s > 25.0 && first.rate_per_s <= 50.0,
        "{:?}",
        rl.ramp
    );
    assert!(rl.conforms);
    let c = check(&r, "rate_limit.conforms");
    assert!(
        c.detail.starts_with("no declared limit, inferred 2"),
        "{}",
        c.detail
    );
}

#[test]
fn errors_without_ids_fail_only_the_correlation_check_and_are_listed() {
    let r = run(Gate {
        errors_without_ids: true,
        ..HEALTHY
    });
    assert_eq!(
        failed_checks(&r),
        vec!["hardening.correlation_ids"],
        "{:#?}",
        r.checks
    );
    let c = check(&r, "hardening.correlation_ids");
    assert!(
        c.detail
            .contains(r#"`{"op":"err","why":"unknown op"}` (nothing at /id)"#),
        "{}",
        c.detail
    );
    assert!(
        !c.detail.contains("unparseable") && !c.detail.contains("hello"),
        "the documented null-id replies and the greeting are exempt: {}",
        c.detail
    );
    let ws = r.metrics.ws.as_ref().unwrap();
    assert_eq!(
        ws.uncorrelated_frames.len() as u64,
        ws.frames_without_correlation
    );
}

#[test]
fn a_throttle_the_protocol_calls_a_plain_rejection_is_said_to_be_one() {
    // The same gateway, described the old way: one refusal matcher that sees both shapes, and a
    // rate_limited matcher that sees neither.
    let text = SCENARIO
        .replace(
            r#"rejection = { pointer = "/op", equals = "err" }"#,
            r#"rejection = { pointer = "/op", one_of = ["err", "throttled"] }"#,
        )
        .replace(
            r#"rate_limited = { pointer = "/op", equals = "throttled", retry_after = "/retry_ms", retry_after_unit = "ms" }"#,
            r#"rate_limited = { pointer = "/error", exists = true }"#,
        )
        .replace("require_retry_after = true\n", "");
    let (_server, url) = server(HEALTHY);
    let r = run_plan(&text, &url, None);
    let rl = r.metrics.rate_limit.as_ref().unwrap();
    assert_eq!(rl.rejected, 0, "{rl:?}");
    assert!(rl.refused > 0, "{rl:?}");
    let c = check(&r, "rate_limit.conforms");
    assert!(!c.passed);
    assert!(
        c.detail
            .contains("refused for another reason than the rate limit"),
        "{}",
        c.detail
    );
}

#[test]
fn a_built_in_configuration_pointed_at_the_gateway_stops_with_the_mismatch_explained() {
    let (_server, url) = server(HEALTHY);
    let dir = temp_dir("ws-mismatch");
    let out = run_harness(&[
        "run",
        "WS_RATE_LIMIT_STANDARD",
        "--target",
        &url,
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let result = read_result(&dir);
    let reason = result["reason"].as_str().unwrap();
    assert!(
        reason.contains("does not speak the scenario's protocol")
            && reason.contains(r#""op":"err","why":"unknown op"}` (nothing at /correlation_id)"#)
            && reason.contains("[websocket.protocol]"),
        "{reason}"
    );
    assert!(
        result["metrics"]["rate_limit"].is_null() && result["totals"]["iterations"] == 0,
        "it stopped before the probes and the load: {result:#}"
    );
}

const SET_UP: &str = r#"
headers = { Authorization = "Bearer t0ken" }
subprotocols = ["gate.v1"]
on_connect = [{ send = '{"op":"auth","token":"t0ken","id":"{{id}}"}', expect = { pointer = "/op", equals = "authed" } }]
"#;

#[test]
fn a_gateway_that_wants_a_token_a_subprotocol_and_an_auth_frame_passes_with_all_three() {
    let gate = Gate {
        auth: true,
        ..HEALTHY
    };
    let with_setup = SCENARIO.replace("connections = 4\n", &format!("connections = 4{SET_UP}"));
    let (_server, url) = server(gate);
    let r = run_plan(&with_setup, &url, None);
    assert_passed_but_for_pace(&r, "the run");

    // Without the auth frame every message is refused; without the token there is no connection.
    let no_frame = with_setup.replace(
        r#"on_connect = [{ send = '{"op":"auth","token":"t0ken","id":"{{id}}"}', expect = { pointer = "/op", equals = "authed" } }]"#,
        "",
    );
    let r = run_plan(&no_frame, &url, None);
    assert_eq!(r.status, Status::Failed, "{:?}", r.reason);
    assert!(
        r.metrics.errors.get("rejected").copied().unwrap_or(0) > 0,
        "{:?}",
        r.metrics.errors
    );
    let r = run_plan(SCENARIO, &url, None);
    assert_eq!(r.status, Status::Aborted, "{:?}", r.reason);
    assert!(
        r.reason.as_deref().unwrap_or("").contains("HTTP 401"),
        "{:?}",
        r.reason
    );
}
