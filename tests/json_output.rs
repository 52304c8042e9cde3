//! `--json` on `run`, `validate` and `compare`: stdout is one JSON document that matches its schema
//! in `schemas/`, and nothing else is on stdout; what a person reads goes to stderr.

mod common;

use axum::Router;
use axum::routing::get;
use common::*;

fn scenario() -> &'static str {
    r#"name = "ping"
suite = "reliability"
timeout = "30s"
[target]
kind = "http"
url = "http://127.0.0.1:1"
[target.request]
path = "/v1/ping"
[load]
iterations = 30
concurrency = 3
[thresholds]
success_rate = ">= 1.0"
"#
}

fn pong() -> Router {
    Router::new().route("/v1/ping", get(|| async { "{\"pong\":true}" }))
}

#[test]
fn run_prints_the_result_it_wrote_and_compare_prints_its_verdicts() {
    let server = serve(pong());
    let dir = temp_dir("json-run");
    let file = write_scenario(&dir, "ping", scenario());
    let mut results = Vec::new();
    for name in ["base", "new"] {
        let out = dir.join(name);
        let mut args = run_args(&file, &server.url, &out);
        args.push("--json".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = run_harness(&args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let printed: serde_json::Value =
            serde_json::from_str(&stdout(&o)).expect("stdout is one JSON document");
        assert_matches("result.schema.json", &printed);
        assert_eq!(printed, read_result(&out), "stdout is result.json");
        assert!(
            stderr(&o).contains(out.to_str().unwrap()),
            "the folder is said on stderr"
        );
        results.push(out.join("result.json"));
    }
    let o = run_harness(&[
        "compare",
        results[0].to_str().unwrap(),
        results[1].to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.code().is_some_and(|c| c <= 1), "{}", stderr(&o));
    let c: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("one JSON document");
    assert_matches("compare.schema.json", &c);
    assert_eq!(c["base"]["scenario"], "ping");
    let metrics: Vec<&str> = c["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["metric"].as_str().unwrap())
        .collect();
    assert!(metrics.contains(&"success_rate"), "{metrics:?}");
    let success = c["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "success_rate")
        .unwrap();
    assert_eq!(success["verdict"], "within_noise", "{success}");
    // Exit 1 and `regressed` agree.
    assert_eq!(
        o.status.code() == Some(1),
        !c["regressed"].as_array().unwrap().is_empty()
    );
}

#[test]
fn validate_lists_each_name_with_its_problems_in_place() {
    let dir = temp_dir("json-validate");
    let broken = write_scenario(
        &dir,
        "broken",
        "name = \"broken\"\nsuite = \"reliability\"\n[load]\niterations = 0\n",
    );
    let good = write_scenario(&dir, "ping", scenario());
    let o = run_harness(&[
        "validate",
        good.to_str().unwrap(),
        broken.to_str().unwrap(),
        "NO_SUCH_STANDARD",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("one JSON document");
    assert_matches("validate.schema.json", &v);
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(
        (
            items[0]["valid"].as_bool(),
            items[0]["problems"].as_array().map(Vec::len)
        ),
        (Some(true), Some(0))
    );
    assert_eq!(items[1]["valid"], false);
    let problems = items[1]["problems"].as_array().unwrap();
    // The same problems the plain output lists, each with its place.
    let plain = run_harness(&["validate", broken.to_str().unwrap()]);
    let plain_lines: Vec<String> = stderr(&plain)
        .lines()
        .filter(|l| l.contains(".toml:"))
        .map(str::to_string)
        .collect();
    assert_eq!(problems.len(), plain_lines.len(), "{}", stderr(&plain));
    for (p, line) in problems.iter().zip(&plain_lines) {
        let place = format!(
            "{}:{}:{}: {}",
            p["file"].as_str().unwrap(),
            p["line"],
            p["column"],
            p["key"].as_str().unwrap()
        );
        assert!(line.starts_with(&place), "{line} vs {place}");
    }
    assert!(
        problems.iter().any(|p| p["key"] == "load.iterations"),
        "{problems:?}"
    );
    assert_eq!(items[2]["valid"], false);
    assert!(
        items[2]["error"]
            .as_str()
            .unwrap()
            .contains("NO_SUCH_STANDARD"),
        "{}",
        items[2]
    );
}
