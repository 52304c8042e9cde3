//! Latency histograms: HdrHistograms of microseconds with 3 significant digits, auto-resizing so they
//! track 1 µs to beyond an hour while holding memory only for the range actually recorded. Also the
//! summary every latency in `result.json` is reported as, and the V2+DEFLATE encoding that lets
//! other tools rebuild the exact histogram.

use std::time::Duration;

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

/// Significant decimal digits every latency histogram keeps.
pub const SIGNIFICANT_DIGITS: u8 = 3;

pub type Hist = Histogram<u64>;

/// An empty latency histogram (microseconds).
pub fn new_histogram() -> Hist {
    // Only fails for sigfig > 5.
    Histogram::new(SIGNIFICANT_DIGITS).expect("3 significant digits is a valid precision")
}

/// Records a duration, in microseconds.
pub fn record(h: &mut Hist, d: Duration) {
    record_micros(h, u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
}

/// Records a value in microseconds, growing the histogram's range as needed (`saturating_record`
/// alone would clamp to the current range instead of growing it).
pub fn record_micros(h: &mut Hist, micros: u64) {
    if h.record(micros).is_err() {
        h.saturating_record(micros);
    }
}

/// Records a value the target reported in milliseconds (e.g. a lock wait); negatives and non-numbers
/// are not recorded.
pub fn record_millis(h: &mut Hist, ms: f64) -> bool {
    if !(ms.is_finite() && ms >= 0.0) {
        return false;
    }
    record_micros(h, (ms * 1000.0).round() as u64);
    true
}

/// Adds `src` into `dst`; auto-resizing histograms always accept each other.
pub fn merge(dst: &mut Hist, src: &Hist) {
    // Both are auto-resizing with the same precision, which `add` never refuses.
    let _ = dst.add(src);
}

/// How many samples must lie beyond a percentile for it to be reported: a p99 of 100 samples is the
/// slowest one or two, and moves by half with one scheduler hiccup.
pub const MIN_BEYOND: f64 = 10.0;

/// How the percentiles are defined, as `result.json` states it.
pub const PERCENTILE_DEFINITION: &str = "nearest rank: the ceil(q*n)-th smallest of the n \
    recorded values, reported as the highest value of its histogram bucket (as HdrHistogram's Java \
    and Rust value_at_percentile / value_at_quantile); reported only when at least 10 values lie \
    beyond it";

/// Whether `n` samples support quantile `q` (at least [`MIN_BEYOND`] beyond it).
pub fn supports(n: u64, q: f64) -> bool {
    n as f64 * (1.0 - q) >= MIN_BEYOND - 1e-9
}

/// Samples quantile `q` needs before it is reported.
pub fn needed_for(q: f64) -> u64 {
    (MIN_BEYOND / (1.0 - q)).round() as u64
}

/// The percentiles a summary reports, by name and quantile.
pub const PERCENTILES: [(&str, f64); 5] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p95", 0.95),
    ("p99", 0.99),
    ("p999", 0.999),
];

/// A latency distribution in milliseconds, the shape of every `*_ms` object in `result.json`. A
/// percentile the samples cannot support is absent (see [`supports`]); `min`, `mean` and `max` are
/// always there. `hdr` is the histogram itself, so that summaries of shards add up exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p999: Option<f64>,
    pub max: f64,
    /// The histogram summarised ([`encode`]); absent in results written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hdr: Option<String>,
}

/// Whether summaries carry their histograms (see [`keep_histograms`]).
static KEEP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on, every [`LatencySummary`] this process makes carries its histogram (`hdr`), so that
/// `merge` can add it exactly. A shard's run asks for it; other runs do not pay for the encoding
/// (tens of summaries, each a DEFLATE pass, in every checkpoint).
pub fn keep_histograms() {
    KEEP.store(true, std::sync::atomic::Ordering::Relaxed);
}

impl LatencySummary {
    /// `None` for an empty histogram: a distribution of nothing is absent, not zero.
    pub fn of(h: &Hist) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        let n = h.len();
        let q = |p: f64| supports(n, p).then(|| ms(h.value_at_quantile(p)));
        Some(Self {
            count: n,
            min: ms(h.min()),
            mean: h.mean() / 1000.0,
            p50: q(0.50),
            p90: q(0.90),
            p95: q(0.95),
            p99: q(0.99),
            p999: q(0.999),
            max: ms(h.max()),
            hdr: KEEP
                .load(std::sync::atomic::Ordering::Relaxed)
                .then(|| encode(h)),
        })
    }

    /// The histogram this summarises, when it was kept.
    pub fn histogram(&self) -> Option<Result<Hist, DecodeError>> {
        self.hdr.as_deref().map(decode)
    }

    /// One statistic by its threshold name (`p95`, `count`, …); durations in milliseconds. `None`
    /// for an unknown name, or a percentile the samples do not support.
    pub fn stat(&self, name: &str) -> Option<f64> {
        match name {
            "count" => Some(self.count as f64),
            "min" => Some(self.min),
            "mean" => Some(self.mean),
            "p50" => self.p50,
            "p90" => self.p90,
            "p95" => self.p95,
            "p99" => self.p99,
            "p999" => self.p999,
            "max" => Some(self.max),
            _ => None,
        }
    }

    /// `p50 1.21ms p95 1.49ms p99 —` for the statistics named (a dash where the samples are too
    /// few).
    pub fn describe(&self, stats: &[&str]) -> String {
        stats
            .iter()
            .map(|s| match self.stat(s) {
                Some(v) => format!("{s} {v:.2}ms"),
                None => format!("{s} —"),
            })
            .collect::<Vec<_>>()
            .join("  ")
    }

    /// For a percentile these samples do not support: the quantile, and how many samples it needs.
    pub fn unsupported(&self, name: &str) -> Option<(f64, u64)> {
        let (_, q) = PERCENTILES.iter().find(|(n, _)| *n == name)?;
        (!supports(self.count, *q)).then(|| (*q, needed_for(*q)))
    }
}

/// Base64 of the histogram's V2+DEFLATE serialisation (the HdrHistogram interchange format).
pub fn encode(h: &Hist) -> String {
    let mut bytes = Vec::new();
    // Serialising into a Vec cannot fail for a valid histogram.
    if V2DeflateSerializer::new().serialize(h, &mut bytes).is_err() {
        return String::new();
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Why an encoded histogram could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("not an HdrHistogram V2 serialisation: {0:?}")]
    Histogram(hdrhistogram::serialization::DeserializeError),
}

/// Rebuilds a histogram from [`encode`]'s output.
pub fn decode(text: &str) -> Result<Hist, DecodeError> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim())?;
    let mut h: Hist = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(DecodeError::Histogram)?;
    h.auto(true);
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_in_milliseconds_and_absent_when_empty() {
        let mut h = new_histogram();
        assert!(LatencySummary::of(&h).is_none());
        for ms in 1..=100 {
            record(&mut h, Duration::from_millis(ms));
        }
        let s = LatencySummary::of(&h).unwrap();
        assert_eq!(s.count, 100);
        assert!((s.p50.unwrap() - 50.0).abs() < 0.1, "{s:?}");
        assert!((s.p90.unwrap() - 90.0).abs() < 0.1, "{s:?}");
        assert!((s.max - 100.0).abs() < 0.1, "{s:?}");
        assert_eq!(s.stat("count"), Some(100.0));
        assert_eq!(s.stat("p42"), None);
        // 100 samples leave 5 beyond p95 and 1 beyond p99: too few to report either.
        assert_eq!((s.p95, s.p99, s.p999), (None, None, None));
        assert_eq!(s.unsupported("p99"), Some((0.99, 1000)));
        assert_eq!(s.unsupported("p90"), None);
        assert_eq!(s.stat("p99"), None);
    }

    #[test]
    fn tracks_an_hour_and_a_microsecond_at_three_digits() {
        let mut h = new_histogram();
        record(&mut h, Duration::from_micros(1));
        record(&mut h, Duration::from_secs(3600));
        assert_eq!(h.min(), 1);
        let max = h.max() as f64;
        assert!((max - 3.6e9).abs() / 3.6e9 < 1e-3, "{max}");
    }

    #[test]
    fn encoding_round_trips_exactly() {
        let mut a = new_histogram();
        for v in [1u64, 17, 250, 12_000, 3_000_000] {
            record_micros(&mut a, v);
        }
        let b = decode(&encode(&a)).unwrap();
        assert_eq!(a, b);
        assert!(decode("not base64!").is_err());
    }

    #[test]
    fn merging_adds_counts() {
        let (mut a, mut b) = (new_histogram(), new_histogram());
        record(&mut a, Duration::from_millis(1));
        record(&mut b, Duration::from_secs(10));
        merge(&mut a, &b);
        assert_eq!(a.len(), 2);
        assert!(a.max() >= 9_990_000);
    }
}
