//! Recovery after network fault windows. Every iteration's outcome is shown to the tracker as it ends;
//! for each window that closes during the run it finds the first success after the window and the
//! moment [`STREAK`] successes in a row had ended (the target is back), and counts the iterations
//! meant to start during the window that failed. The timeline then gives the load before, during and
//! after each window.

use std::time::{Duration, Instant};

use crate::metrics::TimelineRow;
use crate::proxy::Fault;
use crate::result::{RecoveryWindow, WindowStats};

/// Successes in a row after a window that count as recovered.
pub const STREAK: u32 = 10;

#[derive(Debug, Clone)]
struct Window {
    fault: String,
    from: Duration,
    until: Duration,
    failed_during: u64,
    first_success: Option<Duration>,
    streak: u32,
    recovered: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct RecoveryTracker {
    t0: Instant,
    windows: Vec<Window>,
}

impl RecoveryTracker {
    /// A tracker for the faults whose windows end; `None` when none does.
    pub fn new(faults: &[Fault], t0: Instant) -> Option<Self> {
        let windows: Vec<Window> = faults
            .iter()
            .filter_map(|f| {
                Some(Window {
                    fault: f.to_string(),
                    from: f.from,
                    until: f.until?,
                    failed_during: 0,
                    first_success: None,
                    streak: 0,
                    recovered: None,
                })
            })
            .collect();
        (!windows.is_empty()).then_some(Self { t0, windows })
    }

    /// One iteration: when it was meant to start, when it ended, and whether it succeeded.
    pub fn observe(&mut self, intended: Instant, finished: Instant, ok: bool) {
        let start = intended.saturating_duration_since(self.t0);
        let end = finished.saturating_duration_since(self.t0);
        for w in &mut self.windows {
            if !ok && start >= w.from && start < w.until {
                w.failed_during += 1;
            }
            if end < w.until || w.recovered.is_some() {
                continue;
            }
            if ok {
                w.first_success.get_or_insert(end);
                w.streak += 1;
                if w.streak >= STREAK {
                    w.recovered = Some(end);
                }
            } else {
                w.streak = 0;
            }
        }
    }

    /// Each window with its recovery and the load around it.
    pub fn report(&self, timeline: &[TimelineRow]) -> Vec<RecoveryWindow> {
        self.windows
            .iter()
            .map(|w| {
                let len = w.until.saturating_sub(w.from).max(Duration::from_secs(1));
                let secs = |d: Duration| d.as_secs_f64();
                RecoveryWindow {
                    fault: w.fault.clone(),
                    from_s: secs(w.from),
                    until_s: secs(w.until),
                    time_to_first_success_s: w.first_success.map(|t| secs(t - w.until)),
                    time_to_recover_s: w.recovered.map(|t| secs(t - w.until)),
                    lost: w.failed_during,
                    messages_lost: None,
                    before: stats(timeline, w.from.saturating_sub(len), w.from),
                    during: stats(timeline, w.from, w.until),
                    after: stats(timeline, w.until, w.until + len),
                }
            })
            .collect()
    }
}

/// The load over the whole seconds within `[from, until)`.
fn stats(timeline: &[TimelineRow], from: Duration, until: Duration) -> Option<WindowStats> {
    let rows: Vec<&TimelineRow> = timeline
        .iter()
        .filter(|r| {
            let t = Duration::from_secs(r.t_s);
            t >= from && t + Duration::from_secs(1) <= until.max(from + Duration::from_secs(1))
        })
        .collect();
    let iterations: u64 = rows.iter().map(|r| r.succeeded + r.failed).sum();
    if iterations == 0 {
        return None;
    }
    let succeeded: u64 = rows.iter().map(|r| r.succeeded).sum();
    Some(WindowStats {
        iterations,
        success_rate: succeeded as f64 / iterations as f64,
        worst_p99_ms: rows.iter().filter_map(|r| r.p99_ms).reduce(f64::max),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::{Direction, Toxic};

    #[test]
    fn recovery_is_the_end_of_the_first_streak_after_the_window() {
        let t0 = Instant::now();
        let fault = Fault {
            toxic: Toxic::Down,
            direction: Direction::Both,
            toxicity: 1.0,
            from: Duration::from_secs(5),
            until: Some(Duration::from_secs(10)),
        };
        let mut r = RecoveryTracker::new(&[fault], t0).unwrap();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        for ms in (0..5000).step_by(100) {
            r.observe(at(ms), at(ms + 5), true);
        }
        for ms in (5000..10_000).step_by(100) {
            r.observe(at(ms), at(ms + 50), false);
        }
        // After the window: a failure, one success, a failure, then a run of successes.
        r.observe(at(10_000), at(10_100), false);
        r.observe(at(10_200), at(10_300), true);
        r.observe(at(10_400), at(10_500), false);
        for k in 0..12 {
            r.observe(at(10_600 + k * 100), at(10_700 + k * 100), true);
        }
        let w = &r.report(&[])[0];
        assert_eq!(w.lost, 50);
        assert!((w.time_to_first_success_s.unwrap() - 0.3).abs() < 1e-9);
        // The tenth success of the streak ended at 10.7 + 0.9 s.
        assert!((w.time_to_recover_s.unwrap() - 1.6).abs() < 1e-9);
        assert_eq!(w.fault, "down from 5s until 10s");
    }
}
