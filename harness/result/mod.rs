//! `RunResult`: everything a run measured, as written to `result.json`. This is where drivers and
//! reports meet: the engine fills it, reporters and `compare` read it, and nothing else passes
//! between them.
//!
//! The contract (DESIGN.md) fixes the names and meanings of the fields other tools read; extend it,
//! never rename. A metric that does not apply to a run is absent, never a made-up zero.
//! `schemas/result.schema.json` describes the file and the tests hold the two together.

pub mod body_size;
pub mod write;
pub mod ws;

pub use ws::{
    CheckResult, ClockOffsetSummary, RateLimitMetrics, RecoveryMetrics, RecoveryWindow,
    WindowStats, WsMetrics,
};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::timeline::Drift;
use crate::metrics::{LatencySummary, TimelineRow, Totals};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every threshold held.
    Passed,
    /// A threshold failed (or the load generator fell behind).
    Failed,
    /// The run could not complete: interrupted, over its budget, or the target unreachable. What was
    /// measured until then is kept.
    Aborted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub schema_version: u32,
    pub scenario: String,
    #[serde(default)]
    pub description: String,
    pub suite: String,
    pub seed: u64,
    /// The seed as a decimal string: JSON readers that hold numbers as doubles (jq, JavaScript) lose
    /// the last digits of a seed above 2^53, and `--seed` takes this text as it is.
    #[serde(default)]
    pub seed_text: String,
    /// Identifies the run in ids it creates on the target; not derived from the seed, so two runs
    /// with one seed never collide on a long-lived target.
    pub run_id: String,
    pub status: Status,
    /// Why the run was aborted or failed, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    pub duration_s: f64,
    /// When the load began (the timeline's second 0), for a run that got that far: shards' timelines
    /// merge on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_started_at: Option<String>,
    pub shard: Shard,
    /// A result `harness merge` made from shards' results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_from: Option<MergedFrom>,
    pub target: TargetInfo,
    pub load: LoadInfo,
    pub totals: ResultTotals,
    pub metrics: Metrics,
    pub timeline: Vec<TimelineRow>,
    pub thresholds: Vec<Verdict>,
    /// Named checks of the probes (hardening, slow consumer, rate limit), each passed or failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckResult>,
    /// What may make the figures mislead (a stall a closed load hid, a generator that fell behind),
    /// shown wherever the verdict is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caveats: Vec<String>,
    /// Things a reader should know to interpret the numbers.
    #[serde(default)]
    pub notes: Vec<String>,
    pub histograms: HistogramInfo,
    /// What ran the run: the harness's version and the machine's kind, so that two results
    /// compared say whether those differed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
}

/// How a run drove a WebSocket endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WsTargetInfo {
    /// `request_reply`, `publish`, …
    pub mode: String,
    pub connections: u32,
    pub subscribers: u32,
    pub payload_bytes: u64,
    /// Protocol pings, when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping_interval_ms: Option<u64>,
}

/// The harness and the machine a run ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// `0.1.0 (commit 1a0c72d66663)`.
    pub harness: String,
    /// `linux`, `macos`, …
    pub os: String,
    /// `x86_64`, `aarch64`, …
    pub arch: String,
    /// Cores the harness could use.
    pub cpus: u32,
}

impl Environment {
    /// This process's.
    pub fn here() -> Self {
        Self {
            harness: crate::cli::VERSION.to_string(),
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            cpus: std::thread::available_parallelism()
                .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// The shards a merged result was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergedFrom {
    /// How many shards the run had.
    pub shards: u32,
    /// The indices merged, in order.
    pub indices: Vec<u32>,
    /// Each merged shard's run id, in the order of `indices`.
    pub run_ids: Vec<String>,
    /// Some shard was missing or aborted (`--allow-partial`): the result is aborted.
    pub partial: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    pub kind: String,
    pub url: String,
    /// The reference target the harness started itself, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedded: Option<String>,
    /// What one iteration does: the procedure's name, or the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub procedure: Option<String>,
    /// How TLS was set up, for a run that used it (or was told how to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsInfo>,
    /// The HTTP version asked for (`auto`, `http1`, `http2`), for HTTP targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_version: Option<String>,
    /// Responses by the HTTP version they came in (`HTTP/1.1`, `HTTP/2`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub http_protocols: BTreeMap<String, u64>,
    /// A WebSocket target's settings as the run held them (this shard's share of connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket: Option<WsTargetInfo>,
}

/// The TLS a run used: what it trusted and presented. `insecure_skip_verify` means no certificate
/// was checked at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsInfo {
    pub insecure_skip_verify: bool,
    /// CA files trusted beside the platform's roots.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca: Vec<String>,
    /// A client certificate was presented when asked (mTLS).
    pub client_certificate: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    pub min_version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadInfo {
    pub model: crate::kinds::LoadModel,
    pub planned_iterations: u64,
    /// Closed load: workers; open and stepped: the bound on iterations in flight.
    pub concurrency: u64,
    pub iteration_timeout_ms: f64,
    pub timeout_ms: f64,
    /// Open load: the arrival rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_s: Option<f64>,
    /// Stepped load: each stage's rate and duration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StagePlan>,
    /// Injected faults: share of iterations and kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<FaultInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagePlan {
    pub rate_per_s: f64,
    pub duration_s: f64,
    pub iterations: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultInfo {
    pub failure_rate: f64,
    pub kinds: Vec<String>,
    pub injected: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultTotals {
    pub iterations: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub timed_out: u64,
    /// Planned iterations never started (the run stopped first).
    #[serde(default)]
    pub not_started: u64,
    /// Iterations cut off in flight when the run stopped.
    #[serde(default)]
    pub abandoned: u64,
}

impl ResultTotals {
    pub fn from(t: &Totals, planned: u64, abandoned: u64) -> Self {
        Self {
            iterations: t.iterations,
            succeeded: t.succeeded,
            failed: t.failed,
            timed_out: t.timed_out,
            not_started: planned.saturating_sub(t.iterations + abandoned),
            abandoned,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// Iterations completed per second of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_per_s: Option<f64>,
    /// Open and stepped loads: from each iteration's intended start. Closed: from its start. Every
    /// completed iteration, succeeded or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<LatencySummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_hdr: Option<String>,
    /// Succeeded iterations only: what the reports headline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ok_ms: Option<LatencySummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ok_hdr: Option<String>,
    /// The succeeded iterations in blocks of whole seconds, one histogram each (what `compare`
    /// resamples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ok_blocks: Option<LatencyBlocks>,
    /// Failed iterations only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_failed_ms: Option<LatencySummary>,
    /// Failed iterations by error kind.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub latency_failed_by_kind: BTreeMap<String, LatencySummary>,
    /// Open and stepped loads only: from the actual start (uncorrected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_time_ms: Option<LatencySummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_time_hdr: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub steps: BTreeMap<String, StepMetrics>,
    /// Timings the target reported, by recorded metric name (e.g. `lock.acquire`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recorded: BTreeMap<String, LatencySummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackMetrics>,
    /// HTTP targets: the connections the clients opened, and how long each took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_connections: Option<HttpConnections>,
    /// Requests that may be retried: what the retries cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<RetryMetrics>,
    /// Failed iterations by error kind (`validation.<rule>` for rules).
    pub errors: BTreeMap<String, u64>,
    /// A few messages of each error kind, as the target or the harness gave them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub error_samples: BTreeMap<String, Vec<String>>,
    /// Medium and low rule failures, by rule id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub warnings: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleMetrics>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stress: Option<StressMetrics>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
    /// Concurrency runs on handoff targets: the invariant checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invariants: Option<crate::invariants::InvariantReport>,
    /// Writes to collections checked against what the service stored (`history` steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<crate::history::HistoryReport>,
    /// Websocket targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws: Option<WsMetrics>,
    /// The rate-limit probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitMetrics>,
    /// The body-size probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_size: Option<body_size::BodySizeMetrics>,
    /// Network fault windows and the recovery after each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryMetrics>,
}

/// Histograms of consecutive blocks of a run, each of `block_s` seconds (by when iterations ended).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyBlocks {
    pub block_s: u64,
    /// HdrHistogram V2 + DEFLATE, base64, microseconds, like `latency_hdr`.
    pub hdr: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Position of the step in its procedure, from 0.
    #[serde(default)]
    pub index: usize,
    pub name: String,
    /// Every attempt of the step, succeeded or failed.
    pub latency_ms: LatencySummary,
    /// The times the step succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ok_ms: Option<LatencySummary>,
}

/// The connections an HTTP run's clients opened. Few connections for many requests is keep-alive
/// (or HTTP/2) at work; `connect_ms` is each one's TCP connect and, for https, TLS handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpConnections {
    pub opened: u64,
    pub failed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<LatencySummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_hdr: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryMetrics {
    /// Iterations that retried a request.
    pub iterations: u64,
    /// Attempts beyond the first.
    pub retries: u64,
    /// The failures that were retried, by error kind: what the retries absorbed.
    pub by_kind: BTreeMap<String, u64>,
    /// Seconds spent waiting between attempts (part of the iterations' latency).
    pub waited_s: f64,
    /// Waits that were a `Retry-After` the target sent (longer than the backoff).
    pub honoured_retry_after: u64,
    /// Retries not made because the target asked for a wait beyond `max_retry_after`.
    pub beyond_cap: u64,
    /// Retries not made because the retry budget was spent.
    #[serde(default)]
    pub over_budget: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackMetrics {
    /// Failures that called for no rollback because what had taken effect lies behind an
    /// irreversible step without a compensation: not counted in `attempted`.
    #[serde(default)]
    pub withheld_irreversible: u64,
    pub attempted: u64,
    pub succeeded: u64,
    /// Verified rollbacks ÷ rollbacks attempted; absent when none was attempted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<f64>,
    /// By the step whose failure triggered them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_step: BTreeMap<String, RollbackCount>,
    /// Why some rollbacks failed verification.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackCount {
    pub attempted: u64,
    pub succeeded: u64,
}

/// How well the load generator kept to an open or stepped schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleMetrics {
    pub intended_rate_per_s: f64,
    pub achieved_rate_per_s: f64,
    /// Iterations that started later than the schedule allows.
    pub late: u64,
    pub on_time_rate: f64,
    /// More than 1% of iterations started late: the run did not apply the load it claims.
    pub fell_behind: bool,
}

/// The stress suite's stages and its breaking point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StressMetrics {
    pub stages: Vec<StageResult>,
    /// The highest stage (counting up from the first) that met the thresholds; absent when even the
    /// first did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaking_point: Option<BreakingPoint>,
    /// Whether some stage failed the thresholds (false: the load never broke the target).
    pub broke: bool,
    /// The stage where the generator fell behind before the target broke: the loads from there on
    /// were never offered, so the breaking point lies somewhere above the last stage that met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_limited: Option<GeneratorLimit>,
}

/// A stage the generator could not offer as planned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorLimit {
    /// 1-based stage number.
    pub stage: usize,
    pub rate_per_s: f64,
    pub achieved_rate_per_s: f64,
    /// Iterations that started late.
    pub late: u64,
    /// In flight the stage needed at the target's mean service time (rate × mean), and the bound:
    /// well under it, so the late starts were the generator's.
    #[serde(default)]
    pub needed_in_flight: f64,
    #[serde(default)]
    pub max_in_flight: u32,
    /// Share of the machine's cores the harness used during the stage, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness_cpu: Option<f64>,
    /// The sign of it: service time (from the actual start) well below latency (from the intended
    /// start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_time_p95_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p95_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakingPoint {
    /// 1-based stage number.
    pub stage: usize,
    pub rate_per_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageResult {
    pub stage: usize,
    pub rate_per_s: f64,
    pub achieved_rate_per_s: f64,
    pub totals: ResultTotals,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<LatencySummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ok_ms: Option<LatencySummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_time_ms: Option<LatencySummary>,
    pub late: u64,
    pub errors: BTreeMap<String, u64>,
    pub met_thresholds: bool,
    /// More than 1% of its iterations started late: the generator, not the target, set its pace.
    #[serde(default)]
    pub generator_limited: bool,
    pub thresholds: Vec<Verdict>,
}

/// One threshold's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub metric: String,
    /// What the metric measures: `duration` (actual in ms), `ratio`, `count`, `rate` (per second),
    /// `number` or `bool` (1 or 0).
    pub kind: String,
    /// As written, e.g. `< 50ms`.
    pub condition: String,
    /// The measured value (milliseconds for durations, per second for rates); absent when the run
    /// produced no data for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<f64>,
    pub passed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// A percentile too few samples support: the smallest and the largest sample, between which it
    /// lies and on which the verdict rests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples_range: Option<[f64; 2]>,
}

impl Verdict {
    /// The actual value as a person would read it: `7.9ms`, `98.2%`, `20/s`, or the range it lies in.
    pub fn actual_text(&self) -> String {
        match (self.actual, self.samples_range) {
            (Some(v), _) => format_value(&self.kind, v),
            (None, Some([lo, hi])) => format!(
                "between {} and {}",
                format_value(&self.kind, lo),
                format_value(&self.kind, hi)
            ),
            (None, None) => "no data".into(),
        }
    }
}

/// A metric value in its kind's unit: durations from milliseconds, ratios as percentages.
pub fn format_value(kind: &str, v: f64) -> String {
    match kind {
        "duration" if v >= 1000.0 => format!("{:.2}s", v / 1000.0),
        "duration" if v >= 10.0 => format!("{v:.1}ms"),
        "duration" => format!("{v:.2}ms"),
        "ratio" => format!("{:.2}%", v * 100.0),
        "count" => format!("{v:.0}"),
        "rate" => format!("{v:.1}/s"),
        "bool" => (if v != 0.0 { "true" } else { "false" }).to_string(),
        _ => {
            let s = format!("{v:.3}");
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    }
}

/// The precision of every histogram in the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramInfo {
    pub unit: String,
    pub significant_digits: u8,
    pub encoding: String,
    /// How the percentiles are defined (and when one is left out).
    #[serde(default)]
    pub percentiles: String,
}

impl Default for HistogramInfo {
    fn default() -> Self {
        Self {
            unit: "microseconds".into(),
            significant_digits: crate::metrics::histogram::SIGNIFICANT_DIGITS,
            encoding: "HdrHistogram V2 + DEFLATE, base64".into(),
            percentiles: crate::metrics::histogram::PERCENTILE_DEFINITION.into(),
        }
    }
}
