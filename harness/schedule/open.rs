//! The open model: a fixed arrival rate. Iteration `i` is intended to start at `start + i / rate`
//! whatever happened to the previous ones, and its latency is measured from that intended start (as
//! wrk2 does), so a stalled target shows in the percentiles the way it would for real users. At most
//! `max_in_flight` iterations run at once; one that cannot start on time starts late and is counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{OpenStage, Schedule, Ticket, late_tolerance};

pub struct OpenLoop {
    start: Instant,
    interval: Duration,
    iterations: u64,
    max_in_flight: usize,
    next: AtomicU64,
}

impl OpenLoop {
    /// A schedule whose first iteration is due at `start`.
    pub fn new(stage: &OpenStage, start: Instant) -> Self {
        Self {
            start,
            interval: stage.rate.interval(),
            iterations: stage.iterations,
            max_in_flight: stage.max_in_flight.max(1) as usize,
            next: AtomicU64::new(0),
        }
    }
}

impl Schedule for OpenLoop {
    fn next(&self) -> Option<Ticket> {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        (index < self.iterations).then(|| Ticket {
            index,
            intended: Some(self.start + self.interval.mul_f64(index as f64)),
            stage: 0,
            late_after: late_tolerance(self.interval),
        })
    }

    fn workers(&self) -> usize {
        self.max_in_flight.min(self.iterations.max(1) as usize)
    }

    fn planned(&self) -> u64 {
        self.iterations
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
}
