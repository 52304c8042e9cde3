//! The history check for any API, the way Jepsen checks a set: every write an iteration attempted
//! (add element E to the collection at key K) is recorded with what the service answered, and after
//! the run each collection is read back. Then:
//! - **lost**: acknowledged, and not stored;
//! - **duplicated**: stored more times than it was ever attempted;
//! - **unexpected**: stored, and never attempted;
//! - **indeterminate** writes (no answer, a 5xx, a timeout) may be stored or not: neither is a
//!   violation.
//!
//! Elements are compared as text, so a write and its read-back must render the same string (a
//! number read back is compared as its JSON text).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Longest list of findings kept in a result; the counts are always exact.
const MAX_DETAILS: usize = 20;

/// One write an iteration attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub key: String,
    pub element: String,
    /// The service acknowledged it (the step succeeded); otherwise its outcome is unknown.
    pub acknowledged: bool,
}

/// What `metrics.history` in `result.json` says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HistoryReport {
    /// Collections read back.
    pub keys: u64,
    pub acknowledged: u64,
    /// Writes without a clear answer: they may or may not have taken effect.
    pub indeterminate: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub unexpected: u64,
    /// Collections whose read-back failed; their writes are not judged.
    pub unreadable: u64,
    /// The first findings, in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

impl HistoryReport {
    /// Lost, duplicated and unexpected together.
    pub fn violations(&self) -> u64 {
        self.lost + self.duplicated + self.unexpected
    }
}

/// The keys of `writes`, each once, in order.
pub fn keys(writes: &[Write]) -> Vec<String> {
    let mut keys: Vec<String> = writes.iter().map(|w| w.key.clone()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Checks `writes` against what each key's read-back found (`Err`: it could not be read).
pub fn check(
    writes: &[Write],
    stored: &BTreeMap<String, Result<Vec<String>, String>>,
) -> HistoryReport {
    #[derive(Default)]
    struct Tally {
        acknowledged: u64,
        attempted: u64,
    }
    let mut by_key: BTreeMap<&str, BTreeMap<&str, Tally>> = BTreeMap::new();
    let mut report = HistoryReport::default();
    for w in writes {
        let t = by_key
            .entry(&w.key)
            .or_default()
            .entry(&w.element)
            .or_default();
        t.attempted += 1;
        if w.acknowledged {
            t.acknowledged += 1;
            report.acknowledged += 1;
        } else {
            report.indeterminate += 1;
        }
    }
    let mut details = Vec::new();
    let mut note = |text: String| {
        if details.len() < MAX_DETAILS {
            details.push(text);
        }
    };
    for (key, elements) in &by_key {
        report.keys += 1;
        let found = match stored.get(*key) {
            Some(Ok(found)) => found,
            Some(Err(why)) => {
                report.unreadable += 1;
                note(format!("{key}: could not be read back: {why}"));
                continue;
            }
            None => {
                report.unreadable += 1;
                note(format!("{key}: was not read back"));
                continue;
            }
        };
        let mut count: BTreeMap<&str, u64> = BTreeMap::new();
        for e in found {
            *count.entry(e).or_default() += 1;
        }
        for (element, t) in elements {
            let n = count.get(element).copied().unwrap_or(0);
            if t.acknowledged > 0 && n == 0 {
                report.lost += 1;
                note(format!(
                    "{key}: `{element}` was acknowledged ({}×) and is not stored",
                    t.acknowledged
                ));
            } else if n > t.attempted {
                report.duplicated += 1;
                note(format!(
                    "{key}: `{element}` is stored {n}× but was written {}×",
                    t.attempted
                ));
            }
        }
        for (element, n) in &count {
            if !elements.contains_key(element) {
                report.unexpected += 1;
                note(format!(
                    "{key}: `{element}` is stored ({n}×) and was never written"
                ));
            }
        }
    }
    report.details = details;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(key: &str, element: &str, acknowledged: bool) -> Write {
        Write {
            key: key.into(),
            element: element.into(),
            acknowledged,
        }
    }

    #[test]
    fn lost_duplicated_unexpected_and_indeterminate() {
        let writes = [
            w("r1", "qa", true),
            w("r1", "legal", true),
            w("r1", "ops", false),
            w("r2", "qa", true),
            w("r2", "qa", true),
            w("r3", "qa", true),
        ];
        let stored: BTreeMap<String, Result<Vec<String>, String>> = [
            // legal lost; ops (indeterminate) absent, which is allowed.
            ("r1", Ok(vec!["qa"])),
            // qa written twice, stored three times; finance never written.
            ("r2", Ok(vec!["qa", "qa", "qa", "finance"])),
            ("r3", Err("503".to_string())),
        ]
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                v.map(|e| e.into_iter().map(str::to_string).collect()),
            )
        })
        .collect();
        let r = check(&writes, &stored);
        assert_eq!((r.keys, r.acknowledged, r.indeterminate), (3, 5, 1));
        assert_eq!(
            (r.lost, r.duplicated, r.unexpected, r.unreadable),
            (1, 1, 1, 1)
        );
        assert_eq!(r.violations(), 3);
        assert!(
            r.details
                .iter()
                .any(|d| d.contains("`legal` was acknowledged"))
        );
        // An indeterminate write that was stored is no violation either.
        let stored = [("r".to_string(), Ok(vec!["x".to_string()]))].into();
        let r = check(&[w("r", "x", false)], &stored);
        assert_eq!(r.violations(), 0);
        assert_eq!(keys(&writes), ["r1", "r2", "r3"]);
    }
}
