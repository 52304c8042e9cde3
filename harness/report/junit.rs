//! JUnit XML: one testsuite per run, one testcase per threshold and per named check (the run itself,
//! invariants, the probes' checks), failures carrying the actual value. It follows the usual JUnit schema (the Apache Ant
//! format; `schemas/junit.xsd` states its rules and the tests check the output against it).

use minijinja::value::Serde;
use serde::Serialize;

use super::rows::Pair;
use super::{Exporter, ReportError};
use crate::result::{RunResult, Status};

pub struct Junit;

#[derive(Debug, Serialize)]
struct Suite {
    name: String,
    classname: String,
    timestamp: String,
    hostname: String,
    time: String,
    failures: usize,
    errors: usize,
    properties: Vec<Pair>,
    cases: Vec<Case>,
    out: String,
    err: String,
}

#[derive(Debug, Serialize)]
struct Case {
    name: String,
    time: String,
    failure: Option<Problem>,
    error: Option<Problem>,
}

#[derive(Debug, Serialize)]
struct Problem {
    kind: String,
    message: String,
    text: String,
}

/// `2026-11-20T22:54:20`: the schema's timestamp has seconds and no zone (the run's are UTC).
fn timestamp(rfc3339: &str) -> String {
    rfc3339
        .get(..19)
        .unwrap_or("1970-01-01T00:00:00")
        .to_string()
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn suite(r: &RunResult, host: String) -> Suite {
    let mut cases = vec![Case {
        name: "the run completes".into(),
        time: format!("{:.3}", r.duration_s),
        failure: None,
        error: (r.status == Status::Aborted).then(|| Problem {
            kind: "aborted".into(),
            message: r.reason.clone().unwrap_or_default(),
            text: format!(
                "{} of {} planned iterations completed before the run stopped.",
                r.totals.iterations, r.load.planned_iterations
            ),
        }),
    }];
    for v in &r.thresholds {
        cases.push(Case {
            name: format!("{} {}", v.metric, v.condition),
            time: "0".into(),
            failure: (!v.passed).then(|| Problem {
                kind: "threshold".into(),
                message: format!(
                    "{} was {}, expected {}",
                    v.metric,
                    v.actual_text(),
                    v.condition
                ),
                text: v.note.clone().unwrap_or_default(),
            }),
            error: None,
        });
    }
    if let Some(inv) = &r.metrics.invariants {
        cases.push(Case {
            name: "invariants hold".into(),
            time: "0".into(),
            failure: (inv.violations > 0).then(|| Problem {
                kind: "invariant".into(),
                message: format!(
                    "{} violation(s) in {} acknowledged operations",
                    inv.violations, inv.acknowledged
                ),
                text: inv.details.join("\n"),
            }),
            error: None,
        });
    }
    for c in &r.checks {
        cases.push(Case {
            name: c.name.clone(),
            time: "0".into(),
            failure: (!c.passed).then(|| Problem {
                kind: "check".into(),
                message: c.detail.clone(),
                text: String::new(),
            }),
            error: None,
        });
    }
    let properties = vec![
        Pair {
            key: "scenario".into(),
            value: r.scenario.clone(),
        },
        Pair {
            key: "suite".into(),
            value: r.suite.clone(),
        },
        Pair {
            key: "status".into(),
            value: format!("{:?}", r.status).to_lowercase(),
        },
        Pair {
            key: "seed".into(),
            value: r.seed.to_string(),
        },
        Pair {
            key: "run_id".into(),
            value: r.run_id.clone(),
        },
        Pair {
            key: "target".into(),
            value: r.target.url.clone(),
        },
        Pair {
            key: "load".into(),
            value: format!("{} ({} planned)", r.load.model, r.load.planned_iterations),
        },
    ];
    let latency = r
        .metrics
        .latency_ok_ms
        .as_ref()
        .or(r.metrics.latency_ms.as_ref())
        .map(|l| format!("; latency {}", l.describe(&["p50", "p95", "p99"])))
        .unwrap_or_default();
    Suite {
        name: r.scenario.clone(),
        classname: format!("harness.{}.{}", r.suite, r.scenario),
        timestamp: timestamp(&r.started_at),
        hostname: host,
        time: format!("{:.3}", r.duration_s),
        failures: cases.iter().filter(|c| c.failure.is_some()).count(),
        errors: cases.iter().filter(|c| c.error.is_some()).count(),
        properties,
        cases,
        out: format!(
            "{} iterations: {} succeeded, {} failed{latency}",
            r.totals.iterations, r.totals.succeeded, r.totals.failed
        ),
        err: r
            .caveats
            .iter()
            .chain(&r.notes)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

impl Exporter for Junit {
    fn file_name(&self) -> &'static str {
        "junit.xml"
    }

    fn render(&self, result: &RunResult) -> Result<String, ReportError> {
        render_for_host(result, &hostname())
    }
}

/// The JUnit XML as written on `host` (for reproducible output).
pub fn render_for_host(result: &RunResult, host: &str) -> Result<String, ReportError> {
    super::render(
        "junit.xml",
        minijinja::context! { j => Serde(suite(result, host.to_string())) },
    )
}
