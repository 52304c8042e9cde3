//! Bootstrap confidence intervals for the change of a metric between two runs.
//!
//! Two kinds of sample are used:
//! - **per-second windows** of the timeline, resampled whole, so that correlation in time (a slow
//!   minute) widens the interval as it should; used when both runs have enough seconds;
//! - **iterations**, for runs too short to have enough seconds: drawn from the run's HdrHistogram.
//!   For a quantile, resampling n iterations and taking the q-quantile is the same as drawing its rank
//!   from Binomial(n, q) and reading the value at that rank; the rank is drawn from the binomial's
//!   normal approximation, which needs no per-iteration data and costs one histogram lookup.
//!
//! Every interval is the 2.5th to 97.5th percentile of the resampled changes.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::metrics::Hist;

/// Resamples per interval.
pub const RESAMPLES: usize = 2000;

/// A point estimate and its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

impl Interval {
    /// The same relative spread around another point estimate `at` (a change `x` becomes
    /// `(1 + at)(1 + x)/(1 + estimate) - 1`): for a statistic shown that is computed slightly
    /// differently from the one resampled.
    pub fn around(self, at: f64) -> Interval {
        let scale = |x: f64| (1.0 + at) * (1.0 + x) / (1.0 + self.estimate) - 1.0;
        Interval {
            estimate: at,
            low: scale(self.low),
            high: scale(self.high),
        }
    }
}

fn interval(estimate: f64, mut draws: Vec<f64>) -> Option<Interval> {
    draws.retain(|d| d.is_finite());
    if draws.len() < RESAMPLES / 2 {
        return None;
    }
    draws.sort_by(f64::total_cmp);
    let at = |q: f64| draws[((draws.len() - 1) as f64 * q).round() as usize];
    Some(Interval {
        estimate,
        low: at(0.025),
        high: at(0.975),
    })
}

/// One per-second sample: a value and its weight (iterations completed that second).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub value: f64,
    pub weight: f64,
}

fn weighted_mean(w: &[Window]) -> f64 {
    let total: f64 = w.iter().map(|x| x.weight).sum();
    if total <= 0.0 {
        return f64::NAN;
    }
    w.iter().map(|x| x.value * x.weight).sum::<f64>() / total
}

fn resample<T: Copy>(rng: &mut ChaCha8Rng, from: &[T], into: &mut Vec<T>) {
    into.clear();
    into.extend((0..from.len()).map(|_| from[rng.random_range(0..from.len())]));
}

/// Relative change of the weighted mean of per-second values, `(new - base) / base`.
pub fn windows_relative(rng: &mut ChaCha8Rng, base: &[Window], new: &[Window]) -> Option<Interval> {
    let estimate = weighted_mean(new) / weighted_mean(base) - 1.0;
    let (mut b, mut n) = (Vec::new(), Vec::new());
    let draws = (0..RESAMPLES)
        .map(|_| {
            resample(rng, base, &mut b);
            resample(rng, new, &mut n);
            weighted_mean(&n) / weighted_mean(&b) - 1.0
        })
        .collect();
    interval(estimate, draws)
}

/// Per-second `(successes, total)`.
pub type Counts = (f64, f64);

fn ratio(c: &[Counts]) -> f64 {
    let (s, t) = c.iter().fold((0.0, 0.0), |(s, t), (a, b)| (s + a, t + b));
    if t > 0.0 { s / t } else { f64::NAN }
}

/// Difference of a pooled ratio (e.g. success rate) between runs, resampling seconds.
pub fn windows_ratio_difference(
    rng: &mut ChaCha8Rng,
    base: &[Counts],
    new: &[Counts],
) -> Option<Interval> {
    let estimate = ratio(new) - ratio(base);
    let (mut b, mut n) = (Vec::new(), Vec::new());
    let draws = (0..RESAMPLES)
        .map(|_| {
            resample(rng, base, &mut b);
            resample(rng, new, &mut n);
            ratio(&n) - ratio(&b)
        })
        .collect();
    interval(estimate, draws)
}

/// A draw from the normal approximation of Binomial(n, p), as a proportion.
fn proportion(rng: &mut ChaCha8Rng, n: f64, p: f64) -> f64 {
    let sd = (p * (1.0 - p) / n).sqrt();
    (p + sd * standard_normal(rng)).clamp(0.0, 1.0)
}

/// A standard normal draw (Box–Muller).
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Difference of two proportions `succeeded / total`, resampling iterations.
pub fn counts_difference(rng: &mut ChaCha8Rng, base: Counts, new: Counts) -> Option<Interval> {
    if base.1 <= 0.0 || new.1 <= 0.0 {
        return None;
    }
    let (pb, pn) = (base.0 / base.1, new.0 / new.1);
    let draws = (0..RESAMPLES)
        .map(|_| proportion(rng, new.1, pn) - proportion(rng, base.1, pb))
        .collect();
    interval(pn - pb, draws)
}

/// A histogram's recorded values and their counts, ascending: cheap to pool with others.
pub type Sparse = Vec<(u64, u64)>;

/// `h` as [`Sparse`] (each bucket's highest equivalent value, as `value_at_quantile` reports).
pub fn sparse(h: &Hist) -> Sparse {
    h.iter_recorded()
        .map(|v| {
            (
                h.highest_equivalent(v.value_iterated_to()),
                v.count_at_value(),
            )
        })
        .collect()
}

/// Blocks laid over one sorted list of every value any of them holds, with each block's cumulative
/// count at each value: the quantile of any selection of blocks is then a binary search, each probe
/// summing one number per block.
struct Pooled {
    values: Vec<u64>,
    /// `cum[b][i]`: block `b`'s count of values up to `values[i]`.
    cum: Vec<Vec<u64>>,
}

impl Pooled {
    fn new(blocks: &[Sparse]) -> Self {
        let mut values: Vec<u64> = blocks.iter().flatten().map(|e| e.0).collect();
        values.sort_unstable();
        values.dedup();
        let cum = blocks
            .iter()
            .map(|b| {
                let mut out = Vec::with_capacity(values.len());
                let (mut j, mut running) = (0, 0);
                for v in &values {
                    while j < b.len() && b[j].0 <= *v {
                        running += b[j].1;
                        j += 1;
                    }
                    out.push(running);
                }
                out
            })
            .collect();
        Self { values, cum }
    }

    /// The nearest-rank q-quantile of the union of the blocks `picks` (with repeats).
    fn quantile(&self, picks: &[usize], q: f64) -> f64 {
        let Some(last) = self.values.len().checked_sub(1) else {
            return f64::NAN;
        };
        let up_to = |i: usize| picks.iter().map(|b| self.cum[*b][i]).sum::<u64>();
        let total = up_to(last);
        if total == 0 {
            return f64::NAN;
        }
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let (mut lo, mut hi) = (0, last);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if up_to(mid) >= rank {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        self.values[lo] as f64
    }
}

/// At most this many blocks are resampled: more are merged, neighbours together, first.
const MAX_BLOCKS: usize = 60;

fn coarsen(blocks: &[Sparse]) -> Vec<Sparse> {
    if blocks.len() <= MAX_BLOCKS {
        return blocks.to_vec();
    }
    let per = blocks.len().div_ceil(MAX_BLOCKS);
    blocks
        .chunks(per)
        .map(|chunk| {
            let mut all: Vec<(u64, u64)> = chunk.iter().flatten().copied().collect();
            all.sort_unstable_by_key(|e| e.0);
            let mut merged: Sparse = Vec::with_capacity(all.len());
            for (v, c) in all {
                match merged.last_mut() {
                    Some(last) if last.0 == v => last.1 += c,
                    _ => merged.push((v, c)),
                }
            }
            merged
        })
        .collect()
}

/// Relative change of the q-quantile between runs, resampling whole blocks of time (each a
/// histogram of the iterations that ended in it) and taking the percentile of the pooled blocks. A
/// few slow seconds then widen the interval as they should, which resampling single iterations, as
/// if each were independent of its neighbours, cannot do.
pub fn blocks_quantile_relative(
    rng: &mut ChaCha8Rng,
    base: &[Sparse],
    new: &[Sparse],
    q: f64,
) -> Option<Interval> {
    let (base, new) = (coarsen(base), coarsen(new));
    if base.is_empty() || new.is_empty() {
        return None;
    }
    let (pb, pn) = (Pooled::new(&base), Pooled::new(&new));
    let every = |n: usize| (0..n).collect::<Vec<_>>();
    let estimate = pn.quantile(&every(new.len()), q) / pb.quantile(&every(base.len()), q) - 1.0;
    let (mut pick_b, mut pick_n) = (Vec::new(), Vec::new());
    let draws = (0..RESAMPLES)
        .map(|_| {
            pick_b.clear();
            pick_b.extend((0..base.len()).map(|_| rng.random_range(0..base.len())));
            pick_n.clear();
            pick_n.extend((0..new.len()).map(|_| rng.random_range(0..new.len())));
            pn.quantile(&pick_n, q) / pb.quantile(&pick_b, q) - 1.0
        })
        .collect();
    interval(estimate, draws)
}

/// Relative change of the q-quantile of two latency histograms, resampling iterations.
pub fn quantile_relative(
    rng: &mut ChaCha8Rng,
    base: &Hist,
    new: &Hist,
    q: f64,
) -> Option<Interval> {
    if base.is_empty() || new.is_empty() {
        return None;
    }
    let at = |h: &Hist, q: f64| h.value_at_quantile(q) as f64;
    let estimate = at(new, q) / at(base, q) - 1.0;
    let draws = (0..RESAMPLES)
        .map(|_| {
            let qb = proportion(rng, base.len() as f64, q);
            let qn = proportion(rng, new.len() as f64, q);
            at(new, qn) / at(base, qb) - 1.0
        })
        .collect();
    interval(estimate, draws)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::{new_histogram, record};
    use rand::SeedableRng;
    use std::time::Duration;

    fn hist(base_ms: f64, n: u64, spread: f64, rng: &mut ChaCha8Rng) -> Hist {
        let mut h = new_histogram();
        for _ in 0..n {
            let v = base_ms * (1.0 + spread * (rng.random::<f64>() - 0.5));
            record(&mut h, Duration::from_secs_f64(v / 1000.0));
        }
        h
    }

    #[test]
    fn two_draws_of_one_distribution_straddle_zero_and_a_slower_one_does_not() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let a = hist(20.0, 2000, 0.2, &mut rng);
        let b = hist(20.0, 2000, 0.2, &mut rng);
        let slow = hist(26.0, 2000, 0.2, &mut rng);
        let same = quantile_relative(&mut rng, &a, &b, 0.95).unwrap();
        assert!(same.low < 0.0 && same.high > 0.0, "{same:?}");
        assert!(
            same.high - same.low < 0.05,
            "tight with 2000 iterations: {same:?}"
        );
        let slower = quantile_relative(&mut rng, &a, &slow, 0.95).unwrap();
        assert!(
            slower.low > 0.2 && (slower.estimate - 0.3).abs() < 0.05,
            "{slower:?}"
        );
    }

    #[test]
    fn per_second_windows_and_counts() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let base: Vec<Window> = (0..30)
            .map(|i| Window {
                value: 10.0 + (i % 3) as f64,
                weight: 10.0,
            })
            .collect();
        let slow: Vec<Window> = base
            .iter()
            .map(|w| Window {
                value: w.value * 1.3,
                weight: w.weight,
            })
            .collect();
        let i = windows_relative(&mut rng, &base, &slow).unwrap();
        assert!((i.estimate - 0.3).abs() < 1e-9 && i.low > 0.25, "{i:?}");
        let c = counts_difference(&mut rng, (99.0, 100.0), (90.0, 100.0)).unwrap();
        assert!((c.estimate + 0.09).abs() < 1e-9 && c.high < 0.0, "{c:?}");
        assert!(counts_difference(&mut rng, (0.0, 0.0), (1.0, 1.0)).is_none());
    }

    #[test]
    fn a_few_slow_seconds_widen_the_interval_of_pooled_blocks() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let steady = |ms: f64, rng: &mut ChaCha8Rng| -> Vec<Sparse> {
            (0..20).map(|_| sparse(&hist(ms, 200, 0.2, rng))).collect()
        };
        // The same service, but two of its twenty seconds stalled: its p95 rests on them.
        let mut bursty = steady(20.0, &mut rng);
        bursty[3] = sparse(&hist(200.0, 200, 0.2, &mut rng));
        bursty[11] = sparse(&hist(200.0, 200, 0.2, &mut rng));
        let base = steady(20.0, &mut rng);
        let b = blocks_quantile_relative(&mut rng, &base, &bursty, 0.95).unwrap();
        assert!(
            b.estimate > 1.0,
            "the pooled p95 is a stalled second's: {b:?}"
        );
        assert!(b.low < 0.1, "resampling seconds may leave both out: {b:?}");
        let slow = steady(26.0, &mut rng);
        let s = blocks_quantile_relative(&mut rng, &base, &slow, 0.95).unwrap();
        assert!((s.estimate - 0.3).abs() < 0.05 && s.low > 0.2, "{s:?}");
    }
}
