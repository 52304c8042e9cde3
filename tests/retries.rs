//! Retries and rate limits against services the harness was not written for: an orders API that
//! throttles with 429 and `Retry-After`, one that answers 503 asking for more time than the scenario
//! allows, one whose first attempts fail with 500, and a quote API behind one token bucket shared by
//! every client. The servers keep their own log of when each request came, and the tests compare it
//! with what result.json says.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::*;

/// When each attempt of each idempotency key arrived.
type Log = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

/// `POST /v2/orders`: attempt `n` (from 1) of a key gets `answer(n)`.
fn orders(log: Log, answer: fn(usize) -> Response) -> Router {
    Router::new()
        .route(
            "/v2/orders",
            post(
                move |State(log): State<Log>, headers: HeaderMap| async move {
                    let key = headers
                        .get("idempotency-key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let n = {
                        let mut log = log.lock().unwrap();
                        let attempts = log.entry(key).or_default();
                        attempts.push(Instant::now());
                        attempts.len()
                    };
                    answer(n)
                },
            ),
        )
        .with_state(log)
}

fn scenario(retry: &str) -> String {
    format!(
        r#"name = "orders"
suite = "reliability"
timeout = "60s"
iteration_timeout = "20s"
[target]
kind = "http"
url = "http://127.0.0.1:1"
[target.request]
method = "POST"
path = "/v2/orders"
headers = {{ Idempotency-Key = "{{{{uuid}}}}" }}
body = {{ sku = "A-1", quantity = 2 }}
{retry}
[load]
iterations = 6
concurrency = 3
"#
    )
}

#[test]
fn a_429_with_retry_after_is_waited_out_and_counted() {
    let log = Log::default();
    let server = serve(orders(Arc::clone(&log), |n| {
        if n == 1 {
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                "slow down",
            )
                .into_response()
        } else {
            (StatusCode::CREATED, "{\"id\": 1}").into_response()
        }
    }));
    let text = scenario("retries = 3") + "[thresholds]\n\"retries.count\" = \"<= 6\"\n";
    let r = run_plan(&text, &server.url, None);
    assert_eq!(r.totals.succeeded, 6, "{:?}", r.metrics.error_samples);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 6, "one key per iteration");
    for attempts in log.values() {
        assert_eq!(attempts.len(), 2, "one refusal, one retry, nothing more");
        let gap = attempts[1] - attempts[0];
        assert!(
            gap >= Duration::from_secs(1),
            "the retry came {gap:?} after the 429, before its Retry-After of 1 s"
        );
    }
    let retries = r.metrics.retries.as_ref().expect("retries are counted");
    assert_eq!((retries.iterations, retries.retries), (6, 6));
    assert_eq!(retries.by_kind.get("rate_limited"), Some(&6));
    assert_eq!(retries.honoured_retry_after, 6);
    assert!(retries.waited_s >= 6.0, "{retries:?}");
    let ok = r.metrics.latency_ok_ms.unwrap();
    assert!(ok.min >= 1000.0, "the wait is part of the latency: {ok:?}");
    let count = r
        .thresholds
        .iter()
        .find(|v| v.metric == "retries.count")
        .unwrap();
    assert_eq!((count.actual, count.passed), (Some(6.0), true), "{count:?}");
    assert_eq!(r.status, harness::result::Status::Passed, "{:?}", r.reason);
}

#[test]
fn a_retry_after_beyond_the_cap_ends_the_retries() {
    let log = Log::default();
    let server = serve(orders(Arc::clone(&log), |_| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "30")],
            "maintenance",
        )
            .into_response()
    }));
    let r = run_plan(
        &scenario("retries = 3\nretry = { max_retry_after = \"2s\" }"),
        &server.url,
        None,
    );
    assert_eq!(r.totals.failed, 6);
    assert!(
        log.lock().unwrap().values().all(|a| a.len() == 1),
        "never retried earlier than asked"
    );
    let retries = r.metrics.retries.as_ref().unwrap();
    assert_eq!((retries.retries, retries.beyond_cap), (0, 6));
    let samples = r.metrics.error_samples.get("http_5xx").unwrap().join(" ");
    assert!(
        samples
            .contains("not retried: the target asked to retry after 30s, beyond max_retry_after"),
        "{samples}"
    );
}

#[test]
fn server_errors_absorbed_by_retries_are_counted_and_backed_off() {
    let log = Log::default();
    let server = serve(orders(Arc::clone(&log), |n| {
        if n <= 2 {
            (StatusCode::INTERNAL_SERVER_ERROR, "try again").into_response()
        } else {
            (StatusCode::CREATED, "{}").into_response()
        }
    }));
    let r = run_plan(
        &scenario(
            "retries = 3\nretry = { backoff = \"exponential\", delay = \"40ms\", max_delay = \"1s\" }",
        ),
        &server.url,
        None,
    );
    assert_eq!(r.totals.succeeded, 6);
    assert!(
        r.metrics.errors.is_empty(),
        "what the retries absorbed is no failure"
    );
    let retries = r.metrics.retries.as_ref().unwrap();
    assert_eq!(retries.by_kind.get("http_5xx"), Some(&12), "{retries:?}");
    assert_eq!(retries.honoured_retry_after, 0);
    for attempts in log.lock().unwrap().values() {
        assert_eq!(attempts.len(), 3);
        // 40 ms then 80 ms, each with jitter over its upper half.
        assert!(attempts[1] - attempts[0] >= Duration::from_millis(20));
        assert!(attempts[2] - attempts[1] >= Duration::from_millis(40));
    }
    // Without retries the same service fails every iteration, and nothing is counted as retried.
    let log = Log::default();
    let server = serve(orders(Arc::clone(&log), |_| {
        (StatusCode::INTERNAL_SERVER_ERROR, "try again").into_response()
    }));
    let r = run_plan(&scenario(""), &server.url, None);
    assert_eq!(r.totals.failed, 6);
    assert!(r.metrics.retries.is_none(), "no request may be retried");
}

#[test]
fn a_broken_retry_table_is_refused_with_its_location() {
    let dir = temp_dir("retry-bad");
    let text = scenario(
        "retries = 2\nretry = { backoff = \"linear\", honour_retry_after = false, max_retry_after = \"3s\", jitter = true }",
    );
    let path = write_scenario(&dir, "orders", &text);
    let o = run_harness(&["validate", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    for want in [
        ":14:21: target.request.retry.backoff: `linear` is not an accepted value — expected one of `fixed`, `exponential`",
        ":14:83: target.request.retry.jitter: unknown key `jitter`",
        ":14:9: target.request.retry.max_retry_after: max_retry_after is set but honour_retry_after = false",
    ] {
        assert!(err.contains(want), "{want}\nin\n{err}");
    }
}

/// `GET /v1/quote` behind one token bucket for every client: `rate` per second, `burst` deep; a
/// refusal is 429 with `Retry-After: 1`.
fn quotes(rate: f64, burst: f64) -> Router {
    let bucket = Arc::new(Mutex::new((burst, Instant::now())));
    Router::new().route(
        "/v1/quote",
        get(move || {
            let bucket = Arc::clone(&bucket);
            async move {
                let mut b = bucket.lock().unwrap();
                let now = Instant::now();
                b.0 = (b.0 + rate * (now - b.1).as_secs_f64()).min(burst);
                b.1 = now;
                if b.0 >= 1.0 {
                    b.0 -= 1.0;
                    (StatusCode::OK, "{\"price\": 12.5}").into_response()
                } else {
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "1")],
                        "quota",
                    )
                        .into_response()
                }
            }
        }),
    )
}

#[test]
fn the_rate_limit_probe_leaves_a_shared_bucket_full_for_the_load() {
    // Two tokens a second, eight deep: the probe leaves the bucket empty, and a load of eight at
    // once, inside the limit with a full bucket, would be refused most of them if it started at once.
    let server = serve(quotes(2.0, 8.0));
    let text = r#"name = "quotes"
suite = "reliability"
timeout = "60s"
[target]
kind = "http"
url = "http://127.0.0.1:1"
[target.request]
path = "/v1/quote"
[load]
iterations = 8
concurrency = 8
[probes.rate_limit]
rate = "2/s"
burst = 8
idle = "4s"
sustain = "5s"
tolerance = "25%"
path = "/v1/quote"
[thresholds]
success_rate = ">= 1.0"
"#;
    let r = run_plan(text, &server.url, None);
    let rl = r.metrics.rate_limit.as_ref().unwrap();
    assert!(rl.rejected > 0, "the probe met the limit: {rl:?}");
    assert!(
        r.metrics.errors.is_empty(),
        "a load inside the limit is never refused after the probe: {:?}",
        r.metrics.error_samples
    );
    assert!(rl.conforms, "{rl:?}");
    assert_eq!(r.status, harness::result::Status::Passed, "{:?}", r.reason);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("after the rate-limit probe")),
        "{:?}",
        r.notes
    );
}

#[test]
fn a_shared_limit_nobody_declared_is_discovered_and_the_load_after_it_is_not_refused() {
    // 40 a second, 25 deep, for every client; the scenario declares nothing.
    let server = serve(quotes(40.0, 25.0));
    let text = r#"name = "quotes"
suite = "reliability"
timeout = "90s"
[target]
kind = "http"
url = "http://127.0.0.1:1"
[target.request]
path = "/v1/quote"
[load]
iterations = 20
concurrency = 20
[probes.rate_limit]
idle = "1s"
path = "/v1/quote"
[thresholds]
success_rate = ">= 1.0"
"rate_limit.inferred_rate" = "< 60/s"
"#;
    let r = run_plan(text, &server.url, None);
    let rl = r.metrics.rate_limit.as_ref().unwrap();
    let rate = rl.inferred_rate_per_s.unwrap_or_else(|| panic!("{rl:?}"));
    assert!((rate - 40.0).abs() <= 40.0 * 0.05, "40/s within 5%: {rl:?}");
    let burst = rl.inferred_burst.unwrap_or_else(|| panic!("{rl:?}"));
    assert!(
        (burst - 25.0).abs() <= 25.0 * 0.05,
        "a burst of 25 within 5%: {rl:?}"
    );
    println!(
        "discovered {rate:.2}/s, burst {burst:.2}; ramp {:?}",
        rl.ramp
    );
    assert!(rl.conforms, "{rl:?}");
    assert_eq!(rl.retry_after.unwrap().missing, 0);
    assert!(
        r.metrics.errors.is_empty(),
        "the load of 20 at once waited for the bucket to refill: {:?}",
        r.metrics.error_samples
    );
    assert_eq!(r.status, harness::result::Status::Passed, "{:?}", r.reason);
}

#[test]
fn a_service_with_no_limit_is_said_to_have_none_and_nothing_else_fails() {
    // The same quote API with a bucket no probe can drain: the ramp gives up at its max_rate and
    // says so; the load itself passes.
    let server = serve(quotes(1.0e6, 1.0e6));
    let text = r#"name = "quotes"
suite = "reliability"
timeout = "60s"
[target]
kind = "http"
url = "http://127.0.0.1:1"
[target.request]
path = "/v1/quote"
[load]
iterations = 20
concurrency = 4
[probes.rate_limit]
idle = "1s"
burst_size = 50
max_rate = "80/s"
path = "/v1/quote"
[thresholds]
success_rate = ">= 1.0"
"#;
    let r = run_plan(text, &server.url, None);
    let rl = r.metrics.rate_limit.as_ref().unwrap();
    assert_eq!((rl.rejected, rl.inferred_rate_per_s), (0, None), "{rl:?}");
    let rates: Vec<f64> = rl.ramp.iter().map(|s| s.rate_per_s).collect();
    assert_eq!(rates, [10.0, 20.0, 40.0, 80.0]);
    assert_eq!(
        failed_checks(&r),
        vec!["rate_limit.conforms"],
        "{:#?}",
        r.checks
    );
    let c = r
        .checks
        .iter()
        .find(|c| c.name == "rate_limit.conforms")
        .unwrap();
    assert!(
        c.detail.contains("nothing was rejected up to 80.0/s"),
        "{}",
        c.detail
    );
    assert!(failed_thresholds(&r).is_empty(), "{:#?}", r.thresholds);
}

#[test]
fn a_retry_budget_keeps_a_failing_service_from_being_hammered() {
    let log = Log::default();
    let server = serve(orders(Arc::clone(&log), |_| {
        (StatusCode::SERVICE_UNAVAILABLE, "down").into_response()
    }));
    let text = scenario("retries = 3\nretry = { delay = \"1ms\", budget = \"10%\" }")
        .replace("iterations = 6", "iterations = 50")
        .replace("concurrency = 3", "concurrency = 5");
    let r = run_plan(&text, &server.url, None);
    assert_eq!(r.totals.failed, 50);
    let requests: usize = log.lock().unwrap().values().map(Vec::len).sum();
    // 50 first attempts allow 10% more, beyond the first 10: about 15 retries (a few more may slip
    // through while workers race), where three retries each would have made 200 requests.
    assert!(
        (60..=70).contains(&requests),
        "{requests} requests reached the service"
    );
    let retries = r.metrics.retries.as_ref().unwrap();
    assert!(retries.over_budget >= 30, "{retries:?}");
    assert_eq!(retries.retries as usize, requests - 50);
    let samples = r.metrics.error_samples["http_5xx"].join(" ");
    assert!(
        samples.contains("the retry budget (10% of first attempts) is spent"),
        "{samples}"
    );
}
