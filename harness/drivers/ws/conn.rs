//! One client WebSocket connection: opened with its handshake timed, then read by the requests waiting
//! on it (or, for a subscriber, by a reader task). Inbound frames are matched to the requests waiting
//! for them by correlation id, or — for a refusal that carries none — to the oldest request still
//! waiting (a reply to a request that timed out is late, and charged to no other request); a close
//! with a code the protocol names as a refusal refuses what waits; deliveries go to a subscriber's
//! hook; a ping task measures round trips, and an app-ping task (when the protocol has one) the round
//! trips of the endpoint's own ping frame, with the server's clock where its pong carries it. Requests are sent under one lock, so frames leave in the
//! order their sequence numbers were given.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Bytes, Message};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::frame::Inbound;
use super::stats::{Gauge, Tally, note};
use crate::metrics::Opened;
use crate::scenario::WsProtocol;
use crate::scenario::matcher::JsonType;
use crate::scenario::websocket::ConnSetup;
use crate::scenario::websocket::RefusalKind;

pub type Stream = WebSocketStream<crate::tls::stream::Transport>;

/// What came back for a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A frame carrying the request's correlation id that is not a rejection (its bytes; see
    /// [`Reply::json`]).
    Answer(Bytes),
    /// The endpoint refused the message: with a frame the protocol calls a refusal, or by closing the
    /// connection with a code it names as one.
    Rejected {
        rate_limited: bool,
        frame: String,
        /// Seconds the refusal asked to wait before retrying, where the protocol says where to look.
        retry_after_s: Option<f64>,
    },
    /// The connection closed first.
    Closed(ClosedBy),
}

impl Reply {
    /// An answer's frame as JSON.
    pub fn json(frame: &Bytes) -> Option<Value> {
        serde_json::from_slice(frame).ok()
    }
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedBy {
    /// The close code the endpoint sent, if it sent a close frame.
    pub code: Option<u16>,
    pub reason: String,
    /// What went wrong, for the iterations it fails: `connect` for a connection that ended or broke,
    /// `protocol` for framing the protocol forbids (text that is not UTF-8, say), `too_large` for a
    /// message over the harness's limit.
    pub kind: crate::taxonomy::ErrorKind,
}

impl ClosedBy {
    /// Ended by the endpoint or the network (`kind` connect).
    pub fn lost(code: Option<u16>, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
            kind: crate::taxonomy::ErrorKind::Connect,
        }
    }
}

impl std::fmt::Display for ClosedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(code) if self.reason.is_empty() => write!(f, "closed by the target ({code})"),
            Some(code) => write!(f, "closed by the target ({code}: {})", self.reason),
            None => write!(f, "connection lost: {}", self.reason),
        }
    }
}

/// Why a connection could not be opened.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to {addr}: {why}")]
    Tcp { addr: String, why: String },
    #[error("the WebSocket handshake failed: {0}")]
    Handshake(String),
    /// The TLS handshake failed: why, in words (which certificate, which name).
    #[error("TLS: {0}")]
    Tls(String),
    #[error("no TCP connection within {0:?}")]
    Timeout(Duration),
    /// The TCP connection was made, but the upgrade (or the on-connect replies) did not finish.
    #[error(
        "the TCP connection was made, but the WebSocket upgrade and on-connect replies did not finish within {0:?} (is it a WebSocket endpoint?)"
    )]
    UpgradeTimeout(Duration),
    /// An on-connect frame was not answered as the scenario expects.
    #[error("setting up the connection failed: {0}")]
    Setup(String),
}

impl ConnectError {
    /// How an iteration that could not get its connection failed.
    pub fn kind(&self) -> crate::taxonomy::ErrorKind {
        use crate::taxonomy::ErrorKind;
        match self {
            ConnectError::Tcp { .. } | ConnectError::Timeout(_) => ErrorKind::Connect,
            ConnectError::Tls(_) => ErrorKind::Tls,
            ConnectError::Handshake(_)
            | ConnectError::UpgradeTimeout(_)
            | ConnectError::Setup(_) => ErrorKind::Handshake,
        }
    }
}

/// Opens a connection to `url` at `addr` (resolved once per run), TLS for `wss` (as `net` says), set
/// up as `setup` says (handshake headers and subprotocols, then the on-connect frames and their
/// replies); returns it with the time the TCP connect, the TLS handshake, the upgrade and the set-up
/// took. `recv_buffer` shrinks the socket's receive buffer (the slow-consumer probe uses it so that a
/// stalled reader fills up quickly).
pub async fn open(
    url: &Url,
    addr: std::net::SocketAddr,
    timeout: Duration,
    recv_buffer: Option<u32>,
    setup: &ConnSetup,
    net: &crate::net::Network,
) -> Result<(Stream, Opened), ConnectError> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::from_std(started + timeout);
    let tcp_err = |e: std::io::Error| ConnectError::Tcp {
        addr: addr.to_string(),
        why: crate::net::describe_connect_error(&e),
    };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(tcp_err)?;
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).map_err(tcp_err)?;
    }
    let stream = tokio::time::timeout_at(deadline, socket.connect(addr))
        .await
        .map_err(|_| ConnectError::Timeout(timeout))?
        .map_err(tcp_err)?;
    let _ = stream.set_nodelay(true);
    let work = async {
        let (stream, tls) = if crate::tls::is_secure(url) {
            let (t, took) = tls_handshake(url, stream, net).await?;
            (t, Some(took))
        } else {
            (crate::tls::stream::Transport::Plain(stream), None)
        };
        let request = handshake_request(url, setup)?;
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(
            request,
            stream,
            Some(client_config(setup.max_message)),
        )
        .await
        .map_err(|e| match crate::tls::find(&e) {
            // A server that refuses our client certificate says so after the handshake.
            Some(t) => {
                ConnectError::Tls(crate::tls::describe(t, url.host_str().unwrap_or_default()))
            }
            None => ConnectError::Handshake(describe_ws(&e)),
        })?;
        on_connect(&mut ws, setup).await?;
        Ok((
            ws,
            Opened {
                took: started.elapsed(),
                tls,
            },
        ))
    };
    tokio::time::timeout_at(deadline, work)
        .await
        .map_err(|_| ConnectError::UpgradeTimeout(timeout))?
}

/// Makes `tcp` TLS to `url`'s host (or the configured server name), offering HTTP/1.1 by ALPN.
async fn tls_handshake(
    url: &Url,
    tcp: TcpStream,
    net: &crate::net::Network,
) -> Result<(crate::tls::stream::Transport, Duration), ConnectError> {
    let config = net
        .tls
        .config(&[b"http/1.1"])
        .map_err(|e| ConnectError::Tls(e.to_string()))?;
    crate::tls::stream::connect(url, tcp, config, &net.tls)
        .await
        .map_err(ConnectError::Tls)
}

fn handshake_request(
    url: &Url,
    setup: &ConnSetup,
) -> Result<tungstenite::handshake::client::Request, ConnectError> {
    use tungstenite::client::IntoClientRequest;
    use tungstenite::http::{HeaderName, HeaderValue};
    let bad = |e: &dyn std::fmt::Display| ConnectError::Handshake(e.to_string());
    let mut request = url.as_str().into_client_request().map_err(|e| bad(&e))?;
    let headers = request.headers_mut();
    for (name, value) in &setup.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad(&e))?;
        let value = HeaderValue::from_str(value).map_err(|e| bad(&e))?;
        headers.insert(name, value);
    }
    if !setup.subprotocols.is_empty() {
        let offered = HeaderValue::from_str(&setup.subprotocols.join(", ")).map_err(|e| bad(&e))?;
        headers.insert("Sec-WebSocket-Protocol", offered);
    }
    Ok(request)
}

/// Sends the on-connect frames, each waiting (within the connect timeout) for the reply its matcher
/// recognises.
async fn on_connect(ws: &mut Stream, setup: &ConnSetup) -> Result<(), ConnectError> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    for step in &setup.on_connect {
        let id = Value::String(format!(
            "on-connect-{}",
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let frame = super::FrameVars::render_own(&step.send, &id, &Value::Null);
        ws.send(Message::text(frame.clone())).await.map_err(|e| {
            ConnectError::Setup(format!(
                "could not send `{}`: {e}",
                sample(frame.as_bytes())
            ))
        })?;
        let Some(expect) = &step.expect else {
            continue;
        };
        loop {
            let bytes = match ws.next().await {
                Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
                Some(Ok(Message::Binary(b))) => b.to_vec(),
                Some(Ok(Message::Close(f))) => {
                    return Err(ConnectError::Setup(format!(
                        "the endpoint closed the connection ({}) in answer to `{}`",
                        f.map_or("no code".to_string(), |f| format!(
                            "{}: {}",
                            u16::from(f.code),
                            f.reason
                        )),
                        sample(frame.as_bytes())
                    )));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    return Err(ConnectError::Setup(format!(
                        "the connection failed while waiting for the reply to `{}`: {e}",
                        sample(frame.as_bytes())
                    )));
                }
                None => {
                    return Err(ConnectError::Setup(format!(
                        "the connection ended before the reply to `{}`",
                        sample(frame.as_bytes())
                    )));
                }
            };
            if let Some(f) = Inbound::parse(&bytes)
                && expect.matches(&f)
            {
                break;
            }
        }
    }
    Ok(())
}

/// Bytes read from the socket at a time. tungstenite zeroes this much of its buffer before every read
/// (even one that finds nothing), so its 128 KiB default costs a 128 KiB memset per wake-up; 8 KiB
/// keeps that small, and a thousand connections' buffers at 8 MiB instead of 128.
pub const READ_BUFFER: usize = 8 * 1024;

/// The largest message (and frame) a connection accepts when its setup names no limit.
pub const DEFAULT_MAX_MESSAGE: usize = 16 << 20;

/// The WebSocket settings of every connection the harness opens: a message or a frame larger than
/// `max_message` fails the connection when its header arrives, before anything is buffered.
pub fn client_config(max_message: Option<usize>) -> WebSocketConfig {
    let max = max_message.unwrap_or(DEFAULT_MAX_MESSAGE);
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

fn describe_ws(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Http(resp) => format!(
            "the target answered HTTP {} instead of switching protocols (is the path right?)",
            resp.status()
        ),
        other => other.to_string(),
    }
}

/// What every connection of a run shares: the protocol, and how many connections are open.
pub struct Shared {
    pub protocol: Arc<WsProtocol>,
    /// How connections reach the endpoint (TLS for wss).
    pub net: crate::net::Network,
    pub gauge: Gauge,
    epoch: Instant,
}

impl Shared {
    pub fn new(protocol: Arc<WsProtocol>, net: crate::net::Network) -> Arc<Self> {
        Arc::new(Self {
            protocol,
            net,
            gauge: Gauge::default(),
            epoch: Instant::now(),
        })
    }

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// Called with every delivery a subscriber's connection receives.
pub type DeliveryHook = Arc<dyn Fn(&Value) + Send + Sync>;

/// The correlation key a ping waits under (no endpoint's id can hold a NUL).
const PING_KEY: &str = "\0ping";
/// The key an application-level ping waits under.
const APP_PING_KEY: &str = "\0app-ping";
/// A connection idle this long is checked for frames (a close, say) before its next request.
const IDLE_CHECK_US: u64 = 10_000;

#[derive(Default)]
struct Pending {
    waiting: HashMap<String, oneshot::Sender<Reply>>,
    order: VecDeque<String>,
    /// Ids of requests that stopped waiting (timed out), newest last, at most [`FORGOTTEN`]: a reply
    /// carrying one is late.
    forgotten: VecDeque<String>,
    forgotten_set: std::collections::HashSet<String>,
}

/// How many ids of timed-out requests a connection remembers.
const FORGOTTEN: usize = 1024;

impl Pending {
    fn forgot(&mut self, cid: &str) {
        if self.forgotten.len() == FORGOTTEN
            && let Some(old) = self.forgotten.pop_front()
        {
            self.forgotten_set.remove(&old);
        }
        self.forgotten.push_back(cid.to_string());
        self.forgotten_set.insert(cid.to_string());
    }
}

struct Inner {
    sink: tokio::sync::Mutex<SplitSink<Stream, Message>>,
    /// The read half, for whoever waits to read it; `None` while a reader task owns it.
    stream: tokio::sync::Mutex<Option<SplitStream<Stream>>>,
    pending: Mutex<Pending>,
    closed: CancellationToken,
    closed_by: Mutex<Option<ClosedBy>>,
    seq: AtomicU64,
    /// When a frame was last read, in microseconds of the shared epoch.
    last_read: AtomicU64,
    /// Where this connection records what it does.
    tally: Tally,
}

/// An open connection; dropping it cuts the connection.
///
/// A subscriber's connection has a reader task, since deliveries arrive unasked. Every other connection
/// is read by the requests themselves: a request that waits for its reply takes the read half (unless
/// another waiter has it) and reads until its reply is in, handing the other replies it meets to their
/// waiters. One request at a time then costs one task and one wake-up, as a bare client loop does.
pub struct Conn {
    pub id: u32,
    /// `id` as the `{{publisher}}` of frame templates.
    pub publisher: Value,
    inner: Arc<Inner>,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Conn {
    /// Starts a connection on an opened stream: with a reader task when it has a delivery hook, and a
    /// ping task given an interval.
    pub fn start(
        ws: Stream,
        id: u32,
        shared: Arc<Shared>,
        on_delivery: Option<DeliveryHook>,
        ping: Option<Duration>,
        tally: Tally,
    ) -> Self {
        let (sink, stream) = ws.split();
        let (owned, stream) = match on_delivery {
            Some(hook) => (Some((stream, hook)), None),
            None => (None, Some(stream)),
        };
        let inner = Arc::new(Inner {
            sink: tokio::sync::Mutex::new(sink),
            stream: tokio::sync::Mutex::new(stream),
            pending: Mutex::default(),
            closed: CancellationToken::new(),
            closed_by: Mutex::new(None),
            seq: AtomicU64::new(0),
            last_read: AtomicU64::new(shared.now_us()),
            tally,
        });
        shared.gauge.opened();
        let mut tasks = Vec::new();
        if let Some((stream, hook)) = owned {
            tasks.push(tokio::spawn(read(
                stream,
                Arc::clone(&inner),
                Arc::clone(&shared),
                hook,
            )));
        }
        if let Some(every) = ping {
            tasks.push(tokio::spawn(pings(
                Arc::downgrade(&inner),
                Arc::clone(&shared),
                every,
            )));
        }
        if shared.protocol.app_ping.is_some() {
            tasks.push(tokio::spawn(app_pings(
                Arc::downgrade(&inner),
                Arc::clone(&shared),
                id,
            )));
        }
        Self {
            id,
            publisher: Value::String(id.to_string()),
            inner,
            shared,
            tasks,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled()
    }

    /// Whether the connection is still open, after reading whatever arrived while it sat idle (a close
    /// frame, say), without waiting.
    pub fn is_open(&self) -> bool {
        if self.is_closed() {
            return false;
        }
        let idle = self
            .shared
            .now_us()
            .saturating_sub(self.inner.last_read.load(Ordering::Relaxed));
        if idle > IDLE_CHECK_US
            && let Ok(mut guard) = self.inner.stream.try_lock()
            && let Some(stream) = guard.as_mut()
        {
            while let Some(next) = stream.next().now_or_never() {
                handle(&self.inner, &self.shared, None, next);
                if self.is_closed() {
                    break;
                }
            }
        }
        !self.is_closed()
    }

    /// Waits until the connection has closed.
    pub async fn closed(&self) {
        self.inner.closed.cancelled().await;
    }

    /// How long since a frame (or a pong) last arrived.
    pub fn idle_for(&self) -> Duration {
        Duration::from_micros(
            self.shared
                .now_us()
                .saturating_sub(self.inner.last_read.load(Ordering::Relaxed)),
        )
    }

    pub fn closed_by(&self) -> Option<ClosedBy> {
        self.inner
            .closed_by
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sends the frame `render(seq)` makes (seq counts this connection's requests from 1) and returns
    /// where its reply will arrive; pass that to [`Conn::wait`]. The request is registered before the
    /// frame leaves.
    pub async fn request(
        &self,
        cid: &str,
        render: impl FnOnce(u64) -> String,
    ) -> Result<oneshot::Receiver<Reply>, ClosedBy> {
        let (tx, rx) = oneshot::channel();
        let mut sink = self.inner.sink.lock().await;
        if let Some(closed) = self.closed_by() {
            return Err(closed);
        }
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let frame = render(seq);
        {
            let mut p = self.inner.pending.lock().unwrap_or_else(|p| p.into_inner());
            p.waiting.insert(cid.to_string(), tx);
            p.order.push_back(cid.to_string());
        }
        if let Err(e) = sink.send(Message::text(frame)).await {
            self.forget(cid);
            return Err(ClosedBy::lost(None, e.to_string()));
        }
        note(&self.inner.tally, |c| c.sent += 1);
        Ok(rx)
    }

    /// Waits for the reply `rx` stands for, reading the connection meanwhile unless another waiter
    /// (or the reader task) does. Cancel-safe: dropping it leaves the connection as it was.
    pub async fn wait(&self, rx: oneshot::Receiver<Reply>) -> Reply {
        wait(&self.inner, &self.shared, rx).await
    }

    /// Stops waiting for a reply (its request timed out).
    pub fn forget(&self, cid: &str) {
        let mut p = self.inner.pending.lock().unwrap_or_else(|p| p.into_inner());
        if p.waiting.remove(cid).is_some() {
            if let Some(i) = p.order.iter().position(|c| c == cid) {
                p.order.remove(i);
            }
            p.forgot(cid);
        }
    }

    /// Sends a frame nobody waits a reply for (probes' raw frames).
    pub async fn send(&self, message: Message) -> Result<(), ClosedBy> {
        let mut sink = self.inner.sink.lock().await;
        sink.send(message)
            .await
            .map_err(|e| ClosedBy::lost(None, e.to_string()))
    }

    /// Sends a normal close and waits briefly for the endpoint's answer.
    pub async fn close(&self) {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        if self.send(Message::Close(Some(frame))).await.is_err() {
            return;
        }
        let drain = async {
            let mut guard = self.inner.stream.lock().await;
            match guard.as_mut() {
                Some(stream) => {
                    while !self.is_closed() {
                        let next = stream.next().await;
                        handle(&self.inner, &self.shared, None, next);
                    }
                }
                None => self.inner.closed.cancelled().await,
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(500), drain).await;
    }
}

async fn wait(inner: &Inner, shared: &Shared, mut rx: oneshot::Receiver<Reply>) -> Reply {
    let gone = || Reply::Closed(ClosedBy::lost(None, "the connection went away"));
    // Either the reply comes (handed over by whoever reads), or this waiter gets the read half first
    // and reads until the reply is in.
    tokio::select! {
        biased;
        reply = &mut rx => reply.unwrap_or_else(|_| gone()),
        mut guard = inner.stream.lock() => {
            let Some(stream) = guard.as_mut() else {
                // A reader task owns the stream: the reply comes through `rx`.
                drop(guard);
                return (&mut rx).await.unwrap_or_else(|_| gone());
            };
            loop {
                match rx.try_recv() {
                    Ok(reply) => return reply,
                    Err(oneshot::error::TryRecvError::Closed) => return gone(),
                    Err(oneshot::error::TryRecvError::Empty) => {}
                }
                let next = stream.next().await;
                handle(inner, shared, None, next);
            }
        }
    }
}

/// Takes one read result: a frame to dispatch, a pong to time, a close or an end to record.
fn handle(
    inner: &Inner,
    shared: &Shared,
    on_delivery: Option<&DeliveryHook>,
    next: Option<Result<Message, tungstenite::Error>>,
) {
    inner.last_read.store(shared.now_us(), Ordering::Relaxed);
    match next {
        Some(Ok(Message::Text(text))) => {
            note(&inner.tally, |c| c.received += 1);
            dispatch(inner, shared, on_delivery, text.into());
        }
        Some(Ok(Message::Binary(bytes))) => {
            note(&inner.tally, |c| c.received += 1);
            dispatch(inner, shared, on_delivery, bytes);
        }
        Some(Ok(Message::Pong(payload))) => {
            if let Ok(sent) = <[u8; 8]>::try_from(payload.as_ref()) {
                let rtt = shared.now_us().saturating_sub(u64::from_be_bytes(sent));
                note(&inner.tally, |c| c.ping(rtt));
            }
            hand_over(inner, PING_KEY, Reply::Answer(Bytes::new()));
        }
        Some(Ok(Message::Close(frame))) => {
            let by = match frame {
                Some(f) => ClosedBy::lost(Some(u16::from(f.code)), f.reason.to_string()),
                None => ClosedBy::lost(Some(1005), ""),
            };
            if let Some(code) = by.code {
                note(&inner.tally, |c| c.close_code(code));
            }
            end(inner, shared, by);
        }
        Some(Ok(_)) => {}
        Some(Err(e)) => {
            let by = broken(inner, &e);
            end(inner, shared, by)
        }
        None => end(
            inner,
            shared,
            ClosedBy::lost(
                None,
                "the target closed the connection without a close frame",
            ),
        ),
    }
}

/// What a read error means, and the close the protocol asks for when the harness is the one that
/// gives up: 1007 for a text frame that is not UTF-8, 1009 for a message over the limit, 1002 for
/// other framing errors. The close is sent if the socket takes it at once (best effort: the
/// connection is being dropped either way).
fn broken(inner: &Inner, e: &tungstenite::Error) -> ClosedBy {
    use crate::taxonomy::ErrorKind;
    use tungstenite::error::{CapacityError, Error as WsErr};
    let (kind, close) = match e {
        WsErr::Utf8(_) => (ErrorKind::Protocol, Some(CloseCode::Invalid)),
        WsErr::Capacity(CapacityError::MessageTooLong { .. }) => {
            (ErrorKind::TooLarge, Some(CloseCode::Size))
        }
        WsErr::Capacity(_) => (ErrorKind::TooLarge, Some(CloseCode::Size)),
        WsErr::Protocol(_) => (ErrorKind::Protocol, Some(CloseCode::Protocol)),
        _ => (ErrorKind::Connect, None),
    };
    if let Some(code) = close
        && let Ok(mut sink) = inner.sink.try_lock()
    {
        let frame = CloseFrame {
            code,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(frame))).now_or_never();
    }
    ClosedBy {
        code: None,
        reason: e.to_string(),
        kind,
    }
}

/// Gives `reply` to whoever waits under `key` (a ping's or an app ping's waiter), if anyone does.
fn hand_over(inner: &Inner, key: &str, reply: Reply) {
    let waiter = inner
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .waiting
        .remove(key);
    if let Some(tx) = waiter {
        let _ = tx.send(reply);
    }
}

/// Records how the connection ended (the first reason wins) and fails every request still waiting.
fn end(inner: &Inner, shared: &Shared, by: ClosedBy) {
    if inner.closed.is_cancelled() {
        return;
    }
    *inner.closed_by.lock().unwrap_or_else(|p| p.into_inner()) = Some(by.clone());
    inner.closed.cancel();
    shared.gauge.closed();
    let pending = std::mem::take(&mut *inner.pending.lock().unwrap_or_else(|p| p.into_inner()));
    let refusal = by
        .code
        .and_then(|code| shared.protocol.close_refusals.get(&code));
    for (key, tx) in pending.waiting {
        let reply = match refusal {
            Some(kind) if key != PING_KEY && key != APP_PING_KEY => Reply::Rejected {
                rate_limited: *kind == RefusalKind::RateLimited,
                frame: by.to_string(),
                retry_after_s: None,
            },
            _ => Reply::Closed(by.clone()),
        };
        let _ = tx.send(reply);
    }
}

/// A subscriber's reader: every inbound frame, until the connection ends.
async fn read(
    mut stream: SplitStream<Stream>,
    inner: Arc<Inner>,
    shared: Arc<Shared>,
    on_delivery: DeliveryHook,
) {
    while !inner.closed.is_cancelled() {
        let next = stream.next().await;
        handle(&inner, &shared, Some(&on_delivery), next);
    }
}

/// A frame as text for a message: at most [`SAMPLE_CHARS`] characters, control characters escaped.
pub fn sample(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text
        .chars()
        .take(SAMPLE_CHARS)
        .flat_map(|c| {
            let escaped: Vec<char> = if crate::text::is_hidden(c) {
                c.escape_unicode().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    if text.chars().count() > SAMPLE_CHARS {
        out.push('…');
    }
    out
}

/// Characters of a frame kept in a message about it.
const SAMPLE_CHARS: usize = 160;

/// The correlation id of a frame, or why it has none the protocol accepts.
pub fn correlation(frame: &Inbound<'_>, protocol: &WsProtocol) -> Result<String, String> {
    let pointer = &protocol.correlation_id;
    let Some(value) = frame.lookup(pointer) else {
        return Err(format!("nothing at {pointer}"));
    };
    let kind = JsonType::of(&value);
    if !protocol.correlation_types.contains(&kind) {
        return Err(format!("{pointer} is {}", kind.name()));
    }
    match value {
        Value::String(s) if s.is_empty() => Err(format!("{pointer} is empty")),
        Value::String(s) => Ok(s),
        other => Ok(other.to_string()),
    }
}

/// Matches one inbound frame to what waits for it.
fn dispatch(inner: &Inner, shared: &Shared, on_delivery: Option<&DeliveryHook>, bytes: Bytes) {
    let protocol = &shared.protocol;
    let Some(frame) = Inbound::parse(&bytes) else {
        note(&inner.tally, |c| {
            c.uncorrelated(|| format!("`{}` (not JSON)", sample(&bytes)))
        });
        return;
    };
    // A pong of the app ping: one is in flight per connection, so it needs no id.
    if let Some(app) = &protocol.app_ping
        && app.pong.matches(&frame)
    {
        hand_over(
            inner,
            APP_PING_KEY,
            Reply::Answer(Bytes::copy_from_slice(&bytes)),
        );
        return;
    }
    let cid = match correlation(&frame, protocol) {
        Ok(cid) => Some(cid),
        Err(why) => {
            if !protocol.uncorrelated.matches(&frame) {
                note(&inner.tally, |c| {
                    c.uncorrelated(|| format!("`{}` ({why})", sample(&bytes)))
                });
            }
            None
        }
    };
    if protocol.delivery.matches(&frame) {
        if let Some(hook) = on_delivery
            && let Some(value) = Reply::json(&bytes)
        {
            hook(&value);
        }
        return;
    }
    let rate_limited = protocol.rate_limited.matches(&frame);
    let refused = rate_limited || protocol.rejection.matches(&frame);
    let waiter = {
        let mut p = inner.pending.lock().unwrap_or_else(|p| p.into_inner());
        let known = cid
            .as_ref()
            .and_then(|c| p.waiting.remove(c).map(|tx| (c, tx)));
        match known {
            Some((c, tx)) => {
                if let Some(i) = p.order.iter().position(|o| o == c) {
                    p.order.remove(i);
                }
                Some(tx)
            }
            // Its request timed out: late, and charged to nobody else.
            None if cid.as_ref().is_some_and(|c| p.forgotten_set.contains(c)) => {
                drop(p);
                note(&inner.tally, |s| s.late_replies += 1);
                return;
            }
            // A refusal the endpoint could not tie to a message (no id, or one it made up for a
            // message it could not read): the oldest waiting one.
            None if refused => {
                let oldest = p.order.pop_front();
                oldest.and_then(|c| p.waiting.remove(&c))
            }
            None => None,
        }
    };
    let Some(tx) = waiter else {
        return;
    };
    let reply = if refused {
        let retry_after_s = if rate_limited {
            protocol.retry_after.as_ref().and_then(|r| {
                let v = frame.lookup(&r.pointer)?;
                let n = v.as_f64().or_else(|| v.as_str()?.trim().parse().ok())?;
                (n.is_finite() && n >= 0.0).then_some(n * r.unit_s)
            })
        } else {
            None
        };
        Reply::Rejected {
            rate_limited,
            frame: sample(&bytes),
            retry_after_s,
        }
    } else {
        // A copy, not a share of the read buffer: a share still alive when the next frame is read
        // makes the codec allocate (and zero) a fresh buffer. Measured on the echo benchmark: the
        // difference between ~68k and ~89k round trips a second.
        Reply::Answer(Bytes::copy_from_slice(&bytes))
    };
    let _ = tx.send(reply);
}

/// Sends a ping every `every`, its payload the send time, and waits for the pong (reading the
/// connection if nobody else is), until the connection goes.
async fn pings(inner: Weak<Inner>, shared: Arc<Shared>, every: Duration) {
    let mut tick = ticker(every).await;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let payload = shared.now_us().to_be_bytes().to_vec();
        let ping = Message::Ping(payload.into());
        if round_trip(&inner, &shared, PING_KEY, ping, every)
            .await
            .is_none()
        {
            return;
        }
    }
}

/// Sends the protocol's app ping every interval and waits (within the interval) for its pong: the
/// round trip goes to `app_ping`, an unanswered ping is counted, and a pong carrying the server's
/// clock gives a clock offset. Runs until the connection goes.
async fn app_pings(inner: Weak<Inner>, shared: Arc<Shared>, conn: u32) {
    let Some(app) = shared.protocol.app_ping.as_ref() else {
        return;
    };
    let mut tick = ticker(app.interval).await;
    for seq in 1u64.. {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let id = Value::String(format!("app-ping-{conn}-{seq}"));
        let frame = super::FrameVars::render_own(&app.send, &id, &Value::from(seq));
        let sent_wall = std::time::SystemTime::now();
        let sent = shared.now_us();
        let reply = round_trip(
            &inner,
            &shared,
            APP_PING_KEY,
            Message::text(frame),
            app.interval,
        );
        let Some(reply) = reply.await else {
            return;
        };
        note(&inner.tally, |c| c.sent += 1);
        match reply {
            Some(Reply::Closed(_) | Reply::Rejected { .. }) => return,
            Some(Reply::Answer(pong)) => {
                let rtt = shared.now_us().saturating_sub(sent);
                let offset = app
                    .server_time
                    .as_ref()
                    .and_then(|t| clock_offset_us(&pong, t, sent_wall, rtt));
                note(&inner.tally, |c| {
                    c.app_ping(rtt);
                    if let Some(o) = offset {
                        c.clock_offset.record(o);
                    }
                });
            }
            None => note(&inner.tally, |c| c.app_ping_unanswered += 1),
        }
    }
}

/// An interval that first fires `every` from now, and skips what it missed.
async fn ticker(every: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    tick
}

/// Sends `message` with a waiter registered under `key`, and waits up to `within` for what answers it
/// (reading the connection if nobody else is): `None` when the connection is gone, `Some(None)` when
/// nothing answered in time.
async fn round_trip(
    inner: &Inner,
    shared: &Shared,
    key: &str,
    message: Message,
    within: Duration,
) -> Option<Option<Reply>> {
    if inner.closed.is_cancelled() {
        return None;
    }
    let waiters = || inner.pending.lock().unwrap_or_else(|p| p.into_inner());
    let (tx, rx) = oneshot::channel();
    waiters().waiting.insert(key.to_string(), tx);
    let sent = inner.sink.lock().await.send(message).await;
    let reply = match sent {
        Ok(()) => Some(
            tokio::time::timeout(within, wait(inner, shared, rx))
                .await
                .ok(),
        ),
        Err(_) => None,
    };
    waiters().waiting.remove(key);
    reply
}

/// The server's clock in `pong` less the middle of the round trip on ours, in microseconds; `None`
/// when the pong has no usable time there.
fn clock_offset_us(
    pong: &[u8],
    at: &crate::scenario::websocket::ServerTime,
    sent: std::time::SystemTime,
    rtt_us: u64,
) -> Option<i64> {
    let frame = Inbound::parse(pong)?;
    let v = frame.lookup(&at.pointer)?;
    let n = v.as_f64().or_else(|| v.as_str()?.trim().parse().ok())?;
    let server_us = n * at.unit_s * 1e6;
    if !server_us.is_finite() || server_us <= 0.0 {
        return None;
    }
    let sent_us = sent.duration_since(std::time::UNIX_EPOCH).ok()?.as_micros() as f64;
    let middle_us = sent_us + rtt_us as f64 / 2.0;
    let offset = server_us - middle_us;
    // Beyond a few centuries the unit is wrong, not the clock.
    (offset.abs() < 1e16).then_some(offset as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::ws::stats::tally;
    use tokio::net::TcpListener;

    /// A server that reads `expect` frames, then sends `replies` in order, then closes with `close`
    /// (if given) or waits for the client to go.
    async fn scripted(
        replies: Vec<String>,
        expect: usize,
        close: Option<u16>,
    ) -> (Url, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            for _ in 0..expect {
                ws.next().await;
            }
            for r in replies {
                ws.send(Message::text(r)).await.unwrap();
            }
            if let Some(code) = close {
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: "slow down".into(),
                };
                let _ = ws.send(Message::Close(Some(frame))).await;
            }
            while ws.next().await.is_some() {}
        });
        (Url::parse(&format!("ws://{addr}/")).unwrap(), addr)
    }

    use std::net::SocketAddr;

    async fn connect(url: &Url, addr: SocketAddr, protocol: WsProtocol) -> (Conn, Tally) {
        let net = crate::net::Network::local().unwrap();
        let (ws, _) = open(
            url,
            addr,
            Duration::from_secs(5),
            None,
            &protocol.setup,
            &net,
        )
        .await
        .unwrap();
        let t = tally();
        let shared = Shared::new(Arc::new(protocol), net);
        (Conn::start(ws, 0, shared, None, None, t.clone()), t)
    }

    fn stats(t: &Tally) -> crate::metrics::ConnectionStats {
        t.lock().unwrap().connections().clone()
    }

    #[tokio::test]
    async fn a_refusal_for_a_request_that_timed_out_is_late_not_another_requests() {
        let refusal = r#"{"type":"error","correlation_id":"a","error":{"code":"rate_limited"}}"#;
        let answer = r#"{"type":"echo","correlation_id":"b"}"#;
        let (url, addr) = scripted(vec![refusal.into(), answer.into()], 2, None).await;
        let (conn, t) = connect(&url, addr, WsProtocol::default()).await;
        let _a = conn.request("a", |_| "first".into()).await.unwrap();
        conn.forget("a");
        let b = conn.request("b", |_| "second".into()).await.unwrap();
        assert!(
            matches!(conn.wait(b).await, Reply::Answer(_)),
            "b is answered, not charged with a's refusal"
        );
        assert_eq!(stats(&t).late_replies, 1);
    }

    #[tokio::test]
    async fn a_close_the_protocol_names_a_refusal_refuses_what_waits() {
        let (url, addr) = scripted(Vec::new(), 1, Some(4029)).await;
        let mut protocol = WsProtocol::default();
        protocol
            .close_refusals
            .insert(4029, RefusalKind::RateLimited);
        let (conn, _) = connect(&url, addr, protocol).await;
        let rx = conn.request("a", |_| "hello".into()).await.unwrap();
        match conn.wait(rx).await {
            Reply::Rejected {
                rate_limited: true,
                frame,
                ..
            } => assert!(frame.contains("4029"), "{frame}"),
            other => panic!("expected a rate-limit refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn frames_without_an_id_are_counted_with_samples_unless_exempt() {
        let frames = vec![
            r#"{"type":"welcome"}"#.to_string(),
            r#"{"type":"notice","correlation_id":true}"#.to_string(),
            "not json \u{202e}".to_string(),
            r#"{"type":"echo","correlation_id":"a"}"#.to_string(),
        ];
        let (url, addr) = scripted(frames, 1, None).await;
        let protocol = WsProtocol {
            uncorrelated: crate::scenario::FrameMatcher::equals("/type", "welcome"),
            ..WsProtocol::default()
        };
        let (conn, t) = connect(&url, addr, protocol).await;
        let rx = conn.request("a", |_| "x".into()).await.unwrap();
        assert!(matches!(conn.wait(rx).await, Reply::Answer(_)));
        let s = stats(&t);
        assert_eq!(s.without_correlation, 2, "{:?}", s.uncorrelated_samples);
        assert_eq!(
            s.uncorrelated_samples,
            vec![
                r#"`{"type":"notice","correlation_id":true}` (/correlation_id is bool)"#,
                r#"`not json \u{202e}` (not JSON)"#,
            ]
        );
    }
}
