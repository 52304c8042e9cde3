//! The engine runs a planned scenario: it checks the target is there, builds the driver and the
//! schedule for the load model, runs the worker pool under the run's budget, takes the timeline once a
//! second, answers interrupts, and assembles the [`RunResult`].
//!
//! It knows nothing of terminals or files: progress and checkpoints go to an [`Observer`], and the
//! result is returned for the caller to write.

pub mod assemble;
pub mod closed;
pub mod open;
pub mod pacer;
pub mod pool;
pub mod preflight;
pub mod schedule;
pub mod stepped;
pub mod target_admin;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;
use url::Url;

use self::assemble::{Snapshot, Stop, assemble};
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
    started_at: SystemTime,
    t0: Instant,
    injected: u64,
    steps: usize,
    stages: usize,
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
            started_at: self.started_at,
            elapsed: self.t0.elapsed(),
            stop,
            abandoned,
            crashed_workers: self.live.crashed_workers.load(Ordering::Relaxed),
            injected: self.injected,
            invariants,
        })
    }
}

/// A result for a run that could not start.
pub fn not_started(plan: &RunPlan, why: String) -> RunResult {
    let merged = Recorder::new(0, 0, 0);
    assemble(Snapshot {
        plan,
        merged: &merged,
        recorded_names: &[],
        timeline: Vec::new(),
        drift: None,
        started_at: SystemTime::now(),
        elapsed: Duration::ZERO,
        stop: Stop::NotStarted(why),
        abandoned: 0,
        crashed_workers: 0,
        injected: 0,
        invariants: None,
    })
}

/// Runs `plan` to the end, to its budget, or until `signals` stop it.
pub async fn run(plan: &RunPlan, observer: &dyn Observer, signals: Signals) -> RunResult {
    let scenario = &plan.scenario;
    if scenario.target.kind == TargetKind::Websocket {
        return not_started(
            plan,
            "websocket targets are not supported by this version".into(),
        );
    }
    let Some(procedure) = scenario.target.procedure.clone() else {
        return not_started(plan, "the target has no procedure to run".into());
    };
    if let Err(why) = preflight::check_reachable(&plan.url).await {
        return not_started(plan, format!("target unreachable: {why}"));
    }
    let chaos = scenario.faults.server.as_ref().map(|c| c.to_json());
    if let Some(settings) = &chaos
        && let Err(why) = target_admin::set_chaos(&plan.url, settings).await
    {
        return not_started(
            plan,
            format!("cannot set the target's chaos controls: {why}"),
        );
    }
    let mut result = run_load(plan, observer, signals, procedure).await;
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

async fn run_load(
    plan: &RunPlan,
    observer: &dyn Observer,
    signals: Signals,
    procedure: Arc<crate::procedure::Procedure>,
) -> RunResult {
    let scenario = &plan.scenario;

    let t0 = Instant::now();
    let started_at = SystemTime::now();
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
    let settings = HttpSettings {
        run_id: plan.run_id.clone(),
        seed: plan.seed,
        allow_remote: plan.allow_remote,
        iteration_timeout: scenario.iteration_timeout,
        fault_latency: scenario.faults.latency.unwrap_or_default(),
        pool_size: schedule.workers(),
    };
    let driver = match HttpDriver::new(Arc::clone(&procedure), &plan.url, settings) {
        Ok(d) => Arc::new(d),
        Err(e) => return not_started(plan, format!("cannot set up the HTTP client: {e}")),
    };
    let faults = FaultSchedule::draw(
        plan.seed,
        &scenario.faults,
        schedule.planned(),
        procedure.steps.len(),
    );
    let drift_window = (scenario.suite == Suite::Endurance).then(|| {
        let secs = scenario
            .load
            .scheduled_duration()
            .unwrap_or(scenario.timeout)
            .as_secs();
        (secs / 10).clamp(2, 60)
    });
    let running = Running {
        plan,
        recorders: (0..schedule.workers())
            .map(|_| {
                let r = Recorder::new(
                    procedure.steps.len(),
                    driver.recorded_metrics().len(),
                    stages,
                );
                let r = if matches!(scenario.load, Load::Closed { .. }) {
                    r.without_service_time()
                } else {
                    r
                };
                let r = if checks_invariants(scenario) {
                    r.with_history()
                } else {
                    r
                };
                Arc::new(Mutex::new(r))
            })
            .collect(),
        recorded_names: driver.recorded_metrics().to_vec(),
        timeline: Arc::new(Mutex::new(Timeline::new(drift_window))),
        live: Arc::new(Live::default()),
        started_at,
        t0,
        injected: faults.len() as u64,
        steps: procedure.steps.len(),
        stages,
    };
    let control = Control::default();
    let pacer = match &scenario.load {
        Load::Closed { .. } => None,
        Load::Open(_) | Load::Stepped { .. } => match Pacer::start(Arc::clone(&schedule)) {
            Ok(p) => Some(Arc::new(p)),
            Err(e) => return not_started(plan, format!("cannot start the pacing thread: {e}")),
        },
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
        seed: plan.seed,
        iteration_timeout: scenario.iteration_timeout,
    };

    let stop = {
        let ticker = tick(&running, observer, schedule.planned());
        let work = pool.run(&running.recorders);
        tokio::pin!(work);
        tokio::pin!(ticker);
        let budget = tokio::time::sleep_until((t0 + scenario.timeout).into());
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
    // The last, partial second.
    let t_s = running.t0.elapsed().as_secs();
    {
        let mut timeline = running.timeline.lock().unwrap_or_else(|p| p.into_inner());
        let last = timeline.rows().last().map(|r| r.t_s + 1).unwrap_or(0);
        if last <= t_s {
            timeline.tick(&running.recorders, t_s);
        }
    }
    let invariants = if checks_invariants(scenario) {
        let history: Vec<crate::invariants::Ack> = running
            .recorders
            .iter()
            .flat_map(|r| r.lock().unwrap_or_else(|p| p.into_inner()).history.clone())
            .collect();
        Some(
            target_admin::state(&plan.url)
                .await
                .and_then(|state| crate::invariants::check(&history, &state)),
        )
    } else {
        None
    };
    running.snapshot(stop, invariants)
}

/// Once a second: a timeline row and a progress report; every [`CHECKPOINT_EVERY`], a checkpoint.
async fn tick(running: &Running<'_>, observer: &dyn Observer, planned: u64) {
    let mut interval = tokio::time::interval_at(
        (running.t0 + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_checkpoint = running.t0;
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
            elapsed: running.t0.elapsed(),
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
            observer.checkpoint(&running.snapshot(Stop::Running, None));
        }
    }
}
