//! The worker pool: the one loop that runs iterations, whatever the load model. Each worker takes a
//! ticket from the schedule, waits for its intended start, runs the driver, and records the result in
//! its own recorder. Pacing lives in the schedule, the work in the driver; this loop only joins them.
//!
//! Stopping has two levels: `soft` stops workers from starting iterations (interrupt, budget spent);
//! `hard` abandons iterations still in flight once their grace is over. Abandoned iterations are
//! counted, not recorded as failures of the target.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::pacer::Pacer;
use super::recovery::RecoveryTracker;
use crate::drivers::{Driver, IterationContext, Timer};
use crate::faults::FaultSchedule;
use crate::metrics::{Recorder, Timing};
use crate::schedule::{Schedule, Ticket};

/// The two levels of stopping.
#[derive(Debug, Clone, Default)]
pub struct Control {
    /// Start no more iterations.
    pub soft: CancellationToken,
    /// Abandon iterations in flight.
    pub hard: CancellationToken,
}

/// The only counters workers share. Completed iterations are counted in each worker's own recorder;
/// iterations started but not completed are the ones in flight (or, after a hard stop, abandoned).
#[derive(Debug, Default)]
pub struct Live {
    pub started: AtomicU64,
    /// Workers lost to a bug (a panic); the run goes on with the others.
    pub crashed_workers: AtomicU64,
}

/// Where workers get their tickets: straight from a closed load's schedule, or from the pacing thread
/// of an open or stepped one (which releases each at its intended start).
#[derive(Clone)]
pub enum Tickets {
    Direct(Arc<dyn Schedule>),
    Paced(Arc<Pacer>),
}

impl Tickets {
    async fn next(&self) -> Option<Ticket> {
        match self {
            Tickets::Direct(s) => s.next(),
            Tickets::Paced(p) => p.next().await,
        }
    }
}

/// What every worker shares.
pub struct Pool<D> {
    pub tickets: Tickets,
    pub driver: Arc<D>,
    pub faults: Arc<FaultSchedule>,
    pub control: Control,
    pub live: Arc<Live>,
    pub seed: u64,
    pub iteration_timeout: Duration,
    /// Sees every outcome when the run has network fault windows.
    pub recovery: Option<Arc<Mutex<RecoveryTracker>>>,
}

impl<D> Clone for Pool<D> {
    fn clone(&self) -> Self {
        Self {
            tickets: self.tickets.clone(),
            driver: Arc::clone(&self.driver),
            faults: Arc::clone(&self.faults),
            control: self.control.clone(),
            live: Arc::clone(&self.live),
            seed: self.seed,
            iteration_timeout: self.iteration_timeout,
            recovery: self.recovery.clone(),
        }
    }
}

impl<D: Driver> Pool<D> {
    /// Runs `workers` workers until the schedule is exhausted or the run is stopped, worker `i`
    /// recording into `recorders[i % len]` (see [`recorder_shards`]). A hard stop aborts the
    /// workers' tasks, so the iteration loop itself never waits on the stop signal.
    pub async fn run(self, workers: u32, recorders: &[Arc<Mutex<Recorder>>]) {
        let mut tasks = JoinSet::new();
        for id in 0..workers {
            let recorder = &recorders[id as usize % recorders.len().max(1)];
            tasks.spawn(self.clone().worker(id, Arc::clone(recorder)));
        }
        let mut workers = tasks;
        let mut aborted = false;
        loop {
            let joined = tokio::select! {
                joined = workers.join_next() => joined,
                _ = self.control.hard.cancelled(), if !aborted => {
                    aborted = true;
                    workers.abort_all();
                    continue;
                }
            };
            match joined {
                None => break,
                Some(Err(e)) if e.is_panic() => {
                    self.live.crashed_workers.fetch_add(1, Ordering::Relaxed);
                }
                Some(_) => {}
            }
        }
    }

    async fn worker(self, id: u32, recorder: Arc<Mutex<Recorder>>) {
        let mut timer = Timer::for_worker(id);
        loop {
            if self.control.soft.is_cancelled() {
                return;
            }
            let Some(ticket) = self.tickets.next().await else {
                return;
            };
            if self.control.soft.is_cancelled() {
                return;
            }
            let started = Instant::now();
            let intended = ticket.intended.unwrap_or(started);
            let late = started.saturating_duration_since(intended) > ticket.late_after;
            let ctx = IterationContext {
                index: ticket.index,
                worker: id,
                rng: iteration_rng(self.seed, ticket.index),
                fault: self.faults.for_iteration(ticket.index),
                deadline: started + self.iteration_timeout,
            };
            self.live.started.fetch_add(1, Ordering::Relaxed);
            let report = self.driver.iterate(ctx, &mut timer).await;
            let timing = Timing {
                intended,
                started,
                finished: Instant::now(),
                late,
                stage: ticket.stage,
            };
            recorder
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record(&timing, &report);
            if let Some(r) = &self.recovery {
                r.lock().unwrap_or_else(|p| p.into_inner()).observe(
                    timing.intended,
                    timing.finished,
                    report.failure().is_none(),
                );
            }
        }
    }
}

/// Recorders per runtime thread. Workers share a recorder (each record is a short critical section),
/// so the run's memory does not grow with its concurrency: a recorder holds a few dozen histograms,
/// hundreds of kilobytes, where a worker otherwise needs a few. Several per thread, so two threads
/// seldom meet on one lock.
pub const SHARDS_PER_THREAD: usize = 4;

/// How many recorders `workers` workers record into: one each up to [`SHARDS_PER_THREAD`] per
/// thread of the machine.
pub fn recorder_shards(workers: usize) -> usize {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    workers.clamp(1, SHARDS_PER_THREAD * threads)
}

/// Iteration `index`'s own random stream: the same seed gives every iteration the same stream,
/// whichever worker runs it and whenever.
pub fn iteration_rng(seed: u64, index: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(splitmix64(seed ^ splitmix64(index)))
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iteration::IterationReport;
    use crate::schedule::closed::ClosedLoop;
    use rand::RngExt;

    struct Sleepy(Duration);

    impl Driver for Sleepy {
        async fn iterate(&self, mut ctx: IterationContext, _timer: &mut Timer) -> IterationReport {
            let _: u64 = ctx.rng.random();
            tokio::time::sleep(self.0).await;
            IterationReport::succeeded()
        }
    }

    fn pool(
        iterations: u64,
        workers: u32,
        work: Duration,
    ) -> (Pool<Sleepy>, Vec<Arc<Mutex<Recorder>>>) {
        let schedule: Arc<dyn Schedule> = Arc::new(ClosedLoop::new(iterations, workers));
        let recorders = (0..schedule.workers())
            .map(|_| Arc::new(Mutex::new(Recorder::new(0, 0, 0))))
            .collect();
        let pool = Pool {
            tickets: Tickets::Direct(schedule),
            driver: Arc::new(Sleepy(work)),
            faults: Arc::new(FaultSchedule::default()),
            control: Control::default(),
            live: Arc::new(Live::default()),
            seed: 1,
            iteration_timeout: Duration::from_secs(5),
            recovery: None,
        };
        (pool, recorders)
    }

    #[tokio::test(start_paused = true)]
    async fn every_ticket_runs_once_across_the_workers() {
        let (pool, recorders) = pool(20, 4, Duration::from_millis(10));
        let live = Arc::clone(&pool.live);
        pool.run(4, &recorders).await;
        let total: u64 = recorders
            .iter()
            .map(|r| r.lock().unwrap().totals.iterations)
            .sum();
        assert_eq!(total, 20);
        assert_eq!(live.started.load(Ordering::Relaxed), 20);
        assert!(
            recorders
                .iter()
                .all(|r| r.lock().unwrap().totals.iterations == 5),
            "work spreads evenly"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_soft_stop_ends_the_run_after_iterations_in_flight() {
        let (pool, recorders) = pool(1000, 2, Duration::from_millis(100));
        let (control, live) = (pool.control.clone(), Arc::clone(&pool.live));
        let kept = recorders.clone();
        let run = tokio::spawn(async move { pool.run(2, &recorders).await });
        tokio::time::sleep(Duration::from_millis(250)).await;
        control.soft.cancel();
        run.await.unwrap();
        assert_eq!(done(&kept), 6, "3 rounds of 2 workers");
        assert_eq!(live.started.load(Ordering::Relaxed), 6, "nothing abandoned");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hard_stop_abandons_iterations_in_flight() {
        let (pool, recorders) = pool(10, 2, Duration::from_secs(60));
        let (control, live) = (pool.control.clone(), Arc::clone(&pool.live));
        let kept = recorders.clone();
        let run = tokio::spawn(async move { pool.run(2, &recorders).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        control.soft.cancel();
        control.hard.cancel();
        run.await.unwrap();
        assert_eq!(done(&kept), 0);
        assert_eq!(
            live.started.load(Ordering::Relaxed),
            2,
            "two started, none finished: both abandoned"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn many_workers_share_a_few_recorders_and_lose_nothing() {
        let (pool, _) = pool(3000, 300, Duration::from_millis(10));
        let recorders: Vec<_> = (0..3)
            .map(|_| Arc::new(Mutex::new(Recorder::new(0, 0, 0))))
            .collect();
        pool.run(300, &recorders).await;
        assert_eq!(done(&recorders), 3000);
        assert!(
            recorders
                .iter()
                .all(|r| r.lock().unwrap().totals.iterations == 1000),
            "each recorder takes the workers of its shard: {:?}",
            recorders
                .iter()
                .map(|r| r.lock().unwrap().totals.iterations)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn recorders_stop_growing_with_workers() {
        let most = recorder_shards(usize::MAX);
        assert_eq!(recorder_shards(0), 1);
        assert_eq!(recorder_shards(1), 1);
        assert_eq!(recorder_shards(10_000), most);
        assert!(most <= SHARDS_PER_THREAD * 1024);
    }

    fn done(recorders: &[Arc<Mutex<Recorder>>]) -> u64 {
        recorders
            .iter()
            .map(|r| r.lock().unwrap().totals.iterations)
            .sum()
    }

    #[test]
    fn iteration_streams_depend_on_seed_and_index_only() {
        let a: u64 = iteration_rng(7, 3).random();
        assert_eq!(a, iteration_rng(7, 3).random::<u64>());
        assert_ne!(a, iteration_rng(7, 4).random::<u64>());
        assert_ne!(a, iteration_rng(8, 3).random::<u64>());
    }
}
