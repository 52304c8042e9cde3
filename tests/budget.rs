//! A run ends within its budget plus its grace and writes its result, whatever the target does. Here
//! the target accepts every connection and never answers, and the load is 10,000 workers: each holds
//! a connection and a request in flight until its iteration times out, so the run is at its largest
//! when the budget runs out. What the child harness process held at its peak is read from the kernel
//! when it exits (`wait4`), and bounded generously: the point is that memory no longer grows by
//! hundreds of kilobytes a worker (4.35 GB at 10,000 before workers shared their recorders and the
//! HTTP/1.1 client dropped reqwest's pool).

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

const WORKERS: u64 = 10_000;
const BUDGET_S: f64 = 5.0;
const ITERATION_TIMEOUT_S: f64 = 2.0;

/// Peak resident memory allowed to the harness process, in MiB: twice what was measured (252 MiB in
/// the debug build the tests run, 287 MiB in a release build, 2026-12-04).
const RSS_BOUND_MIB: f64 = 600.0;

/// Accepts every connection and keeps it open without reading a byte, until the runtime is dropped.
fn silent_target(rt: &tokio::runtime::Runtime) -> String {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    rt.spawn(async move {
        let mut held = Vec::new();
        loop {
            match listener.accept().await {
                Ok((stream, _)) => held.push(stream),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    });
    format!("http://{addr}/")
}

#[test]
fn ten_thousand_workers_against_a_target_that_never_answers_stop_on_time_and_write_their_result() {
    // This process holds the target's end of every connection, the harness child its own.
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("the open-files limit");
    let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard);
    let workers = WORKERS.min(hard.saturating_sub(500));
    if workers < WORKERS {
        eprintln!(
            "open-files hard limit {hard} (soft was {soft}): running {workers} workers, not {WORKERS}"
        );
    }
    let rt = runtime();
    let url = silent_target(&rt);
    let dir = temp_dir("budget-silent");
    let file = write_scenario(
        &dir,
        "silent",
        &format!(
            r#"name = "silent"
suite = "reliability"
timeout = "{BUDGET_S}s"
iteration_timeout = "{ITERATION_TIMEOUT_S}s"
[target]
kind = "http"
url = "http://127.0.0.1:1/"
[load]
model = "closed"
iterations = 1000000
concurrency = {workers}
"#
        ),
    );
    let out = dir.join("out");
    let started = Instant::now();
    #[expect(
        clippy::zombie_processes,
        reason = "reaped by wait4 below, which also reports its peak memory"
    )]
    let child = harness()
        .args(run_args(&file, &url, &out))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the harness starts");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills in; the pid is this test's own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
    let wall = started.elapsed().as_secs_f64();
    let rss_mib = usage.ru_maxrss as f64 / 1024.0;
    drop(rt);

    assert!(libc::WIFEXITED(status), "the harness exited by itself");
    assert_eq!(
        libc::WEXITSTATUS(status),
        3,
        "a run cut short by its budget exits 3 (wall {wall:.1}s)"
    );
    let r = read_result(&out);
    assert_matches_schema(&r);
    assert_eq!(r["status"], "aborted");
    assert!(
        r["reason"].as_str().unwrap_or_default().contains("budget"),
        "{}",
        r["reason"]
    );
    let totals = &r["totals"];
    assert_eq!(totals["succeeded"], 0);
    // Every failure a timeout: no connection refused for want of a descriptor on either side.
    assert!(totals["timed_out"].as_u64().unwrap_or(0) > 0, "{totals}");
    assert_eq!(totals["failed"], totals["timed_out"], "{totals}");
    // The run's own clock: the budget, then at most the grace for what was in flight (the iteration
    // timeout here), with room for a loaded machine.
    let duration = r["duration_s"].as_f64().unwrap_or(f64::MAX);
    assert!(
        duration <= BUDGET_S + ITERATION_TIMEOUT_S + 5.0,
        "the run took {duration:.1}s on a {BUDGET_S}s budget"
    );
    assert!(
        rss_mib < RSS_BOUND_MIB,
        "the harness held {rss_mib:.0} MiB at its peak with {workers} workers"
    );
    eprintln!("{workers} workers: {duration:.1}s, peak {rss_mib:.0} MiB");
}
