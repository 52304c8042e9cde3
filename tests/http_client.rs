//! The HTTP/1.1 client against servers written by hand, unlike the reference targets: one that closes
//! every connection after its answer (`Connection: close`), one that speaks HTTP/1.0 and ends its
//! body by closing, one that keeps connections alive and sends its body in chunks, one that closes
//! kept connections without saying so, and a broken one that announces more body than it sends.
//! Every healthy answer is read whole (a rule checks a field of the body) and the run passes; no
//! closed connection is used again, a live one is; every request says what the scenario says, once
//! (the scenario's own `Content-Type` and `Host` are not doubled by the client's); the broken body is
//! a `protocol` error and nothing else.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Framing {
    /// HTTP/1.1, `Content-Length`, `Connection: close`, and the socket closed after the answer.
    CloseEach,
    /// HTTP/1.0: no length, the body ends when the server closes.
    Http10,
    /// HTTP/1.1 keep-alive, the body in three chunks.
    Chunked,
    /// HTTP/1.1 with `Content-Length` and no `Connection: close`, and the socket closed after the
    /// answer all the same: a kept connection is dead by the time the next request goes out on it.
    CloseSilently,
    /// Broken: announces a longer body than it sends, then closes.
    CutOff,
}

/// What the server saw: every request head, and how many connections carried a request (the run's
/// check that the target is up opens one that carries none).
#[derive(Default)]
struct Seen {
    heads: Mutex<Vec<String>>,
    connections: AtomicU64,
}

const BODY: &str = r#"{"status":"ok","n":1}"#;

fn answer(framing: Framing) -> Vec<u8> {
    match framing {
        Framing::CloseSilently => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}",
            BODY.len()
        )
        .into_bytes(),
        Framing::CutOff => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}",
            BODY.len() + 100
        )
        .into_bytes(),
        Framing::CloseEach => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
            BODY.len()
        )
        .into_bytes(),
        Framing::Http10 => {
            format!("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{BODY}").into_bytes()
        }
        Framing::Chunked => {
            let (a, rest) = BODY.split_at(5);
            let (b, c) = rest.split_at(7);
            let mut out =
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                    .to_vec();
            for part in [a, b, c] {
                out.extend_from_slice(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes());
            }
            out.extend_from_slice(b"0\r\n\r\n");
            out
        }
    }
}

/// Reads one request (head, then a body of its `Content-Length`) from `buf` + `tcp`; `None` at the
/// end of the connection.
async fn read_request(tcp: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let mut chunk = [0u8; 4096];
                let n = tcp.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..end + 4 + length);
            return Some(head);
        }
        let mut chunk = [0u8; 4096];
        let n = tcp.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn server(framing: Framing) -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let kept = Arc::clone(&seen);
    std::thread::spawn(move || {
        runtime().block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap().port()).unwrap();
            while let Ok((mut tcp, _)) = listener.accept().await {
                let seen = Arc::clone(&kept);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut first = true;
                    while let Some(head) = read_request(&mut tcp, &mut buf).await {
                        if std::mem::take(&mut first) {
                            seen.connections.fetch_add(1, Ordering::Relaxed);
                        }
                        seen.heads.lock().unwrap().push(head);
                        if tcp.write_all(&answer(framing)).await.is_err() {
                            return;
                        }
                        if framing != Framing::Chunked {
                            let _ = tcp.shutdown().await;
                            return;
                        }
                    }
                });
            }
        });
    });
    (format!("http://127.0.0.1:{}", rx.recv().unwrap()), seen)
}

const PROCEDURE: &str = r#"name = "FRAMES"

[[steps]]
id = "submit"
method = "POST"
path = "/v1/submissions"
headers = { "Content-Type" = "application/vnd.frames+json", "X-Trace" = "t-{{iteration}}" }
body = { item = "a" }

[[steps]]
id = "read"
path = "/v1/submissions/1?fields=status"

[[rules]]
id = "SUBMITTED"
severity = "critical"
step = "submit"
check = { pointer = "/status", equals = "ok" }

[[rules]]
id = "READ"
severity = "critical"
step = "read"
check = { pointer = "/n", equals = 1 }
"#;

const ITERATIONS: u64 = 20;
const WORKERS: u64 = 2;

fn run(framing: Framing) -> (harness::result::RunResult, Arc<Seen>, String) {
    let (url, seen) = server(framing);
    let (_dir, target) = handoff_target("http-client", "FRAMES", PROCEDURE);
    let text = format!(
        r#"name = "frames"
suite = "reliability"
timeout = "30s"
iteration_timeout = "5s"
{target}
[load]
iterations = {ITERATIONS}
concurrency = {WORKERS}
[thresholds]
success_rate = ">= 1.0"
"#
    );
    (run_plan(&text, &url, None), seen, url)
}

#[test]
fn every_answer_is_read_whole_however_it_is_framed_and_closed_connections_are_not_reused() {
    for framing in [Framing::CloseEach, Framing::Http10, Framing::Chunked] {
        let (r, seen, _) = run(framing);
        assert_eq!(
            r.totals.succeeded, ITERATIONS,
            "{framing:?}: {:?}",
            r.metrics.error_samples
        );
        assert_eq!(r.status, harness::result::Status::Passed, "{framing:?}");
        let requests = seen.heads.lock().unwrap().len() as u64;
        assert_eq!(requests, 2 * ITERATIONS, "{framing:?}: each request once");
        let connections = seen.connections.load(Ordering::Relaxed);
        match framing {
            Framing::Chunked => assert!(
                connections <= WORKERS,
                "{framing:?}: live connections carry the load ({connections} opened)"
            ),
            _ => assert_eq!(
                connections, requests,
                "{framing:?}: a connection the server closed is never written to again"
            ),
        }
    }
}

/// One `GET /v1/submissions/1` per iteration, every one expected to succeed.
fn single_get(iterations: u64) -> String {
    format!(
        r#"name = "single_get"
suite = "reliability"
timeout = "30s"
iteration_timeout = "5s"
[target]
kind = "http"
url = "http://127.0.0.1:1"
[target.request]
path = "/v1/submissions/1"
[load]
iterations = {iterations}
concurrency = {WORKERS}
[thresholds]
success_rate = ">= 1.0"
"#
    )
}

#[test]
fn an_idempotent_request_on_a_connection_the_server_closed_unsaid_goes_again_on_a_new_one() {
    let (url, seen) = server(Framing::CloseSilently);
    let text = single_get(200);
    let r = run_plan(&text, &url, None);
    // Without the second try, a quarter of these failed as `connect` (measured 23-27% with reqwest
    // and with this client before it): the kept connection was written to as the server closed it.
    assert_eq!(r.totals.succeeded, 200, "{:?}", r.metrics.error_samples);
    assert_eq!(seen.heads.lock().unwrap().len(), 200, "each answered once");
}

#[test]
fn a_body_cut_short_is_a_protocol_error_of_its_own_and_nothing_else() {
    let (url, _) = server(Framing::CutOff);
    let r = run_plan(&single_get(10), &url, None);
    assert_eq!(r.totals.failed, 10);
    assert_eq!(
        r.metrics.errors.keys().collect::<Vec<_>>(),
        ["protocol"],
        "{:?}",
        r.metrics.error_samples
    );
    let sample = &r.metrics.error_samples["protocol"][0];
    assert!(
        sample.contains("response body cut off after 21 bytes"),
        "{sample}"
    );
}

#[test]
fn every_request_carries_the_scenarios_headers_once() {
    let (r, seen, url) = run(Framing::Chunked);
    assert_eq!(
        r.totals.succeeded, ITERATIONS,
        "{:?}",
        r.metrics.error_samples
    );
    let host = url.trim_start_matches("http://");
    let heads = seen.heads.lock().unwrap();
    let count = |head: &str, name: &str| {
        head.lines()
            .skip(1)
            .filter(|l| {
                l.split_once(':')
                    .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name))
            })
            .count()
    };
    let value = |head: &str, name: &str| {
        head.lines()
            .skip(1)
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    let submits: Vec<&String> = heads
        .iter()
        .filter(|h| h.starts_with("POST /v1/submissions HTTP/1.1"))
        .collect();
    assert_eq!(submits.len() as u64, ITERATIONS, "{heads:#?}");
    for head in &submits {
        assert_eq!(count(head, "content-type"), 1, "{head}");
        assert_eq!(value(head, "content-type"), "application/vnd.frames+json");
        assert_eq!(count(head, "host"), 1, "{head}");
        assert_eq!(value(head, "host"), host);
        assert_eq!(
            value(head, "content-length"),
            r#"{"item":"a"}"#.len().to_string()
        );
        assert!(value(head, "user-agent").starts_with("harness/"), "{head}");
        assert_eq!(count(head, "accept"), 1, "{head}");
        assert!(value(head, "x-trace").starts_with("t-"), "{head}");
    }
    let reads = heads
        .iter()
        .filter(|h| h.starts_with("GET /v1/submissions/1?fields=status HTTP/1.1"))
        .count() as u64;
    assert_eq!(reads, ITERATIONS, "the query goes with the path");
}
