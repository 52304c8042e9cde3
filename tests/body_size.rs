//! The body-size probe against upload APIs the harness was not written for: a notes service that
//! caps bodies with axum's `DefaultBodyLimit` (413 past 50,000 bytes) and wants an API key, one that
//! takes any size, and one that falls over (500) on a body past its limit instead of refusing it.

mod common;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use common::*;

const LIMIT: usize = 50_000;

/// `POST /v1/notes`: a JSON body up to 50,000 bytes, with `X-Api-Key: n0tes-k3y`.
fn notes() -> Router {
    Router::new()
        .route(
            "/v1/notes",
            post(|headers: HeaderMap, body: Bytes| async move {
                if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some("n0tes-k3y") {
                    return (StatusCode::UNAUTHORIZED, "who are you".to_string());
                }
                match serde_json::from_slice::<serde_json::Value>(&body) {
                    Ok(_) => (
                        StatusCode::CREATED,
                        format!("{{\"stored\":{}}}", body.len()),
                    ),
                    Err(_) => (StatusCode::BAD_REQUEST, "not json".into()),
                }
            }),
        )
        .route("/", get(|| async { "notes" }))
        .layer(DefaultBodyLimit::max(LIMIT))
}

/// Any size accepted (up to what the test sends).
fn unlimited() -> Router {
    Router::new()
        .route(
            "/v1/notes",
            post(|body: Bytes| async move { body.len().to_string() }),
        )
        .layer(DefaultBodyLimit::disable())
}

/// Past 50,000 bytes the handler fails with 500 instead of refusing the body.
fn crashing() -> Router {
    Router::new()
        .route(
            "/v1/notes",
            post(|body: Bytes| async move {
                if body.len() > LIMIT {
                    (StatusCode::INTERNAL_SERVER_ERROR, "out of buffer")
                } else {
                    (StatusCode::OK, "ok")
                }
            }),
        )
        .layer(DefaultBodyLimit::disable())
}

fn check<'a>(r: &'a harness::result::RunResult, name: &str) -> &'a harness::result::CheckResult {
    r.checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}: {:#?}", r.checks))
}

fn scenario(probe: &str) -> String {
    format!(
        r#"name = "notes"
suite = "reliability"
timeout = "60s"
[target]
kind = "http"
url = "http://127.0.0.1:1"
[load]
iterations = 5
concurrency = 1
[probes.body_size]
path = "/v1/notes"
body = '{{"note": "{{{{payload}}}}"}}'
headers = {{ X-Api-Key = "n0tes-k3y" }}
{probe}
[thresholds]
success_rate = ">= 1.0"
"#
    )
}

#[test]
fn a_search_finds_the_limit_to_the_byte() {
    let server = serve(notes());
    let text = scenario("search = [\"1KiB\", \"4MiB\"]\n").replace(
        "[thresholds]\n",
        "[thresholds]\n\"body_size.limit\" = \">= 40000\"\n",
    );
    let r = run_plan(&text, &server.url, None);
    let b = r.metrics.body_size.as_ref().unwrap();
    assert_eq!(b.found_limit, Some(LIMIT as u64), "{b:#?}");
    assert!(failed_checks(&r).is_empty(), "{:#?}", r.checks);
    let searched = b.attempts.iter().filter(|a| a.purpose == "search").count();
    assert!(searched <= 25, "bisection over 4 MiB: {searched} requests");
    let over = b
        .attempts
        .iter()
        .find(|a| a.purpose == "over_limit")
        .unwrap();
    assert_eq!((over.bytes, over.status), (LIMIT as u64 + 1, Some(413)));
    let far = b
        .attempts
        .iter()
        .find(|a| a.purpose == "far_over_limit")
        .unwrap();
    assert!(far.bytes >= 4 * LIMIT as u64, "{far:?}");
    assert!(far.outcome.kept_out(), "{far:?}");
    assert_eq!(r.status, harness::result::Status::Passed, "{:?}", r.reason);
    let found = check(&r, "body_size.found");
    assert!(
        found.detail.starts_with("found 50000 bytes"),
        "{}",
        found.detail
    );
    println!("{}", found.detail);
}

#[test]
fn a_declared_limit_the_target_does_not_keep_fails_where_it_differs() {
    let server = serve(notes());
    // Declared 64 KiB; the service refuses past 50,000 bytes.
    let r = run_plan(&scenario("limit = \"64KiB\"\n"), &server.url, None);
    assert_eq!(
        failed_checks(&r),
        vec!["body_size.at_limit"],
        "{:#?}",
        r.checks
    );
    let at = check(&r, "body_size.at_limit");
    assert!(at.detail.contains("65536 bytes: 413"), "{}", at.detail);
    assert_eq!(r.metrics.body_size.as_ref().unwrap().found_limit, None);
    assert_eq!(r.status, harness::result::Status::Failed);
    // Declared right, it passes whole, and the limit is confirmed without a search.
    let r = run_plan(&scenario("limit = \"50000B\"\n"), &server.url, None);
    assert!(failed_checks(&r).is_empty(), "{:#?}", r.checks);
    assert_eq!(
        r.metrics.body_size.as_ref().unwrap().found_limit,
        Some(LIMIT as u64)
    );
    // Searching, with a declaration the search contradicts.
    let r = run_plan(
        &scenario("limit = \"64KiB\"\nsearch = [\"1KiB\", \"1MiB\"]\n"),
        &server.url,
        None,
    );
    let found = check(&r, "body_size.found");
    assert!(!found.passed);
    assert!(
        found
            .detail
            .starts_with("found 50000 bytes, declared 65536 (-15536 bytes"),
        "{}",
        found.detail
    );
}

#[test]
fn no_limit_and_a_crash_past_the_limit_are_each_said_plainly() {
    let server = serve(unlimited());
    let r = run_plan(
        &scenario("search = [\"1KiB\", \"2MiB\"]\n"),
        &server.url,
        None,
    );
    assert_eq!(
        failed_checks(&r),
        vec!["body_size.found"],
        "{:#?}",
        r.checks
    );
    let note = r.metrics.body_size.as_ref().unwrap().note.clone().unwrap();
    assert!(note.contains("2097152 bytes was accepted"), "{note}");

    let server = serve(crashing());
    let r = run_plan(&scenario("limit = \"50000B\"\n"), &server.url, None);
    assert_eq!(
        failed_checks(&r),
        vec!["body_size.over_limit", "body_size.far_over_limit"],
        "{:#?}",
        r.checks
    );
    let over = check(&r, "body_size.over_limit");
    assert!(over.detail.contains("50001 bytes: 500"), "{}", over.detail);
    // A search meets the 500 and stops there, saying why.
    let r = run_plan(
        &scenario("search = [\"1KiB\", \"1MiB\"]\n"),
        &server.url,
        None,
    );
    let found = check(&r, "body_size.found");
    assert!(!found.passed);
    assert!(
        found
            .detail
            .contains(": 500, neither accepted nor refused as too large"),
        "{}",
        found.detail
    );
}

#[test]
fn from_the_command_line_every_report_shows_the_limit() {
    let server = serve(notes());
    let dir = temp_dir("body-size-cli");
    let file = write_scenario(&dir, "notes", &scenario("limit = \"50000B\"\n"));
    let out = dir.join("out");
    let args = run_args(&file, &server.url, &out);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run_harness(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let result = read_result(&out);
    assert_matches_schema(&result);
    assert_eq!(result["metrics"]["body_size"]["found_limit"], 50000);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("Request body size — limit 50000 bytes"),
        "report.html"
    );
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("Body size: limit 50000 bytes"), "{md}");
}

/// A procedure that posts a padded note: `{{payload}}` of `pad` bytes.
fn padded_notes(pad: &str) -> harness::result::RunResult {
    let server = serve(notes());
    let procedure = format!(
        r#"name = "NOTES"

[variables]
payload = {{ pad = "{pad}" }}

[[steps]]
id = "post"
method = "POST"
path = "/v1/notes"
headers = {{ X-Api-Key = "n0tes-k3y" }}
body = {{ note = "{{{{payload}}}}" }}
expect_status = 201
"#
    );
    let (_dir, target) = handoff_target("padded-notes", "NOTES", &procedure);
    let text = format!(
        r#"name = "padded"
suite = "reliability"
timeout = "30s"
{target}
[load]
iterations = 6
concurrency = 2
[thresholds]
success_rate = ">= 1.0"
"#
    );
    run_plan(&text, &server.url, None)
}

#[test]
fn a_padded_body_goes_through_under_the_limit_and_is_refused_over_it() {
    let r = padded_notes("40KiB");
    assert_eq!(r.totals.succeeded, 6, "{:?}", r.metrics.error_samples);
    assert_eq!(r.status, harness::result::Status::Passed, "{:?}", r.reason);
    let r = padded_notes("60KiB");
    assert_eq!(r.totals.succeeded, 0);
    assert_eq!(
        r.metrics.errors.get("http_4xx"),
        Some(&6),
        "{:?}",
        r.metrics.errors
    );
}
