//! Why a run could not get under way (or a phase of it failed): the target was not there, its admin
//! routes refused, a probe could not run, the driver or the fault proxy could not start. Each kind is
//! told apart, carries the URL or address it concerns, and becomes the sentence a result gives as its
//! reason.

use std::net::SocketAddr;

use crate::drivers::ws::WsError;
use crate::drivers::ws::conn::ConnectError;
use crate::net::NetError;
use crate::probes::ProbeError;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed (a certificate not trusted, a name it is not for, no client
    /// certificate where one is required).
    #[error("TLS with {address}: {why}")]
    Tls { address: String, why: String },
    #[error("no connection to {address} within {secs}s")]
    ConnectTimeout { address: String, secs: u64 },
    /// A WebSocket endpoint that does not complete its handshake.
    #[error(transparent)]
    Handshake(#[from] ConnectError),
    #[error("cannot start the embedded reference {which}: {source}")]
    Embedded {
        which: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("cannot set up the HTTP client: {0}")]
    Client(#[source] crate::drivers::http::ClientError),
    #[error("cannot start the WebSocket driver: {0}")]
    Driver(#[from] WsError),
    #[error("cannot start the fault proxy: {0}")]
    Proxy(#[source] std::io::Error),
    #[error("cannot route {url} through the fault proxy")]
    Route { url: url::Url },
    /// Frames came back, but none the scenario's protocol ties to the frame sent.
    #[error(transparent)]
    Protocol(#[from] crate::drivers::ws::understood::Mismatch),
    /// A request of the procedure's `[[run_setup]]` failed; `teardown` says what the teardown did
    /// with what the setup had made.
    #[error("{failed}{teardown}")]
    Setup {
        failed: crate::drivers::http::SetupFailed,
        teardown: String,
    },
    #[error("{0}")]
    Unsupported(&'static str),
}

impl TargetError {
    /// The reason a run that stopped at the preflight gives.
    pub fn preflight_reason(&self) -> String {
        match self {
            TargetError::Protocol(m) => m.to_string(),
            other => format!("target unreachable: {other}"),
        }
    }
}

/// Why a call to the target's admin routes (chaos controls, state) failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot set up the HTTP client: {0}")]
    Client(#[source] crate::drivers::http::ClientError),
    #[error("{method} {url}: {source}")]
    Request {
        method: reqwest::Method,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {url} answered {status}: {body}")]
    Status {
        method: reqwest::Method,
        url: String,
        status: reqwest::StatusCode,
        body: String,
    },
    #[error("{method} {url} did not answer JSON: {source}")]
    NotJson {
        method: reqwest::Method,
        url: String,
        #[source]
        source: serde_json::Error,
    },
}
