//! Resources: an owner and a version; exclusive leases that expire; transfers under the resource's
//! lock, which report how long they waited for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    LEASE_POLL, Lease, MAX_TTL_MS, MAX_WAIT_MS, Resource, millis_since, nonempty, resource_json,
};
use crate::reference::api::{ApiError, ApiResult, JsonBody};
use crate::reference::handoff::App;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateResource {
    resource_id: String,
    owner: String,
}

/// Creates a resource owned by `owner`, or returns the existing one unchanged (200).
pub async fn create_resource(
    State(app): State<Arc<App>>,
    JsonBody(b): JsonBody<CreateResource>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    nonempty("resource_id", &b.resource_id)?;
    let mut s = app.coordination();
    s.agent(&b.owner)?;
    if let Some(r) = s.resources.get(&b.resource_id) {
        return Ok((StatusCode::OK, Json(resource_json(&app, &b.resource_id, r))));
    }
    let r = Resource {
        owner: b.owner.clone(),
        version: 1,
        lease: None,
        lock: Arc::default(),
    };
    let body = resource_json(&app, &b.resource_id, &r);
    s.resources.insert(b.resource_id.clone(), r);
    if let Some(a) = s.agents.get_mut(&b.owner) {
        a.resources.insert(b.resource_id);
    }
    Ok((StatusCode::CREATED, Json(body)))
}

pub async fn get_resource(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut s = app.coordination();
    let r = s.resource(&id)?;
    Ok(Json(resource_json(&app, &id, r)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    to: String,
    from: Option<String>,
    #[serde(default)]
    wait_ms: u64,
    /// The lease the caller holds, if it holds one.
    lock_id: Option<String>,
}

/// Waits for any lease held by someone else (not `own`) to end, until `deadline`.
async fn wait_for_lease(
    app: &App,
    id: &str,
    own: Option<&str>,
    deadline: Instant,
) -> ApiResult<()> {
    loop {
        let blocker = {
            let mut s = app.coordination();
            let r = s.resource(id)?;
            let now = Instant::now();
            if r.lease.as_ref().is_some_and(|l| l.expires_at <= now) {
                r.lease = None;
            }
            r.lease
                .as_ref()
                .filter(|l| Some(l.lock_id.as_str()) != own)
                .map(|l| (l.holder.clone(), l.expires_at))
        };
        let Some((holder, expires_at)) = blocker else {
            return Ok(());
        };
        let now = Instant::now();
        if now >= deadline {
            let left = expires_at.saturating_duration_since(now).as_millis();
            return Err(ApiError::conflict(format!(
                "resource {id} is locked by {holder} for another {left}ms"
            )));
        }
        tokio::time::sleep(LEASE_POLL.min(deadline - now)).await;
    }
}

pub async fn transfer(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<Transfer>,
) -> ApiResult<Json<Value>> {
    let started = Instant::now();
    let wait = Duration::from_millis(b.wait_ms.min(MAX_WAIT_MS));
    let deadline = started + wait;
    let lock = {
        let mut s = app.coordination();
        s.agent(&b.to)?;
        Arc::clone(&s.resource(&id)?.lock)
    };
    let _guard = if app.config.defects.skip_lock {
        None
    } else {
        match tokio::time::timeout_at(deadline.into(), lock.lock_owned()).await {
            Ok(g) => Some(g),
            Err(_) => {
                return Err(ApiError::conflict(format!(
                    "resource {id} is busy: other transfers held its lock for all of wait_ms ({}ms)",
                    wait.as_millis()
                )));
            }
        }
    };
    wait_for_lease(&app, &id, b.lock_id.as_deref(), deadline).await?;
    let lock_wait = started.elapsed();
    let (owner, version) = {
        let mut s = app.coordination();
        let r = s.resource(&id)?;
        (r.owner.clone(), r.version)
    };
    if let Some(from) = &b.from
        && *from != owner
    {
        return Err(ApiError::conflict(format!(
            "resource {id} is owned by {owner}, not {from}"
        )));
    }
    // The durable write; without the lock this is where concurrent transfers overtake each other.
    if !app.config.persist_delay.is_zero() {
        tokio::time::sleep(app.config.persist_delay).await;
    }
    {
        let mut s = app.coordination();
        let r = s.resource(&id)?;
        r.owner = b.to.clone();
        r.version = version + 1;
        if let Some(a) = s.agents.get_mut(&owner) {
            a.resources.remove(&id);
        }
        if let Some(a) = s.agents.get_mut(&b.to) {
            a.resources.insert(id.clone());
        }
    }
    Ok(Json(json!({
        "resource_id": id,
        "owner": b.to,
        "previous_owner": owner,
        "version": version + 1,
        "lock_wait_ms": lock_wait.as_secs_f64() * 1000.0,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acquire {
    agent_id: String,
    ttl_ms: u64,
    #[serde(default)]
    wait_ms: u64,
}

/// Grants an exclusive lease that expires after `ttl_ms`, waiting up to `wait_ms` for another to end.
pub async fn acquire(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<Acquire>,
) -> ApiResult<Json<Value>> {
    if !(1..=MAX_TTL_MS).contains(&b.ttl_ms) {
        return Err(ApiError::invalid(
            "ttl_ms",
            format!("must be between 1 and {MAX_TTL_MS}"),
        ));
    }
    let started = Instant::now();
    let deadline = started + Duration::from_millis(b.wait_ms.min(MAX_WAIT_MS));
    let lock = {
        let mut s = app.coordination();
        s.agent(&b.agent_id)?;
        Arc::clone(&s.resource(&id)?.lock)
    };
    // Never grant a lease in the middle of a transfer.
    let _guard = tokio::time::timeout_at(deadline.into(), lock.lock_owned())
        .await
        .map_err(|_| ApiError::conflict(format!("resource {id} is busy with transfers")))?;
    wait_for_lease(&app, &id, None, deadline).await?;
    let mut s = app.coordination();
    let lock_id = s.next_id("lock");
    let expires_at = Instant::now() + Duration::from_millis(b.ttl_ms);
    s.resource(&id)?.lease = Some(Lease {
        holder: b.agent_id.clone(),
        lock_id: lock_id.clone(),
        expires_at,
    });
    Ok(Json(json!({
        "resource_id": id,
        "lock_id": lock_id,
        "holder": b.agent_id,
        "expires_at_ms": millis_since(app.started, expires_at),
        "lock_wait_ms": started.elapsed().as_secs_f64() * 1000.0,
    })))
}

pub async fn release(
    State(app): State<Arc<App>>,
    Path((id, lock_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let mut s = app.coordination();
    let r = s.resource(&id)?;
    let now = Instant::now();
    match &r.lease {
        Some(l) if l.lock_id == lock_id && l.expires_at > now => {
            r.lease = None;
            Ok(Json(
                json!({ "resource_id": id, "lock_id": lock_id, "released": true }),
            ))
        }
        Some(l) if l.lock_id == lock_id => {
            r.lease = None;
            Err(ApiError::conflict(format!(
                "lock {lock_id} on {id} had already expired"
            )))
        }
        _ => Err(ApiError::not_found(format!("no lock {lock_id} on {id}"))),
    }
}
