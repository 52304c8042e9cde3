//! Rollback that knows what cannot be undone, against a drafts API the harness was not written for:
//! a draft is created, submitted, approved and published; a draft or a submitted one can be deleted
//! or withdrawn, an approved one cannot (409). Failure injection hits each step in turn.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use common::*;
use harness::result::RunResult;
use serde_json::json;

#[derive(Default)]
struct Drafts {
    next: u64,
    state: HashMap<u64, &'static str>,
}

type Shared = Arc<Mutex<Drafts>>;

/// The drafts API; with `lying_delete`, DELETE answers 204 and keeps the draft.
fn drafts(lying_delete: bool) -> Router {
    let moves = |from: &'static [&'static str], to: &'static str| {
        move |State(s): State<Shared>, UrlPath(id): UrlPath<u64>| async move {
            let mut d = s.lock().unwrap();
            match d.state.get(&id) {
                Some(now) if from.contains(now) => {
                    d.state.insert(id, to);
                    (StatusCode::OK, Json(json!({"id": id, "state": to})))
                }
                Some(now) => (
                    StatusCode::CONFLICT,
                    Json(json!({"problem": format!("draft is {now}")})),
                ),
                None => (
                    StatusCode::NOT_FOUND,
                    Json(json!({"problem": "no such draft"})),
                ),
            }
        }
    };
    Router::new()
        .route(
            "/drafts",
            post(|State(s): State<Shared>| async move {
                let mut d = s.lock().unwrap();
                d.next += 1;
                let id = d.next;
                d.state.insert(id, "draft");
                (StatusCode::CREATED, Json(json!({"draft": {"id": id}})))
            }),
        )
        .route(
            "/drafts/{id}",
            get(
                |State(s): State<Shared>, UrlPath(id): UrlPath<u64>| async move {
                    match s.lock().unwrap().state.get(&id) {
                        Some(state) => (StatusCode::OK, Json(json!({"state": state}))),
                        None => (
                            StatusCode::NOT_FOUND,
                            Json(json!({"problem": "no such draft"})),
                        ),
                    }
                },
            )
            .delete(
                move |State(s): State<Shared>, UrlPath(id): UrlPath<u64>| async move {
                    let mut d = s.lock().unwrap();
                    match d.state.get(&id).copied() {
                        Some("draft" | "submitted") => {
                            if !lying_delete {
                                d.state.remove(&id);
                            }
                            StatusCode::NO_CONTENT
                        }
                        Some(_) => StatusCode::CONFLICT,
                        None => StatusCode::NOT_FOUND,
                    }
                },
            ),
        )
        .route("/drafts/{id}/submit", post(moves(&["draft"], "submitted")))
        .route(
            "/drafts/{id}/withdraw",
            post(moves(&["submitted"], "draft")),
        )
        .route(
            "/drafts/{id}/approve",
            post(moves(&["submitted"], "approved")),
        )
        .route(
            "/drafts/{id}/publish",
            post(moves(&["approved"], "published")),
        )
        .with_state(Shared::default())
}

const PROCEDURE: &str = r#"name = "DRAFTS"

[[steps]]
id = "create"
method = "POST"
path = "/drafts"
expect_status = 201
capture = { draft = "/draft/id" }

[[steps]]
id = "submit"
method = "POST"
path = "/drafts/{{draft}}/submit"

[[steps]]
id = "approve"
method = "POST"
path = "/drafts/{{draft}}/approve"
IRREVERSIBLE

[[steps]]
id = "publish"
method = "POST"
path = "/drafts/{{draft}}/publish"

[[rollbacks]]
id = "withdraw"
undoes = ["submit"]

[[rollbacks.steps]]
method = "POST"
path = "/drafts/{{draft}}/withdraw"

[[rollbacks.verify]]
path = "/drafts/{{draft}}"
checks = [{ pointer = "/state", equals = "draft" }]

[[rollbacks]]
id = "delete"
undoes = ["create"]

[[rollbacks.steps]]
method = "DELETE"
path = "/drafts/{{draft}}"
expect_status = 204

[[rollbacks.verify]]
path = "/drafts/{{draft}}"
checks = [{ status = 404 }]
"#;

/// Eight iterations, each with an injected validation failure: the faults take the four steps in
/// turn, so each step fails twice, after its request took effect.
fn run(server: &TestServer, irreversible: bool) -> RunResult {
    let mark = if irreversible {
        "irreversible = true"
    } else {
        ""
    };
    let procedure = PROCEDURE.replace("IRREVERSIBLE", mark);
    let (_dir, target) = handoff_target("irreversible", "DRAFTS", &procedure);
    let text = format!(
        r#"name = "drafts"
suite = "failure_injection"
timeout = "30s"
{target}
[load]
iterations = 8
concurrency = 2
[faults]
failure_rate = 1.0
kinds = ["validation"]
[thresholds]
"rollback.success_rate" = ">= 100%"
"#
    );
    run_plan(&text, &server.url, None)
}

fn rollback_verdict(r: &RunResult) -> bool {
    r.thresholds
        .iter()
        .find(|v| v.metric == "rollback.success_rate")
        .unwrap()
        .passed
}

#[test]
fn a_healthy_service_passes_when_the_procedure_says_what_cannot_be_undone() {
    let server = serve(drafts(false));
    let r = run(&server, true);
    let rb = r.metrics.rollback.as_ref().unwrap();
    assert_eq!(r.totals.failed, 8, "every iteration got its fault");
    assert_eq!(
        (rb.attempted, rb.succeeded, rb.withheld_irreversible),
        (4, 4, 4),
        "create and submit failures are undone; approve and publish ones are past undoing: {rb:?}"
    );
    assert!(rollback_verdict(&r), "{:?}", r.thresholds);
    assert_eq!(r.status, harness::result::Status::Passed, "{:?}", r.reason);

    // The same service, the same faults, without the mark: the harness tries to delete approved
    // drafts, the service rightly refuses, and the verdict is a false alarm.
    let r = run(&server, false);
    let rb = r.metrics.rollback.as_ref().unwrap();
    assert_eq!((rb.attempted, rb.withheld_irreversible), (8, 0), "{rb:?}");
    assert_eq!(rb.succeeded, 4, "{rb:?}");
    assert!(!rollback_verdict(&r));
}

#[test]
fn a_rollback_that_leaves_the_state_changed_still_fails() {
    let server = serve(drafts(true));
    let r = run(&server, true);
    let rb = r.metrics.rollback.as_ref().unwrap();
    assert_eq!((rb.attempted, rb.withheld_irreversible), (4, 4), "{rb:?}");
    assert_eq!(
        rb.succeeded, 0,
        "a 204 that deleted nothing is no rollback: {rb:?}"
    );
    assert!(!rollback_verdict(&r));
    assert!(
        rb.failures.iter().any(|f| f.contains("delete")),
        "{:?}",
        rb.failures
    );
}
