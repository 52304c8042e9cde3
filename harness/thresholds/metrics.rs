//! The catalogue of metrics a threshold may name, and which kinds of run produce each.
//!
//! A threshold on a metric that a run never produces would pass silently forever, so validation checks
//! every threshold against this catalogue: an unknown name gets a suggestion, and a known name that
//! this kind of run does not produce gets an explanation of what does produce it.

use std::fmt;

use crate::kinds::{LoadModel, Suite, TargetKind, WsMode};
use crate::procedure::{Procedure, Severity};
use crate::scenario::Probes;
use crate::taxonomy::ErrorKind;

/// What a metric measures, which decides how its condition is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Written with a unit (`"< 50ms"`), compared in milliseconds.
    Duration,
    /// A fraction, written `0.95` or `95%`.
    Ratio,
    /// A whole count.
    Count,
    /// Per second, written `"20/s"`.
    Rate,
    /// A plain number (e.g. a drift ratio).
    Number,
    /// `true` or `false`.
    Bool,
}

impl MetricKind {
    /// The name used in results: `duration`, `ratio`, `count`, `rate`, `number`, `bool`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Duration => "duration",
            MetricKind::Ratio => "ratio",
            MetricKind::Count => "count",
            MetricKind::Rate => "rate",
            MetricKind::Number => "number",
            MetricKind::Bool => "bool",
        }
    }
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetricKind::Duration => "a duration",
            MetricKind::Ratio => "a ratio",
            MetricKind::Count => "a count",
            MetricKind::Rate => "a rate",
            MetricKind::Number => "a number",
            MetricKind::Bool => "true or false",
        })
    }
}

/// Summary statistics of every latency histogram.
pub const STATS: &[&str] = &[
    "count", "min", "mean", "p50", "p90", "p95", "p99", "p999", "max",
];

/// What the catalogue needs to know about a run. Parts may be unknown (`None`) when the scenario
/// around a threshold is itself broken; the catalogue is then lenient about them, so that one mistake
/// does not hide the thresholds' own problems or invent new ones.
#[derive(Debug, Clone, Copy)]
pub struct RunShape<'a> {
    pub kind: Option<TargetKind>,
    pub suite: Option<Suite>,
    pub load_model: Option<LoadModel>,
    /// The procedure, when the target has one and it resolved.
    pub procedure: Option<&'a Procedure>,
    /// False when the target names a procedure that could not be read.
    pub procedure_known: bool,
    /// Whether the scenario schedules network fault windows.
    pub fault_windows: bool,
    /// Websocket targets: what an iteration does, when known.
    pub ws_mode: Option<WsMode>,
    /// The probes, when the `[probes]` table could be read.
    pub probes: Option<&'a Probes>,
}

impl RunShape<'_> {
    fn is_kind(&self, kind: TargetKind) -> bool {
        self.kind.is_none_or(|k| k == kind)
    }
    fn is_handoff(&self) -> bool {
        self.is_kind(TargetKind::Handoff)
    }
    fn is_suite(&self, suite: Suite) -> bool {
        self.suite.is_none_or(|s| s == suite)
    }
    fn procedure_has(&self, test: impl Fn(&Procedure) -> bool) -> bool {
        if !self.procedure_known {
            return true;
        }
        self.procedure.is_some_and(test)
    }
    fn has_rollbacks(&self) -> bool {
        self.is_handoff() && self.procedure_has(Procedure::has_rollbacks)
    }
    fn has_warnings(&self) -> bool {
        self.procedure_has(|p| p.rules.iter().any(|r| r.severity >= Severity::Medium))
    }
    fn has_rules(&self) -> bool {
        self.procedure_has(|p| !p.rules.is_empty())
    }
    fn has_records(&self) -> bool {
        self.procedure_has(|p| !p.recorded_metrics().is_empty())
    }
    fn is_scheduled(&self) -> bool {
        self.load_model.is_none_or(LoadModel::is_scheduled)
    }
    fn is_ws(&self) -> bool {
        self.is_kind(TargetKind::Websocket)
    }
    fn publishes(&self) -> bool {
        self.is_ws() && self.ws_mode.is_none_or(|m| m == WsMode::Publish)
    }
    fn probes_rate_limit(&self) -> bool {
        self.probes.is_none_or(|p| p.rate_limit.is_some())
    }
    fn probes_slow_consumer(&self) -> bool {
        self.is_ws() && self.probes.is_none_or(|p| p.slow_consumer.is_some())
    }
}

struct Family {
    /// Dotted pattern; `{stat}`, `{step}`, `{error}` and `{rule}` stand for one segment each.
    pattern: &'static str,
    /// Kind of the metric (for `{stat}` families, of every stat but `count`).
    kind: MetricKind,
    applies: fn(&RunShape<'_>) -> bool,
    /// What a run needs to produce it, for the message when it does not.
    needs: &'static str,
}

/// The first words of the metrics the harness itself produces (`latency`, `ws`, `recovery`, …): a
/// name a procedure records must not start with one.
pub fn reserved_roots() -> impl Iterator<Item = &'static str> {
    FAMILIES
        .iter()
        .filter_map(|f| f.pattern.split('.').next())
        .filter(|root| !root.starts_with('{'))
}

const FAMILIES: &[Family] = &[
    Family {
        pattern: "iterations",
        kind: MetricKind::Count,
        applies: |_| true,
        needs: "",
    },
    Family {
        pattern: "succeeded",
        kind: MetricKind::Count,
        applies: |_| true,
        needs: "",
    },
    Family {
        pattern: "failed",
        kind: MetricKind::Count,
        applies: |_| true,
        needs: "",
    },
    Family {
        pattern: "timed_out",
        kind: MetricKind::Count,
        applies: |_| true,
        needs: "",
    },
    Family {
        pattern: "success_rate",
        kind: MetricKind::Ratio,
        applies: |_| true,
        needs: "",
    },
    Family {
        pattern: "error_rate",
        kind: MetricKind::Ratio,
        applies: |_| true,
        needs: "",
    },
    Family {
        pattern: "throughput",
        kind: MetricKind::Rate,
        applies: |_| true,
        needs: "",
    },
    Family {
        pattern: "latency.{stat}",
        kind: MetricKind::Duration,
        applies: |_| true,
        needs: "",
    },
    Family {
        pattern: "errors.{error}",
        kind: MetricKind::Count,
        applies: |_| true,
        needs: "",
    },
    Family {
        pattern: "errors.validation.{rule}",
        kind: MetricKind::Count,
        applies: |s| s.has_rules(),
        needs: "a procedure with validation rules",
    },
    Family {
        pattern: "service_time.{stat}",
        kind: MetricKind::Duration,
        applies: |s| s.is_scheduled(),
        needs: "an open or stepped load (a closed load has no intended start times)",
    },
    Family {
        pattern: "schedule.late",
        kind: MetricKind::Count,
        applies: |s| s.is_scheduled(),
        needs: "an open or stepped load",
    },
    Family {
        pattern: "schedule.on_time_rate",
        kind: MetricKind::Ratio,
        applies: |s| s.is_scheduled(),
        needs: "an open or stepped load",
    },
    Family {
        pattern: "steps.{step}.latency.{stat}",
        kind: MetricKind::Duration,
        applies: |s| s.is_handoff(),
        needs: "a handoff target (its procedure's steps)",
    },
    Family {
        pattern: "warnings",
        kind: MetricKind::Count,
        applies: |s| s.has_warnings(),
        needs: "a procedure with medium or low validation rules",
    },
    Family {
        pattern: "rollback.attempted",
        kind: MetricKind::Count,
        applies: |s| s.has_rollbacks(),
        needs: "a handoff target whose procedure has rollbacks",
    },
    Family {
        pattern: "rollback.succeeded",
        kind: MetricKind::Count,
        applies: |s| s.has_rollbacks(),
        needs: "a handoff target whose procedure has rollbacks",
    },
    Family {
        pattern: "rollback.success_rate",
        kind: MetricKind::Ratio,
        applies: |s| s.has_rollbacks(),
        needs: "a handoff target whose procedure has rollbacks",
    },
    Family {
        pattern: "{record}.{stat}",
        kind: MetricKind::Duration,
        applies: |s| s.has_records(),
        needs: "a procedure step that records it (record = { \"name\" = \"/pointer\" })",
    },
    Family {
        pattern: "invariants.violations",
        kind: MetricKind::Count,
        applies: |s| s.is_handoff() && s.is_suite(Suite::Concurrency),
        needs: "the concurrency suite against a handoff target",
    },
    Family {
        pattern: "breaking_point.rate",
        kind: MetricKind::Rate,
        applies: |s| s.is_suite(Suite::Stress),
        needs: "the stress suite",
    },
    Family {
        pattern: "drift.p95_ratio",
        kind: MetricKind::Number,
        applies: |s| s.is_suite(Suite::Endurance),
        needs: "the endurance suite",
    },
    Family {
        pattern: "drift.p95_change",
        kind: MetricKind::Duration,
        applies: |s| s.is_suite(Suite::Endurance),
        needs: "the endurance suite",
    },
    Family {
        pattern: "drift.error_rate_change",
        kind: MetricKind::Number,
        applies: |s| s.is_suite(Suite::Endurance),
        needs: "the endurance suite",
    },
    Family {
        pattern: "ws.connect.{stat}",
        kind: MetricKind::Duration,
        applies: |s| s.is_ws(),
        needs: "a websocket target",
    },
    Family {
        pattern: "ws.ping.{stat}",
        kind: MetricKind::Duration,
        applies: |s| s.is_ws(),
        needs: "a websocket target (with ping_interval set)",
    },
    Family {
        pattern: "ws.connections",
        kind: MetricKind::Count,
        applies: |s| s.is_ws(),
        needs: "a websocket target",
    },
    Family {
        pattern: "ws.peak_connections",
        kind: MetricKind::Count,
        applies: |s| s.is_ws(),
        needs: "a websocket target",
    },
    Family {
        pattern: "ws.frames_without_correlation",
        kind: MetricKind::Count,
        applies: |s| s.is_ws(),
        needs: "a websocket target",
    },
    Family {
        pattern: "ws.delivery_rate",
        kind: MetricKind::Ratio,
        applies: |s| s.publishes(),
        needs: "a websocket target in publish mode",
    },
    Family {
        pattern: "ws.delivery.{stat}",
        kind: MetricKind::Duration,
        applies: |s| s.publishes(),
        needs: "a websocket target in publish mode",
    },
    Family {
        pattern: "ws.lost",
        kind: MetricKind::Count,
        applies: |s| s.publishes(),
        needs: "a websocket target in publish mode",
    },
    Family {
        pattern: "ws.duplicated",
        kind: MetricKind::Count,
        applies: |s| s.publishes(),
        needs: "a websocket target in publish mode",
    },
    Family {
        pattern: "ws.out_of_order",
        kind: MetricKind::Count,
        applies: |s| s.publishes(),
        needs: "a websocket target in publish mode",
    },
    Family {
        pattern: "ws.unexpected",
        kind: MetricKind::Count,
        applies: |s| s.publishes(),
        needs: "a websocket target in publish mode",
    },
    Family {
        pattern: "rate_limit.conforms",
        kind: MetricKind::Bool,
        applies: |s| s.probes_rate_limit(),
        needs: "the rate-limit probe ([probes.rate_limit])",
    },
    Family {
        pattern: "rate_limit.inferred_rate",
        kind: MetricKind::Rate,
        applies: |s| s.probes_rate_limit(),
        needs: "the rate-limit probe ([probes.rate_limit])",
    },
    Family {
        pattern: "rate_limit.inferred_burst",
        kind: MetricKind::Number,
        applies: |s| s.probes_rate_limit(),
        needs: "the rate-limit probe ([probes.rate_limit])",
    },
    Family {
        pattern: "slow_consumer.disconnect_time",
        kind: MetricKind::Duration,
        applies: |s| s.probes_slow_consumer(),
        needs: "the slow-consumer probe ([probes.slow_consumer])",
    },
    Family {
        pattern: "checks.failed",
        kind: MetricKind::Count,
        applies: |_| true,
        needs: "",
    },
    Family {
        pattern: "recovery.time",
        kind: MetricKind::Duration,
        applies: |s| s.fault_windows,
        needs: "network fault windows ([[faults.network]])",
    },
    Family {
        pattern: "recovery.time_to_first_success",
        kind: MetricKind::Duration,
        applies: |s| s.fault_windows,
        needs: "network fault windows ([[faults.network]])",
    },
    Family {
        pattern: "recovery.lost",
        kind: MetricKind::Count,
        applies: |s| s.fault_windows,
        needs: "network fault windows ([[faults.network]])",
    },
];

/// A metric name a run of some shape produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSpec {
    pub name: String,
    pub kind: MetricKind,
}

/// Every metric a run of this shape produces, by name.
pub fn available(shape: &RunShape<'_>) -> Vec<MetricSpec> {
    let mut out = Vec::new();
    for family in FAMILIES.iter().filter(|f| (f.applies)(shape)) {
        for name in expand(family.pattern, shape) {
            let kind = if name.ends_with(".count") {
                MetricKind::Count
            } else {
                family.kind
            };
            out.push(MetricSpec { name, kind });
        }
    }
    out
}

fn expand(pattern: &str, shape: &RunShape<'_>) -> Vec<String> {
    let mut names = vec![String::new()];
    for (i, seg) in pattern.split('.').enumerate() {
        let choices: Vec<String> = match seg {
            "{stat}" => STATS.iter().map(|s| s.to_string()).collect(),
            "{error}" => ErrorKind::ALL
                .iter()
                .filter(|k| **k != ErrorKind::Validation)
                .map(|k| k.as_str().to_string())
                .chain(std::iter::once("validation".to_string()))
                .collect(),
            "{step}" => shape
                .procedure
                .map(|p| p.steps.iter().map(|s| s.id.clone()).collect())
                .unwrap_or_default(),
            "{rule}" => shape
                .procedure
                .map(|p| p.rules.iter().map(|r| r.id.clone()).collect())
                .unwrap_or_default(),
            "{record}" => shape
                .procedure
                .map(|p| p.recorded_metrics().iter().map(|r| r.to_string()).collect())
                .unwrap_or_default(),
            literal => vec![literal.to_string()],
        };
        names = names
            .iter()
            .flat_map(|prefix| {
                choices.iter().map(move |c| {
                    if i == 0 {
                        c.clone()
                    } else {
                        format!("{prefix}.{c}")
                    }
                })
            })
            .collect();
    }
    names
}

/// Looks a metric name up for a run of this shape.
pub enum Lookup {
    Found(MetricKind),
    /// The name exists, but this run does not produce it; says what would.
    NotProduced {
        needs: &'static str,
    },
    /// No such metric; the nearest known name, if any is close.
    Unknown {
        suggestion: Option<String>,
    },
}

pub fn lookup(name: &str, shape: &RunShape<'_>) -> Lookup {
    let here = available(shape);
    if let Some(spec) = here.iter().find(|s| s.name == name) {
        return Lookup::Found(spec.kind);
    }
    if let Some(family) = FAMILIES.iter().find(|f| matches_pattern(f.pattern, name)) {
        if !(family.applies)(shape) {
            return Lookup::NotProduced {
                needs: family.needs,
            };
        }
        // Names of steps, rules and records cannot be checked when the procedure is unknown.
        if !shape.procedure_known {
            let kind = if name.ends_with(".count") {
                MetricKind::Count
            } else {
                family.kind
            };
            return Lookup::Found(kind);
        }
    }
    let suggestion = crate::config::suggest::nearest(name, here.iter().map(|s| s.name.as_str()))
        .map(str::to_string);
    // With the procedure unknown, `name.p95` may be a metric one of its steps records; give it the
    // benefit of the doubt unless it is a near miss of a metric the run does produce.
    let (root, stat) = name.rsplit_once('.').unwrap_or_default();
    if !shape.procedure_known && suggestion.is_none() && !root.is_empty() && STATS.contains(&stat) {
        let kind = if stat == "count" {
            MetricKind::Count
        } else {
            MetricKind::Duration
        };
        return Lookup::Found(kind);
    }
    Lookup::Unknown { suggestion }
}

/// Whether `name` has the form of `pattern`, whatever the run (`{step}` and `{rule}` match any segment).
fn matches_pattern(pattern: &str, name: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let n: Vec<&str> = name.split('.').collect();
    p.len() == n.len()
        && p.iter().zip(&n).all(|(p, n)| match *p {
            "{stat}" => STATS.contains(n),
            "{step}" | "{rule}" => !n.is_empty(),
            "{error}" => ErrorKind::ALL.iter().any(|k| k.as_str() == *n),
            lit => lit == *n,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_of_the_catalogue_reserves_its_first_word() {
        let roots: Vec<&str> = reserved_roots().collect();
        for root in [
            "latency",
            "errors",
            "ws",
            "rate_limit",
            "slow_consumer",
            "recovery",
        ] {
            assert!(roots.contains(&root), "{root} is not reserved: {roots:?}");
        }
        assert!(
            roots.iter().all(|r| !r.starts_with('{')),
            "a placeholder is not a word: {roots:?}"
        );
    }
}
