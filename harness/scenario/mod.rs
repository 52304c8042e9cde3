//! Scenarios: named test configurations. A scenario says which suite to run, against which target
//! (a handoff procedure over HTTP, a single HTTP request, or a WebSocket endpoint), under which load,
//! with which faults, and which thresholds the run must meet.
//!
//! This module finds scenarios by name or path, reads them in two stages (raw serde structs, then
//! validated domain types) and reports every problem at once. It runs nothing.

pub mod matcher;
pub mod model;
pub mod raw;
pub mod validate;
pub mod websocket;

pub use model::*;
pub use websocket::{FrameMatcher, Probes, WsMode, WsProtocol, WsSettings};

use std::path::{Path, PathBuf};

use crate::config::{
    Catalog, ConfigError, Diagnostics, Entry, Problems, Source, catalog::read_source, structured,
};
use crate::procedure;

/// The standard configurations, compiled into the binary so that names resolve from any directory.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "scenarios/CONCURRENCY_STANDARD.toml",
        include_str!("../../scenarios/CONCURRENCY_STANDARD.toml"),
    ),
    (
        "scenarios/ENDURANCE_STANDARD.toml",
        include_str!("../../scenarios/ENDURANCE_STANDARD.toml"),
    ),
    (
        "scenarios/FAILURE_INJECTION_STANDARD.toml",
        include_str!("../../scenarios/FAILURE_INJECTION_STANDARD.toml"),
    ),
    (
        "scenarios/PERFORMANCE_STANDARD.toml",
        include_str!("../../scenarios/PERFORMANCE_STANDARD.toml"),
    ),
    (
        "scenarios/RELIABILITY_STANDARD.toml",
        include_str!("../../scenarios/RELIABILITY_STANDARD.toml"),
    ),
    (
        "scenarios/REGRESSION_STANDARD.toml",
        include_str!("../../scenarios/REGRESSION_STANDARD.toml"),
    ),
    (
        "scenarios/REPORT_SIGNOFF_STANDARD.toml",
        include_str!("../../scenarios/REPORT_SIGNOFF_STANDARD.toml"),
    ),
    (
        "scenarios/STRESS_STANDARD.toml",
        include_str!("../../scenarios/STRESS_STANDARD.toml"),
    ),
    (
        "scenarios/WS_CHAOS_RECOVERY_STANDARD.toml",
        include_str!("../../scenarios/WS_CHAOS_RECOVERY_STANDARD.toml"),
    ),
    (
        "scenarios/WS_CONCURRENCY_STANDARD.toml",
        include_str!("../../scenarios/WS_CONCURRENCY_STANDARD.toml"),
    ),
    (
        "scenarios/WS_ENDURANCE_STANDARD.toml",
        include_str!("../../scenarios/WS_ENDURANCE_STANDARD.toml"),
    ),
    (
        "scenarios/WS_FAILURE_INJECTION_STANDARD.toml",
        include_str!("../../scenarios/WS_FAILURE_INJECTION_STANDARD.toml"),
    ),
    (
        "scenarios/WS_HARDENING_STANDARD.toml",
        include_str!("../../scenarios/WS_HARDENING_STANDARD.toml"),
    ),
    (
        "scenarios/WS_LATENCY_DELIVERY_STANDARD.toml",
        include_str!("../../scenarios/WS_LATENCY_DELIVERY_STANDARD.toml"),
    ),
    (
        "scenarios/WS_RATE_LIMIT_STANDARD.toml",
        include_str!("../../scenarios/WS_RATE_LIMIT_STANDARD.toml"),
    ),
    (
        "scenarios/WS_SLOW_CONSUMER_STANDARD.toml",
        include_str!("../../scenarios/WS_SLOW_CONSUMER_STANDARD.toml"),
    ),
    (
        "scenarios/WS_STRESS_STANDARD.toml",
        include_str!("../../scenarios/WS_STRESS_STANDARD.toml"),
    ),
];

/// The directory searched for scenarios when the user names none.
pub const DEFAULT_DIR: &str = "scenarios";

/// Every named scenario and procedure: the built-in ones, overridden or extended by the files of a
/// scenarios directory (and its `procedures/` subdirectory).
#[derive(Debug, Clone)]
pub struct Library {
    scenarios: Catalog,
    dir: Option<PathBuf>,
}

/// A scenario file found by [`Library::locate`], not yet read.
#[derive(Debug, Clone)]
pub struct Located {
    pub source: Source,
    /// The name it was found by; the file's `name` must agree.
    pub expected_name: Option<String>,
    /// Directory of the file, where relative procedure paths and a `procedures/` folder are looked for.
    pub base_dir: Option<PathBuf>,
}

impl Library {
    /// Opens the library. With `dir` given it must exist; without, `./scenarios` is used if present.
    pub fn open(dir: Option<&Path>) -> Result<Self, ConfigError> {
        let dir = match dir {
            Some(d) => {
                if !d.is_dir() {
                    return Err(ConfigError::Read {
                        path: d.to_path_buf(),
                        cause: std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            "no such directory (given with --scenarios)",
                        ),
                    });
                }
                Some(d.to_path_buf())
            }
            None => Some(PathBuf::from(DEFAULT_DIR)).filter(|d| d.is_dir()),
        };
        let scenarios = Catalog::new("scenario", BUILTIN, dir.as_slice())?;
        Ok(Self { scenarios, dir })
    }

    /// Every named scenario, by name.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.scenarios.entries()
    }

    /// Finds a scenario by name (`RELIABILITY_STANDARD`) or by path (anything ending in `.toml` or
    /// containing a `/`).
    pub fn locate(&self, name_or_path: &str) -> Result<Located, ConfigError> {
        if name_or_path.ends_with(".toml")
            || name_or_path.contains('/')
            || name_or_path.contains('\\')
        {
            let path = Path::new(name_or_path);
            return Ok(Located {
                source: read_source(path)?,
                expected_name: None,
                base_dir: path.parent().map(Path::to_path_buf),
            });
        }
        let entry = self.scenarios.find(name_or_path)?;
        self.locate_entry(entry)
    }

    fn locate_entry(&self, entry: &Entry) -> Result<Located, ConfigError> {
        Ok(Located {
            source: entry.source()?,
            expected_name: Some(entry.name.clone()),
            base_dir: match &entry.origin {
                crate::config::Origin::File(p) => p.parent().map(Path::to_path_buf),
                crate::config::Origin::Builtin { .. } => None,
            },
        })
    }

    /// Reads and validates a located scenario, with every problem of it and of its procedure.
    pub fn parse(&self, located: &Located) -> Result<Scenario, ConfigError> {
        let procedures = procedure::catalog(&self.procedure_dirs(located))?;
        let resolver = validate::Resolver {
            procedures: &procedures,
            base_dir: located.base_dir.as_deref(),
        };
        parse(&located.source, located.expected_name.as_deref(), &resolver)
            .map_err(ConfigError::Invalid)
    }

    /// Where the procedures a located scenario names are looked for, first to last.
    fn procedure_dirs(&self, located: &Located) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        if let Some(d) = &self.dir {
            dirs.push(d.join("procedures"));
        }
        if let Some(d) = &located.base_dir {
            let local = d.join("procedures");
            if !dirs.contains(&local) {
                dirs.push(local);
            }
        }
        dirs
    }

    /// The text of the procedure a located scenario names as `name` (not a path): the one its
    /// [`Self::parse`] would read.
    pub fn procedure_source(&self, located: &Located, name: &str) -> Result<Source, ConfigError> {
        procedure::catalog(&self.procedure_dirs(located))?
            .find(name)?
            .source()
    }

    /// [`Self::locate`] then [`Self::parse`].
    pub fn load(&self, name_or_path: &str) -> Result<Scenario, ConfigError> {
        self.parse(&self.locate(name_or_path)?)
    }

    /// Loads a named entry (for `list`).
    pub fn load_entry(&self, entry: &Entry) -> Result<Scenario, ConfigError> {
        self.parse(&self.locate_entry(entry)?)
    }
}

/// Reads and validates one scenario file.
pub fn parse(
    source: &Source,
    expected_name: Option<&str>,
    resolver: &validate::Resolver<'_>,
) -> Result<Scenario, Problems> {
    let mut diag = Diagnostics::new(source);
    let mut foreign = Vec::new();
    let raw = structured::deserialize::<raw::RawScenario>(&mut diag);
    let scenario = raw
        .and_then(|raw| validate::scenario(&mut diag, raw, expected_name, resolver, &mut foreign));
    let mut problems = diag.into_problems();
    problems.extend(foreign);
    match scenario {
        Some(s) if problems.is_empty() => Ok(s),
        _ => Err(Problems(problems)),
    }
}
