//! The session of a WebSocket endpoint: a handshake to see it is there, and one frame to see it speaks
//! the scenario's protocol; the rate-limit and hardening
//! probes; the driver's connections and subscriptions; the slow-consumer probe beside the load; and at
//! the end deliveries settled, connections closed, and the checks that need the whole run
//! (correlation ids, the load's health during the stall, acknowledged messages lost in fault windows).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::{BeforeLoad, Finish, Session};
use crate::drivers::ws::conn::{self, Shared};
use crate::drivers::ws::stats::{Tally, tally};
use crate::drivers::ws::understood;
use crate::drivers::ws::{WsDriver, WsSetup};
use crate::engine::TargetError;
use crate::engine::assemble::{Extras, Stop};
use crate::metrics::{ConnectionStats, Recorder};
use crate::net::Reach;
use crate::plan::{RunPlan, SlowConsumerProbe, WsSettings};
use crate::probes::{WsEnv, hardening, rate_limit, slow_consumer};

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

pub struct WsSession<'a> {
    plan: &'a RunPlan,
    url: Url,
    settings: &'a WsSettings,
    /// What every connection of the run shares (the protocol, the open-connection gauge).
    shared: Arc<Shared>,
    /// Where the probes' connections record.
    probes: Tally,
    /// Known once the preflight has resolved the endpoint.
    env: Option<Arc<WsEnv>>,
    driver: Option<Arc<WsDriver>>,
    slow_consumer: Option<SlowConsumer>,
}

/// The slow-consumer probe, running beside the load.
struct SlowConsumer {
    probe: SlowConsumerProbe,
    task: JoinHandle<slow_consumer::Outcome>,
    stop: CancellationToken,
}

impl<'a> WsSession<'a> {
    pub fn new(plan: &'a RunPlan, url: Url, settings: &'a WsSettings) -> Self {
        Self {
            plan,
            url,
            settings,
            shared: Shared::new(Arc::new(settings.protocol.clone()), plan.net.clone()),
            probes: tally(),
            env: None,
            driver: None,
            slow_consumer: None,
        }
    }

    fn env(&self) -> Result<&Arc<WsEnv>, TargetError> {
        self.env
            .as_ref()
            .ok_or(TargetError::Unsupported("the endpoint was not resolved"))
    }

    /// What every connection of the session has recorded so far.
    fn connection_stats(&self) -> ConnectionStats {
        let mut all = ConnectionStats::default();
        for t in self.recorders() {
            if let Some(c) = &t.lock().unwrap_or_else(|p| p.into_inner()).connections {
                all.absorb(c);
            }
        }
        all
    }
}

impl Session for WsSession<'_> {
    type Driver = WsDriver;

    async fn preflight(&mut self) -> Result<(), TargetError> {
        let addr: SocketAddr =
            crate::net::resolve(&self.url, Reach::of(self.plan.allow_remote)).await?;
        let timeout = self.settings.connect_timeout;
        let (mut ws, _) = conn::open(
            &self.url,
            addr,
            timeout,
            None,
            &self.settings.protocol.setup,
            &self.plan.net,
        )
        .await?;
        let run_id = serde_json::Value::String(self.plan.identity.run_id.clone());
        let path = crate::drivers::ws::render_path(&self.settings.path, &run_id);
        let understood = understood::check(
            &mut ws,
            self.settings,
            &self.plan.identity.run_id,
            &path,
            understood::LISTEN.min(self.plan.budget.iteration),
        )
        .await;
        let _ = ws.close(None).await;
        understood?;
        self.env = Some(Arc::new(WsEnv {
            url: self.url.clone(),
            addr,
            run_id: self.plan.identity.run_id.clone(),
            shared: Arc::clone(&self.shared),
            connect_timeout: timeout,
            tally: Arc::clone(&self.probes),
        }));
        Ok(())
    }

    fn admin_base(&self) -> Url {
        admin_base(&self.url)
    }

    async fn probe(&mut self, probe: BeforeLoad<'_>) -> Result<Extras, TargetError> {
        let env = self.env()?;
        let mut extras = Extras::default();
        match probe {
            BeforeLoad::RateLimit(p) => {
                let m = rate_limit::probe_ws(env, p).await?;
                extras.checks.push(rate_limit::check(&m));
                if p.require_retry_after
                    && let Some(c) = rate_limit::retry_after_check(&m)
                {
                    extras.checks.push(c);
                }
                extras.rate_limit = Some(m);
            }
            BeforeLoad::Hardening(p) => extras.checks.extend(hardening::probe(env, p).await),
            BeforeLoad::BodySize(_) => {
                return Err(TargetError::Unsupported(
                    "request bodies are probed on HTTP targets",
                ));
            }
        }
        Ok(extras)
    }

    fn starting(&self) -> Option<String> {
        let s = self.settings;
        Some(format!(
            "opening {} connections{}",
            s.connections,
            if s.subscribers > 0 {
                format!(" and {} subscribers", s.subscribers)
            } else {
                String::new()
            }
        ))
    }

    async fn start(&mut self, load_url: &Url) -> Result<Arc<WsDriver>, TargetError> {
        let addr = if *load_url == self.url {
            self.env()?.addr
        } else {
            crate::net::resolve(load_url, Reach::of(self.plan.allow_remote)).await?
        };
        let plan = self.plan;
        let setup = WsSetup {
            url: load_url.clone(),
            addr,
            run_id: plan.identity.run_id.clone(),
            // Publishes keep their global numbers when the load is split into shards.
            planned: plan.load.planned_overall(),
            by_worker: !plan.load.is_scheduled(),
            settings: self.settings.clone(),
        };
        let driver = WsDriver::start(setup, Arc::clone(&self.shared))
            .await
            .map(Arc::new)?;
        self.driver = Some(Arc::clone(&driver));
        Ok(driver)
    }

    fn recorders(&self) -> Vec<Arc<Mutex<Recorder>>> {
        let mut out = vec![Arc::clone(&self.probes)];
        if let Some(d) = &self.driver {
            out.extend(d.tallies().iter().cloned());
        }
        out
    }

    fn beside(&mut self, t0: Instant) {
        let (Some(p), Some(env)) = (&self.plan.probes.slow_consumer, &self.env) else {
            return;
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(slow_consumer::probe(
            Arc::clone(env),
            p.clone(),
            t0,
            stop.clone(),
        ));
        self.slow_consumer = Some(SlowConsumer {
            probe: p.clone(),
            task,
            stop,
        });
    }

    async fn finish(&mut self, end: Finish<'_>) -> Extras {
        let mut extras = Extras::default();
        let outcome = match self.slow_consumer.take() {
            Some(s) => {
                if *end.stop != Stop::Completed {
                    s.stop.cancel();
                }
                let bound = s.probe.after + s.probe.expect_within + Duration::from_secs(10);
                let outcome = tokio::select! {
                    o = tokio::time::timeout(bound, s.task) => o.ok().and_then(Result::ok),
                    _ = end.signals.stop.cancelled() => None,
                };
                s.stop.cancel();
                outcome.map(|o| (s.probe, o))
            }
            None => None,
        };
        let Some(driver) = self.driver.take() else {
            return extras;
        };
        end.observer
            .phase("settling deliveries and closing connections");
        let mut metrics = driver.finish().await;
        if let Some((p, o)) = outcome {
            let report = slow_consumer::report(&o, &p, end.t0, end.timeline);
            extras
                .checks
                .extend(slow_consumer::checks(&o, &report, end.timeline));
            metrics.slow_consumer = Some(report);
        }
        if self.plan.probes.hardening.is_some() {
            let counts = self.connection_stats();
            extras.checks.push(hardening::correlation_check(
                &counts,
                &self.settings.protocol.correlation_id,
            ));
        }
        metrics.peak_connections = self.shared.gauge.peak();
        if let Some(windows) = end.windows {
            for w in windows.iter_mut() {
                let from = end.t0 + Duration::from_secs_f64(w.from_s);
                // Until the target was back (or, if it never was, the end of the run).
                let back = w
                    .time_to_recover_s
                    .map(|t| end.t0 + Duration::from_secs_f64(w.until_s + t));
                w.messages_lost = driver.lost_sent_between(from, back.unwrap_or_else(Instant::now));
            }
        }
        extras.ws = Some(metrics);
        extras
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_admin_base_is_the_same_host_over_http() {
        let u = url::Url::parse("ws://127.0.0.1:9000/ws?x=1").unwrap();
        assert_eq!(super::admin_base(&u).as_str(), "http://127.0.0.1:9000/");
    }
}
