//! The slow-consumer probe against a server unlike the reference one: its own protocol (`op`, `id`),
//! and a per-connection outbound queue. One variant bounds that queue: past 16 waiting messages it
//! clears it and queues a close with 1008 — behind the data the consumer never read — and keeps the
//! TCP connection open, waiting for the answer, so no write of the consumer ever fails. The other
//! keeps everything for ever. The two must get different verdicts, with figures that say why.

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::routing::get;
use common::*;
use futures_util::{SinkExt, StreamExt};
use harness::result::RunResult;
use serde_json::{Value, json};
use tokio::sync::Notify;

const QUEUE_BOUND: usize = 16;

#[derive(Default)]
struct Peer {
    queue: Mutex<VecDeque<Message>>,
    ready: Notify,
    evicted: std::sync::atomic::AtomicBool,
}

impl Peer {
    fn push(&self, msg: Message, bounded: bool) {
        use std::sync::atomic::Ordering;
        if self.evicted.load(Ordering::Relaxed) {
            return;
        }
        let mut q = self.queue.lock().unwrap();
        if bounded && q.len() >= QUEUE_BOUND {
            q.clear();
            q.push_back(Message::Close(Some(CloseFrame {
                code: 1008,
                reason: "too slow".into(),
            })));
            self.evicted.store(true, Ordering::Relaxed);
        } else {
            q.push_back(msg);
        }
        drop(q);
        self.ready.notify_one();
    }
}

type Topics = Arc<Mutex<HashMap<String, Vec<Arc<Peer>>>>>;

async fn connection(socket: WebSocket, topics: Topics, bounded: bool) {
    let (mut sink, mut stream) = socket.split();
    let peer = Arc::new(Peer::default());
    let writer = {
        let peer = Arc::clone(&peer);
        tokio::spawn(async move {
            loop {
                let next = peer.queue.lock().unwrap().pop_front();
                match next {
                    Some(msg) => {
                        if sink.send(msg).await.is_err() {
                            return;
                        }
                    }
                    None => peer.ready.notified().await,
                }
            }
        })
    };
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Text(text) = msg else { continue };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let reply = match v["op"].as_str() {
            Some("echo") => json!({"op": "echoed", "id": v["id"]}),
            Some("sub") => {
                let topic = v["topic"].as_str().unwrap_or_default().to_string();
                topics
                    .lock()
                    .unwrap()
                    .entry(topic.clone())
                    .or_default()
                    .push(Arc::clone(&peer));
                json!({"op": "subbed", "id": v["id"], "topic": topic})
            }
            Some("pub") => {
                let topic = v["topic"].as_str().unwrap_or_default();
                let frame = json!({"op": "msg", "topic": topic, "body": v["body"]}).to_string();
                let subs = topics
                    .lock()
                    .unwrap()
                    .get(topic)
                    .cloned()
                    .unwrap_or_default();
                for s in subs {
                    s.push(Message::text(frame.clone()), bounded);
                }
                json!({"op": "ok", "id": v["id"]})
            }
            _ => json!({"op": "err", "id": v["id"]}),
        };
        peer.push(Message::text(reply.to_string()), bounded);
    }
    writer.abort();
}

fn server(bounded: bool) -> (TestServer, String) {
    let topics: Topics = Arc::default();
    let s = serve(
        Router::new()
            .route(
                "/feed",
                get(
                    move |ws: WebSocketUpgrade, State(t): State<Topics>| async move {
                        ws.on_upgrade(move |socket| connection(socket, t, bounded))
                    },
                ),
            )
            .with_state(topics),
    );
    let url = s.url.replace("http://", "ws://") + "/feed";
    (s, url)
}

const SCENARIO: &str = r#"name = "feed_slow_consumer"
suite = "reliability"
timeout = "60s"
iteration_timeout = "2s"

[target]
kind = "websocket"

[websocket]
mode = "echo"
connections = 2

[websocket.protocol]
echo = '{"op":"echo","id":"{{id}}","pad":"{{payload}}"}'
publish = '{"op":"pub","topic":"{{path}}","id":"{{id}}","body":{"mid":"{{id}}","pad":"{{payload}}"}}'
subscribe = '{"op":"sub","topic":"{{path}}","id":"{{id}}"}'
correlation_id = "/id"
rejection = { pointer = "/op", equals = "err" }
subscribed = { pointer = "/op", equals = "subbed" }
delivery = { pointer = "/op", equals = "msg" }
subscribed_path = "/topic"

[load]
model = "open"
rate = "10/s"
duration = "7s"
max_in_flight = 10

[probes.slow_consumer]
after = "1s"
expect_within = "3s"
publishers = 4
publish_rate = "25/s"
payload_size = "60KiB"
others_slowdown = "1s"
"#;

fn run(bounded: bool) -> RunResult {
    let (_server, url) = server(bounded);
    run_plan(SCENARIO, &url, None)
}

fn disconnected(r: &RunResult) -> &harness::result::CheckResult {
    r.checks
        .iter()
        .find(|c| c.name == "slow_consumer.disconnected")
        .unwrap_or_else(|| panic!("{:?}", r.checks))
}

#[test]
fn a_close_behind_unread_data_is_seen_and_a_server_that_keeps_everything_is_not_passed() {
    let closes = run(true);
    let c = disconnected(&closes);
    let report = closes
        .metrics
        .ws
        .as_ref()
        .unwrap()
        .slow_consumer
        .clone()
        .unwrap();
    assert!(c.passed, "{} {report:?}", c.detail);
    assert_passed_but_for_pace(&closes, "the bounded server passes whole");
    assert_eq!(report.seen, "closed", "{report:?}");
    assert_eq!(report.close_code, Some(1008), "{report:?}");
    assert!(
        report.discarded > 0 && report.delivered < report.published,
        "its queue was bounded: {report:?}"
    );
    assert!(
        c.detail.contains("closed with 1008 (too slow)"),
        "{}",
        c.detail
    );

    let keeps = run(false);
    let c = disconnected(&keeps);
    let kept = keeps
        .metrics
        .ws
        .as_ref()
        .unwrap()
        .slow_consumer
        .clone()
        .unwrap();
    assert!(!c.passed, "{} {kept:?}", c.detail);
    let failed: Vec<&str> = keeps
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        failed,
        vec!["slow_consumer.disconnected"],
        "only the disconnect check fails"
    );
    assert_eq!(kept.seen, "still_open", "{kept:?}");
    assert_eq!(
        (kept.discarded, kept.delivered),
        (0, kept.published),
        "everything was kept for it: {kept:?}"
    );
    assert!(c.detail.contains("still connected"), "{}", c.detail);
    eprintln!(
        "bounded: {} of {} delivered, closed {:?}; unbounded: {} of {} delivered",
        report.delivered, report.published, report.close_code, kept.delivered, kept.published
    );
}
