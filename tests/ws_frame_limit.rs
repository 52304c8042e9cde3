//! A hostile WebSocket server that announces a huge frame and never finishes it cannot make the
//! harness buffer it: the connection's message limit (from the frames the scenario sends, 1 MiB at
//! least, unless `max_message_size` says otherwise) refuses the frame when its header arrives. The
//! server is a raw socket of the test's: a real handshake, then a frame header claiming 15 MiB, ten
//! bytes of it, and silence.

mod common;

use std::time::Duration;

use common::*;
use harness::result::RunResult;
use tokio::io::AsyncWriteExt;

/// Starts the server; returns its `ws://` URL. It runs until the test process ends.
fn announce_and_stall() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    // FIN + text, 64-bit length 15 MiB, then ten bytes of the promised payload.
                    let mut frame = vec![0x81, 127, 0, 0, 0, 0, 0x00, 0xF0, 0x00, 0x00];
                    frame.extend_from_slice(b"xxxxxxxxxx");
                    let raw = ws.get_mut();
                    if raw.write_all(&frame).await.is_err() {
                        return;
                    }
                    // Never more; the harness's own timeouts end the run.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                });
            }
        });
    });
    let addr = rx.recv().unwrap();
    format!("ws://{addr}/ws")
}

fn run_against(url: &str, extra: &str) -> RunResult {
    let dir = temp_dir("frame-limit");
    let file = write_scenario(
        &dir,
        "stall",
        &format!(
            r#"name = "stall"
suite = "reliability"
timeout = "20s"
iteration_timeout = "1s"

[target]
kind = "websocket"
url = "ws://127.0.0.1:1/ws"

[websocket]
mode = "echo"
connections = 2
connect_timeout = "2s"
{extra}

[load]
iterations = 6
concurrency = 2
"#
        ),
    );
    let out = dir.join("out");
    let o = harness().args(run_args(&file, url, &out)).output().unwrap();
    harness::result::write::read_json(&out.join("result.json"))
        .unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)))
}

fn said(r: &RunResult) -> String {
    format!(
        "{:?} {:?} {:?}",
        r.reason, r.metrics.errors, r.metrics.error_samples
    )
}

#[test]
fn a_frame_announced_beyond_the_limit_is_refused_at_its_header_not_buffered() {
    let url = announce_and_stall();
    let r = run_against(&url, "");
    // Refused the moment the header said 15 MiB, against the 1 MiB the scenario's 64-byte frames
    // call for: every iteration fails as too large, none waits for the rest of the frame.
    assert_eq!(r.metrics.errors.get("too_large"), Some(&6), "{}", said(&r));
    assert_eq!(r.metrics.errors.len(), 1, "{}", said(&r));
    let sample = &r.metrics.error_samples["too_large"][0];
    assert!(sample.contains("15728640 > 1048576"), "{sample}");
}

#[test]
fn a_declared_limit_is_the_one_held() {
    let url = announce_and_stall();
    // 16 MiB allows the 15 MiB frame: the harness then waits for it, and the iterations time out
    // instead (the server never sends the rest).
    let r = run_against(&url, "max_message_size = \"16MiB\"");
    assert_eq!(r.metrics.errors.get("timeout"), Some(&6), "{}", said(&r));
    assert!(!r.metrics.errors.contains_key("too_large"), "{}", said(&r));
}
