//! Counters and histograms every connection of a websocket run adds to: connections opened and open,
//! frames sent and received, frames without a correlation id, close codes, and the handshake and
//! ping histograms. A few atomics and two mutexed histograms; nothing grows with the run's length.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::metrics::LatencySummary;
use crate::metrics::histogram::{self, Hist, encode};
use crate::result::WsMetrics;

pub struct WsStats {
    connect: Mutex<Hist>,
    ping: Mutex<Hist>,
    reconnect: Mutex<Hist>,
    connections: AtomicU64,
    failed_connections: AtomicU64,
    reconnects: AtomicU64,
    open: AtomicU64,
    peak: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    without_correlation: AtomicU64,
    close_codes: Mutex<BTreeMap<u16, u64>>,
}

impl Default for WsStats {
    fn default() -> Self {
        Self {
            connect: Mutex::new(histogram::new_histogram()),
            ping: Mutex::new(histogram::new_histogram()),
            reconnect: Mutex::new(histogram::new_histogram()),
            connections: AtomicU64::new(0),
            failed_connections: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            open: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            without_correlation: AtomicU64::new(0),
            close_codes: Mutex::default(),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl WsStats {
    pub fn handshake(&self, took: Duration) {
        bump(&self.connections);
        histogram::record(
            &mut self.connect.lock().unwrap_or_else(|p| p.into_inner()),
            took,
        );
    }

    pub fn connect_failed(&self) {
        bump(&self.failed_connections);
    }

    pub fn reconnected(&self) {
        bump(&self.reconnects);
    }

    /// A lost connection is back after `took`.
    pub fn reconnect(&self, took: Duration) {
        histogram::record(
            &mut self.reconnect.lock().unwrap_or_else(|p| p.into_inner()),
            took,
        );
    }

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

    pub fn sent(&self) {
        bump(&self.sent);
    }

    pub fn received(&self) {
        bump(&self.received);
    }

    pub fn without_correlation(&self) {
        bump(&self.without_correlation);
    }

    pub fn frames_without_correlation(&self) -> u64 {
        self.without_correlation.load(Ordering::Relaxed)
    }

    pub fn ping(&self, micros: u64) {
        histogram::record_micros(
            &mut self.ping.lock().unwrap_or_else(|p| p.into_inner()),
            micros,
        );
    }

    pub fn close_code(&self, code: u16) {
        *self
            .close_codes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(code)
            .or_default() += 1;
    }

    /// The counters as `metrics.ws` (delivery and slow-consumer parts are filled by their owners).
    pub fn metrics(&self) -> WsMetrics {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let connect = self.connect.lock().unwrap_or_else(|p| p.into_inner());
        let ping = self.ping.lock().unwrap_or_else(|p| p.into_inner());
        WsMetrics {
            connections: g(&self.connections),
            peak_connections: g(&self.peak),
            failed_connections: g(&self.failed_connections),
            reconnects: g(&self.reconnects),
            messages_sent: g(&self.sent),
            messages_received: g(&self.received),
            frames_without_correlation: g(&self.without_correlation),
            connect_ms: LatencySummary::of(&connect),
            connect_hdr: (!connect.is_empty()).then(|| encode(&connect)),
            ping_ms: LatencySummary::of(&ping),
            reconnect_ms: LatencySummary::of(
                &self.reconnect.lock().unwrap_or_else(|p| p.into_inner()),
            ),
            close_codes: self
                .close_codes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            ..WsMetrics::default()
        }
    }
}
