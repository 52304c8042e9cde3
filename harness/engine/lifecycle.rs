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
use super::load::{Clock, run_load};
use super::session::{BeforeLoad, Finish, Session};
use super::{Observer, Signals, network, target_admin};
use crate::plan::RunPlan;
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
            return early.ended(
                Stop::NotStarted(format!("target unreachable: {why}")),
                &none,
            );
        }
        Err(c) => return early.cut(c, &none),
    }
    let admin = session.admin_base();
    let chaos = plan.faults.server.as_ref().map(|c| c.to_json());
    if let Some(settings) = &chaos {
        match guarded(
            target_admin::set_chaos(&admin, settings),
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
        Some(_) => clear_chaos(&admin, result).await,
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

    let interposed = match network::interpose(&plan.faults.network, url, plan.identity.seed).await {
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

    let clock = Clock {
        t0: Instant::now(),
        ..clock
    };
    if let Some(i) = &interposed {
        i.start_clock(clock.t0);
    }
    session.beside(clock.t0);
    let side = session.recorders();
    let (running, stop) = run_load(
        plan,
        url,
        observer,
        signals,
        (driver, side),
        clock,
        before.clone(),
    )
    .await;

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

async fn clear_chaos(admin: &Url, mut result: RunResult) -> RunResult {
    if let Err(why) = target_admin::clear_chaos(admin).await {
        result.notes.push(format!(
            "The target's chaos controls could not be cleared after the run: {why}"
        ));
    }
    result
}
