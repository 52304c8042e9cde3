//! `harness kubernetes`: the manifest is valid YAML, its Job is indexed with N completions, and
//! what it tells each pod to run, run here as the pods would (the ConfigMap's files at their mount,
//! `JOB_COMPLETION_INDEX` set, the merge Job's command started beside the shards), parses with
//! `run`'s own parser and makes the run one process makes with the same seed. Against a ledger
//! service written for these tests (holds on accounts under `/v3/…`, answers nested under `data`),
//! not a reference target.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use clap::Parser;
use common::*;
use harness::cli::{Cli, Command};
use harness::result::RunResult;
use serde_json::json;
use yaml_rust2::{Yaml, YamlLoader};

type Holds = Arc<Mutex<HashMap<String, String>>>;

/// Accounts whose number ends in 7 are frozen: their hold is refused with 423.
fn ledger() -> Router {
    Router::new()
        .route(
            "/v3/accounts/{id}/holds",
            post(
                |State(h): State<Holds>, UrlPath(id): UrlPath<String>| async move {
                    if id.ends_with('7') {
                        return (
                            StatusCode::LOCKED,
                            Json(json!({"data": null, "errors": [{"code": "FROZEN"}]})),
                        );
                    }
                    h.lock().unwrap().insert(id.clone(), "held".into());
                    (
                        StatusCode::CREATED,
                        Json(json!({"data": {"hold": {"account": id, "state": "held"}}})),
                    )
                },
            ),
        )
        .route(
            "/v3/accounts/{id}",
            get(
                |State(h): State<Holds>, UrlPath(id): UrlPath<String>| async move {
                    let state = h.lock().unwrap().get(&id).cloned().unwrap_or("open".into());
                    Json(json!({"data": {"account": {"id": id, "state": state}}}))
                },
            ),
        )
        .with_state(Holds::default())
}

const PROCEDURE: &str = r#"
name = "HOLD_FUNDS"

[variables]
account = "{{iteration}}"

[[steps]]
id = "hold"
method = "POST"
path = "/v3/accounts/{{account}}/holds"
expect_status = 201

[[steps]]
id = "confirm"
path = "/v3/accounts/{{account}}"

[[rules]]
id = "H1"
severity = "critical"
step = "confirm"
check = { pointer = "/data/account/state", equals = "held" }
"#;

const SCENARIO: &str = r#"
name = "ledger"
suite = "reliability"
timeout = "60s"
iteration_timeout = "5s"

[target]
kind = "handoff"
url = "http://127.0.0.1:1"
procedure = "HOLD_FUNDS"

[tls]
ca = "certs/ca.pem"

[load]
iterations = 120
concurrency = 6

[thresholds]
success_rate = ">= 0.5"
"#;

/// A scenario folder as a user keeps one: the scenario, its procedure in procedures/, a CA file.
fn library() -> PathBuf {
    let dir = temp_dir("kubernetes");
    std::fs::create_dir_all(dir.join("procedures")).unwrap();
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    std::fs::write(dir.join("procedures/HOLD_FUNDS.toml"), PROCEDURE).unwrap();
    std::fs::write(dir.join("ledger.toml"), SCENARIO).unwrap();
    let ca = rcgen::generate_simple_self_signed(vec!["ledger.internal".into()]).unwrap();
    std::fs::write(dir.join("certs/ca.pem"), ca.cert.pem()).unwrap();
    dir
}

fn manifest(dir: &Path, args: &[&str]) -> Vec<Yaml> {
    let o = harness()
        .args(["kubernetes", "ledger", "--scenarios"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"))
}

fn strings(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .unwrap()
        .iter()
        .map(|a| a.as_str().expect("every arg is a string").to_string())
        .collect()
}

/// Writes the ConfigMap's files (`docs[0]`) where the shard Job's volume items put them, under
/// `config` (the mount); returns their paths.
fn mount_config(docs: &[Yaml], config: &Path) -> Vec<String> {
    let pod = &docs[1]["spec"]["template"]["spec"];
    let mut paths = Vec::new();
    for item in pod["volumes"][1]["configMap"]["items"].as_vec().unwrap() {
        let (key, path) = (
            item["key"].as_str().unwrap(),
            item["path"].as_str().unwrap(),
        );
        let file = config.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, docs[0]["data"][key].as_str().unwrap()).unwrap();
        paths.push(path.to_string());
    }
    paths
}

/// A container's args as the pod runs them: Kubernetes puts in `$(JOB_COMPLETION_INDEX)`; here the
/// mounts are folders of the test's.
fn as_pod(args: &[String], index: u32, config: &Path, results: &Path) -> Vec<String> {
    args.iter()
        .map(|a| {
            let a = a.replace("$(JOB_COMPLETION_INDEX)", &index.to_string());
            let a = match a.strip_prefix("/etc/harness") {
                Some(rest) => format!("{}{rest}", config.display()),
                None => a,
            };
            match a.strip_prefix("/results") {
                Some(rest) => format!("{}{rest}", results.display()),
                None => a,
            }
        })
        .collect()
}

#[test]
fn the_manifests_pods_run_the_plan_run_makes_and_the_merge_job_merges_them() {
    let server = serve(ledger());
    let dir = library();
    let docs = manifest(
        &dir,
        &[
            "--shards",
            "3",
            "--seed",
            "11",
            "--target",
            &server.url,
            "--name",
            "ledger-ci",
            "--namespace",
            "load",
            "--results",
            "ledger-results",
        ],
    );
    assert_eq!(docs.len(), 3);
    let (cm, job, merge) = (&docs[0], &docs[1], &docs[2]);
    assert_eq!(cm["kind"].as_str(), Some("ConfigMap"));
    assert_eq!(job["kind"].as_str(), Some("Job"));
    assert_eq!(job["metadata"]["name"].as_str(), Some("ledger-ci"));
    assert_eq!(job["metadata"]["namespace"].as_str(), Some("load"));
    assert_eq!(job["spec"]["completionMode"].as_str(), Some("Indexed"));
    assert_eq!(job["spec"]["completions"].as_i64(), Some(3));
    assert_eq!(job["spec"]["parallelism"].as_i64(), Some(3));
    assert_eq!(merge["metadata"]["name"].as_str(), Some("ledger-ci-merge"));
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"].as_str(), Some("Never"));
    let claim = |spec: &Yaml| spec["volumes"][0]["persistentVolumeClaim"]["claimName"].clone();
    assert_eq!(claim(pod).as_str(), Some("ledger-results"));
    assert_eq!(
        claim(&merge["spec"]["template"]["spec"]).as_str(),
        Some("ledger-results")
    );

    // The ConfigMap's files, where the volume's items put them: the very files of the library.
    let root = temp_dir("kubernetes-pod");
    let (config, results) = (root.join("etc-harness"), root.join("results"));
    std::fs::create_dir_all(&results).unwrap();
    let mut paths = mount_config(&docs, &config);
    paths.sort();
    assert_eq!(
        paths,
        [
            "certs/ca.pem",
            "procedures/HOLD_FUNDS.toml",
            "scenario.toml"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(config.join("procedures/HOLD_FUNDS.toml")).unwrap(),
        PROCEDURE
    );
    assert_eq!(
        std::fs::read_to_string(config.join("scenario.toml")).unwrap(),
        SCENARIO
    );

    // Each pod's command line is one `harness run` parses: shard count from the flag, index from
    // the environment, the shared seed.
    let shard_args = strings(&pod["containers"][0]["args"]);
    let cli = Cli::try_parse_from(std::iter::once("harness".to_string()).chain(shard_args.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    match cli.command {
        Command::Run(run) => {
            assert_eq!((run.shards, run.shard, run.seed), (Some(3), None, Some(11)));
            assert!(run.defer_verdict);
        }
        other => panic!("not run: {other:?}"),
    }

    // The merge Job's command starts with the shards (as it does in the cluster) and waits.
    let merge_args = as_pod(
        &strings(&merge["spec"]["template"]["spec"]["containers"][0]["args"]),
        0,
        &config,
        &results,
    );
    let merging = harness()
        .args(&merge_args)
        .current_dir(&results)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pods: Vec<_> = (0..3)
        .map(|i| {
            harness()
                .args(as_pod(&shard_args, i, &config, &results))
                .env("JOB_COMPLETION_INDEX", i.to_string())
                .current_dir(&results)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, p) in pods.into_iter().enumerate() {
        let o = p.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "pod {i}: {}", stderr(&o));
    }
    let o = merging.wait_with_output().unwrap();
    let merged: RunResult =
        harness::result::write::read_json(&results.join("ledger-ci/merged/result.json"))
            .unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(merged.merged_from.as_ref().unwrap().shards, 3);

    // One process with the same seed: the same iterations, the same refusals.
    let whole = root.join("whole");
    let o = harness()
        .args(["run", "ledger", "--scenarios"])
        .arg(&dir)
        .args(["--seed", "11", "--target", &server.url, "--quiet", "--out"])
        .arg(&whole)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let single: RunResult = harness::result::write::read_json(&whole.join("result.json")).unwrap();
    assert_eq!(merged.totals.iterations, single.totals.iterations);
    assert_eq!(merged.totals.iterations, 120);
    assert_eq!(merged.metrics.errors, single.metrics.errors);
    // Accounts 7, 17, …, 117 are frozen.
    assert_eq!(merged.totals.failed, 12, "{:?}", merged.metrics.errors);
    assert_eq!(single.totals.failed, 12);
    assert_eq!(merged.seed, 11);
}

#[test]
fn a_threshold_a_shard_fails_is_the_merges_verdict_not_the_pods() {
    let server = serve(ledger());
    let dir = library();
    std::fs::write(
        dir.join("ledger.toml"),
        SCENARIO.replace("success_rate = \">= 0.5\"", "success_rate = \">= 0.95\""),
    )
    .unwrap();
    let docs = manifest(
        &dir,
        &["--shards", "2", "--seed", "3", "--target", &server.url],
    );
    let pod = &docs[1]["spec"]["template"]["spec"];
    let root = temp_dir("kubernetes-verdict");
    let (config, results) = (root.join("etc"), root.join("results"));
    std::fs::create_dir_all(&results).unwrap();
    mount_config(&docs, &config);
    let shard_args = strings(&pod["containers"][0]["args"]);
    let mut deferred = 0;
    for i in 0..2 {
        let o = harness()
            .args(as_pod(&shard_args, i, &config, &results))
            .env("JOB_COMPLETION_INDEX", i.to_string())
            .current_dir(&results)
            .output()
            .unwrap();
        // Shard 1 holds every odd account, so all the frozen ones (80% success): it fails the
        // threshold, yet the pod succeeds: Kubernetes would otherwise count it failed.
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        if stderr(&o).contains("--defer-verdict") {
            deferred += 1;
        }
    }
    assert_eq!(deferred, 1);
    let merge_args = strings(&docs[2]["spec"]["template"]["spec"]["containers"][0]["args"]);
    let o = harness()
        .args(as_pod(&merge_args, 0, &config, &results))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "the merge says no: {}",
        stderr(&o)
    );
}

#[test]
fn what_cannot_go_into_a_manifest_is_refused_saying_what_to_do() {
    let dir = library();
    let refused = |extra: &[&str], scenario: Option<&str>| {
        if let Some(text) = scenario {
            std::fs::write(dir.join("ledger.toml"), text).unwrap();
        }
        let o = harness()
            .args(["kubernetes", "ledger", "--shards", "2", "--scenarios"])
            .arg(&dir)
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(o.stdout.is_empty(), "nothing printed when refused");
        stderr(&o)
    };
    let e = refused(&["--target", "http://ledger.payments.svc:8080"], None);
    assert!(e.contains("--allow-remote"), "{e}");
    let env = dir.join("tokens.env");
    std::fs::write(&env, "TOKEN=s3cret\n").unwrap();
    let e = refused(&["--env-file", env.to_str().unwrap()], None);
    assert!(e.contains("--env-secret"), "{e}");
    let e = refused(&["--name", "Ledger_CI"], None);
    assert!(e.contains("ledger-ci"), "{e}");
    // It exists and stays inside, but a path with `..` is not one a volume's items can hold.
    let outside = SCENARIO.replace(
        "procedure = \"HOLD_FUNDS\"",
        "procedure = \"procedures/../procedures/HOLD_FUNDS.toml\"",
    );
    let e = refused(&[], Some(&outside));
    assert!(e.contains("without `..`"), "{e}");
    let client = rcgen::generate_simple_self_signed(vec!["harness".into()]).unwrap();
    std::fs::write(dir.join("certs/client.pem"), client.cert.pem()).unwrap();
    std::fs::write(
        dir.join("certs/client.key"),
        client.signing_key.serialize_pem(),
    )
    .unwrap();
    let keyed = SCENARIO.replace(
        "ca = \"certs/ca.pem\"",
        "ca = \"certs/ca.pem\"\nclient_cert = \"certs/client.pem\"\nclient_key = \"certs/client.key\"",
    );
    let e = refused(&[], Some(&keyed));
    assert!(e.contains("--tls-secret"), "{e}");
}
