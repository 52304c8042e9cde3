//! The reference handoff service: a real HTTP server (axum) holding the agent hand-off report API of
//! seed 000 and the coordination API the standard procedures use. It is the embedded default target of
//! handoff scenarios, and `harness serve handoff` runs it on its own.
//!
//! It is built to be tested against: chaos controls (error rates, latency, a down window) and two
//! defect modes the harness must catch — a checkpoint restore that answers 200 but restores nothing,
//! and transfers that skip the resource lock.

pub mod coordination;
pub mod reports;

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde_json::json;

use self::coordination::Coordination;
use self::reports::{Reports, Role};
use super::api::ApiError;
use super::bucket::TokenBucket;
use super::chaos::{self, Chaos, ChaosSettings};

/// Test-only faults of the service itself, which the harness must detect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Defects {
    /// Checkpoint restores answer 200 with the restored state, and restore nothing.
    pub broken_rollback: bool,
    /// Transfers run without the resource lock, so concurrent ones can overwrite each other.
    pub skip_lock: bool,
}

#[derive(Debug, Clone)]
pub struct HandoffConfig {
    /// Roles whose approval completes a report's sign-off (seed 000's default: developer, tech
    /// lead, QA engineer).
    pub required_sign_offs: Vec<Role>,
    /// Time a transfer's durable write takes, under the resource lock.
    pub persist_delay: Duration,
    pub defects: Defects,
    pub chaos: ChaosSettings,
    /// Seed of the chaos controls' random choices.
    pub seed: u64,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// A rate limit on the API as a whole: (requests per second, burst); off when `None`. Requests over
    /// it are answered 429 with `Retry-After`.
    pub rate_limit: Option<(f64, u32)>,
}

impl Default for HandoffConfig {
    fn default() -> Self {
        Self {
            required_sign_offs: vec![Role::Developer, Role::TechLead, Role::QaEngineer],
            persist_delay: Duration::from_millis(1),
            defects: Defects::default(),
            chaos: ChaosSettings::default(),
            seed: 0,
            max_body_bytes: 1024 * 1024,
            rate_limit: None,
        }
    }
}

/// The service's state, shared by every request.
pub struct App {
    config: HandoffConfig,
    coordination: Mutex<Coordination>,
    reports: Mutex<Reports>,
    started: Instant,
}

impl App {
    /// Never held across an await.
    fn coordination(&self) -> MutexGuard<'_, Coordination> {
        self.coordination.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reports(&self) -> MutexGuard<'_, Reports> {
        self.reports.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The service's routes, with chaos and request logging applied.
pub fn router(config: HandoffConfig) -> Router {
    let chaos = Arc::new(Chaos::new(config.chaos.clone(), config.seed));
    let body_limit = config.max_body_bytes;
    let rate_limit = config.rate_limit;
    let app = Arc::new(App {
        config,
        coordination: Mutex::default(),
        reports: Mutex::default(),
        started: Instant::now(),
    });
    let r = "/api/v1/agent-handoff";
    let c = "/api/v1/coordination";
    let api = Router::new()
        .route("/health", get(health))
        .route(&format!("{r}/health"), get(health))
        .route(&format!("{r}/reports"), post(reports::create))
        .route(
            &format!("{r}/reports/{{id}}"),
            get(reports::get).put(reports::update),
        )
        .route(
            &format!("{r}/reports/{{id}}/components/{{component}}"),
            put(reports::component),
        )
        .route(&format!("{r}/reports/{{id}}/submit"), post(reports::submit))
        .route(
            &format!("{r}/reports/{{id}}/start-review"),
            post(reports::start_review),
        )
        .route(&format!("{r}/reports/{{id}}/review"), post(reports::review))
        .route(
            &format!("{r}/reports/{{id}}/sign-off"),
            post(reports::sign_off),
        )
        .route(&format!("{r}/dashboard"), get(reports::dashboard))
        .route(&format!("{r}/statistics"), get(reports::statistics))
        .route(
            &format!("{r}/components/status"),
            get(reports::components_status),
        )
        .route(&format!("{c}/agents"), post(coordination::register_agent))
        .route(&format!("{c}/agents/{{id}}"), get(coordination::get_agent))
        .route(
            &format!("{c}/agents/{{id}}/readiness"),
            put(coordination::set_readiness),
        )
        .route(
            &format!("{c}/phases/{{id}}"),
            get(coordination::get_phase).put(coordination::set_phase),
        )
        .route(
            &format!("{c}/resources"),
            post(coordination::create_resource),
        )
        .route(
            &format!("{c}/resources/{{id}}"),
            get(coordination::get_resource),
        )
        .route(
            &format!("{c}/resources/{{id}}/transfer"),
            post(coordination::transfer),
        )
        .route(
            &format!("{c}/resources/{{id}}/lock"),
            post(coordination::acquire),
        )
        .route(
            &format!("{c}/resources/{{id}}/lock/{{lock_id}}"),
            delete(coordination::release),
        )
        .route(
            &format!("{c}/workflows"),
            post(coordination::create_workflow),
        )
        .route(
            &format!("{c}/workflows/{{id}}"),
            get(coordination::get_workflow).put(coordination::update_workflow),
        )
        .route(
            &format!("{c}/workflows/{{id}}/checkpoints"),
            post(coordination::checkpoint),
        )
        .route(
            &format!("{c}/workflows/{{id}}/checkpoints/{{cp}}/restore"),
            post(coordination::restore),
        )
        .route(&format!("{c}/state"), get(coordination::state))
        .with_state(app)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&chaos),
            chaos::apply,
        ));
    let api = match rate_limit {
        Some((rate, burst)) => api.layer(middleware::from_fn_with_state(
            Arc::new(Mutex::new(TokenBucket::new(rate, burst, Instant::now()))),
            super::bucket::limit,
        )),
        None => api,
    };
    api.merge(chaos::admin_routes(chaos))
        .fallback(|req: Request| async move {
            ApiError::not_found(format!("no route {} {}", req.method(), req.uri().path()))
        })
        .method_not_allowed_fallback(|req: Request| async move {
            ApiError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                message: format!("{} is not allowed on {}", req.method(), req.uri().path()),
                field: None,
            }
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(log_request))
}

async fn health(State(app): State<Arc<App>>) -> Response {
    axum::Json(json!({ "status": "ok", "uptime_s": app.started.elapsed().as_secs() }))
        .into_response()
}

/// One structured log line per request (at debug level; `RUST_LOG=debug` shows them).
async fn log_request(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let started = Instant::now();
    let resp = next.run(req).await;
    tracing::debug!(
        method = %method,
        path = %path,
        status = resp.status().as_u16(),
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    resp
}

/// Serves on `listener` until `shutdown` completes, then finishes the requests in progress.
pub async fn serve<L>(
    listener: L,
    config: HandoffConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    axum::serve(listener, router(config))
        .with_graceful_shutdown(shutdown)
        .await
}
