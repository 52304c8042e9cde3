//! The HTTP/1.1 hot path: requests written on hyper's connection API directly, each worker on its
//! own keep-alive connection, as oha and wrk do. reqwest's pool, its request builder and its
//! per-request bookkeeping were about half of a closed loop's client CPU against a target that
//! answers at once (measured against nginx: 24,000–25,000 requests per client CPU-second through
//! reqwest, 50,000–59,000 through this); none of it is needed to send a rendered request and read its
//! answer. reqwest stays for HTTP/2 and for ALPN's choice over TLS.
//!
//! The rules are the same as the other client's: every new connection resolves its host through the
//! loopback gate, redirects are answered (never followed), no proxy, and a request that never left a
//! stale keep-alive connection is sent again on another one (it cannot have taken effect).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST, HeaderValue, USER_AGENT};
use hyper_util::rt::TokioIo;
use url::Url;

use super::client::{Effect, MAX_BODY_BYTES, Request, Response, SendError};
use super::connect_timer::ConnectTimer;
use crate::kinds::HttpVersion;
use crate::taxonomy::ErrorKind;
use crate::tls::stream::Transport;

type Sender = SendRequest<Full<Bytes>>;

/// How long a connect that found no free descriptor waits before its failure is reported.
const DESCRIPTOR_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

/// An idle keep-alive connection and where it goes.
struct Idle {
    secure: bool,
    host: String,
    port: u16,
    sender: Sender,
}

impl Idle {
    /// A connection just opened to `url`'s origin.
    fn new(url: &Url, sender: Sender) -> Self {
        Self {
            secure: crate::tls::is_secure(url),
            host: url.host_str().unwrap_or_default().to_string(),
            port: url.port_or_known_default().unwrap_or_default(),
            sender,
        }
    }

    fn goes_to(&self, url: &Url) -> bool {
        self.secure == crate::tls::is_secure(url)
            && url.port_or_known_default() == Some(self.port)
            && url.host_str() == Some(self.host.as_str())
    }
}

/// What the request line, `Host` and credentials of a request to a URL say: made once for a URL the
/// scenario writes out, per request for one with variables.
#[derive(Debug, Clone)]
pub struct Target {
    uri: hyper::Uri,
    host: HeaderValue,
    /// `Authorization: Basic …` from the URL's `user:password@`, as browsers and curl send it.
    basic: Option<HeaderValue>,
}

impl Target {
    pub fn of(url: &Url) -> Result<Self, SendError> {
        let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
        let uri = hyper::Uri::try_from(path)
            .map_err(|e| template(format!("`{url}` cannot be sent: {e}")))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err(template(format!("`{url}` has no host"))),
        };
        let host = HeaderValue::from_str(&host).map_err(|e| template(e.to_string()))?;
        let basic = match (url.username(), url.password()) {
            ("", None) => None,
            (user, password) => {
                use base64::Engine;
                let decode = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8_lossy()
                        .into_owned()
                };
                let pair = format!("{}:{}", decode(user), decode(password.unwrap_or_default()));
                let token = base64::engine::general_purpose::STANDARD.encode(pair);
                let mut value = HeaderValue::from_str(&format!("Basic {token}"))
                    .map_err(|e| template(e.to_string()))?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        Ok(Self { uri, host, basic })
    }
}

/// A request the scenario's text makes impossible to send.
fn template(detail: String) -> SendError {
    SendError {
        kind: ErrorKind::Template,
        detail,
        effect: Effect::None,
    }
}

/// Idle connections a worker keeps (one per origin it sends to, usually one); more are closed.
const IDLE_PER_WORKER: usize = 4;
/// Idle connections kept for work outside the workers (the run's setup, read-backs).
const IDLE_SHARED: usize = 64;

/// The HTTP/1.1 client of a run's load.
pub struct H1Client {
    /// Each worker's idle connections, apart (so no two threads contend for a lock or a cache line
    /// on every request), then one set shared by work outside the workers.
    idle: Box<[Mutex<Vec<Idle>>]>,
    net: crate::net::Network,
    /// TLS with ALPN offering HTTP/1.1 only, made once.
    tls: Option<Arc<rustls::ClientConfig>>,
    timer: Option<ConnectTimer>,
    user_agent: HeaderValue,
}

impl H1Client {
    /// A client for `workers` workers over `net`, `None` when its requests must go through the
    /// general client (HTTP/2 asked for).
    pub fn new(
        workers: usize,
        net: &crate::net::Network,
        timer: Option<&ConnectTimer>,
    ) -> Result<Option<Self>, crate::tls::TlsSetupError> {
        if net.http == HttpVersion::Http2 {
            return Ok(None);
        }
        let tls = match net.http {
            HttpVersion::Http1 => Some(net.tls.config(&[b"http/1.1"])?),
            _ => None,
        };
        Ok(Some(Self {
            idle: (0..=workers).map(|_| Mutex::new(Vec::new())).collect(),
            net: net.clone(),
            tls,
            timer: timer.cloned(),
            user_agent: HeaderValue::from_static(concat!("harness/", env!("CARGO_PKG_VERSION"))),
        }))
    }

    /// Whether requests to `url` go through this client: plain `http://`, and `https://` when the
    /// run speaks HTTP/1.1 only (otherwise ALPN may choose HTTP/2, which the general client speaks).
    pub fn serves(&self, url: &Url) -> bool {
        match url.scheme() {
            "http" => true,
            "https" => self.tls.is_some(),
            _ => false,
        }
    }

    /// The idle connections of `worker` (those shared outside the workers for `None`), and how many
    /// it keeps.
    fn idle(&self, worker: Option<u32>) -> (&Mutex<Vec<Idle>>, usize) {
        let shared = self.idle.len() - 1;
        match worker {
            Some(w) if shared > 0 => (&self.idle[w as usize % shared], IDLE_PER_WORKER),
            _ => (&self.idle[shared], IDLE_SHARED),
        }
    }

    /// Sends `req` for `worker` and reads its whole answer (the caller bounds the time).
    pub async fn exchange(
        &self,
        req: &Request,
        worker: Option<u32>,
    ) -> Result<Response, SendError> {
        let started = Instant::now();
        let mut request = self.build(req)?;
        let idle = self.idle(worker);
        let mut fresh_only = false;
        loop {
            let reusing = match fresh_only {
                true => None,
                false => Self::checkout(idle.0, &req.url).await,
            };
            let (mut conn, reused) = match reusing {
                Some(c) => (c, true),
                // Boxed: opening is rare, and its future (resolve, connect, TLS) is most of this one's.
                None => (
                    Idle::new(&req.url, Box::pin(self.connect(&req.url)).await?),
                    false,
                ),
            };
            match conn.sender.try_send_request(request).await {
                Ok(resp) => return Self::read(resp, (conn, idle), req, started).await,
                Err(mut e) => match e.take_message() {
                    // The connection closed before the request was written: nothing reached the
                    // target, so it goes again on another connection.
                    Some(back) if reused => request = back,
                    _ => {
                        let error = e.into_error();
                        // A kept connection the server had closed as the request went out (it
                        // closed without saying so, or its idle timeout fell just then): an
                        // idempotent request goes once more on a new connection, as RFC 9112 §9.3.1
                        // allows and browsers do. Others are reported: they may have taken effect.
                        if reused && idempotent(&req.method) && closed_unanswered(&error) {
                            fresh_only = true;
                            request = self.build(req)?;
                            continue;
                        }
                        return Err(failed(&error));
                    }
                },
            }
        }
    }

    fn build(&self, req: &Request) -> Result<hyper::Request<Full<Bytes>>, SendError> {
        let made;
        let target = match &req.target {
            Some(t) => t,
            None => {
                made = Target::of(&req.url)?;
                &made
            }
        };
        let body = req.body.clone().unwrap_or_default();
        let mut request = hyper::Request::new(Full::new(body));
        *request.method_mut() = req.method.clone();
        *request.uri_mut() = target.uri.clone();
        let headers = request.headers_mut();
        for (name, value) in &req.headers {
            let name = hyper::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| template(format!("header name `{name}`: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| template(format!("header {name}: {e}")))?;
            headers.append(name, value);
        }
        if !headers.contains_key(HOST) {
            headers.insert(HOST, target.host.clone());
        }
        if let Some(basic) = &target.basic
            && !headers.contains_key(hyper::header::AUTHORIZATION)
        {
            headers.insert(hyper::header::AUTHORIZATION, basic.clone());
        }
        if !headers.contains_key(USER_AGENT) {
            headers.insert(USER_AGENT, self.user_agent.clone());
        }
        if !headers.contains_key(ACCEPT) {
            // As curl and the general client send it: some services route on its presence.
            headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        }
        if req.body.is_some() && !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        Ok(request)
    }

    /// An idle connection to `url`'s origin that is still open, most recently used first.
    async fn checkout(idle: &Mutex<Vec<Idle>>, url: &Url) -> Option<Idle> {
        loop {
            let mut conn = {
                let mut idle = idle.lock().unwrap_or_else(|p| p.into_inner());
                let i = idle.iter().rposition(|c| c.goes_to(url))?;
                idle.swap_remove(i)
            };
            if !conn.sender.is_closed() && conn.sender.ready().await.is_ok() {
                return Some(conn);
            }
        }
    }

    /// Keeps `conn` for its worker's next request, unless it closed or the worker keeps enough.
    fn checkin((idle, keep): (&Mutex<Vec<Idle>>, usize), conn: Idle) {
        if conn.sender.is_closed() {
            return;
        }
        let mut idle = idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < keep {
            idle.push(conn);
        }
    }

    async fn read(
        resp: hyper::Response<hyper::body::Incoming>,
        (conn, idle): (Idle, (&Mutex<Vec<Idle>>, usize)),
        req: &Request,
        started: Instant,
    ) -> Result<Response, SendError> {
        let (head, mut incoming) = resp.into_parts();
        let status = head.status.as_u16();
        let retry_after = matches!(status, 429 | 503)
            .then(|| head.headers.get(hyper::header::RETRY_AFTER))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = Vec::new();
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|e| super::client::cut_off(body.len(), &e))?;
            if let Ok(data) = frame.into_data() {
                if body.len() + data.len() > MAX_BODY_BYTES {
                    return Err(super::client::too_long());
                }
                body.extend_from_slice(&data);
            }
        }
        Self::checkin(idle, conn);
        let mut response = Response::new(status, body, started.elapsed())
            .with_retry_after(retry_after)
            .with_headers(req.keep_headers.then_some(head.headers));
        response.version = head.version;
        Ok(response)
    }

    /// Opens a connection to `url`'s origin (timed when the run times connections).
    async fn connect(&self, url: &Url) -> Result<Sender, SendError> {
        let started = Instant::now();
        let result = self.open(url).await;
        if let Some(timer) = &self.timer {
            timer.note(result.is_ok(), started);
        }
        result
    }

    async fn open(&self, url: &Url) -> Result<Sender, SendError> {
        let refused = |kind, detail: String| SendError {
            kind,
            detail,
            effect: Effect::None,
        };
        let addrs = crate::net::resolve_all(url, self.net.reach)
            .await
            .map_err(|e| match e {
                crate::net::NetError::NotLoopback { .. } => {
                    refused(ErrorKind::Blocked, e.to_string())
                }
                other => refused(ErrorKind::Connect, other.to_string()),
            })?;
        let mut tcp = None;
        let mut why = String::new();
        for addr in &addrs {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => {
                    if crate::net::out_of_descriptors(&e) {
                        // The harness's own limit, not the target's doing: a worker that tried again
                        // at once would spin.
                        tokio::time::sleep(DESCRIPTOR_BACKOFF).await;
                    }
                    why = format!(
                        "cannot connect to {addr}: {}",
                        crate::net::describe_connect_error(&e)
                    );
                }
            }
        }
        let Some(tcp) = tcp else {
            return Err(refused(ErrorKind::Connect, why));
        };
        let _ = tcp.set_nodelay(true);
        let io = match (&self.tls, crate::tls::is_secure(url)) {
            (Some(config), true) => {
                crate::tls::stream::connect(url, tcp, Arc::clone(config), &self.net.tls)
                    .await
                    .map_err(|e| refused(ErrorKind::Tls, e))?
                    .0
            }
            _ => Transport::Plain(tcp),
        };
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| refused(ErrorKind::Connect, super::client::chain(&e)))?;
        tokio::spawn(async move {
            // Ends when the target closes the connection, or when its sender is dropped.
            let _ = connection.await;
        });
        Ok(sender)
    }
}

/// Methods whose repetition has the effect of one request (RFC 9110 §9.2.2).
fn idempotent(method: &hyper::Method) -> bool {
    use hyper::Method;
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::PUT,
        Method::DELETE,
        Method::TRACE,
    ]
    .contains(method)
}

/// Whether the connection ended before any answer began: closed, or reset, under a written request.
fn closed_unanswered(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            );
        }
        source = s.source();
    }
    false
}

/// What a request that got no answer counts as: `too_large` for a response head beyond the limit,
/// `protocol` for one that is not HTTP, otherwise a connection that broke after the request was
/// written (it may have taken effect).
fn failed(e: &hyper::Error) -> SendError {
    let kind = if e.is_parse_too_large() {
        ErrorKind::TooLarge
    } else if e.is_parse() || e.is_parse_status() {
        ErrorKind::Protocol
    } else {
        ErrorKind::Connect
    };
    SendError {
        kind,
        detail: super::client::chain(e),
        effect: Effect::Maybe,
    }
}
