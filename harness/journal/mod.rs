//! The run's journal: an append-only file next to `result.json` that survives a kill. Checkpoints of
//! the whole result come every 10 s; a `SIGKILL`, an OOM kill or a pod eviction between two of them
//! would lose what was measured since. The journal closes that gap: its first line is the run's
//! header (the result as it stood when the load began), then every [`SLICE`] a line with what the
//! iterations finished since the last one did — counts, error keys and HDR-encoded latency — and every
//! second the timeline row. Lines are written by a thread of their own, flushed to the kernel as they
//! are written (a killed process loses nothing the kernel holds) and synced to disk every
//! [`SYNC_EVERY`]. Every [`COMPACT_AFTER`] lines the file is rewritten as the header and one line that
//! sums the rest, so a day-long run's journal stays the size of its result.
//!
//! [`recover`] rebuilds a result from it: counts, errors, latency and the timeline from the journal
//! (complete to the last slice written), everything the journal does not carry (per-step figures,
//! connection statistics, probes) from the last checkpoint, and thresholds judged again.

mod record;
mod recover;
mod writer;

pub use recover::{JournalError, Recovered, recover};
pub use writer::Journal;

use std::time::Duration;

use crate::metrics::TimelineRow;
use crate::metrics::recorder::Interval;

/// The journal's file name in the output folder.
pub const FILE: &str = "journal.ndjson";
/// How often a slice of measurements is written.
pub const SLICE: Duration = Duration::from_millis(20);
/// How often the journal is synced to disk.
pub const SYNC_EVERY: Duration = Duration::from_secs(2);
/// Lines after which the journal is rewritten as its header and their sum.
pub const COMPACT_AFTER: usize = 3000;

/// What the engine hands the journal while the load runs.
#[derive(Debug, Clone)]
pub enum Entry {
    /// What the iterations finished in the last slice did, `at` into the load.
    Slice { at: Duration, slice: Interval },
    /// A second of the timeline.
    Row(TimelineRow),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::RunResult;

    fn header() -> RunResult {
        serde_json::from_str(include_str!(
            "../../tests/fixtures/results/failure-injection-broken-rollback.json"
        ))
        .unwrap()
    }

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("harness-journal-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// One succeeded iteration of 2 ms and one timed out at 1 s.
    fn slice() -> Interval {
        let mut s = Interval::default();
        s.latency.record(Duration::from_millis(2), None);
        s.latency.record(Duration::from_secs(1), Some("timeout"));
        s.succeeded = 1;
        s.failed = 1;
        s.errors.insert("timeout".into(), 1);
        s
    }

    #[test]
    fn a_journal_past_its_compaction_gives_back_every_slice_and_row() {
        let d = dir("compact");
        let mut j = Journal::create(&d, &header()).unwrap();
        let slices = COMPACT_AFTER as u64 + 300;
        for i in 1..=slices {
            j.write(Entry::Slice {
                at: SLICE * i as u32,
                slice: slice(),
            });
            if i % 20 == 0 {
                j.write(Entry::Row(TimelineRow {
                    t_s: i / 20 - 1,
                    succeeded: 20,
                    failed: 20,
                    ..TimelineRow::default()
                }));
            }
        }
        assert_eq!(j.close(), None);
        let lines = std::fs::read_to_string(d.join(FILE))
            .unwrap()
            .lines()
            .count();
        assert!(
            lines < 600,
            "compacted to the header, a sum and what followed: {lines}"
        );
        let r = recover(&d).unwrap();
        assert!(!r.torn);
        let res = &r.result;
        assert_eq!(
            (
                res.totals.iterations,
                res.totals.succeeded,
                res.totals.timed_out
            ),
            (2 * slices, slices, slices)
        );
        assert_eq!(res.metrics.errors["timeout"], slices);
        assert_eq!(res.timeline.len() as u64, slices / 20);
        assert_eq!(res.metrics.latency_ms.as_ref().unwrap().count, 2 * slices);
        assert_eq!(res.metrics.latency_ok_ms.as_ref().unwrap().count, slices);
        assert_eq!(res.status, crate::result::Status::Aborted);
        assert!(
            res.reason
                .as_deref()
                .unwrap()
                .contains("recovered from the journal")
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_line_cut_off_by_the_kill_is_left_out_and_said() {
        let d = dir("torn");
        let mut j = Journal::create(&d, &header()).unwrap();
        for i in 1..=3 {
            j.write(Entry::Slice {
                at: SLICE * i,
                slice: slice(),
            });
        }
        j.close();
        drop(j);
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(d.join(FILE))
            .unwrap();
        f.write_all(br#"{"slice":{"at_ms":200,"succ"#).unwrap();
        let r = recover(&d).unwrap();
        assert!(r.torn);
        assert_eq!(r.result.totals.iterations, 6);
        assert!(r.result.notes.iter().any(|n| n.contains("cut off")));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_file_that_is_not_a_journal_is_refused() {
        let d = dir("foreign");
        std::fs::write(
            d.join(FILE),
            "{\"row\":{\"t_s\":0,\"succeeded\":1,\"failed\":0,\"late\":0}}\n",
        )
        .unwrap();
        let e = recover(&d).unwrap_err();
        assert!(
            e.to_string()
                .contains("does not start with a journal header"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
