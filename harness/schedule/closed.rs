//! The closed model: `iterations` spread over `concurrency` workers, each starting its next iteration
//! when the last one ends. It measures what the target does at that concurrency, but hides stalls: a
//! stalled target slows the load instead of showing in the latency (coordinated omission).

use std::time::Duration;

use super::{Claims, Schedule, Shard, Ticket};

pub struct ClosedLoop {
    /// Iterations of the whole load, every shard's together.
    iterations: u64,
    /// This shard's workers.
    concurrency: usize,
    /// This shard's iterations.
    planned: u64,
    claims: Claims,
}

impl ClosedLoop {
    /// `iterations` over `concurrency` workers, all of them run here.
    pub fn new(iterations: u64, concurrency: u32) -> Self {
        Self::shard(iterations, concurrency, Shard::WHOLE)
    }

    /// `shard`'s part of a load of `iterations` over `concurrency` workers: every `count`-th
    /// iteration and its share of the workers.
    pub fn shard(iterations: u64, concurrency: u32, shard: Shard) -> Self {
        Self {
            iterations,
            concurrency: shard.split(concurrency.max(1)) as usize,
            planned: shard.share_of(iterations),
            claims: Claims::new(shard),
        }
    }
}

impl Schedule for ClosedLoop {
    fn next(&self) -> Option<Ticket> {
        let index = self.claims.claim();
        (index < self.iterations).then_some(Ticket {
            index,
            intended: None,
            stage: 0,
            late_after: Duration::MAX,
        })
    }

    fn workers(&self) -> usize {
        self.concurrency.min(self.planned.max(1) as usize)
    }

    fn planned(&self) -> u64 {
        self.planned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_each_iteration_once_then_stops() {
        let s = ClosedLoop::new(3, 10);
        let got: Vec<u64> = std::iter::from_fn(|| s.next()).map(|t| t.index).collect();
        assert_eq!(got, [0, 1, 2]);
        assert!(s.next().is_none());
        assert_eq!(s.workers(), 3, "no more workers than iterations");
    }

    #[test]
    fn shards_split_the_iterations_and_the_workers_between_them() {
        let mut seen = Vec::new();
        let mut workers = 0;
        for index in 0..4 {
            let s = ClosedLoop::shard(10, 6, Shard { index, count: 4 });
            let got: Vec<u64> = std::iter::from_fn(|| s.next()).map(|t| t.index).collect();
            assert_eq!(got.len() as u64, s.planned(), "shard {index}");
            assert!(got.iter().all(|i| i % 4 == u64::from(index)), "{got:?}");
            workers += s.workers();
            seen.extend(got);
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..10).collect::<Vec<_>>(), "every iteration, once");
        assert_eq!(workers, 6, "2 + 2 + 1 + 1 workers");
    }
}
