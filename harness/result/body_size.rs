//! What the body-size probe found.

use serde::{Deserialize, Serialize};

/// The request body size an HTTP target accepts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BodySizeMetrics {
    /// The limit the scenario declares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_limit: Option<u64>,
    /// The largest size the search saw accepted, with the next byte refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found_limit: Option<u64>,
    /// Every body the probe sent, in order.
    pub attempts: Vec<BodyAttempt>,
    /// Why the search did not find a limit, or what else is worth knowing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One body sent and how the target took it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BodyAttempt {
    /// What the attempt was for: `search`, `at_limit`, `over_limit`, `far_over_limit`.
    pub purpose: String,
    pub bytes: u64,
    /// The status, if one came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `accepted` (2xx or 3xx), `refused` (a `reject_status`), `closed` (the connection ended
    /// without a status), `timeout`, or `other` (any other status).
    pub outcome: BodyOutcome,
    pub ms: f64,
    /// The error, for `closed` and `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyOutcome {
    Accepted,
    Refused,
    Closed,
    Timeout,
    Other,
}

impl BodyOutcome {
    /// Whether the body was kept out: refused by status, or the connection closed on it.
    pub fn kept_out(self) -> bool {
        matches!(self, BodyOutcome::Refused | BodyOutcome::Closed)
    }
}
