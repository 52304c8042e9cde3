//! A reliability and chaos test harness for handoff procedures and WebSocket endpoints.
//!
//! An engineer names a test configuration (a scenario); the harness runs one of six suites against a
//! target and reports whether the target held its thresholds. The library is organised so that each
//! module has one job:
//!
//! - [`config`]: shared plumbing for reading configuration files and reporting every problem at once;
//! - [`scenario`] and [`procedure`]: the two file formats, read in two stages (raw, then validated);
//! - [`thresholds`]: conditions on metrics, and the catalogue of metrics each kind of run produces;
//! - [`kinds`], [`taxonomy`] and [`iteration`]: the words every layer shares — suites, target kinds,
//!   load models; the kinds of error an iteration can end with; what a driver reports of an iteration;
//! - [`plan`]: a scenario and the command line's overrides resolved into what the engine runs;
//! - [`schedule`]: when each iteration of a load model should start;
//! - [`engine`]: runs a plan — one lifecycle for every target, the worker pool, budget, interrupts;
//! - [`drivers`]: one iteration against a target (HTTP procedures, WebSocket frames);
//! - [`probes`]: checks of a target's stated policy (rate limit, input hardening, slow consumers);
//! - [`metrics`], [`result`], [`report`], [`compare`]: what was measured, and how it is shown;
//! - [`reference`]: the reference targets the harness embeds;
//! - [`proxy`]: the fault proxy (toxics over windows of a run);
//! - [`cli`]: the command line, the only module that knows about arguments and exit codes.

pub mod cli;
pub mod compare;
pub mod config;
pub mod drivers;
pub mod engine;
pub mod faults;
pub mod history;
pub mod invariants;
pub mod iteration;
pub mod journal;
pub mod kinds;
pub mod kubernetes;
pub mod live;
pub mod merge;
pub mod metrics;
pub mod net;
pub mod plan;
pub mod probes;
pub mod procedure;
pub mod proxy;
pub mod redact;
pub mod reference;
pub mod report;
pub mod result;
pub mod scenario;
pub mod schedule;
pub mod taxonomy;
pub mod text;
pub mod thresholds;
pub mod tls;
