//! Releasing an open load's iterations at their intended start times.
//!
//! The async runtime's timer wakes tasks on millisecond ticks: measured here, `sleep_until` was 1.2 ms
//! late at the median. Since an open load measures latency from each iteration's intended start, that
//! lateness would be charged to the target — a 100% error on a target that answers in 1 ms. So the
//! tickets of open and stepped loads are released by a thread of their own, which sleeps with the
//! operating system's high-resolution timer (0.12 ms late at the median, measured the same way), and
//! handed to the workers through a bounded channel. When every worker is busy the channel fills and the
//! thread waits; tickets then go out late, and their lateness, measured from the schedule, shows.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, mpsc};

use crate::schedule::{Schedule, Ticket};

/// Tickets released but not yet taken; a stalled target cannot make this grow.
const QUEUE: usize = 1024;
/// Longest single sleep, so that a stop is noticed promptly.
const MAX_SLEEP: Duration = Duration::from_millis(20);

pub struct Pacer {
    tickets: Mutex<mpsc::Receiver<Ticket>>,
    stop: Arc<AtomicBool>,
}

impl Pacer {
    /// Starts the pacing thread for `schedule`.
    pub fn start(schedule: Arc<dyn Schedule>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("harness-pacer".into())
            .spawn(move || release(&*schedule, &tx, &stopping))?;
        Ok(Self {
            tickets: Mutex::new(rx),
            stop,
        })
    }

    /// The next ticket, at or after its intended start; `None` when the schedule is done or stopped.
    pub async fn next(&self) -> Option<Ticket> {
        self.tickets.lock().await.recv().await
    }

    /// Releases no more tickets; waiting workers then see the end of the schedule.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn release(schedule: &dyn Schedule, tx: &mpsc::Sender<Ticket>, stop: &AtomicBool) {
    while let Some(ticket) = schedule.next() {
        if let Some(at) = ticket.intended {
            loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let now = Instant::now();
                if now >= at {
                    break;
                }
                std::thread::sleep((at - now).min(MAX_SLEEP));
            }
        }
        if stop.load(Ordering::Relaxed) || tx.blocking_send(ticket).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::units::Rate;
    use crate::schedule::OpenStage;
    use crate::schedule::open::OpenLoop;

    fn stage(rate: f64, n: u64) -> OpenStage {
        OpenStage {
            rate: Rate::per_second(rate),
            duration: Duration::from_secs_f64(n as f64 / rate),
            iterations: n,
            max_in_flight: 4,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn releases_every_ticket_never_before_its_intended_start() {
        let pacer =
            Pacer::start(Arc::new(OpenLoop::new(&stage(200.0, 40), Instant::now()))).unwrap();
        let mut released = 0;
        while let Some(t) = pacer.next().await {
            assert!(
                Instant::now() >= t.intended.unwrap(),
                "ticket {} released early",
                t.index
            );
            released += 1;
        }
        assert_eq!(released, 40);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stopping_ends_the_schedule_for_waiting_workers() {
        let pacer =
            Pacer::start(Arc::new(OpenLoop::new(&stage(1.0, 100), Instant::now()))).unwrap();
        assert!(
            pacer.next().await.is_some(),
            "the first ticket is due at once"
        );
        pacer.stop();
        let next = tokio::time::timeout(Duration::from_secs(2), pacer.next()).await;
        assert_eq!(next.ok(), Some(None));
    }
}
