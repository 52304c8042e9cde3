//! The reference handoff service, tested over HTTP on 127.0.0.1:0: the report lifecycle's legal and
//! illegal transitions, validation errors, coordination (optimistic concurrency, checkpoints, leases
//! that expire, transfers), chaos controls, bounded bodies, and no resource ever with two owners
//! under concurrent transfers.

use std::time::Duration;

use harness::reference::chaos::ChaosSettings;
use harness::reference::handoff::{Defects, HandoffConfig};
use harness::reference::{self, Running};
use serde_json::{Value, json};

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json_body(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }
}

trait JsonBody {
    fn json_body(self, v: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, v: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(v.to_string())
    }
}

async fn start(config: HandoffConfig) -> (Running, Api) {
    let running = reference::start_handoff(config).await.unwrap();
    let api = Api {
        client: harness::drivers::http::build_client(64, &harness::net::Network::local().unwrap())
            .unwrap(),
        base: running.url.as_str().trim_end_matches('/').to_string(),
    };
    (running, api)
}

const R: &str = "/api/v1/agent-handoff";
const C: &str = "/api/v1/coordination";

async fn new_report(api: &Api) -> String {
    let (status, body) = api
        .post(
            &format!("{R}/reports"),
            json!({"pipeline_id": "p", "task_id": "t", "work_summary": "ten chars and more"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "draft");
    body["report_id"].as_str().unwrap().to_string()
}

async fn complete_components(api: &Api, id: &str) {
    for c in harness::reference::handoff::reports::COMPONENTS {
        let (s, b) = api
            .put(
                &format!("{R}/reports/{id}/components/{c}"),
                json!({"status": "completed", "progress_percentage": 100.0}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
}

#[tokio::test]
async fn the_report_lifecycle_allows_its_transitions_and_refuses_the_rest_with_a_reason() {
    let (running, api) = start(HandoffConfig::default()).await;
    let id = new_report(&api).await;
    let path = |p: &str| format!("{R}/reports/{id}{p}");

    // Not yet submittable: components incomplete.
    let (s, b) = api.post(&path("/submit"), json!({})).await;
    assert_eq!(s, 409);
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("components not completed: error_handling"),
        "{b}"
    );
    // Nothing can be reviewed or signed off while a draft.
    for (route, body) in [
        ("/start-review", json!({"reviewer": "rev"})),
        (
            "/review",
            json!({"review_status": "approved", "review_comments": "looks good"}),
        ),
        (
            "/sign-off",
            json!({"sign_off_role": "developer", "status": "approved"}),
        ),
    ] {
        let (s, b) = api.post(&path(route), body).await;
        assert_eq!(s, 409, "{route}: {b}");
        assert!(
            b["error"].as_str().unwrap().contains("report")
                && b["error"].as_str().unwrap().contains("draft"),
            "{b}"
        );
    }
    complete_components(&api, &id).await;
    let (s, b) = api.get(&path("")).await;
    assert_eq!((s, b["phase6_progress"].as_f64()), (200, Some(100.0)));

    // draft → submitted → under_review → amendments_required → (edit) → submitted → under_review → approved
    assert_eq!(
        api.post(&path("/submit"), json!({"submission_notes": "ready"}))
            .await
            .1["status"],
        "submitted"
    );
    let (s, _) = api.put(&path(""), json!({"quality_score": 0.5})).await;
    assert_eq!(s, 409, "a submitted report cannot be edited");
    assert_eq!(
        api.post(&path("/start-review"), json!({"reviewer": "rev"}))
            .await
            .1["status"],
        "under_review"
    );
    let (_, b) = api
        .post(
            &path("/review"),
            json!({"review_status": "amendments_required", "review_comments": "add tests"}),
        )
        .await;
    assert_eq!(b["status"], "amendments_required");
    let (s, b) = api
        .put(
            &path(""),
            json!({"work_summary": "amended summary with tests"}),
        )
        .await;
    assert_eq!(
        (s, &b["work_summary"]),
        (200, &json!("amended summary with tests"))
    );
    assert_eq!(
        api.post(&path("/submit"), json!({})).await.1["submissions"],
        2
    );
    api.post(&path("/start-review"), json!({"reviewer": "rev"}))
        .await;
    let (_, b) = api.post(&path("/review"), json!({"review_status": "approved", "review_comments": "all good", "quality_score": 0.95})).await;
    assert_eq!(
        (&b["status"], &b["quality_score"]),
        (&json!("approved"), &json!(0.95))
    );

    // Sign-offs: once per role; complete when every required role approved.
    for role in ["developer", "tech_lead"] {
        let (s, b) = api
            .post(
                &path("/sign-off"),
                json!({"sign_off_role": role, "status": "approved"}),
            )
            .await;
        assert_eq!((s, &b["sign_off_complete"]), (200, &json!(false)), "{b}");
    }
    let (s, b) = api
        .post(
            &path("/sign-off"),
            json!({"sign_off_role": "developer", "status": "approved"}),
        )
        .await;
    assert_eq!(s, 409);
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("already has a developer sign-off"),
        "{b}"
    );
    let (_, b) = api
        .post(&path("/sign-off"), json!({"sign_off_role": "qa_engineer", "status": "approved", "conditions": ["after hours"]}))
        .await;
    assert_eq!(
        (&b["sign_off_complete"], &b["pending_sign_offs"]),
        (&json!(true), &json!([]))
    );
    let (s, _) = api
        .post(
            &path("/review"),
            json!({"review_status": "rejected", "review_comments": "changed my mind"}),
        )
        .await;
    assert_eq!(s, 409, "an approved report is not reviewed again");

    // A rejected report is final.
    let other = new_report(&api).await;
    complete_components(&api, &other).await;
    api.post(&format!("{R}/reports/{other}/submit"), json!({}))
        .await;
    api.post(
        &format!("{R}/reports/{other}/start-review"),
        json!({"reviewer": "r"}),
    )
    .await;
    let (_, b) = api
        .post(
            &format!("{R}/reports/{other}/review"),
            json!({"review_status": "rejected", "review_comments": "not this"}),
        )
        .await;
    assert_eq!(b["status"], "rejected");
    let (s, _) = api
        .post(&format!("{R}/reports/{other}/submit"), json!({}))
        .await;
    assert_eq!(s, 409);

    let (_, dash) = api.get(&format!("{R}/dashboard")).await;
    assert_eq!(
        (&dash["reports"], &dash["signed_off"]),
        (&json!(2), &json!(1))
    );
    assert_eq!(dash["by_status"]["rejected"], 1);
    let (_, stats) = api.get(&format!("{R}/statistics")).await;
    assert_eq!(stats["sign_offs_by_role"]["developer"], 1);
    let (_, comps) = api.get(&format!("{R}/components/status")).await;
    assert_eq!(comps["components"]["circuit_breaker"]["completed"], 2);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_bodies_are_422_naming_the_field_and_unknown_ids_404() {
    let (running, api) = start(HandoffConfig::default()).await;
    let (s, b) = api
        .post(
            &format!("{R}/reports"),
            json!({"pipeline_id": "p", "task_id": "t"}),
        )
        .await;
    assert_eq!((s, &b["field"]), (422, &json!("work_summary")), "{b}");
    let (s, b) = api
        .post(
            &format!("{R}/reports"),
            json!({"pipeline_id": 7, "task_id": "t", "work_summary": "long enough text"}),
        )
        .await;
    assert_eq!((s, &b["field"]), (422, &json!("pipeline_id")), "{b}");
    let (s, b) = api
        .post(&format!("{R}/reports"), json!({"pipeline_id": "p", "task_id": "t", "work_summary": "long enough text", "colour": "red"}))
        .await;
    assert_eq!((s, &b["field"]), (422, &json!("colour")), "{b}");
    let (s, b) = api
        .post(&format!("{R}/reports"), json!({"pipeline_id": "p", "task_id": "t", "work_summary": "long enough text", "quality_score": 1.5}))
        .await;
    assert_eq!((s, &b["field"]), (422, &json!("quality_score")), "{b}");
    let (s, b) = api.post(&format!("{C}/agents"), json!({})).await;
    assert_eq!((s, &b["field"]), (422, &json!("agent_id")), "{b}");
    let id = new_report(&api).await;
    let (s, b) = api
        .put(
            &format!("{R}/reports/{id}/components/warp_drive"),
            json!({"status": "completed", "progress_percentage": 100}),
        )
        .await;
    assert_eq!(s, 404);
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("no component warp_drive")
    );
    let (s, b) = api
        .put(
            &format!("{R}/reports/{id}/components/circuit_breaker"),
            json!({"status": "finished", "progress_percentage": 100}),
        )
        .await;
    assert_eq!((s, &b["field"]), (422, &json!("status")), "{b}");
    let (s, _) = api
        .post(
            &format!("{R}/reports/{id}/sign-off"),
            json!({"sign_off_role": "janitor", "status": "approved"}),
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(api.get(&format!("{R}/reports/rep-999")).await.0, 404);
    assert_eq!(api.get(&format!("{C}/workflows/none")).await.0, 404);
    let (s, b) = api.get("/no/such/route").await;
    assert_eq!(s, 404);
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("no route GET /no/such/route")
    );
    let (s, b) = api
        .call(reqwest::Method::DELETE, &format!("{R}/dashboard"), None)
        .await;
    assert_eq!(s, 405, "{b}");
    let big = "x".repeat(2 * 1024 * 1024);
    let (s, _) = api
        .post(&format!("{C}/agents"), json!({"agent_id": big}))
        .await;
    assert_eq!(s, 413, "bodies are bounded");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn workflows_use_optimistic_concurrency_and_checkpoints_restore() {
    let (running, api) = start(HandoffConfig::default()).await;
    let (s, w) = api
        .post(
            &format!("{C}/workflows"),
            json!({"workflow_id": "w", "state": {"phase": "a"}}),
        )
        .await;
    assert_eq!((s, &w["version"]), (201, &json!(1)));
    assert_eq!(
        api.post(&format!("{C}/workflows"), json!({"workflow_id": "w"}))
            .await
            .0,
        409
    );
    let (_, cp) = api
        .post(&format!("{C}/workflows/w/checkpoints"), json!({}))
        .await;
    let (s, w) = api
        .put(
            &format!("{C}/workflows/w"),
            json!({"version": 1, "state": {"phase": "b"}}),
        )
        .await;
    assert_eq!((s, &w["version"]), (200, &json!(2)));
    let (s, b) = api
        .put(
            &format!("{C}/workflows/w"),
            json!({"version": 1, "state": {"phase": "c"}}),
        )
        .await;
    assert_eq!(s, 409);
    assert!(
        b["error"].as_str().unwrap().contains("stale version"),
        "{b}"
    );
    let cp = cp["checkpoint_id"].as_str().unwrap();
    let (s, w) = api
        .post(
            &format!("{C}/workflows/w/checkpoints/{cp}/restore"),
            json!({}),
        )
        .await;
    assert_eq!(
        (s, &w["state"]["phase"], &w["version"]),
        (200, &json!("a"), &json!(3))
    );
    assert_eq!(
        api.get(&format!("{C}/workflows/w")).await.1["state"]["phase"],
        "a"
    );
    running.stop().await.unwrap();

    // The broken-rollback defect answers the same and restores nothing.
    let (running, api) = start(HandoffConfig {
        defects: Defects {
            broken_rollback: true,
            ..Defects::default()
        },
        ..HandoffConfig::default()
    })
    .await;
    api.post(
        &format!("{C}/workflows"),
        json!({"workflow_id": "w", "state": {"phase": "a"}}),
    )
    .await;
    let (_, cp) = api
        .post(&format!("{C}/workflows/w/checkpoints"), json!({}))
        .await;
    api.put(
        &format!("{C}/workflows/w"),
        json!({"version": 1, "state": {"phase": "b"}}),
    )
    .await;
    let cp = cp["checkpoint_id"].as_str().unwrap();
    let (s, w) = api
        .post(
            &format!("{C}/workflows/w/checkpoints/{cp}/restore"),
            json!({}),
        )
        .await;
    assert_eq!(
        (s, &w["state"]["phase"]),
        (200, &json!("a")),
        "it claims to have restored"
    );
    assert_eq!(
        api.get(&format!("{C}/workflows/w")).await.1["state"]["phase"],
        "b",
        "but did not"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn transfers_check_the_owner_and_leases_block_then_expire() {
    let (running, api) = start(HandoffConfig::default()).await;
    for a in ["a", "b", "c"] {
        assert_eq!(
            api.post(
                &format!("{C}/agents"),
                json!({"agent_id": a, "ready": true})
            )
            .await
            .0,
            201
        );
    }
    assert_eq!(
        api.post(&format!("{C}/agents"), json!({"agent_id": "a"}))
            .await
            .0,
        200,
        "registering twice is fine"
    );
    assert_eq!(
        api.post(
            &format!("{C}/resources"),
            json!({"resource_id": "r", "owner": "a"})
        )
        .await
        .0,
        201
    );
    assert_eq!(
        api.post(
            &format!("{C}/resources"),
            json!({"resource_id": "r", "owner": "b"})
        )
        .await
        .1["owner"],
        "a"
    );
    let (s, t) = api
        .post(
            &format!("{C}/resources/r/transfer"),
            json!({"from": "a", "to": "b"}),
        )
        .await;
    assert_eq!(
        (s, &t["owner"], &t["previous_owner"], &t["version"]),
        (200, &json!("b"), &json!("a"), &json!(2))
    );
    assert!(t["lock_wait_ms"].as_f64().is_some());
    let (s, b) = api
        .post(
            &format!("{C}/resources/r/transfer"),
            json!({"from": "a", "to": "c"}),
        )
        .await;
    assert_eq!(s, 409);
    assert!(
        b["error"].as_str().unwrap().contains("owned by b, not a"),
        "{b}"
    );
    assert_eq!(
        api.post(
            &format!("{C}/resources/r/transfer"),
            json!({"to": "nobody"})
        )
        .await
        .0,
        404
    );

    // A lease held by c blocks others' transfers until it expires.
    let (s, lease) = api
        .post(
            &format!("{C}/resources/r/lock"),
            json!({"agent_id": "c", "ttl_ms": 300}),
        )
        .await;
    assert_eq!(s, 200, "{lease}");
    let (s, b) = api
        .post(&format!("{C}/resources/r/transfer"), json!({"to": "a"}))
        .await;
    assert_eq!(s, 409);
    assert!(b["error"].as_str().unwrap().contains("locked by c"), "{b}");
    let own = lease["lock_id"].as_str().unwrap();
    let (s, _) = api
        .post(
            &format!("{C}/resources/r/transfer"),
            json!({"to": "c", "lock_id": own}),
        )
        .await;
    assert_eq!(s, 200, "the lease holder may transfer");
    let (s, t) = api
        .post(
            &format!("{C}/resources/r/transfer"),
            json!({"to": "a", "wait_ms": 2000}),
        )
        .await;
    assert_eq!(s, 200, "waiting outlasts the lease: {t}");
    assert!(
        t["lock_wait_ms"].as_f64().unwrap() > 50.0,
        "it waited for the lease to expire: {t}"
    );
    assert_eq!(
        api.call(
            reqwest::Method::DELETE,
            &format!("{C}/resources/r/lock/{own}"),
            None
        )
        .await
        .0,
        404,
        "expired"
    );
    let (_, state) = api.get(&format!("{C}/state")).await;
    assert_eq!(state["resources"][0]["owner"], "a");
    assert_eq!(
        state["agents"][0],
        json!({"agent_id": "a", "resources": ["r"]})
    );
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transfers_of_one_resource_never_show_two_owners() {
    let (running, api) = start(HandoffConfig::default()).await;
    let api = std::sync::Arc::new(api);
    api.post(&format!("{C}/agents"), json!({"agent_id": "a0"}))
        .await;
    api.post(
        &format!("{C}/resources"),
        json!({"resource_id": "r", "owner": "a0"}),
    )
    .await;
    for i in 1..=40 {
        api.post(&format!("{C}/agents"), json!({"agent_id": format!("a{i}")}))
            .await;
    }
    let watcher = {
        let api = std::sync::Arc::clone(&api);
        tokio::spawn(async move {
            let mut looks = 0;
            for _ in 0..200 {
                let (_, state) = api.get(&format!("{C}/state")).await;
                let holders = state["agents"].as_array().unwrap().len();
                assert!(holders <= 1, "two owners observed: {state}");
                looks += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            looks
        })
    };
    let mut tasks = Vec::new();
    for i in 1..=40 {
        let api = std::sync::Arc::clone(&api);
        tasks.push(tokio::spawn(async move {
            api.post(
                &format!("{C}/resources/r/transfer"),
                json!({"to": format!("a{i}"), "wait_ms": 5000}),
            )
            .await
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        let (s, b) = t.await.unwrap();
        assert_eq!(s, 200, "{b}");
        versions.push(b["version"].as_u64().unwrap());
    }
    versions.sort_unstable();
    assert_eq!(
        versions,
        (2..=41).collect::<Vec<_>>(),
        "every acknowledged transfer has its own version"
    );
    assert!(watcher.await.unwrap() > 0);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn chaos_controls_inject_errors_and_outages_and_clear() {
    let (running, api) = start(HandoffConfig::default()).await;
    assert_eq!(api.get("/health").await.0, 200);
    let settings = ChaosSettings {
        route_error_rates: [("/health".to_string(), 1.0)].into(),
        ..ChaosSettings::default()
    };
    let (s, _) = api
        .put("/admin/chaos", serde_json::to_value(&settings).unwrap())
        .await;
    assert_eq!(s, 200);
    let (s, b) = api.get("/health").await;
    assert_eq!((s, &b["error"]), (500, &json!("injected error (chaos)")));
    assert_eq!(
        api.get(&format!("{R}/dashboard")).await.0,
        200,
        "other routes are untouched"
    );
    api.put(
        "/admin/chaos",
        json!({"down_after_ms": 0, "down_for_ms": 60000}),
    )
    .await;
    assert_eq!(api.get(&format!("{R}/dashboard")).await.0, 503);
    assert_eq!(
        api.get("/admin/chaos").await.0,
        200,
        "the admin route is never disturbed"
    );
    let (s, b) = api.put("/admin/chaos", json!({"error_rate": 3})).await;
    assert_eq!((s, &b["field"]), (422, &json!("error_rate")));
    api.call(reqwest::Method::DELETE, "/admin/chaos", None)
        .await;
    assert_eq!(api.get("/health").await.0, 200);
    running.stop().await.unwrap();
}
