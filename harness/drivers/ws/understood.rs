//! Does the endpoint speak the protocol the scenario describes? Before the load, one frame of the run's
//! kind goes out on a connection of its own — the `echo` frame in echo mode, the `subscribe` frame in
//! publish mode (harmless: nothing is published) — and the frames that come back are read for a short
//! while. One that carries the id sent, where the protocol looks for it, settles the question. Frames
//! that arrive but carry no such id mean the description does not fit: the run would be nothing but
//! timeouts and "never answered" for frames that were answered, so it stops before it starts, showing
//! a frame it got and, when the id came back elsewhere, where.
//!
//! Deliveries and frames the protocol exempts from correlation are passed over. Silence proves nothing (a slow or frozen endpoint is what some runs are there to measure), so an
//! endpoint that sends nothing passes, and the load says what it finds.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::FrameVars;
use super::conn::{Stream, correlation, sample};
use super::frame::Inbound;
use crate::scenario::WsSettings;
use crate::scenario::matcher::find_string;
use crate::scenario::websocket::WsMode;

/// How long the frames that answer the first one are read.
pub const LISTEN: Duration = Duration::from_secs(3);
/// Frames shown in the reason.
const SHOWN: usize = 3;

/// Frames that came back, none tied to the frame sent.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the endpoint does not speak the scenario's protocol: sent the {template} frame `{sent}`; got {} \
     — {hint}",
    got.join(", ")
)]
pub struct Mismatch {
    /// Which template the frame came from.
    pub template: &'static str,
    pub sent: String,
    /// The first frames that came back, each with why it could not be tied (nothing at the pointer,
    /// a value of another type, another id).
    pub got: Vec<String>,
    /// What to change.
    pub hint: String,
}

/// Sends the run's first kind of frame on `ws` and reads what comes back for up to `listen`.
pub async fn check(
    ws: &mut Stream,
    settings: &WsSettings,
    run_id: &str,
    path: &Value,
    listen: Duration,
) -> Result<(), Mismatch> {
    let protocol = &settings.protocol;
    let cid = format!("{run_id}-preflight");
    let (id, null, payload) = (
        Value::String(cid.clone()),
        Value::Null,
        Value::String(String::new()),
    );
    let run = Value::String(run_id.to_string());
    let vars = FrameVars {
        id: &id,
        seq: &Value::from(1),
        publisher: &Value::String("preflight".into()),
        path,
        payload: &payload,
        run_id: &run,
        index: &null,
    };
    let (template, name) = match settings.mode {
        WsMode::Echo => (&protocol.echo, "echo"),
        WsMode::Publish => (&protocol.subscribe, "subscribe"),
    };
    let sent = template.render(&vars).unwrap_or_default();
    if ws.send(Message::text(sent.clone())).await.is_err() {
        // The load meets (and reports) a connection that cannot take a frame.
        return Ok(());
    }
    // The first frames that could not be tied, and where the id sent came back, if it did.
    let mut got: Vec<String> = Vec::new();
    let mut came_back: Option<String> = None;
    let read = async {
        while let Some(next) = ws.next().await {
            let bytes = match next {
                Ok(Message::Text(t)) => t.as_bytes().to_vec(),
                Ok(Message::Binary(b)) => b.to_vec(),
                Ok(Message::Close(_)) | Err(_) => return false,
                Ok(_) => continue,
            };
            let why = match Inbound::parse(&bytes) {
                None => "not JSON".to_string(),
                Some(frame) => match correlation(&frame, protocol) {
                    Ok(id) if id == cid => return true,
                    // Deliveries and the frames the protocol exempts (a greeting, say) prove nothing.
                    _ if protocol.delivery.matches(&frame)
                        || protocol.uncorrelated.matches(&frame) =>
                    {
                        continue;
                    }
                    Ok(id) => format!("{} is {id:?}", protocol.correlation_id),
                    Err(why) => why,
                },
            };
            if came_back.is_none() {
                came_back = serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .and_then(|v| find_string(&v, &cid));
            }
            if got.len() < SHOWN {
                got.push(format!("`{}` ({why})", sample(&bytes)));
            }
        }
        false
    };
    if tokio::time::timeout(listen, read).await.unwrap_or(false) || got.is_empty() {
        return Ok(());
    }
    let hint = match came_back {
        Some(at) => format!(
            "the id sent came back at {at}: set `[websocket.protocol] correlation_id = \"{at}\"`"
        ),
        None if !sent.contains(&cid) => {
            format!(
                "the {name} template puts no `{{{{id}}}}` in the frame, so no reply can carry it"
            )
        }
        None => format!(
            "no frame carried the id sent ({cid}): describe the endpoint's messages in \
             `[websocket.protocol]` (the {name} template, correlation_id, and uncorrelated for \
             frames that carry no id)"
        ),
    };
    Err(Mismatch {
        template: name,
        sent: sample(sent.as_bytes()),
        got,
        hint,
    })
}
