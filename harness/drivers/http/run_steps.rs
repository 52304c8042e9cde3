//! The run's own requests: `[[run_setup]]`, sent once before the load (what it captures every
//! iteration then has), and `[[run_teardown]]`, sent once after it — also after a setup that failed
//! part-way, for what it had made by then.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::vars::{Fixtures, Vars, uuid_v4};
use super::{HttpDriver, RetryLog, capture};
use crate::config::template::Lookup;
use crate::drivers::Timer;
use crate::iteration::RetryTrace;
use crate::procedure::RunStep;

/// Where the run's requests draw their `uuid` from: a stream of the seed no iteration uses.
const RUN_STREAM: u64 = 0x7275_6e5f_7374_6570;

/// A run setup request that failed: which one, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("run_setup step `{step}`{which} failed: {detail}")]
pub struct SetupFailed {
    pub step: String,
    /// ` (request 3 of 5)` for a repeated step, else empty.
    pub which: String,
    pub detail: String,
}

/// What the run's setup made: how many requests it sent, and what it captured.
#[derive(Debug, Clone, Default)]
pub struct SetupDone {
    pub requests: u64,
    pub captured: Vec<(String, usize)>,
}

/// What the teardown did.
#[derive(Debug, Clone, Default)]
pub struct TeardownDone {
    pub requests: u64,
    /// One line per request that failed.
    pub failures: Vec<String>,
    /// Requests not sent because a value they need was never captured (the setup failed first).
    pub skipped: u64,
}

impl HttpDriver {
    /// Sends the run's setup requests in order and keeps what they capture for the iterations.
    /// What was captured before a failure is kept too, for the teardown.
    pub async fn run_setup(&self) -> Result<SetupDone, SetupFailed> {
        let mut fixtures = Fixtures::default();
        let mut rng = ChaCha8Rng::seed_from_u64(self.settings.seed ^ RUN_STREAM);
        let mut done = SetupDone::default();
        let outcome = self.setup_into(&mut fixtures, &mut rng, &mut done).await;
        done.captured = fixtures
            .fixed
            .iter()
            .map(|(n, _)| (n.clone(), 1))
            .chain(fixtures.pools.iter().map(|(n, v)| (n.clone(), v.len())))
            .collect();
        // Set once: the setup runs once, before any iteration reads it.
        let _ = self.fixtures.set(fixtures);
        outcome.map(|()| done)
    }

    async fn setup_into(
        &self,
        fixtures: &mut Fixtures,
        rng: &mut ChaCha8Rng,
        done: &mut SetupDone,
    ) -> Result<(), SetupFailed> {
        for rs in &self.procedure.run_setup {
            let times = rs.repeat.unwrap_or(1);
            for index in 0..times {
                let fail = |detail: String| SetupFailed {
                    step: rs.step.id.clone(),
                    which: match rs.repeat {
                        Some(n) if n > 1 => format!(" (request {} of {n})", index + 1),
                        _ => String::new(),
                    },
                    detail,
                };
                let mut vars = self.run_vars(fixtures, rng, u64::from(index));
                done.requests += 1;
                let resp = self
                    .send_once(rs, &vars, done.requests)
                    .await
                    .map_err(fail)?;
                capture(&rs.step, &resp, &mut vars).map_err(|f| fail(f.detail))?;
                for name in rs.captured() {
                    if let Some(v) = vars.get(name) {
                        fixtures.add(name, v.clone(), rs.repeat.is_some());
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends the run's teardown requests, each once or once per value of its pool, whatever the
    /// ones before did.
    pub async fn run_teardown(&self) -> TeardownDone {
        let empty = Fixtures::default();
        let fixtures = self.fixtures.get().unwrap_or(&empty);
        let mut rng = ChaCha8Rng::seed_from_u64(self.settings.seed ^ RUN_STREAM ^ 1);
        let mut done = TeardownDone::default();
        for rs in &self.procedure.run_teardown {
            let values: Vec<Option<&Value>> = match &rs.for_each {
                Some(pool) => fixtures.pool(pool).iter().map(Some).collect(),
                None => vec![None],
            };
            for (index, value) in values.into_iter().enumerate() {
                let mut vars = self.run_vars(fixtures, &mut rng, index as u64);
                if let (Some(name), Some(v)) = (&rs.for_each, value) {
                    vars.set(name, v.clone());
                }
                let mut needs = std::collections::BTreeSet::new();
                rs.step.request.variables(&mut needs);
                let needs_missing = needs.iter().any(|name| vars.get(name).is_none());
                if needs_missing {
                    done.skipped += 1;
                    continue;
                }
                done.requests += 1;
                if let Err(why) = self.send_once(rs, &vars, done.requests).await {
                    let of = value.map_or(String::new(), |v| {
                        format!(" for {}", v.as_str().map_or(v.to_string(), str::to_string))
                    });
                    done.failures
                        .push(format!("run_teardown step `{}`{of}: {why}", rs.step.id));
                }
            }
        }
        done
    }

    /// The variables of one of the run's requests: `run_id`, `seed`, `uuid`, `index` and the
    /// setup's single values.
    fn run_vars(&self, fixtures: &Fixtures, rng: &mut ChaCha8Rng, index: u64) -> Vars {
        let mut vars = Vars::of(&[
            ("run_id", Value::String(self.settings.run_id.clone())),
            ("seed", json!(self.settings.seed)),
            ("uuid", Value::String(uuid_v4(rng))),
            ("index", json!(index)),
        ]);
        for (name, value) in &fixtures.fixed {
            vars.set(name, value.clone());
        }
        vars
    }

    /// One request of the run's, with the step's retries, bounded by the iteration timeout.
    async fn send_once(
        &self,
        rs: &RunStep,
        vars: &Vars,
        nth: u64,
    ) -> Result<super::client::Response, String> {
        let deadline = std::time::Instant::now() + self.settings.iteration_timeout;
        let mut timer = Timer::new();
        let mut log = RetryLog {
            // Its own jitter stream, apart from the iterations'.
            iteration: u64::MAX - nth,
            trace: RetryTrace::default(),
        };
        let (_, result) = self
            .attempts((0, &rs.step), vars, deadline, &mut timer, &mut log)
            .await;
        result.map_err(|f| f.detail)
    }
}
