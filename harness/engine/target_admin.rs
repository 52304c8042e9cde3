//! Talking to a target outside the iterations: setting and clearing its chaos controls around a run
//! (`/admin/chaos`), and reading its state back for invariant checks (`/api/v1/coordination/state`).

use crate::net::Network;
use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::error::AdminError;
use crate::drivers::http::build_client;

/// Route of the chaos controls on the reference targets (and any target that offers the same).
pub const CHAOS_ROUTE: &str = "/admin/chaos";
/// Route of the coordination state dump.
pub const STATE_ROUTE: &str = "/api/v1/coordination/state";

const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

fn join(base: &Url, route: &str) -> String {
    format!("{}{route}", base.as_str().trim_end_matches('/'))
}

async fn call(
    method: reqwest::Method,
    url: String,
    body: Option<&Value>,
    net: &Network,
) -> Result<Value, AdminError> {
    let client = build_client(1, net).map_err(AdminError::Client)?;
    let mut req = client.request(method.clone(), &url).timeout(ADMIN_TIMEOUT);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let failed = |source| AdminError::Request {
        method: method.clone(),
        url: url.clone(),
        source,
    };
    let resp = req.send().await.map_err(failed)?;
    let status = resp.status();
    let text = resp.text().await.map_err(failed)?;
    if !status.is_success() {
        return Err(AdminError::Status {
            method,
            url,
            status,
            body: text.chars().take(200).collect(),
        });
    }
    serde_json::from_str(&text).map_err(|source| AdminError::NotJson {
        method,
        url,
        source,
    })
}

/// Sets the target's chaos controls.
pub async fn set_chaos(base: &Url, settings: &Value, net: &Network) -> Result<(), AdminError> {
    call(
        reqwest::Method::PUT,
        join(base, CHAOS_ROUTE),
        Some(settings),
        net,
    )
    .await
    .map(|_| ())
}

/// Turns the target's chaos off.
pub async fn clear_chaos(base: &Url, net: &Network) -> Result<(), AdminError> {
    call(reqwest::Method::DELETE, join(base, CHAOS_ROUTE), None, net)
        .await
        .map(|_| ())
}

/// Reads the coordination state.
pub async fn state(base: &Url, net: &Network) -> Result<Value, AdminError> {
    call(reqwest::Method::GET, join(base, STATE_ROUTE), None, net).await
}
