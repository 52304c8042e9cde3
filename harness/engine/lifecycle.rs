//! The one run lifecycle, the same for every kind of target; what differs lives in the [`Session`].
//!
//! In order: the preflight (is the target there?); the target's chaos controls, when the plan sets
//! them; the probes that need the target to themselves; the fault proxy, when the plan has network
//! faults; the driver; then the clock starts, with what runs beside the load, and the load runs under
//! the budget; afterwards the session settles and measures, recovery after each fault window is
//! reported, the proxy stops, the result is assembled and the chaos controls are cleared.
//!
//! Every phase before the load answers an interrupt and the budget: the run then ends at once with
//! what the earlier phases measured, marked aborted.

use std::future::Future;
use std::time::Instant;

use url::Url;

use super::assemble::{Extras, Stop};
use super::load::{Clock, Running, run_load};
use super::session::{BeforeLoad, Finish, Session};
use super::{Observer, Signals, network, target_admin};
use crate::plan::{RunPlan, TargetPlan};
use crate::result::{CheckResult, RecoveryMetrics, RunResult};

/// How a phase before the load ended, when it did not simply finish.
enum Cut {
    Interrupted,
    Budget,
}

/// The result of a run that ends before its load.
#[derive(Clone, Copy)]
struct Early<'a> {
    plan: &'a RunPlan,
    url: &'a Url,
    clock: Clock,
}

impl Early<'_> {
    fn ended(&self, stop: Stop, extras: &Extras) -> RunResult {
        super::stopped_before_load(self.plan, self.url, stop, extras, self.clock)
    }

    fn cut(&self, cut: Cut, extras: &Extras) -> RunResult {
        match cut {
            Cut::Interrupted => self.ended(Stop::Interrupted, extras),
            Cut::Budget => self.ended(Stop::Budget, extras),
        }
    }
}

/// Runs `work` unless the run is interrupted or its budget runs out first.
async fn guarded<T>(
    work: impl Future<Output = T>,
    signals: &Signals,
    deadline: Instant,
) -> Result<T, Cut> {
    tokio::select! {
        out = work => Ok(out),
        _ = signals.stop.cancelled() => Err(Cut::Interrupted),
        _ = tokio::time::sleep_until(deadline.into()) => Err(Cut::Budget),
    }
}

/// Runs `plan` against the target at `url` through `session`.
pub async fn run<S: Session>(
    plan: &RunPlan,
    url: &Url,
    mut session: S,
    observer: &dyn Observer,
    signals: Signals,
) -> RunResult {
    let clock = Clock::now();
    let deadline = clock.deadline(plan);
    let early = Early { plan, url, clock };
    let none = Extras::default();

    match guarded(session.preflight(), &signals, deadline).await {
        Ok(Ok(())) => {}
        Ok(Err(why)) => {
            return early.ended(Stop::NotStarted(why.preflight_reason()), &none);
        }
        Err(c) => return early.cut(c, &none),
    }
    let admin = session.admin_base();
    let chaos = plan.faults.server.as_ref().map(|c| c.to_json());
    if let Some(settings) = &chaos {
        match guarded(
            target_admin::set_chaos(&admin, settings, &plan.net),
            &signals,
            deadline,
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                let why = format!("cannot set the target's chaos controls: {why}");
                return early.ended(Stop::NotStarted(why), &none);
            }
            Err(c) => return early.cut(c, &none),
        }
    }
    // From here on the chaos controls are set: every way out clears them.
    let result = with_chaos_set(plan, url, &mut session, observer, &signals, clock).await;
    match &chaos {
        Some(_) => clear_chaos(&admin, result, &plan.net).await,
        None => result,
    }
}

async fn with_chaos_set<S: Session>(
    plan: &RunPlan,
    url: &Url,
    session: &mut S,
    observer: &dyn Observer,
    signals: &Signals,
    clock: Clock,
) -> RunResult {
    let deadline = clock.deadline(plan);
    let early = Early { plan, url, clock };

    let mut before = Extras::default();
    for probe in BeforeLoad::all(&plan.probes) {
        observer.phase(&probe.describe());
        match guarded(session.probe(probe), signals, deadline).await {
            Ok(Ok(measured)) => before.absorb(measured),
            Ok(Err(why)) => before.checks.push(CheckResult::new(
                probe.check_name(),
                false,
                format!("the probe could not run: {why}"),
            )),
            Err(c) => return early.cut(c, &before),
        }
    }
    // An HTTP limit is often shared by every client: give the bucket the probe drained time to fill,
    // or the load's first requests meet it. (A WebSocket limit is per connection; the probe had its
    // own.)
    if let (Some(rl), TargetPlan::Request(_) | TargetPlan::Procedure(_)) =
        (&before.rate_limit, &plan.target)
    {
        let wait = crate::probes::rate_limit::refill_time(rl);
        if !wait.is_zero() {
            let shown = crate::config::units::format_duration(wait);
            observer.phase(&format!(
                "waiting {shown} for the rate limit the probe drained to refill"
            ));
            if let Err(c) = guarded(tokio::time::sleep(wait), signals, deadline).await {
                return early.cut(c, &before);
            }
            before.notes.push(format!(
                "The load started {shown} after the rate-limit probe, the time its bucket takes to \
                 refill, so that the probe's refusals did not spill into the load."
            ));
        }
    }

    let interposed = match network::interpose(
        &plan.faults.network,
        url,
        plan.identity.seed,
        plan.net.reach,
    )
    .await
    {
        Ok(i) => i,
        Err(why) => return early.ended(Stop::NotStarted(why.to_string()), &before),
    };
    let load_url = interposed.as_ref().map_or(url, |i| &i.url).clone();
    if let Some(what) = session.starting() {
        observer.phase(&what);
    }
    let driver = match guarded(session.start(&load_url), signals, deadline).await {
        Ok(Ok(d)) => d,
        Ok(Err(why)) => return early.ended(Stop::NotStarted(why.to_string()), &before),
        Err(c) => return early.cut(c, &before),
    };

    let mut clock = clock;
    if let Some(at) = plan.start_at {
        match at.duration_since(std::time::SystemTime::now()) {
            Ok(wait) => {
                observer.phase(&format!(
                    "waiting {} for the start time --start-at {}",
                    crate::config::units::format_duration(wait),
                    humantime::format_rfc3339_millis(at)
                ));
                if let Err(c) = guarded(tokio::time::sleep(wait), signals, deadline + wait).await {
                    return early.cut(c, &before);
                }
                // The wait for the shared start is not the run's: its budget counts without it.
                clock.run_start += wait;
                clock.started_at += wait;
            }
            Err(late) => before.notes.push(format!(
                "The load started {} after its start time (--start-at {}): this shard was not \
                 ready in time, so its timeline begins that much later than the others'.",
                crate::config::units::format_duration(late.duration()),
                humantime::format_rfc3339_millis(at)
            )),
        }
    }
    let prepared = Running::prepare(plan, url, session.recorders(), clock, before.clone());
    let clock = Clock {
        t0: Instant::now(),
        ..clock
    };
    if let Some(i) = &interposed {
        i.start_clock(clock.t0);
    }
    session.beside(clock.t0);
    let (running, stop) = run_load(prepared, clock.t0, observer, signals, driver).await;

    let mut extras = before;
    let mut windows = running.recovery_report();
    let timeline = running.timeline_rows();
    let measured = session
        .finish(Finish {
            stop: &stop,
            t0: clock.t0,
            timeline: &timeline,
            windows: windows.as_mut(),
            history: plan.judgement.invariants.then(|| running.history()),
            writes: plan.judgement.history.then(|| running.writes()),
            signals,
            observer,
        })
        .await;
    extras.absorb(measured);
    extras.recovery = windows.map(|windows| RecoveryMetrics { windows });
    if let Some(i) = interposed {
        extras.notes.push(i.stop(&plan.faults.network).await);
    }
    running.snapshot(stop, &extras)
}

async fn clear_chaos(admin: &Url, mut result: RunResult, net: &crate::net::Network) -> RunResult {
    if let Err(why) = target_admin::clear_chaos(admin, net).await {
        result.notes.push(format!(
            "The target's chaos controls could not be cleared after the run: {why}"
        ));
    }
    result
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::drivers::{Driver, IterationContext, Timer};
    use crate::engine::Quiet;
    use crate::engine::session::BeforeLoad;
    use crate::engine::{Observer, TargetError};
    use crate::iteration::IterationReport;
    use crate::plan::{Overrides, RunPlan};
    use crate::result::{RunResult, Status};

    /// Where a fake session (or its driver) asks for an interrupt and then waits forever, or waits
    /// forever without one (the budget then ends the run).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Stall {
        Never,
        Preflight,
        Probe,
        Start,
        /// After this many iterations.
        Load(u64),
    }

    /// What a fake session and its driver saw, in order.
    #[derive(Default)]
    struct Journal(Mutex<Vec<String>>);

    impl Journal {
        fn note(&self, what: impl Into<String>) {
            self.0.lock().unwrap().push(what.into());
        }
        fn all(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }

    struct FakeDriver {
        journal: Arc<Journal>,
        done: AtomicU64,
        stall: Stall,
        interrupt: Option<CancellationToken>,
        work: Duration,
    }

    impl Driver for FakeDriver {
        async fn iterate(&self, _ctx: IterationContext, _timer: &mut Timer) -> IterationReport {
            tokio::time::sleep(self.work).await;
            let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 {
                self.journal.note("first iteration");
            }
            if let (Stall::Load(k), Some(t)) = (self.stall, &self.interrupt)
                && n == k
            {
                t.cancel();
            }
            IterationReport::succeeded()
        }
    }

    struct FakeSession {
        journal: Arc<Journal>,
        stall: Stall,
        /// When set, stalling asks for an interrupt first.
        interrupt: Option<CancellationToken>,
        failing_probe: bool,
        work: Duration,
        driver: Option<Arc<FakeDriver>>,
    }

    impl FakeSession {
        async fn stall_if(&self, here: Stall) {
            if self.stall == here {
                if let Some(t) = &self.interrupt {
                    t.cancel();
                }
                std::future::pending::<()>().await;
            }
        }
    }

    impl Session for FakeSession {
        type Driver = FakeDriver;

        async fn preflight(&mut self) -> Result<(), TargetError> {
            self.journal.note("preflight");
            self.stall_if(Stall::Preflight).await;
            Ok(())
        }

        fn admin_base(&self) -> Url {
            Url::parse("http://127.0.0.1:1/").unwrap()
        }

        async fn probe(&mut self, probe: BeforeLoad<'_>) -> Result<Extras, TargetError> {
            self.journal.note(format!("probe {}", probe.check_name()));
            self.stall_if(Stall::Probe).await;
            if self.failing_probe {
                return Err(TargetError::Unsupported("the probe broke"));
            }
            Ok(Extras::default())
        }

        fn starting(&self) -> Option<String> {
            Some("starting".into())
        }

        async fn start(&mut self, _load_url: &Url) -> Result<Arc<FakeDriver>, TargetError> {
            self.journal.note("start");
            self.stall_if(Stall::Start).await;
            let d = Arc::new(FakeDriver {
                journal: Arc::clone(&self.journal),
                done: AtomicU64::new(0),
                stall: self.stall,
                interrupt: self.interrupt.clone(),
                work: self.work,
            });
            self.driver = Some(Arc::clone(&d));
            Ok(d)
        }

        fn beside(&mut self, _t0: Instant) {
            self.journal.note("beside");
        }

        async fn finish(&mut self, end: Finish<'_>) -> Extras {
            let done = self
                .driver
                .as_ref()
                .map_or(0, |d| d.done.load(Ordering::Relaxed));
            self.journal
                .note(format!("finish after {done} iterations ({:?})", end.stop));
            Extras::default()
        }
    }

    /// The plan of a closed load of `iterations` over 2 workers, with both probes that run before
    /// the load (when `probes`), and a budget of `timeout`.
    fn plan(iterations: u64, timeout: &str, probes: bool) -> RunPlan {
        let probes = if probes {
            "[probes.rate_limit]\nrate = \"20/s\"\nburst = 40\n[probes.hardening]\n"
        } else {
            ""
        };
        let text = format!(
            r#"name = "fake"
suite = "reliability"
timeout = "{timeout}"
iteration_timeout = "2s"
[target]
kind = "websocket"
url = "ws://127.0.0.1:1/ws"
[websocket]
mode = "echo"
connections = 1
[load]
iterations = {iterations}
concurrency = 2
{probes}"#
        );
        let source = crate::config::Source::new("fake.toml", text);
        let procedures = crate::procedure::catalog(&[]).unwrap();
        let resolver = crate::scenario::validate::Resolver {
            procedures: &procedures,
            base_dir: None,
        };
        let scenario =
            crate::scenario::parse(&source, None, &resolver).unwrap_or_else(|e| panic!("{e}"));
        crate::plan::build(&scenario, Overrides::default()).unwrap()
    }

    struct Run {
        result: RunResult,
        journal: Vec<String>,
    }

    async fn run_with(plan: &RunPlan, stall: Stall, interrupt: bool, failing_probe: bool) -> Run {
        let journal = Arc::new(Journal::default());
        let signals = Signals::default();
        let session = FakeSession {
            journal: Arc::clone(&journal),
            stall,
            interrupt: interrupt.then(|| signals.stop.clone()),
            failing_probe,
            work: Duration::from_millis(100),
            driver: None,
        };
        let url = Url::parse("ws://127.0.0.1:1/ws").unwrap();
        let result = run(plan, &url, session, &Quiet, signals).await;
        Run {
            result,
            journal: journal.all(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_phases_run_in_order() {
        let plan = plan(20, "60s", true);
        let r = run_with(&plan, Stall::Never, false, false).await;
        assert_eq!(
            r.journal,
            [
                "preflight",
                "probe rate_limit.conforms",
                "probe hardening.ran",
                "start",
                "beside",
                "first iteration",
                "finish after 20 iterations (Completed)",
            ]
        );
        assert_eq!(r.result.status, Status::Passed, "{:?}", r.result.reason);
        assert_eq!(r.result.totals.succeeded, 20);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_cannot_run_is_a_failed_check_and_the_load_still_runs() {
        let plan = plan(10, "60s", true);
        let r = run_with(&plan, Stall::Never, false, true).await;
        let failed: Vec<(&str, &str)> = r
            .result
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| (c.name.as_str(), c.detail.as_str()))
            .collect();
        assert_eq!(
            failed,
            [
                (
                    "rate_limit.conforms",
                    "the probe could not run: the probe broke"
                ),
                ("hardening.ran", "the probe could not run: the probe broke"),
            ]
        );
        assert_eq!(r.result.totals.succeeded, 10);
        assert_eq!(r.result.status, Status::Failed);
    }

    #[tokio::test(start_paused = true)]
    async fn an_interrupt_in_any_phase_ends_the_run_there() {
        let plan = plan(1000, "600s", true);
        for (stall, last) in [
            (Stall::Preflight, "preflight"),
            (Stall::Probe, "probe rate_limit.conforms"),
            (Stall::Start, "start"),
        ] {
            let r = run_with(&plan, stall, true, false).await;
            assert_eq!(
                r.journal.last().map(String::as_str),
                Some(last),
                "{stall:?}"
            );
            assert_eq!(r.result.status, Status::Aborted, "{stall:?}");
            assert_eq!(
                r.result.reason.as_deref(),
                Some("interrupted before the run finished"),
                "{stall:?}"
            );
            assert_eq!(r.result.totals.iterations, 0, "{stall:?}");
        }
        let r = run_with(&plan, Stall::Load(7), true, false).await;
        assert_eq!(r.result.status, Status::Aborted);
        let done = r.result.totals.iterations;
        assert!(
            (7..=10).contains(&done),
            "the load stops where it was interrupted, the 2 workers finishing what they had \
             started: {done}"
        );
        assert!(
            r.journal.last().unwrap().starts_with("finish after"),
            "the session still settles: {:?}",
            r.journal
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_ends_a_phase_before_the_load() {
        let plan = plan(1000, "5s", false);
        let r = run_with(&plan, Stall::Start, false, false).await;
        assert_eq!(r.result.status, Status::Aborted);
        assert_eq!(
            r.result.reason.as_deref(),
            Some("the run exceeded its 5s budget")
        );
        assert_eq!(r.journal.last().map(String::as_str), Some("start"));
    }

    // A test of its own: the engine's clock is the system's, and a paused runtime that has already
    // advanced would put a second run's deadline in its past.
    #[tokio::test(start_paused = true)]
    async fn the_budget_ends_the_load() {
        // 1000 iterations of 100 ms over 2 workers need 50 s; the budget stops the load at 5 s.
        let plan = plan(1000, "5s", false);
        let r = run_with(&plan, Stall::Never, false, false).await;
        assert_eq!(r.result.status, Status::Aborted);
        assert_eq!(
            r.result.reason.as_deref(),
            Some("the run exceeded its 5s budget")
        );
        let done = r.result.totals.iterations;
        assert!((90..=102).contains(&done), "{done} iterations in 5 s");
        assert!(r.result.totals.not_started > 0);
    }

    /// An observer that keeps what it is told.
    #[derive(Default)]
    struct Phases(Mutex<Vec<String>>);

    impl Observer for Phases {
        fn phase(&self, what: &str) {
            self.0.lock().unwrap().push(what.to_string());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_phase_is_announced() {
        let plan = plan(4, "60s", true);
        let observer = Phases::default();
        let session = FakeSession {
            journal: Arc::new(Journal::default()),
            stall: Stall::Never,
            interrupt: None,
            failing_probe: false,
            work: Duration::from_millis(1),
            driver: None,
        };
        let url = Url::parse("ws://127.0.0.1:1/ws").unwrap();
        run(&plan, &url, session, &observer, Signals::default()).await;
        let phases = observer.0.lock().unwrap().clone();
        assert_eq!(phases.len(), 3, "{phases:?}");
        assert!(
            phases[0].starts_with("probing the rate limit"),
            "{phases:?}"
        );
        assert!(
            phases[1].starts_with("probing input hardening"),
            "{phases:?}"
        );
        assert_eq!(phases[2], "starting");
    }
}
