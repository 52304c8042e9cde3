//! The delivery ledger of publish mode, checked the way Jepsen checks a set. Each publish is recorded
//! as sent, then acknowledged, failed (refused) or indeterminate (no answer); each subscriber records
//! what it received. At the end: lost (acknowledged, missing at a subscriber), duplicated, out of order
//! (older than something already received from the same publisher), unexpected (never sent, or
//! refused) and recovered (indeterminate, delivered after all); and order across subscribers (do they
//! agree?) and against real time (is what was acknowledged first delivered first?).
//!
//! A subscriber is owed only what was published while it was subscribed: from the acknowledgement of
//! its subscription until a second before it last heard from the server on that connection (what was
//! on its way when the connection went silent or broke could not arrive, and a silence the harness
//! gave up on is not a loss). Publishes outside those periods are `not_owed`, not lost.
//!
//! Publishes are keyed by iteration index (ids are `<run id>-<index>`), so the ledger is a few dense
//! arrays sized by the planned iterations: a handful of bytes per publish, whatever the timing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Instant;

use serde_json::Value;

use crate::metrics::LatencySummary;
use crate::metrics::histogram::{self, Hist};
use crate::result::ws::DeliveryReport;
use crate::scenario::WsProtocol;

const UNSENT: u8 = 0;
const SENT: u8 = 1;
const ACKED: u8 = 2;
const FAILED: u8 = 3;
const INDETERMINATE: u8 = 4;
/// Most lost ids listed in the report.
const MAX_LOST_IDS: usize = 20;
/// Most order problems described in the report.
const MAX_ORDER_SAMPLES: usize = 10;
/// Publishes sent this shortly before a subscriber's connection was found lost are not owed to it.
const IN_FLIGHT_US: u64 = 1_000_000;

/// What one subscriber received.
struct Receipts {
    counts: Vec<AtomicU8>,
    /// Highest sequence number seen per publisher.
    last_seq: Mutex<HashMap<String, u64>>,
    duplicated: AtomicU64,
    out_of_order: AtomicU64,
    unexpected: AtomicU64,
    /// Publishes in the order they first arrived.
    order: Mutex<Vec<u32>>,
    /// When it was subscribed: `(from, until)` in the ledger's microseconds; `until` is `None`
    /// while the subscription holds.
    periods: Mutex<Vec<(u64, Option<u64>)>>,
}

impl Receipts {
    fn owed(&self, sent_us: u64) -> bool {
        self.periods
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|(from, until)| {
                sent_us >= *from && until.is_none_or(|u| sent_us + IN_FLIGHT_US < u)
            })
    }
}

pub struct Ledger {
    prefix: String,
    states: Vec<AtomicU8>,
    /// Send time in microseconds since `epoch`, plus one (0: not sent).
    sent_at: Vec<AtomicU64>,
    /// Acknowledgement time, likewise (0: not acknowledged).
    acked_at: Vec<AtomicU64>,
    subscribers: Vec<Receipts>,
    latency: Mutex<Hist>,
    epoch: Instant,
}

/// How a publish ended, from the publisher's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Acknowledged,
    Failed,
    Indeterminate,
}

impl Ledger {
    /// A ledger for publishes `0..planned` with ids `<run_id>-<index>`.
    pub fn new(run_id: &str, planned: u64, subscribers: u32) -> Self {
        let n = usize::try_from(planned).unwrap_or(usize::MAX);
        let zeros8 = || (0..n).map(|_| AtomicU8::new(0)).collect::<Vec<_>>();
        Self {
            prefix: format!("{run_id}-"),
            states: zeros8(),
            sent_at: (0..n).map(|_| AtomicU64::new(0)).collect(),
            acked_at: (0..n).map(|_| AtomicU64::new(0)).collect(),
            subscribers: (0..subscribers)
                .map(|_| Receipts {
                    counts: zeros8(),
                    last_seq: Mutex::default(),
                    duplicated: AtomicU64::new(0),
                    out_of_order: AtomicU64::new(0),
                    unexpected: AtomicU64::new(0),
                    order: Mutex::default(),
                    periods: Mutex::default(),
                })
                .collect(),
            latency: Mutex::new(histogram::new_histogram()),
            epoch: Instant::now(),
        }
    }

    /// The id of publish `index`.
    pub fn id(&self, index: u64) -> String {
        format!("{}{index}", self.prefix)
    }

    fn us(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_micros() as u64 + 1
    }

    /// Subscriber `sub` is subscribed from `at` (its subscription's acknowledgement).
    pub fn subscribed(&self, sub: usize, at: Instant) {
        if let Some(r) = self.subscribers.get(sub) {
            let from = self.us(at);
            r.periods
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((from, None));
        }
    }

    /// Subscriber `sub` was found without its connection at `at`.
    pub fn unsubscribed(&self, sub: usize, at: Instant) {
        if let Some(r) = self.subscribers.get(sub) {
            let until = self.us(at);
            if let Some(last) = r
                .periods
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .last_mut()
            {
                last.1.get_or_insert(until);
            }
        }
    }

    /// Whether subscriber `r` is owed publish `i` and has not received it.
    fn missing(&self, r: &Receipts, i: usize) -> bool {
        r.counts[i].load(Ordering::Relaxed) == 0 && r.owed(self.sent_at[i].load(Ordering::Relaxed))
    }

    /// Receipts owed and missing for acknowledged publishes sent between `from` and `until`.
    pub fn lost_sent_between(&self, from: Instant, until: Instant) -> u64 {
        let (a, b) = (self.us(from), self.us(until));
        let mut lost = 0;
        for (i, s) in self.states.iter().enumerate() {
            let sent = self.sent_at[i].load(Ordering::Relaxed);
            if s.load(Ordering::Acquire) == ACKED && sent >= a && sent <= b {
                lost += self
                    .subscribers
                    .iter()
                    .filter(|r| self.missing(r, i))
                    .count() as u64;
            }
        }
        lost
    }

    fn index_of(&self, id: &str) -> Option<usize> {
        let i: usize = id.strip_prefix(&self.prefix)?.parse().ok()?;
        (i < self.states.len()).then_some(i)
    }

    pub fn sent(&self, index: u64) {
        let Some(i) = usize::try_from(index)
            .ok()
            .filter(|i| *i < self.states.len())
        else {
            return;
        };
        let at = self.us(Instant::now());
        self.sent_at[i].store(at, Ordering::Relaxed);
        self.states[i].store(SENT, Ordering::Release);
    }

    pub fn finished(&self, index: u64, outcome: Outcome) {
        let Some(i) = usize::try_from(index)
            .ok()
            .filter(|i| *i < self.states.len())
        else {
            return;
        };
        if outcome == Outcome::Acknowledged {
            self.acked_at[i].store(self.us(Instant::now()), Ordering::Relaxed);
        }
        let state = match outcome {
            Outcome::Acknowledged => ACKED,
            Outcome::Failed => FAILED,
            Outcome::Indeterminate => INDETERMINATE,
        };
        self.states[i].store(state, Ordering::Release);
    }

    /// A delivery subscriber `sub` received.
    pub fn received(&self, sub: usize, frame: &Value, protocol: &WsProtocol) {
        let Some(r) = self.subscribers.get(sub) else {
            return;
        };
        let index = frame
            .pointer(&protocol.delivery_id)
            .and_then(Value::as_str)
            .and_then(|id| self.index_of(id));
        let Some(i) = index.filter(|i| self.states[*i].load(Ordering::Acquire) != UNSENT) else {
            r.unexpected.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let before = r.counts[i]
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(c.saturating_add(1))
            })
            .unwrap_or(u8::MAX);
        if before > 0 {
            r.duplicated.fetch_add(1, Ordering::Relaxed);
            return;
        }
        r.order
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(i as u32);
        let sent = self.sent_at[i].load(Ordering::Relaxed);
        if sent > 0 {
            let now = self.epoch.elapsed().as_micros() as u64 + 1;
            histogram::record_micros(
                &mut self.latency.lock().unwrap_or_else(|p| p.into_inner()),
                now.saturating_sub(sent),
            );
        }
        let publisher = frame
            .pointer(&protocol.delivery_publisher)
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        let seq = frame
            .pointer(&protocol.delivery_seq)
            .and_then(Value::as_u64);
        if let (Some(publisher), Some(seq)) = (publisher, seq) {
            let mut last = r.last_seq.lock().unwrap_or_else(|p| p.into_inner());
            let highest = last.entry(publisher).or_insert(0);
            if seq < *highest {
                r.out_of_order.fetch_add(1, Ordering::Relaxed);
            } else {
                *highest = seq;
            }
        }
    }

    /// Receipts still owed: acknowledged publishes some subscriber has not received yet.
    pub fn outstanding(&self) -> u64 {
        let mut owed = 0;
        for (i, s) in self.states.iter().enumerate() {
            if s.load(Ordering::Acquire) == ACKED {
                owed += self
                    .subscribers
                    .iter()
                    .filter(|r| self.missing(r, i))
                    .count() as u64;
            }
        }
        owed
    }

    /// The final check.
    pub fn report(&self) -> (DeliveryReport, Option<f64>, Option<LatencySummary>) {
        let mut rep = DeliveryReport {
            subscribers: self.subscribers.len() as u64,
            ..DeliveryReport::default()
        };
        for (i, s) in self.states.iter().enumerate() {
            let state = s.load(Ordering::Acquire);
            if state == UNSENT {
                continue;
            }
            rep.published += 1;
            let got = |r: &Receipts| r.counts[i].load(Ordering::Relaxed) > 0;
            match state {
                ACKED => {
                    rep.acknowledged += 1;
                    let sent = self.sent_at[i].load(Ordering::Relaxed);
                    for r in &self.subscribers {
                        if got(r) {
                            rep.expected += 1;
                            rep.received += 1;
                        } else if r.owed(sent) {
                            rep.expected += 1;
                            rep.lost += 1;
                            if rep.lost_ids.len() < MAX_LOST_IDS {
                                rep.lost_ids.push(self.id(i as u64));
                            }
                        } else {
                            rep.not_owed += 1;
                        }
                    }
                }
                FAILED => {
                    rep.failed += 1;
                    rep.unexpected += self.subscribers.iter().filter(|r| got(r)).count() as u64;
                }
                _ => {
                    // SENT with no outcome (cut off by the end of the run) counts as indeterminate.
                    rep.indeterminate += 1;
                    if self.subscribers.iter().any(got) {
                        rep.recovered += 1;
                    }
                }
            }
        }
        for r in &self.subscribers {
            rep.duplicated += r.duplicated.load(Ordering::Relaxed);
            rep.out_of_order += r.out_of_order.load(Ordering::Relaxed);
            rep.unexpected += r.unexpected.load(Ordering::Relaxed);
        }
        self.order_checks(&mut rep);
        let rate = (rep.expected > 0).then(|| rep.received as f64 / rep.expected as f64);
        let latency = LatencySummary::of(&self.latency.lock().unwrap_or_else(|p| p.into_inner()));
        (rep, rate, latency)
    }
}

impl Ledger {
    /// Order across subscribers and against real time. **Agreement**: every subscriber saw the
    /// publishes it shares with the first subscriber in the same order (each adjacent pair the other
    /// way round is one disagreement). **Real-time order**: a publish acknowledged before another was
    /// sent is delivered before it (each receipt that arrives ahead of one acknowledged before it was
    /// sent is one violation).
    fn order_checks(&self, rep: &mut DeliveryReport) {
        let orders: Vec<Vec<u32>> = self
            .subscribers
            .iter()
            .map(|r| r.order.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect();
        let id = |i: u32| self.id(u64::from(i));
        if let Some(reference) = orders.first() {
            let mut position = vec![u32::MAX; self.states.len()];
            for (p, i) in reference.iter().enumerate() {
                position[*i as usize] = p as u32;
            }
            for (s, order) in orders.iter().enumerate().skip(1) {
                let shared: Vec<u32> = order
                    .iter()
                    .copied()
                    .filter(|i| position[*i as usize] != u32::MAX)
                    .collect();
                for pair in shared.windows(2) {
                    if position[pair[0] as usize] > position[pair[1] as usize] {
                        rep.order_disagreements += 1;
                        if rep.order_samples.len() < MAX_ORDER_SAMPLES {
                            rep.order_samples.push(format!(
                                "subscriber {s} received {} before {}; subscriber 0 the other way round",
                                id(pair[0]),
                                id(pair[1])
                            ));
                        }
                    }
                }
            }
        }
        for (s, order) in orders.iter().enumerate() {
            // From the end: the earliest acknowledgement among what this subscriber received later.
            let mut earliest: Option<(u64, u32)> = None;
            for i in order.iter().rev() {
                let sent = self.sent_at[*i as usize].load(Ordering::Relaxed);
                if let Some((acked, later)) = earliest
                    && sent > 0
                    && acked < sent
                {
                    rep.real_time_violations += 1;
                    if rep.order_samples.len() < MAX_ORDER_SAMPLES {
                        rep.order_samples.push(format!(
                            "subscriber {s} received {} before {}, which was acknowledged before {0} was sent",
                            id(*i),
                            id(later)
                        ));
                    }
                }
                let acked = self.acked_at[*i as usize].load(Ordering::Relaxed);
                if acked > 0 && earliest.is_none_or(|(e, _)| acked < e) {
                    earliest = Some((acked, *i));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn delivery(id: &str, publisher: &str, seq: u64) -> Value {
        json!({"type": "message", "data": {"id": id, "publisher": publisher, "seq": seq}})
    }

    #[test]
    fn the_set_check_tells_lost_duplicated_out_of_order_and_unexpected_apart() {
        let p = WsProtocol::default();
        let l = Ledger::new("r1", 6, 2);
        l.subscribed(0, Instant::now());
        l.subscribed(1, Instant::now());
        for i in 0..5 {
            l.sent(i);
        }
        for i in 0..3 {
            l.finished(i, Outcome::Acknowledged);
        }
        l.finished(3, Outcome::Failed);
        l.finished(4, Outcome::Indeterminate);
        // Subscriber 0 gets 0, 1, 2 (2 twice) and the refused 3; subscriber 1 gets 1 then 0, misses 2.
        for (id, seq) in [
            ("r1-0", 1),
            ("r1-1", 2),
            ("r1-2", 3),
            ("r1-2", 3),
            ("r1-3", 4),
        ] {
            l.received(0, &delivery(id, "a", seq), &p);
        }
        l.received(1, &delivery("r1-1", "a", 2), &p);
        l.received(1, &delivery("r1-0", "a", 1), &p);
        l.received(1, &delivery("r1-4", "a", 5), &p);
        l.received(1, &delivery("someone-else", "b", 1), &p);
        l.received(1, &delivery("r1-5", "a", 6), &p);
        assert_eq!(l.outstanding(), 1);
        let (rep, rate, latency) = l.report();
        assert_eq!(rep.published, 5);
        assert_eq!((rep.acknowledged, rep.failed, rep.indeterminate), (3, 1, 1));
        assert_eq!(rep.expected, 6);
        assert_eq!(rep.received, 5);
        assert_eq!(rep.lost, 1);
        assert_eq!(rep.lost_ids, vec!["r1-2".to_string()]);
        assert_eq!(rep.duplicated, 1);
        assert_eq!(rep.out_of_order, 1);
        assert_eq!(
            rep.unexpected, 3,
            "the refused one, an id not ours, one never sent"
        );
        assert_eq!(rep.recovered, 1);
        assert_eq!(rate, Some(5.0 / 6.0));
        assert_eq!(latency.map(|l| l.count), Some(7));
    }

    #[test]
    fn subscribers_that_disagree_on_order_and_a_late_delivery_are_told() {
        let p = WsProtocol::default();
        let l = Ledger::new("o", 4, 2);
        // 0 and 1 acknowledged before 2 and 3 were sent; 2 and 3 concurrent.
        for i in 0..2 {
            l.sent(i);
            l.finished(i, Outcome::Acknowledged);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
        l.sent(2);
        l.sent(3);
        l.finished(2, Outcome::Acknowledged);
        l.finished(3, Outcome::Acknowledged);
        // Different publishers, so per-publisher order sees nothing.
        for (s, order) in [(0, [0, 1, 2, 3]), (1, [0, 2, 1, 3])] {
            l.subscribed(s, Instant::now());
            for i in order {
                l.received(s, &delivery(&format!("o-{i}"), &format!("p{i}"), 1), &p);
            }
        }
        let (rep, _, _) = l.report();
        assert_eq!(rep.out_of_order, 0);
        assert_eq!(rep.order_disagreements, 1, "{:?}", rep.order_samples);
        assert_eq!(rep.real_time_violations, 1, "{:?}", rep.order_samples);
        assert_eq!(
            rep.order_samples,
            vec![
                "subscriber 1 received o-2 before o-1; subscriber 0 the other way round",
                "subscriber 1 received o-2 before o-1, which was acknowledged before o-2 was sent",
            ]
        );
    }

    #[test]
    fn only_what_a_subscriber_was_subscribed_for_is_owed() {
        let p = WsProtocol::default();
        let l = Ledger::new("r", 4, 1);
        l.sent(0);
        l.finished(0, Outcome::Acknowledged);
        l.subscribed(0, Instant::now());
        l.sent(1);
        l.finished(1, Outcome::Acknowledged);
        l.sent(2);
        l.finished(2, Outcome::Acknowledged);
        // The connection is found lost right after publish 2: it was still in flight.
        l.unsubscribed(0, Instant::now());
        l.subscribed(0, Instant::now() + std::time::Duration::from_secs(2));
        l.received(0, &delivery("r-1", "a", 2), &p);
        let (rep, rate, _) = l.report();
        assert_eq!(
            (rep.expected, rep.received, rep.lost, rep.not_owed),
            (1, 1, 0, 2)
        );
        assert_eq!(rate, Some(1.0));
        assert_eq!(l.outstanding(), 0);
    }
}
