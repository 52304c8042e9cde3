//! Applying an iteration's fault to the work it guards, the same way for every driver. A driver hands
//! [`inject`] the action of one fault point (a procedure step's requests, a WebSocket exchange) and
//! gets back what became of it:
//!
//! - `latency`: the action runs after the fault's delay (cut short by the deadline);
//! - `error`: the action never runs — nothing is sent;
//! - `timeout`: the action runs (what it sends reaches the target), but its answer is withheld until
//!   the deadline, as a response lost on the way back would be;
//! - `validation`: the action runs, and its answer is to be treated as failing a critical rule —
//!   the one fault that needs the target's response, so the driver applies it.
//!
//! Every injected failure counts under the one error kind `injected`, with the same words whatever
//! the driver.

use std::future::Future;
use std::time::Instant;

use super::{FaultKind, FaultPlan};
use crate::iteration::{ErrorKind, Failure};

/// What became of an action a fault applied to.
#[derive(Debug, Clone, PartialEq)]
pub enum Injected<T> {
    /// The action ran as it would have (after the delay of a `latency` fault).
    Ran(T),
    /// The action ran; its answer is to be treated as failing a critical validation rule.
    Invalid(T),
    /// The action never ran: nothing was sent.
    Refused,
    /// The action ran, but its answer was withheld until the deadline.
    Withheld(T),
}

impl<T> Injected<T> {
    /// The failure an iteration reports for an injected fault (none for `Ran`).
    pub fn failure(&self, step: Option<&str>) -> Option<Failure> {
        let detail = match self {
            Injected::Ran(_) => return None,
            Injected::Invalid(_) => {
                "injected validation failure: the answer is treated as failing a critical rule"
            }
            Injected::Refused => "injected error: nothing was sent",
            Injected::Withheld(_) => {
                "injected timeout: the answer was withheld until the time ran out"
            }
        };
        Some(Failure {
            kind: ErrorKind::Injected,
            rule: None,
            step: step.map(str::to_string),
            detail: detail.into(),
        })
    }
}

/// Runs `action`, the work of fault point `point`, under `fault` (when it applies to that point);
/// `deadline` ends a delay and a withheld answer.
pub async fn inject<F: Future>(
    fault: Option<FaultPlan>,
    point: usize,
    deadline: Instant,
    action: F,
) -> Injected<F::Output> {
    let Some(fault) = fault.filter(|f| f.step == point) else {
        return Injected::Ran(action.await);
    };
    match fault.kind {
        FaultKind::Error => Injected::Refused,
        FaultKind::Latency => {
            let until = (Instant::now() + fault.latency).min(deadline);
            tokio::time::sleep_until(until.into()).await;
            Injected::Ran(action.await)
        }
        FaultKind::Timeout => {
            let out = action.await;
            tokio::time::sleep_until(deadline.into()).await;
            Injected::Withheld(out)
        }
        FaultKind::Validation => Injected::Invalid(action.await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    fn fault(kind: FaultKind, step: usize) -> Option<FaultPlan> {
        Some(FaultPlan {
            step,
            kind,
            latency: Duration::from_millis(200),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn each_kind_does_what_it_says_to_the_action() {
        let runs = AtomicU32::new(0);
        let action = || async {
            runs.fetch_add(1, Ordering::Relaxed);
            7
        };
        let deadline = Instant::now() + Duration::from_secs(1);

        assert_eq!(inject(None, 0, deadline, action()).await, Injected::Ran(7));
        assert_eq!(
            inject(fault(FaultKind::Error, 1), 0, deadline, action()).await,
            Injected::Ran(7),
            "a fault for another point leaves this one alone"
        );
        assert_eq!(runs.load(Ordering::Relaxed), 2);

        let refused = inject(fault(FaultKind::Error, 0), 0, deadline, action()).await;
        assert_eq!(refused, Injected::Refused);
        assert_eq!(runs.load(Ordering::Relaxed), 2, "an error sends nothing");

        let started = tokio::time::Instant::now();
        let late = inject(fault(FaultKind::Latency, 0), 0, deadline, action()).await;
        assert_eq!(late, Injected::Ran(7));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(199) && waited < Duration::from_millis(300),
            "{waited:?}"
        );

        let started = tokio::time::Instant::now();
        let withheld = inject(fault(FaultKind::Timeout, 0), 0, deadline, action()).await;
        assert_eq!(withheld, Injected::Withheld(7));
        assert!(
            tokio::time::Instant::now() >= tokio::time::Instant::from_std(deadline),
            "held until the deadline ({:?} after the start)",
            started.elapsed()
        );
        assert_eq!(runs.load(Ordering::Relaxed), 4, "a timeout still sends");

        let invalid = inject(fault(FaultKind::Validation, 0), 0, deadline, action()).await;
        assert_eq!(invalid, Injected::Invalid(7));
    }

    #[test]
    fn every_injected_failure_is_of_one_kind() {
        for i in [
            Injected::Invalid(()),
            Injected::Refused,
            Injected::Withheld(()),
        ] {
            let f = i.failure(Some("s1")).unwrap();
            assert_eq!(
                (f.kind, f.step.as_deref()),
                (ErrorKind::Injected, Some("s1"))
            );
        }
        assert!(Injected::Ran(()).failure(None).is_none());
    }
}
