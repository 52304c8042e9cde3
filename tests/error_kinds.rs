//! Failures named for what they are, against raw servers that break the protocols on purpose: an
//! HTTP server that answers with something that is not HTTP (`protocol`), a WebSocket server that
//! sends a text frame that is not UTF-8 (`protocol`, and the harness closes with 1007) or announces a
//! frame over the harness's limit (`too_large`, closed with 1009), and one that accepts TCP but never
//! answers the upgrade (`handshake`).

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// A server on its own thread and runtime, running `serve` on every accepted connection (numbered
/// from 0); returns its port.
fn raw_server<F, Fut>(serve: F) -> u16
where
    F: Fn(tokio::net::TcpStream, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = runtime();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap().port()).unwrap();
            let serve = Arc::new(serve);
            for n in 0.. {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(tcp, n));
            }
        });
    });
    rx.recv().unwrap()
}

const HTTP: &str = r#"name = "garbage"
suite = "reliability"
timeout = "20s"
iteration_timeout = "2s"

[target]
kind = "http"
url = "http://127.0.0.1:1"

[load]
iterations = 5
concurrency = 1
"#;

#[test]
fn a_reply_that_is_not_http_is_a_protocol_error_not_a_connect_error() {
    let port = raw_server(|mut tcp, _| async move {
        let mut buf = [0u8; 1024];
        while let Ok(n) = tcp.read(&mut buf).await {
            if n == 0
                || tcp
                    .write_all(b"GARBAGE 200 nonsense\r\n\r\n")
                    .await
                    .is_err()
            {
                return;
            }
        }
    });
    let r = run_plan(HTTP, &format!("http://127.0.0.1:{port}"), None);
    assert_eq!(
        r.metrics.errors.get("protocol"),
        Some(&5),
        "{:?}",
        r.metrics.error_samples
    );
    assert!(!r.metrics.errors.contains_key("connect"));
}

const WS: &str = r#"name = "frames"
suite = "reliability"
timeout = "20s"
iteration_timeout = "2s"

[target]
kind = "websocket"

[websocket]
connections = 1
ping_interval = "0s"

[load]
iterations = 3
concurrency = 1
"#;

/// A WebSocket server whose first connection (the harness's protocol check) is answered properly,
/// and whose others get `bad` (raw bytes of a frame) in answer to their first message; the close code
/// each of those connections then received is kept.
fn breaking_ws(bad: &'static [u8]) -> (u16, Arc<Mutex<Vec<Option<u16>>>>) {
    let closes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&closes);
    let port = raw_server(move |tcp, n| {
        let seen = Arc::clone(&seen);
        async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(text) = msg else {
                    if let Message::Close(frame) = msg
                        && n > 0
                    {
                        seen.lock().unwrap().push(frame.map(|f| u16::from(f.code)));
                    }
                    continue;
                };
                if n == 0 {
                    let _ = ws.send(Message::text(text.as_str())).await;
                } else {
                    let _ = ws.get_mut().write_all(bad).await;
                }
            }
        }
    });
    (port, closes)
}

#[test]
fn a_text_frame_that_is_not_utf8_is_a_protocol_error_and_closed_with_1007() {
    // FIN + text, 3 bytes, not UTF-8.
    let (port, closes) = breaking_ws(&[0x81, 0x03, 0xff, 0xfe, 0xfd]);
    let r = run_plan(WS, &format!("ws://127.0.0.1:{port}/"), None);
    assert_eq!(
        r.metrics.errors.get("protocol"),
        Some(&3),
        "{:?}",
        r.metrics.error_samples
    );
    assert!(
        !r.metrics.errors.contains_key("connect"),
        "{:?}",
        r.metrics.errors
    );
    let closes = closes.lock().unwrap().clone();
    assert!(
        closes.len() >= 3 && closes.iter().all(|c| *c == Some(1007)),
        "each connection given bad text is closed with 1007: {closes:?}"
    );
}

#[test]
fn a_frame_over_the_limit_is_too_large_and_closed_with_1009() {
    // FIN + binary, a 64-bit length of 1 GiB, and no payload.
    let (port, closes) = breaking_ws(&[0x82, 0x7f, 0, 0, 0, 0, 0x40, 0, 0, 0]);
    let r = run_plan(WS, &format!("ws://127.0.0.1:{port}/"), None);
    assert_eq!(
        r.metrics.errors.get("too_large"),
        Some(&3),
        "{:?}",
        r.metrics.error_samples
    );
    let closes = closes.lock().unwrap().clone();
    assert!(
        closes.len() >= 3 && closes.iter().all(|c| *c == Some(1009)),
        "{closes:?}"
    );
}

#[test]
fn an_upgrade_that_never_comes_is_a_handshake_failure() {
    // Accepts TCP, reads the upgrade request, never answers.
    let port = raw_server(|mut tcp, _| async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = tcp.read(&mut buf).await {
            if n == 0 {
                return;
            }
        }
    });
    let text = WS.replace(
        "ping_interval = \"0s\"",
        "ping_interval = \"0s\"\nconnect_timeout = \"300ms\"",
    );
    let dir = temp_dir("no-upgrade");
    let file = write_scenario(&dir, "frames", &text);
    let out = dir.join("out");
    let url = format!("ws://127.0.0.1:{port}/");
    let o = harness()
        .args(run_args(&file, &url, &out))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let r = read_result(&out);
    let reason = r["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("the TCP connection was made, but the WebSocket upgrade"),
        "{reason}"
    );
    // The run waited out the connect timeout, and says so in its duration.
    assert!(
        r["duration_s"].as_f64().unwrap() >= 0.3,
        "{}",
        r["duration_s"]
    );
}
