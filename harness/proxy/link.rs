//! One proxied connection: a pump each way, and a supervisor for the toxics that act on time rather
//! than on data (a timeout that closes, a reset). Each pump reads from one side and hands chunks to a
//! writer with the time each may leave, so delays keep the order of the data and do not pile up.
//!
//! Only the faults drawn for this connection (by toxicity) act on it, each only while its window is
//! open; every check is made against the proxy's clock when the data passes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Epoch;
use super::toxic::{Direction, Fault, Toxic};

/// Bytes read at a time where toxics shape the data.
const CHUNK: usize = 32 * 1024;
/// The buffer of a pass-through direction starts small (a proxy may carry thousands of quiet
/// connections) and doubles up to the largest while reads keep filling it (bulk transfers).
const RELAY_MIN: usize = 8 * 1024;
const RELAY_MAX: usize = 128 * 1024;

/// What the proxy counts.
#[derive(Debug, Default)]
pub struct Counters {
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub cut: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
}

/// A connection as the proxy's supervisor sees it.
pub struct Link {
    faults: Vec<Fault>,
    epoch: Arc<Epoch>,
    /// Ends the connection: both sides closed (with a reset when `reset` is set).
    end: CancellationToken,
    reset: AtomicBool,
}

impl Link {
    pub fn new(faults: Vec<Fault>, epoch: Arc<Epoch>) -> Arc<Self> {
        Arc::new(Self {
            faults,
            epoch,
            end: CancellationToken::new(),
            reset: AtomicBool::new(false),
        })
    }

    /// Cuts the connection with a reset (an outage, a reset toxic).
    pub fn cut(&self) {
        self.reset.store(true, Ordering::Relaxed);
        self.end.cancel();
    }

    /// Closes the connection normally (a timeout toxic, a data limit).
    fn close(&self) {
        self.end.cancel();
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// The faults acting on data flowing `dir` now.
    fn active(&self, dir: Direction) -> impl Iterator<Item = &Fault> {
        let now = self.now();
        self.faults
            .iter()
            .filter(move |f| f.direction.includes(dir) && f.active(now))
    }
}

/// Runs a proxied connection to its end.
pub async fn run(
    client: TcpStream,
    upstream: TcpStream,
    link: Arc<Link>,
    rng: ChaCha8Rng,
    counters: Arc<Counters>,
) {
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_r, client_w) = client.into_split();
    let (up_r, up_w) = upstream.into_split();
    let mut rng = rng;
    let rng_down = ChaCha8Rng::from_rng(&mut rng);
    let pumps = async {
        tokio::join!(
            pump(client_r, up_w, Direction::Upstream, &link, rng, &counters),
            pump(
                up_r,
                client_w,
                Direction::Downstream,
                &link,
                rng_down,
                &counters
            ),
        );
        // Both ways closed: the supervisor has nothing left to watch.
        link.end.cancel();
    };
    tokio::join!(pumps, supervise(&link));
}

/// Closes or resets the connection when a timeout or reset toxic says so.
async fn supervise(link: &Link) {
    let timers = link.faults.iter().filter_map(|f| match f.toxic {
        Toxic::Timeout { timeout } if !timeout.is_zero() => Some((f, timeout, false)),
        Toxic::ResetPeer { timeout } => Some((f, timeout, true)),
        _ => None,
    });
    let fire = futures_util::future::join_all(timers.map(|(f, after, reset)| async move {
        tokio::time::sleep_until((link.epoch.at() + f.from).into()).await;
        tokio::time::sleep(after).await;
        if f.active(link.now().saturating_sub(after)) || f.active(link.now()) {
            if reset {
                link.cut();
            } else {
                link.close();
            }
        }
    }));
    tokio::select! {
        _ = fire => {}
        _ = link.end.cancelled() => {}
    }
}

/// A chunk on its way out, and the earliest it may leave.
struct Chunk {
    data: Vec<u8>,
    not_before: tokio::time::Instant,
}

async fn pump(
    mut src: OwnedReadHalf,
    dst: OwnedWriteHalf,
    dir: Direction,
    link: &Link,
    mut rng: ChaCha8Rng,
    counters: &Counters,
) {
    let shaped = link
        .faults
        .iter()
        .any(|f| f.direction.includes(dir) && f.toxic.shapes_data());
    if !shaped {
        // Nothing will ever touch this direction's data: copy it straight across.
        let (src, dst) = relay(src, dst, dir, link, counters).await;
        return finish(link, src, dst, false);
    }
    let (tx, rx) = mpsc::channel::<Chunk>(64);
    let writer_rng = ChaCha8Rng::from_rng(&mut rng);
    let writer = write(dst, rx, dir, link, writer_rng, counters);
    let reader = async {
        let mut buf = vec![0u8; CHUNK];
        let mut passed: u64 = 0;
        let mut limited = false;
        let mut last_release = tokio::time::Instant::now();
        loop {
            let n = tokio::select! {
                r = src.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                },
                _ = link.end.cancelled() => break,
            };
            let mut data = &buf[..n];
            let mut delay = Duration::ZERO;
            let mut dropped = false;
            for f in link.active(dir) {
                match f.toxic {
                    Toxic::Timeout { .. } => dropped = true,
                    Toxic::LimitData { bytes } => {
                        let left = bytes.saturating_sub(passed) as usize;
                        if data.len() >= left {
                            data = &data[..left];
                            limited = true;
                        }
                    }
                    Toxic::Latency { latency, jitter } => {
                        let j = if jitter.is_zero() {
                            0.0
                        } else {
                            rng.random_range(-jitter.as_secs_f64()..jitter.as_secs_f64())
                        };
                        delay += Duration::from_secs_f64((latency.as_secs_f64() + j).max(0.0));
                    }
                    _ => {}
                }
            }
            if dropped || data.is_empty() {
                if limited {
                    break;
                }
                continue;
            }
            passed += data.len() as u64;
            let not_before = (tokio::time::Instant::now() + delay).max(last_release);
            last_release = not_before;
            if tx
                .send(Chunk {
                    data: data.to_vec(),
                    not_before,
                })
                .await
                .is_err()
            {
                break;
            }
            if limited {
                break;
            }
        }
        drop(tx);
        // Keep the read half until the writer is done, so a reset covers the whole socket.
        (src, limited)
    };
    let ((src, limited), dst) = tokio::join!(reader, writer);
    finish(link, src, dst, limited);
}

/// Closes a direction that has ended: after its allowed data, or with a reset when the link was cut.
fn finish(link: &Link, src: OwnedReadHalf, dst: Option<OwnedWriteHalf>, limited: bool) {
    if limited {
        // The data allowed has gone out: now the connection closes.
        link.close();
    }
    if link.reset.load(Ordering::Relaxed) {
        // A zero linger makes the close a reset; the write half must not send a FIN first.
        let _ = AsRef::<TcpStream>::as_ref(&src).set_zero_linger();
        if let Some(dst) = dst {
            let _ = AsRef::<TcpStream>::as_ref(&dst).set_zero_linger();
            dst.forget();
        }
    }
}

/// Copies one direction of a connection no toxic shapes, until either side closes or the link ends.
/// Returns the write half unless it was shut down.
async fn relay(
    mut src: OwnedReadHalf,
    mut dst: OwnedWriteHalf,
    dir: Direction,
    link: &Link,
    counters: &Counters,
) -> (OwnedReadHalf, Option<OwnedWriteHalf>) {
    let count = match dir {
        Direction::Downstream => &counters.bytes_down,
        _ => &counters.bytes_up,
    };
    let mut buf = vec![0u8; RELAY_MIN];
    loop {
        let n = tokio::select! {
            r = src.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = link.end.cancelled() => return (src, Some(dst)),
        };
        let full = n == buf.len();
        let result = tokio::select! {
            r = dst.write_all(&buf[..n]) => r,
            _ = link.end.cancelled() => return (src, Some(dst)),
        };
        if result.is_err() {
            link.close();
            return (src, Some(dst));
        }
        count.fetch_add(n as u64, Ordering::Relaxed);
        if full && buf.len() < RELAY_MAX {
            buf.resize(buf.len() * 2, 0);
        }
    }
    let _ = dst.shutdown().await;
    (src, None)
}

/// Writes chunks as they become due, applying bandwidth and slicing; at the end passes the close on
/// (late, under a slow-close toxic). Returns the write half unless it was shut down.
async fn write(
    mut dst: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Chunk>,
    dir: Direction,
    link: &Link,
    mut rng: ChaCha8Rng,
    counters: &Counters,
) -> Option<OwnedWriteHalf> {
    let count = match dir {
        Direction::Downstream => &counters.bytes_down,
        _ => &counters.bytes_up,
    };
    loop {
        let chunk = tokio::select! {
            c = rx.recv() => c,
            _ = link.end.cancelled() => return Some(dst),
        };
        let Some(chunk) = chunk else {
            break;
        };
        // Only a chunk that is held back waits: the timer's millisecond ticks would otherwise add
        // up to a millisecond to every write of a pass-through connection.
        if chunk.not_before > tokio::time::Instant::now() {
            tokio::select! {
                _ = tokio::time::sleep_until(chunk.not_before) => {}
                _ = link.end.cancelled() => return Some(dst),
            }
        }
        let mut rest: &[u8] = &chunk.data;
        while !rest.is_empty() {
            let mut piece = rest.len();
            // The pause after this piece (the slicer's delay between pieces).
            let mut wait = Duration::ZERO;
            let mut rate = None;
            for f in link.active(dir) {
                match f.toxic {
                    Toxic::Slicer {
                        average,
                        variation,
                        delay,
                    } => {
                        let size = if variation > 0 {
                            rng.random_range(average - variation..=average + variation)
                        } else {
                            average
                        };
                        piece = piece.min(size.max(1));
                        wait = wait.max(delay);
                    }
                    Toxic::Bandwidth { bytes_per_s } => {
                        // Pieces of a tenth of a second's worth keep the pace smooth.
                        piece = piece.min((bytes_per_s / 10).max(1) as usize);
                        rate = Some(bytes_per_s);
                    }
                    _ => {}
                }
            }
            if let Some(rate) = rate {
                // A piece takes its time on the wire before it arrives, as on a slow link.
                let due = Duration::from_secs_f64(piece as f64 / rate as f64);
                tokio::select! {
                    _ = tokio::time::sleep(due) => {}
                    _ = link.end.cancelled() => return Some(dst),
                }
            }
            let result = tokio::select! {
                r = dst.write_all(&rest[..piece]) => r,
                _ = link.end.cancelled() => return Some(dst),
            };
            if result.is_err() {
                link.close();
                return Some(dst);
            }
            count.fetch_add(piece as u64, Ordering::Relaxed);
            rest = &rest[piece..];
            if !wait.is_zero() && !rest.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = link.end.cancelled() => return Some(dst),
                }
            }
        }
    }
    // The source closed: pass the close on, late under a slow-close toxic.
    let slow = link
        .active(dir)
        .filter_map(|f| match f.toxic {
            Toxic::SlowClose { delay } => Some(delay),
            _ => None,
        })
        .max();
    if let Some(delay) = slow {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = link.end.cancelled() => return Some(dst),
        }
    }
    let _ = dst.shutdown().await;
    None
}
