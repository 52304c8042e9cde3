//! The `/metrics` endpoint: a small HTTP server of our own, answering each scrape with the live
//! figures. It serves where the user says (`--metrics-listen`); it sends nothing anywhere.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::oneshot;

use super::Live;

/// The content type of the OpenMetrics text format, which Prometheus asks for and reads.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A running `/metrics` endpoint; stopped when dropped or by [`MetricsServer::stop`].
#[derive(Debug)]
pub struct MetricsServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves `live` at `http://ADDR/metrics`.
pub async fn serve(addr: SocketAddr, live: Arc<Live>) -> std::io::Result<MetricsServer> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let live = live.clone();
                async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], live.exposition()) }
            }),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "the harness serves its live metrics at /metrics\n",
            )
                .into_response()
        });
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(MetricsServer {
        addr,
        stop: Some(stop),
        task,
    })
}
