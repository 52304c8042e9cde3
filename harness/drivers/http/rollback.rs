//! Rollback after a failed step: the rollbacks of every step whose request may have taken effect run
//! in reverse step order, each followed by its verifications, which read the target's state back. A rollback counts as
//! succeeded only when every verification passes — requests that answer 200 prove nothing.
//!
//! An irreversible step that took effect is a barrier: nothing at or before it is rolled back (it
//! cannot be, and trying would fail a healthy service), except by a rollback that names the
//! irreversible step itself in `undoes` — its compensation. A rollback with `applies_to` answers only
//! the failures of those steps.

use std::time::Instant;

use super::HttpDriver;
use super::checks::{self, Mismatch};
use super::client::Effect;
use super::vars::Vars;
use crate::drivers::Timer;
use crate::iteration::RollbackOutcome;
use crate::procedure::{Procedure, Rollback};

/// Attempts a verification read gets; reads are safe to repeat.
const VERIFY_ATTEMPTS: u32 = 3;

/// What a failure calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Due {
    /// These rollbacks (indexes into the procedure's), latest change first.
    Rollbacks(Vec<usize>),
    /// Nothing to undo: no step took effect, or none that a rollback answers.
    Nothing,
    /// What took effect lies behind this irreversible step, and no rollback compensates it.
    Irreversible(usize),
}

/// Which rollbacks step `failed_step`'s failure calls for, given what each step's request did.
pub(super) fn due(procedure: &Procedure, failed_step: usize, effects: &[Effect]) -> Due {
    let took_effect = |s: &usize| effects.get(*s).is_some_and(|e| *e != Effect::None);
    let barrier = (0..=failed_step).rev().find(|s| {
        procedure.steps.get(*s).is_some_and(|st| st.irreversible)
            && effects.get(*s) == Some(&Effect::Applied)
    });
    let mut due: Vec<(usize, usize)> = procedure
        .rollbacks
        .iter()
        .enumerate()
        .filter(|(_, rb)| rb.applies_to.is_empty() || rb.applies_to.contains(&failed_step))
        .filter_map(|(i, rb)| {
            let undone: Vec<usize> = rb.undoes.iter().copied().filter(took_effect).collect();
            let last = *undone.iter().max()?;
            match barrier {
                Some(b) if rb.undoes.contains(&b) => Some((i, last)),
                Some(b) if undone.iter().any(|s| *s <= b) => None,
                _ => Some((i, last)),
            }
        })
        .collect();
    // The latest change is undone first.
    due.sort_by_key(|(_, last)| std::cmp::Reverse(*last));
    match (due.is_empty(), barrier) {
        (false, _) => Due::Rollbacks(due.into_iter().map(|(i, _)| i).collect()),
        (true, Some(b)) if (0..=b).any(|s| took_effect(&s)) => Due::Irreversible(b),
        (true, _) => Due::Nothing,
    }
}

/// Rolls back after step `failed_step` failed; `None` when nothing was meant to be rolled back.
pub(super) async fn run(
    driver: &HttpDriver,
    failed_step: usize,
    effects: &[Effect],
    vars: &mut Vars,
    acks: &mut Vec<crate::invariants::Ack>,
    (timer, log): (&mut Timer, &mut super::RetryLog),
) -> Option<RollbackOutcome> {
    let Due::Rollbacks(indexes) = due(&driver.procedure, failed_step, effects) else {
        return None;
    };
    let due: Vec<&Rollback> = indexes
        .iter()
        .map(|i| &driver.procedure.rollbacks[*i])
        .collect();
    let deadline = Instant::now() + driver.settings.iteration_timeout;
    let mut problems = Vec::new();
    let mut verified = true;
    for rb in &due {
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
        // Each rollback is verified before the next (earlier) change is undone, which may change
        // what it reads back: deleting a draft after withdrawing it leaves no draft to read.
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
        match driver.send(&req, attempt_deadline, timer).await {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Source;

    /// draft → submit → approve (irreversible) → publish; rollbacks of draft and submit, one that
    /// answers only publish's failure, and optionally a compensation of the approval.
    fn procedure(compensated: bool) -> Procedure {
        let step = |id: &str, extra: &str| {
            format!("[[steps]]\nid = \"{id}\"\nmethod = \"POST\"\npath = \"/{id}\"\n{extra}\n")
        };
        let rollback = |id: &str, undoes: &str, extra: &str| {
            format!(
                "[[rollbacks]]\nid = \"{id}\"\nundoes = [{undoes}]\n{extra}\n[[rollbacks.steps]]\n\
                 method = \"POST\"\npath = \"/undo\"\n[[rollbacks.verify]]\nmethod = \"GET\"\n\
                 path = \"/state\"\nchecks = [{{ status = 200 }}]\n"
            )
        };
        let mut text = String::from("name = \"P\"\n");
        text += &step("draft", "");
        text += &step("submit", "");
        text += &step("approve", "irreversible = true");
        text += &step("publish", "");
        text += &rollback("undo_draft", "\"draft\"", "");
        text += &rollback(
            "undo_submit",
            "\"submit\"",
            "applies_to = [\"submit\", \"approve\"]",
        );
        if compensated {
            text += &rollback("revoke", "\"approve\"", "");
        }
        crate::procedure::parse(&Source::new("P.toml", text), None).unwrap()
    }

    #[test]
    fn an_applied_irreversible_step_is_a_barrier_that_only_its_compensation_crosses() {
        use Effect::{Applied as A, Maybe as M, None as N};
        let p = procedure(false);
        // Submit failed after reaching the service: both earlier changes are undone, latest first.
        assert_eq!(due(&p, 1, &[A, M, N, N]), Due::Rollbacks(vec![1, 0]));
        // Approve was refused (nothing applied): its failure is one undo_submit answers.
        assert_eq!(due(&p, 2, &[A, A, N, N]), Due::Rollbacks(vec![1, 0]));
        // Approve answered 5xx: it may not have taken effect, so it is no barrier.
        assert_eq!(due(&p, 2, &[A, A, M, N]), Due::Rollbacks(vec![1, 0]));
        // Publish failed after the approval: nothing before it can be undone, and no rollback is due.
        assert_eq!(due(&p, 3, &[A, A, A, M]), Due::Irreversible(2));
        // A compensation of the approval is what runs instead.
        let c = procedure(true);
        assert_eq!(due(&c, 3, &[A, A, A, M]), Due::Rollbacks(vec![2]));
        // Nothing took effect: nothing is due, and nothing is withheld.
        assert_eq!(due(&p, 0, &[N, N, N, N]), Due::Nothing);
        // undo_submit answers only submit's and approve's failures: a failure of draft itself (it
        // took effect) calls for undo_draft alone.
        assert_eq!(due(&p, 0, &[M, N, N, N]), Due::Rollbacks(vec![0]));
    }
}
