//! The reference targets the harness embeds: a handoff service (HTTP) and a WebSocket server. Each takes a bound listener and a shutdown future, so tests bind 127.0.0.1:0 and a run can
//! start one on an ephemeral port, use it, and stop it. Nothing here knows about scenarios or runs.

pub mod api;
pub mod bucket;
pub mod chaos;
pub mod handoff;
pub mod ws;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use url::Url;

use crate::tls::server::{ServerTls, TlsListener};

/// A reference target running in this process.
pub struct Running {
    pub url: Url,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops accepting connections, lets requests in progress finish, and waits for the server.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

/// Starts the reference handoff service on 127.0.0.1 at a port the system picks.
pub async fn start_handoff(config: handoff::HandoffConfig) -> std::io::Result<Running> {
    start_handoff_with(config, None).await
}

/// Starts the reference handoff service on 127.0.0.1, over TLS (`https://`) when `tls` is given.
pub async fn start_handoff_with(
    config: handoff::HandoffConfig,
    tls: Option<&ServerTls>,
) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async {
        let _ = stopped.await;
    };
    let (scheme, task) = match tls {
        None => (
            "http",
            tokio::spawn(handoff::serve(listener, config, shutdown)),
        ),
        Some(tls) => {
            let listener =
                TlsListener::new(listener, tls.config().map_err(std::io::Error::other)?)?;
            (
                "https",
                tokio::spawn(handoff::serve(listener, config, shutdown)),
            )
        }
    };
    let url = Url::parse(&format!("{scheme}://{addr}")).map_err(std::io::Error::other)?;
    Ok(Running {
        url,
        stop: Some(stop),
        task,
    })
}

/// Starts the reference WebSocket server on 127.0.0.1 at a port the system picks; `url` is its
/// WebSocket endpoint (`ws://127.0.0.1:PORT/ws`).
pub async fn start_ws(config: ws::WsConfig) -> std::io::Result<Running> {
    start_ws_with(config, None).await
}

/// Starts the reference WebSocket server on 127.0.0.1, over TLS (`wss://`) when `tls` is given.
pub async fn start_ws_with(
    config: ws::WsConfig,
    tls: Option<&ServerTls>,
) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async {
        let _ = stopped.await;
    };
    let (scheme, task) = match tls {
        None => ("ws", tokio::spawn(ws::serve(listener, config, shutdown))),
        Some(tls) => {
            let listener =
                TlsListener::new(listener, tls.config().map_err(std::io::Error::other)?)?;
            ("wss", tokio::spawn(ws::serve(listener, config, shutdown)))
        }
    };
    let url = Url::parse(&format!("{scheme}://{addr}/ws")).map_err(std::io::Error::other)?;
    Ok(Running {
        url,
        stop: Some(stop),
        task,
    })
}
