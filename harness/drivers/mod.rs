//! Drivers do the work of one iteration against a target and report what happened. A driver knows
//! nothing of pacing (the engine's executors decide when an iteration starts) and nothing of reports
//! (the recorder turns its reports into metrics).

pub mod http;
pub mod ws;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;

use crate::faults::FaultPlan;
use crate::taxonomy::ErrorKind;

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
pub struct Timer {
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Timer {
    pub fn new() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
        }
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

/// How an iteration ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded,
    Failed(Failure),
}

/// Why an iteration failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub kind: ErrorKind,
    /// The validation rule that failed, for [`ErrorKind::Validation`].
    pub rule: Option<String>,
    /// The step it failed at, if any.
    pub step: Option<String>,
    /// What happened, for people: may quote the target's own error message.
    pub detail: String,
}

impl Failure {
    /// A failure at a step, not tied to a rule.
    pub fn at(step: &str, kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            rule: None,
            step: Some(step.to_string()),
            detail: detail.into(),
        }
    }

    /// The key this failure is counted under in `metrics.errors`: the kind, or `validation.<rule>`.
    pub fn key(&self) -> String {
        match (&self.kind, &self.rule) {
            (ErrorKind::Validation, Some(rule)) => format!("validation.{rule}"),
            (kind, _) => kind.as_str().to_string(),
        }
    }
}

/// The time one step of a procedure took (all its attempts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepSample {
    /// Index into the procedure's steps.
    pub step: usize,
    pub latency: Duration,
}

/// A timing the target reported, for one of the procedure's recorded metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordedSample {
    /// Index into [`crate::procedure::Procedure::recorded_metrics`].
    pub metric: usize,
    pub millis: f64,
}

/// What a rollback achieved.
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackOutcome {
    /// Index of the step whose failure triggered it.
    pub failed_step: usize,
    /// Whether every verification of every rollback that ran found the state restored.
    pub verified: bool,
    /// Why verification failed, when it did.
    pub detail: Option<String>,
}

/// Everything a driver reports about one iteration.
#[derive(Debug, Clone, PartialEq)]
pub struct IterationReport {
    pub outcome: Outcome,
    pub steps: Vec<StepSample>,
    pub recorded: Vec<RecordedSample>,
    /// Ids of medium and low rules that failed.
    pub warnings: Vec<String>,
    pub rollback: Option<RollbackOutcome>,
    /// Operations the target acknowledged, for invariant checks.
    pub acks: Vec<crate::invariants::Ack>,
}

impl IterationReport {
    pub fn succeeded() -> Self {
        Self {
            outcome: Outcome::Succeeded,
            steps: Vec::new(),
            recorded: Vec::new(),
            warnings: Vec::new(),
            rollback: None,
            acks: Vec::new(),
        }
    }

    pub fn failed(failure: Failure) -> Self {
        Self {
            outcome: Outcome::Failed(failure),
            ..Self::succeeded()
        }
    }

    pub fn failure(&self) -> Option<&Failure> {
        match &self.outcome {
            Outcome::Failed(f) => Some(f),
            Outcome::Succeeded => None,
        }
    }
}
