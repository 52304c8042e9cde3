//! Adding shards' figures: histograms by addition (exact percentiles, never an average of
//! percentiles), counts by sum, maps key by key, examples up to their cap.

use std::collections::BTreeMap;

use crate::metrics::LatencySummary;
use crate::metrics::histogram::{Hist, decode, merge};

/// Why a figure could not be merged: it has no histogram to add, or one that cannot be read.
pub type Missing = String;

/// The histograms `parts` summarise, added; `None` when no shard has one. `what` names the figure
/// in the error.
pub fn histograms<'a>(
    what: &str,
    parts: impl IntoIterator<Item = Option<&'a LatencySummary>>,
) -> Result<Option<Hist>, Missing> {
    let mut texts = Vec::new();
    for s in parts.into_iter().flatten() {
        let text = s.hdr.as_deref().ok_or_else(|| {
            format!(
                "{what} has no histogram to add (the result was written by a harness that did not \
                 keep one); run the shards again with this version"
            )
        })?;
        texts.push(text);
    }
    encoded(what, texts.into_iter().map(Some))
}

/// The summary of the histograms `parts` summarise, added.
pub fn summaries<'a>(
    what: &str,
    parts: impl IntoIterator<Item = Option<&'a LatencySummary>>,
) -> Result<Option<LatencySummary>, Missing> {
    Ok(histograms(what, parts)?
        .as_ref()
        .and_then(LatencySummary::of))
}

/// Encoded histograms (`latency_hdr`, …), added.
pub fn encoded<'a>(
    what: &str,
    parts: impl IntoIterator<Item = Option<&'a str>>,
) -> Result<Option<Hist>, Missing> {
    let mut total: Option<Hist> = None;
    for text in parts.into_iter().flatten() {
        let h = decode(text).map_err(|e| format!("{what}: cannot be read ({e})"))?;
        add(&mut total, &h);
    }
    Ok(total)
}

fn add(total: &mut Option<Hist>, h: &Hist) {
    match total {
        Some(t) => merge(t, h),
        None => *total = Some(h.clone()),
    }
}

/// Summaries kept by name (steps, recorded metrics, error kinds), added name by name.
pub fn summary_maps<'a>(
    what: &str,
    parts: impl IntoIterator<Item = &'a BTreeMap<String, LatencySummary>>,
) -> Result<BTreeMap<String, LatencySummary>, Missing> {
    let parts: Vec<_> = parts.into_iter().collect();
    let names: std::collections::BTreeSet<&String> = parts.iter().flat_map(|m| m.keys()).collect();
    let mut out = BTreeMap::new();
    for name in names {
        let label = format!("{what}.{name}");
        if let Some(s) = summaries(&label, parts.iter().map(|m| m.get(name)))? {
            out.insert(name.clone(), s);
        }
    }
    Ok(out)
}

/// Counts by key, added.
pub fn counts<'a, K: Ord + Clone + 'a>(
    parts: impl IntoIterator<Item = &'a BTreeMap<K, u64>>,
) -> BTreeMap<K, u64> {
    let mut out = BTreeMap::new();
    for m in parts {
        for (k, n) in m {
            *out.entry(k.clone()).or_default() += n;
        }
    }
    out
}

/// The first `cap` distinct examples of all the parts, in order.
pub fn examples<'a>(parts: impl IntoIterator<Item = &'a Vec<String>>, cap: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in parts.into_iter().flatten() {
        if out.len() >= cap {
            break;
        }
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

/// The sum of the values present; `None` when none is.
pub fn optional(parts: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    parts
        .into_iter()
        .flatten()
        .fold(None, |acc, v| Some(acc.unwrap_or(0.0) + v))
}

/// `part ÷ whole`, absent for an empty whole.
pub fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::{new_histogram, record_micros};

    fn summary(values: &[u64]) -> LatencySummary {
        crate::metrics::histogram::keep_histograms();
        let mut h = new_histogram();
        for v in values {
            record_micros(&mut h, *v);
        }
        LatencySummary::of(&h).unwrap()
    }

    #[test]
    fn summaries_add_as_one_histogram_of_every_sample() {
        let a: Vec<u64> = (1..=700).map(|i| i * 100).collect();
        let b: Vec<u64> = (1..=500).map(|i| 50_000 + i * 7).collect();
        let merged = summaries("latency", [Some(&summary(&a)), None, Some(&summary(&b))])
            .unwrap()
            .unwrap();
        let all: Vec<u64> = a.iter().chain(&b).copied().collect();
        let one = summary(&all);
        assert_eq!(merged.count, 1200);
        assert_eq!(
            (merged.p50, merged.p90, merged.p99, merged.max),
            (one.p50, one.p90, one.p99, one.max)
        );
    }

    #[test]
    fn a_summary_without_its_histogram_cannot_be_added() {
        let mut old = summary(&[10, 20]);
        old.hdr = None;
        let err = summaries("metrics.steps.login", [Some(&old)]).unwrap_err();
        assert!(
            err.starts_with("metrics.steps.login has no histogram"),
            "{err}"
        );
        assert_eq!(summaries("x", [None, None]).unwrap(), None);
    }

    #[test]
    fn examples_stop_at_their_cap() {
        let a = vec!["x".to_string(), "y".to_string()];
        let b = vec!["y".to_string(), "z".to_string(), "w".to_string()];
        assert_eq!(examples([&a, &b], 3), ["x", "y", "z"]);
        assert_eq!(optional([None, Some(1.5), Some(2.0)]), Some(3.5));
        assert_eq!(optional([None, None]), None);
    }
}
