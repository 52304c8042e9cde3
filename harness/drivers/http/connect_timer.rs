//! Times every new connection the HTTP client opens — the TCP connect and, for https, the TLS
//! handshake — as a layer around reqwest's connector, so keep-alive that works shows as few
//! connections and a slow handshake shows as its own figure, apart from the requests' latency.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use crate::metrics::histogram::{Hist, new_histogram, record};

/// New connections so far: how many opened, how many failed, and how long each took.
#[derive(Debug)]
pub struct ConnectTimes {
    pub opened: u64,
    pub failed: u64,
    pub took: Hist,
}

impl Default for ConnectTimes {
    fn default() -> Self {
        Self {
            opened: 0,
            failed: 0,
            took: new_histogram(),
        }
    }
}

/// The layer reqwest's connector is wrapped in; clones share one record. The HTTP/1.1 client notes
/// its connections into it directly.
#[derive(Debug, Clone, Default)]
pub struct ConnectTimer(pub Arc<Mutex<ConnectTimes>>);

impl ConnectTimer {
    /// Notes one connection attempt that started at `started`: opened (and how long it took) or not.
    pub fn note(&self, opened: bool, started: Instant) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if opened {
            t.opened += 1;
            record(&mut t.took, started.elapsed());
        } else {
            t.failed += 1;
        }
    }
}

impl<S> tower_layer::Layer<S> for ConnectTimer {
    type Service = Timed<S>;

    fn layer(&self, inner: S) -> Timed<S> {
        Timed {
            inner,
            times: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Timed<S> {
    inner: S,
    times: ConnectTimer,
}

impl<S, R> tower_service::Service<R> for Timed<S>
where
    S: tower_service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let started = Instant::now();
        let connecting = self.inner.call(req);
        let times = self.times.clone();
        Box::pin(async move {
            let result = connecting.await;
            times.note(result.is_ok(), started);
            result
        })
    }
}
