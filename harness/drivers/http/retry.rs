//! When a step's request is tried again, and after how long: a transient failure (a connection
//! error, a timeout, a 5xx or a 429) is retried after a backoff — exponential or fixed, with jitter
//! drawn from the run's seed — or after what the target's `Retry-After` asks when that is longer, up
//! to a cap. A `Retry-After` beyond the cap ends the retries: coming back earlier than asked is not
//! what a well-behaved client does, and waiting longer is not what a test should.

use std::time::{Duration, SystemTime};

use crate::procedure::{Backoff, RetryPolicy};

/// How long to wait before the next attempt, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The policy's backoff.
    Backoff(Duration),
    /// The target's `Retry-After` (longer than the backoff, within the cap).
    RetryAfter(Duration),
    /// The target asked for longer than the cap allows: give up.
    BeyondCap(Duration),
}

impl Wait {
    pub fn duration(self) -> Duration {
        match self {
            Wait::Backoff(d) | Wait::RetryAfter(d) | Wait::BeyondCap(d) => d,
        }
    }
}

/// The wait before retry number `retry` (0 for the first retry). `jitter` in [0, 1) spreads the
/// backoff over its upper half ("equal jitter"), so that workers that failed together do not come
/// back together.
pub fn wait(
    policy: &RetryPolicy,
    retry: u32,
    jitter: f64,
    retry_after: Option<&str>,
    now: SystemTime,
) -> Wait {
    let full = match policy.backoff {
        Backoff::Fixed => policy.delay,
        Backoff::Exponential => policy
            .delay
            .saturating_mul(2u32.saturating_pow(retry.min(31))),
    }
    .min(policy.max_delay);
    let backoff = full / 2 + full.mul_f64(jitter.clamp(0.0, 1.0) / 2.0);
    let Some(cap) = policy.retry_after_cap else {
        return Wait::Backoff(backoff);
    };
    match retry_after.and_then(|v| parse_retry_after(v, now)) {
        Some(asked) if asked > cap => Wait::BeyondCap(asked),
        Some(asked) if asked > backoff => Wait::RetryAfter(asked),
        _ => Wait::Backoff(backoff),
    }
}

/// A `Retry-After` value: delay-seconds or an HTTP date (RFC 9110 §10.2.3), as a wait from `now`. A
/// date in the past is no wait; a value that is neither is ignored.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A number in [0, 1) from the run's seed and where the retry happens, the same on every replay.
pub fn jitter(seed: u64, iteration: u64, step: usize, retry: u32) -> f64 {
    let mut x = seed
        ^ iteration.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (step as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ u64::from(retry).wrapping_mul(0x1656_67B1_9E37_79F9);
    // splitmix64's finaliser.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff: Backoff, cap: Option<u64>) -> RetryPolicy {
        RetryPolicy {
            retries: 3,
            backoff,
            delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            retry_after_cap: cap.map(Duration::from_secs),
            budget: None,
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_jitter_keeps_the_upper_half() {
        let p = policy(Backoff::Exponential, None);
        let now = SystemTime::now();
        let at = |retry, j| wait(&p, retry, j, None, now).duration().as_millis();
        assert_eq!((at(0, 0.0), at(0, 0.999_999)), (50, 99));
        assert_eq!(
            (at(1, 0.0), at(2, 0.0), at(3, 0.0), at(9, 0.0)),
            (100, 200, 250, 250)
        );
        let fixed = policy(Backoff::Fixed, None);
        assert_eq!(wait(&fixed, 5, 0.0, None, now).duration().as_millis(), 50);
    }

    #[test]
    fn retry_after_is_honoured_in_seconds_and_as_a_date_up_to_the_cap() {
        let p = policy(Backoff::Exponential, Some(10));
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            wait(&p, 0, 0.5, Some("1"), now),
            Wait::RetryAfter(Duration::from_secs(1))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(3));
        assert_eq!(
            wait(&p, 0, 0.5, Some(&date), now),
            Wait::RetryAfter(Duration::from_secs(3))
        );
        assert_eq!(
            wait(&p, 0, 0.5, Some("30"), now),
            Wait::BeyondCap(Duration::from_secs(30))
        );
        // Shorter than the backoff, past, or unreadable: the backoff stands.
        assert!(matches!(wait(&p, 3, 0.0, Some("0"), now), Wait::Backoff(_)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(60));
        assert!(matches!(
            wait(&p, 0, 0.0, Some(&past), now),
            Wait::Backoff(_)
        ));
        assert!(matches!(
            wait(&p, 0, 0.0, Some("soon"), now),
            Wait::Backoff(_)
        ));
        // With the cap unset, Retry-After is not read at all.
        let ignoring = policy(Backoff::Exponential, None);
        assert!(matches!(
            wait(&ignoring, 0, 0.0, Some("1"), now),
            Wait::Backoff(_)
        ));
    }

    #[test]
    fn jitter_is_the_same_on_replay_and_spread_over_workers() {
        assert_eq!(jitter(7, 3, 1, 0), jitter(7, 3, 1, 0));
        let draws: Vec<f64> = (0..1000).map(|i| jitter(7, i, 1, 0)).collect();
        assert!(draws.iter().all(|j| (0.0..1.0).contains(j)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
    }
}
