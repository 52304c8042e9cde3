//! One WebSocket connection of the reference server: a reader that applies the policy to every inbound
//! message (size, rate limit, validation) and answers through the connection's capped send queue, and a
//! writer that drains the queue onto the socket. The reader never waits on the writer, so a client that
//! stops reading fills only its own queue, and is evicted once that has stayed full past the grace.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;

use super::App;
use super::hub::{Counters, Outbound, Peer};
use super::protocol::{self, Request};
use crate::reference::bucket::TokenBucket;
use crate::reference::chaos::Action;

/// Close code for a message over the size limit.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for repeated abuse of the rate limit.
pub const CLOSE_POLICY: u16 = 1008;
/// How often a connection checks whether its queue has stayed full.
const STALL_CHECK: Duration = Duration::from_millis(100);
/// How long a closing connection's writer gets to send what is queued.
const FLUSH_GRACE: Duration = Duration::from_secs(1);

/// Rejections counted over a sliding window, for the abuse policy.
struct Abuse {
    times: VecDeque<Instant>,
    limit: usize,
    window: Duration,
}

impl Abuse {
    /// Records a rejection; true when the window now holds more than the limit.
    fn record(&mut self, now: Instant) -> bool {
        if self.limit == 0 {
            return false;
        }
        while self
            .times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > self.window)
        {
            self.times.pop_front();
        }
        self.times.push_back(now);
        self.times.len() > self.limit
    }
}

enum Flow {
    Continue,
    /// Stop reading: the connection is being closed by the server.
    Stop,
}

/// Runs one upgraded connection to its end.
pub async fn serve(socket: WebSocket, app: Arc<App>) {
    let counters = &app.counters;
    Counters::bump(&counters.connections_total);
    counters.connections_open.fetch_add(1, Ordering::Relaxed);
    let id = app.next_id();
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Outbound>(app.config.send_queue.max(1));
    let peer = Peer::new(
        id,
        tx,
        app.config.slow_consumer_grace,
        app.config.defects.keep_slow_consumers,
    );
    let writer_app = Arc::clone(&app);
    let mut writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            match out {
                Outbound::Text(text) => {
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                    Counters::bump(&writer_app.counters.messages_sent);
                }
                Outbound::Close(code, reason) => {
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code,
                            reason: reason.into(),
                        })))
                        .await;
                    return;
                }
            }
        }
    });

    let policy = &app.config;
    let mut bucket = TokenBucket::new(policy.enforced_rate(), policy.burst, Instant::now());
    let mut abuse = Abuse {
        times: VecDeque::new(),
        limit: policy.abuse_limit as usize,
        window: policy.abuse_window,
    };
    let mut stall = tokio::time::interval(STALL_CHECK);
    stall.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let message = tokio::select! {
            _ = peer.evicted.cancelled() => break,
            _ = stall.tick() => {
                peer.check_stalled(Instant::now());
                continue;
            }
            m = stream.next() => m,
        };
        let flow = match message {
            None | Some(Err(_)) => break,
            Some(Ok(Message::Close(_))) => {
                // Answer the client's close, as the protocol asks, before going.
                peer.offer(Outbound::Close(1000, String::new()), counters);
                break;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Flow::Continue,
            Some(Ok(Message::Text(text))) => {
                handle(&app, &peer, &mut bucket, &mut abuse, text.as_bytes()).await
            }
            Some(Ok(Message::Binary(bytes))) => {
                handle(&app, &peer, &mut bucket, &mut abuse, &bytes).await
            }
        };
        if let Flow::Stop = flow {
            break;
        }
    }
    app.hub.forget(id);
    if peer.evicted.is_cancelled() {
        // The writer is stuck on a socket nobody reads: cut the connection.
        writer.abort();
        Counters::bump(&counters.disconnected_slow);
        tracing::info!(peer = id, "disconnected a slow consumer");
    } else {
        // Let the writer send what is queued (a close frame, say), then go.
        drop(peer);
        if tokio::time::timeout(FLUSH_GRACE, &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
    }
    counters.connections_open.fetch_sub(1, Ordering::Relaxed);
}

/// Applies the policy to one inbound message and answers it.
async fn handle(
    app: &App,
    peer: &Arc<Peer>,
    bucket: &mut TokenBucket,
    abuse: &mut Abuse,
    bytes: &[u8],
) -> Flow {
    let counters = &app.counters;
    let config = &app.config;
    // The blocking-fanout defect handles one message at a time, server-wide.
    let _serial = if config.defects.blocking_fanout {
        Some(app.dispatch.lock().await)
    } else {
        None
    };
    Counters::bump(&counters.messages_received);
    if bytes.len() > config.max_message_bytes && !config.defects.no_size_limit {
        Counters::bump(&counters.closed_too_large);
        peer.offer(
            Outbound::Close(
                CLOSE_TOO_BIG,
                format!(
                    "message of {} bytes is over the {}-byte limit",
                    bytes.len(),
                    config.max_message_bytes
                ),
            ),
            counters,
        );
        return Flow::Stop;
    }
    let now = Instant::now();
    let allowed = bucket.try_take(now);
    let parsed: Result<Value, _> = serde_json::from_slice(bytes);
    let client_cid = parsed.as_ref().ok().and_then(protocol::correlation_id);
    let cid = client_cid
        .clone()
        .unwrap_or_else(|| app.new_correlation_id());
    let error = |code: &str, message: &str| {
        Counters::bump(&counters.errors_sent);
        let cid = (!config.defects.uncorrelated_errors).then_some(cid.as_str());
        peer.offer(
            Outbound::Text(protocol::error_frame(cid, code, message)),
            counters,
        );
    };
    if !allowed {
        Counters::bump(&counters.rate_limited);
        if abuse.record(now) {
            Counters::bump(&counters.closed_for_abuse);
            peer.offer(
                Outbound::Close(
                    CLOSE_POLICY,
                    format!(
                        "more than {} messages over the rate limit within {}s",
                        abuse.limit,
                        abuse.window.as_secs()
                    ),
                ),
                counters,
            );
            return Flow::Stop;
        }
        error(
            "rate_limited",
            &format!(
                "rate limit exceeded: {} messages/s, burst {}, per connection",
                config.rate_per_s, config.burst
            ),
        );
        return Flow::Continue;
    }
    let message = match parsed {
        Ok(v) => v,
        Err(e) => {
            error("malformed_json", &format!("not valid JSON: {e}"));
            return Flow::Continue;
        }
    };
    let request = match protocol::parse(&message) {
        Ok(r) => r,
        Err(refusal) => {
            error(refusal.code, &refusal.message);
            return Flow::Continue;
        }
    };
    match app.chaos.decide(&format!("/ws/{}", request.kind())) {
        Action::Pass => {}
        Action::Delay(d) => tokio::time::sleep(d).await,
        Action::Fail(d) => {
            tokio::time::sleep(d).await;
            error("internal_error", "injected error (chaos)");
            return Flow::Continue;
        }
        Action::Down => {
            error("backend_unavailable", "backend down (chaos)");
            return Flow::Continue;
        }
    }
    let reply = match request {
        Request::Echo { payload } => protocol::echo_frame(&cid, payload),
        Request::Subscribe { path } => {
            app.hub.subscribe(&path, peer);
            protocol::subscribed_frame(&cid, "subscribed", &path)
        }
        Request::Unsubscribe { path } => {
            app.hub.unsubscribe(&path, peer.id);
            protocol::subscribed_frame(&cid, "unsubscribed", &path)
        }
        Request::Publish { path, data } => {
            let frame = protocol::message_frame(&cid, &path, data);
            let mut delivered = 0;
            for sub in app.hub.subscribers(&path) {
                if app.drops_delivery() {
                    Counters::bump(&counters.dropped);
                    continue;
                }
                let frame = Outbound::Text(frame.clone());
                let queued = if config.defects.blocking_fanout {
                    sub.deliver_waiting(frame).await
                } else {
                    sub.offer(frame, counters)
                };
                if queued {
                    delivered += 1;
                }
            }
            protocol::published_frame(&cid, &path, delivered)
        }
    };
    peer.offer(Outbound::Text(reply), counters);
    Flow::Continue
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abuse_counts_rejections_within_the_window() {
        let mut a = Abuse {
            times: VecDeque::new(),
            limit: 3,
            window: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        assert!(!a.record(t0));
        assert!(!a.record(t0));
        // The first two fall out of the window.
        assert!(!a.record(t0 + Duration::from_secs(11)));
        assert!(!a.record(t0 + Duration::from_secs(11)));
        assert!(!a.record(t0 + Duration::from_secs(12)));
        assert!(a.record(t0 + Duration::from_secs(12)), "4 within 10s");
        let mut off = Abuse {
            times: VecDeque::new(),
            limit: 0,
            window: Duration::from_secs(10),
        };
        assert!((0..1000).all(|_| !off.record(t0)));
    }
}
