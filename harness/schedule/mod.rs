//! The load models' schedules: a schedule hands out tickets, and the engine's worker pool runs one
//! iteration per ticket. A schedule only decides *which* iteration comes next and *when* it should
//! start; it never does the work. One small implementation per model: [`closed::ClosedLoop`],
//! [`open::OpenLoop`], [`stepped::SteppedLoad`]; the plan picks one.

pub mod closed;
pub mod open;
pub mod stepped;

use std::time::{Duration, Instant};

use crate::config::units::Rate;

/// One stretch of open-model load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenStage {
    pub rate: Rate,
    pub duration: Duration,
    /// Iterations the schedule holds: `rate × duration`, rounded down, at least 1.
    pub iterations: u64,
    pub max_in_flight: u32,
}

/// Permission to run one iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ticket {
    /// Global iteration number, from 0.
    pub index: u64,
    /// When the schedule wants it to start; `None` means as soon as a worker is free (closed load).
    pub intended: Option<Instant>,
    /// Stage of a stepped load, 0 otherwise.
    pub stage: usize,
    /// How late it may start before it counts as late (the generator falling behind).
    pub late_after: Duration,
}

/// A source of tickets, shared by all workers.
pub trait Schedule: Send + Sync {
    /// Claims the next iteration, or `None` when the schedule holds no more.
    fn next(&self) -> Option<Ticket>;
    /// How many workers run it (the concurrency, or the bound on iterations in flight).
    fn workers(&self) -> usize;
    /// Iterations it holds.
    fn planned(&self) -> u64;
}

/// An iteration of an open load is late when it starts more than one arrival interval (and at least
/// 10 ms, to stay above timer jitter) after its intended time.
pub fn late_tolerance(interval: Duration) -> Duration {
    interval.max(Duration::from_millis(10))
}
