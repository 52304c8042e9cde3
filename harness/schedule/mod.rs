//! The load models' schedules: a schedule hands out tickets, and the engine's worker pool runs one
//! iteration per ticket. A schedule only decides *which* iteration comes next and *when* it should
//! start; it never does the work. One small implementation per model: [`closed::ClosedLoop`],
//! [`open::OpenLoop`], [`stepped::SteppedLoad`]; the plan picks one.

pub mod closed;
pub mod open;
pub mod stepped;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::units::Rate;
pub use crate::result::Shard;

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

impl Shard {
    /// The whole load: one process runs every iteration.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Whether this shard runs global iteration `index` (every `count`-th, from its own index).
    pub fn owns(&self, index: u64) -> bool {
        index % u64::from(self.count.max(1)) == u64::from(self.index)
    }

    /// How many of the global iterations `0..n` this shard runs.
    pub fn share_of(&self, n: u64) -> u64 {
        let (i, c) = (u64::from(self.index), u64::from(self.count.max(1)));
        if n > i { (n - i - 1) / c + 1 } else { 0 }
    }

    /// This shard's part of `n` workers (or in-flight slots): an even split, the first shards taking
    /// the remainder, and never less than one.
    pub fn split(&self, n: u32) -> u32 {
        let c = self.count.max(1);
        (n / c + u32::from(self.index < n % c)).max(1)
    }
}

/// The global iteration numbers a shard claims, in order: its index, then every `count`-th after.
/// Shared by the workers; claiming is one atomic add.
#[derive(Debug)]
pub struct Claims {
    claimed: AtomicU64,
    first: u64,
    step: u64,
}

impl Claims {
    pub fn new(shard: Shard) -> Self {
        Self {
            claimed: AtomicU64::new(0),
            first: u64::from(shard.index),
            step: u64::from(shard.count.max(1)),
        }
    }

    /// The next global iteration number of the shard (unbounded: the schedule knows where it ends).
    pub fn claim(&self) -> u64 {
        let k = self.claimed.fetch_add(1, Ordering::Relaxed);
        self.first.saturating_add(k.saturating_mul(self.step))
    }
}

/// An iteration of an open load is late when it starts more than one arrival interval (and at least
/// 10 ms, to stay above timer jitter) after its intended time: the interval between the arrivals of
/// the generator that starts it (a shard's, when the load is split).
pub fn late_tolerance(interval: Duration) -> Duration {
    interval.max(Duration::from_millis(10))
}
