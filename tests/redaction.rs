//! Credentials stay out of everything the harness writes, even when the target echoes them back: a
//! service that answers 403 quoting the `Authorization` and `X-Api-Key` headers and the query it got,
//! reached with a password in the target URL (sent as Basic authorization), an API key and an
//! `access_token` query parameter. result.json, report.html, junit.xml, summary.md and the terminal
//! must hold none of them, in any encoding the client sent.

mod common;

use axum::Router;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use common::*;

const TOKEN: &str = "s3cr3t-t0ken-81";
const QUERY_SECRET: &str = "qq-secret-77";
const PASSWORD: &str = "hunter22x";
/// `ann:hunter22x` as the client sends it.
const BASIC: &str = "YW5uOmh1bnRlcjIyeA==";

#[test]
fn credentials_echoed_by_the_target_are_redacted_everywhere() {
    let server = serve(Router::new().route(
        "/x",
        get(|headers: HeaderMap, RawQuery(q): RawQuery| async move {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            (
                StatusCode::FORBIDDEN,
                format!(
                    "denied for {} and key {} with {}",
                    header("authorization"),
                    header("x-api-key"),
                    q.unwrap_or_default()
                ),
            )
        }),
    ));
    let dir = temp_dir("redaction");
    let file = write_scenario(
        &dir,
        "secret",
        &format!(
            r#"name = "secret"
suite = "reliability"
timeout = "20s"

[target]
kind = "http"
url = "http://127.0.0.1:1"

[target.request]
path = "/x?access_token={QUERY_SECRET}&page=2"
headers = {{ X-Api-Key = "{TOKEN}" }}
retries = 0

[load]
iterations = 3
concurrency = 1

[thresholds]
success_rate = ">= 0.99"
"#
        ),
    );
    let out = dir.join("out");
    let url = server
        .url
        .replace("http://", &format!("http://ann:{PASSWORD}@"));
    let o = harness()
        .args(run_args(&file, &url, &out))
        .output()
        .unwrap();
    // Without --quiet too, for the banner.
    let mut loud = run_args(&file, &url, &dir.join("out2"));
    loud.retain(|a| a != "--quiet");
    let o2 = harness().args(loud).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
    let result = std::fs::read_to_string(out.join("result.json")).unwrap();
    assert!(
        result.contains(
            "denied for Basic [redacted] and key [redacted] with access_token=[redacted]&page=2"
        ),
        "the echo is kept, the secrets masked: {result}"
    );
    for f in ["result.json", "report.html", "junit.xml", "summary.md"] {
        let text = std::fs::read_to_string(out.join(f)).unwrap();
        for secret in [TOKEN, QUERY_SECRET, PASSWORD, BASIC] {
            assert!(!text.contains(secret), "{f} holds {secret}");
        }
    }
    for o in [&o, &o2] {
        let terminal = stdout(o) + &stderr(o);
        for secret in [TOKEN, QUERY_SECRET, PASSWORD] {
            assert!(
                !terminal.contains(secret),
                "the terminal shows {secret}: {terminal}"
            );
        }
    }
}
