//! The journal's lines, and the sum of its slices.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::TimelineRow;
use crate::metrics::histogram::{DecodeError, Hist, decode, encode, merge, new_histogram};
use crate::metrics::recorder::Interval;
use crate::result::RunResult;

/// The version of the journal's format.
pub const VERSION: u32 = 1;

/// One line of the journal.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    /// The first line: the result as it stood when the load began.
    Header {
        journal: u32,
        result: Box<RunResult>,
    },
    Slice(SliceRecord),
    Row(TimelineRow),
    /// The sum of the lines a compaction replaced.
    Compact {
        rows: Vec<TimelineRow>,
        slice: SliceRecord,
    },
}

/// What the iterations finished in a slice (or in many, summed) did.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SliceRecord {
    /// Milliseconds into the load at the slice's end.
    pub at_ms: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub late: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
    /// Latency of the succeeded iterations, HDR-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<String>,
    /// Latency of the failed ones by error kind, HDR-encoded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failed_by_kind: BTreeMap<String, String>,
}

/// Slices added up, histograms decoded.
#[derive(Debug, Clone)]
pub struct Sum {
    pub at_ms: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub late: u64,
    pub errors: BTreeMap<String, u64>,
    pub ok: Hist,
    pub failed_by_kind: BTreeMap<String, Hist>,
}

impl Default for Sum {
    fn default() -> Self {
        Self {
            at_ms: 0,
            succeeded: 0,
            failed: 0,
            late: 0,
            errors: BTreeMap::new(),
            ok: new_histogram(),
            failed_by_kind: BTreeMap::new(),
        }
    }
}

impl Sum {
    /// Adds a slice as the engine measured it.
    pub fn add_interval(&mut self, at_ms: u64, slice: &Interval) {
        self.at_ms = self.at_ms.max(at_ms);
        self.succeeded += slice.succeeded;
        self.failed += slice.failed;
        self.late += slice.late;
        for (k, n) in &slice.errors {
            *self.errors.entry(k.clone()).or_default() += n;
        }
        merge(&mut self.ok, slice.latency.ok());
        for (kind, h) in slice.latency.failed_by_kind() {
            merge(
                self.failed_by_kind
                    .entry(kind.to_string())
                    .or_insert_with(new_histogram),
                h,
            );
        }
    }

    /// Adds a slice read from the journal.
    pub fn add_record(&mut self, r: &SliceRecord) -> Result<(), DecodeError> {
        self.at_ms = self.at_ms.max(r.at_ms);
        self.succeeded += r.succeeded;
        self.failed += r.failed;
        self.late += r.late;
        for (k, n) in &r.errors {
            *self.errors.entry(k.clone()).or_default() += n;
        }
        if let Some(ok) = &r.ok {
            merge(&mut self.ok, &decode(ok)?);
        }
        for (kind, text) in &r.failed_by_kind {
            merge(
                self.failed_by_kind
                    .entry(kind.clone())
                    .or_insert_with(new_histogram),
                &decode(text)?,
            );
        }
        Ok(())
    }

    /// Every iteration's latency, succeeded and failed.
    pub fn all(&self) -> Hist {
        let mut all = self.ok.clone();
        for h in self.failed_by_kind.values() {
            merge(&mut all, h);
        }
        all
    }

    pub fn failed_latency(&self) -> Hist {
        let mut out = new_histogram();
        for h in self.failed_by_kind.values() {
            merge(&mut out, h);
        }
        out
    }

    /// As a journal line.
    pub fn record(&self) -> SliceRecord {
        SliceRecord {
            at_ms: self.at_ms,
            succeeded: self.succeeded,
            failed: self.failed,
            late: self.late,
            errors: self.errors.clone(),
            ok: (!self.ok.is_empty()).then(|| encode(&self.ok)),
            failed_by_kind: self
                .failed_by_kind
                .iter()
                .filter(|(_, h)| !h.is_empty())
                .map(|(k, h)| (k.clone(), encode(h)))
                .collect(),
        }
    }
}

/// A slice as a journal line: its histograms encoded as they are, nothing merged.
pub fn slice_record(at_ms: u64, slice: &Interval) -> SliceRecord {
    let ok = slice.latency.ok();
    SliceRecord {
        at_ms,
        succeeded: slice.succeeded,
        failed: slice.failed,
        late: slice.late,
        errors: slice.errors.clone(),
        ok: (!ok.is_empty()).then(|| encode(ok)),
        failed_by_kind: slice
            .latency
            .failed_by_kind()
            .iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(k, h)| (k.to_string(), encode(h)))
            .collect(),
    }
}
