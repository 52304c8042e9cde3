//! What the benchmarks share: CPU time read from /proc (Linux), for the process and per thread name.

#![allow(dead_code)]

use std::collections::BTreeMap;

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
    let dir = std::env::temp_dir().join(format!("harness-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let path = dir.join("bench.toml");
    std::fs::write(&path, text).expect("the scenario is written");
    let scenario = harness::scenario::Library::open(Some(&dir))
        .and_then(|l| l.load(path.to_str().unwrap_or_default()))
        .unwrap_or_else(|e| panic!("the benchmark's scenario is valid: {e}"));
    harness::engine::RunPlan {
        scenario,
        url: url.clone(),
        embedded,
        seed: 1,
        run_id: format!("bench{}", std::process::id()),
        allow_remote: false,
    }
}
