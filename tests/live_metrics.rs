//! `--metrics-listen`: scraped while the run goes on, the counters grow; scraped once it has ended,
//! they are result.json's figures. Against a search service written for this test (answers under
//! `/search?q=`, every fifth query refused with 429 and some slow), not a reference target.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::get;
use common::*;
use harness::metrics::histogram::decode;
use harness::result::RunResult;

#[derive(serde::Deserialize)]
struct Q {
    q: u64,
}

fn search() -> Router {
    Router::new().route(
        "/search",
        get(|Query(Q { q }): Query<Q>| async move {
            if q % 5 == 4 {
                return (StatusCode::TOO_MANY_REQUESTS, "slow down".to_string());
            }
            tokio::time::sleep(Duration::from_millis(if q % 3 == 0 { 30 } else { 2 })).await;
            (StatusCode::OK, format!("{{\"hits\":[{q}]}}"))
        }),
    )
}

/// One GET of `/metrics` over a plain socket: the body, or None while nothing answers.
fn scrape(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    Some(body.to_string())
}

/// The sum of the series `name` whose labels contain `label` (all of them when it is empty).
fn value(text: &str, name: &str, label: &str) -> Option<f64> {
    let mut found = None;
    for l in text.lines().filter(|l| l.starts_with(&format!("{name}{{"))) {
        if l.contains(label) {
            let v: f64 = l.rsplit(' ').next()?.parse().ok()?;
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// What a run of `args` (after `run`) showed: the iterations counted by each scrape while it ran,
/// the scrape once it had ended, and its result. The run is ended with Ctrl-C during its linger,
/// and must exit as its status says.
fn run_scraped(args: &[&str], out: &std::path::Path) -> (Vec<f64>, String, RunResult) {
    let mut child = harness()
        .arg("run")
        .args(args)
        .arg("--out")
        .arg(out)
        .args([
            "--quiet",
            "--metrics-listen",
            "127.0.0.1:0",
            "--metrics-linger",
            "60s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr_lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = stderr_lines
            .next()
            .expect("the metrics address is said first")
            .unwrap();
        if let Some(rest) = line.strip_prefix("live metrics at http://") {
            break rest.trim_end_matches("/metrics").to_string();
        }
    };
    // The stdout's last line, the folder, comes once result.json is written.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let folder = out.display().to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.trim() == folder {
                let _ = done_tx.send(());
            }
        }
    });
    // While it runs: a scrape every 200 ms, for at most a minute.
    let mut seen = Vec::new();
    for _ in 0..300 {
        if done_rx.try_recv().is_ok() {
            break;
        }
        if let Some(text) = scrape(&addr)
            && value(&text, "harness_run_finished", "").is_some_and(|v| v == 0.0)
        {
            seen.push(value(&text, "harness_iterations_total", "").unwrap_or(0.0));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let r: RunResult = harness::result::write::read_json(&out.join("result.json")).unwrap();
    let text = scrape(&addr).expect("served while it lingers");
    // Ctrl-C ends the linger; the exit code is the run's.
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let code = child.wait().unwrap().code();
    let expected = match r.status {
        harness::result::Status::Passed => 0,
        harness::result::Status::Failed => 1,
        harness::result::Status::Aborted => 3,
    };
    assert_eq!(code, Some(expected));
    (seen, text, r)
}

#[test]
fn scrapes_grow_during_the_run_and_end_as_result_json() {
    let server = serve(search());
    let dir = temp_dir("live");
    let file = write_scenario(
        &dir,
        "search",
        r#"name = "search"
suite = "performance"
timeout = "60s"
iteration_timeout = "2s"

[target]
kind = "http"
url = "http://127.0.0.1:1"

[target.request]
path = "/search?q={{iteration}}"

[load]
model = "open"
rate = "50/s"
duration = "4s"
"#,
    );
    let (seen, text, r) = run_scraped(
        &[file.to_str().unwrap(), "--target", &server.url],
        &dir.join("out"),
    );
    let growing: Vec<_> = seen.windows(2).filter(|w| w[1] > w[0]).collect();
    assert!(
        growing.len() >= 3,
        "the counters grew while the run went on: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[1] >= w[0]),
        "never fell: {seen:?}"
    );

    // Ended (the folder is printed), still served for the linger: result.json's figures.
    let get = |name: &str, label: &str| value(&text, name, label).unwrap_or(0.0);
    assert_eq!(get("harness_run_finished", ""), 1.0);
    assert_eq!(
        get("harness_iterations_total", "outcome=\"succeeded\""),
        r.totals.succeeded as f64
    );
    assert_eq!(
        get("harness_iterations_total", "outcome=\"failed\""),
        r.totals.failed as f64
    );
    assert!(r.totals.failed >= 30, "every fifth refused: {:?}", r.totals);
    for (kind, n) in &r.metrics.errors {
        let label = format!("kind=\"{kind}\"");
        assert_eq!(get("harness_errors_total", &label), *n as f64, "{kind}");
    }
    let hist = decode(r.metrics.latency_hdr.as_deref().unwrap()).unwrap();
    assert_eq!(
        get("harness_iteration_duration_seconds_count", ""),
        hist.len() as f64
    );
    let late = r.metrics.schedule.as_ref().map_or(0, |s| s.late);
    assert_eq!(get("harness_late_starts_total", ""), late as f64);
    let status = format!(
        "status=\"{}\"",
        serde_json::to_value(r.status).unwrap().as_str().unwrap()
    );
    assert_eq!(get("harness_run_status", &status), 1.0);
    assert!(text.contains(&format!("run_id=\"{}\"", r.run_id)));
}

#[test]
fn a_port_in_use_is_refused_before_anything_runs() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = temp_dir("live-taken").join("out");
    let o = harness()
        .args([
            "run",
            "RELIABILITY_STANDARD",
            "--quiet",
            "--metrics-listen",
            &addr,
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!out.exists(), "nothing was run, no folder made");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--metrics-listen"), "{}", stderr(&o));
}

#[test]
fn websocket_and_delivery_figures_end_as_result_json() {
    let (mut server, url) = serve_reference_with("ws", &[]);
    let dir = temp_dir("live-ws");
    let file = write_scenario(
        &dir,
        "WS_LATENCY_DELIVERY_STANDARD",
        &builtin("WS_LATENCY_DELIVERY_STANDARD").replace("duration = \"30s\"", "duration = \"3s\""),
    );
    let (_, text, r) = run_scraped(
        &[file.to_str().unwrap(), "--target", &url],
        &dir.join("out"),
    );
    let _ = server.kill();
    let _ = server.wait();
    // The result holds the WebSocket settings it ran with, in the schema's shape.
    assert_matches_schema(&serde_json::to_value(&r).unwrap());
    let held = r.target.websocket.as_ref().unwrap();
    assert_eq!(
        (held.mode.as_str(), held.connections, held.subscribers),
        ("publish", 20, 2)
    );
    let get = |name: &str, label: &str| value(&text, name, label).unwrap_or(-1.0);
    let ws = r.metrics.ws.as_ref().unwrap();
    assert_eq!(
        get("harness_ws_connections_total", ""),
        ws.connections as f64
    );
    assert_eq!(
        get("harness_ws_messages_sent_total", ""),
        ws.messages_sent as f64
    );
    assert_eq!(
        get("harness_ws_messages_received_total", ""),
        ws.messages_received as f64
    );
    let d = ws.delivery.as_ref().unwrap();
    assert!(d.published > 200, "{d:?}");
    for (state, n) in [
        ("published", d.published),
        ("received", d.received),
        ("lost", d.lost),
        ("duplicated", d.duplicated),
    ] {
        let label = format!("state=\"{state}\"");
        assert_eq!(
            get("harness_ws_delivery_messages", &label),
            n as f64,
            "{state}"
        );
    }
    for c in &r.checks {
        let label = format!("check=\"{}\"", c.name);
        let want = if c.passed { 1.0 } else { 0.0 };
        assert_eq!(get("harness_check_passed", &label), want, "{}", c.name);
    }
}
