//! Checks and captures for an orders API the harness was not written for: the new order's address
//! comes back in a `Location` header, its body nests what matters under `/data`, and a defective
//! version drops a tag from every fourth order. Every kind of check is used once, and a failed one
//! names what it found.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use common::*;
use harness::result::RunResult;
use serde_json::json;

fn orders(drops_a_tag: bool) -> Router {
    let next = Arc::new(AtomicU64::new(0));
    Router::new()
        .route(
            "/v3/orders",
            post(move |State(next): State<Arc<AtomicU64>>| async move {
                let n = next.fetch_add(1, Ordering::Relaxed) + 1;
                let tags = if drops_a_tag && n % 4 == 0 {
                    json!(["new"])
                } else {
                    json!(["new", "eu"])
                };
                (
                    StatusCode::CREATED,
                    [("location", format!("/v3/orders/ord-{n}"))],
                    Json(json!({"data": {
                        "id": format!("ord-{n}"),
                        "status": "pending",
                        "tags": tags,
                        "items": [{"sku": "a"}, {"sku": "b"}, {"sku": "c"}],
                    }})),
                )
                    .into_response()
            }),
        )
        .route(
            "/v3/orders/{id}",
            get(|UrlPath(id): UrlPath<String>| async move {
                Json(json!({"order": id, "status": "confirmed"}))
            }),
        )
        .with_state(next)
}

const PROCEDURE: &str = r#"name = "ORDERS"

[[steps]]
id = "create"
method = "POST"
path = "/v3/orders"
body = { sku = "a" }
expect_status = 201
capture = { order = "/data/id" }
capture_header = { location = "Location" }

[[steps]]
id = "fetch"
path = "{{location}}"

[[rules]]
id = "LOCATION"
severity = "critical"
step = "create"
check = { header = "Location", matches = "^/v3/orders/ord-[0-9]+$" }

[[rules]]
id = "STATUS"
severity = "critical"
step = "create"
check = { pointer = "/data/status", one_of = ["pending", "accepted"] }

[[rules]]
id = "TAGS"
severity = "high"
step = "create"
check = { pointer = "/data/tags", contains = "eu" }

[[rules]]
id = "ITEMS"
severity = "critical"
step = "create"
check = { pointer = "/data/items", length = 3 }

[[rules]]
id = "NO_ERROR"
severity = "critical"
step = "create"
check = { pointer = "/error", exists = true, not = true }

[[rules]]
id = "SAME_ORDER"
severity = "critical"
step = "fetch"
check = { pointer = "/order", equals = "{{order}}" }

[[rules]]
id = "CONFIRMED"
severity = "critical"
step = "fetch"
check = { pointer = "/status", matches = "^confirm" }
"#;

fn run(drops_a_tag: bool) -> RunResult {
    let server = serve(orders(drops_a_tag));
    let (_dir, target) = handoff_target("checks", "ORDERS", PROCEDURE);
    let text = format!(
        r#"name = "orders"
suite = "reliability"
timeout = "30s"
{target}
[load]
iterations = 40
concurrency = 4
[thresholds]
success_rate = ">= 1.0"
"#
    );
    run_plan(&text, &server.url, None)
}

#[test]
fn every_kind_of_check_passes_on_a_correct_service() {
    let r = run(false);
    assert_eq!(r.totals.succeeded, 40, "{:?}", r.metrics.error_samples);
    assert_eq!(r.status, harness::result::Status::Passed, "{:?}", r.reason);
}

#[test]
fn a_missing_tag_fails_its_rule_and_says_what_it_found() {
    let r = run(true);
    assert_eq!(r.totals.failed, 10, "every fourth of 40");
    assert_eq!(r.metrics.errors.get("validation.TAGS"), Some(&10));
    let sample = &r.metrics.error_samples["validation.TAGS"][0];
    assert!(
        sample.contains("/data/tags is [\"new\"], which does not contain \"eu\""),
        "{sample}"
    );
}
