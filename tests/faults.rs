//! In-process faults are injected the same way whatever the driver: the same seed and fault settings
//! against a plain HTTP server and a plain WebSocket echo server (neither of them a reference target)
//! give the same iterations hit, the same counts, and one error kind.

mod common;

use std::collections::BTreeMap;

use common::*;
use futures_util::{SinkExt, StreamExt};

/// A WebSocket server that sends every text frame back as it came, on 127.0.0.1 at a port the system
/// picks, on a thread of its own.
fn ws_echo() -> (String, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = runtime();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("ws://{}/echo", listener.local_addr().unwrap()))
                .unwrap();
            // Serves until the test process ends; the runs close their connections.
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                        return;
                    };
                    while let Some(Ok(msg)) = ws.next().await {
                        if msg.is_text() && ws.send(msg).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
    });
    (rx.recv().unwrap(), thread)
}

const FAULTS: &str = r#"
[faults]
failure_rate = 0.2
kinds = ["error", "timeout", "latency", "validation"]
latency = "5ms"
"#;

fn errors(r: &harness::result::RunResult) -> BTreeMap<String, u64> {
    r.metrics.errors.clone()
}

#[test]
fn faults_give_the_same_kinds_and_counts_on_http_and_websocket() {
    let http = serve(delayed(0));
    let (ws, _server) = ws_echo();
    let common = r#"suite = "failure_injection"
timeout = "60s"
iteration_timeout = "300ms"
[load]
iterations = 200
concurrency = 4
"#;
    let http_text = format!(
        "name = \"faults-http\"\n{common}[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:1\"\n{FAULTS}"
    );
    let ws_text = format!(
        "name = \"faults-ws\"\n{common}[target]\nkind = \"websocket\"\nurl = \"ws://127.0.0.1:1/ws\"\n\
         [websocket]\nmode = \"echo\"\nconnections = 4\n{FAULTS}"
    );
    let a = execute(&plan_for(
        &scenario_of(&http_text),
        &http.url,
        None,
        11,
        "f",
    ));
    let b = execute(&plan_for(&scenario_of(&ws_text), &ws, None, 11, "f"));

    let hit = |r: &harness::result::RunResult| r.load.faults.as_ref().unwrap().injected;
    assert_eq!(
        (hit(&a), hit(&b)),
        (40, 40),
        "20% of 200, drawn from seed 11"
    );
    // Latency faults only delay; the other three fail the iteration, as `injected` on both.
    assert_eq!(errors(&a), errors(&b));
    assert_eq!(
        errors(&a).keys().collect::<Vec<_>>(),
        ["injected"],
        "{:?}",
        errors(&a)
    );
    assert_eq!(errors(&a)["injected"], 30, "three kinds in four fail");
    assert_eq!(a.totals.failed, 30);
    assert_eq!(b.totals.failed, 30);
    assert_eq!(
        a.totals.timed_out, 0,
        "an injected timeout is not the target's"
    );
    assert_eq!(b.totals.timed_out, 0);
}
