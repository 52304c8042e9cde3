//! A websocket run, in order: a handshake to see the endpoint is there; the target's chaos controls
//! (when the scenario sets them); the probes that need the endpoint to themselves (rate limit, input
//! hardening); the driver's connections and subscriptions; the load, with the slow-consumer probe beside
//! it; deliveries settled and connections closed; the named checks that need the whole run (correlation
//! ids, the load's health during the stall).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use url::Url;

use super::assemble::{Extras, Stop};
use super::{
    Clock, Observer, RunPlan, Signals, Workload, not_started, run_load, stopped_before_load,
};
use crate::drivers::ws::conn::{self, Shared};
use crate::drivers::ws::stats::WsStats;
use crate::drivers::ws::{WsDriver, WsSetup, resolve};
use crate::probes::{WsEnv, hardening, rate_limit, slow_consumer};
use crate::result::RunResult;

/// The HTTP base of a WebSocket endpoint (same host and port), where the admin routes live.
pub fn admin_base(ws: &Url) -> Url {
    let mut u = ws.clone();
    let scheme = if ws.scheme() == "wss" {
        "https"
    } else {
        "http"
    };
    let _ = u.set_scheme(scheme);
    u.set_path("/");
    u.set_query(None);
    u
}

pub async fn run(plan: &RunPlan, observer: &dyn Observer, signals: Signals) -> RunResult {
    let scenario = &plan.scenario;
    let Some(settings) = scenario.websocket.clone() else {
        return not_started(plan, "the scenario has no [websocket] settings".into());
    };
    let addr = match resolve(&plan.url).await {
        Ok(a) => a,
        Err(e) => return not_started(plan, format!("target unreachable: {e}")),
    };
    match conn::open(&plan.url, addr, settings.connect_timeout, None).await {
        Ok((mut ws, _)) => {
            let _ = ws.close(None).await;
        }
        Err(e) => return not_started(plan, format!("target unreachable: {e}")),
    }
    let clock = Clock::now();
    let admin = admin_base(&plan.url);
    let chaos = scenario.faults.server.as_ref().map(|c| c.to_json());
    if let Some(c) = &chaos
        && let Err(why) = super::target_admin::set_chaos(&admin, c).await
    {
        return not_started(
            plan,
            format!("cannot set the target's chaos controls: {why}"),
        );
    }
    let stats = Arc::new(WsStats::default());
    let env = Arc::new(WsEnv {
        url: plan.url.clone(),
        addr,
        run_id: plan.run_id.clone(),
        shared: Shared::new(Arc::new(settings.protocol.clone()), Arc::clone(&stats)),
        connect_timeout: settings.connect_timeout,
    });

    let mut before = Extras::default();
    if let Some(p) = &scenario.probes.rate_limit {
        observer.phase(&rate_limit::describe(p));
        tokio::select! {
            m = rate_limit::probe_ws(&env, p) => match m {
                Ok(m) => {
                    before.checks.push(rate_limit::check(&m));
                    before.rate_limit = Some(m);
                }
                Err(e) => before.checks.push(crate::result::CheckResult::new(
                    "rate_limit.conforms",
                    false,
                    format!("the probe could not run: {e}"),
                )),
            },
            _ = signals.stop.cancelled() => {
                return stopped_before_load(plan, Stop::Interrupted, &before, clock);
            }
        }
    }
    if let Some(h) = &scenario.probes.hardening {
        observer.phase("probing input hardening: sizes, malformed JSON, unknown types, paths");
        tokio::select! {
            checks = hardening::probe(&env, h) => before.checks.extend(checks),
            _ = signals.stop.cancelled() => {
                return stopped_before_load(plan, Stop::Interrupted, &before, clock);
            }
        }
    }

    let interposed = match super::network::interpose(scenario, &plan.url, plan.seed).await {
        Ok(i) => i,
        Err(why) => return stopped_before_load(plan, Stop::NotStarted(why), &before, clock),
    };
    let (load_url, load_addr) = match &interposed {
        Some(i) => match resolve(&i.url).await {
            Ok(a) => (i.url.clone(), a),
            Err(why) => return stopped_before_load(plan, Stop::NotStarted(why), &before, clock),
        },
        None => (plan.url.clone(), addr),
    };
    let setup = WsSetup {
        url: load_url,
        addr: load_addr,
        run_id: plan.run_id.clone(),
        planned: scenario.load.planned_iterations(),
        fault_latency: scenario.faults.latency.unwrap_or_default(),
        by_worker: matches!(scenario.load, crate::scenario::Load::Closed { .. }),
        settings: settings.clone(),
    };
    observer.phase(&format!(
        "opening {} connections{}",
        settings.connections,
        if settings.subscribers > 0 {
            format!(" and {} subscribers", settings.subscribers)
        } else {
            String::new()
        }
    ));
    let driver = tokio::select! {
        d = WsDriver::start(setup, Arc::clone(&stats)) => match d {
            Ok(d) => Arc::new(d),
            Err(e) => {
                return stopped_before_load(plan, Stop::NotStarted(format!("cannot start the WebSocket driver: {e}")), &before, clock);
            }
        },
        _ = signals.stop.cancelled() => {
            return stopped_before_load(plan, Stop::Interrupted, &before, clock);
        }
    };

    let clock = Clock {
        t0: Instant::now(),
        ..clock
    };
    if let Some(i) = &interposed {
        i.start_clock(clock.t0);
    }
    let side_stop = CancellationToken::new();
    let side = scenario.probes.slow_consumer.clone().map(|p| {
        let task = tokio::spawn(slow_consumer::probe(
            Arc::clone(&env),
            p.clone(),
            clock.t0,
            side_stop.clone(),
        ));
        (p, task)
    });
    let work = Workload {
        driver: Arc::clone(&driver),
        steps: 0,
        recorded_names: Vec::new(),
        history: false,
    };
    let (running, stop) = run_load(plan, observer, &signals, work, clock, before.clone()).await;

    let mut extras = before;
    let mut metrics = {
        let outcome = match side {
            Some((p, task)) => {
                if stop != Stop::Completed {
                    side_stop.cancel();
                }
                let bound = p.after + p.expect_within + Duration::from_secs(10);
                let outcome = tokio::select! {
                    o = tokio::time::timeout(bound, task) => o.ok().and_then(Result::ok),
                    _ = signals.stop.cancelled() => None,
                };
                side_stop.cancel();
                outcome.map(|o| (p, o))
            }
            None => None,
        };
        observer.phase("settling deliveries and closing connections");
        let mut m = driver.finish().await;
        if let Some((p, o)) = outcome {
            let rows = running.timeline_rows();
            let report = slow_consumer::report(&o, &p, clock.t0, &rows);
            extras
                .checks
                .extend(slow_consumer::checks(&o, &report, &rows));
            m.slow_consumer = Some(report);
        }
        m
    };
    if scenario.probes.hardening.is_some() {
        extras.checks.push(hardening::correlation_check(
            metrics.frames_without_correlation,
            metrics.messages_received,
        ));
    }
    metrics.peak_connections = metrics.peak_connections.max(stats.open_now());
    if let Some(mut windows) = running.recovery_report() {
        for w in &mut windows {
            let from = clock.t0 + Duration::from_secs_f64(w.from_s);
            // Until the target was back (or, if it never was, the end of the run).
            let back = w
                .time_to_recover_s
                .map(|t| clock.t0 + Duration::from_secs_f64(w.until_s + t));
            w.messages_lost = driver.lost_sent_between(from, back.unwrap_or_else(Instant::now));
        }
        extras.recovery = Some(crate::result::RecoveryMetrics { windows });
    }
    if let Some(i) = interposed {
        extras.notes.push(i.stop(scenario).await);
    }
    extras.ws = Some(metrics);
    let mut result = running.snapshot(stop, None, &extras);
    if chaos.is_some()
        && let Err(why) = super::target_admin::clear_chaos(&admin).await
    {
        result.notes.push(format!(
            "The target's chaos controls could not be cleared after the run: {why}"
        ));
    }
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_admin_base_is_the_same_host_over_http() {
        let u = url::Url::parse("ws://127.0.0.1:9000/ws?x=1").unwrap();
        assert_eq!(super::admin_base(&u).as_str(), "http://127.0.0.1:9000/");
    }
}
