//! Memory a run will hold, estimated from its plan before it starts, against a limit: a run that
//! swaps or is killed by the kernel measures the machine, not the target, and loses what it
//! measured. The costs per unit are what the development machine measured, rounded up; the
//! estimate names its largest part, so the refusal can say which setting to lower.
//!
//! Measured 2026-12-04, release build, peak resident set (`/usr/bin/time -f %M harness run …`), one
//! `GET /` a iteration against nginx (`return 200`) in a process of its own: 1 HTTP worker 15.0 MiB,
//! 1,000 workers 51.3 MiB, 3,000 workers 119.0 MiB (35 KiB a worker: its task, its connection and
//! hyper's buffers); 10,000 workers against a target that never answers 287 MiB. Before workers
//! shared recorders and the HTTP/1.1 client left reqwest (2026-12-03): 389–436 KiB a worker. 1
//! WebSocket connection 16.2 MiB, 1,000 connections 39.9 MiB (24 KiB each, 64-byte frames).

use super::{RunPlan, TargetPlan};

/// Resident memory per HTTP worker: its task, its keep-alive connection and the client's buffers
/// (measured 35 KiB at 1,000 and 3,000 workers, 28 KiB at 10,000 with a request each in flight).
pub const PER_HTTP_WORKER: u64 = 40 * 1024;
/// Per recorder the workers share (a few per thread, whatever the concurrency): its histograms, by
/// step and stage. An allowance, not measured on its own: the 389–436 KiB a worker cost when each
/// had a recorder, less what a worker costs now, rounded up.
pub const PER_RECORDER: u64 = 400 * 1024;
/// Per WebSocket connection beside its frames: the 8 KiB read buffer, the write buffer, the
/// connection's task and bookkeeping (measured 24 KiB).
pub const PER_WS_CONNECTION: u64 = 32 * 1024;
/// The harness with one worker: the runtime, the binary's data, the platform's certificates
/// (measured 16.4 MiB).
pub const BASE: u64 = 20 * 1024 * 1024;

/// What a plan holds at its peak, part by part: `(what, the setting that sets it, bytes)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub parts: Vec<(&'static str, &'static str, u64)>,
}

impl Estimate {
    pub fn total(&self) -> u64 {
        self.parts.iter().map(|(_, _, n)| n).sum()
    }

    /// The part that costs most, beside the harness's own base.
    pub fn largest(&self) -> Option<&(&'static str, &'static str, u64)> {
        self.parts.iter().skip(1).max_by_key(|(_, _, n)| *n)
    }
}

/// The estimate for `plan`.
pub fn estimate(plan: &RunPlan) -> Estimate {
    let mut parts = vec![("the harness itself", "", BASE)];
    match &plan.target {
        TargetPlan::WebSocket(ws) => {
            let connections = u64::from(ws.connections) + u64::from(ws.subscribers);
            // Each connection may hold a frame it sends and one it receives.
            let frames = 2 * ws.payload_size as u64;
            parts.push((
                "WebSocket connections",
                "websocket.connections",
                connections * (PER_WS_CONNECTION + frames),
            ));
            if let Some(p) = &plan.probes.slow_consumer {
                // Each publisher's frames in flight, and the stalled reader's backlog the server
                // may push back.
                parts.push((
                    "slow-consumer publishers",
                    "probes.slow_consumer.publishers",
                    u64::from(p.publishers) * (PER_WS_CONNECTION + 4 * p.payload_size as u64),
                ));
            }
            if let Some(p) = &plan.probes.rate_limit {
                parts.push((
                    "the rate-limit probe's burst",
                    "probes.rate_limit.burst_size",
                    u64::from(p.burst_size) * (frames / 2 + 256),
                ));
            }
        }
        _ => parts.push((
            "HTTP workers",
            if plan.load.model().is_scheduled() {
                "load.max_in_flight"
            } else {
                "load.concurrency"
            },
            plan.load.workers() as u64 * PER_HTTP_WORKER,
        )),
    }
    parts.push((
        "the recorders",
        "",
        crate::engine::pool::recorder_shards(plan.load.workers()) as u64 * PER_RECORDER,
    ));
    if matches!(plan.endpoint, super::Endpoint::Start(_)) {
        // The reference target in this process holds the other end of every connection: an allowance
        // of half the client side, not a measurement.
        let clients: u64 = parts.iter().skip(1).map(|(_, _, n)| n).sum();
        parts.push(("the reference target's side", "", clients / 2));
    }
    Estimate { parts }
}

/// The default limit: half the machine's memory, where the system says how much there is.
pub fn default_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024 / 2)
}

/// Why a plan cannot run within its memory limit.
#[derive(Debug, thiserror::Error)]
#[error(
    "this run would hold about {need} MiB ({parts}), more than the {limit} MiB it may use \
     (--memory-limit, default half the machine's memory). Lower {setting}, or raise \
     --memory-limit if the machine has the memory"
)]
pub struct TooLarge {
    pub need: u64,
    pub limit: u64,
    pub parts: String,
    pub setting: String,
}

fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1024 * 1024)
}

/// Refuses `plan` when its estimate exceeds `limit` bytes (none: nothing is refused).
pub fn check(plan: &RunPlan, limit: Option<u64>) -> Result<Estimate, TooLarge> {
    let e = estimate(plan);
    let Some(limit) = limit else {
        return Ok(e);
    };
    if e.total() <= limit {
        return Ok(e);
    }
    let parts = e
        .parts
        .iter()
        .map(|(what, _, n)| format!("{what} {} MiB", mib(*n)))
        .collect::<Vec<_>>()
        .join(", ");
    let setting = e
        .largest()
        .map(|(_, s, _)| s.to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "the load".into());
    Err(TooLarge {
        need: mib(e.total()),
        limit: mib(limit),
        parts,
        setting,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(load: &str) -> RunPlan {
        crate::plan::of_text(&format!(
            "name = \"m\"\nsuite = \"concurrency\"\ntimeout = \"10s\"\n[target]\nkind = \
             \"http\"\nurl = \"http://127.0.0.1:9\"\n[load]\n{load}\n"
        ))
    }

    #[test]
    fn workers_cost_what_was_measured_and_the_refusal_names_the_setting() {
        let small = plan("iterations = 100\nconcurrency = 10");
        let shards = crate::engine::pool::recorder_shards(10) as u64;
        assert_eq!(
            estimate(&small).total(),
            BASE + 10 * PER_HTTP_WORKER + shards * PER_RECORDER
        );
        assert!(check(&small, Some(1 << 30)).is_ok());
        assert!(check(&small, None).is_ok());
        // 10,000 workers: about 400 MiB (measured 287 MiB), within half of a small machine.
        let wide = plan("iterations = 100000\nconcurrency = 10000");
        assert!(check(&wide, Some(1 << 30)).is_ok());
        let e = check(&wide, Some(256 << 20)).unwrap_err();
        assert_eq!(e.setting, "load.concurrency");
        assert!(e.need > 390 && e.need < 600 && e.limit == 256, "{e}");
        let open = plan(
            "model = \"open\"\nrate = \"50000/s\"\nduration = \"10s\"\nmax_in_flight = 100000",
        );
        let e = check(&open, Some(1 << 30)).unwrap_err();
        assert_eq!(e.setting, "load.max_in_flight");
        assert!(e.to_string().contains("--memory-limit"));
    }
}
