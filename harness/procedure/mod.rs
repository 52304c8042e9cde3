//! Handoff procedures: ordered HTTP steps with captured variables, validation rules with severities,
//! rollbacks tied to the steps they undo, and rollback verification. This module reads and validates
//! procedure files; executing them is the driver's job.
//!
//! The format is documented in the README ("Procedure files").

pub mod model;
pub mod raw;
pub mod validate;

pub use model::*;

use std::path::PathBuf;

use crate::config::{Catalog, ConfigError, Diagnostics, Problems, Source, structured};

/// Procedures compiled into the binary, so names resolve from any directory.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "scenarios/procedures/AGENT_HANDOFF_STANDARD.toml",
        include_str!("../../scenarios/procedures/AGENT_HANDOFF_STANDARD.toml"),
    ),
    (
        "scenarios/procedures/PHASE_TRANSITION_STANDARD.toml",
        include_str!("../../scenarios/procedures/PHASE_TRANSITION_STANDARD.toml"),
    ),
    (
        "scenarios/procedures/REPORT_SIGNOFF.toml",
        include_str!("../../scenarios/procedures/REPORT_SIGNOFF.toml"),
    ),
];

/// Named procedures: the built-in ones, then the `*.toml` files of each directory in turn.
pub fn catalog(dirs: &[PathBuf]) -> Result<Catalog, ConfigError> {
    Catalog::new("procedure", BUILTIN, dirs)
}

/// Reads and validates one procedure file. `expected_name` is the name it was looked up by, if any.
pub fn parse(source: &Source, expected_name: Option<&str>) -> Result<Procedure, Problems> {
    let mut diag = Diagnostics::new(source);
    let raw = structured::deserialize::<raw::RawProcedure>(&mut diag);
    let procedure = raw.and_then(|raw| validate::procedure(&mut diag, raw, expected_name));
    match procedure {
        Some(p) if !diag.has_errors() => Ok(p),
        _ => Err(Problems(diag.into_problems())),
    }
}
