//! The contract between the work of one iteration and what records it: how an iteration ended
//! ([`Outcome`], [`Failure`] with its [`ErrorKind`]), and everything a driver reports about it
//! ([`IterationReport`]). Drivers produce these and the metrics layer consumes them; neither imports
//! the other, both import this.

use std::time::Duration;

pub use crate::taxonomy::ErrorKind;

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
    /// Whether the step succeeded (its response was what the step expects).
    pub ok: bool,
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
/// What the retries of one iteration cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetryTrace {
    /// The failures that were tried again, one per retry.
    pub retried: Vec<ErrorKind>,
    /// Time spent waiting between attempts.
    pub waited: Duration,
    /// Waits that were the target's `Retry-After` (longer than the backoff).
    pub honoured_retry_after: u32,
    /// Retries not made because the target's `Retry-After` was beyond the cap.
    pub beyond_cap: u32,
    /// Retries not made because the run's retry budget was spent.
    pub over_budget: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IterationReport {
    pub outcome: Outcome,
    pub steps: Vec<StepSample>,
    pub recorded: Vec<RecordedSample>,
    /// Ids of medium and low rules that failed.
    pub warnings: Vec<String>,
    pub rollback: Option<RollbackOutcome>,
    /// A failure that called for no rollback because what took effect lies behind an irreversible
    /// step (without a compensation).
    pub rollback_withheld: bool,
    /// Operations the target acknowledged, for invariant checks.
    pub acks: Vec<crate::invariants::Ack>,
    /// Writes to collections the history check reads back.
    pub writes: Vec<crate::history::Write>,
    pub retries: RetryTrace,
}

impl IterationReport {
    pub fn succeeded() -> Self {
        Self {
            outcome: Outcome::Succeeded,
            steps: Vec::new(),
            recorded: Vec::new(),
            warnings: Vec::new(),
            rollback: None,
            rollback_withheld: false,
            acks: Vec::new(),
            writes: Vec::new(),
            retries: RetryTrace::default(),
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
