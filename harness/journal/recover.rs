//! Rebuilding a result from a journal after the run was killed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::FILE;
use super::record::{Record, Sum, VERSION};
use crate::metrics::{LatencySummary, TimelineRow, histogram::encode};
use crate::result::write::read_json;
use crate::result::{RunResult, Status};

/// Why a journal could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} does not start with a journal header — it is not a harness journal, or was cut off before its first line"
    )]
    NoHeader { path: PathBuf },
    #[error(
        "{path} is journal version {found}; this harness reads version {VERSION} — use the harness that wrote it"
    )]
    Version { path: PathBuf, found: u32 },
}

/// A result rebuilt from a journal.
#[derive(Debug)]
pub struct Recovered {
    pub result: RunResult,
    /// Lines read after the header.
    pub lines: usize,
    /// Whether the last line was cut off mid-write (and left out).
    pub torn: bool,
}

/// Rebuilds the result of the run whose output folder is `dir` from its journal, with the last
/// checkpoint (`dir/result.json`, if it is this run's) for what the journal does not carry.
pub fn recover(dir: &Path) -> Result<Recovered, JournalError> {
    let path = dir.join(FILE);
    let file = std::fs::File::open(&path).map_err(|source| JournalError::Read {
        path: path.clone(),
        source,
    })?;
    let mut header: Option<RunResult> = None;
    let mut rows: Vec<TimelineRow> = Vec::new();
    let mut sum = Sum::default();
    let (mut lines, mut torn) = (0, false);
    for line in BufReader::new(file).split(b'\n') {
        let line = line.map_err(|source| JournalError::Read {
            path: path.clone(),
            source,
        })?;
        if line.is_empty() {
            continue;
        }
        let Ok(record) = serde_json::from_slice::<Record>(&line) else {
            // Only the last line can be cut off by a kill; anything after it is not trusted.
            torn = true;
            break;
        };
        match record {
            Record::Header { journal, result } => {
                if journal != VERSION {
                    return Err(JournalError::Version {
                        path,
                        found: journal,
                    });
                }
                header = Some(*result);
                continue;
            }
            _ if header.is_none() => return Err(JournalError::NoHeader { path }),
            Record::Slice(s) => {
                if sum.add_record(&s).is_err() {
                    torn = true;
                    break;
                }
            }
            Record::Row(r) => rows.push(r),
            Record::Compact { rows: r, slice } => {
                if sum.add_record(&slice).is_err() {
                    torn = true;
                    break;
                }
                rows.extend(r);
            }
        }
        lines += 1;
    }
    let header = header.ok_or(JournalError::NoHeader { path })?;
    // The checkpoint holds what the journal does not (steps, connections, probes), if it is this
    // run's; its counts and latency are replaced by the journal's, which go further.
    let checkpoint = read_json(&dir.join("result.json"))
        .ok()
        .filter(|c| c.run_id == header.run_id);
    let checkpoint_s = checkpoint.as_ref().map(|c| c.timeline.len());
    let mut r = checkpoint.unwrap_or_else(|| header.clone());
    apply(&mut r, &sum, rows);
    let load_s = sum.at_ms as f64 / 1000.0;
    r.status = Status::Aborted;
    r.reason = Some(format!(
        "recovered from the journal: the run stopped without finishing {load_s:.1}s into the load \
         (killed, or its machine went down)"
    ));
    r.notes.push(format!(
        "Rebuilt from {FILE}: iterations, errors, latency and the timeline are complete to the last \
         {} ms slice written; per-step, connection and probe figures are {}.",
        super::SLICE.as_millis(),
        match checkpoint_s {
            Some(s) => format!("as of the last checkpoint, {s}s into the load"),
            None => "missing (the run was killed before its first checkpoint)".into(),
        }
    ));
    if torn {
        r.notes
            .push("The journal's last line was cut off by the kill and left out.".into());
    }
    crate::thresholds::evaluate::rejudge(&mut r);
    Ok(Recovered {
        result: r,
        lines,
        torn,
    })
}

/// Puts the journal's counts, errors, latency and timeline into `r`.
fn apply(r: &mut RunResult, sum: &Sum, rows: Vec<TimelineRow>) {
    let iterations = sum.succeeded + sum.failed;
    r.totals.iterations = iterations;
    r.totals.succeeded = sum.succeeded;
    r.totals.failed = sum.failed;
    r.totals.timed_out = sum.errors.get("timeout").copied().unwrap_or(0);
    let load_s = sum.at_ms as f64 / 1000.0;
    let m = &mut r.metrics;
    if let Some(s) = &mut m.schedule {
        s.late = sum.late;
        if iterations > 0 {
            s.on_time_rate = 1.0 - sum.late as f64 / iterations as f64;
            s.fell_behind = s.on_time_rate < 0.99;
        }
        if load_s > 0.0 {
            s.achieved_rate_per_s = iterations as f64 / load_s;
        }
    }
    m.success_rate = (iterations > 0).then(|| sum.succeeded as f64 / iterations as f64);
    m.error_rate = m.success_rate.map(|s| 1.0 - s);
    m.throughput_per_s = (iterations > 0 && load_s > 0.0).then(|| iterations as f64 / load_s);
    let all = sum.all();
    m.latency_ms = LatencySummary::of(&all);
    m.latency_hdr = (!all.is_empty()).then(|| encode(&all));
    m.latency_ok_ms = LatencySummary::of(&sum.ok);
    m.latency_ok_hdr = (!sum.ok.is_empty()).then(|| encode(&sum.ok));
    m.latency_failed_ms = LatencySummary::of(&sum.failed_latency());
    m.latency_failed_by_kind = sum
        .failed_by_kind
        .iter()
        .filter_map(|(k, h)| Some((k.clone(), LatencySummary::of(h)?)))
        .collect();
    m.errors = sum.errors.clone();
    r.timeline = rows;
    let ran = Duration::from_millis(sum.at_ms).as_secs_f64();
    r.duration_s = r.duration_s.max(ran);
    if let Ok(started) = humantime::parse_rfc3339(&r.started_at) {
        let finished = started + Duration::from_secs_f64(r.duration_s);
        r.finished_at = humantime::format_rfc3339_millis(finished).to_string();
    }
}
