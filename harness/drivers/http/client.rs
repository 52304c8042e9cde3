//! Sending one rendered HTTP request and classifying what came back: a response (with its body read,
//! up to a bound), or an error of the taxonomy, with whether the request may have taken effect. The
//! types here are both clients'; the general client (reqwest, for HTTP/2 and for ALPN's choice over
//! TLS) is here too, the HTTP/1.1 hot path in [`super::h1`].
//!
//! Neither client follows redirects or uses a proxy, so requests go exactly where the scenario says;
//! absolute URLs outside loopback are refused unless the user allowed remote targets.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use url::Url;

use crate::drivers::Timer;
use crate::kinds::HttpVersion;
use crate::taxonomy::ErrorKind;

/// Largest response body read; a larger one is an error, not a memory exhaustion.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Longest part of a target's message quoted in an error.
const QUOTE_CHARS: usize = 240;

/// Whether a request may have changed the target's state. Rollback undoes every step whose request
/// may have taken effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effect {
    /// Never sent, or refused (4xx): nothing to undo.
    None,
    /// Sent, outcome unknown (timeout, connection cut, 5xx).
    Maybe,
    /// Sent and answered as expected.
    Applied,
}

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: reqwest::Method,
    pub url: std::sync::Arc<Url>,
    /// The request line's target and `Host`, made once for a URL without variables.
    pub target: Option<super::h1::Target>,
    pub headers: Vec<(String, String)>,
    pub body: Option<bytes::Bytes>,
    /// Keep the response's headers (some check or capture reads them).
    pub keep_headers: bool,
}

/// A response with its body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// From sending to the end of the body.
    pub elapsed: Duration,
    /// The `Retry-After` header of a 429 or 503, as sent (seconds or an HTTP date).
    pub retry_after: Option<String>,
    /// Every header, when the request asked to keep them.
    pub headers: Option<reqwest::header::HeaderMap>,
    /// The HTTP version it came in.
    pub version: reqwest::Version,
    json: OnceLock<Result<Value, NotJson>>,
}

/// A response body that is not JSON, quoted for the error message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("response is not JSON ({why}): {body}")]
pub struct NotJson {
    pub why: String,
    pub body: String,
}

impl Response {
    pub fn new(status: u16, body: Vec<u8>, elapsed: Duration) -> Self {
        Self {
            status,
            body,
            elapsed,
            retry_after: None,
            headers: None,
            version: reqwest::Version::HTTP_11,
            json: OnceLock::new(),
        }
    }

    /// With the headers the target sent.
    pub fn with_headers(mut self, headers: Option<reqwest::header::HeaderMap>) -> Self {
        self.headers = headers;
        self
    }

    /// A header's value as text; `None` when absent, not text, or not kept.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.as_ref()?.get(name)?.to_str().ok()
    }

    /// With the `Retry-After` the target sent.
    pub fn with_retry_after(mut self, value: Option<String>) -> Self {
        self.retry_after = value;
        self
    }

    /// The body as JSON, parsed once on first use.
    pub fn json(&self) -> Result<&Value, NotJson> {
        self.json
            .get_or_init(|| {
                serde_json::from_slice(&self.body).map_err(|e| NotJson {
                    why: e.to_string(),
                    body: quote(&self.body),
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The body for an error message: the target's `error` field when it has one, else the text.
    pub fn describe(&self) -> String {
        let reason = http_reason(self.status);
        let text = match self.json() {
            Ok(Value::Object(map)) if map.get("error").is_some_and(Value::is_string) => {
                clip(map["error"].as_str().unwrap_or_default())
            }
            _ => quote(&self.body),
        };
        if text.is_empty() {
            format!("{} {reason}", self.status)
        } else {
            format!("{} {reason}: {text}", self.status)
        }
    }
}

/// Why a request got no usable response.
#[derive(Debug, Clone, PartialEq)]
pub struct SendError {
    pub kind: ErrorKind,
    pub detail: String,
    pub effect: Effect,
}

/// Why the HTTP client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsSetupError),
    #[error(transparent)]
    Http(#[from] reqwest::Error),
}

/// Builds the client every request of a run goes through: the loopback gate on every name it
/// resolves, the run's TLS (ALPN offering what `net.http` allows) and HTTP version.
pub fn build_client(
    pool_size: usize,
    net: &crate::net::Network,
) -> Result<reqwest::Client, ClientError> {
    build_timed_client(pool_size, net, None)
}

/// [`build_client`], its new connections timed into `timer` when given.
pub fn build_timed_client(
    pool_size: usize,
    net: &crate::net::Network,
    timer: Option<&super::connect_timer::ConnectTimer>,
) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(std::sync::Arc::new(crate::net::GatedResolver(net.reach)))
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(pool_size)
        .tcp_nodelay(true)
        .user_agent(concat!("harness/", env!("CARGO_PKG_VERSION")))
        .tls_backend_preconfigured((*net.tls.config(net.alpn())?).clone());
    if let Some(timer) = timer {
        builder = builder.connector_layer(timer.clone());
    }
    builder = match net.http {
        HttpVersion::Auto => builder,
        HttpVersion::Http1 => builder.http1_only(),
        HttpVersion::Http2 => builder.http2_prior_knowledge(),
    };
    Ok(builder.build()?)
}

/// Sends `req` on the general client, giving up at `deadline`.
pub async fn send(
    client: &reqwest::Client,
    req: &Request,
    deadline: Instant,
    timer: &mut Timer,
) -> Result<Response, SendError> {
    let mut builder = client.request(req.method.clone(), (*req.url).clone());
    for (name, value) in &req.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    if let Some(body) = &req.body {
        if !req
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            builder = builder.header(reqwest::header::CONTENT_TYPE, "application/json");
        }
        builder = builder.body(body.clone());
    }
    let started = Instant::now();
    bounded(
        Box::pin(async move {
            let mut resp = builder.send().await.map_err(classify)?;
            let status = resp.status().as_u16();
            let version = resp.version();
            // Only a refusal's Retry-After means "come back later"; other answers need no copy of it.
            let retry_after = matches!(status, 429 | 503)
                .then(|| resp.headers().get(reqwest::header::RETRY_AFTER))
                .flatten()
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let headers = req.keep_headers.then(|| resp.headers().clone());
            let mut body = Vec::new();
            loop {
                match resp.chunk().await {
                    Ok(Some(chunk)) => {
                        if body.len() + chunk.len() > MAX_BODY_BYTES {
                            return Err(too_long());
                        }
                        body.extend_from_slice(&chunk);
                    }
                    Ok(None) => break,
                    Err(e) => return Err(cut_off(body.len(), &e)),
                }
            }
            let mut response = Response::new(status, body, started.elapsed())
                .with_retry_after(retry_after)
                .with_headers(headers);
            response.version = version;
            Ok(response)
        }),
        deadline,
        timer,
    )
    .await
}

/// One exchange of a request and its answer, boxed where it is made: the future is a couple of
/// kilobytes, and every future enclosing it would otherwise carry it and copy it at each `.await`
/// that starts it (measured with `perf`: memmove was 11% of the harness's user CPU in a closed loop).
pub type Exchange<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, SendError>> + Send + 'a>>;

/// Runs one exchange until `deadline`: a timeout when it comes first (or has already come).
pub async fn bounded(
    exchange: Exchange<'_>,
    deadline: Instant,
    timer: &mut Timer,
) -> Result<Response, SendError> {
    let started = Instant::now();
    if deadline <= started {
        return Err(SendError {
            kind: ErrorKind::Timeout,
            detail: "no time left to send the request".into(),
            effect: Effect::None,
        });
    }
    match timer.within(deadline, exchange).await {
        Some(result) => result,
        None => Err(SendError {
            kind: ErrorKind::Timeout,
            detail: format!(
                "no complete response within {}",
                crate::config::units::format_duration(deadline - started)
            ),
            effect: Effect::Maybe,
        }),
    }
}

/// A body beyond [`MAX_BODY_BYTES`].
pub(super) fn too_long() -> SendError {
    SendError {
        kind: ErrorKind::Protocol,
        detail: format!("response body is larger than {} MiB", MAX_BODY_BYTES >> 20),
        effect: Effect::Maybe,
    }
}

/// A body that broke off after `read` bytes.
pub(super) fn cut_off(read: usize, e: &dyn std::error::Error) -> SendError {
    SendError {
        kind: ErrorKind::Protocol,
        detail: format!("response body cut off after {read} bytes: {}", chain(e)),
        effect: Effect::Maybe,
    }
}

fn classify(e: reqwest::Error) -> SendError {
    if let Some(t) = crate::tls::find(&e) {
        // The configured server name, when there is one, is what the certificate was checked as;
        // the URL's host otherwise.
        let host = e.url().and_then(Url::host_str).unwrap_or_default();
        return SendError {
            kind: ErrorKind::Tls,
            detail: crate::tls::describe(t, host.trim_start_matches('[').trim_end_matches(']')),
            effect: Effect::None,
        };
    }
    let detail = chain(&e);
    if e.is_timeout() {
        SendError {
            kind: ErrorKind::Timeout,
            detail,
            effect: Effect::Maybe,
        }
    } else if e.is_connect() {
        SendError {
            kind: ErrorKind::Connect,
            detail,
            effect: Effect::None,
        }
    } else if e.is_builder() {
        SendError {
            kind: ErrorKind::Template,
            detail,
            effect: Effect::None,
        }
    } else if let Some(kind) = malformed(&e) {
        // An answer came, but not one HTTP allows: the request was received.
        SendError {
            kind,
            detail,
            effect: Effect::Maybe,
        }
    } else {
        // Sent, then the connection broke before a response: it may have taken effect.
        SendError {
            kind: ErrorKind::Connect,
            detail,
            effect: Effect::Maybe,
        }
    }
}

/// `protocol` for a response that is not HTTP (a bad status line, bad headers), `too_large` for one
/// whose head is over the client's limit; `None` for anything else.
fn malformed(e: &reqwest::Error) -> Option<ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            if h.is_parse_too_large() {
                return Some(ErrorKind::TooLarge);
            }
            if h.is_parse() || h.is_parse_status() {
                return Some(ErrorKind::Protocol);
            }
        }
        source = s.source();
    }
    None
}

/// An error with its causes, `outer: inner: innermost`.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// A body quoted in a message: lossy UTF-8, control characters shown escaped, clipped.
pub fn quote(body: &[u8]) -> String {
    clip(String::from_utf8_lossy(body).trim())
}

fn clip(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(QUOTE_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > QUOTE_CHARS {
        out.push('…');
    }
    out
}

fn http_reason(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_describe_themselves_with_the_targets_reason() {
        let r = Response::new(
            409,
            br#"{"error":"illegal transition draft -> approved"}"#.to_vec(),
            Duration::ZERO,
        );
        assert_eq!(
            r.describe(),
            "409 Conflict: illegal transition draft -> approved"
        );
        let r = Response::new(500, b"boom\n\x07".to_vec(), Duration::ZERO);
        assert_eq!(r.describe(), "500 Internal Server Error: boom\\n\\u{7}");
        let r = Response::new(200, b"<html>".to_vec(), Duration::ZERO);
        assert!(
            r.json()
                .unwrap_err()
                .to_string()
                .starts_with("response is not JSON")
        );
    }
}
