//! What the harness costs over a bare client: a closed load at 50 concurrency against a minimal HTTP
//! server on loopback, run through the harness engine and through a bare reqwest loop doing the same
//! work (same client settings, every response read to the end). Prints requests per second and
//! requests per CPU-second of this process for both, and the harness's share of the bare loop.
//!
//! The server runs in a child process (this binary, started again with `BENCH_ROLE=server`), so its
//! CPU is not counted against the client. Rounds alternate between the two, and the median of each is
//! reported. Run with `cargo bench --bench http_overhead`; `BENCH_ONLY=bare` or `BENCH_ONLY=harness`
//! runs one side alone, for a profiler. `BENCH_JOURNAL=1` has the harness write its crash-safe journal
//! as `harness run` does (a slice every 20 ms, a row every second), so the two runs' shares show what
//! journaling costs. `BENCH_TLS=1` does it all over https (a certificate made for the run, HTTP/2 by
//! ALPN as a default run speaks it), and adds the rate of TLS handshakes with keep-alive off.

use std::sync::Arc;

mod common;

use common::{measure, resident_mib};
use harness::engine::{self, Quiet, RunPlan, Signals};

const CONCURRENCY: usize = 50;
const PER_WORKER: usize = 1000;
const ROUNDS: usize = 9;

fn main() {
    if std::env::var("BENCH_ROLE").as_deref() == Ok("server") {
        return serve();
    }
    let tls = std::env::var_os("BENCH_TLS").map(|_| Tls::make());
    let (mut server, url) = match &tls {
        Some(t) => {
            // SAFETY: single-threaded still; the child inherits where its certificate is.
            unsafe {
                std::env::set_var("BENCH_CERT", &t.cert);
                std::env::set_var("BENCH_KEY", &t.key);
            }
            common::spawn_server()
        }
        None => common::spawn_server(),
    };
    let settings = tls.as_ref().map(Tls::settings).unwrap_or_default();
    let net = network(&settings);

    let rt = common::runtime();
    let plan = plan_with(&url, CONCURRENCY * PER_WORKER, &settings);
    // Warm up connections and code paths.
    rt.block_on(bare(&url, &net));
    rt.block_on(engine::run(&plan, &Quiet, Signals::default()));

    let run_bare = || measure(|| rt.block_on(bare(&url, &net)));
    let journaling = std::env::var_os("BENCH_JOURNAL").is_some();
    let run_harness = || {
        measure(|| {
            let r = if journaling {
                let observer = Journaling::default();
                let r = rt.block_on(engine::run(&plan, &observer, Signals::default()));
                observer.discard();
                r
            } else {
                rt.block_on(engine::run(&plan, &Quiet, Signals::default()))
            };
            assert_eq!(
                r.totals.succeeded,
                (CONCURRENCY * PER_WORKER) as u64,
                "{:?}",
                r.reason
            );
        })
    };
    let requests = (CONCURRENCY * PER_WORKER) as f64;
    // For profiling one side alone: BENCH_ONLY=bare or BENCH_ONLY=harness.
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        common::one_side(&only, ROUNDS, requests, "req", run_bare, run_harness);
        drop(server.stdin.take());
        let _ = server.wait();
        return;
    }
    let pairs = common::paired_rounds(ROUNDS, run_bare, run_harness);
    // Memory must not grow with the number of iterations: resident memory after ten times more.
    let rss_small = {
        rt.block_on(engine::run(
            &plan_with(&url, 20_000, &settings),
            &Quiet,
            Signals::default(),
        ));
        resident_mib()
    };
    let rss_large = {
        rt.block_on(engine::run(
            &plan_with(&url, 200_000, &settings),
            &Quiet,
            Signals::default(),
        ));
        resident_mib()
    };
    let handshakes = tls
        .is_some()
        .then(|| rt.block_on(handshake_rate(&url, &net)));
    drop(server.stdin.take());
    let _ = server.wait();

    println!(
        "closed load, {CONCURRENCY} concurrent, {requests} requests per round, loopback, server in another process{}{}",
        if journaling { ", journal written" } else { "" },
        if tls.is_some() {
            ", https (HTTP/2 by ALPN)"
        } else {
            ""
        }
    );
    if let Some((per_s, per_cpu_s)) = handshakes {
        println!(
            "keep-alive off (HTTP/1.1, Connection: close), {HANDSHAKE_CONCURRENCY} concurrent: {per_s:.0} TLS connections per second, {per_cpu_s:.0} per CPU-second of the client"
        );
    }
    common::print_shares(&pairs, requests, "req", "bare reqwest", ["", ""]);
    println!(
        "resident memory after a 20,000-iteration run: {rss_small:.1} MiB; after a 200,000-iteration run: {rss_large:.1} MiB"
    );
}

/// An observer that writes the journal as the CLI's does, into a temporary folder.
#[derive(Default)]
struct Journaling(std::sync::Mutex<Option<harness::journal::Journal>>);

impl Journaling {
    fn discard(&self) {
        if let Some(j) = self.0.lock().unwrap().take() {
            j.discard();
        }
    }
}

impl engine::Observer for Journaling {
    fn journal_start(&self, header: &harness::result::RunResult) {
        let dir = std::env::temp_dir().join(format!("bench-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        *self.0.lock().unwrap() = Some(harness::journal::Journal::create(&dir, header).unwrap());
    }

    fn journal(&self, entry: harness::journal::Entry) {
        if let Some(j) = self.0.lock().unwrap().as_ref() {
            j.write(entry);
        }
    }
}

/// A certificate for 127.0.0.1 signed by a CA made for this run, in a temporary folder.
struct Tls {
    ca: std::path::PathBuf,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

impl Tls {
    fn make() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let dir = std::env::temp_dir().join(format!("bench-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let t = Tls {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&t.ca, ca_cert.pem()).unwrap();
        std::fs::write(&t.cert, cert.pem()).unwrap();
        std::fs::write(&t.key, key.serialize_pem()).unwrap();
        t
    }

    fn settings(&self) -> harness::tls::TlsSettings {
        harness::tls::TlsSettings {
            ca: vec![self.ca.clone()],
            ..Default::default()
        }
    }
}

fn network(tls: &harness::tls::TlsSettings) -> harness::net::Network {
    harness::net::Network {
        tls: Arc::new(harness::tls::ClientTls::new(tls).unwrap()),
        ..harness::net::Network::local().unwrap()
    }
}

const HANDSHAKE_CONCURRENCY: usize = 10;
const HANDSHAKES: usize = 2000;

/// Connections per second and per CPU-second when every request opens its own (no idle connection is
/// kept): the TLS handshake's cost.
async fn handshake_rate(url: &str, net: &harness::net::Network) -> (f64, f64) {
    // HTTP/1.1 with `Connection: close`: an HTTP/2 connection would carry every request.
    let http1 = harness::net::Network {
        http: harness::kinds::HttpVersion::Http1,
        ..net.clone()
    };
    let client = Arc::new(harness::drivers::http::build_client(0, &http1).unwrap());
    let (cpu0, t0) = (common::cpu_seconds(), std::time::Instant::now());
    let mut tasks = Vec::new();
    for _ in 0..HANDSHAKE_CONCURRENCY {
        let (client, url) = (Arc::clone(&client), url.to_string());
        tasks.push(tokio::spawn(async move {
            for _ in 0..HANDSHAKES / HANDSHAKE_CONCURRENCY {
                let resp = client
                    .get(&url)
                    .header("connection", "close")
                    .send()
                    .await
                    .unwrap();
                let _ = resp.bytes().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), common::cpu_seconds() - cpu0);
    (HANDSHAKES as f64 / wall, HANDSHAKES as f64 / cpu)
}

/// The bare loop: the same client settings, each response read to the end and its status checked.
async fn bare(url: &str, net: &harness::net::Network) {
    let client = Arc::new(harness::drivers::http::build_client(CONCURRENCY, net).unwrap());
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, url) = (Arc::clone(&client), url.to_string());
        tasks.push(tokio::spawn(async move {
            for _ in 0..PER_WORKER {
                let resp = client.get(&url).send().await.unwrap();
                assert!(resp.status().is_success());
                let _ = resp.bytes().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn plan_with(url: &str, iterations: usize, tls: &harness::tls::TlsSettings) -> RunPlan {
    let text = format!(
        "name = \"bench\"\nsuite = \"reliability\"\ntimeout = \"10m\"\n[target]\nkind = \"http\"\n\
         url = \"{url}\"\n[load]\nmodel = \"closed\"\niterations = {iterations}\nconcurrency = {CONCURRENCY}\n"
    );
    common::plan_tls(
        &text,
        &url::Url::parse(url).expect("the server's URL"),
        None,
        tls.clone(),
    )
}

/// The minimal server: `GET /` answers `ok`; stops when stdin closes.
fn serve() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("bench-server")
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        match (
            std::env::var_os("BENCH_CERT"),
            std::env::var_os("BENCH_KEY"),
        ) {
            (Some(cert), Some(key)) => {
                let tls = harness::tls::server::ServerTls {
                    cert: cert.into(),
                    key: key.into(),
                    client_ca: None,
                };
                let listener =
                    harness::tls::server::TlsListener::new(listener, tls.config().unwrap())
                        .unwrap();
                println!("https://{addr}");
                axum::serve(listener, router)
                    .with_graceful_shutdown(common::stdin_closed())
                    .await
                    .unwrap();
            }
            _ => {
                println!("http://{addr}");
                axum::serve(listener, router)
                    .with_graceful_shutdown(common::stdin_closed())
                    .await
                    .unwrap();
            }
        }
    });
}
