//! The coordination API the standard handoff procedures use: agents (registration, readiness),
//! phases (completion), resources with an owner, exclusive leases that expire, and transfers under the
//! resource's lock; workflows with versioned state (a stale version is a 409) and checkpoints; and a
//! state dump for invariant checks.
//!
//! Safe under concurrency: all state sits behind one mutex held only for short, non-awaiting sections,
//! and a transfer holds its resource's async lock across the read, the (simulated) durable write and
//! the update, so no two transfers of one resource interleave — unless the `skip_lock` defect is on,
//! which is exactly what the harness's invariant check must catch.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

mod resources;
mod workflows;

pub use resources::*;
pub use workflows::*;

use super::App;
use crate::reference::api::{ApiError, ApiResult, JsonBody};

/// Longest a request may ask to wait for a lock.
const MAX_WAIT_MS: u64 = 30_000;
/// Longest lease.
const MAX_TTL_MS: u64 = 600_000;
/// How often a waiter looks again at a lease held by someone else.
const LEASE_POLL: Duration = Duration::from_millis(2);

#[derive(Debug, Default)]
pub struct Coordination {
    agents: HashMap<String, Agent>,
    phases: HashMap<String, Phase>,
    resources: HashMap<String, Resource>,
    workflows: HashMap<String, Workflow>,
    next_id: u64,
}

#[derive(Debug)]
struct Agent {
    ready: bool,
    permissions: Map<String, Value>,
    resources: BTreeSet<String>,
}

#[derive(Debug)]
struct Phase {
    status: PhaseStatus,
    owner: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum PhaseStatus {
    InProgress,
    Completed,
}

#[derive(Debug)]
struct Resource {
    owner: String,
    version: u64,
    lease: Option<Lease>,
    /// Held by a transfer (or a lease being granted) for its whole read-modify-write.
    lock: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Debug, Clone)]
struct Lease {
    holder: String,
    lock_id: String,
    expires_at: Instant,
}

#[derive(Debug)]
struct Workflow {
    version: u64,
    state: Value,
    checkpoints: HashMap<String, (u64, Value)>,
}

impl Coordination {
    fn next_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", self.next_id)
    }

    fn agent(&self, id: &str) -> ApiResult<&Agent> {
        self.agents
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("no agent {id}")))
    }

    fn resource(&mut self, id: &str) -> ApiResult<&mut Resource> {
        self.resources
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found(format!("no resource {id}")))
    }

    fn workflow(&mut self, id: &str) -> ApiResult<&mut Workflow> {
        self.workflows
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found(format!("no workflow {id}")))
    }
}

fn nonempty(field: &str, value: &str) -> ApiResult<()> {
    if value.trim().is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    Ok(())
}

fn millis_since(start: Instant, at: Instant) -> i64 {
    if at >= start {
        (at - start).as_millis() as i64
    } else {
        -((start - at).as_millis() as i64)
    }
}

fn agent_json(id: &str, a: &Agent) -> Value {
    json!({ "agent_id": id, "ready": a.ready, "permissions": a.permissions, "resources": a.resources })
}

fn resource_json(app: &App, id: &str, r: &Resource) -> Value {
    let now = Instant::now();
    let lease = r.lease.as_ref().filter(|l| l.expires_at > now).map(|l| {
        json!({
            "holder": l.holder,
            "lock_id": l.lock_id,
            "expires_at_ms": millis_since(app.started, l.expires_at),
        })
    });
    json!({ "resource_id": id, "owner": r.owner, "version": r.version, "lock": lease })
}

// ---- agents ----------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterAgent {
    agent_id: String,
    #[serde(default)]
    ready: bool,
    #[serde(default)]
    permissions: Map<String, Value>,
}

pub async fn register_agent(
    State(app): State<Arc<App>>,
    JsonBody(b): JsonBody<RegisterAgent>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    nonempty("agent_id", &b.agent_id)?;
    let mut s = app.coordination();
    if let Some(existing) = s.agents.get(&b.agent_id) {
        return Ok((StatusCode::OK, Json(agent_json(&b.agent_id, existing))));
    }
    let agent = Agent {
        ready: b.ready,
        permissions: b.permissions,
        resources: BTreeSet::new(),
    };
    let body = agent_json(&b.agent_id, &agent);
    s.agents.insert(b.agent_id, agent);
    Ok((StatusCode::CREATED, Json(body)))
}

pub async fn get_agent(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let s = app.coordination();
    Ok(Json(agent_json(&id, s.agent(&id)?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Readiness {
    ready: bool,
}

pub async fn set_readiness(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<Readiness>,
) -> ApiResult<Json<Value>> {
    let mut s = app.coordination();
    let agent = s
        .agents
        .get_mut(&id)
        .ok_or_else(|| ApiError::not_found(format!("no agent {id}")))?;
    agent.ready = b.ready;
    Ok(Json(agent_json(&id, agent)))
}

// ---- phases ----------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPhase {
    status: PhaseStatus,
    owner: String,
}

fn phase_json(id: &str, p: &Phase) -> Value {
    json!({ "phase_id": id, "status": p.status, "owner": p.owner, "complete": p.status == PhaseStatus::Completed })
}

pub async fn set_phase(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<SetPhase>,
) -> ApiResult<Json<Value>> {
    let mut s = app.coordination();
    s.agent(&b.owner)?;
    let phase = Phase {
        status: b.status,
        owner: b.owner,
    };
    let body = phase_json(&id, &phase);
    s.phases.insert(id, phase);
    Ok(Json(body))
}

pub async fn get_phase(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let s = app.coordination();
    let p = s
        .phases
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("no phase {id}")))?;
    Ok(Json(phase_json(&id, p)))
}

// ---- state dump ------------------------------------------------------------------------------------

/// Everything an invariant check needs: every resource's owner, version and lease (with the service's
/// clock), and every agent's resources.
pub async fn state(State(app): State<Arc<App>>) -> Json<Value> {
    let s = app.coordination();
    let now = Instant::now();
    let mut resources: Vec<Value> = s
        .resources
        .iter()
        .map(|(id, r)| {
            let lease = r.lease.as_ref().filter(|l| l.expires_at > now).map(|l| {
                json!({ "holder": l.holder, "lock_id": l.lock_id, "expires_at_ms": millis_since(app.started, l.expires_at) })
            });
            json!({ "resource_id": id, "owner": r.owner, "version": r.version, "lock": lease })
        })
        .collect();
    resources.sort_by(|a, b| a["resource_id"].as_str().cmp(&b["resource_id"].as_str()));
    let mut agents: Vec<Value> = s
        .agents
        .iter()
        .filter(|(_, a)| !a.resources.is_empty())
        .map(|(id, a)| json!({ "agent_id": id, "resources": a.resources }))
        .collect();
    agents.sort_by(|a, b| a["agent_id"].as_str().cmp(&b["agent_id"].as_str()));
    Json(
        json!({ "now_ms": millis_since(app.started, now), "resources": resources, "agents": agents }),
    )
}
