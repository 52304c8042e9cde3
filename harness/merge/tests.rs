use super::*;

/// A shard's result, made from a saved run.
fn shard(index: u32, count: u32) -> Part {
    let mut result: RunResult = serde_json::from_str(include_str!(
        "../../tests/fixtures/results/failure-injection-broken-rollback.json"
    ))
    .unwrap();
    result.shard = Shard { index, count };
    result.status = Status::Passed;
    Part {
        source: format!("shard{index}/result.json"),
        result,
    }
}

#[test]
fn shards_that_do_not_belong_together_are_refused_each_problem_said() {
    let mut other = shard(1, 3);
    other.result.scenario = "OTHER".into();
    other.result.schema_version = 9;
    let err = merge(vec![shard(0, 3), other, shard(0, 3)], false).unwrap_err();
    let text = err.to_string();
    for says in [
        "shard1/result.json: the scenario is `OTHER`, but shard0/result.json has",
        "shard1/result.json: schema version 9 is not this harness's (1)",
        "shard 0 is given twice: shard0/result.json and shard0/result.json",
        "shard 2 of 3 is missing",
    ] {
        assert!(text.contains(says), "{says:?} in\n{text}");
    }
    assert_eq!(
        merge(Vec::new(), true).unwrap_err().problems,
        ["no shard results to merge"]
    );
}

#[test]
fn a_result_without_histograms_cannot_be_merged() {
    let mut old = shard(1, 2);
    old.result.metrics.latency_hdr = Some("not base64!".into());
    let err = merge(vec![shard(0, 2), old], false).unwrap_err();
    assert!(
        err.problems[0].starts_with("metrics.latency_hdr: cannot be read"),
        "{err}"
    );
}

#[test]
fn checks_pass_only_where_every_shard_passed_them() {
    let mut a = shard(0, 2);
    let mut b = shard(1, 2);
    a.result.checks = vec![CheckResult::new("run_setup", true, "3 requests")];
    b.result.checks = vec![CheckResult::new(
        "run_setup",
        false,
        "request 2 of 3 failed",
    )];
    a.result
        .checks
        .push(CheckResult::new("rate_limit.conforms", true, "40/s"));
    let merged = checks(&[&a.result, &b.result]);
    assert_eq!(merged.len(), 2);
    assert!(!merged[0].passed);
    assert_eq!(merged[0].detail, "shard 1: request 2 of 3 failed");
    assert_eq!(
        merged[1].detail, "40/s",
        "a probe's check keeps its shard's detail"
    );
}
