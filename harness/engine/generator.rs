//! Who set the pace when an open load's iterations started late: the generator or the target.
//!
//! Late starts come from one of two places. The target may be too slow for the rate: at its service
//! time the load needs more iterations in flight than `max_in_flight` allows (Little's law: rate ×
//! mean service time), so they queue in the harness — the target is at its limit, and the bound is
//! busy: the achieved rate × the mean service time (the mean number in flight, Little's law again)
//! comes near it. Or the generator itself cannot keep up: it has used (nearly) all the machine's
//! cores, or it fell behind while the bound had room to spare (fewer than half of the allowed
//! iterations in flight on average). Then the latencies, counted from the intended starts, describe
//! the generator's backlog, and a saturated generator distorts the service times too.
//!
//! Both are means over the stretch judged: a target that stalls for a moment, filling the bound only
//! then, can still look like a generator that fell behind.

use crate::metrics::timeline::behind_schedule;

/// Share of the machine's cores at or above which the harness counts as saturated.
pub const SATURATED: f64 = 0.9;

/// What is known of a stretch of an open load that started some iterations late.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    pub late: u64,
    /// The rate the stretch achieved.
    pub achieved_rate_per_s: f64,
    pub iterations: u64,
    pub rate_per_s: f64,
    pub mean_service_ms: Option<f64>,
    pub max_in_flight: u32,
    /// Share of the machine's cores the harness used meanwhile, when known.
    pub cpu: Option<f64>,
}

/// Who set the pace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Blame {
    /// Not more than the tolerated share started late.
    OnTime,
    /// The target's service time filled the bound on iterations in flight.
    Target { needed_in_flight: f64 },
    /// The generator could not keep up.
    Generator {
        needed_in_flight: f64,
        /// The harness's share of the cores, when it was saturated.
        saturated: Option<f64>,
    },
}

impl Pace {
    /// Iterations in flight the rate needs at the target's mean service time.
    pub fn needed_in_flight(&self) -> f64 {
        self.rate_per_s * self.mean_service_ms.unwrap_or(0.0) / 1000.0
    }

    /// Iterations in flight on average: the achieved rate × the mean service time.
    pub fn mean_in_flight(&self) -> f64 {
        self.achieved_rate_per_s * self.mean_service_ms.unwrap_or(0.0) / 1000.0
    }

    pub fn blame(&self) -> Blame {
        if !behind_schedule(self.late, self.iterations) {
            return Blame::OnTime;
        }
        let needed_in_flight = self.needed_in_flight();
        if let Some(cpu) = self.cpu.filter(|c| *c >= SATURATED) {
            return Blame::Generator {
                needed_in_flight,
                saturated: Some(cpu),
            };
        }
        let bound = f64::from(self.max_in_flight);
        let bound_was_full =
            needed_in_flight >= 0.9 * bound && self.mean_in_flight() >= 0.5 * bound;
        if bound_was_full {
            Blame::Target { needed_in_flight }
        } else {
            Blame::Generator {
                needed_in_flight,
                saturated: None,
            }
        }
    }
}

/// The mean of the known CPU shares among `rows`.
pub fn mean_cpu<'a>(rows: impl Iterator<Item = &'a crate::metrics::TimelineRow>) -> Option<f64> {
    let shares: Vec<f64> = rows.filter_map(|r| r.harness_cpu).collect();
    (!shares.is_empty()).then(|| shares.iter().sum::<f64>() / shares.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pace(late: u64, mean_service_ms: f64, cpu: Option<f64>) -> Pace {
        Pace {
            late,
            achieved_rate_per_s: 700.0,
            iterations: 1000,
            rate_per_s: 1000.0,
            mean_service_ms: Some(mean_service_ms),
            max_in_flight: 20,
            cpu,
        }
    }

    #[test]
    fn late_starts_are_blamed_on_whoever_set_the_pace() {
        assert_eq!(
            pace(5, 1.0, None).blame(),
            Blame::OnTime,
            "0.5% is within tolerance"
        );
        // 1000/s at 50 ms needs 50 in flight, more than the 20 allowed: the target is too slow.
        assert_eq!(
            pace(300, 50.0, Some(0.3)).blame(),
            Blame::Target {
                needed_in_flight: 50.0
            }
        );
        // 1000/s at 2 ms needs 2 of the 20: the generator itself fell behind.
        assert!(matches!(
            pace(300, 2.0, Some(0.4)).blame(),
            Blame::Generator {
                saturated: None,
                ..
            }
        ));
        // 1000/s at 50 ms needs 50 of the 20, but only 100/s were achieved: 5 in flight on average,
        // the bound had room, and the generator did not start what it could have.
        let starved = Pace {
            achieved_rate_per_s: 100.0,
            ..pace(300, 50.0, Some(0.5))
        };
        assert!(matches!(starved.blame(), Blame::Generator { .. }));
        // A saturated generator is to blame whatever its service times say (they are its own too).
        assert!(matches!(
            pace(300, 50.0, Some(0.97)).blame(),
            Blame::Generator {
                saturated: Some(_),
                ..
            }
        ));
    }
}
