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
pub mod dialer;
pub mod frame;
pub mod stats;
pub mod subscribers;
pub mod understood;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use url::Url;

use self::conn::{Conn, Reply, Shared};
use self::delivery::{Ledger, Outcome as Delivery};
use self::dialer::Dialer;
use self::stats::{Tally, note, tally};
use self::subscribers::Subscribers;
use super::{Driver, IterationContext, Timer};
use crate::config::template::{Lookup, Template};
use crate::faults::{Injected, inject};
use crate::iteration::{Failure, IterationReport};
use crate::result::WsMetrics;
use crate::scenario::{WsMode, WsSettings};
use crate::taxonomy::ErrorKind;

/// Connections opened at once while the pool fills.
const OPEN_AT_ONCE: usize = 64;
/// Tallies the pool's connections record into (slot `i` into tally `i % TALLIES`): enough that
/// connections on different threads rarely share one, few enough that their histograms stay small
/// whatever the number of connections.
const TALLIES: usize = 16;

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

impl FrameVars<'_> {
    /// Renders a frame of the connection's own (an on-connect frame, an app ping), which knows only
    /// its `{{id}}` and `{{seq}}`.
    pub fn render_own(
        template: &crate::config::template::Template,
        id: &Value,
        seq: &Value,
    ) -> String {
        let null = Value::Null;
        template
            .render(&FrameVars {
                id,
                seq,
                publisher: &null,
                path: &null,
                payload: &null,
                run_id: &null,
                index: &null,
            })
            .unwrap_or_default()
    }
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

/// Why the driver could not start, or a subscription could not be made.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    #[error(transparent)]
    Connect(#[from] conn::ConnectError),
    #[error("no connection could be opened: {first}")]
    NoConnection { first: String },
    #[error("cannot subscribe to {path}: {closed}")]
    SubscribeClosed {
        path: String,
        closed: conn::ClosedBy,
    },
    #[error(
        "the subscription to {path} was answered with {frame}, which the protocol's `subscribed` \
         matcher ({matcher}) does not recognise"
    )]
    NotSubscribed {
        path: String,
        frame: String,
        matcher: String,
    },
    #[error("the endpoint refused the subscription to {path}: {frame}")]
    SubscriptionRefused { path: String, frame: String },
    #[error("no acknowledgement of the subscription to {path} within {timeout:?}")]
    NoSubscriptionAck { path: String, timeout: Duration },
}

/// What the driver needs to start.
pub struct WsSetup {
    pub url: Url,
    pub addr: SocketAddr,
    pub run_id: String,
    pub settings: WsSettings,
    /// Iterations the load plans (sizes the delivery ledger).
    pub planned: u64,
    /// How iterations pick their connection: by worker under a closed load (each worker keeps to
    /// its connection, one request at a time, as a real client would), by iteration under an open one
    /// (whichever worker is free takes the next arrival, so this is what spreads arrivals evenly and
    /// a per-connection rate limit sees rate ÷ connections).
    pub by_worker: bool,
}

/// One connection of the pool, opened again after it is lost.
struct Slot {
    conn: RwLock<Option<Arc<Conn>>>,
    tally: Tally,
    reconnect: tokio::sync::Mutex<Backoff>,
    ever_open: AtomicBool,
}

#[derive(Default)]
struct Backoff {
    failures: u32,
    next_attempt: Option<Instant>,
    last_error: String,
    /// The kind of the last failure, for the iterations refused while waiting to retry.
    last_kind: Option<ErrorKind>,
    /// When the slot's connection was found lost.
    lost_at: Option<Instant>,
}

pub struct WsDriver {
    setup: WsSetup,
    dialer: Arc<Dialer>,
    slots: Vec<Slot>,
    /// Where the pool's connections and the subscribers record.
    tallies: Vec<Tally>,
    subscribers: Mutex<Option<Subscribers>>,
    ledger: Option<Arc<Ledger>>,
    path: Value,
    payload: Value,
    run_id: Value,
}

impl WsDriver {
    /// Opens the pool and, in publish mode, the subscribers (each subscribed before the load starts).
    /// Fails when no connection at all could be opened, or a subscription is refused.
    pub async fn start(setup: WsSetup, shared: Arc<Shared>) -> Result<Self, WsError> {
        let s = &setup.settings;
        let dialer = Arc::new(Dialer::new(
            setup.url.clone(),
            setup.addr,
            s.connect_timeout,
            s.ping_interval,
            shared,
        ));
        let run_id = Value::String(setup.run_id.clone());
        let path = render_path(&s.path, &run_id);
        let ledger = (s.mode == WsMode::Publish)
            .then(|| Arc::new(Ledger::new(&setup.run_id, setup.planned, s.subscribers)));
        let tallies: Vec<Tally> = (0..(s.connections as usize).clamp(1, TALLIES) + 1)
            .map(|_| tally())
            .collect();
        let subscribers = match &ledger {
            Some(l) => Some(
                Subscribers::start(&dialer, l, s.subscribers, &path, &setup.run_id, &tallies[0])
                    .await?,
            ),
            None => None,
        };
        let driver = Self {
            slots: (0..s.connections as usize)
                .map(|i| Slot {
                    conn: RwLock::new(None),
                    tally: Arc::clone(&tallies[1 + i % (tallies.len() - 1)]),
                    reconnect: tokio::sync::Mutex::new(Backoff::default()),
                    ever_open: AtomicBool::new(false),
                })
                .collect(),
            subscribers: Mutex::new(subscribers),
            ledger,
            payload: Value::String("x".repeat(s.payload_size)),
            path,
            run_id,
            dialer,
            setup,
            tallies,
        };
        let opened: Vec<Result<(), Failure>> = futures_util::stream::iter(0..driver.slots.len())
            .map(|i| {
                let d = &driver;
                async move { d.open_slot(i).await.map(|_| ()) }
            })
            .buffer_unordered(OPEN_AT_ONCE)
            .collect()
            .await;
        if !opened.is_empty() && opened.iter().all(Result::is_err) {
            let first = opened
                .into_iter()
                .find_map(Result::err)
                .map(|f| f.detail)
                .unwrap_or_default();
            return Err(WsError::NoConnection { first });
        }
        Ok(driver)
    }

    /// Where the pool's connections and the subscribers recorded what they did.
    pub fn tallies(&self) -> &[Tally] {
        &self.tallies
    }

    /// Acknowledged publishes sent between `from` and `until` that a subscriber owed them never
    /// received (publish mode only).
    pub fn lost_sent_between(&self, from: Instant, until: Instant) -> Option<u64> {
        self.ledger
            .as_ref()
            .map(|l| l.lost_sent_between(from, until))
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
        if slot.ever_open.load(Ordering::Relaxed) {
            backoff.lost_at.get_or_insert(now);
        }
        if let Some(at) = backoff.next_attempt.filter(|at| now < *at) {
            return Err(Failure {
                kind: backoff.last_kind.unwrap_or(ErrorKind::Connect),
                rule: None,
                step: None,
                detail: format!(
                    "{}; reconnecting in {}ms",
                    backoff.last_error,
                    at.duration_since(now).as_millis()
                ),
            });
        }
        match self.dialer.open(None, &slot.tally).await {
            Ok(conn) => {
                slot.ever_open.store(true, Ordering::Relaxed);
                if let Some(lost) = backoff.lost_at {
                    note(&slot.tally, |c| c.reconnected(lost.elapsed()));
                }
                let conn = Arc::new(conn);
                *slot.conn.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&conn));
                *backoff = Backoff::default();
                Ok(conn)
            }
            Err(e) => {
                backoff.failures += 1;
                backoff.next_attempt = Some(now + dialer::backoff(backoff.failures));
                backoff.last_error = e.to_string();
                backoff.last_kind = Some(e.kind());
                Err(Failure {
                    kind: e.kind(),
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
        let conns: Vec<Arc<Conn>> = self
            .slots
            .iter()
            .filter_map(|s| s.conn.write().unwrap_or_else(|p| p.into_inner()).take())
            .collect();
        futures_util::future::join_all(conns.iter().map(|c| c.close())).await;
        let subscribers = self
            .subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(s) = subscribers {
            s.stop().await;
        }
        let mut m = WsMetrics::default();
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

/// The run's topic, its `{{run_id}}` filled in.
pub fn render_path(path: &Template, run_id: &Value) -> Value {
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

impl Driver for WsDriver {
    async fn iterate(&self, ctx: IterationContext, timer: &mut Timer) -> IterationReport {
        let (fault, deadline) = (ctx.fault, ctx.deadline);
        match inject(fault, 0, deadline, self.exchange(ctx, timer)).await {
            Injected::Ran(report) => report,
            Injected::Invalid(report) if report.failure().is_some() => report,
            stopped => stopped
                .failure(None)
                .map_or_else(IterationReport::succeeded, IterationReport::failed),
        }
    }
}

impl WsDriver {
    /// One exchange: the iteration's frame sent on its connection, and its reply awaited.
    async fn exchange(&self, ctx: IterationContext, timer: &mut Timer) -> IterationReport {
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
            WsMode::Echo => &self.dialer.shared.protocol.echo,
            WsMode::Publish => &self.dialer.shared.protocol.publish,
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
            .request(cid, |seq| {
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
                return Self::fail(closed.kind, closed.to_string());
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
                IterationReport::succeeded()
            }
            Some(Reply::Rejected {
                rate_limited,
                frame,
                ..
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
                Self::fail(c.kind, c.to_string())
            }
        }
    }
}
