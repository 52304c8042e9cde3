//! The engine runs a planned scenario: it checks the target is there, builds the driver and the
//! schedule for the load model, runs the worker pool under the run's budget, takes the timeline once a
//! second, answers interrupts, and assembles the [`RunResult`].
//!
//! It knows nothing of terminals or files: progress and checkpoints go to an [`Observer`], and the
//! result is returned for the caller to write.

pub mod assemble;
pub mod closed;
pub mod network;
pub mod open;
pub mod pacer;
pub mod pool;
pub mod preflight;
pub mod recovery;
pub mod schedule;
pub mod stepped;
pub mod target_admin;
pub mod ws;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;
use url::Url;

use self::assemble::{Extras, Snapshot, Stop, assemble};
use self::pacer::Pacer;
use self::pool::{Control, Live, Pool, Tickets};
use self::schedule::Schedule;
use crate::drivers::http::{HttpDriver, HttpSettings};
use crate::faults::FaultSchedule;
use crate::metrics::{Recorder, Timeline};
use crate::result::RunResult;
use crate::scenario::{Embedded, Load, Scenario, Suite, TargetKind};

/// How often a checkpoint of the result is handed to the observer while the run goes on.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);
/// Longest grace iterations in flight get once the run is told to stop.
pub const MAX_GRACE: Duration = Duration::from_secs(3);

/// A scenario ready to run: where its target is, and the run's identity.
#[derive(Debug, Clone)]
pub struct RunPlan {
    pub scenario: Scenario,
    /// Base URL of the target.
    pub url: Url,
    /// The reference target serving `url`, when the harness started it.
    pub embedded: Option<Embedded>,
    pub seed: u64,
    pub run_id: String,
    /// Requests may go to hosts outside loopback.
    pub allow_remote: bool,
}

/// Where the run stands, for progress displays.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub elapsed: Duration,
    /// How long the schedule lasts (open and stepped loads).
    pub scheduled: Option<Duration>,
    pub planned: u64,
    pub done: u64,
    pub failed: u64,
    pub late: u64,
    pub in_flight: u64,
    /// Iterations completed in the last second.
    pub last_second: u64,
    /// p95 of everything completed so far, in milliseconds.
    pub p95_ms: Option<f64>,
}

/// Receives progress and checkpoints; the CLI shows the one and writes the other.
pub trait Observer: Send + Sync {
    fn progress(&self, _progress: &Progress) {}
    fn checkpoint(&self, _partial: &RunResult) {}
    /// The run was asked to stop and is giving iterations in flight their grace.
    fn stopping(&self, _why: &str) {}
    /// The run moved to a phase other than the load (a probe, say).
    fn phase(&self, _what: &str) {}
}

/// An observer that ignores everything.
pub struct Quiet;

impl Observer for Quiet {}

/// How the caller asks the run to stop.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// First interrupt: stop starting iterations, give those in flight their grace.
    pub stop: CancellationToken,
    /// Second interrupt: abandon iterations in flight at once.
    pub force: CancellationToken,
}

/// Everything a running scenario shares between the ticker, the pool and the final assembly.
struct Running<'a> {
    plan: &'a RunPlan,
    recorders: Vec<Arc<Mutex<Recorder>>>,
    recorded_names: Vec<String>,
    timeline: Arc<Mutex<Timeline>>,
    live: Arc<Live>,
    clock: Clock,
    injected: u64,
    steps: usize,
    stages: usize,
    /// What the probes before the load measured (for checkpoints).
    before: Extras,
    /// How long the load ran, once it has ended.
    load_elapsed: Option<Duration>,
    /// Network fault windows, and how the target recovered after each.
    recovery: Option<Arc<Mutex<recovery::RecoveryTracker>>>,
}

/// When the run and its load started.
#[derive(Debug, Clone, Copy)]
struct Clock {
    started_at: SystemTime,
    /// Start of the whole run (probes before the load included): the budget counts from here.
    run_start: Instant,
    /// Start of the load: the timeline counts from here.
    t0: Instant,
}

impl Clock {
    fn now() -> Self {
        let now = Instant::now();
        Self {
            started_at: SystemTime::now(),
            run_start: now,
            t0: now,
        }
    }
}

impl Running<'_> {
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

    fn snapshot(
        &self,
        stop: Stop,
        invariants: Option<Result<crate::invariants::InvariantReport, String>>,
        extras: &Extras,
    ) -> RunResult {
        let mut merged = Recorder::new(self.steps, self.recorded_names.len(), self.stages);
        for r in &self.recorders {
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
            merged: &merged,
            recorded_names: &self.recorded_names,
            timeline: timeline.rows().to_vec(),
            drift: timeline.drift(),
            started_at: self.clock.started_at,
            elapsed: self.clock.run_start.elapsed(),
            load_elapsed: self.load_elapsed.unwrap_or_else(|| self.clock.t0.elapsed()),
            stop,
            abandoned,
            crashed_workers: self.live.crashed_workers.load(Ordering::Relaxed),
            injected: self.injected,
            invariants,
            extras,
        })
    }

    fn timeline_rows(&self) -> Vec<crate::metrics::TimelineRow> {
        self.timeline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .rows()
            .to_vec()
    }

    /// The windows and the recovery after each, when the run had fault windows.
    fn recovery_report(&self) -> Option<Vec<crate::result::RecoveryWindow>> {
        let tracker = self.recovery.as_ref()?;
        let rows = self.timeline_rows();
        Some(
            tracker
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .report(&rows),
        )
    }

    fn history(&self) -> Vec<crate::invariants::Ack> {
        self.recorders
            .iter()
            .flat_map(|r| r.lock().unwrap_or_else(|p| p.into_inner()).history.clone())
            .collect()
    }
}

/// A result for a run that could not start (or was stopped before its load), keeping what the probes
/// before it measured.
pub fn not_started(plan: &RunPlan, why: String) -> RunResult {
    stopped_before_load(
        plan,
        Stop::NotStarted(why),
        &Extras::default(),
        Clock::now(),
    )
}

fn stopped_before_load(plan: &RunPlan, stop: Stop, extras: &Extras, clock: Clock) -> RunResult {
    let merged = Recorder::new(0, 0, 0);
    assemble(Snapshot {
        plan,
        merged: &merged,
        recorded_names: &[],
        timeline: Vec::new(),
        drift: None,
        started_at: clock.started_at,
        elapsed: clock.run_start.elapsed(),
        load_elapsed: Duration::ZERO,
        stop,
        abandoned: 0,
        crashed_workers: 0,
        injected: 0,
        invariants: None,
        extras,
    })
}

/// Runs `plan` to the end, to its budget, or until `signals` stop it.
pub async fn run(plan: &RunPlan, observer: &dyn Observer, signals: Signals) -> RunResult {
    if plan.scenario.target.kind == TargetKind::Websocket {
        return ws::run(plan, observer, signals).await;
    }
    let scenario = &plan.scenario;
    let Some(procedure) = scenario.target.procedure.clone() else {
        return not_started(plan, "the target has no procedure to run".into());
    };
    if let Err(why) = preflight::check_reachable(&plan.url).await {
        return not_started(plan, format!("target unreachable: {why}"));
    }
    let clock = Clock::now();
    let chaos = scenario.faults.server.as_ref().map(|c| c.to_json());
    if let Some(settings) = &chaos
        && let Err(why) = target_admin::set_chaos(&plan.url, settings).await
    {
        return not_started(
            plan,
            format!("cannot set the target's chaos controls: {why}"),
        );
    }
    let mut before = Extras::default();
    if let Some(p) = &scenario.probes.rate_limit {
        observer.phase(&crate::probes::rate_limit::describe(p));
        let probe = crate::probes::rate_limit::probe_http(&plan.url, p, scenario.iteration_timeout);
        tokio::select! {
            m = probe => match m {
                Ok(m) => {
                    before.checks.push(crate::probes::rate_limit::check(&m));
                    if p.require_retry_after
                        && let Some(c) = crate::probes::rate_limit::retry_after_check(&m)
                    {
                        before.checks.push(c);
                    }
                    before.rate_limit = Some(m);
                }
                Err(e) => before.notes.push(format!("The rate-limit probe could not run: {e}")),
            },
            _ = signals.stop.cancelled() => {
                return stopped_before_load(plan, Stop::Interrupted, &before, clock);
            }
        }
    }
    let interposed = match network::interpose(scenario, &plan.url, plan.seed).await {
        Ok(i) => i,
        Err(why) => return stopped_before_load(plan, Stop::NotStarted(why), &before, clock),
    };
    let load_url = interposed.as_ref().map_or(&plan.url, |i| &i.url);
    let settings = HttpSettings {
        run_id: plan.run_id.clone(),
        seed: plan.seed,
        allow_remote: plan.allow_remote,
        iteration_timeout: scenario.iteration_timeout,
        fault_latency: scenario.faults.latency.unwrap_or_default(),
        pool_size: workers(&scenario.load) as usize,
    };
    let driver = match HttpDriver::new(Arc::clone(&procedure), load_url, settings) {
        Ok(d) => Arc::new(d),
        Err(e) => return not_started(plan, format!("cannot set up the HTTP client: {e}")),
    };
    let work = Workload {
        recorded_names: driver.recorded_metrics().to_vec(),
        driver,
        steps: procedure.steps.len(),
        history: checks_invariants(scenario),
    };
    let clock = Clock {
        t0: Instant::now(),
        ..clock
    };
    if let Some(i) = &interposed {
        i.start_clock(clock.t0);
    }
    let (running, stop) = run_load(plan, observer, &signals, work, clock, before.clone()).await;
    let mut extras = before;
    extras.recovery = running
        .recovery_report()
        .map(|windows| crate::result::RecoveryMetrics { windows });
    if let Some(i) = interposed {
        extras.notes.push(i.stop(scenario).await);
    }
    let invariants = if checks_invariants(scenario) {
        let history = running.history();
        Some(
            target_admin::state(&plan.url)
                .await
                .and_then(|state| crate::invariants::check(&history, &state)),
        )
    } else {
        None
    };
    let mut result = running.snapshot(stop, invariants, &extras);
    if chaos.is_some()
        && let Err(why) = target_admin::clear_chaos(&plan.url).await
    {
        result.notes.push(format!(
            "The target's chaos controls could not be cleared after the run: {why}"
        ));
    }
    result
}

/// Whether a run checks invariants afterwards: concurrency runs on handoff targets.
fn checks_invariants(scenario: &Scenario) -> bool {
    scenario.suite == Suite::Concurrency && scenario.target.kind == TargetKind::Handoff
}

/// Workers a load runs: a closed load's concurrency, else its bound on iterations in flight.
fn workers(load: &Load) -> u32 {
    match load {
        Load::Closed { concurrency, .. } => *concurrency,
        Load::Open(s) => s.max_in_flight,
        Load::Stepped { stages, .. } => stages.iter().map(|s| s.max_in_flight).max().unwrap_or(1),
    }
}

/// What the load needs from its driver.
struct Workload<D> {
    driver: Arc<D>,
    /// Steps of the procedure (1 for drivers without steps), for faults and per-step histograms.
    steps: usize,
    recorded_names: Vec<String>,
    /// Keep the history of acknowledged operations for the invariant check.
    history: bool,
}

/// Runs the load with `work`'s driver; returns the running state (for the caller's final snapshot)
/// and why the load ended.
async fn run_load<'a, D: crate::drivers::Driver>(
    plan: &'a RunPlan,
    observer: &dyn Observer,
    signals: &Signals,
    work: Workload<D>,
    clock: Clock,
    before: Extras,
) -> (Running<'a>, Stop) {
    let scenario = &plan.scenario;
    let t0 = clock.t0;
    let schedule: Arc<dyn Schedule> = match &scenario.load {
        Load::Closed {
            iterations,
            concurrency,
        } => Arc::new(closed::ClosedLoop::new(*iterations, *concurrency)),
        Load::Open(stage) => Arc::new(open::OpenLoop::new(stage, t0)),
        Load::Stepped { stages, .. } => Arc::new(stepped::SteppedLoad::new(stages, t0)),
    };
    let stages = match &scenario.load {
        Load::Stepped { stages, .. } => stages.len(),
        _ => 0,
    };
    let faults = FaultSchedule::draw(
        plan.seed,
        &scenario.faults,
        schedule.planned(),
        work.steps.max(1),
    );
    let drift_window = (scenario.suite == Suite::Endurance).then(|| {
        let secs = scenario
            .load
            .scheduled_duration()
            .unwrap_or(scenario.timeout)
            .as_secs();
        (secs / 10).clamp(2, 60)
    });
    let mut running = Running {
        plan,
        recorders: (0..schedule.workers())
            .map(|_| {
                let r = Recorder::new(work.steps, work.recorded_names.len(), stages);
                let r = if matches!(scenario.load, Load::Closed { .. }) {
                    r.without_service_time()
                } else {
                    r
                };
                let r = if work.history { r.with_history() } else { r };
                Arc::new(Mutex::new(r))
            })
            .collect(),
        recorded_names: work.recorded_names,
        timeline: Arc::new(Mutex::new(Timeline::new(drift_window))),
        live: Arc::new(Live::default()),
        clock,
        injected: faults.len() as u64,
        steps: work.steps,
        stages,
        before,
        load_elapsed: None,
        recovery: recovery::RecoveryTracker::new(&scenario.faults.network, t0)
            .map(|r| Arc::new(Mutex::new(r))),
    };
    let control = Control::default();
    let pacer = match &scenario.load {
        Load::Closed { .. } => None,
        Load::Open(_) | Load::Stepped { .. } => match Pacer::start(Arc::clone(&schedule)) {
            Ok(p) => Some(Arc::new(p)),
            Err(e) => {
                let why = format!("cannot start the pacing thread: {e}");
                return (running, Stop::NotStarted(why));
            }
        },
    };
    let tickets = match &pacer {
        Some(p) => Tickets::Paced(Arc::clone(p)),
        None => Tickets::Direct(Arc::clone(&schedule)),
    };
    let pool = Pool {
        tickets,
        driver: work.driver,
        faults: Arc::new(faults),
        control: control.clone(),
        live: Arc::clone(&running.live),
        seed: plan.seed,
        iteration_timeout: scenario.iteration_timeout,
        recovery: running.recovery.clone(),
    };

    let stop = {
        let ticker = tick(&running, observer, schedule.planned());
        let work = pool.run(&running.recorders);
        tokio::pin!(work);
        tokio::pin!(ticker);
        let budget = tokio::time::sleep_until((clock.run_start + scenario.timeout).into());
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
            let grace = scenario.iteration_timeout.min(MAX_GRACE);
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
    let t_s = running.clock.t0.elapsed().as_secs();
    {
        let mut timeline = running.timeline.lock().unwrap_or_else(|p| p.into_inner());
        let last = timeline.rows().last().map(|r| r.t_s + 1).unwrap_or(0);
        if last <= t_s {
            timeline.tick(&running.recorders, t_s);
        }
    }
    (running, stop)
}

/// Once a second: a timeline row and a progress report; every [`CHECKPOINT_EVERY`], a checkpoint.
async fn tick(running: &Running<'_>, observer: &dyn Observer, planned: u64) {
    let mut interval = tokio::time::interval_at(
        (running.clock.t0 + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_checkpoint = running.clock.t0;
    let mut t_s = 0;
    loop {
        interval.tick().await;
        let (last_second, p95, (done, failed, late)) = {
            let mut timeline = running.timeline.lock().unwrap_or_else(|p| p.into_inner());
            let row = timeline.tick(&running.recorders, t_s);
            let n = row.succeeded + row.failed;
            (n, timeline.running_p95(), timeline.counts())
        };
        t_s += 1;
        let live = &running.live;
        observer.progress(&Progress {
            elapsed: running.clock.t0.elapsed(),
            scheduled: running.plan.scenario.load.scheduled_duration(),
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
            observer.checkpoint(&running.snapshot(Stop::Running, None, &running.before));
        }
    }
}
