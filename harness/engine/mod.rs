//! The engine runs a [`RunPlan`]: it starts the embedded reference target when the plan asks for one,
//! picks the [`session`] for the plan's kind of target, and runs the one [`lifecycle`] — preflight,
//! chaos controls, probes, fault proxy, driver, the load under its budget, recovery, the result.
//!
//! It knows nothing of terminals or files: progress and checkpoints go to an [`Observer`], and the
//! result is returned for the caller to write. It reads the plan, never the scenario.

pub mod assemble;
pub mod caveats;
pub mod embedded;
pub mod error;
pub mod generator;
pub mod lifecycle;
pub mod load;
pub mod network;
pub mod pacer;
pub mod pool;
pub mod preflight;
pub mod recovery;
pub mod session;
pub mod stress;
pub mod target_admin;

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use url::Url;

use self::assemble::{Extras, Snapshot, Stop, assemble};
pub use self::error::{AdminError, TargetError};
use self::load::Clock;
use self::session::http::HttpSession;
use self::session::ws::WsSession;
use crate::kinds::Embedded;
use crate::metrics::Recorder;
pub use crate::plan::RunPlan;
use crate::plan::{Endpoint, TargetPlan};
use crate::result::RunResult;

/// How often a checkpoint of the result is handed to the observer while the run goes on.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);

/// Where the run stands, for progress displays.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub elapsed: Duration,
    /// How long the schedule lasts (open and stepped loads).
    pub scheduled: Option<Duration>,
    pub planned: u64,
    pub done: u64,
    pub failed: u64,
    pub late: u64,
    pub in_flight: u64,
    /// Iterations completed in the last second.
    pub last_second: u64,
    /// p95 of everything completed so far, in milliseconds.
    pub p95_ms: Option<f64>,
}

/// Receives progress and checkpoints; the CLI shows the one and writes the other.
pub trait Observer: Send + Sync {
    /// The target is known: where it is, and whether it is a reference target the harness started.
    fn target(&self, _url: &Url, _embedded: Option<Embedded>) {}
    fn progress(&self, _progress: &Progress) {}
    fn checkpoint(&self, _partial: &RunResult) {}
    /// The load begins: the result as it stands, the journal's header.
    fn journal_start(&self, _header: &RunResult) {}
    /// A slice of measurements or a timeline row, for the journal.
    fn journal(&self, _entry: crate::journal::Entry) {}
    /// The run was asked to stop and is giving iterations in flight their grace.
    fn stopping(&self, _why: &str) {}
    /// The run moved to a phase other than the load (a probe, say).
    fn phase(&self, _what: &str) {}
}

/// An observer that ignores everything.
pub struct Quiet;

/// Two observers, each told everything in turn (the terminal and the live metrics, say).
pub struct Both<'a>(pub &'a dyn Observer, pub &'a dyn Observer);

impl Observer for Both<'_> {
    fn target(&self, url: &Url, embedded: Option<Embedded>) {
        self.0.target(url, embedded);
        self.1.target(url, embedded);
    }
    fn progress(&self, progress: &Progress) {
        self.0.progress(progress);
        self.1.progress(progress);
    }
    fn checkpoint(&self, partial: &RunResult) {
        self.0.checkpoint(partial);
        self.1.checkpoint(partial);
    }
    fn journal_start(&self, header: &RunResult) {
        self.0.journal_start(header);
        self.1.journal_start(header);
    }
    fn journal(&self, entry: crate::journal::Entry) {
        self.0.journal(entry.clone());
        self.1.journal(entry);
    }
    fn stopping(&self, why: &str) {
        self.0.stopping(why);
        self.1.stopping(why);
    }
    fn phase(&self, what: &str) {
        self.0.phase(what);
        self.1.phase(what);
    }
}

impl Observer for Quiet {}

/// How the caller asks the run to stop.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// First interrupt: stop starting iterations, give those in flight their grace.
    pub stop: CancellationToken,
    /// Second interrupt: abandon iterations in flight at once.
    pub force: CancellationToken,
}

/// Runs `plan` to the end, to its budget, or until `signals` stop it.
pub async fn run(plan: &RunPlan, observer: &dyn Observer, signals: Signals) -> RunResult {
    if plan.identity.shard.count > 1 {
        crate::metrics::histogram::keep_histograms();
    }
    let target = match embedded::reach(&plan.endpoint, plan.identity.seed).await {
        Ok(t) => t,
        Err(why) => {
            let url = match &plan.endpoint {
                Endpoint::At { url, .. } => url.clone(),
                Endpoint::Start(e) => embedded::placeholder(*e),
            };
            return not_started(plan, &url, why.to_string());
        }
    };
    observer.target(&target.url, plan.endpoint.embedded());
    let url = target.url.clone();
    let result = match &plan.target {
        TargetPlan::Request(p) | TargetPlan::Procedure(p) => {
            let session = HttpSession::new(plan, url.clone(), std::sync::Arc::clone(p));
            lifecycle::run(plan, &url, session, observer, signals).await
        }
        TargetPlan::WebSocket(settings) => {
            let session = WsSession::new(plan, url.clone(), settings);
            lifecycle::run(plan, &url, session, observer, signals).await
        }
    };
    target.stop(result).await
}

/// A result for a run that could not start, saying why.
pub fn not_started(plan: &RunPlan, url: &Url, why: String) -> RunResult {
    stopped_before_load(
        plan,
        url,
        Stop::NotStarted(why),
        &Extras::default(),
        Clock::now(),
    )
}

/// A result for a run that ended before its load, keeping what the phases before it measured.
fn stopped_before_load(
    plan: &RunPlan,
    url: &Url,
    stop: Stop,
    extras: &Extras,
    clock: Clock,
) -> RunResult {
    let merged = Recorder::new(0, 0, 0);
    assemble(Snapshot {
        plan,
        url,
        merged: &merged,
        recorded_names: &[],
        timeline: Vec::new(),
        blocks: None,
        drift: None,
        started_at: clock.started_at,
        load_started_at: None,
        load_start: clock.t0,
        elapsed: clock.run_start.elapsed(),
        load_elapsed: Duration::ZERO,
        stop,
        abandoned: 0,
        crashed_workers: 0,
        injected: 0,
        extras,
    })
}
