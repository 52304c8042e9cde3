//! Rollback after a failed step: the rollbacks of every step whose request may have taken effect run
//! in reverse step order, then their verifications read the target's state back. A rollback counts as
//! succeeded only when every verification passes — requests that answer 200 prove nothing.

use std::time::Instant;

use super::HttpDriver;
use super::checks::{self, Mismatch};
use super::client::{Effect, send};
use super::vars::Vars;
use crate::drivers::Timer;
use crate::iteration::RollbackOutcome;
use crate::procedure::Rollback;

/// Attempts a verification read gets; reads are safe to repeat.
const VERIFY_ATTEMPTS: u32 = 3;

/// Rolls back after step `failed_step` failed; `None` when no step had taken effect.
pub(super) async fn run(
    driver: &HttpDriver,
    failed_step: usize,
    effects: &[Effect],
    vars: &mut Vars,
    acks: &mut Vec<crate::invariants::Ack>,
    (timer, log): (&mut Timer, &mut super::RetryLog),
) -> Option<RollbackOutcome> {
    let took_effect = |s: &usize| effects.get(*s).is_some_and(|e| *e != Effect::None);
    let mut due: Vec<(&Rollback, usize)> = driver
        .procedure
        .rollbacks
        .iter()
        .filter_map(|rb| {
            rb.undoes
                .iter()
                .copied()
                .filter(took_effect)
                .max()
                .map(|last| (rb, last))
        })
        .collect();
    if due.is_empty() {
        return None;
    }
    // The latest change is undone first.
    due.sort_by_key(|(_, last)| std::cmp::Reverse(*last));
    let deadline = Instant::now() + driver.settings.iteration_timeout;
    let mut problems = Vec::new();
    for (rb, _) in &due {
        for step in &rb.steps {
            let run = driver
                .run_step((0, step), vars, deadline, None, (&mut *timer, &mut *log))
                .await;
            match run.result {
                Ok(resp) => {
                    HttpDriver::acknowledged(step, &resp, acks);
                    // Later rollback requests may use what earlier ones captured.
                    for c in &step.captures {
                        if let Some(v) = resp.json().ok().and_then(|j| j.pointer(&c.pointer)) {
                            vars.set(&c.variable, v.clone());
                        }
                    }
                }
                // A failed undo request is noted; verification decides whether the state came back.
                Err(f) => problems.push(format!("{}: request failed: {}", rb.id, f.detail)),
            }
        }
    }
    let mut verified = true;
    for (rb, _) in &due {
        for v in &rb.verify {
            match verify(driver, rb, v, vars, deadline, timer).await {
                Ok(()) => {}
                Err(why) => {
                    verified = false;
                    problems.push(format!("{}: {} — {why}", rb.id, v.name));
                }
            }
        }
    }
    Some(RollbackOutcome {
        failed_step,
        verified,
        detail: (!problems.is_empty()).then(|| problems.join("; ")),
    })
}

async fn verify(
    driver: &HttpDriver,
    rb: &Rollback,
    v: &crate::procedure::Verification,
    vars: &Vars,
    deadline: Instant,
    timer: &mut Timer,
) -> Result<(), Mismatch> {
    let req = driver
        .render(&v.request, vars, &rb.id)
        .map_err(|f| Mismatch(f.detail))?;
    let mut last = String::new();
    for _ in 0..VERIFY_ATTEMPTS {
        let attempt_deadline = v
            .timeout
            .map_or(deadline, |t| (Instant::now() + t).min(deadline));
        match send(&driver.client, &req, attempt_deadline, timer).await {
            Ok(resp) if resp.status < 500 => {
                let failed: Vec<String> = v
                    .checks
                    .iter()
                    .filter_map(|c| checks::evaluate(c, &resp, vars).err().map(|m| m.0))
                    .collect();
                return if failed.is_empty() {
                    Ok(())
                } else {
                    Err(Mismatch(failed.join("; ")))
                };
            }
            Ok(resp) => last = format!("could not read the state back: {}", resp.describe()),
            Err(e) => last = format!("could not read the state back: {}", e.detail),
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    Err(Mismatch(last))
}
