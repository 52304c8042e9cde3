//! In-process fault injection: which iterations get a fault, at which step, of which kind
//! ([`FaultSchedule`]), and how a fault is applied to the work of an iteration ([`inject`]).
//!
//! The schedule is drawn once from the run's seed, so the same seed replays the same faults whatever
//! the timing of the run. Exactly `round(failure_rate × iterations)` iterations are hit, and the hits
//! cycle through the step positions (and, shifted each round, through the kinds), so that a run
//! exercises rollback from every point of the procedure rather than wherever chance lands.

pub mod inject;

pub use inject::{Injected, inject};

use std::collections::HashMap;
use std::time::Duration;

use rand::SeedableRng;
use rand::seq::index;
use rand_chacha::ChaCha8Rng;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The step fails with an injected error instead of sending its request.
    Error,
    /// The step hangs until its timeout.
    Timeout,
    /// The step's response is treated as failing a critical validation rule.
    Validation,
    /// The step is delayed by `faults.latency` before it is sent.
    Latency,
}

impl FaultKind {
    /// The name used in scenario files and results.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Error => "error",
            FaultKind::Timeout => "timeout",
            FaultKind::Validation => "validation",
            FaultKind::Latency => "latency",
        }
    }
}

/// The fault one iteration gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultPlan {
    /// The point it applies at: an index into the procedure's steps (0 for drivers with one action
    /// per iteration).
    pub step: usize,
    pub kind: FaultKind,
    /// What a `latency` fault adds.
    pub latency: Duration,
}

/// Faults for every planned iteration, keyed by iteration index. Holds one entry per injected fault.
#[derive(Debug, Clone, Default)]
pub struct FaultSchedule {
    plans: HashMap<u64, FaultPlan>,
}

/// Salt that keeps the fault stream apart from the iterations' own streams.
const FAULT_STREAM: u64 = 0xFA17_5EED;

impl FaultSchedule {
    /// Draws the schedule: `rate` of `iterations` iterations get one of `kinds` (a `latency` fault
    /// adding `latency`), at one of `steps` points (a procedure's steps; 1 for drivers with one action
    /// per iteration).
    pub fn draw(
        seed: u64,
        rate: f64,
        kinds: &[FaultKind],
        latency: Duration,
        iterations: u64,
        steps: usize,
    ) -> Self {
        if rate <= 0.0 || kinds.is_empty() || iterations == 0 || steps == 0 {
            return Self::default();
        }
        let hits = ((rate * iterations as f64).round() as u64).min(iterations);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ FAULT_STREAM);
        let mut chosen: Vec<u64> = if iterations <= usize::MAX as u64 {
            index::sample(&mut rng, iterations as usize, hits as usize)
                .into_iter()
                .map(|i| i as u64)
                .collect()
        } else {
            Vec::new()
        };
        chosen.sort_unstable();
        let plans = chosen
            .into_iter()
            .enumerate()
            .map(|(k, iteration)| {
                let step = k % steps;
                // Round r of the steps shifts the kinds by r, so each step sees every kind in turn
                // (with one step, the kinds simply take turns).
                let kind = kinds[(k / steps + k % steps) % kinds.len()];
                (
                    iteration,
                    FaultPlan {
                        step,
                        kind,
                        latency,
                    },
                )
            })
            .collect();
        Self { plans }
    }

    /// The faults of the iterations `shard` runs: drawn over the whole load, so the shards together
    /// inject exactly what one run with the same seed would.
    pub fn only(mut self, shard: crate::result::Shard) -> Self {
        self.plans.retain(|index, _| shard.owns(*index));
        self
    }

    pub fn for_iteration(&self, index: u64) -> Option<FaultPlan> {
        self.plans.get(&index).copied()
    }

    pub fn len(&self) -> usize {
        self.plans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.plans.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [FaultKind; 4] = [
        FaultKind::Error,
        FaultKind::Timeout,
        FaultKind::Validation,
        FaultKind::Latency,
    ];

    #[test]
    fn hits_the_rate_exactly_and_covers_every_step_and_kind() {
        let s = FaultSchedule::draw(7, 0.1, &KINDS, Duration::ZERO, 80, 4);
        assert_eq!(s.len(), 8);
        let plans: Vec<FaultPlan> = (0..80).filter_map(|i| s.for_iteration(i)).collect();
        for step in 0..4 {
            assert!(
                plans.iter().any(|p| p.step == step),
                "step {step} never hit"
            );
        }
        for kind in KINDS {
            assert!(
                plans.iter().any(|p| p.kind == kind),
                "{kind:?} never injected"
            );
        }
        // Each step sees more than one kind over the run.
        for step in 0..4 {
            let kinds: std::collections::BTreeSet<_> = plans
                .iter()
                .filter(|p| p.step == step)
                .map(|p| p.kind as u8)
                .collect();
            assert!(kinds.len() > 1, "step {step} only ever got {kinds:?}");
        }
    }

    #[test]
    fn with_one_fault_point_every_kind_takes_its_turn() {
        let s = FaultSchedule::draw(3, 0.5, &KINDS, Duration::ZERO, 40, 1);
        let mut seen = [0; 4];
        for p in (0..40).filter_map(|i| s.for_iteration(i)) {
            seen[KINDS.iter().position(|k| *k == p.kind).unwrap()] += 1;
        }
        assert_eq!(seen, [5, 5, 5, 5]);
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let a = FaultSchedule::draw(42, 0.25, &KINDS, Duration::ZERO, 100, 3);
        let b = FaultSchedule::draw(42, 0.25, &KINDS, Duration::ZERO, 100, 3);
        let c = FaultSchedule::draw(43, 0.25, &KINDS, Duration::ZERO, 100, 3);
        let hits = |s: &FaultSchedule| {
            (0..100)
                .filter(|i| s.for_iteration(*i).is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(hits(&a), hits(&b));
        assert_ne!(hits(&a), hits(&c));
    }

    #[test]
    fn shards_together_inject_what_one_run_would() {
        let whole = FaultSchedule::draw(7, 0.2, &KINDS, Duration::ZERO, 500, 3);
        let mut union = Vec::new();
        for index in 0..4 {
            let shard = crate::result::Shard { index, count: 4 };
            let part = FaultSchedule::draw(7, 0.2, &KINDS, Duration::ZERO, 500, 3).only(shard);
            assert!((0..500).all(|i| part.for_iteration(i).is_none() || shard.owns(i)));
            union.extend((0..500).filter_map(|i| part.for_iteration(i).map(|p| (i, p))));
        }
        union.sort_by_key(|(i, _)| *i);
        let expected: Vec<(u64, FaultPlan)> = (0..500)
            .filter_map(|i| whole.for_iteration(i).map(|p| (i, p)))
            .collect();
        assert_eq!(union, expected);
    }

    #[test]
    fn nothing_is_injected_without_faults() {
        assert!(FaultSchedule::draw(1, 0.1, &[], Duration::ZERO, 100, 4).is_empty());
        assert!(FaultSchedule::draw(1, 0.0, &KINDS, Duration::ZERO, 100, 4).is_empty());
    }
}
