//! A publish/subscribe WebSocket server with its own protocol — `op` instead of `type`, `id` for the
//! correlation id, `topic`, `body.mid` / `body.from` / `body.n` in deliveries — described to the harness
//! in `[websocket.protocol]`. Healthy, it passes whole; frozen for 6 s (it neither reads nor writes,
//! and answers no pings), it shows as latency and reconnects, and nothing acknowledged counts as lost;
//! one that forgets every tenth delivery is caught.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::routing::get;
use common::*;
use harness::result::{RunResult, Status};
use serde_json::{Value, json};
use tokio::sync::mpsc;

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Healthy,
    /// Frozen from 3 s after the first publish, for 6 s.
    Freezes,
    /// Every tenth delivery to a subscriber is dropped.
    Forgets,
    /// Each subscriber has every seventh delivery held back and sent after the next one (at a
    /// position of its own), so subscribers disagree on the order of neighbouring publishes.
    Swaps,
}

struct Hub {
    behaviour: Behaviour,
    topics: HashMap<String, Vec<Subscriber>>,
    first_publish: Option<Instant>,
    delivered: u64,
}

type Shared = Arc<Mutex<Hub>>;

struct Subscriber {
    tx: mpsc::UnboundedSender<String>,
    /// Deliveries so far, and one held back (Swaps).
    count: u64,
    held: Option<String>,
}

impl Subscriber {
    /// Sends `frame`, or (Swaps) holds it back until the next one has gone.
    fn deliver(&mut self, frame: &str, swaps: bool, offset: u64) -> bool {
        self.count += 1;
        if swaps && self.held.is_none() && (self.count + offset).is_multiple_of(7) {
            self.held = Some(frame.to_string());
            return !self.tx.is_closed();
        }
        let ok = self.tx.send(frame.to_string()).is_ok();
        match self.held.take() {
            Some(h) => ok && self.tx.send(h).is_ok(),
            None => ok,
        }
    }
}

impl Hub {
    /// Until when the server is frozen, if it is now.
    fn frozen_until(&self) -> Option<Instant> {
        let start = self.first_publish? + Duration::from_secs(3);
        let end = start + Duration::from_secs(6);
        let now = Instant::now();
        (self.behaviour == Behaviour::Freezes && now >= start && now < end).then_some(end)
    }
}

async fn thaw(hub: &Shared) {
    let until = hub.lock().unwrap().frozen_until();
    if let Some(t) = until {
        tokio::time::sleep_until(t.into()).await;
    }
}

async fn connection(mut socket: WebSocket, hub: Shared) {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    loop {
        thaw(&hub).await;
        tokio::select! {
            out = rx.recv() => {
                let Some(text) = out else { return };
                thaw(&hub).await;
                if socket.send(Message::text(text)).await.is_err() {
                    return;
                }
            }
            inbound = socket.recv() => {
                let Some(Ok(Message::Text(t))) = inbound else {
                    match inbound {
                        Some(Ok(_)) => continue,
                        _ => return,
                    }
                };
                thaw(&hub).await;
                let Ok(v) = serde_json::from_str::<Value>(&t) else {
                    let _ = tx.send(json!({"op": "err", "id": null, "why": "not JSON"}).to_string());
                    continue;
                };
                let topic = v["topic"].as_str().unwrap_or_default().to_string();
                match v["op"].as_str() {
                    Some("sub") => {
                        hub.lock().unwrap().topics.entry(topic.clone()).or_default().push(Subscriber { tx: tx.clone(), count: 0, held: None });
                        let _ = tx.send(json!({"op": "subbed", "id": v["id"], "topic": topic}).to_string());
                    }
                    Some("pub") => {
                        let mut h = hub.lock().unwrap();
                        h.first_publish.get_or_insert_with(Instant::now);
                        let frame = json!({"op": "msg", "topic": topic, "body": v["body"]}).to_string();
                        let behaviour = h.behaviour;
                        let mut delivered = h.delivered;
                        if let Some(subs) = h.topics.get_mut(&topic) {
                            let mut offset = 0;
                            subs.retain_mut(|s| {
                                delivered += 1;
                                offset += 3;
                                if behaviour == Behaviour::Forgets && delivered.is_multiple_of(10) {
                                    return !s.tx.is_closed();
                                }
                                s.deliver(&frame, behaviour == Behaviour::Swaps, offset)
                            });
                        }
                        h.delivered = delivered;
                        let _ = tx.send(json!({"op": "ok", "id": v["id"]}).to_string());
                    }
                    _ => {
                        let _ = tx.send(json!({"op": "err", "id": v["id"], "why": "unknown op"}).to_string());
                    }
                }
            }
        }
    }
}

fn server(behaviour: Behaviour) -> TestServer {
    let hub = Arc::new(Mutex::new(Hub {
        behaviour,
        topics: HashMap::new(),
        first_publish: None,
        delivered: 0,
    }));
    serve(
        Router::new()
            .route(
                "/stream",
                get(
                    |ws: WebSocketUpgrade, State(hub): State<Shared>| async move {
                        ws.on_upgrade(move |socket| connection(socket, hub))
                    },
                ),
            )
            .with_state(hub),
    )
}

const SCENARIO: &str = r#"name = "foreign_pubsub"
suite = "reliability"
timeout = "60s"
iteration_timeout = "10s"

[target]
kind = "websocket"

[websocket]
mode = "publish"
connections = 4
subscribers = 2

[websocket.protocol]
publish = '{"op":"pub","topic":"{{path}}","id":"{{id}}","body":{"mid":"{{id}}","from":"{{publisher}}","n":{{seq}},"pad":"{{payload}}"}}'
subscribe = '{"op":"sub","topic":"{{path}}","id":"{{id}}"}'
correlation_id = "/id"
rejection = { pointer = "/op", equals = "err" }
subscribed = { pointer = "/op", equals = "subbed" }
delivery = { pointer = "/op", equals = "msg" }
delivery_id = "/body/mid"
delivery_publisher = "/body/from"
delivery_seq = "/body/n"
subscribed_path = "/topic"

[load]
model = "open"
rate = "20/s"
duration = "DURATION"
max_in_flight = 40

[thresholds]
"ws.lost" = "== 0"
"ws.duplicated" = "== 0"
"ws.order_disagreements" = "== 0"
"#;

fn run(behaviour: Behaviour, duration: &str) -> RunResult {
    let s = server(behaviour);
    let url = s.url.replace("http://", "ws://") + "/stream";
    run_plan(&SCENARIO.replace("DURATION", duration), &url, None)
}

#[test]
fn a_healthy_foreign_pubsub_server_passes_whole() {
    let r = run(Behaviour::Healthy, "4s");
    assert_passed_but_for_pace(&r, "the run");
    let d = r.metrics.ws.as_ref().unwrap().delivery.as_ref().unwrap();
    assert_eq!((d.acknowledged, d.lost), (80, 0), "{d:?}");
    assert_eq!(
        d.received, 160,
        "two subscribers received every publish: {d:?}"
    );
}

#[test]
fn a_six_second_freeze_of_a_foreign_server_is_not_loss() {
    let r = run(Behaviour::Freezes, "14s");
    let ws = r.metrics.ws.as_ref().unwrap();
    let d = ws.delivery.as_ref().unwrap();
    assert!(
        ws.reconnects >= 2,
        "the silent subscribers were reconnected: {ws:?}"
    );
    assert_eq!(d.lost, 0, "{d:?}");
    assert!(
        r.metrics.latency_ok_ms.unwrap().max >= 3000.0,
        "the freeze shows as latency"
    );
}

#[test]
fn a_foreign_server_that_forgets_deliveries_is_caught() {
    let r = run(Behaviour::Forgets, "4s");
    let d = r.metrics.ws.as_ref().unwrap().delivery.as_ref().unwrap();
    assert_eq!(d.lost, 16, "every tenth of 160 deliveries: {d:?}");
    assert_eq!(r.status, Status::Failed);
}

#[test]
fn a_foreign_server_that_swaps_neighbouring_deliveries_is_caught_with_many_publishers() {
    let r = run(Behaviour::Swaps, "4s");
    let d = r.metrics.ws.as_ref().unwrap().delivery.as_ref().unwrap();
    assert_eq!((d.lost, d.duplicated), (0, 0), "{d:?}");
    assert!(d.order_disagreements >= 10, "{d:?}");
    assert!(
        d.out_of_order < d.order_disagreements,
        "four publishers: most swaps are between two of them, which per-publisher order cannot see: {d:?}"
    );
    eprintln!(
        "swaps: {} disagreements, {} real-time violations, {} out of order (per publisher)",
        d.order_disagreements, d.real_time_violations, d.out_of_order
    );
    assert!(
        d.order_samples[0].contains("subscriber 1 received"),
        "{:?}",
        d.order_samples
    );
    assert_eq!(r.status, Status::Failed);
    assert!(
        r.reason
            .as_deref()
            .unwrap_or("")
            .contains("ws.order_disagreements"),
        "{:?}",
        r.reason
    );
}

/// Two shards of the run, each its own process, merged: their delivery checks add up.
fn run_sharded(behaviour: Behaviour, tag: &str) -> (RunResult, Option<i32>) {
    let s = server(behaviour);
    let url = s.url.replace("http://", "ws://") + "/stream";
    let dir = temp_dir(tag);
    let file = write_scenario(&dir, "foreign_pubsub", &SCENARIO.replace("DURATION", "4s"));
    let children: Vec<_> = (0..2)
        .map(|i| {
            let out = dir.join(format!("shard{i}"));
            let child = harness()
                .args(run_args(&file, &url, &out))
                .args(["--seed", "3", "--shard", &format!("{i}/2")])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            (out, child)
        })
        .collect();
    let shards: Vec<_> = children
        .into_iter()
        .map(|(out, mut c)| {
            c.wait().unwrap();
            out
        })
        .collect();
    let merged = dir.join("merged");
    let o = harness()
        .arg("merge")
        .args(&shards)
        .arg("--out")
        .arg(&merged)
        .output()
        .unwrap();
    let r = harness::result::write::read_json(&merged.join("result.json"))
        .unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    (r, o.status.code())
}

#[test]
fn shards_of_a_run_against_a_foreign_server_merge_their_delivery_checks() {
    let (r, code) = run_sharded(Behaviour::Healthy, "foreign-shards");
    assert_passed_but_for_pace(&r, "the merged run");
    let expected = if r.status == Status::Passed { 0 } else { 1 };
    assert_eq!(code, Some(expected), "{:?}", r.reason);
    let d = r.metrics.ws.as_ref().unwrap().delivery.as_ref().unwrap();
    // One subscriber a shard, each checking its own shard's publishes.
    assert_eq!(
        (d.acknowledged, d.subscribers, d.received, d.lost),
        (80, 2, 80, 0),
        "{d:?}"
    );

    let (r, code) = run_sharded(Behaviour::Forgets, "foreign-shards-forget");
    let d = r.metrics.ws.as_ref().unwrap().delivery.as_ref().unwrap();
    assert_eq!(d.lost, 8, "every tenth of 80 deliveries: {d:?}");
    assert_eq!((r.status, code), (Status::Failed, Some(1)));
    assert_eq!(failed_thresholds(&r), ["ws.lost"]);
}
