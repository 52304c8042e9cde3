//! The catalogue of metrics: every metric a threshold may name is defined here once — its name, its
//! kind, which runs produce it (and what a run needs to), how its value is read from a result (and
//! from one stage of a stepped load, where a stage can be judged on it), and whether and how
//! `compare` judges it. Validation, judging, `compare` and the README's table of metrics all come
//! from this one table.
//!
//! It is built from plain facts of a run ([`RunShape`]), so this module imports nothing above it.

mod table;

pub use table::CATALOGUE;

use std::fmt;

use super::evaluate::Values;
use crate::kinds::{LoadModel, Suite, TargetKind, WsMode};
use crate::result::{RunResult, StageResult};
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
    /// The kind a result names (see [`MetricKind::as_str`]).
    pub fn parse(name: &str) -> Option<Self> {
        [
            MetricKind::Duration,
            MetricKind::Ratio,
            MetricKind::Count,
            MetricKind::Rate,
            MetricKind::Number,
            MetricKind::Bool,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }

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

/// What the catalogue needs to know of a procedure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcedureFacts {
    pub steps: Vec<String>,
    pub rules: Vec<String>,
    /// Names of the timings its steps record.
    pub records: Vec<String>,
    pub has_rollbacks: bool,
    /// Medium or low rules, whose failures are warnings.
    pub has_warnings: bool,
    /// Some request may be retried.
    pub has_retries: bool,
    /// Steps write to collections that `[read_back]` reads back.
    pub has_history: bool,
    /// Steps acknowledge transfers (`ack = "transfer"`, the reference service's invariants).
    pub has_acks: bool,
}

/// Which probes a run has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeFacts {
    pub rate_limit: bool,
    pub hardening: bool,
    pub slow_consumer: bool,
    pub body_size: bool,
}

/// What the catalogue needs to know about a run. Parts may be unknown (`None`) when the scenario
/// around a threshold is itself broken; the catalogue is then lenient about them, so that one mistake
/// does not hide the thresholds' own problems or invent new ones.
#[derive(Debug, Clone, Copy)]
pub struct RunShape<'a> {
    pub kind: Option<TargetKind>,
    pub suite: Option<Suite>,
    pub load_model: Option<LoadModel>,
    /// The procedure, when the target has one and it resolved.
    pub procedure: Option<&'a ProcedureFacts>,
    /// False when the target names a procedure that could not be read.
    pub procedure_known: bool,
    /// Whether the scenario schedules network fault windows.
    pub fault_windows: bool,
    /// Websocket targets: what an iteration does, when known.
    pub ws_mode: Option<WsMode>,
    /// The probes, when the `[probes]` table could be read.
    pub probes: Option<ProbeFacts>,
}

impl RunShape<'_> {
    pub(super) fn is_kind(&self, kind: TargetKind) -> bool {
        self.kind.is_none_or(|k| k == kind)
    }
    pub(super) fn is_handoff(&self) -> bool {
        self.is_kind(TargetKind::Handoff)
    }
    pub(super) fn is_suite(&self, suite: Suite) -> bool {
        self.suite.is_none_or(|s| s == suite)
    }
    pub(super) fn procedure_has(&self, test: impl Fn(&ProcedureFacts) -> bool) -> bool {
        if !self.procedure_known {
            return true;
        }
        self.procedure.is_some_and(test)
    }
    pub(super) fn has_rollbacks(&self) -> bool {
        self.is_handoff() && self.procedure_has(|p| p.has_rollbacks)
    }
    pub(super) fn has_retries(&self) -> bool {
        self.is_handoff_or_http() && self.procedure_has(|p| p.has_retries)
    }
    pub(super) fn is_handoff_or_http(&self) -> bool {
        self.kind != Some(TargetKind::Websocket)
    }
    pub(super) fn has_history(&self) -> bool {
        self.is_handoff_or_http() && self.procedure_has(|p| p.has_history)
    }
    pub(super) fn has_warnings(&self) -> bool {
        self.procedure_has(|p| p.has_warnings)
    }
    pub(super) fn has_rules(&self) -> bool {
        self.procedure_has(|p| !p.rules.is_empty())
    }
    pub(super) fn has_records(&self) -> bool {
        self.procedure_has(|p| !p.records.is_empty())
    }
    pub(super) fn is_scheduled(&self) -> bool {
        self.load_model.is_none_or(LoadModel::is_scheduled)
    }
    pub(super) fn is_ws(&self) -> bool {
        self.is_kind(TargetKind::Websocket)
    }
    pub(super) fn publishes(&self) -> bool {
        self.is_ws() && self.ws_mode.is_none_or(|m| m == WsMode::Publish)
    }
    pub(super) fn probes_rate_limit(&self) -> bool {
        self.probes.is_none_or(|p| p.rate_limit)
    }
    pub(super) fn probes_body_size(&self) -> bool {
        self.probes.is_none_or(|p| p.body_size)
    }
    pub(super) fn probes_slow_consumer(&self) -> bool {
        self.is_ws() && self.probes.is_none_or(|p| p.slow_consumer)
    }
}

/// How `compare` estimates a metric's change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Estimator {
    /// A latency percentile (0..1): per-second windows or iterations from the histograms.
    Quantile(f64),
    /// Succeeded ÷ iterations.
    SuccessRate,
    /// Verified ÷ attempted rollbacks.
    RollbackRate,
    /// Iterations per second.
    Throughput,
}

/// Whether and how `compare` judges a metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compared {
    /// The concrete name compared (`latency.p95`).
    pub name: &'static str,
    pub estimator: Estimator,
    /// A rise is bad (latencies) rather than good (rates, throughput).
    pub rise_is_bad: bool,
    /// The change is in percentage points (success rates), not relative to the base.
    pub in_points: bool,
}

/// One metric, or a family of them (`latency.{stat}`).
pub struct Metric {
    /// Dotted pattern; `{stat}`, `{finding}`, `{step}`, `{error}`, `{rule}` and `{record}` stand for one segment
    /// each.
    pub pattern: &'static str,
    /// Kind of the metric (for `{stat}` families, of every stat but `count`).
    pub kind: MetricKind,
    pub applies: fn(&RunShape<'_>) -> bool,
    /// What a run needs to produce it, for messages and the README; empty: every run does.
    pub needs: &'static str,
    /// More for the README, if anything.
    pub about: &'static str,
    /// Reads its values from a result.
    pub read: fn(&RunResult, &mut Values),
    /// Reads its values from one stage of a stepped load, when a stage can be judged on it.
    pub stage: Option<fn(&StageResult, &mut Values)>,
    /// What `compare` judges of it.
    pub compare: &'static [Compared],
}

/// The first words of the metrics the harness itself produces (`latency`, `ws`, `recovery`, …): a
/// name a procedure records must not start with one.
pub fn reserved_roots() -> impl Iterator<Item = &'static str> {
    CATALOGUE
        .iter()
        .filter_map(|f| f.pattern.split('.').next())
        .filter(|root| !root.starts_with('{'))
}

/// Whether one stage of a stepped load can be judged on `name`.
pub fn judged_per_stage(name: &str) -> bool {
    CATALOGUE
        .iter()
        .any(|m| m.stage.is_some() && matches_pattern(m.pattern, name))
}

/// Every metric `compare` judges, in order, with its entry.
pub fn compared() -> impl Iterator<Item = (&'static Metric, &'static Compared)> + Clone {
    CATALOGUE
        .iter()
        .flat_map(|m| m.compare.iter().map(move |c| (m, c)))
}

/// A metric name a run of some shape produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSpec {
    pub name: String,
    pub kind: MetricKind,
}

/// Every metric a run of this shape produces, by name.
pub fn available(shape: &RunShape<'_>) -> Vec<MetricSpec> {
    let mut out = Vec::new();
    for family in CATALOGUE.iter().filter(|f| (f.applies)(shape)) {
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
    let facts = |f: fn(&ProcedureFacts) -> &Vec<String>| -> Vec<String> {
        shape.procedure.map(|p| f(p).clone()).unwrap_or_default()
    };
    let mut names = vec![String::new()];
    for (i, seg) in pattern.split('.').enumerate() {
        let choices: Vec<String> = match seg {
            "{stat}" => STATS.iter().map(|s| s.to_string()).collect(),
            "{finding}" => FINDINGS.iter().map(|s| s.to_string()).collect(),
            "{error}" => ErrorKind::ALL
                .iter()
                .filter(|k| **k != ErrorKind::Validation)
                .map(|k| k.as_str().to_string())
                .chain(std::iter::once("validation".to_string()))
                .collect(),
            "{step}" => facts(|p| &p.steps),
            "{rule}" => facts(|p| &p.rules),
            "{record}" => facts(|p| &p.records),
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
    if let Some(family) = CATALOGUE.iter().find(|f| matches_pattern(f.pattern, name)) {
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

/// What the history check counts (`history.{finding}`).
pub const FINDINGS: [&str; 7] = [
    "lost",
    "duplicated",
    "unexpected",
    "violations",
    "indeterminate",
    "unreadable",
    "acknowledged",
];

/// Whether `name` has the form of `pattern`, whatever the run (`{step}` and `{rule}` match any segment).
fn matches_pattern(pattern: &str, name: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let n: Vec<&str> = name.split('.').collect();
    p.len() == n.len()
        && p.iter().zip(&n).all(|(p, n)| match *p {
            "{stat}" => STATS.contains(n),
            "{finding}" => FINDINGS.contains(n),
            "{step}" | "{rule}" => !n.is_empty(),
            "{error}" => ErrorKind::ALL.iter().any(|k| k.as_str() == *n),
            lit => lit == *n,
        })
}

/// The README's table of metrics, one row per entry of the catalogue.
pub fn markdown_table() -> String {
    let kinds: &[(&str, &str)] = &[
        ("{stat}", "<stat>"),
        ("{finding}", "<finding>"),
        ("{step}", "<step id>"),
        ("{error}", "<kind>"),
        ("{rule}", "<rule id>"),
        ("{record}", "<recorded name>"),
    ];
    let mut out = String::from("| metric | kind | produced by |\n| --- | --- | --- |\n");
    for m in CATALOGUE {
        let mut name = m.pattern.to_string();
        for (from, to) in kinds {
            name = name.replace(from, to);
        }
        let by = if m.needs.is_empty() {
            "every run".to_string()
        } else {
            m.needs.to_string()
        };
        let by = if m.about.is_empty() {
            by
        } else {
            format!("{by}; {}", m.about)
        };
        let by = if m.pattern.contains("{error}") {
            let kinds: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
            format!("{by}; kinds: {}", kinds.join(", "))
        } else {
            by
        };
        out.push_str(&format!(
            "| `{name}` | {} | {} |\n",
            m.kind.as_str(),
            by.replace('|', "\\|")
        ));
    }
    out
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

    #[test]
    fn every_pattern_is_defined_once_and_compared_names_are_its_own() {
        let mut seen = std::collections::BTreeSet::new();
        for m in CATALOGUE {
            assert!(seen.insert(m.pattern), "{} twice", m.pattern);
            for c in m.compare {
                assert!(
                    matches_pattern(m.pattern, c.name),
                    "{} ∉ {}",
                    c.name,
                    m.pattern
                );
            }
        }
        assert_eq!(compared().count(), 6);
    }
}

#[cfg(test)]
mod readme {
    /// The README's table of metrics is the catalogue's, row for row.
    #[test]
    fn the_readme_lists_exactly_the_catalogue() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
        let (begin, end) = ("<!-- metrics: begin -->\n", "<!-- metrics: end -->");
        let table = readme
            .split_once(begin)
            .and_then(|(_, rest)| rest.split_once(end))
            .map(|(table, _)| table)
            .expect("the README marks its table of metrics");
        let expected = super::markdown_table();
        assert!(
            table == expected,
            "the README's table of metrics differs from the catalogue; put this between the \
             markers:\n{expected}"
        );
    }
}
