//! Runs with `[[faults.network]]`: the fault proxy in front of the reference WebSocket server and of a
//! plain HTTP server, fault windows that open and close during the load, recovery measured after them;
//! and `harness proxy` on its own.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use harness::reference::ws::WsConfig;
use harness::scenario::Embedded;

/// WS_CHAOS_RECOVERY_STANDARD shortened to 14 s and edited by `edit`, against a reference WebSocket
/// server of its own.
fn chaos_run(edit: impl FnOnce(String) -> String) -> harness::result::RunResult {
    let rt = runtime();
    let server = rt
        .block_on(harness::reference::start_ws(WsConfig::default()))
        .unwrap();
    let url = server.url.to_string();
    let text = edit(
        builtin("WS_CHAOS_RECOVERY_STANDARD").replace("duration = \"40s\"", "duration = \"14s\""),
    );
    let r = std::thread::spawn(move || run_plan(&text, &url, Some(Embedded::Websocket)))
        .join()
        .unwrap();
    rt.block_on(server.stop()).unwrap();
    r
}

#[test]
fn a_five_second_outage_recovers_within_the_backoff_and_loses_nothing_acknowledged() {
    let r = chaos_run(|t| {
        t.replace("from = \"10s\"", "from = \"3s\"")
            .replace("until = \"20s\"", "until = \"8s\"")
    });

    assert_passed_but_for_pace(&r, "the run");
    let w = &r.metrics.recovery.as_ref().unwrap().windows[0];
    assert_eq!((w.from_s, w.until_s), (3.0, 8.0));
    // Every connection was cut at 3 s and is retried at 100 ms doubling to 5 s: the first success
    // comes within the longest backoff after the window (plus a handshake).
    let first = w.time_to_first_success_s.unwrap();
    assert!(first <= 5.5, "first success {first}s after the window");
    let back = w.time_to_recover_s.unwrap();
    assert!(
        back >= first && back <= 6.5,
        "recovered {back}s after the window"
    );
    assert!(w.lost > 200, "the publishes of the outage failed: {w:?}");
    // Timeline rows go by when iterations ended: a publish acknowledged just as the cut came may
    // land in the window's first second.
    assert!(w.during.unwrap().success_rate < 0.02, "{w:?}");
    // The second of the cut may hold a few publishes that failed as the connections dropped.
    assert!(w.before.unwrap().success_rate >= 0.98, "{w:?}");
    assert_eq!(w.messages_lost, Some(0));

    let ws = r.metrics.ws.as_ref().unwrap();
    let d = ws.delivery.as_ref().unwrap();
    assert_eq!(d.lost, 0, "{d:?}");
    assert!(d.received > 0 && d.expected == d.received, "{d:?}");
    assert!(
        ws.reconnects >= 12,
        "10 connections and 2 subscribers came back: {ws:?}"
    );
    let reconnect = ws.reconnect_ms.as_ref().unwrap();
    assert!(
        reconnect.min >= 4000.0,
        "cut at 3 s, back after 8 s: {reconnect:?}"
    );
    assert!(r.metrics.errors.get("connect").copied().unwrap_or(0) > 0);
    assert!(r.notes.iter().any(|n| n.contains("fault proxy")));

    let page = harness::report::Exporter::render(&harness::report::html::Html, &r).unwrap();
    assert!(page.contains("id=\"faults\"") && page.contains("down from 3s until 8s"));
}

#[test]
fn a_latency_window_shows_in_the_timeline_and_passes() {
    let http = serve(delayed(0));
    let r = run_plan(
        r#"name = "latency_window"
           suite = "failure_injection"
           timeout = "30s"
           [target]
           kind = "http"
           url = "http://127.0.0.1:1"
           [load]
           model = "open"
           rate = "20/s"
           duration = "6s"
           max_in_flight = 20
           [[faults.network]]
           toxic = "latency"
           latency = "150ms"
           direction = "downstream"
           from = "2s"
           until = "4s"
           [thresholds]
           "recovery.time" = "< 2s"
        "#,
        &http.url,
        None,
    );
    assert_passed_but_for_pace(&r, "the run");
    let p50 = |t: u64| {
        r.timeline
            .iter()
            .find(|row| row.t_s == t)
            .and_then(|row| row.p50_ms)
            .unwrap()
    };
    assert!(p50(1) < 50.0, "before: {}", p50(1));
    assert!(p50(3) >= 150.0, "during: {}", p50(3));
    assert!(p50(5) < 50.0, "after: {}", p50(5));
    let w = &r.metrics.recovery.as_ref().unwrap().windows[0];
    assert_eq!(w.lost, 0, "slow, not failed");
    assert!(w.messages_lost.is_none(), "no messages over HTTP");
}

#[test]
fn the_proxy_runs_on_its_own() {
    let http = serve(delayed(0));
    let upstream = http.url.trim_start_matches("http://").to_string();
    let mut proxy = harness()
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &upstream,
            "--toxic",
            "latency=200ms",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    // Kept open while the proxy runs, so its output never meets a closed pipe.
    let mut out = BufReader::new(proxy.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    let addr = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let took = rt.block_on(async {
        let started = Instant::now();
        harness::tls::install_default_provider();
        let body = reqwest::get(format!("http://{addr}/"))
            .await
            .map_err(|e| format!("{e:?} {:?}", std::error::Error::source(&e)))
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "ok");
        started.elapsed()
    });
    let _ = proxy.kill();
    let _ = proxy.wait();
    drop(out);
    // 200 ms on the request and 200 ms on the answer.
    assert!(took >= Duration::from_millis(400), "{took:?}");

    let refused = |upstream: &str, toxic: &[&str], expected: &str| {
        let mut args = vec!["proxy", "--listen", "127.0.0.1:0", "--upstream", upstream];
        args.extend_from_slice(toxic);
        let o = run_harness(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(expected), "{}", stderr(&o));
    };
    refused(
        &upstream,
        &["--toxic", "latency=1s,rate=2"],
        "rate: a latency toxic has no `rate`",
    );
    refused("10.1.2.3:80", &[], "not a loopback address");
}

#[test]
fn a_six_second_freeze_is_latency_and_a_reconnect_not_loss() {
    // Everything from the server is held 6 s from 3 s on (as if it froze) and then delivered; the
    // subscribers hear nothing for longer than the harness waits (5 s), and are reconnected.
    let r = chaos_run(|t| {
        t.replace("iteration_timeout = \"2s\"", "iteration_timeout = \"8s\"")
            .replace(
                "toxic = \"down\"\nfrom = \"10s\"\nuntil = \"20s\"",
                "toxic = \"latency\"\nlatency = \"6s\"\ndirection = \"downstream\"\nfrom = \"3s\"\nuntil = \"4s\"",
            )
            .replace("\"recovery.time\" = \"< 30s\"", "")
    });
    let ws = r.metrics.ws.as_ref().unwrap();
    let d = ws.delivery.as_ref().unwrap();
    assert!(
        ws.reconnects >= 2,
        "the subscribers were given up on: {ws:?}"
    );
    assert_eq!(d.lost, 0, "a freeze loses nothing: {d:?}");
    assert!(
        d.not_owed > 0,
        "what was published while they heard nothing was not owed to them: {d:?}"
    );
    assert!(r.metrics.latency_ok_ms.unwrap().max >= 5000.0);
}
