//! Workflows: versioned state with optimistic concurrency (a stale version is a 409) and checkpoints
//! that can be restored.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Workflow, nonempty};
use crate::reference::api::{ApiError, ApiResult, JsonBody};
use crate::reference::handoff::App;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkflow {
    workflow_id: String,
    #[serde(default)]
    state: Value,
}

fn workflow_json(id: &str, w: &Workflow) -> Value {
    json!({ "workflow_id": id, "version": w.version, "state": w.state })
}

pub async fn create_workflow(
    State(app): State<Arc<App>>,
    JsonBody(b): JsonBody<CreateWorkflow>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    nonempty("workflow_id", &b.workflow_id)?;
    let mut s = app.coordination();
    if s.workflows.contains_key(&b.workflow_id) {
        return Err(ApiError::conflict(format!(
            "workflow {} already exists",
            b.workflow_id
        )));
    }
    let w = Workflow {
        version: 1,
        state: b.state,
        checkpoints: HashMap::new(),
    };
    let body = workflow_json(&b.workflow_id, &w);
    s.workflows.insert(b.workflow_id, w);
    Ok((StatusCode::CREATED, Json(body)))
}

pub async fn get_workflow(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut s = app.coordination();
    let w = s.workflow(&id)?;
    Ok(Json(workflow_json(&id, w)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateWorkflow {
    version: u64,
    state: Value,
}

/// Replaces the state if `version` is the current one (optimistic concurrency).
pub async fn update_workflow(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<UpdateWorkflow>,
) -> ApiResult<Json<Value>> {
    let mut s = app.coordination();
    let w = s.workflow(&id)?;
    if b.version != w.version {
        return Err(ApiError::conflict(format!(
            "stale version: workflow {id} is at version {}, the update was made against {}",
            w.version, b.version
        )));
    }
    w.version += 1;
    w.state = b.state;
    Ok(Json(workflow_json(&id, w)))
}

pub async fn checkpoint(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut s = app.coordination();
    let cp = s.next_id("cp");
    let w = s.workflow(&id)?;
    w.checkpoints
        .insert(cp.clone(), (w.version, w.state.clone()));
    let body =
        json!({ "checkpoint_id": cp, "workflow_id": id, "version": w.version, "state": w.state });
    Ok((StatusCode::CREATED, Json(body)))
}

/// Puts the checkpointed state back (as a new version). With the `broken_rollback` defect it answers
/// exactly as if it had, and changes nothing.
pub async fn restore(
    State(app): State<Arc<App>>,
    Path((id, cp)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let broken = app.config.defects.broken_rollback;
    let mut s = app.coordination();
    let w = s.workflow(&id)?;
    let (_, state) = w
        .checkpoints
        .get(&cp)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no checkpoint {cp} of workflow {id}")))?;
    if broken {
        return Ok(Json(
            json!({ "workflow_id": id, "version": w.version + 1, "state": state, "restored_from": cp }),
        ));
    }
    w.version += 1;
    w.state = state;
    Ok(Json(
        json!({ "workflow_id": id, "version": w.version, "state": w.state, "restored_from": cp }),
    ))
}
