//! Moving a report through its lifecycle: create, edit, component progress, submit, review, sign off.
//! Each handler checks the report's status first and answers 409 with the reason when the move is not
//! allowed now.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    COMPONENTS, Component, ComponentStatus, Decision, Map, Report, Role, SignOff, Status, ratio,
};
use crate::reference::api::{ApiError, ApiResult, JsonBody};
use crate::reference::handoff::App;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    pipeline_id: Option<String>,
    task_id: Option<String>,
    work_summary: Option<String>,
    quality_score: Option<f64>,
    test_coverage_percentage: Option<f64>,
    achievements: Option<Vec<String>>,
    challenges_encountered: Option<Vec<String>>,
    lessons_learned: Option<Vec<String>>,
    components_implemented: Option<Vec<String>>,
    apis_integrated: Option<Vec<String>>,
    services_configured: Option<Vec<String>>,
    tests_written: Option<Vec<String>>,
    documentation_created: Option<Vec<String>>,
}

/// Shortest work summary accepted (seed 000: a minimum length is required).
const MIN_SUMMARY: usize = 10;

impl ReportBody {
    /// Writes the body's fields into `r`, checking each.
    fn apply(self, r: &mut Report) -> ApiResult<()> {
        if let Some(s) = &self.work_summary
            && s.trim().chars().count() < MIN_SUMMARY
        {
            return Err(ApiError::invalid(
                "work_summary",
                format!("must be at least {MIN_SUMMARY} characters"),
            ));
        }
        if let Some(q) = self.quality_score {
            r.quality_score = ratio("quality_score", q, 1.0)?;
        }
        if let Some(c) = self.test_coverage_percentage {
            r.test_coverage_percentage = ratio("test_coverage_percentage", c, 100.0)?;
        }
        for (k, v) in [
            ("pipeline_id", self.pipeline_id),
            ("task_id", self.task_id),
            ("work_summary", self.work_summary),
        ] {
            if let Some(v) = v {
                r.fields.insert(k.into(), json!(v));
            }
        }
        for (k, v) in [
            ("achievements", self.achievements),
            ("challenges_encountered", self.challenges_encountered),
            ("lessons_learned", self.lessons_learned),
            ("components_implemented", self.components_implemented),
            ("apis_integrated", self.apis_integrated),
            ("services_configured", self.services_configured),
            ("tests_written", self.tests_written),
            ("documentation_created", self.documentation_created),
        ] {
            if let Some(v) = v {
                r.fields.insert(k.into(), json!(v));
            }
        }
        Ok(())
    }
}

pub async fn create(
    State(app): State<Arc<App>>,
    JsonBody(b): JsonBody<ReportBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    for (field, v) in [
        ("pipeline_id", &b.pipeline_id),
        ("task_id", &b.task_id),
        ("work_summary", &b.work_summary),
    ] {
        if v.as_deref().is_none_or(|s| s.trim().is_empty()) {
            return Err(ApiError::invalid(field, "is required"));
        }
    }
    let mut report = Report {
        fields: Map::new(),
        status: Status::Draft,
        quality_score: 0.0,
        test_coverage_percentage: 0.0,
        components: COMPONENTS
            .iter()
            .map(|c| (*c, Component::not_started()))
            .collect(),
        reviewer: None,
        review: None,
        submissions: 0,
        sign_offs: Vec::new(),
    };
    b.apply(&mut report)?;
    let mut s = app.reports();
    s.next_id += 1;
    let id = format!("rep-{}", s.next_id);
    let body = report.json(&id, &app.config.required_sign_offs);
    s.reports.insert(id, report);
    Ok((StatusCode::CREATED, Json(body)))
}

pub async fn get(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let mut s = app.reports();
    Ok(Json(s.get(&id)?.json(&id, &app.config.required_sign_offs)))
}

pub async fn update(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<ReportBody>,
) -> ApiResult<Json<Value>> {
    let mut s = app.reports();
    let r = s.get(&id)?;
    r.must_be(
        &id,
        &[Status::Draft, Status::AmendmentsRequired],
        "edit the report",
    )?;
    let mut edited = r.clone();
    b.apply(&mut edited)?;
    *r = edited;
    Ok(Json(r.json(&id, &app.config.required_sign_offs)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentBody {
    status: ComponentStatus,
    progress_percentage: f64,
    notes: Option<String>,
    completed_at: Option<String>,
    test_results: Option<Value>,
    code_review_status: Option<String>,
    security_review_status: Option<String>,
}

pub async fn component(
    State(app): State<Arc<App>>,
    Path((id, name)): Path<(String, String)>,
    JsonBody(b): JsonBody<ComponentBody>,
) -> ApiResult<Json<Value>> {
    let Some(key) = COMPONENTS.iter().find(|c| **c == name) else {
        return Err(ApiError::not_found(format!(
            "no component {name}; the Phase 6 components are {}",
            COMPONENTS.join(", ")
        )));
    };
    let progress = ratio("progress_percentage", b.progress_percentage, 100.0)?;
    if matches!(
        b.status,
        ComponentStatus::Completed | ComponentStatus::Verified
    ) && progress < 100.0
    {
        return Err(ApiError::invalid(
            "progress_percentage",
            "a completed component is at 100",
        ));
    }
    let mut s = app.reports();
    let r = s.get(&id)?;
    r.must_be(
        &id,
        &[Status::Draft, Status::AmendmentsRequired],
        "update component progress",
    )?;
    r.components.insert(
        key,
        Component {
            status: b.status,
            progress_percentage: progress,
            notes: b.notes,
            completed_at: b.completed_at,
            test_results: b.test_results,
            code_review_status: b.code_review_status,
            security_review_status: b.security_review_status,
        },
    );
    Ok(Json(r.json(&id, &app.config.required_sign_offs)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    submission_notes: Option<String>,
    #[serde(default)]
    attachments: Vec<String>,
}

pub async fn submit(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<SubmitBody>,
) -> ApiResult<Json<Value>> {
    let mut s = app.reports();
    let r = s.get(&id)?;
    r.must_be(&id, &[Status::Draft, Status::AmendmentsRequired], "submit")?;
    let incomplete: Vec<&str> = COMPONENTS
        .iter()
        .copied()
        .filter(|k| {
            !matches!(
                r.components[k].status,
                ComponentStatus::Completed | ComponentStatus::Verified
            )
        })
        .collect();
    if !incomplete.is_empty() {
        return Err(ApiError::conflict(format!(
            "cannot submit: Phase 6 components not completed: {}",
            incomplete.join(", ")
        )));
    }
    r.status = Status::Submitted;
    r.submissions += 1;
    r.fields
        .insert("submission_notes".into(), json!(b.submission_notes));
    r.fields.insert("attachments".into(), json!(b.attachments));
    Ok(Json(r.json(&id, &app.config.required_sign_offs)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartReviewBody {
    reviewer: String,
}

pub async fn start_review(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<StartReviewBody>,
) -> ApiResult<Json<Value>> {
    if b.reviewer.trim().is_empty() {
        return Err(ApiError::invalid("reviewer", "must not be empty"));
    }
    let mut s = app.reports();
    let r = s.get(&id)?;
    r.must_be(&id, &[Status::Submitted], "start a review")?;
    r.status = Status::UnderReview;
    r.reviewer = Some(b.reviewer);
    Ok(Json(r.json(&id, &app.config.required_sign_offs)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    review_status: ReviewOutcome,
    review_comments: String,
    quality_score: Option<f64>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
enum ReviewOutcome {
    Approved,
    Rejected,
    AmendmentsRequired,
}

/// Shortest review comment accepted (seed 000: comments must meet a minimum length).
const MIN_COMMENTS: usize = 5;

pub async fn review(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<ReviewBody>,
) -> ApiResult<Json<Value>> {
    if b.review_comments.trim().chars().count() < MIN_COMMENTS {
        return Err(ApiError::invalid(
            "review_comments",
            format!("must be at least {MIN_COMMENTS} characters"),
        ));
    }
    let score = b
        .quality_score
        .map(|q| ratio("quality_score", q, 1.0))
        .transpose()?;
    let mut s = app.reports();
    let r = s.get(&id)?;
    r.must_be(&id, &[Status::UnderReview], "review")?;
    r.status = match b.review_status {
        ReviewOutcome::Approved => Status::Approved,
        ReviewOutcome::Rejected => Status::Rejected,
        ReviewOutcome::AmendmentsRequired => Status::AmendmentsRequired,
    };
    if let Some(q) = score {
        r.quality_score = q;
    }
    r.review = Some(
        json!({ "status": b.review_status, "comments": b.review_comments, "quality_score": score }),
    );
    Ok(Json(r.json(&id, &app.config.required_sign_offs)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignOffBody {
    sign_off_role: Role,
    status: Decision,
    #[serde(default)]
    comments: String,
    #[serde(default)]
    conditions: Vec<String>,
}

pub async fn sign_off(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<SignOffBody>,
) -> ApiResult<Json<Value>> {
    let mut s = app.reports();
    let r = s.get(&id)?;
    r.must_be(&id, &[Status::Approved], "sign off")?;
    if r.sign_offs.iter().any(|s| s.role == b.sign_off_role) {
        return Err(ApiError::conflict(format!(
            "report {id} already has a {} sign-off",
            serde_json::to_value(b.sign_off_role)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        )));
    }
    r.sign_offs.push(SignOff {
        role: b.sign_off_role,
        status: b.status,
        comments: b.comments,
        conditions: b.conditions,
    });
    Ok(Json(r.json(&id, &app.config.required_sign_offs)))
}
