//! The history check against a sign-off service the harness was not written for: concurrent
//! sign-offs on a few shared reports, each acknowledged with 200, read back at the end from the
//! report's own shape. A lossy version acknowledges every twelfth sign-off and then forgets it; a
//! duplicating one stores every twentieth twice. The service counts what it did wrong, and the test
//! compares that with what the harness found.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::*;
use harness::result::RunResult;
use serde_json::{Value, json};

#[derive(Clone, Copy, PartialEq)]
enum Defect {
    None,
    Loses,
    Duplicates,
}

#[derive(Default)]
struct Reports {
    signoffs: HashMap<String, Vec<String>>,
    written: u64,
    /// What the service did wrong: acknowledged and dropped, or stored twice.
    wronged: u64,
}

type Shared = Arc<Mutex<Reports>>;

fn service(defect: Defect, state: Shared) -> Router {
    Router::new()
        .route(
            "/reports/{id}/signoffs",
            post(
                move |State(s): State<Shared>, UrlPath(id): UrlPath<String>, Json(body): Json<Value>| async move {
                    let role = body["role"].as_str().unwrap_or_default().to_string();
                    let mut r = s.lock().unwrap();
                    r.written += 1;
                    let n = r.written;
                    let list = r.signoffs.entry(id).or_default();
                    match defect {
                        Defect::Loses if n % 12 == 0 => r.wronged += 1,
                        Defect::Duplicates if n % 20 == 0 => {
                            list.push(role.clone());
                            list.push(role);
                            r.wronged += 1;
                        }
                        _ => list.push(role),
                    }
                    Json(json!({"accepted": true}))
                },
            ),
        )
        .route(
            "/reports/{id}",
            get(|State(s): State<Shared>, UrlPath(id): UrlPath<String>| async move {
                let r = s.lock().unwrap();
                let list = r.signoffs.get(&id).cloned().unwrap_or_default();
                Json(json!({
                    "report": id,
                    "signoffs": list.iter().map(|role| json!({"role": role, "by": "someone"})).collect::<Vec<_>>(),
                }))
            }),
        )
        .with_state(state)
}

const PROCEDURE: &str = r#"name = "SIGNOFFS"

[variables]
report = { one_of = ["rep-1", "rep-2", "rep-3", "rep-4"] }
role = "role-{{iteration}}"

[[steps]]
id = "sign"
method = "POST"
path = "/reports/{{report}}/signoffs"
body = { role = "{{role}}" }
history = { key = "{{report}}", element = "{{role}}" }

[read_back]
path = "/reports/{{key}}"
elements = "/signoffs"
element = "/role"
"#;

fn run(defect: Defect) -> (RunResult, u64) {
    let state = Shared::default();
    let server = serve(service(defect, Arc::clone(&state)));
    let (_dir, target) = handoff_target("history", "SIGNOFFS", PROCEDURE);
    let text = format!(
        r#"name = "signoffs"
suite = "concurrency"
timeout = "30s"
{target}
[load]
iterations = 120
concurrency = 8
[thresholds]
"history.violations" = "== 0"
"#
    );
    let r = run_plan(&text, &server.url, None);
    let wronged = state.lock().unwrap().wronged;
    (r, wronged)
}

fn verdict(r: &RunResult) -> bool {
    r.thresholds
        .iter()
        .find(|v| v.metric == "history.violations")
        .unwrap()
        .passed
}

#[test]
fn acknowledged_writes_the_service_lost_are_found_and_counted_exactly() {
    let (r, dropped) = run(Defect::Loses);
    let h = r.metrics.history.as_ref().expect("the history was checked");
    assert_eq!(dropped, 10, "the service dropped every twelfth of 120");
    assert_eq!(
        (h.lost, h.duplicated, h.unexpected),
        (dropped, 0, 0),
        "{h:?}"
    );
    assert_eq!((h.acknowledged, h.keys, h.unreadable), (120, 4, 0), "{h:?}");
    assert!(!verdict(&r));
    assert!(
        h.details[0].contains("was acknowledged (1×) and is not stored"),
        "{h:?}"
    );
    assert!(
        r.metrics.invariants.is_none(),
        "the reference service's state check does not apply to this API"
    );
}

#[test]
fn writes_stored_twice_are_duplicates_and_a_correct_service_passes() {
    let (r, doubled) = run(Defect::Duplicates);
    let h = r.metrics.history.as_ref().unwrap();
    assert_eq!((h.duplicated, h.lost), (doubled, 0), "{h:?}");
    assert!(!verdict(&r));

    let (r, wronged) = run(Defect::None);
    let h = r.metrics.history.as_ref().unwrap();
    assert_eq!(wronged, 0);
    assert_eq!(h.violations(), 0, "{h:?}");
    assert!(verdict(&r), "{:?}", r.thresholds);
    assert_eq!(r.status, harness::result::Status::Passed, "{:?}", r.reason);
}

#[test]
fn a_history_without_a_read_back_is_refused() {
    let text = PROCEDURE.split("[read_back]").next().unwrap();
    let (dir, target) = handoff_target("history-bad", "SIGNOFFS", text);
    let scenario = format!(
        "name = \"s\"\nsuite = \"concurrency\"\ntimeout = \"30s\"\n{target}[load]\niterations = 1\n"
    );
    let path = write_scenario(&dir, "s", &scenario);
    let o = run_harness(&["validate", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("read_back: missing"), "{}", stderr(&o));
}
