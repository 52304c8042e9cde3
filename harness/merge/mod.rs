//! `harness merge`: the results of the shards of one run (`harness run --shard I/N`) into the result
//! of the whole. Counts are added; latencies come from the sum of the shards' HdrHistograms, so a
//! merged p99 is the p99 of every sample, not an average of percentiles; timelines are merged by
//! wall-clock second; what a probe measured stays as the shard that ran it measured it. The
//! thresholds are judged again on the merged figures, and the status follows from them as for a run.
//!
//! Shards that do not belong together are refused, each problem said: different scenarios, seeds,
//! shard counts or schema versions, an index missing or given twice, or an aborted shard (unless
//! the caller allows a partial merge, which is then marked as such and never passes).

mod metrics;
pub mod sum;
mod timeline;

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::engine::assemble::judged_status;
use crate::result::{CheckResult, MergedFrom, RunResult, SCHEMA_VERSION, Shard, Status, Verdict};
use crate::thresholds::evaluate::{Values, rejudged};

/// One shard's result and where it came from (a path, for messages).
#[derive(Debug, Clone)]
pub struct Part {
    pub source: String,
    pub result: RunResult,
}

/// Why shards were not merged: one line per problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", problems.join("\n"))]
pub struct Refused {
    pub problems: Vec<String>,
}

/// Merges `parts`. With `allow_partial`, missing and aborted shards do not refuse the merge; the
/// result is then marked partial, and aborted.
pub fn merge(mut parts: Vec<Part>, allow_partial: bool) -> Result<RunResult, Refused> {
    parts.sort_by_key(|p| p.result.shard.index);
    let missing = check(&parts, allow_partial)?;
    let used: Vec<&Part> = parts
        .iter()
        .filter(|p| allow_partial || p.result.status != Status::Aborted)
        .collect();
    let results: Vec<&RunResult> = used.iter().map(|p| &p.result).collect();
    let refused = |problem: String| Refused {
        problems: vec![problem],
    };
    let first = results[0];
    let totals = {
        let mut t = first.totals;
        for r in &results[1..] {
            t.iterations += r.totals.iterations;
            t.succeeded += r.totals.succeeded;
            t.failed += r.totals.failed;
            t.timed_out += r.totals.timed_out;
            t.not_started += r.totals.not_started;
            t.abandoned += r.totals.abandoned;
        }
        t
    };
    let mut m = metrics::merge_metrics(&results, &totals).map_err(refused)?;
    let drift_window = first.metrics.drift.as_ref().map(|d| d.window_s);
    let (timeline, drift) = timeline::merge_rows(&results, drift_window).map_err(refused)?;
    m.drift = drift;

    let times = |f: fn(&RunResult) -> &str| -> Vec<SystemTime> {
        results
            .iter()
            .filter_map(|r| humantime::parse_rfc3339_weak(f(r)).ok())
            .collect()
    };
    let started = times(|r| &r.started_at).into_iter().min();
    let finished = times(|r| &r.finished_at).into_iter().max();
    let load_started = results
        .iter()
        .filter_map(|r| r.load_started_at.as_deref())
        .filter_map(|t| humantime::parse_rfc3339_weak(t).ok())
        .min();
    let stamp = |t: SystemTime| humantime::format_rfc3339_millis(t).to_string();
    let duration_s = match (started, finished) {
        (Some(s), Some(f)) => f.duration_since(s).map_or(0.0, |d| d.as_secs_f64()),
        _ => results.iter().map(|r| r.duration_s).fold(0.0, f64::max),
    };

    let mut load = first.load.clone();
    load.planned_iterations = results.iter().map(|r| r.load.planned_iterations).sum();
    load.concurrency = results.iter().map(|r| r.load.concurrency).sum();
    load.rate_per_s = sum::optional(results.iter().map(|r| r.load.rate_per_s));
    for (i, stage) in load.stages.iter_mut().enumerate() {
        let each = results.iter().filter_map(|r| r.load.stages.get(i));
        let (rate, n) = each.fold((0.0, 0), |(r, n), s| (r + s.rate_per_s, n + s.iterations));
        stage.rate_per_s = rate;
        stage.iterations = n;
    }
    if let Some(f) = &mut load.faults {
        f.injected = results
            .iter()
            .filter_map(|r| r.load.faults.as_ref())
            .map(|f| f.injected)
            .sum();
    }
    let mut target = first.target.clone();
    target.http_protocols = sum::counts(results.iter().map(|r| &r.target.http_protocols));
    if let Some(ws) = target.websocket.as_mut() {
        // Each shard held its share of the connections and subscribers: the run held them all.
        let shares = results.iter().filter_map(|r| r.target.websocket.as_ref());
        let (connections, subscribers) =
            shares.fold((0, 0), |(c, s), w| (c + w.connections, s + w.subscribers));
        ws.connections = connections;
        ws.subscribers = subscribers;
    }

    let aborted: Vec<&RunResult> = results
        .iter()
        .copied()
        .filter(|r| r.status == Status::Aborted)
        .collect();
    let partial = !aborted.is_empty() || !missing.is_empty();
    let mut notes = vec![format!(
        "Merged from {} of {} shards ({}): counts added, latencies from the sum of the shards' \
         histograms, the timeline by wall-clock second, thresholds judged again.",
        results.len(),
        first.shard.count,
        used.iter()
            .map(|p| format!("{} {}", p.result.shard.index, p.source))
            .collect::<Vec<_>>()
            .join(", ")
    )];
    for r in &results {
        for n in &r.notes {
            if !notes.contains(n) {
                notes.push(n.clone());
            }
        }
    }
    let mut result = RunResult {
        schema_version: SCHEMA_VERSION,
        scenario: first.scenario.clone(),
        description: first.description.clone(),
        suite: first.suite.clone(),
        seed: first.seed,
        seed_text: first.seed_text.clone(),
        run_id: first.run_id.clone(),
        status: Status::Passed,
        reason: None,
        started_at: started.map_or_else(|| first.started_at.clone(), stamp),
        finished_at: finished.map_or_else(|| first.finished_at.clone(), stamp),
        duration_s,
        load_started_at: load_started.map(stamp),
        shard: Shard::WHOLE,
        merged_from: Some(MergedFrom {
            shards: first.shard.count,
            indices: results.iter().map(|r| r.shard.index).collect(),
            run_ids: results.iter().map(|r| r.run_id.clone()).collect(),
            partial,
        }),
        target,
        load,
        totals,
        metrics: m,
        timeline,
        thresholds: Vec::new(),
        checks: checks(&results),
        caveats: Vec::new(),
        notes,
        histograms: first.histograms.clone(),
        environment: first.environment.clone(),
    };
    result.caveats = crate::engine::caveats::of(
        &result.metrics,
        &result.timeline,
        result.metrics.schedule.is_some(),
        u32::try_from(result.load.concurrency).unwrap_or(u32::MAX),
    );
    let values = Values::of_result(&result);
    result.thresholds = first
        .thresholds
        .iter()
        .map(|v| verdict(v, &values, &result))
        .collect();
    let (status, reason) = if partial {
        let mut why = Vec::new();
        if !missing.is_empty() {
            why.push(missing_text(&missing, first.shard.count));
        }
        for r in &aborted {
            why.push(format!(
                "shard {} aborted ({})",
                r.shard.index,
                r.reason.as_deref().unwrap_or("no reason given")
            ));
        }
        (
            Status::Aborted,
            Some(format!(
                "a partial merge (--allow-partial): {}",
                why.join("; ")
            )),
        )
    } else {
        judged_status(&result.totals, &result.thresholds, &result.checks)
    };
    result.status = status;
    result.reason = reason;
    Ok(result)
}

/// The problems that refuse the merge; the missing indices when a partial merge may go on.
fn check(parts: &[Part], allow_partial: bool) -> Result<Vec<u32>, Refused> {
    let mut problems = Vec::new();
    let Some(first) = parts.first() else {
        return Err(Refused {
            problems: vec!["no shard results to merge".into()],
        });
    };
    let f = &first.result;
    let mut same = |what: &str, get: fn(&RunResult) -> String| {
        let expected = get(f);
        for p in &parts[1..] {
            let found = get(&p.result);
            if found != expected {
                problems.push(format!(
                    "{}: {what} is {found}, but {} has {expected}",
                    p.source, first.source
                ));
            }
        }
    };
    same("the scenario", |r| format!("`{}`", r.scenario));
    same("the suite", |r| r.suite.clone());
    same("the seed", |r| r.seed_text.clone());
    same("the shard count", |r| r.shard.count.to_string());
    same("the load model", |r| {
        format!("{:?}", r.load.model).to_lowercase()
    });
    same("the target kind", |r| r.target.kind.clone());
    for p in parts {
        if p.result.schema_version != SCHEMA_VERSION {
            problems.push(format!(
                "{}: schema version {} is not this harness's ({SCHEMA_VERSION})",
                p.source, p.result.schema_version
            ));
        }
        if p.result.merged_from.is_some() {
            problems.push(format!(
                "{}: is already a merged result, not a shard's",
                p.source
            ));
        }
        if p.result.shard.index >= p.result.shard.count {
            problems.push(format!(
                "{}: shard index {} is not below its count {}",
                p.source, p.result.shard.index, p.result.shard.count
            ));
        }
    }
    let count = f.shard.count;
    let mut seen: BTreeMap<u32, &str> = BTreeMap::new();
    for p in parts {
        if let Some(other) = seen.insert(p.result.shard.index, &p.source) {
            problems.push(format!(
                "shard {} is given twice: {other} and {}",
                p.result.shard.index, p.source
            ));
        }
    }
    let missing: Vec<u32> = (0..count).filter(|i| !seen.contains_key(i)).collect();
    if !missing.is_empty() && !allow_partial {
        problems.push(format!(
            "{}; merge them all, or pass --allow-partial to merge the others (the result is then \
             marked partial)",
            missing_text(&missing, count)
        ));
    }
    if !allow_partial {
        for p in parts.iter().filter(|p| p.result.status == Status::Aborted) {
            problems.push(format!(
                "{}: shard {} was aborted ({}); run it again, or pass --allow-partial",
                p.source,
                p.result.shard.index,
                p.result.reason.as_deref().unwrap_or("no reason given")
            ));
        }
    }
    if problems.is_empty() {
        Ok(missing)
    } else {
        Err(Refused { problems })
    }
}

/// `shard 2 of 4 is missing`, `shards 2, 3 of 4 are missing`.
fn missing_text(indices: &[u32], count: u32) -> String {
    let list = indices
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match indices.len() {
        1 => format!("shard {list} of {count} is missing"),
        _ => format!("shards {list} of {count} are missing"),
    }
}

/// The checks of every shard, one per name: passed when it passed on every shard that ran it; the
/// detail says where it failed (probe checks ran on one shard and keep its detail).
fn checks(results: &[&RunResult]) -> Vec<CheckResult> {
    let mut out: Vec<(CheckResult, Vec<(u32, String)>)> = Vec::new();
    for r in results {
        for c in &r.checks {
            let at = (r.shard.index, c.detail.clone());
            match out.iter_mut().find(|(o, _)| o.name == c.name) {
                Some((o, seen)) => {
                    o.passed &= c.passed;
                    seen.push(at);
                }
                None => out.push((c.clone(), vec![at])),
            }
        }
    }
    out.into_iter()
        .map(|(mut c, seen)| {
            if seen.len() > 1 {
                let failed: Vec<String> = results
                    .iter()
                    .flat_map(|r| {
                        r.checks
                            .iter()
                            .filter(|x| x.name == c.name && !x.passed)
                            .map(|x| format!("shard {}: {}", r.shard.index, x.detail))
                    })
                    .collect();
                c.detail = if failed.is_empty() {
                    format!(
                        "passed on all {} shards that ran it; {}",
                        seen.len(),
                        seen[0].1
                    )
                } else {
                    failed.join("; ")
                };
            }
            c
        })
        .collect()
}

/// A threshold judged again on the merged figures: the built-in schedule check as a run makes it, and
/// in a stress run a per-stage threshold on the merged first stage, as a run judges it.
fn verdict(v: &Verdict, values: &Values, merged: &RunResult) -> Verdict {
    let on_stage_1 = v
        .note
        .as_deref()
        .is_some_and(|n| n.starts_with("judged on stage 1"));
    if on_stage_1
        && let Some(stage) = merged
            .metrics
            .stress
            .as_ref()
            .and_then(|s| s.stages.first())
        && let Some(judged) = stage.thresholds.iter().find(|x| x.metric == v.metric)
    {
        return Verdict {
            note: Some(format!(
                "judged on stage 1, the base load of {}/s",
                stage.rate_per_s
            )),
            ..judged.clone()
        };
    }
    match (v.metric.as_str(), &merged.metrics.schedule) {
        ("schedule.on_time_rate", Some(s)) if v.note.is_some() => Verdict {
            actual: Some(s.on_time_rate),
            passed: !s.fell_behind,
            ..v.clone()
        },
        _ => rejudged(v, values),
    }
}

#[cfg(test)]
mod tests;
