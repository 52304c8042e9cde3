//! Who is connected and subscribed to what, each connection's capped send queue, and the server's
//! counters.
//!
//! Nothing here ever waits on a connection: frames are offered to a peer's queue and dropped (and
//! counted) when it is full, so one consumer that stops reading cannot slow the others. A peer whose
//! queue has stayed full for longer than the grace period is marked for disconnection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A frame waiting in a connection's send queue.
#[derive(Debug)]
pub enum Outbound {
    Text(String),
    /// Send a close frame, then stop.
    Close(u16, String),
}

/// The server's counters, as `GET /metrics` shows them.
#[derive(Debug, Default)]
pub struct Counters {
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    pub messages_received: AtomicU64,
    pub messages_sent: AtomicU64,
    /// Frames not delivered: the receiver's queue was full, or chaos or a defect dropped them.
    pub dropped: AtomicU64,
    pub disconnected_slow: AtomicU64,
    pub rate_limited: AtomicU64,
    pub closed_for_abuse: AtomicU64,
    pub closed_too_large: AtomicU64,
    pub errors_sent: AtomicU64,
}

#[derive(Debug, Serialize)]
pub struct CounterSnapshot {
    pub connections_open: u64,
    pub connections_total: u64,
    pub messages_received: u64,
    pub messages_sent: u64,
    pub dropped: u64,
    pub disconnected_slow: u64,
    pub rate_limited: u64,
    pub closed_for_abuse: u64,
    pub closed_too_large: u64,
    pub errors_sent: u64,
    pub subscriptions: u64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One connection as the rest of the server sees it.
pub struct Peer {
    pub id: u64,
    queue: mpsc::Sender<Outbound>,
    /// When the queue was first seen full, while it stays full.
    full_since: Mutex<Option<Instant>>,
    grace: Duration,
    /// Test-only defect: never disconnect a slow consumer.
    keep_slow: bool,
    /// Cancelled to disconnect the peer as a slow consumer.
    pub evicted: CancellationToken,
}

impl Peer {
    pub fn new(
        id: u64,
        queue: mpsc::Sender<Outbound>,
        grace: Duration,
        keep_slow: bool,
    ) -> Arc<Self> {
        Arc::new(Self {
            id,
            queue,
            full_since: Mutex::new(None),
            grace,
            keep_slow,
            evicted: CancellationToken::new(),
        })
    }

    /// Queues a frame without waiting; false (and counted as dropped) when the queue is full.
    pub fn offer(&self, frame: Outbound, counters: &Counters) -> bool {
        match self.queue.try_send(frame) {
            Ok(()) => {
                *self.full_since.lock().unwrap_or_else(|p| p.into_inner()) = None;
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                Counters::bump(&counters.dropped);
                self.check_stalled(Instant::now());
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues a frame, waiting for room (the blocking-fanout defect); false once the peer has gone.
    pub async fn deliver_waiting(&self, frame: Outbound) -> bool {
        self.queue.send(frame).await.is_ok()
    }

    /// Marks the peer for disconnection when its queue has been full for longer than the grace.
    pub fn check_stalled(&self, now: Instant) {
        let mut since = self.full_since.lock().unwrap_or_else(|p| p.into_inner());
        if self.queue.capacity() > 0 {
            *since = None;
            return;
        }
        let first = *since.get_or_insert(now);
        if now.saturating_duration_since(first) > self.grace && !self.keep_slow {
            self.evicted.cancel();
        }
    }
}

/// Subscriptions by normalised path.
#[derive(Default)]
pub struct Hub {
    topics: Mutex<HashMap<String, Vec<Arc<Peer>>>>,
}

impl Hub {
    pub fn subscribe(&self, path: &str, peer: &Arc<Peer>) {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        let subs = topics.entry(path.to_string()).or_default();
        if !subs.iter().any(|p| p.id == peer.id) {
            subs.push(Arc::clone(peer));
        }
    }

    pub fn unsubscribe(&self, path: &str, peer_id: u64) {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(subs) = topics.get_mut(path) {
            subs.retain(|p| p.id != peer_id);
            if subs.is_empty() {
                topics.remove(path);
            }
        }
    }

    /// Drops every subscription of a peer that has gone.
    pub fn forget(&self, peer_id: u64) {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        topics.retain(|_, subs| {
            subs.retain(|p| p.id != peer_id);
            !subs.is_empty()
        });
    }

    pub fn subscribers(&self, path: &str) -> Vec<Arc<Peer>> {
        self.topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    pub fn subscription_count(&self) -> u64 {
        self.topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|s| s.len() as u64)
            .sum()
    }
}

impl Counters {
    pub fn snapshot(&self, hub: &Hub) -> CounterSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            connections_open: g(&self.connections_open),
            connections_total: g(&self.connections_total),
            messages_received: g(&self.messages_received),
            messages_sent: g(&self.messages_sent),
            dropped: g(&self.dropped),
            disconnected_slow: g(&self.disconnected_slow),
            rate_limited: g(&self.rate_limited),
            closed_for_abuse: g(&self.closed_for_abuse),
            closed_too_large: g(&self.closed_too_large),
            errors_sent: g(&self.errors_sent),
            subscriptions: hub.subscription_count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_evicts_after_the_grace() {
        let (tx, _rx) = mpsc::channel(2);
        let peer = Peer::new(1, tx, Duration::from_millis(100), false);
        let counters = Counters::default();
        assert!(peer.offer(Outbound::Text("a".into()), &counters));
        assert!(peer.offer(Outbound::Text("b".into()), &counters));
        assert!(!peer.offer(Outbound::Text("c".into()), &counters));
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 1);
        assert!(!peer.evicted.is_cancelled(), "within the grace");
        peer.check_stalled(Instant::now() + Duration::from_millis(150));
        assert!(peer.evicted.is_cancelled());
    }

    #[test]
    fn the_keep_slow_defect_never_evicts() {
        let (tx, _rx) = mpsc::channel(1);
        let peer = Peer::new(1, tx, Duration::ZERO, true);
        let counters = Counters::default();
        peer.offer(Outbound::Text("a".into()), &counters);
        peer.check_stalled(Instant::now());
        peer.check_stalled(Instant::now() + Duration::from_secs(60));
        assert!(!peer.evicted.is_cancelled());
    }

    #[test]
    fn subscriptions_are_per_path_and_forgotten_with_the_peer() {
        let hub = Hub::default();
        let (tx, _rx) = mpsc::channel(1);
        let a = Peer::new(1, tx.clone(), Duration::ZERO, false);
        let b = Peer::new(2, tx, Duration::ZERO, false);
        hub.subscribe("/x", &a);
        hub.subscribe("/x", &a);
        hub.subscribe("/x", &b);
        hub.subscribe("/y", &a);
        assert_eq!(hub.subscribers("/x").len(), 2);
        hub.forget(1);
        assert_eq!(hub.subscribers("/x").len(), 1);
        assert!(hub.subscribers("/y").is_empty());
        assert_eq!(hub.subscription_count(), 1);
    }
}
