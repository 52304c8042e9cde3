//! The kinds of error an iteration can end with. Their names appear in `result.json` under
//! `metrics.errors` and in thresholds as `errors.<kind>`; they are part of the contract, so extend the
//! list, never rename.

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The connection could not be made or was cut (refused, reset, closed early).
    Connect,
    /// A step or the iteration ran past its timeout.
    Timeout,
    /// A response status outside what the step expects, 4xx.
    Http4xx,
    /// A response status outside what the step expects, 5xx.
    Http5xx,
    /// A response status outside what the step expects, neither 4xx nor 5xx.
    HttpOther,
    /// A response that could not be read or was not what the protocol allows (e.g. not JSON).
    Protocol,
    /// A value a step captures was not in its response.
    Capture,
    /// A variable a template needs had no value at run time.
    Template,
    /// A fault the harness injected on purpose.
    Injected,
    /// A validation rule failed; the rule id is kept beside the kind.
    Validation,
    /// The harness refused to send a request: its host is outside loopback and remote targets were
    /// not allowed.
    Blocked,
    /// A WebSocket endpoint refused a message with an error frame.
    Rejected,
    /// A WebSocket endpoint refused a message for being over its rate limit.
    RateLimited,
    /// A response or frame over the harness's limit (HTTP headers, a WebSocket message).
    TooLarge,
    /// A WebSocket upgrade that failed or never completed after the TCP connection was made.
    Handshake,
    /// The TLS handshake failed: a certificate not trusted or not for the name, a client certificate
    /// refused or missing, no common protocol version.
    Tls,
}

impl ErrorKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [ErrorKind; 16] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Http4xx,
        ErrorKind::Http5xx,
        ErrorKind::HttpOther,
        ErrorKind::Protocol,
        ErrorKind::Capture,
        ErrorKind::Template,
        ErrorKind::Injected,
        ErrorKind::Validation,
        ErrorKind::Blocked,
        ErrorKind::Rejected,
        ErrorKind::RateLimited,
        ErrorKind::TooLarge,
        ErrorKind::Handshake,
        ErrorKind::Tls,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Http4xx => "http_4xx",
            ErrorKind::Http5xx => "http_5xx",
            ErrorKind::HttpOther => "http_other",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Capture => "capture",
            ErrorKind::Template => "template",
            ErrorKind::Injected => "injected",
            ErrorKind::Validation => "validation",
            ErrorKind::Blocked => "blocked",
            ErrorKind::Rejected => "rejected",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Handshake => "handshake",
            ErrorKind::Tls => "tls",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
