//! Turning what the recorders measured into a [`RunResult`]: metrics that apply to this kind of run
//! (and only those), the suite's own analysis (the stress suite's breaking point, the endurance
//! suite's drift), verdicts on the thresholds, the status and the notes a reader needs. Used for the
//! final result and for the checkpoints written while the run goes on.

use std::time::{Duration, SystemTime};

use crate::config::units::format_duration;
use crate::metrics::histogram::encode;
use crate::metrics::timeline::Drift;
use crate::metrics::{LatencySummary, Recorder, TimelineRow};
use crate::plan::{RunPlan, TargetPlan};
use crate::result::*;
use crate::thresholds::evaluate::{Values, judge, judge_one};

/// The reason a checkpoint gives: written while the run goes on, it is not the run's result.
pub const CHECKPOINT_REASON: &str = "the run had not finished when this checkpoint was written";

pub use crate::metrics::timeline::MAX_LATE_SHARE;

/// Why the run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// The schedule ran to its end.
    Completed,
    /// The run's `timeout` ran out first.
    Budget,
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// Nothing ran: the target could not be reached, or the run could not be set up.
    NotStarted(String),
    /// A checkpoint of a run still going.
    Running,
}

/// Everything [`assemble`] needs.
pub struct Snapshot<'a> {
    pub plan: &'a RunPlan,
    /// Where the target was.
    pub url: &'a url::Url,
    pub merged: &'a Recorder,
    pub recorded_names: &'a [String],
    pub timeline: Vec<TimelineRow>,
    /// Seconds per block, and the succeeded iterations' histogram of each block.
    pub blocks: Option<(u64, Vec<String>)>,
    pub drift: Option<Drift>,
    pub started_at: SystemTime,
    /// When the load began, on the wall clock (absent when it never did).
    pub load_started_at: Option<SystemTime>,
    /// When the load started (its stages' times count from here).
    pub load_start: std::time::Instant,
    pub elapsed: Duration,
    /// How long the load itself ran (throughput is over this).
    pub load_elapsed: Duration,
    pub stop: Stop,
    pub abandoned: u64,
    pub crashed_workers: u64,
    pub injected: u64,
    /// What the WebSocket driver and the probes measured.
    pub extras: &'a Extras,
}

/// Measurements beside the iterations: the WebSocket driver's, and the probes'.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extras {
    pub ws: Option<WsMetrics>,
    pub rate_limit: Option<RateLimitMetrics>,
    pub body_size: Option<crate::result::body_size::BodySizeMetrics>,
    pub recovery: Option<RecoveryMetrics>,
    /// The acknowledged history checked against the target's state.
    pub invariants: Option<crate::invariants::InvariantReport>,
    /// The writes to collections checked against what was read back.
    pub history: Option<crate::history::HistoryReport>,
    pub checks: Vec<CheckResult>,
    pub notes: Vec<String>,
    /// HTTP responses by the version they came in.
    pub http_protocols: std::collections::BTreeMap<String, u64>,
    /// The connections the HTTP clients opened.
    pub http_connections: Option<HttpConnections>,
}

impl Extras {
    /// Adds `other`'s measurements to these (later ones win where both have one).
    pub fn absorb(&mut self, other: Extras) {
        if other.ws.is_some() {
            self.ws = other.ws;
        }
        if other.rate_limit.is_some() {
            self.rate_limit = other.rate_limit;
        }
        if other.body_size.is_some() {
            self.body_size = other.body_size;
        }
        if other.recovery.is_some() {
            self.recovery = other.recovery;
        }
        if other.invariants.is_some() {
            self.invariants = other.invariants;
        }
        if other.history.is_some() {
            self.history = other.history;
        }
        self.checks.extend(other.checks);
        if other.http_connections.is_some() {
            self.http_connections = other.http_connections;
        }
        for (version, n) in other.http_protocols {
            *self.http_protocols.entry(version).or_default() += n;
        }
        self.notes.extend(other.notes);
    }
}

pub fn assemble(s: Snapshot<'_>) -> RunResult {
    let plan = s.plan;
    let load = &plan.load;
    let thresholds = &plan.judgement.thresholds;
    let totals = ResultTotals::from(&s.merged.totals, load.planned(), s.abandoned);
    let scheduled = load.is_scheduled();
    let mut metrics = base_metrics(&s, scheduled);
    let stress = plan
        .judgement
        .breaking_point
        .then(|| super::stress::judge_stages(&s, &load.judged_stages(), thresholds));
    metrics.stress = stress.as_ref().map(|(m, _)| m.clone());
    if plan.judgement.drift_window_s.is_some() {
        metrics.drift = s.drift;
    }
    metrics.invariants = s.extras.invariants.clone();
    metrics.history = s.extras.history.clone();
    metrics.latency_ok_blocks = s
        .blocks
        .clone()
        .filter(|(_, b)| !b.is_empty() && metrics.latency_ok_ms.is_some())
        .map(|(block_s, hdr)| LatencyBlocks { block_s, hdr });
    metrics.ws = match (s.extras.ws.clone(), &s.merged.connections) {
        (None, None) => None,
        (ws, counts) => {
            let mut ws = ws.unwrap_or_default();
            if let Some(c) = counts {
                connection_counts(c, &mut ws);
            }
            Some(ws)
        }
    };
    metrics.rate_limit = s.extras.rate_limit.clone();
    metrics.body_size = s.extras.body_size.clone();
    metrics.http_connections = s.extras.http_connections.clone();
    metrics.recovery = s.extras.recovery.clone();

    let mut notes = notes(&s, &totals, scheduled);
    notes.extend(missing_percentiles(&metrics));
    notes.extend(s.extras.notes.iter().cloned());
    let finished_at = s.started_at + s.elapsed;
    let id = &plan.identity;
    let mut result = RunResult {
        schema_version: SCHEMA_VERSION,
        scenario: id.name.clone(),
        description: id.description.clone(),
        suite: id.suite.to_string(),
        seed: id.seed,
        seed_text: id.seed.to_string(),
        run_id: id.run_id.clone(),
        status: Status::Passed,
        reason: None,
        started_at: humantime::format_rfc3339_millis(s.started_at).to_string(),
        finished_at: humantime::format_rfc3339_millis(finished_at).to_string(),
        duration_s: s.elapsed.as_secs_f64(),
        load_started_at: s
            .load_started_at
            .map(|t| humantime::format_rfc3339_millis(t).to_string()),
        shard: id.shard,
        merged_from: None,
        target: TargetInfo {
            kind: plan.target.kind().as_str().to_string(),
            url: crate::redact::url(s.url),
            embedded: plan.endpoint.embedded().map(|e| e.as_str().to_string()),
            procedure: plan.target.procedure().map(|p| p.name.clone()),
            tls: tls_info(plan, s.url),
            http_version: (!matches!(plan.target, crate::plan::TargetPlan::WebSocket(_)))
                .then(|| plan.net.http.as_str().to_string()),
            http_protocols: s.extras.http_protocols.clone(),
            websocket: match &plan.target {
                crate::plan::TargetPlan::WebSocket(ws) => Some(crate::result::WsTargetInfo {
                    mode: ws.mode.as_str().to_string(),
                    connections: ws.connections,
                    subscribers: ws.subscribers,
                    payload_bytes: ws.payload_size as u64,
                    ping_interval_ms: ws
                        .ping_interval
                        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                }),
                _ => None,
            },
        },
        load: load_info(plan, s.injected),
        totals,
        metrics,
        timeline: s.timeline.clone(),
        thresholds: Vec::new(),
        checks: s.extras.checks.clone(),
        caveats: Vec::new(),
        notes,
        histograms: HistogramInfo::default(),
        environment: Some(crate::result::Environment::here()),
    };

    result.caveats = super::caveats::of(
        &result.metrics,
        &result.timeline,
        scheduled,
        plan.load.concurrency(),
    );
    let values = Values::of_result(&result);
    let mut verdicts = match &stress {
        Some((_, base_verdicts)) => thresholds
            .iter()
            .map(|t| match base_verdicts.get(&t.metric) {
                Some(v) => v.clone(),
                None => judge_one(t, &values),
            })
            .collect(),
        None => judge(thresholds, &values),
    };
    if scheduled
        && stress.is_none()
        && !thresholds
            .iter()
            .any(|t| t.metric == "schedule.on_time_rate")
        && let Some(sched) = &result.metrics.schedule
    {
        verdicts.push(Verdict {
                metric: "schedule.on_time_rate".into(),
                kind: "ratio".into(),
                condition: format!(">= {}", 1.0 - MAX_LATE_SHARE),
                actual: Some(sched.on_time_rate),
                passed: !sched.fell_behind,
                note: Some("built in: an open load must keep to its schedule, or its latencies describe a lighter load".into()),
                samples_range: None,
            });
    }
    let (status, mut reason) = status(&s, &totals, &verdicts);
    if status == Status::Failed
        && let (Some(r), Some(hint)) = (reason.as_mut(), unanswered_hint(&result.metrics))
    {
        r.push_str("; ");
        r.push_str(&hint);
    }
    result.status = status;
    result.reason = reason;
    result.thresholds = verdicts;
    // A target may echo a credential back (an error body, a frame): nothing it sent reaches a file
    // or a terminal with one in it.
    crate::redact::Secrets::of(plan).result(result)
}

/// When requests timed out while frames arrived that could not be tied to any request, the two are
/// likely one problem (replies the protocol description does not recognise): say so in the reason.
fn unanswered_hint(m: &Metrics) -> Option<String> {
    let ws = m.ws.as_ref()?;
    let timeouts = m.errors.get("timeout").copied().unwrap_or(0);
    if timeouts == 0 || ws.frames_without_correlation == 0 {
        return None;
    }
    Some(format!(
        "{timeouts} requests timed out while {} frames arrived without a correlation id{} — if \
         those are the replies, describe them in [websocket.protocol] (correlation_id, or \
         uncorrelated for frames that carry none)",
        ws.frames_without_correlation,
        ws.uncorrelated_frames
            .first()
            .map(|f| format!(", e.g. {f}"))
            .unwrap_or_default()
    ))
}

/// Writes what the connections recorded into `metrics.ws`, beside what the driver and the probes
/// filled.
fn connection_counts(c: &crate::metrics::ConnectionStats, m: &mut WsMetrics) {
    m.connections = c.connections;
    m.failed_connections = c.failed_connections;
    m.reconnects = c.reconnects;
    m.messages_sent = c.sent;
    m.messages_received = c.received;
    m.frames_without_correlation = c.without_correlation;
    m.uncorrelated_frames = c.uncorrelated_samples.clone();
    m.late_replies = c.late_replies;
    m.connect_ms = LatencySummary::of(&c.connect);
    m.connect_hdr = (!c.connect.is_empty()).then(|| encode(&c.connect));
    m.tls_handshake_ms = LatencySummary::of(&c.tls_handshake);
    m.ping_ms = LatencySummary::of(&c.ping);
    m.app_ping_ms = LatencySummary::of(&c.app_ping);
    m.app_pings_unanswered = c.app_ping_unanswered;
    m.server_clock_offset_ms = c.clock_offset.mean_us().map(|mean| ClockOffsetSummary {
        samples: c.clock_offset.samples,
        mean: mean / 1000.0,
        min: c.clock_offset.min_us as f64 / 1000.0,
        max: c.clock_offset.max_us as f64 / 1000.0,
    });
    m.reconnect_ms = LatencySummary::of(&c.reconnect);
    m.close_codes = c
        .close_codes
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
}

fn base_metrics(s: &Snapshot<'_>, scheduled: bool) -> Metrics {
    let m = s.merged;
    let plan = s.plan;
    let all = m.latency.all();
    let mut out = Metrics {
        success_rate: m.totals.success_rate(),
        error_rate: m.totals.success_rate().map(|r| 1.0 - r),
        throughput_per_s: (m.totals.iterations > 0 && !s.load_elapsed.is_zero())
            .then(|| m.totals.iterations as f64 / s.load_elapsed.as_secs_f64()),
        latency_ms: LatencySummary::of(&all),
        latency_hdr: (!all.is_empty()).then(|| encode(&all)),
        latency_ok_ms: LatencySummary::of(m.latency.ok()),
        latency_ok_hdr: (!m.latency.ok().is_empty()).then(|| encode(m.latency.ok())),
        latency_failed_ms: LatencySummary::of(&m.latency.failed()),
        latency_failed_by_kind: m
            .latency
            .failed_by_kind()
            .iter()
            .filter_map(|(k, h)| Some((k.to_string(), LatencySummary::of(h)?)))
            .collect(),
        errors: m.errors.iter().map(|(k, v)| (k.clone(), v.count)).collect(),
        error_samples: m
            .errors
            .iter()
            .map(|(k, v)| (k.clone(), v.samples.clone()))
            .collect(),
        warnings: m.warnings.clone(),
        ..Metrics::default()
    };
    if scheduled {
        out.service_time_ms = LatencySummary::of(&m.service);
        out.service_time_hdr = (!m.service.is_empty()).then(|| encode(&m.service));
        if m.totals.iterations > 0 {
            let on_time = 1.0 - m.late as f64 / m.totals.iterations as f64;
            out.schedule = Some(ScheduleMetrics {
                intended_rate_per_s: plan.load.intended_rate().unwrap_or(0.0),
                achieved_rate_per_s: out.throughput_per_s.unwrap_or(0.0),
                late: m.late,
                on_time_rate: on_time,
                fell_behind: crate::metrics::timeline::behind_schedule(m.late, m.totals.iterations),
            });
        }
    }
    if let TargetPlan::Request(p) | TargetPlan::Procedure(p) = &plan.target
        && p.has_retries()
    {
        let r = &m.retries;
        out.retries = Some(RetryMetrics {
            iterations: r.iterations,
            retries: r.retries,
            by_kind: r.by_kind.clone(),
            waited_s: r.waited.as_secs_f64(),
            honoured_retry_after: r.honoured_retry_after,
            beyond_cap: r.beyond_cap,
            over_budget: r.over_budget,
        });
    }
    if let TargetPlan::Procedure(p) = &plan.target {
        for (i, step) in p.steps.iter().enumerate() {
            let Some(split) = m.steps.get(i) else {
                continue;
            };
            if let Some(summary) = LatencySummary::of(&split.all()) {
                out.steps.insert(
                    step.id.clone(),
                    StepMetrics {
                        index: i,
                        name: step.name.clone(),
                        latency_ms: summary,
                        latency_ok_ms: LatencySummary::of(split.ok()),
                    },
                );
            }
        }
        if p.has_rollbacks() {
            let rb = &m.rollback;
            out.rollback = Some(RollbackMetrics {
                withheld_irreversible: rb.withheld,
                attempted: rb.attempted,
                succeeded: rb.succeeded,
                success_rate: (rb.attempted > 0).then(|| rb.succeeded as f64 / rb.attempted as f64),
                by_step: rb
                    .by_step
                    .iter()
                    .zip(&p.steps)
                    .filter(|((attempted, _), _)| *attempted > 0)
                    .map(|((attempted, succeeded), step)| {
                        (
                            step.id.clone(),
                            RollbackCount {
                                attempted: *attempted,
                                succeeded: *succeeded,
                            },
                        )
                    })
                    .collect(),
                failures: rb.failure_samples.clone(),
            });
        }
    }
    for (i, name) in s.recorded_names.iter().enumerate() {
        if let Some(summary) = m.recorded.get(i).and_then(LatencySummary::of) {
            out.recorded.insert(name.clone(), summary);
        }
    }
    out
}

fn status(
    s: &Snapshot<'_>,
    totals: &ResultTotals,
    verdicts: &[Verdict],
) -> (Status, Option<String>) {
    let budget = format_duration(s.plan.budget.timeout);
    match &s.stop {
        Stop::Budget => {
            return (
                Status::Aborted,
                Some(format!("the run exceeded its {budget} budget")),
            );
        }
        Stop::Interrupted => {
            return (
                Status::Aborted,
                Some("interrupted before the run finished".into()),
            );
        }
        Stop::NotStarted(why) => return (Status::Aborted, Some(why.clone())),
        Stop::Running => {
            return (Status::Aborted, Some(CHECKPOINT_REASON.into()));
        }
        Stop::Completed => {}
    }
    judged_status(totals, verdicts, &s.extras.checks)
}

/// The status of a run that ran to its end: failed when no iteration completed, or some threshold
/// or check failed (the reason lists them), passed otherwise.
pub fn judged_status(
    totals: &ResultTotals,
    verdicts: &[Verdict],
    checks: &[CheckResult],
) -> (Status, Option<String>) {
    if totals.iterations == 0 {
        return (Status::Failed, Some("no iteration completed".into()));
    }
    let failed: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.passed)
        .map(|v| format!("{} {} (was {})", v.metric, v.condition, v.actual_text()))
        .collect();
    let failed_checks: Vec<&str> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.as_str())
        .collect();
    let mut reasons = Vec::new();
    if !failed.is_empty() {
        reasons.push(format!(
            "{} of {} thresholds failed: {}",
            failed.len(),
            verdicts.len(),
            failed.join("; ")
        ));
    }
    if !failed_checks.is_empty() {
        reasons.push(format!(
            "{} of {} checks failed: {}",
            failed_checks.len(),
            checks.len(),
            failed_checks.join(", ")
        ));
    }
    if reasons.is_empty() {
        (Status::Passed, None)
    } else {
        (Status::Failed, Some(reasons.join("; ")))
    }
}

fn notes(s: &Snapshot<'_>, totals: &ResultTotals, scheduled: bool) -> Vec<String> {
    let mut notes = Vec::new();
    if scheduled {
        notes.push(
            "Open load: latency is measured from each iteration's intended start, so a stalled target shows \
             in the percentiles; service_time_ms is the uncorrected time from the actual start."
                .into(),
        );
    } else {
        notes.push(
            "Closed load: each worker starts its next iteration only when the last one ends, so a stalled \
             target slows the load instead of showing in the latency (coordinated omission may hide stalls). \
             Use an open load to see them."
                .into(),
        );
    }
    if s.injected > 0 {
        notes.push(format!(
            "Faults were injected into {} iterations (drawn from seed {}); they count as failures under errors.injected.",
            s.injected, s.plan.identity.seed
        ));
    }
    if totals.not_started > 0 || totals.abandoned > 0 {
        notes.push(format!(
            "Stopped early: {} planned iterations never started and {} were cut off in flight; neither counts as a failure.",
            totals.not_started, totals.abandoned
        ));
    }
    if s.crashed_workers > 0 {
        notes.push(format!(
            "{} worker(s) stopped on an internal error; the run went on with the others. Please report it.",
            s.crashed_workers
        ));
    }
    notes
}

/// Says which percentiles of the succeeded iterations are absent, and how many iterations each needs.
fn missing_percentiles(m: &Metrics) -> Option<String> {
    let l = m.latency_ok_ms.as_ref()?;
    let missing: Vec<String> = crate::metrics::histogram::PERCENTILES
        .iter()
        .filter_map(|(name, _)| l.unsupported(name).map(|(_, needed)| (name, needed)))
        .map(|(name, needed)| format!("{name} needs {needed}"))
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "Percentiles with fewer than 10 of the {} succeeded iterations beyond them are not \
             reported ({}): they would rest on a handful of the slowest.",
            l.count,
            missing.join(", ")
        )
    })
}

fn load_info(plan: &RunPlan, injected: u64) -> LoadInfo {
    let load = &plan.load;
    LoadInfo {
        model: load.model(),
        planned_iterations: load.planned(),
        concurrency: u64::from(load.concurrency()),
        iteration_timeout_ms: plan.budget.iteration.as_secs_f64() * 1e3,
        timeout_ms: plan.budget.timeout.as_secs_f64() * 1e3,
        rate_per_s: load.rate_per_s(),
        stages: load.stage_plans(),
        faults: plan.faults.injected.as_ref().map(|i| FaultInfo {
            failure_rate: i.rate,
            kinds: i.kinds.iter().map(|k| k.as_str().to_string()).collect(),
            injected,
        }),
    }
}
/// The TLS of a run that used it, or was given settings for it.
fn tls_info(plan: &RunPlan, url: &url::Url) -> Option<crate::result::TlsInfo> {
    let t = &plan.net.tls.settings;
    (crate::tls::is_secure(url) || *t != crate::tls::TlsSettings::default()).then(|| {
        crate::result::TlsInfo {
            insecure_skip_verify: t.insecure_skip_verify,
            ca: t.ca.iter().map(|p| p.display().to_string()).collect(),
            client_certificate: t.client_cert.is_some(),
            server_name: t.server_name.clone(),
            min_version: t.min_version.as_str().to_string(),
        }
    })
}
