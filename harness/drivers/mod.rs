//! Drivers do the work of one iteration against a target and report what happened (an
//! [`IterationReport`], whose contract lives in [`crate::iteration`]). A driver knows nothing of
//! pacing (the engine's executors decide when an iteration starts) and nothing of reports (the
//! recorder turns its reports into metrics).

pub mod http;
pub mod ws;

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use rand_chacha::ChaCha8Rng;

use crate::faults::FaultPlan;
use crate::iteration::IterationReport;

/// What a driver is given for one iteration.
#[derive(Debug)]
pub struct IterationContext {
    /// Global iteration number, from 0.
    pub index: u64,
    /// Which worker runs it.
    pub worker: u32,
    /// This iteration's own random stream, derived from the run's seed and `index`, so the same seed
    /// replays the same choices whichever worker runs the iteration.
    pub rng: ChaCha8Rng,
    /// The fault to inject into this iteration, if any.
    pub fault: Option<FaultPlan>,
    /// When the iteration's own time runs out (its `iteration_timeout`).
    pub deadline: Instant,
}

/// Does one iteration. `timer` is the worker's own deadline timer, reused from one iteration to the
/// next (see [`Timer`]).
pub trait Driver: Send + Sync + 'static {
    fn iterate(
        &self,
        ctx: IterationContext,
        timer: &mut Timer,
    ) -> impl Future<Output = IterationReport> + Send;
}

/// A deadline timer a worker keeps for its whole life. Registering a fresh timer with the runtime for
/// every request costs a lock on the shared timer wheel; moving an existing timer's deadline later is
/// a single atomic update, and a worker's deadlines mostly move later. Measured on the closed-load
/// benchmark, this is the difference between ~86% and ~94% of a bare client's throughput.
///
/// A worker's timer also says which worker it is, so a driver can keep state per worker (the HTTP
/// client keeps each worker's idle connection apart, as a load generator does, rather than in one
/// pool every thread contends for).
pub struct Timer {
    sleep: Pin<Box<tokio::time::Sleep>>,
    worker: Option<u32>,
}

impl Timer {
    /// A timer for work outside the workers (the run's setup, a read-back).
    pub fn new() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
            worker: None,
        }
    }

    /// Worker `id`'s timer.
    pub fn for_worker(id: u32) -> Self {
        Self {
            worker: Some(id),
            ..Self::new()
        }
    }

    /// The worker this timer belongs to, if any.
    pub fn worker(&self) -> Option<u32> {
        self.worker
    }

    /// Runs `work` until `deadline`; `None` when the deadline came first.
    pub async fn within<F: Future>(&mut self, deadline: Instant, work: F) -> Option<F::Output> {
        self.sleep.as_mut().reset(deadline.into());
        tokio::select! {
            biased;
            out = work => Some(out),
            _ = self.sleep.as_mut() => None,
        }
    }
}

impl Default for Timer {
    fn default() -> Self {
        Self::new()
    }
}
