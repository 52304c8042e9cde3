//! The subscribers of publish mode: each subscribes to the run's topic before the load, records every
//! delivery in the ledger, and — when its connection is lost (closed, reset, or silent for longer than
//! its pings allow) — opens a new one with backoff and subscribes again, telling the ledger when it was
//! and was not subscribed, so that only what it was owed counts against delivery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::conn::{Conn, DeliveryHook, Reply, Shared};
use super::delivery::Ledger;
use super::dialer::{Dialer, backoff};
use super::stats::{Tally, note};
use super::{FrameVars, WsError};

/// The subscribers' supervisor tasks.
pub struct Subscribers {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Subscribers {
    /// Opens and subscribes `n` subscribers (failing when one cannot), then keeps them subscribed.
    pub async fn start(
        dialer: &Arc<Dialer>,
        ledger: &Arc<Ledger>,
        n: u32,
        path: &Value,
        run_id: &str,
        tally: &Tally,
    ) -> Result<Self, WsError> {
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        for i in 0..n as usize {
            let hook = hook(ledger, &dialer.shared, i);
            let conn = dialer.open(Some(Arc::clone(&hook)), tally).await?;
            let at = subscribe(&conn, &dialer.shared, run_id, dialer.connect_timeout, path).await?;
            ledger.subscribed(i, at);
            let keeper = Keeper {
                dialer: Arc::clone(dialer),
                ledger: Arc::clone(ledger),
                index: i,
                hook,
                path: path.clone(),
                run_id: run_id.to_string(),
                stop: stop.clone(),
                tally: Arc::clone(tally),
            };
            tasks.push(tokio::spawn(keeper.run(conn)));
        }
        Ok(Self { stop, tasks })
    }

    /// Closes every subscriber.
    pub async fn stop(self) {
        self.stop.cancel();
        futures_util::future::join_all(self.tasks).await;
    }
}

fn hook(ledger: &Arc<Ledger>, shared: &Shared, i: usize) -> DeliveryHook {
    let ledger = Arc::clone(ledger);
    let protocol = Arc::clone(&shared.protocol);
    Arc::new(move |frame: &Value| ledger.received(i, frame, &protocol))
}

struct Keeper {
    dialer: Arc<Dialer>,
    ledger: Arc<Ledger>,
    index: usize,
    hook: DeliveryHook,
    path: Value,
    run_id: String,
    stop: CancellationToken,
    tally: Tally,
}

impl Keeper {
    async fn run(self, first: Conn) {
        let mut conn = first;
        // Silent this long with pings (control or app pings) going out: the connection is dead even
        // if nobody said so.
        let app_ping = self
            .dialer
            .shared
            .protocol
            .app_ping
            .as_ref()
            .map(|a| a.interval);
        let every = match (self.dialer.ping, app_ping) {
            (Some(p), Some(a)) => Some(p.min(a)),
            (p, a) => p.or(a),
        };
        let silence = every.map(|p| (p * 3).max(Duration::from_secs(5)));
        loop {
            tokio::select! {
                _ = lost(&conn, silence) => {}
                _ = self.stop.cancelled() => {
                    conn.close().await;
                    return;
                }
            }
            let lost_at = Instant::now();
            // It was demonstrably subscribed only until it last heard from the server: what was
            // published during the silence is not owed to it (a freeze is not a loss).
            let last_heard = lost_at.checked_sub(conn.idle_for()).unwrap_or(lost_at);
            self.ledger.unsubscribed(self.index, last_heard);
            drop(conn);
            let mut failures = 0;
            conn = loop {
                tokio::select! {
                    _ = tokio::time::sleep(backoff(failures)) => {}
                    _ = self.stop.cancelled() => return,
                }
                match self.resubscribe().await {
                    Ok((c, at)) => {
                        self.ledger.subscribed(self.index, at);
                        note(&self.tally, |c| c.reconnected(lost_at.elapsed()));
                        break c;
                    }
                    Err(_) => failures += 1,
                }
            };
        }
    }

    async fn resubscribe(&self) -> Result<(Conn, Instant), WsError> {
        let c = self
            .dialer
            .open(Some(Arc::clone(&self.hook)), &self.tally)
            .await?;
        let shared = &self.dialer.shared;
        let at = subscribe(
            &c,
            shared,
            &self.run_id,
            self.dialer.connect_timeout,
            &self.path,
        )
        .await?;
        Ok((c, at))
    }
}

/// Ends when the connection is closed, or has been silent for longer than `silence`.
async fn lost(conn: &Conn, silence: Option<Duration>) {
    let Some(silence) = silence else {
        return conn.closed().await;
    };
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = conn.closed() => return,
            _ = tick.tick() => {
                if conn.idle_for() > silence {
                    return;
                }
            }
        }
    }
}

/// Subscribes `conn` to `path`; returns when the acknowledgement arrived.
pub async fn subscribe(
    conn: &Conn,
    shared: &Shared,
    run_id: &str,
    timeout: Duration,
    path: &Value,
) -> Result<Instant, WsError> {
    let path_text = || {
        path.as_str()
            .map_or_else(|| path.to_string(), str::to_string)
    };
    let cid = format!("{run_id}-sub-{}", conn.id);
    let id = Value::String(cid.clone());
    let null = Value::Null;
    let protocol = &shared.protocol;
    let rx = conn
        .request(&cid, |_| {
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
        .map_err(|closed| WsError::SubscribeClosed {
            path: path_text(),
            closed,
        })?;
    match tokio::time::timeout(timeout, conn.wait(rx)).await {
        Ok(Reply::Answer(frame))
            if Reply::json(&frame).is_some_and(|v| protocol.subscribed.matches(&v)) =>
        {
            Ok(Instant::now())
        }
        Ok(Reply::Answer(frame)) => Err(WsError::NotSubscribed {
            path: path_text(),
            frame: String::from_utf8_lossy(&frame).chars().take(300).collect(),
            matcher: protocol.subscribed.to_string(),
        }),
        Ok(Reply::Rejected { frame, .. }) => Err(WsError::SubscriptionRefused {
            path: path_text(),
            frame,
        }),
        Ok(Reply::Closed(closed)) => Err(WsError::SubscribeClosed {
            path: path_text(),
            closed,
        }),
        Err(_) => Err(WsError::NoSubscriptionAck {
            path: path_text(),
            timeout,
        }),
    }
}
