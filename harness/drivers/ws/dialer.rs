//! Opening connections to the endpoint: every connection of the driver (the pool's, the subscribers')
//! goes through one dialer, which times the handshakes and numbers the connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use url::Url;

use super::conn::{self, Conn, ConnectError, DeliveryHook, Shared};
use super::stats::{Tally, note};

pub struct Dialer {
    pub url: Url,
    pub addr: SocketAddr,
    pub connect_timeout: Duration,
    /// Interval of the pings on every connection.
    pub ping: Option<Duration>,
    pub shared: Arc<Shared>,
    next_id: AtomicU32,
}

impl Dialer {
    pub fn new(
        url: Url,
        addr: SocketAddr,
        connect_timeout: Duration,
        ping: Option<Duration>,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            url,
            addr,
            connect_timeout,
            ping,
            shared,
            next_id: AtomicU32::new(0),
        }
    }

    /// Opens a connection (with a reader task when it has a delivery hook) that records into
    /// `tally`.
    pub async fn open(
        &self,
        hook: Option<DeliveryHook>,
        tally: &Tally,
    ) -> Result<Conn, ConnectError> {
        match conn::open(
            &self.url,
            self.addr,
            self.connect_timeout,
            None,
            &self.shared.protocol.setup,
            &self.shared.net,
        )
        .await
        {
            Ok((ws, took)) => {
                note(tally, |c| c.handshake(took));
                let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
                Ok(Conn::start(
                    ws,
                    id,
                    Arc::clone(&self.shared),
                    hook,
                    self.ping,
                    Arc::clone(tally),
                ))
            }
            Err(e) => {
                note(tally, |c| c.connect_failed());
                Err(e)
            }
        }
    }
}

/// How long to wait before attempt `failures + 1` to reconnect: 100 ms doubling to 5 s.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100)
        .saturating_mul(1 << failures.clamp(1, 16).saturating_sub(1))
        .min(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_to_five_seconds() {
        let ms = |n| super::backoff(n).as_millis();
        assert_eq!(
            (ms(1), ms(2), ms(3), ms(6), ms(7), ms(40)),
            (100, 200, 400, 3200, 5000, 5000)
        );
    }
}
