//! Probes of a target's stated policy, run beside the load: rate-limit conformance (WebSocket and
//! HTTP), input hardening and slow-consumer handling (WebSocket). Each opens connections of its own,
//! sends what it needs, and reports measurements and named checks; none of them knows about the load's
//! executors or about reports.

pub mod body_size;
pub mod hardening;
pub mod rate_limit;
pub mod slow_consumer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use url::Url;

use crate::config::template::Template;
use crate::drivers::ws::FrameVars;
use crate::drivers::ws::conn::{self, Conn, Reply, Shared};
use crate::drivers::ws::stats::{Tally, note};

/// Why a probe could not do what it needed to.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Connect(#[from] conn::ConnectError),
    #[error("cannot make a URL of {base} and {path}: {source}")]
    Url {
        base: Url,
        path: String,
        #[source]
        source: url::ParseError,
    },
    #[error("cannot set up the HTTP client: {0}")]
    Client(#[source] crate::drivers::http::ClientError),
    #[error("the echo template has no {{{{payload}}}} to pad")]
    NoPayload,
    #[error(
        "cannot make an echo frame of exactly {size} bytes from the template ({empty} bytes empty)"
    )]
    Size { size: usize, empty: usize },
    #[error("afterwards, a valid echo {what}")]
    NotAnswering { what: String },
    #[error("the slow consumer {what}")]
    SlowConsumer { what: String },
}

/// Where and how the probes talk to a WebSocket endpoint.
pub struct WsEnv {
    pub url: Url,
    pub addr: SocketAddr,
    pub run_id: String,
    pub shared: Arc<Shared>,
    pub connect_timeout: Duration,
    /// Where the probes' connections record what they do.
    pub tally: Tally,
}

impl WsEnv {
    /// Opens a connection of the probe's own (counted with the run's connections).
    pub async fn open(&self, id: u32) -> Result<Conn, ProbeError> {
        let (ws, took) = conn::open(
            &self.url,
            self.addr,
            self.connect_timeout,
            None,
            &self.shared.protocol.setup,
            &self.shared.net,
        )
        .await?;
        note(&self.tally, |c| c.handshake(took));
        Ok(Conn::start(
            ws,
            id,
            Arc::clone(&self.shared),
            None,
            None,
            Arc::clone(&self.tally),
        ))
    }

    /// Sends `template` (rendered with `id` and the given path and payload) and waits up to `wait`
    /// for its reply; `None` when none came (a connection that closed first is a reply).
    pub async fn ask(
        &self,
        conn: &Conn,
        template: &Template,
        id: &str,
        path: &str,
        payload: &str,
        wait: Duration,
    ) -> Option<Reply> {
        let (id_v, path_v, payload_v) = (
            Value::String(id.to_string()),
            Value::String(path.to_string()),
            Value::String(payload.to_string()),
        );
        let run_id = Value::String(self.run_id.clone());
        let zero = Value::from(0);
        let text = |seq: u64| {
            let seq = Value::from(seq);
            let publisher = Value::String(conn.id.to_string());
            template
                .render(&FrameVars {
                    id: &id_v,
                    seq: &seq,
                    publisher: &publisher,
                    path: &path_v,
                    payload: &payload_v,
                    run_id: &run_id,
                    index: &zero,
                })
                .unwrap_or_default()
        };
        self.send_text(conn, id, text, wait).await
    }

    /// Sends the frame `text(seq)` with `id` registered as its correlation id, and waits up to `wait`.
    pub async fn send_text(
        &self,
        conn: &Conn,
        id: &str,
        text: impl FnOnce(u64) -> String,
        wait: Duration,
    ) -> Option<Reply> {
        let rx = match conn.request(id, text).await {
            Ok(rx) => rx,
            Err(closed) => return Some(Reply::Closed(closed)),
        };
        match tokio::time::timeout(wait, conn.wait(rx)).await {
            Ok(reply) => Some(reply),
            Err(_) => {
                conn.forget(id);
                None
            }
        }
    }
}

/// A string as it goes inside a JSON string literal (the templates put `{{path}}` between quotes).
pub fn json_escaped(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted[1..quoted.len().saturating_sub(1).max(1)].to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn escaping_keeps_plain_text_and_escapes_quotes() {
        assert_eq!(super::json_escaped("/a b"), "/a b");
        assert_eq!(super::json_escaped("/a\"b\\"), "/a\\\"b\\\\");
        assert_eq!(super::json_escaped(""), "");
    }
}
