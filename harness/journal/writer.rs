//! Writes the journal on a thread of its own, so the engine's clock never waits on a disk.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use super::record::{Record, Sum, VERSION, slice_record};
use super::{COMPACT_AFTER, Entry, FILE, SYNC_EVERY};
use crate::metrics::TimelineRow;
use crate::result::RunResult;

/// An open journal. Dropping it stops the writer thread and leaves the file; [`Journal::discard`]
/// removes it once the final result is safely written.
pub struct Journal {
    tx: Option<Sender<Entry>>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
    /// The first write error, if any (the journal then stops; the run goes on).
    error: Arc<Mutex<Option<String>>>,
}

impl Journal {
    /// Creates `dir/journal.ndjson` with its header line, synced, and starts the writer.
    pub fn create(dir: &Path, header: &RunResult) -> std::io::Result<Self> {
        let path = dir.join(FILE);
        let header = Record::Header {
            journal: VERSION,
            result: Box::new(header.clone()),
        };
        let header_line = line(&header)?;
        let mut file = BufWriter::new(File::create(&path)?);
        file.write_all(&header_line)?;
        file.flush()?;
        file.get_ref().sync_all()?;
        let (tx, rx) = mpsc::channel();
        let error = Arc::new(Mutex::new(None));
        let mut state = State {
            file,
            path: path.clone(),
            header_line,
            lines: 0,
            rows: Vec::new(),
            sum: Sum::default(),
            synced: Instant::now(),
        };
        let err = Arc::clone(&error);
        let thread = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || {
                if let Err(e) = state.run(rx) {
                    *err.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                }
            })?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            path,
            error,
        })
    }

    pub fn write(&self, entry: Entry) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(entry);
        }
    }

    /// Writes what is queued, syncs, and stops the writer; the first write error, if there was one.
    pub fn close(&mut self) -> Option<String> {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Closes the journal and removes it: the run's final result holds everything it did.
    pub fn discard(mut self) {
        self.close();
        let _ = std::fs::remove_file(&self.path);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

fn line(record: &Record) -> std::io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec(record)?;
    bytes.push(b'\n');
    Ok(bytes)
}

struct State {
    file: BufWriter<File>,
    path: PathBuf,
    header_line: Vec<u8>,
    /// Lines since the header (or the last compaction).
    lines: usize,
    /// Everything written so far, for compaction.
    rows: Vec<TimelineRow>,
    sum: Sum,
    synced: Instant,
}

impl State {
    fn run(&mut self, rx: Receiver<Entry>) -> std::io::Result<()> {
        while let Ok(entry) = rx.recv() {
            let record = match entry {
                Entry::Slice { at, slice } => {
                    let at_ms = at.as_millis() as u64;
                    self.sum.add_interval(at_ms, &slice);
                    Record::Slice(slice_record(at_ms, &slice))
                }
                Entry::Row(row) => {
                    self.rows.push(row.clone());
                    Record::Row(row)
                }
            };
            self.file.write_all(&line(&record)?)?;
            // Into the kernel at once: a killed process loses nothing written.
            self.file.flush()?;
            self.lines += 1;
            if self.lines >= COMPACT_AFTER {
                self.compact()?;
            } else if self.synced.elapsed() >= SYNC_EVERY {
                self.file.get_ref().sync_data()?;
                self.synced = Instant::now();
            }
        }
        self.file.flush()?;
        self.file.get_ref().sync_data()
    }

    /// Rewrites the journal as its header and one line summing the rest: written beside it, synced,
    /// then renamed over it, so a kill at any moment leaves one whole journal or the other.
    fn compact(&mut self) -> std::io::Result<()> {
        let tmp = self.path.with_extension("ndjson.tmp");
        let compact = Record::Compact {
            rows: self.rows.clone(),
            slice: self.sum.record(),
        };
        {
            let mut f = BufWriter::new(File::create(&tmp)?);
            f.write_all(&self.header_line)?;
            f.write_all(&line(&compact)?)?;
            f.flush()?;
            f.get_ref().sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        self.file = BufWriter::new(OpenOptions::new().append(true).open(&self.path)?);
        self.lines = 0;
        self.synced = Instant::now();
        Ok(())
    }
}
