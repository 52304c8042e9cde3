//! The session of an HTTP target (a procedure, or one request per iteration): a TCP connection to see
//! the target is there, the HTTP rate-limit probe, the HTTP driver, and — when the plan checks
//! invariants — the acknowledged history compared with the state the service reports.

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use url::Url;

use super::{BeforeLoad, Finish, Session};
use crate::drivers::http::{HttpDriver, HttpSettings};
use crate::engine::assemble::Extras;
use crate::engine::{TargetError, preflight, target_admin};
use crate::plan::RunPlan;
use crate::probes::rate_limit;
use crate::procedure::Procedure;

pub struct HttpSession<'a> {
    plan: &'a RunPlan,
    url: Url,
    procedure: Arc<Procedure>,
    /// The load's driver, for reading the history's collections back at the end.
    driver: Option<Arc<HttpDriver>>,
    /// What the run's setup did, for the result's checks.
    setup: Option<crate::result::CheckResult>,
}

/// Most collections read back at once.
const READ_BACK_CONCURRENCY: usize = 8;

impl<'a> HttpSession<'a> {
    pub fn new(plan: &'a RunPlan, url: Url, procedure: Arc<Procedure>) -> Self {
        Self {
            plan,
            url,
            procedure,
            driver: None,
            setup: None,
        }
    }
}

impl Session for HttpSession<'_> {
    type Driver = HttpDriver;

    async fn preflight(&mut self) -> Result<(), TargetError> {
        preflight::check_reachable(&self.url, &self.plan.net).await
    }

    fn admin_base(&self) -> Url {
        self.url.clone()
    }

    async fn probe(&mut self, probe: BeforeLoad<'_>) -> Result<Extras, TargetError> {
        match probe {
            BeforeLoad::RateLimit(p) => {
                let m = rate_limit::probe_http(
                    &self.url,
                    p,
                    self.plan.budget.iteration,
                    &self.plan.net,
                )
                .await?;
                let mut extras = Extras::default();
                extras.checks.push(rate_limit::check(&m));
                if p.require_retry_after
                    && let Some(c) = rate_limit::retry_after_check(&m)
                {
                    extras.checks.push(c);
                }
                extras.rate_limit = Some(m);
                Ok(extras)
            }
            BeforeLoad::Hardening(_) => Err(TargetError::Unsupported(
                "input hardening is probed on WebSocket targets",
            )),
            BeforeLoad::BodySize(p) => {
                let (m, checks) = crate::probes::body_size::probe_http(
                    &self.url,
                    p,
                    self.plan.budget.iteration,
                    &self.plan.net,
                )
                .await?;
                Ok(Extras {
                    body_size: Some(m),
                    checks,
                    ..Extras::default()
                })
            }
        }
    }

    fn starting(&self) -> Option<String> {
        let requests: u32 = self
            .procedure
            .run_setup
            .iter()
            .map(|r| r.repeat.unwrap_or(1))
            .sum();
        (requests > 0).then(|| format!("run setup: {requests} requests"))
    }

    async fn start(&mut self, load_url: &Url) -> Result<Arc<HttpDriver>, TargetError> {
        let plan = self.plan;
        let settings = HttpSettings {
            run_id: plan.identity.run_id.clone(),
            seed: plan.identity.seed,
            net: plan.net.clone(),
            iteration_timeout: plan.budget.iteration,
            pool_size: plan.load.concurrency() as usize,
        };
        let driver = HttpDriver::new(Arc::clone(&self.procedure), load_url, settings)
            .map(Arc::new)
            .map_err(TargetError::Client)?;
        self.driver = Some(Arc::clone(&driver));
        if !self.procedure.run_setup.is_empty() {
            match driver.run_setup().await {
                Ok(done) => self.setup = Some(setup_check(&done)),
                Err(failed) => {
                    // Undo what the setup made before it failed.
                    let teardown = match self.procedure.run_teardown.is_empty() {
                        true => String::new(),
                        false => format!("; then {}", teardown_text(&driver.run_teardown().await)),
                    };
                    return Err(TargetError::Setup { failed, teardown });
                }
            }
        }
        Ok(driver)
    }

    fn beside(&mut self, _t0: Instant) {}

    async fn finish(&mut self, end: Finish<'_>) -> Extras {
        let mut extras = Extras::default();
        extras.checks.extend(self.setup.take());
        if let Some(driver) = &self.driver {
            extras.http_protocols = driver.protocols();
            extras.http_connections = self.plan.net.time_connections.then(|| driver.connections());
        }
        if let (Some(writes), Some(driver)) = (end.writes, &self.driver) {
            let keys = crate::history::keys(&writes);
            let read = futures_util::stream::iter(keys.into_iter().map(|key| {
                let driver = Arc::clone(driver);
                async move {
                    let found = driver.read_back(&key).await;
                    (key, found)
                }
            }))
            .buffer_unordered(READ_BACK_CONCURRENCY);
            let stored = tokio::select! {
                stored = read.collect::<std::collections::BTreeMap<_, _>>() => Some(stored),
                _ = end.signals.stop.cancelled() => None,
            };
            match stored {
                Some(stored) => extras.history = Some(crate::history::check(&writes, &stored)),
                None => extras
                    .notes
                    .push("The history was not read back: the run was interrupted.".into()),
            }
        }
        if let Some(history) = end.history {
            let checked = match target_admin::state(&self.url, &self.plan.net).await {
                Ok(state) => crate::invariants::check(&history, &state).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match checked {
                Ok(report) => extras.invariants = Some(report),
                Err(why) => extras
                    .notes
                    .push(format!("Invariants were not checked: {why}")),
            }
        }
        // Last: the history was read back from what the setup made.
        if let Some(driver) = &self.driver
            && !self.procedure.run_teardown.is_empty()
        {
            end.observer.phase("run teardown");
            let done = driver.run_teardown().await;
            extras.checks.push(crate::result::CheckResult::new(
                "run_teardown",
                done.failures.is_empty(),
                teardown_text(&done),
            ));
        }
        extras
    }
}

/// The check that tells what the run's setup made.
fn setup_check(done: &crate::drivers::http::SetupDone) -> crate::result::CheckResult {
    let captured: Vec<String> = done
        .captured
        .iter()
        .map(|(name, n)| match n {
            1 => name.clone(),
            n => format!("{name} ×{n}"),
        })
        .collect();
    let what = match captured.is_empty() {
        true => String::new(),
        false => format!(", captured {}", captured.join(", ")),
    };
    crate::result::CheckResult::new(
        "run_setup",
        true,
        format!("{} requests succeeded{what}", done.requests),
    )
}

/// The teardown in a sentence: what was sent, what failed.
fn teardown_text(done: &crate::drivers::http::TeardownDone) -> String {
    let mut text = format!(
        "the run teardown sent {} requests, {} failed",
        done.requests,
        done.failures.len()
    );
    if done.skipped > 0 {
        text += &format!(
            " ({} not sent: they need a value the setup never captured)",
            done.skipped
        );
    }
    for f in done.failures.iter().take(5) {
        text += &format!("; {f}");
    }
    if done.failures.len() > 5 {
        text += &format!("; and {} more", done.failures.len() - 5);
    }
    text
}
