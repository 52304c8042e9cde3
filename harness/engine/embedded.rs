//! Reaching the plan's target: the URL it gives, or a reference target started in this process on
//! 127.0.0.1 (at a port the system picks, seeded from the run) and stopped when the run is over.

use url::Url;

use super::error::TargetError;
use crate::kinds::Embedded;
use crate::plan::Endpoint;
use crate::reference::{self, handoff::HandoffConfig, ws::WsConfig};
use crate::result::RunResult;

/// The target of a run, and the reference target serving it when the engine started one.
pub struct Reached {
    pub url: Url,
    running: Option<reference::Running>,
}

impl Reached {
    /// Stops the reference target the engine started, noting in `result` if it did not stop cleanly.
    pub async fn stop(self, mut result: RunResult) -> RunResult {
        if let Some(running) = self.running
            && let Err(e) = running.stop().await
        {
            result.notes.push(format!(
                "The embedded reference target did not stop cleanly: {e}"
            ));
        }
        result
    }
}

/// The target's URL, starting the embedded reference target when the plan asks for one.
pub async fn reach(endpoint: &Endpoint, seed: u64) -> Result<Reached, TargetError> {
    match endpoint {
        Endpoint::At { url, .. } => Ok(Reached {
            url: url.clone(),
            running: None,
        }),
        Endpoint::Start(Embedded::Handoff) => {
            let config = HandoffConfig {
                seed,
                ..HandoffConfig::default()
            };
            let running =
                reference::start_handoff(config)
                    .await
                    .map_err(|source| TargetError::Embedded {
                        which: "handoff service",
                        source,
                    })?;
            Ok(Reached {
                url: running.url.clone(),
                running: Some(running),
            })
        }
        Endpoint::Start(Embedded::Websocket) => {
            let config = WsConfig {
                seed,
                ..WsConfig::default()
            };
            let running =
                reference::start_ws(config)
                    .await
                    .map_err(|source| TargetError::Embedded {
                        which: "WebSocket server",
                        source,
                    })?;
            Ok(Reached {
                url: running.url.clone(),
                running: Some(running),
            })
        }
    }
}

/// What a result names as the target of an embedded run that never got a port.
pub fn placeholder(e: Embedded) -> Url {
    let text = match e {
        Embedded::Handoff => "http://127.0.0.1:0/",
        Embedded::Websocket => "ws://127.0.0.1:0/ws",
    };
    Url::parse(text).expect("a fixed URL parses")
}
