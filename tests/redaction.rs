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

/// A value taken from the environment is a secret wherever it goes, whatever its header is called:
/// a service that accepts only the right token (and echoes what it got when refusing) passes the run
/// with the token from the environment, and refuses the wrong one from an env file — whose echo
/// reaches no output either.
#[test]
fn values_from_the_environment_are_sent_and_never_written() {
    const ENV_TOKEN: &str = "env-tok-5150-xyz";
    const FILE_TOKEN: &str = "file-tok-8008-abc";
    let server = serve(Router::new().route(
        "/q",
        get(|headers: HeaderMap, RawQuery(q): RawQuery| async move {
            let trace = headers
                .get("x-trace")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            if trace == ENV_TOKEN && q.as_deref() == Some(&format!("who={ENV_TOKEN}")) {
                (StatusCode::OK, "ok".to_string())
            } else {
                (
                    StatusCode::UNAUTHORIZED,
                    format!("refused trace {trace} for {}", q.unwrap_or_default()),
                )
            }
        }),
    ));
    let dir = temp_dir("redaction-env");
    // Header and query names that say nothing of secrets: only the origin makes them secret.
    let file = write_scenario(
        &dir,
        "from_env",
        r#"name = "from_env"
suite = "reliability"
timeout = "20s"

[target]
kind = "http"
url = "http://127.0.0.1:1"

[target.request]
path = "/q?who={{env.HARNESS_TEST_TRACE}}"
headers = { X-Trace = "{{env.HARNESS_TEST_TRACE}}" }
retries = 0

[load]
iterations = 3
concurrency = 1

[thresholds]
success_rate = ">= 1.0"
"#,
    );
    let good = harness()
        .args(run_args(&file, &server.url, &dir.join("good")))
        .env("HARNESS_TEST_TRACE", ENV_TOKEN)
        .output()
        .unwrap();
    assert_eq!(
        good.status.code(),
        Some(0),
        "the environment's value was sent: {}{}",
        stdout(&good),
        stderr(&good)
    );

    let env_file = dir.join("local.env");
    std::fs::write(
        &env_file,
        format!("# local only\nexport HARNESS_TEST_TRACE=\"{FILE_TOKEN}\"\n"),
    )
    .unwrap();
    let mut args = vec!["--env-file".to_string(), env_file.display().to_string()];
    args.extend(run_args(&file, &server.url, &dir.join("bad")));
    let bad = harness()
        .args(&args)
        .env_remove("HARNESS_TEST_TRACE")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
    let result = std::fs::read_to_string(dir.join("bad/result.json")).unwrap();
    assert!(
        result.contains("refused trace [redacted] for who=[redacted]"),
        "the file's value was sent, and its echo masked: {result}"
    );
    for (out, o) in [("good", &good), ("bad", &bad)] {
        for f in ["result.json", "report.html", "junit.xml", "summary.md"] {
            let text = std::fs::read_to_string(dir.join(out).join(f)).unwrap();
            for secret in [ENV_TOKEN, FILE_TOKEN] {
                assert!(!text.contains(secret), "{out}/{f} holds {secret}");
            }
        }
        let terminal = stdout(o) + &stderr(o);
        for secret in [ENV_TOKEN, FILE_TOKEN] {
            assert!(
                !terminal.contains(secret),
                "{out}: the terminal shows {secret}"
            );
        }
    }
}

/// A variable that is not set is found by `validate`, at its line, unless it has a fallback.
#[test]
fn a_missing_environment_variable_is_a_validation_error_at_its_line() {
    let dir = temp_dir("redaction-env-missing");
    let file = write_scenario(
        &dir,
        "missing_env",
        r#"name = "missing_env"
suite = "reliability"
timeout = "20s"

[target]
kind = "http"
url = "http://127.0.0.1:{{env.HARNESS_TEST_PORT:-1}}"

[target.request]
path = "/"
headers = { Authorization = "Bearer {{env.HARNESS_TEST_NOT_SET_ANYWHERE}}" }

[load]
iterations = 1
concurrency = 1
"#,
    );
    let o = harness()
        .args(["validate", file.to_str().unwrap()])
        .env_remove("HARNESS_TEST_NOT_SET_ANYWHERE")
        .env_remove("HARNESS_TEST_PORT")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let text = stdout(&o) + &stderr(&o);
    assert!(
        text.contains("missing_env.toml:11:29:")
            && text.contains("the environment variable HARNESS_TEST_NOT_SET_ANYWHERE is not set"),
        "{text}"
    );
    assert_eq!(
        text.matches("is not set").count(),
        1,
        "the URL's variable has a fallback: {text}"
    );
    let o = harness()
        .args(["validate", file.to_str().unwrap()])
        .env("HARNESS_TEST_NOT_SET_ANYWHERE", "now-it-is")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o) + &stderr(&o));
}

/// Names the user lists are secret too: the same run with and without `redact = [...]` shows the
/// list is what masks them.
#[test]
fn listed_names_are_masked_and_unlisted_ones_are_not() {
    const SIG: &str = "sig-value-4242";
    const REF: &str = "ref-value-1717";
    let server = serve(Router::new().route(
        "/r",
        get(|headers: HeaderMap, RawQuery(q): RawQuery| async move {
            let sig = headers
                .get("x-request-sig")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            (
                StatusCode::FORBIDDEN,
                format!("bad {sig} with {}", q.unwrap_or_default()),
            )
        }),
    ));
    let dir = temp_dir("redaction-listed");
    let scenario = |redact: &str| {
        format!(
            r#"name = "listed"
suite = "reliability"
timeout = "20s"
{redact}
[target]
kind = "http"
url = "http://127.0.0.1:1"

[target.request]
path = "/r?trace_ref={REF}"
headers = {{ X-Request-Sig = "{SIG}" }}
retries = 0

[load]
iterations = 2
concurrency = 1

[thresholds]
success_rate = ">= 0.99"
"#
        )
    };
    let listed = write_scenario(
        &dir,
        "listed",
        &scenario("redact = [\"x-request-sig\", \"TRACE_REF\"]\n"),
    );
    let plain = write_scenario(&dir, "plain", &scenario(""));
    for (file, out) in [(&listed, "listed-out"), (&plain, "plain-out")] {
        let o = harness()
            .args(run_args(file, &server.url, &dir.join(out)))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    }
    let listed = std::fs::read_to_string(dir.join("listed-out/result.json")).unwrap();
    assert!(
        listed.contains("bad [redacted] with trace_ref=[redacted]"),
        "{listed}"
    );
    let plain = std::fs::read_to_string(dir.join("plain-out/result.json")).unwrap();
    assert!(
        plain.contains(SIG) && plain.contains(REF),
        "unlisted, they are ordinary values"
    );
}
