//! Shards: a run split over processes (`run --shard I/N`) and merged back (`merge`) is the run one
//! process would have made — the same iterations, the same fault choices, the same errors, and a
//! histogram that is the exact sum of the shards'. Against an inventory service written for these
//! tests (JSON items under `/v2/items/{n}`, some slow, some failing with 503), not a reference
//! target.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use axum::Router;
use axum::extract::Path as UrlPath;
use axum::http::StatusCode;
use axum::routing::get;
use common::*;
use harness::metrics::histogram::{Hist, decode, merge};
use harness::result::RunResult;

/// Items whose number is a multiple of 17 are out of stock (503); every tenth takes 15 ms.
fn inventory() -> Router {
    Router::new().route(
        "/v2/items/{n}",
        get(|UrlPath(n): UrlPath<u64>| async move {
            if n % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            if n % 17 == 0 {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "{\"error\":\"restocking\"}".to_string(),
                );
            }
            (StatusCode::OK, format!("{{\"item\":{n},\"stock\":3}}"))
        }),
    )
}

fn scenario(dir: &Path, name: &str, load: &str) -> PathBuf {
    write_scenario(
        dir,
        name,
        &format!(
            r#"name = "{name}"
suite = "failure_injection"
timeout = "60s"
iteration_timeout = "2s"

[target]
kind = "http"
url = "http://127.0.0.1:1"

[target.request]
path = "/v2/items/{{{{iteration}}}}"

[load]
{load}

[faults]
failure_rate = 0.1
kinds = ["error", "latency"]
latency = "3ms"

[thresholds]
"success_rate" = ">= 0.8"
"latency.p99" = "< 30s"
"#
        ),
    )
}

fn read(dir: &Path) -> RunResult {
    harness::result::write::read_json(&dir.join("result.json")).expect("a result was written")
}

fn hist(text: &Option<String>) -> Hist {
    decode(text.as_deref().expect("a histogram")).unwrap()
}

/// Runs the shards of `file` side by side, each its own process, and returns their folders. Each
/// must pass, but an open load's shard may fail on keeping to its schedule alone: four harness
/// processes and the target share two cores here.
fn run_shards(file: &Path, url: &str, dir: &Path, n: u32, extra: &[&str]) -> Vec<PathBuf> {
    let children: Vec<(PathBuf, std::process::Child)> = (0..n)
        .map(|i| {
            let out = dir.join(format!("shard{i}"));
            let child = harness()
                .args(run_args(file, url, &out))
                .args(["--seed", "5", "--shard", &format!("{i}/{n}")])
                .args(extra)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (out, child)
        })
        .collect();
    children
        .into_iter()
        .map(|(out, child)| {
            let o = child.wait_with_output().unwrap();
            match o.status.code() {
                Some(0) => {}
                Some(1) => {
                    let r = read(&out);
                    let failed = failed_thresholds(&r);
                    assert!(
                        failed.iter().all(|m| m.starts_with("schedule.")),
                        "shard {}: {:?}",
                        out.display(),
                        r.reason
                    );
                }
                _ => panic!("shard {}: {}", out.display(), stderr(&o)),
            }
            out
        })
        .collect()
}

fn merge_cmd(shards: &[PathBuf], out: &Path, extra: &[&str]) -> Output {
    harness()
        .arg("merge")
        .args(shards)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn four_closed_shards_merge_into_the_run_one_process_makes() {
    let server = serve(inventory());
    let dir = temp_dir("shards-closed");
    let file = scenario(
        &dir,
        "inventory_closed",
        "iterations = 400\nconcurrency = 8",
    );
    let whole_out = dir.join("whole");
    let o = harness()
        .args(run_args(&file, &server.url, &whole_out))
        .args(["--seed", "5"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let whole = read(&whole_out);

    let shards = run_shards(&file, &server.url, &dir, 4, &[]);
    let parts: Vec<RunResult> = shards.iter().map(|d| read(d)).collect();
    for (i, p) in parts.iter().enumerate() {
        assert_eq!((p.shard.index, p.shard.count), (i as u32, 4));
        assert_eq!(p.load.planned_iterations, 100, "every 4th iteration");
        assert_eq!(p.load.concurrency, 2, "a quarter of the workers");
        assert!(
            p.timeline.iter().any(|r| r.hdr.is_some()),
            "shards keep their seconds' histograms"
        );
    }
    let merged_out = dir.join("merged");
    let o = merge_cmd(&shards, &merged_out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    for file in ["result.json", "report.html", "junit.xml", "summary.md"] {
        assert!(merged_out.join(file).exists(), "{file}");
    }
    assert_matches_schema(&read_result(&merged_out));
    let merged = read(&merged_out);

    // Counts: the sum of the shards, and what the single run counted.
    let sum = |f: fn(&RunResult) -> u64| parts.iter().map(f).sum::<u64>();
    assert_eq!(merged.totals.iterations, sum(|r| r.totals.iterations));
    assert_eq!(merged.totals.iterations, 400);
    assert_eq!(merged.totals.failed, sum(|r| r.totals.failed));
    assert_eq!(merged.load.planned_iterations, 400);
    assert_eq!(merged.load.concurrency, 8);
    // The seed stream: the shards together injected the faults the single run did, and met the
    // same out-of-stock items.
    let injected = |r: &RunResult| r.load.faults.as_ref().unwrap().injected;
    assert_eq!(injected(&merged), injected(&whole));
    assert_eq!(injected(&merged), 40, "10% of 400");
    assert_eq!(merged.metrics.errors, whole.metrics.errors);
    assert_eq!(merged.totals.failed, whole.totals.failed);
    assert!(
        merged.metrics.errors.contains_key("http_5xx"),
        "{:?}",
        merged.metrics.errors
    );

    // The merged histogram is the shards' added bucket by bucket, and its p99 that of all samples.
    let mut added = hist(&parts[0].metrics.latency_hdr);
    for p in &parts[1..] {
        merge(&mut added, &hist(&p.metrics.latency_hdr));
    }
    let merged_hist = hist(&merged.metrics.latency_hdr);
    assert!(merged_hist == added, "bucket by bucket");
    assert_eq!(merged_hist.len(), 400);
    let summary = merged.metrics.latency_ms.as_ref().unwrap();
    assert_eq!(summary.p99, None, "400 samples are too few for a p99");
    assert_eq!(summary.max, added.max() as f64 / 1000.0);
    assert_eq!(
        summary.p90,
        Some(added.value_at_quantile(0.90) as f64 / 1000.0),
        "a percentile of every sample, not an average of the shards'"
    );
    let ok = |r: &RunResult| r.metrics.latency_ok_ms.as_ref().map_or(0, |l| l.count);
    assert_eq!(ok(&merged), sum(ok));
    assert_eq!(ok(&merged), merged.totals.succeeded);
    // Timelines merged by second hold every iteration.
    let rows: u64 = merged.timeline.iter().map(|r| r.succeeded + r.failed).sum();
    assert_eq!(rows, 400);
    assert!(merged.timeline.iter().all(|r| r.hdr.is_none()));
    let m = merged.merged_from.as_ref().unwrap();
    assert_eq!(
        (m.shards, m.indices.clone(), m.partial),
        (4, vec![0, 1, 2, 3], false)
    );
    assert_eq!(merged.status, whole.status);

    // Shards that do not belong together are refused, each problem said.
    let bad = dir.join("bad");
    let copy = |from: &Path, name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let to = bad.join(name);
        std::fs::create_dir_all(&to).unwrap();
        let mut v = read_result(from);
        edit(&mut v);
        std::fs::write(to.join("result.json"), v.to_string()).unwrap();
        to
    };
    let other_seed = copy(&shards[1], "seed", &|v| {
        v["seed"] = 6.into();
        v["seed_text"] = "6".into();
    });
    let o = merge_cmd(
        &[shards[0].clone(), other_seed, shards[0].clone()],
        &dir.join("refused"),
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("the seed is 6, but"), "{err}");
    assert!(err.contains("shard 0 is given twice"), "{err}");
    assert!(err.contains("shards 2, 3 of 4 are missing"), "{err}");
    assert!(!dir.join("refused").join("result.json").exists());

    let aborted = copy(&shards[3], "aborted", &|v| {
        v["status"] = "aborted".into();
        v["reason"] = "interrupted before the run finished".into();
    });
    let three = [shards[0].clone(), shards[1].clone(), aborted.clone()];
    let o = merge_cmd(&three, &dir.join("refused2"), &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("shard 3 was aborted (interrupted"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("shard 2 of 4 is missing"),
        "{}",
        stderr(&o)
    );
    let partial_out = dir.join("partial");
    let o = merge_cmd(&three, &partial_out, &["--allow-partial"]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "a partial merge is incomplete: {}",
        stderr(&o)
    );
    let partial = read(&partial_out);
    assert!(partial.merged_from.as_ref().unwrap().partial);
    assert_eq!(partial.totals.iterations, 300);
    assert!(
        partial
            .reason
            .as_deref()
            .unwrap()
            .contains("shard 2 of 4 is missing"),
        "{:?}",
        partial.reason
    );
}

#[test]
fn open_shards_keep_the_whole_rate_and_start_together() {
    let server = serve(inventory());
    let dir = temp_dir("shards-open");
    let file = scenario(
        &dir,
        "inventory_open",
        "model = \"open\"\nrate = \"200/s\"\nduration = \"2s\"\nmax_in_flight = 40",
    );
    let start = std::time::SystemTime::now() + Duration::from_secs(3);
    let start_text = humantime::format_rfc3339_millis(start).to_string();
    let shards = run_shards(&file, &server.url, &dir, 4, &["--start-at", &start_text]);
    let parts: Vec<RunResult> = shards.iter().map(|d| read(d)).collect();
    for p in &parts {
        assert_eq!(p.load.rate_per_s, Some(50.0), "a quarter of the rate");
        let began = humantime::parse_rfc3339_weak(p.load_started_at.as_deref().unwrap()).unwrap();
        assert!(
            began >= start - Duration::from_millis(1),
            "the load waited for --start-at"
        );
    }
    let merged_out = dir.join("merged");
    let o = merge_cmd(&shards, &merged_out, &["--json"]);
    let merged: RunResult = serde_json::from_str(&stdout(&o)).expect("--json prints the result");
    let expected = if failed_thresholds(&merged).is_empty() {
        0
    } else {
        1
    };
    assert_eq!(o.status.code(), Some(expected), "{}", stderr(&o));
    assert!(
        failed_thresholds(&merged)
            .iter()
            .all(|m| m.starts_with("schedule.")),
        "{:?}",
        merged.reason
    );
    assert_eq!(merged.load.rate_per_s, Some(200.0));
    assert_eq!(merged.load.planned_iterations, 400);
    assert_eq!(merged.totals.iterations, 400);
    let schedule = merged.metrics.schedule.as_ref().unwrap();
    assert_eq!(schedule.intended_rate_per_s, 200.0);
    assert_eq!(
        schedule.late,
        parts
            .iter()
            .map(|p| p.metrics.schedule.as_ref().unwrap().late)
            .sum::<u64>()
    );
    let service = decode(merged.metrics.service_time_hdr.as_deref().unwrap()).unwrap();
    assert_eq!(service.len(), 400);
}

#[test]
fn the_shard_comes_from_the_command_line_or_a_kubernetes_index() {
    let server = serve(inventory());
    let dir = temp_dir("shards-cli");
    let file = scenario(&dir, "inventory_cli", "iterations = 8\nconcurrency = 2");
    let out = dir.join("k8s");
    let o = harness()
        .args(run_args(&file, &server.url, &out))
        .args(["--seed", "5", "--shards", "4"])
        .env("JOB_COMPLETION_INDEX", "2")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = read(&out);
    assert_eq!((r.shard.index, r.shard.count), (2, 4));
    assert_eq!(r.totals.iterations, 2, "iterations 2 and 6");

    let refused = |args: &[&str], env: Option<&str>, says: &str| {
        let mut cmd = harness();
        cmd.args(run_args(&file, &server.url, &dir.join("never")))
            .args(args)
            .env_remove("JOB_COMPLETION_INDEX");
        if let Some(i) = env {
            cmd.env("JOB_COMPLETION_INDEX", i);
        }
        let o = cmd.output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    };
    refused(
        &["--seed", "5", "--shard", "4/4"],
        None,
        "the index must be below 4",
    );
    refused(&["--seed", "5", "--shard", "two"], None, "is not I/N");
    refused(
        &["--seed", "5", "--shards", "4"],
        None,
        "set JOB_COMPLETION_INDEX",
    );
    refused(
        &["--seed", "5", "--shards", "4"],
        Some("7"),
        "the index must be below 4",
    );
    refused(&["--shard", "1/4"], None, "must share a seed");
    refused(
        &["--seed", "5", "--start-at", "tomorrow"],
        None,
        "is not an RFC 3339 time",
    );
    assert!(!dir.join("never").join("result.json").exists());
}

#[test]
fn websocket_shards_check_delivery_each_of_their_own_and_add_up() {
    let (mut server, url) = serve_reference_with("ws", &[]);
    let dir = temp_dir("shards-ws");
    let file = write_scenario(
        &dir,
        "ws_shards",
        r#"name = "ws_shards"
suite = "performance"
timeout = "60s"
iteration_timeout = "2s"

[target]
kind = "websocket"
url = "ws://127.0.0.1:1/ws"

[websocket]
mode = "publish"
connections = 4
subscribers = 2

[load]
model = "open"
rate = "40/s"
duration = "2s"
max_in_flight = 20

[thresholds]
"ws.delivery_rate" = ">= 0.99"
"ws.unexpected" = "== 0"
success_rate = ">= 0.99"
"#,
    );
    let shards = run_shards(&file, &url, &dir, 2, &[]);
    let parts: Vec<RunResult> = shards.iter().map(|d| read(d)).collect();
    let merged_out = dir.join("merged");
    let o = merge_cmd(&shards, &merged_out, &[]);
    let _ = server.kill();
    let _ = server.wait();
    let merged = read(&merged_out);
    assert!(
        failed_thresholds(&merged)
            .iter()
            .all(|m| m.starts_with("schedule.")),
        "{:?} {}",
        merged.reason,
        stderr(&o)
    );
    let ws = merged.metrics.ws.as_ref().unwrap();
    let d = ws.delivery.as_ref().unwrap();
    let each = |f: fn(&harness::result::ws::DeliveryReport) -> u64| {
        parts
            .iter()
            .map(|p| f(p.metrics.ws.as_ref().unwrap().delivery.as_ref().unwrap()))
            .sum::<u64>()
    };
    assert_eq!(d.subscribers, 2, "one subscriber each");
    assert_eq!(d.published, 80);
    assert_eq!(d.expected, each(|d| d.expected));
    assert_eq!((d.lost, d.unexpected), (0, 0), "{d:?}");
    assert_eq!(
        ws.connections,
        parts
            .iter()
            .map(|p| p.metrics.ws.as_ref().unwrap().connections)
            .sum::<u64>()
    );
    assert_eq!(ws.delivery_rate, Some(1.0));
}

#[test]
fn a_threshold_every_shard_meets_can_fail_on_the_merged_run() {
    let server = serve(inventory());
    let dir = temp_dir("shards-judged");
    // 12 of items 0..200 are out of stock: 3 a shard, within "<= 5"; 12 together, beyond it.
    let text = std::fs::read_to_string(scenario(
        &dir,
        "inventory_judged",
        "iterations = 200\nconcurrency = 4",
    ))
    .unwrap()
    .replace(
        "[thresholds]\n",
        "[thresholds]\n\"errors.http_5xx\" = \"<= 5\"\n",
    );
    let file = write_scenario(&dir, "inventory_judged", &text);
    let shards = run_shards(&file, &server.url, &dir, 4, &[]);
    for d in &shards {
        assert_eq!(
            read(d).metrics.errors.get("http_5xx"),
            Some(&3),
            "{}",
            d.display()
        );
    }
    let merged_out = dir.join("merged");
    let o = merge_cmd(&shards, &merged_out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let merged = read(&merged_out);
    assert_eq!(failed_thresholds(&merged), ["errors.http_5xx"]);
    assert!(
        merged
            .reason
            .as_deref()
            .unwrap()
            .contains("errors.http_5xx <= 5 (was 12)"),
        "{:?}",
        merged.reason
    );
}
