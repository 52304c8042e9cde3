//! The agent hand-off report API of seed 000 (`/api/v1/agent-handoff`): reports move draft →
//! submitted → under_review → approved | rejected | amendments_required, and back to submission after
//! amendments; the eight Phase 6 components are tracked per report; sign-offs are taken by role once a
//! report is approved. An illegal transition is a 409 that says why; a bad value a 422 naming the
//! field; an unknown id a 404.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

mod lifecycle;

pub use lifecycle::*;

use super::App;
use crate::reference::api::{ApiError, ApiResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Draft,
    Submitted,
    UnderReview,
    Approved,
    Rejected,
    AmendmentsRequired,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Submitted => "submitted",
            Status::UnderReview => "under_review",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::AmendmentsRequired => "amendments_required",
        }
    }
}

/// The eight Phase 6 components.
pub const COMPONENTS: [&str; 8] = [
    "error_handling",
    "api_contracts",
    "retry_mechanisms",
    "circuit_breaker",
    "validation_layer",
    "monitoring_hooks",
    "security_enhancements",
    "integration_tests",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentStatus {
    NotStarted,
    InProgress,
    Completed,
    Blocked,
    Failed,
    Verified,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Developer,
    TechLead,
    QaEngineer,
    SecurityReviewer,
    ProductOwner,
    Architect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approved,
    Rejected,
}

#[derive(Debug, Clone, Serialize)]
struct Component {
    status: ComponentStatus,
    progress_percentage: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    notes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    test_results: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code_review_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    security_review_status: Option<String>,
}

impl Component {
    fn not_started() -> Self {
        Self {
            status: ComponentStatus::NotStarted,
            progress_percentage: 0.0,
            notes: None,
            completed_at: None,
            test_results: None,
            code_review_status: None,
            security_review_status: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct SignOff {
    role: Role,
    status: Decision,
    comments: String,
    conditions: Vec<String>,
}

#[derive(Debug, Clone)]
struct Report {
    fields: Map,
    status: Status,
    quality_score: f64,
    test_coverage_percentage: f64,
    components: BTreeMap<&'static str, Component>,
    reviewer: Option<String>,
    review: Option<Value>,
    submissions: u32,
    sign_offs: Vec<SignOff>,
}

type Map = serde_json::Map<String, Value>;

#[derive(Debug, Default)]
pub struct Reports {
    reports: HashMap<String, Report>,
    next_id: u64,
}

impl Reports {
    fn get(&mut self, id: &str) -> ApiResult<&mut Report> {
        self.reports
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found(format!("no report {id}")))
    }
}

impl Report {
    fn phase6_progress(&self) -> f64 {
        self.components
            .values()
            .map(|c| c.progress_percentage)
            .sum::<f64>()
            / COMPONENTS.len() as f64
    }

    fn pending(&self, required: &[Role]) -> Vec<Role> {
        required
            .iter()
            .copied()
            .filter(|r| {
                !self
                    .sign_offs
                    .iter()
                    .any(|s| s.role == *r && s.status == Decision::Approved)
            })
            .collect()
    }

    fn json(&self, id: &str, required: &[Role]) -> Value {
        let mut out = self.fields.clone();
        let pending = self.pending(required);
        for (k, v) in [
            ("report_id", json!(id)),
            ("status", json!(self.status)),
            ("quality_score", json!(self.quality_score)),
            (
                "test_coverage_percentage",
                json!(self.test_coverage_percentage),
            ),
            ("components", json!(self.components)),
            ("phase6_progress", json!(self.phase6_progress())),
            ("reviewer", json!(self.reviewer)),
            ("review", self.review.clone().unwrap_or(Value::Null)),
            ("submissions", json!(self.submissions)),
            ("sign_offs", json!(self.sign_offs)),
            (
                "sign_off_complete",
                json!(self.status == Status::Approved && pending.is_empty()),
            ),
            ("pending_sign_offs", json!(pending)),
        ] {
            out.insert(k.into(), v);
        }
        Value::Object(out)
    }

    fn must_be(&self, id: &str, allowed: &[Status], doing: &str) -> ApiResult<()> {
        if allowed.contains(&self.status) {
            return Ok(());
        }
        let allowed: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        Err(ApiError::conflict(format!(
            "cannot {doing}: report {id} is {}, and this needs it to be {}",
            self.status.as_str(),
            allowed.join(" or ")
        )))
    }
}

fn ratio(field: &str, v: f64, max: f64) -> ApiResult<f64> {
    if v.is_finite() && (0.0..=max).contains(&v) {
        Ok(v)
    } else {
        Err(ApiError::invalid(field, format!("{v} is outside 0..{max}")))
    }
}

fn counts<K: Ord + Serialize>(items: impl Iterator<Item = K>) -> BTreeMap<K, u64> {
    let mut out = BTreeMap::new();
    for k in items {
        *out.entry(k).or_insert(0) += 1;
    }
    out
}

pub async fn dashboard(State(app): State<Arc<App>>) -> Json<Value> {
    let s = app.reports();
    let n = s.reports.len();
    let required = &app.config.required_sign_offs;
    let avg = |f: &dyn Fn(&Report) -> f64| {
        (n > 0).then(|| s.reports.values().map(f).sum::<f64>() / n as f64)
    };
    let completion: BTreeMap<&str, f64> = COMPONENTS
        .iter()
        .map(|c| {
            let done = s
                .reports
                .values()
                .filter(|r| {
                    matches!(
                        r.components[c].status,
                        ComponentStatus::Completed | ComponentStatus::Verified
                    )
                })
                .count();
            (*c, if n > 0 { done as f64 / n as f64 } else { 0.0 })
        })
        .collect();
    Json(json!({
        "reports": n,
        "by_status": counts(s.reports.values().map(|r| r.status)),
        "signed_off": s.reports.values().filter(|r| r.status == Status::Approved && r.pending(required).is_empty()).count(),
        "average_quality_score": avg(&|r| r.quality_score),
        "average_phase6_progress": avg(&|r| r.phase6_progress()),
        "component_completion_rates": completion,
    }))
}

pub async fn statistics(State(app): State<Arc<App>>) -> Json<Value> {
    let s = app.reports();
    Json(json!({
        "total_reports": s.reports.len(),
        "by_status": counts(s.reports.values().map(|r| r.status)),
        "submissions": s.reports.values().map(|r| u64::from(r.submissions)).sum::<u64>(),
        "sign_offs_by_role": counts(s.reports.values().flat_map(|r| r.sign_offs.iter().map(|x| x.role))),
        "required_sign_offs": app.config.required_sign_offs,
    }))
}

pub async fn components_status(State(app): State<Arc<App>>) -> Json<Value> {
    let s = app.reports();
    let by: BTreeMap<&str, BTreeMap<ComponentStatus, u64>> = COMPONENTS
        .iter()
        .map(|c| {
            (
                *c,
                counts(s.reports.values().map(|r| r.components[c].status)),
            )
        })
        .collect();
    Json(json!({ "components": by }))
}
