//! The WebSocket driver. It keeps a pool of connections (one per worker by default) and, in publish
//! mode, subscribers that record every delivery in the [`delivery::Ledger`]. One iteration sends one
//! frame made from the scenario's template — an echo or a publish — on its worker's connection and
//! waits for the reply carrying its correlation id; latency is the engine's (from the intended start
//! under an open load). A connection that is lost is opened again on next use, with backoff, so a
//! target that restarts is measured rather than abandoned.
//!
//! It knows the endpoint only through the scenario's protocol profile (templates and JSON pointers).

pub mod conn;
pub mod delivery;
pub mod frame;
pub mod stats;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use url::Url;

use self::conn::{Conn, ConnectError, DeliveryHook, Reply, Shared};
use self::delivery::{Ledger, Outcome as Delivery};
use self::stats::WsStats;
use super::{Driver, Failure, IterationContext, IterationReport, Timer};
use crate::config::template::{Lookup, Template};
use crate::result::WsMetrics;
use crate::scenario::{FaultKind, WsMode, WsSettings};
use crate::taxonomy::ErrorKind;

/// Connections opened at once while the pool fills.
const OPEN_AT_ONCE: usize = 64;
/// Longest wait before reconnecting a lost connection.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The values a frame template can use.
pub struct FrameVars<'a> {
    pub id: &'a Value,
    pub seq: &'a Value,
    pub publisher: &'a Value,
    pub path: &'a Value,
    pub payload: &'a Value,
    pub run_id: &'a Value,
    pub index: &'a Value,
}

impl Lookup for FrameVars<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        Some(match name {
            "id" => self.id,
            "seq" => self.seq,
            "publisher" => self.publisher,
            "path" => self.path,
            "payload" => self.payload,
            "run_id" => self.run_id,
            "index" => self.index,
            _ => return None,
        })
    }
}

/// Resolves the endpoint's address once, for every connection of the run.
pub async fn resolve(url: &Url) -> Result<SocketAddr, String> {
    let host = url.host_str().ok_or_else(|| format!("{url} has no host"))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} resolves to no address"))
}

/// What the driver needs to start.
pub struct WsSetup {
    pub url: Url,
    pub addr: SocketAddr,
    pub run_id: String,
    pub settings: WsSettings,
    /// Iterations the load plans (sizes the delivery ledger).
    pub planned: u64,
    pub fault_latency: Duration,
    /// How iterations pick their connection: by worker under a closed load (each worker keeps to
    /// its connection, one request at a time, as a real client would), by iteration under an open one
    /// (whichever worker is free takes the next arrival, so this is what spreads arrivals evenly and
    /// a per-connection rate limit sees rate ÷ connections).
    pub by_worker: bool,
}

/// One connection of the pool, opened again after it is lost.
struct Slot {
    conn: RwLock<Option<Arc<Conn>>>,
    reconnect: tokio::sync::Mutex<Backoff>,
    ever_open: AtomicBool,
}

#[derive(Default)]
struct Backoff {
    failures: u32,
    next_attempt: Option<Instant>,
    last_error: String,
}

pub struct WsDriver {
    setup: WsSetup,
    shared: Arc<Shared>,
    slots: Vec<Slot>,
    subscribers: Mutex<Vec<Conn>>,
    ledger: Option<Arc<Ledger>>,
    next_conn: AtomicU32,
    path: Value,
    payload: Value,
    run_id: Value,
}

impl WsDriver {
    /// Opens the pool and, in publish mode, the subscribers (each subscribed before the load starts).
    /// Fails when no connection at all could be opened, or a subscription is refused.
    pub async fn start(setup: WsSetup, stats: Arc<WsStats>) -> Result<Self, String> {
        let s = &setup.settings;
        let shared = Shared::new(Arc::new(s.protocol.clone()), stats);
        let run_id = Value::String(setup.run_id.clone());
        let path = render_path(&s.path, &run_id);
        let ledger = (s.mode == WsMode::Publish)
            .then(|| Arc::new(Ledger::new(&setup.run_id, setup.planned, s.subscribers)));
        let driver = Self {
            slots: (0..s.connections)
                .map(|_| Slot {
                    conn: RwLock::new(None),
                    reconnect: tokio::sync::Mutex::new(Backoff::default()),
                    ever_open: AtomicBool::new(false),
                })
                .collect(),
            subscribers: Mutex::default(),
            ledger,
            next_conn: AtomicU32::new(0),
            payload: Value::String("x".repeat(s.payload_size)),
            path,
            run_id,
            shared,
            setup,
        };
        driver.subscribe_all().await?;
        let opened: Vec<Result<(), String>> = futures_util::stream::iter(0..driver.slots.len())
            .map(|i| {
                let d = &driver;
                async move { d.open_slot(i).await.map(|_| ()).map_err(|f| f.detail) }
            })
            .buffer_unordered(OPEN_AT_ONCE)
            .collect()
            .await;
        if !opened.is_empty() && opened.iter().all(Result::is_err) {
            let first = opened.into_iter().find_map(Result::err).unwrap_or_default();
            return Err(format!("no connection could be opened: {first}"));
        }
        Ok(driver)
    }

    pub fn stats(&self) -> &Arc<WsStats> {
        &self.shared.stats
    }

    async fn subscribe_all(&self) -> Result<(), String> {
        let Some(ledger) = &self.ledger else {
            return Ok(());
        };
        for i in 0..self.setup.settings.subscribers as usize {
            let hook: DeliveryHook = {
                let ledger = Arc::clone(ledger);
                let protocol = Arc::clone(&self.shared.protocol);
                Arc::new(move |frame: &Value| ledger.received(i, frame, &protocol))
            };
            let conn = self.open(Some(hook)).await.map_err(|e| e.to_string())?;
            subscribe(&conn, &self.shared, &self.setup, &self.path).await?;
            self.subscribers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
        }
        Ok(())
    }

    async fn open(&self, hook: Option<DeliveryHook>) -> Result<Conn, ConnectError> {
        let s = &self.setup.settings;
        match conn::open(&self.setup.url, self.setup.addr, s.connect_timeout, None).await {
            Ok((ws, took)) => {
                self.shared.stats.handshake(took);
                let id = self.next_conn.fetch_add(1, Ordering::Relaxed) + 1;
                Ok(Conn::start(
                    ws,
                    id,
                    Arc::clone(&self.shared),
                    hook,
                    s.ping_interval,
                ))
            }
            Err(e) => {
                self.shared.stats.connect_failed();
                Err(e)
            }
        }
    }

    /// The connection of slot `i`, opening it (again) when it is lost and its backoff has passed.
    async fn open_slot(&self, i: usize) -> Result<Arc<Conn>, Failure> {
        let slot = &self.slots[i];
        let live = |slot: &Slot| {
            slot.conn
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .filter(|c| c.is_open())
                .cloned()
        };
        if let Some(c) = live(slot) {
            return Ok(c);
        }
        let mut backoff = slot.reconnect.lock().await;
        if let Some(c) = live(slot) {
            return Ok(c);
        }
        let now = Instant::now();
        if let Some(at) = backoff.next_attempt.filter(|at| now < *at) {
            return Err(Failure {
                kind: ErrorKind::Connect,
                rule: None,
                step: None,
                detail: format!(
                    "{}; reconnecting in {}ms",
                    backoff.last_error,
                    at.duration_since(now).as_millis()
                ),
            });
        }
        match self.open(None).await {
            Ok(conn) => {
                if slot.ever_open.swap(true, Ordering::Relaxed) {
                    self.shared.stats.reconnected();
                }
                let conn = Arc::new(conn);
                *slot.conn.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&conn));
                *backoff = Backoff::default();
                Ok(conn)
            }
            Err(e) => {
                backoff.failures += 1;
                let wait = FIRST_BACKOFF
                    .saturating_mul(1 << backoff.failures.min(16).saturating_sub(1))
                    .min(MAX_BACKOFF);
                backoff.next_attempt = Some(now + wait);
                backoff.last_error = e.to_string();
                Err(Failure {
                    kind: ErrorKind::Connect,
                    rule: None,
                    step: None,
                    detail: e.to_string(),
                })
            }
        }
    }

    /// Waits for deliveries still on their way (up to the settle time), closes every connection, and
    /// returns what was measured.
    pub async fn finish(&self) -> WsMetrics {
        if let Some(ledger) = &self.ledger {
            let until = Instant::now() + self.setup.settings.settle;
            while ledger.outstanding() > 0 && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let mut conns: Vec<Arc<Conn>> = self
            .slots
            .iter()
            .filter_map(|s| s.conn.write().unwrap_or_else(|p| p.into_inner()).take())
            .collect();
        let subs: Vec<Conn> =
            std::mem::take(&mut *self.subscribers.lock().unwrap_or_else(|p| p.into_inner()));
        conns.extend(subs.into_iter().map(Arc::new));
        futures_util::future::join_all(conns.iter().map(|c| c.close())).await;
        let mut m = self.shared.stats.metrics();
        if let Some(ledger) = &self.ledger {
            let (report, rate, latency) = ledger.report();
            m.delivery = Some(report);
            m.delivery_rate = rate;
            m.delivery_ms = latency;
        }
        m
    }

    fn fail(kind: ErrorKind, detail: impl Into<String>) -> IterationReport {
        IterationReport::failed(Failure {
            kind,
            rule: None,
            step: None,
            detail: detail.into(),
        })
    }
}

fn render_path(path: &Template, run_id: &Value) -> Value {
    let null = Value::Null;
    let vars = FrameVars {
        id: &null,
        seq: &null,
        publisher: &null,
        path: &null,
        payload: &null,
        run_id,
        index: &null,
    };
    Value::String(path.render(&vars).unwrap_or_default())
}

/// Subscribes `conn` to `path` and waits for the acknowledgement.
pub async fn subscribe(
    conn: &Conn,
    shared: &Shared,
    setup: &WsSetup,
    path: &Value,
) -> Result<(), String> {
    let cid = format!("{}-sub-{}", setup.run_id, conn.id);
    let id = Value::String(cid.clone());
    let null = Value::Null;
    let protocol = &shared.protocol;
    let rx = conn
        .request(&cid, &shared.stats, |_| {
            let vars = FrameVars {
                id: &id,
                seq: &null,
                publisher: &null,
                path,
                payload: &null,
                run_id: &null,
                index: &null,
            };
            protocol.subscribe.render(&vars).unwrap_or_default()
        })
        .await
        .map_err(|c| format!("cannot subscribe to {path}: {c}"))?;
    match tokio::time::timeout(setup.settings.connect_timeout, conn.wait(rx)).await {
        Ok(Reply::Answer(frame))
            if Reply::json(&frame).is_some_and(|v| protocol.subscribed.matches(&v)) =>
        {
            Ok(())
        }
        Ok(Reply::Answer(frame)) => Err(format!(
            "the subscription to {path} was answered with {}, which the protocol's `subscribed` matcher ({} = {}) does not recognise",
            String::from_utf8_lossy(&frame),
            protocol.subscribed.pointer,
            protocol.subscribed.equals
        )),
        Ok(Reply::Rejected { frame, .. }) => Err(format!(
            "the endpoint refused the subscription to {path}: {frame}"
        )),
        Ok(Reply::Closed(c)) => Err(format!("cannot subscribe to {path}: {c}")),
        Err(_) => Err(format!(
            "no acknowledgement of the subscription to {path} within {:?}",
            setup.settings.connect_timeout
        )),
    }
}

impl Driver for WsDriver {
    async fn iterate(&self, ctx: IterationContext, timer: &mut Timer) -> IterationReport {
        match ctx.fault.map(|f| f.kind) {
            Some(FaultKind::Error) => {
                return Self::fail(
                    ErrorKind::Injected,
                    "injected error: the message was not sent",
                );
            }
            Some(FaultKind::Timeout) => {
                tokio::time::sleep_until(ctx.deadline.into()).await;
                return Self::fail(ErrorKind::Timeout, "injected timeout: no reply awaited");
            }
            Some(FaultKind::Latency) => {
                let until = (Instant::now() + self.setup.fault_latency).min(ctx.deadline);
                tokio::time::sleep_until(until.into()).await;
            }
            Some(FaultKind::Validation) | None => {}
        }
        let n = self.slots.len().max(1);
        let slot = if self.setup.by_worker {
            ctx.worker as usize % n
        } else {
            (ctx.index % n as u64) as usize
        };
        let conn = match self.open_slot(slot).await {
            Ok(c) => c,
            Err(f) => return IterationReport::failed(f),
        };
        let id = Value::String(format!("{}-{}", self.setup.run_id, ctx.index));
        let cid = id.as_str().unwrap_or_default();
        let index = Value::from(ctx.index);
        let template = match self.setup.settings.mode {
            WsMode::Echo => &self.shared.protocol.echo,
            WsMode::Publish => &self.shared.protocol.publish,
        };
        if let Some(l) = &self.ledger {
            l.sent(ctx.index);
        }
        let settle = |outcome| {
            if let Some(l) = &self.ledger {
                l.finished(ctx.index, outcome);
            }
        };
        let sent = conn
            .request(cid, &self.shared.stats, |seq| {
                let seq = Value::from(seq);
                let vars = FrameVars {
                    id: &id,
                    seq: &seq,
                    publisher: &conn.publisher,
                    path: &self.path,
                    payload: &self.payload,
                    run_id: &self.run_id,
                    index: &index,
                };
                template.render(&vars).unwrap_or_default()
            })
            .await;
        let rx = match sent {
            Ok(rx) => rx,
            Err(closed) => {
                settle(Delivery::Indeterminate);
                return Self::fail(ErrorKind::Connect, closed.to_string());
            }
        };
        match timer.within(ctx.deadline, conn.wait(rx)).await {
            None => {
                conn.forget(cid);
                settle(Delivery::Indeterminate);
                Self::fail(ErrorKind::Timeout, "no reply before the iteration timeout")
            }
            Some(Reply::Answer(_)) => {
                settle(Delivery::Acknowledged);
                if ctx.fault.is_some_and(|f| f.kind == FaultKind::Validation) {
                    return Self::fail(
                        ErrorKind::Injected,
                        "injected validation failure: the reply was treated as invalid",
                    );
                }
                IterationReport::succeeded()
            }
            Some(Reply::Rejected {
                rate_limited,
                frame,
            }) => {
                settle(Delivery::Failed);
                let kind = if rate_limited {
                    ErrorKind::RateLimited
                } else {
                    ErrorKind::Rejected
                };
                Self::fail(kind, format!("refused: {frame}"))
            }
            Some(Reply::Closed(c)) => {
                settle(Delivery::Indeterminate);
                Self::fail(ErrorKind::Connect, c.to_string())
            }
        }
    }
}
