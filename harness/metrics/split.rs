//! Latencies of succeeded and failed iterations kept apart. A refused connection fails in a tenth of
//! a millisecond; mixed with the answers of a healthy service it makes the service look fastest just
//! while it is down. So every latency is recorded by outcome — successes in one histogram, failures
//! in one per error kind — and "all iterations" is their sum, made when asked for (no histogram is
//! kept twice).

use std::collections::BTreeMap;
use std::time::Duration;

use super::histogram::{Hist, merge, new_histogram, record};

#[derive(Debug, Clone)]
pub struct Split {
    ok: Hist,
    /// Failed iterations by error kind (`connect`, `timeout`, …).
    failed: BTreeMap<&'static str, Hist>,
}

impl Default for Split {
    fn default() -> Self {
        Self {
            ok: new_histogram(),
            failed: BTreeMap::new(),
        }
    }
}

impl Split {
    /// Records `d` for a success (`failed` is `None`) or a failure of that kind.
    pub fn record(&mut self, d: Duration, failed: Option<&'static str>) {
        match failed {
            None => record(&mut self.ok, d),
            Some(kind) => record(self.failed.entry(kind).or_insert_with(new_histogram), d),
        }
    }

    /// Succeeded iterations.
    pub fn ok(&self) -> &Hist {
        &self.ok
    }

    /// Failed iterations, by error kind.
    pub fn failed_by_kind(&self) -> &BTreeMap<&'static str, Hist> {
        &self.failed
    }

    /// Failed iterations, every kind.
    pub fn failed(&self) -> Hist {
        let mut h = new_histogram();
        for f in self.failed.values() {
            merge(&mut h, f);
        }
        h
    }

    /// Every iteration.
    pub fn all(&self) -> Hist {
        let mut h = self.ok.clone();
        for f in self.failed.values() {
            merge(&mut h, f);
        }
        h
    }

    pub fn is_empty(&self) -> bool {
        self.ok.is_empty() && self.failed.values().all(Hist::is_empty)
    }

    /// Adds `o` into this.
    pub fn absorb(&mut self, o: &Split) {
        merge(&mut self.ok, &o.ok);
        for (kind, h) in &o.failed {
            merge(self.failed.entry(kind).or_insert_with(new_histogram), h);
        }
    }

    /// Empties it, keeping its allocations.
    pub fn reset(&mut self) {
        self.ok.reset();
        for h in self.failed.values_mut() {
            h.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_the_sum_of_ok_and_failed() {
        let mut a = Split::default();
        a.record(Duration::from_millis(10), None);
        a.record(Duration::from_micros(100), Some("connect"));
        let mut b = Split::default();
        b.record(Duration::from_millis(12), None);
        b.record(Duration::from_secs(1), Some("timeout"));
        a.absorb(&b);
        assert_eq!((a.ok().len(), a.failed().len(), a.all().len()), (2, 2, 4));
        assert_eq!(
            a.failed_by_kind().keys().copied().collect::<Vec<_>>(),
            ["connect", "timeout"]
        );
        a.reset();
        assert!(a.is_empty());
    }
}
