//! The fault proxy, each toxic proven on loopback in front of a plain TCP echo server: latency within
//! tolerance, bandwidth within tolerance, a reset seen as a reset, a blackhole as a timeout, a timeout
//! as a close, slicing that delivers every byte in pieces, a data limit that closes after N bytes, a
//! slow close, an outage that refuses and cuts then recovers, and toxicity drawn from the seed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use harness::proxy::{Fault, Proxy, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An echo server on 127.0.0.1: writes back what it reads, closes when the client does.
async fn echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

async fn proxy(specs: &[&str], seed: u64) -> Proxy {
    let upstream = echo().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Proxy::start(
        listener,
        ProxyConfig {
            upstream,
            faults: specs
                .iter()
                .map(|s| Fault::parse_spec(s).unwrap())
                .collect(),
            seed,
            epoch: harness::proxy::Epoch::new(Instant::now()),
            connect_timeout: Duration::from_secs(2),
        },
    )
    .unwrap()
}

/// Sends `n` bytes and reads them back; the time it took.
async fn round_trip(s: &mut TcpStream, n: usize) -> Duration {
    let data = vec![7u8; n];
    let started = Instant::now();
    s.write_all(&data).await.unwrap();
    let mut back = vec![0u8; n];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(back, data);
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn without_toxics_every_byte_passes() {
    let p = proxy(&[], 1).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    round_trip(&mut s, 1 << 20).await;
    // A pump counts what it passed once its write has returned, which can be after the echo is
    // back; wait for the counts to settle rather than race them.
    let settled = async {
        while (p.stats().bytes_up, p.stats().bytes_down) != (1 << 20, 1 << 20) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), settled).await;
    assert_eq!(p.stats().bytes_up, 1 << 20);
    assert_eq!(p.stats().bytes_down, 1 << 20);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn latency_is_added_each_way_within_tolerance() {
    let p = proxy(&["latency=100ms,jitter=10ms"], 1).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    for _ in 0..5 {
        let rt = round_trip(&mut s, 100).await;
        // 100 ms each way, ±10 ms of jitter each: 180–220 ms, plus loopback and scheduling (the
        // upper bound leaves room for a busy test machine; a toxic applied twice would be 400 ms).
        assert!(
            rt >= Duration::from_millis(180) && rt < Duration::from_millis(350),
            "{rt:?}"
        );
    }
    let down = proxy(&["latency=100ms,direction=downstream"], 1).await;
    let mut s = TcpStream::connect(down.addr).await.unwrap();
    let rt = round_trip(&mut s, 100).await;
    assert!(
        rt >= Duration::from_millis(100) && rt < Duration::from_millis(190),
        "{rt:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bandwidth_is_limited_within_tolerance() {
    let p = proxy(&["bandwidth=200KiB/s,direction=downstream"], 1).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    // 100 KiB at 200 KiB/s: half a second.
    let took = round_trip(&mut s, 100 * 1024).await;
    assert!(
        took >= Duration::from_millis(425) && took < Duration::from_millis(900),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_is_seen_as_a_reset() {
    let p = proxy(&["reset_peer=200ms"], 1).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    round_trip(&mut s, 10).await;
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let e = s.read(&mut buf).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    assert!(started.elapsed() < Duration::from_millis(400));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blackhole_is_a_timeout_and_a_timeout_closes() {
    let p = proxy(&["timeout"], 1).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await;
    assert!(
        read.is_err(),
        "nothing comes back from a blackhole: {read:?}"
    );

    let p = proxy(&["timeout=300ms"], 1).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let started = Instant::now();
    s.write_all(b"hello").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap();
    assert_eq!(n, 0, "closed, with no data");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(280) && took < Duration::from_millis(800),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_slicer_delivers_every_byte_in_pieces() {
    let p = proxy(
        &["slicer=2ms,average_size=16B,size_variation=8B,direction=downstream"],
        1,
    )
    .await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    s.write_all(&data).await.unwrap();
    let mut got = Vec::new();
    let mut reads = 0;
    let mut largest = 0;
    while got.len() < data.len() {
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0);
        reads += 1;
        largest = largest.max(n);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, data);
    // 1000 bytes in pieces of 8–24 bytes, 2 ms apart: dozens of reads (a few may coalesce).
    assert!(reads >= 20, "{reads} reads, the largest {largest} bytes");
}

#[tokio::test(flavor = "multi_thread")]
async fn limit_data_closes_after_n_bytes() {
    let p = proxy(&["limit_data=100B,direction=downstream"], 1).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(&[1u8; 500]).await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the connection closed");
    assert_eq!(got.len(), 100);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_close_arrives_late() {
    let p = proxy(&["slow_close=300ms,direction=downstream"], 1).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    round_trip(&mut s, 10).await;
    let started = Instant::now();
    s.shutdown().await.unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(280) && took < Duration::from_millis(800),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_refuses_and_cuts_then_recovers() {
    let p = proxy(&["down,from=300ms,until=1300ms"], 1).await;
    let mut open = TcpStream::connect(p.addr).await.unwrap();
    round_trip(&mut open, 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The open connection was cut…
    let mut buf = [0u8; 8];
    let cut = open.read(&mut buf).await;
    assert!(
        matches!(&cut, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
            || matches!(cut, Ok(0)),
        "{cut:?}"
    );
    // …and new ones are refused…
    let refused = TcpStream::connect(p.addr).await;
    assert_eq!(
        refused.map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    // …until the window ends.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut again = TcpStream::connect(p.addr).await.unwrap();
    round_trip(&mut again, 10).await;
    assert!(p.stats().cut >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn toxicity_picks_the_same_connections_for_the_same_seed() {
    async fn hit(seed: u64) -> Vec<bool> {
        let p = proxy(&["latency=60ms,toxicity=0.5"], seed).await;
        let mut out = Vec::new();
        for _ in 0..16 {
            let mut s = TcpStream::connect(p.addr).await.unwrap();
            out.push(round_trip(&mut s, 4).await >= Duration::from_millis(100));
        }
        p.stop().await;
        out
    }
    let a = hit(9).await;
    assert_eq!(a, hit(9).await, "same seed, same connections");
    let n = a.iter().filter(|h| **h).count();
    assert!((3..=13).contains(&n), "{n} of 16 at 50%");
}
