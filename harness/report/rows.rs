//! The small pieces every part of the report's view model is made of: a key and its value, a row of
//! latency statistics, and how durations and ratios are written. Shared by [`super::view`] and
//! [`super::ws_view`], which do not import each other.

use serde::Serialize;

use crate::metrics::LatencySummary;
use crate::result::format_value;

#[derive(Debug, Serialize)]
pub struct Pair {
    pub key: String,
    pub value: String,
}

pub fn pair(key: impl Into<String>, value: impl Into<String>) -> Pair {
    Pair {
        key: key.into(),
        value: value.into(),
    }
}

#[derive(Debug, Serialize)]
pub struct LatencyRow {
    pub name: String,
    pub count: u64,
    pub min: String,
    pub p50: String,
    pub p90: String,
    pub p95: String,
    pub p99: String,
    pub p999: String,
    pub max: String,
}

pub fn ms(v: f64) -> String {
    format_value("duration", v)
}

pub fn pct(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format_value("ratio", v))
}

/// A percentile, or a dash where the samples are too few to tell it.
pub fn opt_ms(v: Option<f64>) -> String {
    v.map_or("—".into(), ms)
}

pub fn latency_row(name: &str, s: &LatencySummary) -> LatencyRow {
    LatencyRow {
        name: name.to_string(),
        count: s.count,
        min: ms(s.min),
        p50: opt_ms(s.p50),
        p90: opt_ms(s.p90),
        p95: opt_ms(s.p95),
        p99: opt_ms(s.p99),
        p999: opt_ms(s.p999),
        max: ms(s.max),
    }
}
