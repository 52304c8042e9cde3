//! Plumbing shared by every configuration file the harness reads (scenarios and procedures): problems
//! tied to `file:line:col`, the first-stage serde loader that reports every structural mistake,
//! quantities with units, `{{variable}}` templates, and catalogues of named files.
//!
//! Nothing here knows what a scenario or a procedure is.

pub mod catalog;
pub mod checks;
pub mod diagnostics;
pub mod env;
pub mod structured;
pub mod suggest;
pub mod template;
pub mod units;

pub use catalog::{Catalog, Entry, Origin};
pub use diagnostics::{Diagnostics, Problem, Problems, Source};

use std::path::PathBuf;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The reason is in the message (not a source too, or `{:#}` would say it twice).
    #[error("cannot read {}: {cause}", path.display())]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("no {kind} named `{name}` — {hint}")]
    UnknownName {
        kind: &'static str,
        name: String,
        hint: String,
    },
    #[error("{0}")]
    Invalid(Problems),
}
