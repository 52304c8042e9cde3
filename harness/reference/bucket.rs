//! A token bucket, the rate limit both reference targets enforce: `burst` tokens at most, refilled at
//! `rate` per second; each message (or request) takes one, and one that finds the bucket empty is
//! refused. A client idle for `burst / rate` seconds may send `burst` at once, then `rate` per second.
//! For HTTP, [`limit`] is the middleware: 429 with `Retry-After` when the bucket is empty.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_s: f64, burst: u32, now: Instant) -> Self {
        Self {
            rate: rate_per_s.max(0.0),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: now,
        }
    }

    /// Takes a token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Seconds until the next token, for a `Retry-After` header.
    pub fn wait_s(&self) -> f64 {
        if self.tokens >= 1.0 || self.rate <= 0.0 {
            0.0
        } else {
            (1.0 - self.tokens) / self.rate
        }
    }
}

/// Middleware: one request, one token; none left is a 429 with `Retry-After` (whole seconds).
pub async fn limit(
    State(bucket): State<Arc<Mutex<TokenBucket>>>,
    req: Request,
    next: Next,
) -> Response {
    let refused = {
        let mut b = bucket.lock().unwrap_or_else(|p| p.into_inner());
        (!b.try_take(Instant::now())).then(|| (b.wait_s(), b.rate, b.burst))
    };
    match refused {
        None => next.run(req).await,
        Some((wait, rate, burst)) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, (wait.ceil() as u64).max(1).to_string())],
            axum::Json(serde_json::json!({
                "error": format!("rate limit exceeded: {rate} requests/s, burst {burst}")
            })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_full_bucket_allows_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(20.0, 40, t0);
        let burst = (0..100).filter(|_| b.try_take(t0)).count();
        assert_eq!(burst, 40);
        // Over the next 5 s, one token every 50 ms.
        let later = (1..=500)
            .filter(|i| b.try_take(t0 + Duration::from_millis(10 * i)))
            .count();
        assert_eq!(later, 100);
        assert!(b.wait_s() > 0.0 && b.wait_s() <= 0.05);
    }

    #[test]
    fn refill_stops_at_the_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(20.0, 40, t0);
        assert!(b.try_take(t0));
        let t = t0 + Duration::from_secs(3600);
        assert_eq!((0..100).filter(|_| b.try_take(t)).count(), 40);
    }
}
