//! What a comparison says beside its verdicts: what differed between the two runs (so a change is
//! not read as the target's when the load, the seed or the machine changed too), and side-by-side
//! rows for each step's latency and each kind of error. These rows carry no verdict: they point at
//! where a judged change came from.

use serde::Serialize;

use crate::result::{RunResult, format_value};

/// One fact that is not the same in both runs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Difference {
    pub what: String,
    pub base: String,
    pub new: String,
}

/// One row of side-by-side figures: a step's p95, an error kind's count.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SideBySide {
    pub name: String,
    pub base: String,
    pub new: String,
    /// `+12.3%`, `new`, `gone`, or `—` when it cannot be said.
    pub change: String,
}

/// The facts of a run a reader compares, by name.
fn facts(r: &RunResult) -> Vec<(&'static str, String)> {
    let l = &r.load;
    let env = r.environment.as_ref();
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "—".into());
    vec![
        ("scenario", r.scenario.clone()),
        ("suite", r.suite.clone()),
        ("seed", r.seed_text.clone()),
        // A reference target the harness started has a new port each run: not a difference.
        (
            "target",
            match &r.target.embedded {
                Some(e) => format!("the reference {e} target"),
                None => r.target.url.clone(),
            },
        ),
        ("target kind", r.target.kind.clone()),
        ("procedure", or_dash(r.target.procedure.clone())),
        ("HTTP", or_dash(r.target.http_version.clone())),
        ("load model", l.model.as_str().to_string()),
        ("planned iterations", l.planned_iterations.to_string()),
        ("concurrency / in flight", l.concurrency.to_string()),
        (
            "rate",
            or_dash(l.rate_per_s.map(|v| format_value("rate", v))),
        ),
        (
            "stages",
            l.stages
                .iter()
                .map(|s| format_value("rate", s.rate_per_s))
                .collect::<Vec<_>>()
                .join(" → "),
        ),
        (
            "faults",
            or_dash(l.faults.as_ref().map(|f| {
                format!(
                    "{:.1}% of iterations: {}",
                    f.failure_rate * 100.0,
                    f.kinds.join(", ")
                )
            })),
        ),
        ("shard", shard_of(r)),
        ("harness", or_dash(env.map(|e| e.harness.clone()))),
        (
            "machine",
            or_dash(env.map(|e| format!("{} {}, {} cores", e.os, e.arch, e.cpus))),
        ),
    ]
}

fn shard_of(r: &RunResult) -> String {
    match (&r.merged_from, r.shard.count) {
        (Some(m), _) => format!("merged from {} shards", m.shards),
        (None, 1) => "whole run".into(),
        (None, n) => format!("shard {} of {n}", r.shard.index),
    }
}

/// What is not the same in `base` and `new`.
pub fn differences(base: &RunResult, new: &RunResult) -> Vec<Difference> {
    facts(base)
        .into_iter()
        .zip(facts(new))
        .filter(|((_, b), (_, n))| b != n)
        .map(|((what, b), (_, n))| Difference {
            what: what.to_string(),
            base: b,
            new: n,
        })
        .collect()
}

fn change(base: Option<f64>, new: Option<f64>) -> String {
    let (b, n) = (base.unwrap_or(0.0), new.unwrap_or(0.0));
    match (base.is_some(), new.is_some()) {
        _ if b <= 0.0 && n > 0.0 => "new".into(),
        _ if b > 0.0 && n <= 0.0 => "gone".into(),
        (true, true) if b > 0.0 => format!("{:+.1}%", (n / b - 1.0) * 100.0),
        (true, true) => "0".into(),
        _ => "—".into(),
    }
}

/// Each step's p95 of succeeded iterations (all of them where a result kept no split), in the base's
/// order, then the new run's own steps.
pub fn steps(base: &RunResult, new: &RunResult) -> Vec<SideBySide> {
    let p95 = |r: &RunResult, id: &str| {
        r.metrics
            .steps
            .get(id)
            .and_then(|s| s.latency_ok_ms.as_ref().unwrap_or(&s.latency_ms).p95)
    };
    let mut ids: Vec<&String> = crate::report::view::steps_in_order(base)
        .map(|(id, _)| id)
        .collect();
    for (id, _) in crate::report::view::steps_in_order(new) {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let show = |v: Option<f64>| v.map_or("—".into(), |v| format_value("duration", v));
    ids.into_iter()
        .map(|id| {
            let (b, n) = (p95(base, id), p95(new, id));
            SideBySide {
                name: format!("{id} p95"),
                base: show(b),
                new: show(n),
                // A p95 too few iterations support is missing, not new or gone.
                change: match (b, n) {
                    (Some(_), Some(_)) => change(b, n),
                    _ => "—".into(),
                },
            }
        })
        .collect()
}

/// Each error kind's count in either run.
pub fn errors(base: &RunResult, new: &RunResult) -> Vec<SideBySide> {
    let mut kinds: Vec<&String> = base.metrics.errors.keys().collect();
    kinds.extend(
        new.metrics
            .errors
            .keys()
            .filter(|k| !base.metrics.errors.contains_key(*k)),
    );
    kinds
        .into_iter()
        .map(|k| {
            let count = |r: &RunResult| r.metrics.errors.get(k).copied().unwrap_or(0);
            let (b, n) = (count(base), count(new));
            SideBySide {
                name: k.clone(),
                base: b.to_string(),
                new: n.to_string(),
                change: change(Some(b as f64), Some(n as f64)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> RunResult {
        serde_json::from_str(include_str!(
            "../../tests/fixtures/results/failure-injection-broken-rollback.json"
        ))
        .unwrap()
    }

    #[test]
    fn only_what_differs_is_listed_and_a_reference_targets_port_is_not_a_difference() {
        let base = fixture();
        assert_eq!(differences(&base, &base.clone()), Vec::new());
        let mut new = base.clone();
        new.seed_text = "9".into();
        new.load.concurrency += 4;
        new.environment = Some(crate::result::Environment {
            harness: "0.2.0 (commit abc)".into(),
            os: "linux".into(),
            arch: "aarch64".into(),
            cpus: 64,
        });
        let what: Vec<String> = differences(&base, &new)
            .into_iter()
            .map(|d| d.what)
            .collect();
        assert_eq!(
            what,
            ["seed", "concurrency / in flight", "harness", "machine"]
        );
        let mut a = base.clone();
        let mut b = base.clone();
        for (r, port) in [(&mut a, 1000), (&mut b, 2000)] {
            r.target.embedded = Some("handoff".into());
            r.target.url = format!("http://127.0.0.1:{port}/");
        }
        assert_eq!(differences(&a, &b), Vec::new());
    }

    #[test]
    fn error_kinds_and_steps_sit_side_by_side() {
        let base = fixture();
        let mut new = base.clone();
        new.metrics.errors.insert("timeout".into(), 4);
        new.metrics.errors.remove("http_5xx");
        let rows = errors(&base, &new);
        let row = |name: &str| rows.iter().find(|r| r.name == name).unwrap().change.clone();
        assert_eq!(row("timeout"), "new");
        assert_eq!(row("http_5xx"), "gone");
        assert_eq!(row("injected"), "+0.0%");
        let steps = steps(&base, &base);
        assert_eq!(steps.len(), base.metrics.steps.len());
        assert!(steps.iter().all(|s| s.change == "+0.0%" || s.change == "—"));
    }
}
