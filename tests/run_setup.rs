//! The run's own setup and teardown, against a board service the harness was not written for: it
//! hands out a session token, creates boards at `POST /boards` (201 with a `Location` header), takes
//! cards on a board only with the token, and deletes boards. The run setup logs in once and creates
//! three boards; every iteration adds a card to one of them; the history is read back from each board;
//! the teardown deletes the boards. The service counts what it saw, and the test compares.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use common::*;
use serde_json::{Value, json};

#[derive(Default)]
struct Boards {
    boards: BTreeMap<String, Vec<String>>,
    created: u64,
    deleted: u64,
    logins: u64,
    /// Cards posted without the token, or to a board that does not exist.
    refused: u64,
    /// The nth board creation answers 503 (0: never).
    fail_create_at: u64,
}

type Shared = Arc<Mutex<Boards>>;

const TOKEN: &str = "tok-6f1e";

fn authorised(h: &HeaderMap) -> bool {
    h.get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"))
}

fn service(state: Shared) -> Router {
    Router::new()
        .route(
            "/session",
            post(|State(s): State<Shared>| async move {
                s.lock().unwrap().logins += 1;
                Json(json!({ "session": { "token": TOKEN } }))
            }),
        )
        .route(
            "/boards",
            post(
                |State(s): State<Shared>, h: HeaderMap, Json(body): Json<Value>| async move {
                    let mut b = s.lock().unwrap();
                    if !authorised(&h) {
                        return StatusCode::UNAUTHORIZED.into_response();
                    }
                    b.created += 1;
                    if b.created == b.fail_create_at {
                        return (StatusCode::SERVICE_UNAVAILABLE, "board store is read-only")
                            .into_response();
                    }
                    let id = format!("brd_{}", b.created);
                    assert!(body["title"].as_str().unwrap().starts_with("load board "));
                    b.boards.insert(id.clone(), Vec::new());
                    (
                        StatusCode::CREATED,
                        [(header::LOCATION, format!("/boards/{id}"))],
                        Json(json!({ "board": id })),
                    )
                        .into_response()
                },
            ),
        )
        .route(
            "/boards/{id}",
            axum::routing::get(
                |State(s): State<Shared>, h: HeaderMap, UrlPath(id): UrlPath<String>| async move {
                    let b = s.lock().unwrap();
                    match (authorised(&h), b.boards.get(&id)) {
                        (false, _) => StatusCode::UNAUTHORIZED.into_response(),
                        (true, None) => StatusCode::NOT_FOUND.into_response(),
                        (true, Some(cards)) => Json(json!({
                            "cards": cards.iter().map(|c| json!({ "text": c })).collect::<Vec<_>>()
                        }))
                        .into_response(),
                    }
                },
            )
            .delete(
                |State(s): State<Shared>, h: HeaderMap, UrlPath(id): UrlPath<String>| async move {
                    let mut b = s.lock().unwrap();
                    if !authorised(&h) {
                        return StatusCode::UNAUTHORIZED;
                    }
                    match b.boards.remove(&id) {
                        Some(_) => {
                            b.deleted += 1;
                            StatusCode::NO_CONTENT
                        }
                        None => StatusCode::NOT_FOUND,
                    }
                },
            ),
        )
        .route(
            "/boards/{id}/cards",
            post(
                |State(s): State<Shared>,
                 h: HeaderMap,
                 UrlPath(id): UrlPath<String>,
                 Json(body): Json<Value>| async move {
                    let mut b = s.lock().unwrap();
                    let text = body["text"].as_str().unwrap_or_default().to_string();
                    let ok = authorised(&h);
                    match b.boards.get_mut(&id) {
                        Some(cards) if ok => {
                            cards.push(text);
                            StatusCode::CREATED
                        }
                        _ => {
                            b.refused += 1;
                            StatusCode::NOT_FOUND
                        }
                    }
                },
            ),
        )
        .with_state(state)
}

const PROCEDURE: &str = r#"name = "BOARDS"

[[run_setup]]
id = "login"
method = "POST"
path = "/session"
capture = { token = "/session/token" }

[[run_setup]]
id = "create_board"
method = "POST"
path = "/boards"
headers = { Authorization = "Bearer {{token}}" }
body = { title = "load board {{index}} of {{run_id}}" }
expect_status = 201
repeat = 3
capture_header = { board = "Location" }

[[steps]]
id = "add_card"
method = "POST"
path = "{{board}}/cards"
headers = { Authorization = "Bearer {{token}}" }
body = { text = "card {{iteration}}" }
expect_status = 201
history = { key = "{{board}}", element = "card {{iteration}}" }

[read_back]
path = "{{key}}"
headers = { Authorization = "Bearer {{token}}" }
elements = "/cards"
element = "/text"

[[run_teardown]]
id = "delete_board"
method = "DELETE"
path = "{{board}}"
headers = { Authorization = "Bearer {{token}}" }
expect_status = 204
for_each = "board"
"#;

fn scenario(target: &str) -> String {
    format!(
        r#"name = "boards"
suite = "concurrency"
timeout = "30s"
{target}
[load]
iterations = 60
concurrency = 4
[thresholds]
success_rate = ">= 1.0"
"history.violations" = "== 0"
"#
    )
}

fn check<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {}", r["checks"]))
}

/// Runs BOARDS against a fresh service whose `fail_create_at`-th board creation fails (0: none):
/// the exit code, result.json and what the service saw.
fn run_boards(tag: &str, fail_create_at: u64) -> (Option<i32>, Value, Shared) {
    let state = Shared::default();
    state.lock().unwrap().fail_create_at = fail_create_at;
    let server = serve(service(Arc::clone(&state)));
    let (dir, target) = handoff_target(tag, "BOARDS", PROCEDURE);
    let file = write_scenario(&dir, "boards", &scenario(&target));
    let out = dir.join("out");
    let o = harness()
        .args(run_args(&file, &server.url, &out))
        .output()
        .unwrap();
    eprintln!("{}", stderr(&o));
    (o.status.code(), read_result(&out), state)
}

#[test]
fn the_setup_makes_shared_fixtures_the_iterations_use_and_the_teardown_removes_them() {
    let (code, r, state) = run_boards("run-setup", 0);
    assert_eq!(code, Some(0));
    assert_matches_schema(&r);
    let b = state.lock().unwrap();
    assert_eq!((b.logins, b.created), (1, 3), "one login, three boards");
    assert_eq!(b.refused, 0, "every card went to a board the setup made");
    assert_eq!(b.deleted, 3, "the teardown deleted every board");
    assert!(b.boards.is_empty());
    assert_eq!(r["totals"]["succeeded"], 60);
    let h = &r["metrics"]["history"];
    assert_eq!((h["keys"].as_u64(), h["lost"].as_u64()), (Some(3), Some(0)));
    let setup = check(&r, "run_setup");
    assert_eq!(setup["passed"], true);
    assert!(
        setup["detail"]
            .as_str()
            .unwrap()
            .contains("4 requests succeeded, captured token, board ×3"),
        "{setup}"
    );
    let teardown = check(&r, "run_teardown");
    assert_eq!(teardown["passed"], true, "{teardown}");
    assert!(
        teardown["detail"]
            .as_str()
            .unwrap()
            .contains("sent 3 requests, 0 failed"),
        "{teardown}"
    );
}

#[test]
fn a_failed_setup_aborts_with_exit_3_naming_the_request_and_undoes_what_it_made() {
    let (code, r, state) = run_boards("run-setup-fails", 3);
    assert_eq!(code, Some(3));
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.contains("run_setup step `create_board` (request 3 of 3) failed")
            && reason.contains("503")
            && reason.contains("read-only"),
        "{reason}"
    );
    assert!(
        reason.contains("the run teardown sent 2 requests, 0 failed"),
        "{reason}"
    );
    let b = state.lock().unwrap();
    assert_eq!(b.deleted, 2, "the two boards made were deleted");
    assert!(b.boards.is_empty());
    assert_eq!(b.refused, 0, "no iteration ran");
    assert_eq!(r["totals"]["iterations"], 0);
}

#[test]
fn run_steps_are_checked_where_they_are_written() {
    let broken = PROCEDURE
        .replace("for_each = \"board\"", "for_each = \"boards\"")
        .replace(
            "expect_status = 201\nhistory",
            "expect_status = 201\nrepeat = 2\nhistory",
        );
    let (dir, target) = handoff_target("run-setup-broken", "BOARDS", &broken);
    let file = write_scenario(&dir, "boards", &scenario(&target));
    let o = run_harness(&["validate", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let text = stdout(&o) + &stderr(&o);
    assert!(
        text.contains("steps[0].repeat: `repeat` belongs to [[run_setup]] steps only"),
        "{text}"
    );
    assert!(
        text.contains("run_teardown[0].for_each: `boards` is not a pool of [[run_setup]]")
            && text.contains("the pools are: board"),
        "{text}"
    );
}
