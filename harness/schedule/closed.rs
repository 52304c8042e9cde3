//! The closed model: `iterations` spread over `concurrency` workers, each starting its next iteration
//! when the last one ends. It measures what the target does at that concurrency, but hides stalls: a
//! stalled target slows the load instead of showing in the latency (coordinated omission).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Schedule, Ticket};

pub struct ClosedLoop {
    iterations: u64,
    concurrency: usize,
    next: AtomicU64,
}

impl ClosedLoop {
    pub fn new(iterations: u64, concurrency: u32) -> Self {
        Self {
            iterations,
            concurrency: concurrency.max(1) as usize,
            next: AtomicU64::new(0),
        }
    }
}

impl Schedule for ClosedLoop {
    fn next(&self) -> Option<Ticket> {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        (index < self.iterations).then_some(Ticket {
            index,
            intended: None,
            stage: 0,
            late_after: Duration::MAX,
        })
    }

    fn workers(&self) -> usize {
        self.concurrency.min(self.iterations.max(1) as usize)
    }

    fn planned(&self) -> u64 {
        self.iterations
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
}
