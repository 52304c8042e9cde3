//! The stepped model: open-model stages one after another (the stress suite's rising load). Each
//! ticket carries its stage, so every stage's results can be judged on their own.

use std::time::{Duration, Instant};

use super::{Claims, OpenStage, Schedule, Shard, Ticket, late_tolerance};

struct Stage {
    /// When the stage begins, from the start of the run.
    offset: Duration,
    interval: Duration,
    /// How late an iteration may start: one of this shard's own arrival intervals.
    late_after: Duration,
    /// Global index of the stage's first iteration.
    first: u64,
    iterations: u64,
}

pub struct SteppedLoad {
    start: Instant,
    stages: Vec<Stage>,
    /// This shard's iterations.
    planned: u64,
    max_in_flight: usize,
    claims: Claims,
}

impl SteppedLoad {
    pub fn new(stages: &[OpenStage], start: Instant) -> Self {
        Self::shard(stages, start, Shard::WHOLE)
    }

    /// `shard`'s part: every `count`-th arrival of the whole schedule, each at its intended time,
    /// with the shard's share of the in-flight bound.
    pub fn shard(stages: &[OpenStage], start: Instant, shard: Shard) -> Self {
        let mut offset = Duration::ZERO;
        let mut first = 0;
        let built = stages
            .iter()
            .map(|s| {
                let stage = Stage {
                    offset,
                    interval: s.rate.interval(),
                    late_after: late_tolerance(s.rate.interval() * shard.count.max(1)),
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
            planned: shard.share_of(first),
            max_in_flight: shard.split(
                stages
                    .iter()
                    .map(|s| s.max_in_flight)
                    .max()
                    .unwrap_or(1)
                    .max(1),
            ) as usize,
            claims: Claims::new(shard),
        }
    }

    /// When each stage begins, from the start of the run.
    pub fn stage_offsets(&self) -> Vec<Duration> {
        self.stages.iter().map(|s| s.offset).collect()
    }
}

impl Schedule for SteppedLoad {
    fn next(&self) -> Option<Ticket> {
        let index = self.claims.claim();
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
            late_after: s.late_after,
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
