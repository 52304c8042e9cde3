//! Open files a run needs, against what the process may open. A run past the limit does not fail
//! cleanly: connects and accepts start failing with EMFILE halfway through the load, and the errors
//! look like the target's. So the soft limit is raised to the hard one before the run, and a plan
//! that would still need more is refused before anything runs, with the figures and how to raise
//! the limit.

use super::{Endpoint, RunPlan, TargetPlan};
use crate::kinds::HttpVersion;

/// What the process holds whatever the load: standard streams, the runtime's event queues, the
/// result, journal and report files, the CPU sampler, DNS, the metrics listener.
const BASE: u64 = 64;

/// What a plan needs, part by part.
#[derive(Debug, Clone, PartialEq)]
pub struct Need {
    pub parts: Vec<(&'static str, u64)>,
}

impl Need {
    pub fn total(&self) -> u64 {
        self.parts.iter().map(|(_, n)| n).sum()
    }
}

/// The open files `plan` needs at its peak: one per client connection, the server's end of each
/// when the reference target runs in this process, and both ends of the fault proxy's.
pub fn need(plan: &RunPlan) -> Need {
    let load = plan.load.concurrency() as u64;
    let clients = match &plan.target {
        TargetPlan::WebSocket(ws) => {
            let probe = plan
                .probes
                .slow_consumer
                .as_ref()
                .map_or(0, |p| u64::from(p.publishers) + 1);
            u64::from(ws.connections) + u64::from(ws.subscribers) + probe + 2
        }
        // One connection per request in flight, or the HTTP/2 connections the streams share.
        _ if plan.net.http == HttpVersion::Http2 => plan.net.http2_connections as u64,
        _ => load,
    };
    let mut parts = vec![
        ("the harness itself", BASE),
        ("client connections", clients),
    ];
    if matches!(plan.endpoint, Endpoint::Start(_)) {
        parts.push(("the reference target's ends of them", clients + 1));
    }
    if !plan.faults.network.is_empty() {
        parts.push(("the fault proxy's two ends of each", 2 * clients + 1));
    }
    Need { parts }
}

/// Why a plan cannot run here.
#[derive(Debug, thiserror::Error)]
#[error(
    "this run needs about {need} open files at once ({parts}), and this process may open {limit} \
     (its hard limit). Raise it before running, e.g. `ulimit -n {suggest}` in the shell (a hard \
     limit above the system's needs root: /etc/security/limits.conf, or LimitNOFILE= for a \
     service, or --ulimit nofile={suggest} for a container), or lower the run's concurrency, \
     max_in_flight or connections"
)]
pub struct TooMany {
    pub need: u64,
    pub limit: u64,
    pub parts: String,
    pub suggest: u64,
}

/// Raises the soft limit on open files as far as the hard one allows (at least to what `plan`
/// needs), and refuses a plan that needs more than that. Where the platform has no such limit,
/// nothing is refused.
pub fn ensure(plan: &RunPlan) -> Result<Need, TooMany> {
    let need = need(plan);
    let total = need.total();
    let Ok((_, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) else {
        return Ok(need);
    };
    // Raise to the hard limit, so the margin for what the estimate leaves out is as wide as it can
    // be. A limit that cannot be raised stays as it is, and is what is judged.
    let limit = rlimit::increase_nofile_limit(hard).unwrap_or_else(|_| {
        rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(hard, |(soft, _)| soft)
    });
    if total <= limit {
        return Ok(need);
    }
    let parts = need
        .parts
        .iter()
        .map(|(what, n)| format!("{what} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(TooMany {
        need: total,
        limit,
        parts,
        suggest: (total + total / 4).next_power_of_two(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::of_text as plan;

    const HTTP: &str = "name = \"d\"\nsuite = \"concurrency\"\ntimeout = \"10s\"\n[target]\nkind = \
                        \"http\"\nurl = \"http://127.0.0.1:9\"\n[load]\niterations = 100000\n";

    #[test]
    fn each_connection_counts_and_an_embedded_target_counts_twice() {
        let n = need(&plan(&format!("{HTTP}concurrency = 5000\n")));
        assert_eq!(n.total(), BASE + 5000);
        let embedded = need(&plan(
            "name = \"d\"\nsuite = \"reliability\"\ntimeout = \"10s\"\n[target]\nkind = \
             \"handoff\"\nprocedure = \"PHASE_TRANSITION_STANDARD\"\n[load]\niterations = \
             1000\nconcurrency = 300\n",
        ));
        assert_eq!(embedded.total(), BASE + 300 + 301);
    }

    #[test]
    fn a_plan_within_the_limit_runs_and_one_beyond_it_is_refused_with_the_figures() {
        assert!(ensure(&plan(&format!("{HTTP}concurrency = 10\n"))).is_ok());
        let Ok((_, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) else {
            return;
        };
        // More workers than the hard limit allows descriptors (and than `validate` caps, when the
        // hard limit is huge: then nothing can be refused here).
        let workers = hard.saturating_add(1);
        if workers > 100_000 {
            return;
        }
        let e = ensure(&plan(&format!("{HTTP}concurrency = {workers}\n"))).unwrap_err();
        assert_eq!(e.limit, hard);
        assert!(e.need > hard);
        let text = e.to_string();
        assert!(
            text.contains("ulimit -n") && text.contains("client connections"),
            "{text}"
        );
    }
}
