//! Thresholds: a metric, a comparison and a value (`"latency.p95" = "< 50ms"`). This module parses
//! conditions against the kind of metric they name and says whether a measured value meets them;
//! it does not measure anything.

pub mod catalogue;
pub mod evaluate;

use std::fmt;
use std::time::Duration;

use serde::Serialize;

pub use catalogue::{Lookup, MetricKind, ProbeFacts, ProcedureFacts, RunShape};

use crate::config::units::{self, UnitError, format_duration};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// The value a condition compares against, in the metric's kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantity {
    Duration(Duration),
    Ratio(f64),
    Count(f64),
    Rate(f64),
    Number(f64),
    Bool(bool),
}

impl Quantity {
    /// The value in the unit results are recorded in: milliseconds for durations, per second for
    /// rates, 1/0 for booleans.
    pub fn canonical(self) -> f64 {
        match self {
            Quantity::Duration(d) => d.as_secs_f64() * 1e3,
            Quantity::Ratio(v) | Quantity::Count(v) | Quantity::Rate(v) | Quantity::Number(v) => v,
            Quantity::Bool(b) => f64::from(u8::from(b)),
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quantity::Duration(d) => f.write_str(&format_duration(*d)),
            Quantity::Rate(r) => write!(f, "{r}/s"),
            Quantity::Ratio(v) | Quantity::Count(v) | Quantity::Number(v) => write!(f, "{v}"),
            Quantity::Bool(b) => write!(f, "{b}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    pub op: Op,
    pub value: Quantity,
}

impl Condition {
    /// Parses `"< 50ms"`, `">= 0.95"`, `">= 95%"`, `"== 0"`, `"== true"` for a metric of `kind`.
    pub fn parse(text: &str, kind: MetricKind) -> Result<Self, UnitError> {
        let s = text.trim();
        let (op, rest) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .iter()
        .find_map(|(sym, op)| s.strip_prefix(sym).map(|rest| (*op, rest.trim())))
        .ok_or_else(|| UnitError {
            message: format!("`{text}` does not start with a comparison"),
            hint: format!(
                "start with <, <=, >, >=, == or !=, e.g. \"{}\"",
                example(kind)
            ),
        })?;
        let wrong = |what: &str| UnitError {
            message: format!("`{rest}` is not {kind}{what}"),
            hint: format!("this metric is {kind}; write e.g. \"{}\"", example(kind)),
        };
        let value = match kind {
            MetricKind::Duration => match units::parse_duration(rest) {
                Ok(d) => Quantity::Duration(d),
                Err(e) if rest.parse::<f64>().is_ok() => {
                    return Err(UnitError {
                        message: format!("`{rest}` has no unit, but this metric is a duration"),
                        hint: e.hint,
                    });
                }
                Err(_) => return Err(wrong("")),
            },
            MetricKind::Ratio => Quantity::Ratio(units::parse_ratio(rest)?),
            MetricKind::Count => match rest.parse::<f64>() {
                Ok(v) if v >= 0.0 && v.is_finite() => Quantity::Count(v),
                _ => return Err(wrong(" (a count is a number of zero or more)")),
            },
            MetricKind::Rate => match units::parse_rate(rest) {
                Ok(r) => Quantity::Rate(r.per_second),
                Err(e) => return Err(e),
            },
            MetricKind::Number => match rest.parse::<f64>() {
                Ok(v) if v.is_finite() => Quantity::Number(v),
                _ => return Err(wrong("")),
            },
            MetricKind::Bool => match rest {
                "true" => Quantity::Bool(true),
                "false" => Quantity::Bool(false),
                _ => return Err(wrong("")),
            },
        };
        if kind == MetricKind::Bool && !matches!(op, Op::Eq | Op::Ne) {
            return Err(UnitError {
                message: format!("`{}` cannot compare true and false", op.as_str()),
                hint: "use == or !=, e.g. \"== true\"".into(),
            });
        }
        Ok(Self { op, value })
    }

    /// Whether every value from `lo` to `hi` meets the condition.
    pub fn holds_throughout(&self, lo: f64, hi: f64) -> bool {
        match self.op {
            Op::Eq => lo == hi && self.holds(lo),
            Op::Ne => {
                let v = self.value.canonical();
                v < lo || v > hi
            }
            // A half-line: holding at both ends, it holds between them.
            Op::Lt | Op::Le | Op::Gt | Op::Ge => self.holds(lo) && self.holds(hi),
        }
    }

    /// Whether no value in [lo, hi] meets the condition.
    pub fn misses_throughout(&self, lo: f64, hi: f64) -> bool {
        match self.op {
            Op::Eq => {
                let v = self.value.canonical();
                v < lo || v > hi
            }
            Op::Ne => lo == hi && !self.holds(lo),
            Op::Lt | Op::Le | Op::Gt | Op::Ge => !self.holds(lo) && !self.holds(hi),
        }
    }

    /// Whether `actual` (in the canonical unit of [`Quantity::canonical`]) meets the condition.
    pub fn holds(&self, actual: f64) -> bool {
        let v = self.value.canonical();
        match self.op {
            Op::Lt => actual < v,
            Op::Le => actual <= v,
            Op::Gt => actual > v,
            Op::Ge => actual >= v,
            Op::Eq => (actual - v).abs() <= f64::EPSILON * v.abs().max(1.0),
            Op::Ne => (actual - v).abs() > f64::EPSILON * v.abs().max(1.0),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op.as_str(), self.value)
    }
}

fn example(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::Duration => "< 50ms",
        MetricKind::Ratio => ">= 0.95",
        MetricKind::Count => "== 0",
        MetricKind::Rate => ">= 20/s",
        MetricKind::Number => "< 1.5",
        MetricKind::Bool => "== true",
    }
}

/// A metric and the condition it must meet.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub metric: String,
    pub kind: MetricKind,
    pub condition: Condition,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_by_metric_kind() {
        let c = Condition::parse("< 50ms", MetricKind::Duration).unwrap();
        assert!(c.holds(49.9) && !c.holds(50.0));
        let c = Condition::parse(">= 95%", MetricKind::Ratio).unwrap();
        assert!(c.holds(0.95) && !c.holds(0.949));
        let c = Condition::parse("== 0", MetricKind::Count).unwrap();
        assert!(c.holds(0.0) && !c.holds(1.0));
        let c = Condition::parse(">= 20/s", MetricKind::Rate).unwrap();
        assert!(c.holds(20.0));
        let c = Condition::parse("== true", MetricKind::Bool).unwrap();
        assert!(c.holds(1.0) && !c.holds(0.0));
        assert_eq!(
            Condition::parse("<=2s", MetricKind::Duration)
                .unwrap()
                .to_string(),
            "<= 2s"
        );
    }

    #[test]
    fn conditions_that_do_not_fit_their_metric_explain_themselves() {
        let e = Condition::parse(">= 0.95", MetricKind::Duration).unwrap_err();
        assert_eq!(
            e.message,
            "`0.95` has no unit, but this metric is a duration"
        );
        let e = Condition::parse("50ms", MetricKind::Duration).unwrap_err();
        assert!(
            e.message.contains("does not start with a comparison"),
            "{e}"
        );
        let e = Condition::parse("< 1.5", MetricKind::Ratio).unwrap_err();
        assert!(e.message.contains("outside 0..1"), "{e}");
        let e = Condition::parse("< true", MetricKind::Bool).unwrap_err();
        assert!(e.message.contains("cannot compare"), "{e}");
    }
}
