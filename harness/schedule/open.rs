//! The open model: a fixed arrival rate. Iteration `i` is intended to start at `start + i / rate`
//! whatever happened to the previous ones, and its latency is measured from that intended start (as
//! wrk2 does), so a stalled target shows in the percentiles the way it would for real users. At most
//! `max_in_flight` iterations run at once; one that cannot start on time starts late and is counted.

use std::time::{Duration, Instant};

use super::{Claims, OpenStage, Schedule, Shard, Ticket, late_tolerance};

pub struct OpenLoop {
    start: Instant,
    interval: Duration,
    /// How late an iteration may start: one of this shard's own arrival intervals.
    late_after: Duration,
    /// Iterations of the whole load, every shard's together.
    iterations: u64,
    /// This shard's iterations.
    planned: u64,
    max_in_flight: usize,
    claims: Claims,
}

impl OpenLoop {
    /// A schedule whose first iteration is due at `start`.
    pub fn new(stage: &OpenStage, start: Instant) -> Self {
        Self::shard(stage, start, Shard::WHOLE)
    }

    /// `shard`'s part of the schedule: every `count`-th arrival at the intended times of the whole
    /// schedule (so the shards' arrivals interleave into it), with its share of the in-flight bound.
    pub fn shard(stage: &OpenStage, start: Instant, shard: Shard) -> Self {
        Self {
            start,
            interval: stage.rate.interval(),
            late_after: late_tolerance(stage.rate.interval() * shard.count.max(1)),
            iterations: stage.iterations,
            planned: shard.share_of(stage.iterations),
            max_in_flight: shard.split(stage.max_in_flight.max(1)) as usize,
            claims: Claims::new(shard),
        }
    }
}

impl Schedule for OpenLoop {
    fn next(&self) -> Option<Ticket> {
        let index = self.claims.claim();
        (index < self.iterations).then(|| Ticket {
            index,
            intended: Some(self.start + self.interval.mul_f64(index as f64)),
            stage: 0,
            late_after: self.late_after,
        })
    }

    fn workers(&self) -> usize {
        self.max_in_flight.min(self.planned.max(1) as usize)
    }

    fn planned(&self) -> u64 {
        self.planned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::units::Rate;

    #[test]
    fn intended_starts_follow_the_rate() {
        let t0 = Instant::now();
        let stage = OpenStage {
            rate: Rate::per_second(20.0),
            duration: Duration::from_secs(1),
            iterations: 20,
            max_in_flight: 4,
        };
        let s = OpenLoop::new(&stage, t0);
        let tickets: Vec<Ticket> = std::iter::from_fn(|| s.next()).collect();
        assert_eq!(tickets.len(), 20);
        assert_eq!(tickets[0].intended, Some(t0));
        assert_eq!(tickets[10].intended, Some(t0 + Duration::from_millis(500)));
        assert_eq!(tickets[3].late_after, Duration::from_millis(50));
        assert_eq!(s.workers(), 4);
    }

    #[test]
    fn shards_interleave_into_the_whole_schedule() {
        let t0 = Instant::now();
        let stage = OpenStage {
            rate: Rate::per_second(100.0),
            duration: Duration::from_secs(1),
            iterations: 100,
            max_in_flight: 10,
        };
        let whole: Vec<Ticket> = {
            let s = OpenLoop::new(&stage, t0);
            std::iter::from_fn(|| s.next()).collect()
        };
        let mut union = Vec::new();
        for index in 0..3 {
            let s = OpenLoop::shard(&stage, t0, Shard { index, count: 3 });
            let got: Vec<Ticket> = std::iter::from_fn(|| s.next()).collect();
            assert_eq!(got.len() as u64, s.planned());
            assert_eq!(s.workers(), [4, 3, 3][index as usize]);
            // Each shard's own arrivals are three intervals apart: a third of the rate.
            assert_eq!(
                got[1].intended.unwrap() - got[0].intended.unwrap(),
                Duration::from_millis(30)
            );
            // Late after one of the shard's own intervals.
            assert!(
                got.iter()
                    .all(|t| t.late_after == Duration::from_millis(30))
            );
            union.extend(got);
        }
        union.sort_by_key(|t| t.index);
        let when = |ts: &[Ticket]| ts.iter().map(|t| (t.index, t.intended)).collect::<Vec<_>>();
        assert_eq!(
            when(&union),
            when(&whole),
            "the union is the schedule of one run"
        );
    }
}
