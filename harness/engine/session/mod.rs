//! What differs from one kind of target to another, behind the one run lifecycle
//! ([`super::lifecycle`]): a [`Session`] checks the target is there, runs the probes that need it to
//! themselves, sets up the driver, runs what goes on beside the load, and at the end settles, closes
//! and hands over its own measurements. Everything else — chaos controls, the fault proxy, the clock,
//! the pool, the budget, interrupts, recovery, the result — the lifecycle does once for all targets.

pub mod http;
pub mod ws;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use url::Url;

use super::assemble::{Extras, Stop};
use super::{Observer, Signals, TargetError};
use crate::drivers::Driver;
use crate::invariants::Ack;
use crate::metrics::{Recorder, TimelineRow};
use crate::plan::{BodySizeProbe, HardeningProbe, Probes, RateLimitProbe};
use crate::result::RecoveryWindow;

/// A probe that runs before the load, with the target to itself.
#[derive(Debug, Clone, Copy)]
pub enum BeforeLoad<'a> {
    RateLimit(&'a RateLimitProbe),
    Hardening(&'a HardeningProbe),
    BodySize(&'a BodySizeProbe),
}

impl BeforeLoad<'_> {
    /// The probes of `probes` that run before the load, in order.
    pub fn all(probes: &Probes) -> Vec<BeforeLoad<'_>> {
        let mut out = Vec::new();
        if let Some(p) = &probes.rate_limit {
            out.push(BeforeLoad::RateLimit(p));
        }
        if let Some(p) = &probes.hardening {
            out.push(BeforeLoad::Hardening(p));
        }
        if let Some(p) = &probes.body_size {
            out.push(BeforeLoad::BodySize(p));
        }
        out
    }

    /// What the progress display says while it runs.
    pub fn describe(&self) -> String {
        match self {
            BeforeLoad::RateLimit(p) => crate::probes::rate_limit::describe(p),
            BeforeLoad::Hardening(_) => {
                "probing input hardening: sizes, malformed JSON, unknown types, paths".into()
            }
            BeforeLoad::BodySize(p) => crate::probes::body_size::describe(p),
        }
    }

    /// The named check that fails when the probe cannot run at all.
    pub fn check_name(&self) -> &'static str {
        match self {
            BeforeLoad::RateLimit(_) => "rate_limit.conforms",
            BeforeLoad::Hardening(_) => "hardening.ran",
            BeforeLoad::BodySize(_) => "body_size.ran",
        }
    }
}

/// What a session is given once the load has ended.
pub struct Finish<'a> {
    /// Why the load ended.
    pub stop: &'a Stop,
    /// When the load started.
    pub t0: Instant,
    /// The load's timeline so far.
    pub timeline: &'a [TimelineRow],
    /// The network fault windows and the recovery after each, for the session to add what it alone
    /// knows (acknowledged messages lost during a window).
    pub windows: Option<&'a mut Vec<RecoveryWindow>>,
    /// The acknowledged history, when the plan checks invariants.
    pub history: Option<Vec<Ack>>,
    /// The writes to collections, when the plan reads them back.
    pub writes: Option<Vec<crate::history::Write>>,
    pub signals: &'a Signals,
    pub observer: &'a dyn Observer,
}

/// One kind of target, for the length of one run.
pub trait Session: Send {
    type Driver: Driver;

    /// Checks that the target answers at all; the reason when it does not.
    fn preflight(&mut self) -> impl Future<Output = Result<(), TargetError>> + Send;

    /// Base URL of the target's admin routes (its chaos controls).
    fn admin_base(&self) -> Url;

    /// Runs a probe that needs the target to itself; an error when it could not run.
    fn probe(
        &mut self,
        probe: BeforeLoad<'_>,
    ) -> impl Future<Output = Result<Extras, TargetError>> + Send;

    /// What the progress display says while [`Session::start`] runs, if anything.
    fn starting(&self) -> Option<String>;

    /// Sets up the driver, with the load going to `load_url` (the fault proxy's, under network
    /// faults); an error when nothing can run.
    fn start(
        &mut self,
        load_url: &Url,
    ) -> impl Future<Output = Result<Arc<Self::Driver>, TargetError>> + Send;

    /// Recorders of the session's own (connections, subscribers, probes), merged with the workers'
    /// by addition; asked for once the driver has started.
    fn recorders(&self) -> Vec<Arc<Mutex<Recorder>>> {
        Vec::new()
    }

    /// Starts what runs beside the load, which starts at `t0`.
    fn beside(&mut self, t0: Instant);

    /// After the load: ends what ran beside it, settles and closes, and returns the session's own
    /// measurements and checks.
    fn finish(&mut self, end: Finish<'_>) -> impl Future<Output = Extras> + Send;
}
