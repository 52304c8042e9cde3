//! The reference WebSocket server, driven by a plain tokio-tungstenite client (not the harness's own
//! driver): the policy of seed 004 holds, each limit as configured, and the chaos controls and the
//! metrics route work.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use harness::reference::chaos::ChaosSettings;
use harness::reference::ws::{WsConfig, WsDefects};
use harness::reference::{Running, start_ws};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(server: &Running) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(server.url.as_str())
        .await
        .expect("handshake");
    ws
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// The next text frame as JSON; panics after 5 s.
async fn next(ws: &mut Ws) -> Value {
    match next_event(ws).await {
        Event::Json(v) => v,
        other => panic!("expected a frame, got {other:?}"),
    }
}

#[derive(Debug)]
enum Event {
    Json(Value),
    Closed(Option<u16>),
}

async fn next_event(ws: &mut Ws) -> Event {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("nothing arrived within 5s");
        match m {
            Some(Ok(Message::Text(t))) => return Event::Json(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(f))) => return Event::Closed(f.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Event::Closed(None),
        }
    }
}

async fn metrics(server: &Running) -> Value {
    let url = format!(
        "http://{}:{}/metrics",
        server.url.host_str().unwrap(),
        server.url.port().unwrap()
    );
    harness::tls::install_default_provider();
    let body = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn echo_keeps_the_clients_correlation_id_or_gives_one() {
    let server = start_ws(WsConfig::default()).await.unwrap();
    let mut ws = connect(&server).await;
    send(
        &mut ws,
        json!({"type": "echo", "correlation_id": "c-1", "payload": {"n": 1}}),
    )
    .await;
    let reply = next(&mut ws).await;
    assert_eq!(reply["type"], "echo");
    assert_eq!(reply["correlation_id"], "c-1");
    assert_eq!(reply["payload"]["n"], 1);
    send(&mut ws, json!({"type": "echo"})).await;
    let reply = next(&mut ws).await;
    assert!(
        reply["correlation_id"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    // Stopping does not wait for the connection still open.
    tokio::time::timeout(Duration::from_secs(5), server.stop())
        .await
        .expect("stop waited for an open WebSocket")
        .unwrap();
}

#[tokio::test]
async fn the_token_bucket_allows_the_burst_then_names_the_limit() {
    let server = start_ws(WsConfig::default()).await.unwrap();
    let mut ws = connect(&server).await;
    for i in 0..100 {
        send(
            &mut ws,
            json!({"type": "echo", "correlation_id": format!("m{i}")}),
        )
        .await;
    }
    let (mut ok, mut limited) = (0, 0);
    for _ in 0..100 {
        let f = next(&mut ws).await;
        match f["type"].as_str() {
            Some("echo") => ok += 1,
            Some("error") => {
                assert_eq!(f["error"]["code"], "rate_limited");
                let msg = f["error"]["message"].as_str().unwrap();
                assert!(
                    msg.contains("20 messages/s") && msg.contains("burst 40"),
                    "{msg}"
                );
                assert!(f["correlation_id"].as_str().unwrap().starts_with('m'));
                limited += 1;
            }
            _ => panic!("{f}"),
        }
    }
    // 40 from the bucket, and at most a token or two refilled while the 100 went out.
    assert!((40..=42).contains(&ok), "{ok} accepted");
    assert_eq!(ok + limited, 100);
    assert_eq!(metrics(&server).await["rate_limited"], limited);
}

#[tokio::test]
async fn repeated_abuse_is_closed_with_1008() {
    let server = start_ws(WsConfig {
        abuse_limit: 20,
        ..WsConfig::default()
    })
    .await
    .unwrap();
    let mut ws = connect(&server).await;
    for _ in 0..100 {
        if ws
            .send(Message::text(json!({"type": "echo"}).to_string()))
            .await
            .is_err()
        {
            break;
        }
    }
    let mut closed = None;
    for _ in 0..200 {
        if let Event::Closed(code) = next_event(&mut ws).await {
            closed = code;
            break;
        }
    }
    assert_eq!(closed, Some(1008));
    assert_eq!(metrics(&server).await["closed_for_abuse"], 1);
}

fn echo_of_size(size: usize) -> String {
    let empty = json!({"type": "echo", "correlation_id": "big", "payload": ""}).to_string();
    let pad = "x".repeat(size - empty.len());
    let text = json!({"type": "echo", "correlation_id": "big", "payload": pad}).to_string();
    assert_eq!(text.len(), size);
    text
}

#[tokio::test]
async fn messages_up_to_64_kib_pass_and_larger_close_with_1009() {
    let server = start_ws(WsConfig::default()).await.unwrap();
    let mut ws = connect(&server).await;
    for size in [65535, 65536] {
        ws.send(Message::text(echo_of_size(size))).await.unwrap();
        assert_eq!(next(&mut ws).await["type"], "echo", "{size} bytes");
    }
    ws.send(Message::text(echo_of_size(65537))).await.unwrap();
    match next_event(&mut ws).await {
        Event::Closed(code) => assert_eq!(code, Some(u16::from(CloseCode::Size))),
        other => panic!("{other:?}"),
    }
    assert_eq!(metrics(&server).await["closed_too_large"], 1);
}

#[tokio::test]
async fn bad_input_gets_an_error_frame_and_the_connection_lives_on() {
    let server = start_ws(WsConfig::default()).await.unwrap();
    let mut ws = connect(&server).await;
    ws.send(Message::text("{\"type\": \"echo\", "))
        .await
        .unwrap();
    let f = next(&mut ws).await;
    assert_eq!(f["error"]["code"], "malformed_json");
    assert!(
        f["correlation_id"].is_string(),
        "a new id when the client gave none"
    );
    send(&mut ws, json!({"type": "launch", "correlation_id": "u"})).await;
    let f = next(&mut ws).await;
    assert_eq!(
        (&f["error"]["code"], &f["correlation_id"]),
        (&json!("unknown_type"), &json!("u"))
    );
    for bad in ["", "topic", "/a/../b", "/<script>", "/a b"] {
        send(&mut ws, json!({"type": "subscribe", "path": bad})).await;
        assert_eq!(
            next(&mut ws).await["error"]["code"],
            "invalid_path",
            "{bad}"
        );
    }
    send(
        &mut ws,
        json!({"type": "subscribe", "path": "/Agents//A1/"}),
    )
    .await;
    let f = next(&mut ws).await;
    assert_eq!(
        (&f["type"], &f["path"]),
        (&json!("subscribed"), &json!("/agents/a1"))
    );
    send(&mut ws, json!({"type": "echo", "correlation_id": "still"})).await;
    assert_eq!(next(&mut ws).await["correlation_id"], "still");
}

#[tokio::test]
async fn publishes_reach_every_subscriber_of_the_normalised_path() {
    let server = start_ws(WsConfig::default()).await.unwrap();
    let mut subs = Vec::new();
    for path in ["/news", "/NEWS/"] {
        let mut s = connect(&server).await;
        send(&mut s, json!({"type": "subscribe", "path": path})).await;
        assert_eq!(next(&mut s).await["type"], "subscribed");
        subs.push(s);
    }
    let mut publisher = connect(&server).await;
    send(
        &mut publisher,
        json!({"type": "publish", "path": "/news", "correlation_id": "p1", "data": {"seq": 1}}),
    )
    .await;
    let ack = next(&mut publisher).await;
    assert_eq!(
        (&ack["type"], &ack["delivered"]),
        (&json!("published"), &json!(2))
    );
    for s in &mut subs {
        let m = next(s).await;
        assert_eq!(m["type"], "message");
        assert_eq!(m["correlation_id"], "p1");
        assert_eq!(m["data"]["seq"], 1);
    }
}

#[tokio::test]
async fn a_consumer_that_stops_reading_is_disconnected_and_others_are_not_slowed() {
    let server = start_ws(WsConfig {
        send_queue: 16,
        slow_consumer_grace: Duration::from_millis(300),
        rate_per_s: 1000.0,
        burst: 1000,
        ..WsConfig::default()
    })
    .await
    .unwrap();
    let mut slow = connect(&server).await;
    send(&mut slow, json!({"type": "subscribe", "path": "/flood"})).await;
    assert_eq!(next(&mut slow).await["type"], "subscribed");
    // From here on `slow` reads nothing.
    let mut fast = connect(&server).await;
    let mut publisher = connect(&server).await;
    let pad = "x".repeat(32 * 1024);
    let started = Instant::now();
    let mut worst_ack = Duration::ZERO;
    let mut disconnected = false;
    for i in 0..4000 {
        let sent = Instant::now();
        send(
            &mut publisher,
            json!({"type": "publish", "path": "/flood", "data": pad}),
        )
        .await;
        assert_eq!(next(&mut publisher).await["type"], "published");
        send(
            &mut fast,
            json!({"type": "echo", "correlation_id": format!("f{i}")}),
        )
        .await;
        assert_eq!(next(&mut fast).await["type"], "echo");
        worst_ack = worst_ack.max(sent.elapsed());
        if i % 50 == 0 && metrics(&server).await["disconnected_slow"] == 1 {
            disconnected = true;
            break;
        }
    }
    assert!(
        disconnected,
        "still connected after {:?}",
        started.elapsed()
    );
    assert!(
        worst_ack < Duration::from_secs(1),
        "the publisher waited {worst_ack:?} for an acknowledgement"
    );
    let m = metrics(&server).await;
    assert!(m["dropped"].as_u64().unwrap() > 0);
    drop(slow);
}

#[tokio::test]
async fn chaos_drops_deliveries_and_a_down_backend_answers_with_errors() {
    let server = start_ws(WsConfig {
        chaos: ChaosSettings {
            drop_rate: 1.0,
            ..ChaosSettings::default()
        },
        ..WsConfig::default()
    })
    .await
    .unwrap();
    let mut sub = connect(&server).await;
    send(&mut sub, json!({"type": "subscribe", "path": "/x"})).await;
    assert_eq!(next(&mut sub).await["type"], "subscribed");
    let mut publisher = connect(&server).await;
    send(&mut publisher, json!({"type": "publish", "path": "/x"})).await;
    assert_eq!(next(&mut publisher).await["delivered"], 0);

    let base = format!(
        "http://{}:{}",
        server.url.host_str().unwrap(),
        server.url.port().unwrap()
    );
    let down = json!({"down_after_ms": 0.0, "down_for_ms": 60000.0});
    harness::tls::install_default_provider();
    let r = reqwest::Client::new()
        .put(format!("{base}/admin/chaos"))
        .header("content-type", "application/json")
        .body(down.to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    send(
        &mut publisher,
        json!({"type": "echo", "correlation_id": "d"}),
    )
    .await;
    let f = next(&mut publisher).await;
    assert_eq!(
        (&f["error"]["code"], &f["correlation_id"]),
        (&json!("backend_unavailable"), &json!("d"))
    );
}

#[tokio::test]
async fn the_uncorrelated_errors_defect_leaves_error_frames_without_an_id() {
    let server = start_ws(WsConfig {
        defects: WsDefects {
            uncorrelated_errors: true,
            ..WsDefects::default()
        },
        ..WsConfig::default()
    })
    .await
    .unwrap();
    let mut ws = connect(&server).await;
    send(&mut ws, json!({"type": "nope", "correlation_id": "n"})).await;
    let f = next(&mut ws).await;
    assert_eq!(f["type"], "error");
    assert!(f.get("correlation_id").is_none());
    send(&mut ws, json!({"type": "echo", "correlation_id": "e"})).await;
    assert_eq!(next(&mut ws).await["correlation_id"], "e");
}

#[tokio::test]
async fn metrics_count_connections_and_messages() {
    let server = start_ws(WsConfig::default()).await.unwrap();
    let mut ws = connect(&server).await;
    for i in 0..5 {
        send(
            &mut ws,
            json!({"type": "echo", "correlation_id": i.to_string()}),
        )
        .await;
        next(&mut ws).await;
    }
    let m = metrics(&server).await;
    assert_eq!(m["connections_open"], 1);
    assert_eq!(m["messages_received"], 5);
    assert_eq!(m["messages_sent"], 5);
    ws.close(None).await.unwrap();
    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(5);
    while metrics(&server).await["connections_open"] != 0 {
        assert!(
            Instant::now() < deadline,
            "the connection was never counted closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await.unwrap();
}
