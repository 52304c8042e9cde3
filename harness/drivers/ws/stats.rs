//! Where the connections of a WebSocket run record what they do. Each source of events — a pool
//! connection's slot, a subscriber, the probes — has a [`Tally`] of its own: a [`Recorder`] like the
//! workers', merged with theirs by addition, so connection statistics reach checkpoints and merged
//! results the way iteration figures do. The one figure that is not a sum, the most connections open
//! at once, is a [`Gauge`] the run's connections share.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::metrics::{ConnectionStats, Recorder};

/// One source's recorder.
pub type Tally = Arc<Mutex<Recorder>>;

/// A fresh tally.
pub fn tally() -> Tally {
    Arc::new(Mutex::new(Recorder::new(0, 0, 0)))
}

/// Records into `tally`'s connection statistics.
pub fn note(tally: &Tally, f: impl FnOnce(&mut ConnectionStats)) {
    f(tally
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .connections());
}

/// Connections open now, and the most open at once.
#[derive(Debug, Default)]
pub struct Gauge {
    open: AtomicU64,
    peak: AtomicU64,
}

impl Gauge {
    pub fn opened(&self) {
        let now = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    pub fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn open_now(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}
