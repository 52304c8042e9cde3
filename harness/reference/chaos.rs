//! Chaos controls of the reference targets, off by default: a share of requests answered 500 (for all
//! routes, or per route), added latency (fixed plus jitter), a "backend down" window during which
//! everything is answered 503, and for the WebSocket server a share of deliveries dropped. Set at start-up or at run time through `/admin/chaos` (GET shows,
//! PUT replaces, DELETE clears); the admin routes themselves are never disturbed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::api::{ApiError, JsonBody};

/// The chaos a target applies, as set through `/admin/chaos` or start-up flags.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaosSettings {
    /// Share of requests answered 500, on every route without a rate of its own.
    #[serde(default)]
    pub error_rate: f64,
    /// Share of requests answered 500 by route pattern (e.g.
    /// `/api/v1/coordination/resources/{id}/transfer`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub route_error_rates: BTreeMap<String, f64>,
    /// Added to every request.
    #[serde(default)]
    pub latency_ms: f64,
    /// Up to this much more, uniformly.
    #[serde(default)]
    pub jitter_ms: f64,
    /// The backend goes down this long after the settings are applied…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_after_ms: Option<f64>,
    /// …for this long (answering 503 meanwhile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_for_ms: Option<f64>,
    /// WebSocket server only: share of deliveries to subscribers dropped.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub drop_rate: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl ChaosSettings {
    /// Checks the values; the error names the field at fault.
    pub fn check(&self) -> Result<(), ApiError> {
        let ratio = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(ApiError::invalid(name, format!("{v} is outside 0..1")))
            }
        };
        ratio("error_rate", self.error_rate)?;
        ratio("drop_rate", self.drop_rate)?;
        for (route, rate) in &self.route_error_rates {
            ratio(&format!("route_error_rates.{route}"), *rate)?;
        }
        for (name, v) in [
            ("latency_ms", Some(self.latency_ms)),
            ("jitter_ms", Some(self.jitter_ms)),
            ("down_after_ms", self.down_after_ms),
            ("down_for_ms", self.down_for_ms),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(ApiError::invalid(
                    name,
                    format!("{v} is not a duration in milliseconds"),
                ));
            }
        }
        if self.down_after_ms.is_some() != self.down_for_ms.is_some() {
            return Err(ApiError::invalid(
                "down_for_ms",
                "give down_after_ms and down_for_ms together",
            ));
        }
        Ok(())
    }

    pub fn is_off(&self) -> bool {
        *self == Self::default()
    }
}

/// What chaos does to one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    Pass,
    Delay(Duration),
    Fail(Duration),
    Down,
}

/// The chaos state of a running target.
pub struct Chaos {
    inner: Mutex<(ChaosSettings, Instant, ChaCha8Rng)>,
}

impl Chaos {
    pub fn new(settings: ChaosSettings, seed: u64) -> Self {
        Self {
            inner: Mutex::new((settings, Instant::now(), ChaCha8Rng::seed_from_u64(seed))),
        }
    }

    pub fn settings(&self) -> ChaosSettings {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// Replaces the settings; a down window counts from now.
    pub fn set(&self, settings: ChaosSettings) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.0 = settings;
        inner.1 = Instant::now();
    }

    /// Whether the backend is in its down window now.
    pub fn is_down(&self) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        down(&inner.0, inner.1)
    }

    /// Whether to drop one delivery (the WebSocket server's `drop_rate`).
    pub fn drops(&self) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (settings, _, rng) = &mut *inner;
        settings.drop_rate > 0.0 && rng.random_bool(settings.drop_rate.min(1.0))
    }

    /// Decides the fate of a request to `route`.
    pub fn decide(&self, route: &str) -> Action {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (settings, since, rng) = &mut *inner;
        if settings.is_off() {
            return Action::Pass;
        }
        if down(settings, *since) {
            return Action::Down;
        }
        let jitter = if settings.jitter_ms > 0.0 {
            rng.random_range(0.0..settings.jitter_ms)
        } else {
            0.0
        };
        let delay = Duration::from_secs_f64((settings.latency_ms + jitter) / 1000.0);
        let rate = settings
            .route_error_rates
            .get(route)
            .copied()
            .unwrap_or(settings.error_rate);
        if rate > 0.0 && rng.random_bool(rate.min(1.0)) {
            return Action::Fail(delay);
        }
        if delay.is_zero() {
            Action::Pass
        } else {
            Action::Delay(delay)
        }
    }
}

fn down(s: &ChaosSettings, since: Instant) -> bool {
    match (s.down_after_ms, s.down_for_ms) {
        (Some(after), Some(length)) => {
            let t = since.elapsed().as_secs_f64() * 1000.0;
            t >= after && t < after + length
        }
        _ => false,
    }
}

/// Middleware applying the chaos to every route but `/admin/*`.
pub async fn apply(
    State(chaos): State<Arc<Chaos>>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let route = matched
        .as_ref()
        .map_or_else(|| req.uri().path().to_string(), |m| m.as_str().to_string());
    if route.starts_with("/admin/") {
        return next.run(req).await;
    }
    match chaos.decide(&route) {
        Action::Pass => next.run(req).await,
        Action::Delay(d) => {
            tokio::time::sleep(d).await;
            next.run(req).await
        }
        Action::Fail(d) => {
            tokio::time::sleep(d).await;
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": "injected error (chaos)"})),
            )
                .into_response()
        }
        Action::Down => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "backend down (chaos)"})),
        )
            .into_response(),
    }
}

/// `/admin/chaos`: GET shows the settings, PUT replaces them, DELETE turns chaos off.
pub fn admin_routes(chaos: Arc<Chaos>) -> axum::Router {
    axum::Router::new()
        .route(
            "/admin/chaos",
            get(|State(c): State<Arc<Chaos>>| async move { Json(c.settings()) })
                .put(
                    |State(c): State<Arc<Chaos>>, JsonBody(s): JsonBody<ChaosSettings>| async move {
                        s.check()?;
                        c.set(s.clone());
                        Ok::<_, ApiError>(Json(s))
                    },
                )
                .delete(|State(c): State<Arc<Chaos>>| async move {
                    c.set(ChaosSettings::default());
                    Json(ChaosSettings::default())
                }),
        )
        .with_state(chaos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_route_rates_override_the_global_one() {
        let chaos = Chaos::new(ChaosSettings::default(), 1);
        assert_eq!(chaos.decide("/x"), Action::Pass);
        chaos.set(ChaosSettings {
            error_rate: 0.0,
            route_error_rates: [("/boom".to_string(), 1.0)].into(),
            ..ChaosSettings::default()
        });
        assert_eq!(chaos.decide("/x"), Action::Pass);
        assert!(matches!(chaos.decide("/boom"), Action::Fail(_)));
    }

    #[test]
    fn error_rate_is_a_share_and_latency_adds_jitter_within_bounds() {
        let chaos = Chaos::new(
            ChaosSettings {
                error_rate: 0.25,
                latency_ms: 10.0,
                jitter_ms: 5.0,
                ..ChaosSettings::default()
            },
            7,
        );
        let mut failed = 0;
        for _ in 0..4000 {
            match chaos.decide("/x") {
                Action::Fail(_) => failed += 1,
                Action::Delay(d) => {
                    assert!(d >= Duration::from_millis(10) && d < Duration::from_millis(15))
                }
                other => panic!("{other:?}"),
            }
        }
        assert!((800..1200).contains(&failed), "{failed} of 4000 at 25%");
    }

    #[test]
    fn a_down_window_answers_503_then_recovers() {
        let chaos = Chaos::new(ChaosSettings::default(), 1);
        chaos.set(ChaosSettings {
            down_after_ms: Some(0.0),
            down_for_ms: Some(200.0),
            ..ChaosSettings::default()
        });
        assert_eq!(chaos.decide("/x"), Action::Down);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(chaos.decide("/x"), Action::Pass);
    }

    #[test]
    fn bad_settings_name_the_field() {
        let bad = ChaosSettings {
            error_rate: 2.0,
            ..ChaosSettings::default()
        };
        assert_eq!(
            bad.check().unwrap_err().field.as_deref(),
            Some("error_rate")
        );
        let half = ChaosSettings {
            down_after_ms: Some(1.0),
            ..ChaosSettings::default()
        };
        assert_eq!(
            half.check().unwrap_err().field.as_deref(),
            Some("down_for_ms")
        );
    }
}
