//! What the benchmarks share: CPU time read from /proc (Linux), for the process and per thread name;
//! timing a piece of work; medians; resident memory; a plan from scenario text.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Instant;

/// A multi-threaded runtime, as `harness run` uses.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// Clock ticks per second of the CPU times in /proc.
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// `(name, user + system CPU seconds)` from a /proc stat file.
fn stat_cpu(stat: &str, ticks: f64) -> Option<(String, f64)> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let cpu = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some((stat[open + 1..close].to_string(), cpu / ticks))
}

/// CPU seconds (user + system) of every thread of this process.
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("Linux /proc");
    stat_cpu(&stat, clock_ticks()).map_or(0.0, |(_, cpu)| cpu)
}

/// CPU seconds per thread group: threads are grouped by the first of `prefixes` their name starts
/// with, or under "other".
pub fn cpu_by_thread_group(prefixes: &[&str]) -> BTreeMap<String, f64> {
    let ticks = clock_ticks();
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let Some((name, cpu)) = stat_cpu(&stat, ticks) else {
            continue;
        };
        let group = prefixes
            .iter()
            .find(|p| name.starts_with(*p))
            .map_or("other", |p| p);
        *out.entry(group.to_string()).or_insert(0.0) += cpu;
    }
    out
}

/// A plan for a scenario given as TOML text, against `url`.
pub fn plan(
    text: &str,
    url: &url::Url,
    embedded: Option<harness::scenario::Embedded>,
) -> harness::engine::RunPlan {
    plan_tls(text, url, embedded, harness::tls::TlsSettings::default())
}

/// [`plan`], with TLS settings (a test CA) as the command line would give them.
pub fn plan_tls(
    text: &str,
    url: &url::Url,
    embedded: Option<harness::scenario::Embedded>,
    tls: harness::tls::TlsSettings,
) -> harness::engine::RunPlan {
    let dir = std::env::temp_dir().join(format!("harness-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let path = dir.join("bench.toml");
    std::fs::write(&path, text).expect("the scenario is written");
    let scenario = harness::scenario::Library::open(Some(&dir))
        .and_then(|l| l.load(path.to_str().unwrap_or_default()))
        .unwrap_or_else(|e| panic!("the benchmark's scenario is valid: {e}"));
    let overrides = harness::plan::Overrides {
        target: Some(url.clone()),
        embedded,
        seed: Some(1),
        run_id: Some(format!("bench{}", std::process::id())),
        tls,
        ..Default::default()
    };
    harness::plan::build(&scenario, overrides)
        .unwrap_or_else(|e| panic!("the benchmark's plan resolves: {e}"))
}

/// `(wall seconds, CPU seconds of this process)` spent in `f`.
pub fn measure(f: impl FnOnce()) -> (f64, f64) {
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    f();
    (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0)
}

/// `(median, lowest, highest)` of `v` (not empty).
pub fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// One round of a bare loop and the harness doing the same `work` units: `(wall, CPU)` seconds each.
pub struct Pair {
    pub bare: (f64, f64),
    pub harness: (f64, f64),
}

/// Runs `rounds` pairs back to back, the order alternating, so that a machine whose speed drifts (a
/// shared host) affects both sides of a pair alike; each pair's ratio is then a measurement.
pub fn paired_rounds(
    rounds: usize,
    mut bare: impl FnMut() -> (f64, f64),
    mut harness: impl FnMut() -> (f64, f64),
) -> Vec<Pair> {
    (0..rounds)
        .map(|round| {
            if round % 2 == 0 {
                let bare = bare();
                Pair {
                    bare,
                    harness: harness(),
                }
            } else {
                let harness = harness();
                Pair {
                    bare: bare(),
                    harness,
                }
            }
        })
        .collect()
}

/// Prints each side's median rate and rate per CPU-second (`unit` per second), then the harness's
/// share of the bare loop's, as the median of the pairs' ratios with their range. `label` names
/// the bare loop.
pub fn print_shares(pairs: &[Pair], work: f64, unit: &str, label: &str, extra: [&str; 2]) {
    let side = |f: fn(&Pair) -> (f64, f64)| {
        (
            median(pairs.iter().map(|p| work / f(p).0).collect()).0,
            median(pairs.iter().map(|p| work / f(p).1).collect()).0,
        )
    };
    let (bare_rate, bare_eff) = side(|p| p.bare);
    let (h_rate, h_eff) = side(|p| p.harness);
    println!(
        "{label:<22} {bare_rate:>10.0} {unit}/s {bare_eff:>10.0} {unit}/CPU-s  {}(medians of {} rounds)",
        extra[0],
        pairs.len()
    );
    let line = format!(
        "{:<22} {h_rate:>10.0} {unit}/s {h_eff:>10.0} {unit}/CPU-s  {}",
        "harness engine", extra[1]
    );
    println!("{}", line.trim_end());
    let (rate, rate_lo, rate_hi) = median(pairs.iter().map(|p| p.bare.0 / p.harness.0).collect());
    let (eff, eff_lo, eff_hi) = median(pairs.iter().map(|p| p.bare.1 / p.harness.1).collect());
    println!(
        "harness / bare, median of paired rounds: {:.1}% of the throughput (range {:.1}–{:.1}%), \
         {:.1}% of the {unit} per CPU-second (range {:.1}–{:.1}%)",
        100.0 * rate,
        100.0 * rate_lo,
        100.0 * rate_hi,
        100.0 * eff,
        100.0 * eff_lo,
        100.0 * eff_hi
    );
}

/// Runs one side alone `rounds` times (`BENCH_ONLY=bare` or `harness`, for a profiler), printing
/// each round's rate.
pub fn one_side(
    only: &str,
    rounds: usize,
    work: f64,
    unit: &str,
    mut bare: impl FnMut() -> (f64, f64),
    mut harness: impl FnMut() -> (f64, f64),
) {
    for _ in 0..rounds {
        let (wall, cpu) = if only == "bare" { bare() } else { harness() };
        println!(
            "{only}: {:.0} {unit}/s, {:.0} {unit}/CPU-s",
            work / wall,
            work / cpu
        );
    }
}

/// Resident memory of this process, in MiB.
pub fn resident_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Starts this benchmark binary again as its server (`BENCH_ROLE=server`), which prints its address
/// and stops when its stdin closes; returns the child and the address.
pub fn spawn_server() -> (std::process::Child, String) {
    spawn_role("server")
}

/// [`spawn_server`] for another role (`BENCH_ROLE=role`).
pub fn spawn_role(role: &str) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut server = Command::new(std::env::current_exe().expect("own path"))
        .env("BENCH_ROLE", role)
        .stdout(Stdio::piped())
        .stdin(Stdio::piped())
        .spawn()
        .expect("the server child starts");
    let mut line = String::new();
    BufReader::new(server.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("the server prints its address");
    (server, line.trim().to_string())
}

/// In the server child: waits until the parent closes stdin.
pub async fn stdin_closed() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        let _ = std::io::stdin().read_line(&mut sink);
    })
    .await;
}
