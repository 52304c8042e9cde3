//! The load phase of a run: the plan's schedule (released by the pacing thread for open and stepped
//! loads), the worker pool with its fault schedule, a few recorders per thread, the timeline taken
//! once a second with progress and checkpoints, and the three ways the load ends — its schedule
//! done, its budget spent, or an interrupt — with the grace iterations in flight get.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use url::Url;

use super::assemble::{Extras, Snapshot, Stop, assemble};
use super::pacer::Pacer;
use super::pool::{Control, Live, Pool, Tickets};
use super::recovery::RecoveryTracker;
use super::{CHECKPOINT_EVERY, Observer, Progress, Signals};
use crate::drivers::Driver;
use crate::faults::FaultSchedule;
use crate::journal;
use crate::metrics::timeline::block_seconds;
use crate::metrics::{Recorder, Timeline, TimelineRow};
use crate::plan::RunPlan;
use crate::result::{RecoveryWindow, RunResult};

/// When the run and its load started.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub started_at: SystemTime,
    /// Start of the whole run (probes before the load included): the budget counts from here.
    pub run_start: Instant,
    /// Start of the load: the timeline counts from here.
    pub t0: Instant,
}

impl Clock {
    pub fn now() -> Self {
        let now = Instant::now();
        Self {
            started_at: SystemTime::now(),
            run_start: now,
            t0: now,
        }
    }

    /// When the run's budget runs out.
    pub fn deadline(&self, plan: &RunPlan) -> Instant {
        self.run_start + plan.budget.timeout
    }
}

/// What the load needs beside its driver: the shape of each worker's recorder.
#[derive(Debug, Clone, Default)]
pub struct Shape {
    /// Steps with their own latency histograms (a procedure's; 0 otherwise).
    pub steps: usize,
    /// Points where a fault can be injected (a procedure's steps; 1 otherwise).
    pub fault_points: usize,
    /// Metrics the target reports that a procedure records.
    pub recorded_names: Vec<String>,
}

impl Shape {
    pub fn of(plan: &RunPlan) -> Self {
        match plan.target.procedure() {
            Some(p) => Self {
                steps: p.steps.len(),
                fault_points: p.steps.len().max(1),
                recorded_names: p.recorded_metrics().iter().map(|s| s.to_string()).collect(),
            },
            None => Self {
                steps: 0,
                fault_points: 1,
                recorded_names: Vec::new(),
            },
        }
    }
}

/// Everything a running load shares between the ticker, the pool and the final assembly.
pub struct Running<'a> {
    pub plan: &'a RunPlan,
    pub url: &'a Url,
    recorders: Vec<Arc<Mutex<Recorder>>>,
    /// The session's own recorders (connections, subscribers, probes), merged with the workers'.
    side: Vec<Arc<Mutex<Recorder>>>,
    shape: Shape,
    timeline: Arc<Mutex<Timeline>>,
    live: Arc<Live>,
    pub clock: Clock,
    injected: u64,
    /// What the probes before the load measured (for checkpoints).
    before: Extras,
    /// How long the load ran, once it has ended.
    load_elapsed: Option<Duration>,
    /// Network fault windows, and how the target recovered after each.
    recovery: Option<Arc<Mutex<RecoveryTracker>>>,
}

impl<'a> Running<'a> {
    /// Everything the load needs that takes time to make (the recorders), made before the
    /// clock starts: the first iterations are due the moment it does.
    pub fn prepare(
        plan: &'a RunPlan,
        url: &'a Url,
        side: Vec<Arc<Mutex<Recorder>>>,
        clock: Clock,
        before: Extras,
    ) -> Self {
        Self::new(plan, url, (Shape::of(plan), side), clock, before)
    }

    fn new(
        plan: &'a RunPlan,
        url: &'a Url,
        (shape, side): (Shape, Vec<Arc<Mutex<Recorder>>>),
        clock: Clock,
        before: Extras,
    ) -> Self {
        let stages = plan.load.judged_stages().len();
        let history = plan.judgement.invariants;
        let scheduled = plan.load.is_scheduled();
        Self {
            plan,
            url,
            recorders: (0..super::pool::recorder_shards(plan.load.workers()))
                .map(|_| {
                    let r = Recorder::new(shape.steps, shape.recorded_names.len(), stages);
                    let r = if scheduled {
                        r
                    } else {
                        r.without_service_time()
                    };
                    let r = if history { r.with_history() } else { r };
                    let r = if plan.judgement.history {
                        r.with_writes()
                    } else {
                        r
                    };
                    Arc::new(Mutex::new(r))
                })
                .collect(),
            side,
            shape,
            timeline: Arc::new(Mutex::new({
                let timeline = Timeline::new(
                    plan.judgement.drift_window_s,
                    block_seconds(
                        plan.load
                            .scheduled_duration()
                            .unwrap_or(plan.budget.timeout)
                            .as_secs(),
                    ),
                );
                match plan.identity.shard.count {
                    1 => timeline,
                    _ => timeline.with_histograms(),
                }
            })),
            live: Arc::new(Live::default()),
            clock,
            injected: 0,
            before,
            load_elapsed: None,
            recovery: RecoveryTracker::new(&plan.faults.network, clock.t0)
                .map(|r| Arc::new(Mutex::new(r))),
        }
    }

    /// Iterations started and not yet recorded.
    fn in_flight(&self) -> u64 {
        let done: u64 = self
            .recorders
            .iter()
            .map(|r| {
                r.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .totals
                    .iterations
            })
            .sum();
        self.live
            .started
            .load(Ordering::Relaxed)
            .saturating_sub(done)
    }

    /// The result as it stands: final when `stop` says how the load ended, a checkpoint while running.
    pub fn snapshot(&self, stop: Stop, extras: &Extras) -> RunResult {
        let mut merged = Recorder::new(
            self.shape.steps,
            self.shape.recorded_names.len(),
            self.plan.load.judged_stages().len(),
        );
        for r in self.recorders.iter().chain(&self.side) {
            merged.absorb(&r.lock().unwrap_or_else(|p| p.into_inner()));
        }
        let timeline = self.timeline.lock().unwrap_or_else(|p| p.into_inner());
        // Started but never recorded: cut off by a hard stop (while running, simply in flight).
        let abandoned = match stop {
            Stop::Running => 0,
            _ => self
                .live
                .started
                .load(Ordering::Relaxed)
                .saturating_sub(merged.totals.iterations),
        };
        assemble(Snapshot {
            plan: self.plan,
            url: self.url,
            merged: &merged,
            recorded_names: &self.shape.recorded_names,
            timeline: timeline.rows().to_vec(),
            blocks: Some(timeline.blocks()),
            drift: timeline.drift(),
            started_at: self.clock.started_at,
            load_started_at: Some(
                self.clock.started_at
                    + self
                        .clock
                        .t0
                        .saturating_duration_since(self.clock.run_start),
            ),
            load_start: self.clock.t0,
            elapsed: self.clock.run_start.elapsed(),
            load_elapsed: self.load_elapsed.unwrap_or_else(|| self.clock.t0.elapsed()),
            stop,
            abandoned,
            crashed_workers: self.live.crashed_workers.load(Ordering::Relaxed),
            injected: self.injected,
            extras,
        })
    }

    pub fn timeline_rows(&self) -> Vec<TimelineRow> {
        self.timeline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .rows()
            .to_vec()
    }

    /// The windows and the recovery after each, when the run had fault windows.
    pub fn recovery_report(&self) -> Option<Vec<RecoveryWindow>> {
        let tracker = self.recovery.as_ref()?;
        let rows = self.timeline_rows();
        Some(
            tracker
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .report(&rows),
        )
    }

    /// Every write to a collection the workers kept.
    pub fn writes(&self) -> Vec<crate::history::Write> {
        self.recorders
            .iter()
            .flat_map(|r| r.lock().unwrap_or_else(|p| p.into_inner()).writes.clone())
            .collect()
    }

    /// Every acknowledged operation the workers kept.
    pub fn history(&self) -> Vec<crate::invariants::Ack> {
        self.recorders
            .iter()
            .flat_map(|r| r.lock().unwrap_or_else(|p| p.into_inner()).history.clone())
            .collect()
    }
}

/// Runs the load with `driver` on `running` (made by [`Running::prepare`]), its clock starting at
/// `t0`; returns the running state (for the caller's final snapshot) and why the load ended.
pub async fn run_load<'a, D: Driver>(
    mut running: Running<'a>,
    t0: Instant,
    observer: &dyn Observer,
    signals: &Signals,
    driver: Arc<D>,
) -> (Running<'a>, Stop) {
    let plan = running.plan;
    let clock = Clock {
        t0,
        ..running.clock
    };
    running.clock = clock;
    running.recovery =
        RecoveryTracker::new(&plan.faults.network, t0).map(|r| Arc::new(Mutex::new(r)));
    let schedule = plan.load.schedule(t0);
    let faults = match &plan.faults.injected {
        Some(i) => FaultSchedule::draw(
            plan.identity.seed,
            i.rate,
            &i.kinds,
            i.latency,
            plan.load.planned_overall(),
            running.shape.fault_points,
        )
        .only(plan.load.shard()),
        None => FaultSchedule::default(),
    };
    running.injected = faults.len() as u64;
    let control = Control::default();
    let pacer = if plan.load.is_scheduled() {
        match Pacer::start(Arc::clone(&schedule)) {
            Ok(p) => Some(Arc::new(p)),
            Err(e) => {
                let why = format!("cannot start the pacing thread: {e}");
                return (running, Stop::NotStarted(why));
            }
        }
    } else {
        None
    };
    let tickets = match &pacer {
        Some(p) => Tickets::Paced(Arc::clone(p)),
        None => Tickets::Direct(Arc::clone(&schedule)),
    };
    let pool = Pool {
        tickets,
        driver,
        faults: Arc::new(faults),
        control: control.clone(),
        live: Arc::clone(&running.live),
        seed: plan.identity.seed,
        iteration_timeout: plan.budget.iteration,
        recovery: running.recovery.clone(),
    };

    observer.journal_start(&running.snapshot(Stop::Running, &running.before));
    let stop = {
        let ticker = tick(&running, observer, schedule.planned());
        let work = pool.run(
            u32::try_from(plan.load.workers()).unwrap_or(u32::MAX),
            &running.recorders,
        );
        tokio::pin!(work);
        tokio::pin!(ticker);
        let budget = tokio::time::sleep_until(clock.deadline(plan).into());
        tokio::pin!(budget);
        let stop = tokio::select! {
            _ = &mut work => Stop::Completed,
            _ = &mut budget => Stop::Budget,
            _ = signals.stop.cancelled() => Stop::Interrupted,
            _ = &mut ticker => unreachable!("the ticker never ends by itself"),
        };
        if stop != Stop::Completed {
            control.soft.cancel();
            if let Some(p) = &pacer {
                p.stop();
            }
            let grace = plan.budget.grace();
            observer.stopping(&format!(
                "{}: no new iterations; {} in flight get up to {}s to finish",
                if stop == Stop::Budget {
                    "budget spent"
                } else {
                    "interrupted"
                },
                running.in_flight(),
                grace.as_secs_f64()
            ));
            let finished = tokio::select! {
                _ = &mut work => true,
                _ = tokio::time::sleep(grace) => false,
                _ = signals.force.cancelled() => false,
            };
            if !finished {
                // Abandoned iterations stop at their next await; the pool then ends at once.
                control.hard.cancel();
                work.await;
            }
        }
        stop
    };
    running.load_elapsed = Some(running.clock.t0.elapsed());
    // The last, partial second.
    let elapsed = running.clock.t0.elapsed();
    let t_s = elapsed.as_secs();
    {
        let mut timeline = running.timeline.lock().unwrap_or_else(|p| p.into_inner());
        let last = timeline.rows().last().map(|r| r.t_s + 1).unwrap_or(0);
        if last <= t_s {
            timeline.tick(&running.recorders, t_s);
            timeline.last_covers(elapsed.as_secs_f64() - t_s as f64);
        }
    }
    (running, stop)
}

/// Once a second: a timeline row and a progress report; every [`CHECKPOINT_EVERY`], a checkpoint;
/// between, every [`journal::SLICE`], a slice of measurements for the journal.
async fn tick(running: &Running<'_>, observer: &dyn Observer, planned: u64) {
    let mut interval = tokio::time::interval_at(
        (running.clock.t0 + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut slices =
        tokio::time::interval_at((running.clock.t0 + journal::SLICE).into(), journal::SLICE);
    slices.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_checkpoint = running.clock.t0;
    let mut t_s = 0;
    loop {
        tokio::select! {
            biased;
            _ = interval.tick() => {}
            _ = slices.tick() => {
                let slice = running
                    .timeline
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .gather(&running.recorders);
                if !slice.is_empty() {
                    let at = running.clock.t0.elapsed();
                    observer.journal(journal::Entry::Slice { at, slice });
                }
                continue;
            }
        }
        let (slice, row, last_second, p95, (done, failed, late)) = {
            let mut timeline = running.timeline.lock().unwrap_or_else(|p| p.into_inner());
            let (slice, row) = timeline.tick_with_slice(&running.recorders, t_s);
            let row = row.clone();
            let n = row.succeeded + row.failed;
            (slice, row, n, timeline.running_p95(), timeline.counts())
        };
        let at = running.clock.t0.elapsed();
        if !slice.is_empty() {
            observer.journal(journal::Entry::Slice { at, slice });
        }
        observer.journal(journal::Entry::Row(row));
        t_s += 1;
        let live = &running.live;
        observer.progress(&Progress {
            elapsed: running.clock.t0.elapsed(),
            scheduled: running.plan.load.scheduled_duration(),
            planned,
            done,
            failed,
            late,
            in_flight: live.started.load(Ordering::Relaxed).saturating_sub(done),
            last_second,
            p95_ms: p95,
        });
        if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            last_checkpoint = Instant::now();
            observer.checkpoint(&running.snapshot(Stop::Running, &running.before));
        }
    }
}
