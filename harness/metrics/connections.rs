//! What a set of WebSocket connections did beside the iterations: handshakes (and the ones that
//! failed), reconnects, frames sent and received, frames without a correlation id, close codes, and
//! the handshake, ping and reconnect histograms. Plain counts and histograms kept in a [`Recorder`]
//! like every other measurement, so they merge by addition and reach checkpoints and merged shards.
//!
//! [`Recorder`]: super::Recorder

use std::collections::BTreeMap;
use std::time::Duration;

use super::histogram::{Hist, merge, new_histogram, record, record_micros};

/// How many frames without a correlation id are kept as examples.
pub const UNCORRELATED_SAMPLES: usize = 5;

/// How long opening one connection took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// From the TCP connect to the end of the set-up (upgrade, on-connect replies).
    pub took: Duration,
    /// The TLS handshake's share of it.
    pub tls: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct ConnectionStats {
    /// Handshakes completed.
    pub connections: u64,
    pub failed_connections: u64,
    /// Connections opened again after they were lost.
    pub reconnects: u64,
    pub sent: u64,
    pub received: u64,
    pub without_correlation: u64,
    /// The first few of those frames, shortened and escaped, each with what was wrong.
    pub uncorrelated_samples: Vec<String>,
    /// Replies carrying the id of a request that had stopped waiting (timed out).
    pub late_replies: u64,
    pub close_codes: BTreeMap<u16, u64>,
    /// TCP connect, TLS handshake (wss) and upgrade.
    pub connect: Hist,
    /// The TLS handshake alone (wss).
    pub tls_handshake: Hist,
    /// Ping to pong.
    pub ping: Hist,
    /// Application-level ping to its pong.
    pub app_ping: Hist,
    /// Application-level pings with no pong within their interval.
    pub app_ping_unanswered: u64,
    /// The server's clock against ours, from the pongs that carry it.
    pub clock_offset: ClockOffset,
    /// From losing a connection to having it back.
    pub reconnect: Hist,
}

impl Default for ConnectionStats {
    fn default() -> Self {
        Self {
            connections: 0,
            failed_connections: 0,
            reconnects: 0,
            sent: 0,
            received: 0,
            without_correlation: 0,
            uncorrelated_samples: Vec::new(),
            late_replies: 0,
            close_codes: BTreeMap::new(),
            connect: new_histogram(),
            tls_handshake: new_histogram(),
            ping: new_histogram(),
            app_ping: new_histogram(),
            app_ping_unanswered: 0,
            clock_offset: ClockOffset::default(),
            reconnect: new_histogram(),
        }
    }
}

impl ConnectionStats {
    /// A connection that took `opened.took` to open, `opened.tls` of it its TLS handshake.
    pub fn handshake(&mut self, opened: Opened) {
        self.connections += 1;
        record(&mut self.connect, opened.took);
        if let Some(tls) = opened.tls {
            record(&mut self.tls_handshake, tls);
        }
    }

    pub fn connect_failed(&mut self) {
        self.failed_connections += 1;
    }

    /// A lost connection is back after `took`.
    pub fn reconnected(&mut self, took: Duration) {
        self.reconnects += 1;
        record(&mut self.reconnect, took);
    }

    pub fn ping(&mut self, micros: u64) {
        record_micros(&mut self.ping, micros);
    }

    pub fn app_ping(&mut self, micros: u64) {
        record_micros(&mut self.app_ping, micros);
    }

    /// A frame that lacked a usable correlation id: `sample` says which, and why.
    pub fn uncorrelated(&mut self, sample: impl FnOnce() -> String) {
        self.without_correlation += 1;
        if self.uncorrelated_samples.len() < UNCORRELATED_SAMPLES {
            self.uncorrelated_samples.push(sample());
        }
    }

    pub fn close_code(&mut self, code: u16) {
        *self.close_codes.entry(code).or_default() += 1;
    }

    /// Adds `o` into these.
    pub fn absorb(&mut self, o: &ConnectionStats) {
        self.connections += o.connections;
        self.failed_connections += o.failed_connections;
        self.reconnects += o.reconnects;
        self.sent += o.sent;
        self.received += o.received;
        self.without_correlation += o.without_correlation;
        for sample in &o.uncorrelated_samples {
            if self.uncorrelated_samples.len() < UNCORRELATED_SAMPLES {
                self.uncorrelated_samples.push(sample.clone());
            }
        }
        self.late_replies += o.late_replies;
        for (code, n) in &o.close_codes {
            *self.close_codes.entry(*code).or_default() += n;
        }
        merge(&mut self.connect, &o.connect);
        merge(&mut self.tls_handshake, &o.tls_handshake);
        merge(&mut self.ping, &o.ping);
        merge(&mut self.app_ping, &o.app_ping);
        self.app_ping_unanswered += o.app_ping_unanswered;
        self.clock_offset.absorb(&o.clock_offset);
        merge(&mut self.reconnect, &o.reconnect);
    }
}

/// How far the server's clock is from ours, in microseconds (positive: the server is ahead), each
/// sample the server's time in a pong less the middle of its round trip on our clock. Kept as a
/// count, a sum and the extremes, so it merges by addition; an offset can be negative, which a
/// histogram cannot hold.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClockOffset {
    pub samples: u64,
    pub sum_us: i64,
    pub min_us: i64,
    pub max_us: i64,
}

impl ClockOffset {
    pub fn record(&mut self, offset_us: i64) {
        if self.samples == 0 {
            self.min_us = offset_us;
            self.max_us = offset_us;
        } else {
            self.min_us = self.min_us.min(offset_us);
            self.max_us = self.max_us.max(offset_us);
        }
        self.samples += 1;
        self.sum_us = self.sum_us.saturating_add(offset_us);
    }

    pub fn absorb(&mut self, o: &ClockOffset) {
        if o.samples == 0 {
            return;
        }
        if self.samples == 0 {
            *self = *o;
            return;
        }
        self.samples += o.samples;
        self.sum_us = self.sum_us.saturating_add(o.sum_us);
        self.min_us = self.min_us.min(o.min_us);
        self.max_us = self.max_us.max(o.max_us);
    }

    /// The mean offset in microseconds, if there were samples.
    pub fn mean_us(&self) -> Option<f64> {
        (self.samples > 0).then(|| self.sum_us as f64 / self.samples as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_stats_merge_by_addition() {
        let mut a = ConnectionStats::default();
        a.handshake(Opened {
            took: Duration::from_millis(2),
            tls: Some(Duration::from_millis(1)),
        });
        a.sent += 3;
        a.close_code(1008);
        let mut b = ConnectionStats::default();
        b.handshake(Opened {
            took: Duration::from_millis(4),
            tls: None,
        });
        b.reconnected(Duration::from_millis(100));
        b.received += 5;
        b.close_code(1008);
        a.absorb(&b);
        assert_eq!((a.connections, a.reconnects), (2, 1));
        assert_eq!((a.sent, a.received), (3, 5));
        assert_eq!(a.close_codes[&1008], 2);
        assert_eq!((a.connect.len(), a.reconnect.len()), (2, 1));
        assert_eq!(
            a.tls_handshake.len(),
            1,
            "only the TLS connection has a TLS handshake"
        );
    }

    #[test]
    fn clock_offsets_merge_into_count_mean_and_extremes() {
        let mut a = ClockOffset::default();
        a.record(-3_000);
        a.record(1_000);
        let mut b = ClockOffset::default();
        b.record(5_000);
        let mut empty = ClockOffset::default();
        empty.absorb(&a);
        empty.absorb(&b);
        empty.absorb(&ClockOffset::default());
        assert_eq!(
            (empty.samples, empty.min_us, empty.max_us, empty.mean_us()),
            (3, -3_000, 5_000, Some(1_000.0))
        );
    }
}
