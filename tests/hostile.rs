//! Hostile text from a scenario and from a target reaches no report as markup: a WebSocket server
//! answers every frame with HTML, a Markdown image, emphasis, a table pipe and a right-to-left
//! override (so the run stops on a protocol mismatch whose reason quotes the frame), and the
//! scenario's description carries a script. summary.md, junit.xml, report.html and the terminal
//! must show all of it as text.

mod common;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::routing::get;
use common::*;

const FRAME: &str = "{\"op\":\"<img src=x onerror=alert(1)>\",\"note\":\"![pixel](http://127.0.0.1:9/p.png) **loud** | cut \u{202e}evil\"}";

async fn hostile(mut socket: WebSocket) {
    while let Some(Ok(msg)) = socket.recv().await {
        if matches!(msg, Message::Text(_)) && socket.send(Message::text(FRAME)).await.is_err() {
            return;
        }
    }
}

#[test]
fn hostile_text_is_escaped_in_every_report_and_on_the_terminal() {
    let server = serve(Router::new().route(
        "/ws",
        get(|ws: WebSocketUpgrade| async move { ws.on_upgrade(hostile) }),
    ));
    let url = server.url.replace("http://", "ws://") + "/ws";
    let dir = temp_dir("hostile");
    let file = write_scenario(
        &dir,
        "hostile",
        r#"name = "hostile"
description = "<script>alert('d')</script> [click](http://127.0.0.1:9/) _em_"
suite = "reliability"
timeout = "20s"
iteration_timeout = "1s"

[target]
kind = "websocket"

[load]
iterations = 5
concurrency = 1
"#,
    );
    let out = dir.join("out");
    let o = harness()
        .args(run_args(&file, &url, &out))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    let reason = read_result(&out)["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("onerror"),
        "the reason quotes the frame: {reason}"
    );

    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    for raw in ["<img", "![pixel](", "**loud** | cut", "\u{202e}"] {
        assert!(!md.contains(raw), "summary.md carries {raw:?}:\n{md}");
    }
    assert!(md.contains("&lt;img src=x onerror=alert(1)&gt;"), "{md}");
    assert!(
        md.contains("!\\[pixel\\](http://127.0.0.1:9/p.png) \\*\\*loud\\*\\* \\| cut"),
        "{md}"
    );

    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for raw in ["<img src=x", "<script>alert"] {
        assert!(!html.contains(raw), "report.html carries {raw:?}");
    }
    assert!(html.contains("&lt;script&gt;alert"));

    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(!junit.contains("<img src=x"), "{junit}");

    let terminal = stdout(&o) + &stderr(&o);
    assert!(
        !terminal.contains('\u{202e}') && !terminal.contains('\u{1b}'),
        "{terminal}"
    );
}
