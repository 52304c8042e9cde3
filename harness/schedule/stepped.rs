//! The stepped model: open-model stages one after another (the stress suite's rising load). Each
//! ticket carries its stage, so every stage's results can be judged on their own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{OpenStage, Schedule, Ticket, late_tolerance};

struct Stage {
    /// When the stage begins, from the start of the run.
    offset: Duration,
    interval: Duration,
    /// Global index of the stage's first iteration.
    first: u64,
    iterations: u64,
}

pub struct SteppedLoad {
    start: Instant,
    stages: Vec<Stage>,
    planned: u64,
    max_in_flight: usize,
    next: AtomicU64,
}

impl SteppedLoad {
    pub fn new(stages: &[OpenStage], start: Instant) -> Self {
        let mut offset = Duration::ZERO;
        let mut first = 0;
        let built = stages
            .iter()
            .map(|s| {
                let stage = Stage {
                    offset,
                    interval: s.rate.interval(),
                    first,
                    iterations: s.iterations,
                };
                offset += s.duration;
                first += s.iterations;
                stage
            })
            .collect();
        Self {
            start,
            stages: built,
            planned: first,
            max_in_flight: stages
                .iter()
                .map(|s| s.max_in_flight)
                .max()
                .unwrap_or(1)
                .max(1) as usize,
            next: AtomicU64::new(0),
        }
    }

    /// When each stage begins, from the start of the run.
    pub fn stage_offsets(&self) -> Vec<Duration> {
        self.stages.iter().map(|s| s.offset).collect()
    }
}

impl Schedule for SteppedLoad {
    fn next(&self) -> Option<Ticket> {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        let (stage, s) = self
            .stages
            .iter()
            .enumerate()
            .find(|(_, s)| index < s.first + s.iterations)?;
        let within = index - s.first;
        Some(Ticket {
            index,
            intended: Some(self.start + s.offset + s.interval.mul_f64(within as f64)),
            stage,
            late_after: late_tolerance(s.interval),
        })
    }

    fn workers(&self) -> usize {
        self.max_in_flight
    }

    fn planned(&self) -> u64 {
        self.planned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::units::Rate;

    fn stage(rate: f64, secs: u64) -> OpenStage {
        OpenStage {
            rate: Rate::per_second(rate),
            duration: Duration::from_secs(secs),
            iterations: (rate * secs as f64) as u64,
            max_in_flight: 8,
        }
    }

    #[test]
    fn stages_follow_each_other_at_their_own_rates() {
        let t0 = Instant::now();
        let s = SteppedLoad::new(&[stage(2.0, 2), stage(4.0, 2)], t0);
        let tickets: Vec<Ticket> = std::iter::from_fn(|| s.next()).collect();
        assert_eq!(tickets.len(), 12);
        assert_eq!(s.planned(), 12);
        assert_eq!(
            (tickets[3].stage, tickets[3].intended),
            (0, Some(t0 + Duration::from_millis(1500)))
        );
        assert_eq!(
            (tickets[4].stage, tickets[4].intended),
            (1, Some(t0 + Duration::from_secs(2)))
        );
        assert_eq!(tickets[5].intended, Some(t0 + Duration::from_millis(2250)));
        assert_eq!(s.stage_offsets(), [Duration::ZERO, Duration::from_secs(2)]);
    }
}
