//! TLS end to end, with certificates this test makes (rcgen): the reference targets served over
//! https and wss as a user would start them (`harness serve … --tls-cert --tls-key`), trusted with
//! the test's CA and refused, with a `tls` error that says why, without it; mTLS required by the
//! server; `insecure_skip_verify` warned and recorded; a certificate for another name checked as
//! that name; HTTP/2 by ALPN and by prior knowledge (h2c) against a server that reports the version
//! it saw; and `[tls]` in a scenario, its files relative to the scenario.

mod common;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A CA, and files of certificates it signed.
struct Pki {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new(tag: &str, name: &str) -> Self {
        let dir = temp_dir(tag);
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        Self {
            dir,
            issuer: Issuer::new(params, key),
        }
    }

    fn ca(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pem"))
    }

    /// A certificate for `names` (DNS names or IP addresses) and its key, written as `file`.pem and
    /// `file`.key.
    fn issue(&self, file: &str, names: &[&str], client: bool) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, file);
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

/// `harness serve WHICH --tls-cert C --tls-key K [extra…]` on an ephemeral port; the process and the
/// URL it printed.
struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_tls(which: &str, cert: &Path, key: &Path, extra: &[&str]) -> Served {
    let mut args = vec!["--tls-cert", s(cert), "--tls-key", s(key)];
    args.extend_from_slice(extra);
    let (child, url) = serve_reference_with(which, &args);
    assert!(
        url.starts_with("https://") || url.starts_with("wss://"),
        "{url}"
    );
    Served { child, url }
}

const HANDOFF: &str = r#"name = "tls_handoff"
suite = "reliability"
timeout = "60s"

[target]
kind = "handoff"
procedure = "PHASE_TRANSITION_STANDARD"

[load]
iterations = 20
concurrency = 2

[thresholds]
success_rate = ">= 1.0"
"#;

/// Runs `scenario` against `url` with `flags`; the exit code, stdout+stderr and result.json.
fn run(
    dir: &Path,
    scenario: &Path,
    url: &str,
    flags: &[&str],
    out: &str,
) -> (Option<i32>, String, serde_json::Value) {
    let out = dir.join(out);
    let o = harness()
        .args(run_args(scenario, url, &out))
        .args(flags)
        .output()
        .unwrap();
    let text = stdout(&o) + &stderr(&o);
    let result = read_result(&out);
    assert_matches_schema(&result);
    (o.status.code(), text, result)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn an_https_run_trusts_the_given_ca_speaks_http2_by_alpn_and_refuses_an_unknown_ca() {
    let pki = Pki::new("tls-https", "test-ca");
    let (cert, key) = pki.issue("server", &["127.0.0.1", "localhost"], false);
    let server = serve_tls("handoff", &cert, &key, &[]);
    let dir = temp_dir("tls-https-run");
    let file = write_scenario(&dir, "tls_handoff", HANDOFF);
    let ca = pki.ca("test-ca");

    let (code, text, r) = run(&dir, &file, &server.url, &["--ca-cert", s(&ca)], "trusted");
    assert_eq!(code, Some(0), "{text}\n{}", r["reason"]);
    assert_eq!(r["totals"]["failed"], 0);
    assert_eq!(r["target"]["tls"]["ca"][0], s(&ca));
    assert_eq!(r["target"]["tls"]["insecure_skip_verify"], false);
    assert_eq!(r["target"]["http_version"], "auto");
    let protocols = &r["target"]["http_protocols"];
    assert!(
        protocols["HTTP/2"].as_u64().unwrap_or(0) > 0 && protocols.get("HTTP/1.1").is_none(),
        "ALPN agreed on HTTP/2 with the reference service: {protocols}"
    );

    // By name, too: the certificate is for localhost as well.
    let by_name = server.url.replace("127.0.0.1", "localhost");
    let (code, text, _) = run(&dir, &file, &by_name, &["--ca-cert", s(&ca)], "by-name");
    assert_eq!(code, Some(0), "{text}");

    let (code, _, r) = run(
        &dir,
        &file,
        &server.url,
        &["--ca-cert", s(&ca), "--http", "http1"],
        "http1",
    );
    assert_eq!(code, Some(0));
    assert!(
        r["target"]["http_protocols"]["HTTP/1.1"]
            .as_u64()
            .unwrap_or(0)
            > 0
            && r["target"]["http_protocols"].get("HTTP/2").is_none(),
        "{}",
        r["target"]
    );

    // The platform's roots do not hold the test CA: refused before any load, and said why.
    let (code, text, r) = run(&dir, &file, &server.url, &[], "untrusted");
    assert_eq!(code, Some(3), "{text}");
    let reason = r["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("checked as 127.0.0.1, is signed by a CA the harness does not trust")
            && reason.contains("--ca-cert"),
        "{reason}"
    );
    assert_eq!(r["totals"]["iterations"], 0, "nothing was loaded");
}

#[test]
fn a_wss_run_times_its_tls_handshakes_and_an_untrusted_one_is_a_tls_error() {
    let pki = Pki::new("tls-wss", "ws-ca");
    let (cert, key) = pki.issue("ws-server", &["127.0.0.1"], false);
    let server = serve_tls("ws", &cert, &key, &[]);
    let dir = temp_dir("tls-wss-run");
    let file = write_scenario(
        &dir,
        "tls_ws",
        r#"name = "tls_ws"
suite = "reliability"
timeout = "30s"
iteration_timeout = "2s"

[target]
kind = "websocket"

[websocket]
connections = 3

[load]
model = "open"
rate = "30/s"
duration = "2s"
max_in_flight = 10

[thresholds]
success_rate = ">= 1.0"
"#,
    );
    let ca = pki.ca("ws-ca");
    let (code, text, r) = run(&dir, &file, &server.url, &["--ca-cert", s(&ca)], "trusted");
    assert_eq!(code, Some(0), "{text}\n{}", r["reason"]);
    let ws = &r["metrics"]["ws"];
    let connections = ws["connections"].as_u64().unwrap();
    assert!(connections >= 3, "{ws}");
    assert_eq!(
        ws["tls_handshake_ms"]["count"].as_u64(),
        Some(connections),
        "every connection's TLS handshake is timed: {ws}"
    );
    assert!(
        ws["tls_handshake_ms"]["max"].as_f64() <= ws["connect_ms"]["max"].as_f64(),
        "the TLS handshake is part of the connection's set-up: {ws}"
    );

    let (code, _, r) = run(&dir, &file, &server.url, &[], "untrusted");
    assert_eq!(code, Some(3));
    let reason = r["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("TLS: the server's certificate, checked as 127.0.0.1, is signed by a CA"),
        "{reason}"
    );
}

#[test]
fn a_server_that_requires_a_client_certificate_gets_one_when_given() {
    let pki = Pki::new("tls-mtls", "mtls-ca");
    let (cert, key) = pki.issue("server", &["127.0.0.1"], false);
    let (client_cert, client_key) = pki.issue("client", &["harness-client"], true);
    let ca = pki.ca("mtls-ca");
    let server = serve_tls("handoff", &cert, &key, &["--tls-client-ca", s(&ca)]);
    let dir = temp_dir("tls-mtls-run");
    let file = write_scenario(&dir, "tls_handoff", HANDOFF);

    let (code, text, r) = run(&dir, &file, &server.url, &["--ca-cert", s(&ca)], "without");
    assert_eq!(code, Some(3), "{text}");
    let reason = r["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("target unreachable: TLS with 127.0.0.1:")
            && reason.contains("client certificate"),
        "{reason}"
    );

    let with_cert = [
        "--ca-cert",
        s(&ca),
        "--client-cert",
        s(&client_cert),
        "--client-key",
        s(&client_key),
    ];
    let (code, text, r) = run(&dir, &file, &server.url, &with_cert, "with");
    assert_eq!(code, Some(0), "{text}\n{}", r["reason"]);
    assert_eq!(r["target"]["tls"]["client_certificate"], true);
    assert_eq!(r["totals"]["failed"], 0);

    // The HTTP/1.1 client presents it too.
    let http1 = [&with_cert[..], &["--http", "http1"]].concat();
    let (code, text, r) = run(&dir, &file, &server.url, &http1, "with-http1");
    assert_eq!(code, Some(0), "{text}\n{}", r["reason"]);
    assert_eq!(r["totals"]["failed"], 0);
    assert!(
        r["target"]["http_protocols"]["HTTP/1.1"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{}",
        r["target"]
    );
}

#[test]
fn insecure_skip_verify_is_warned_and_recorded_and_a_name_override_checks_that_name() {
    let pki = Pki::new("tls-names", "names-ca");
    // A certificate for a name the URL does not have, as a staging gateway reached by address.
    let (cert, key) = pki.issue("gateway", &["api.internal"], false);
    let server = serve_tls("handoff", &cert, &key, &[]);
    let dir = temp_dir("tls-names-run");
    let file = write_scenario(&dir, "tls_handoff", HANDOFF);
    let ca = pki.ca("names-ca");

    let (code, _, r) = run(
        &dir,
        &file,
        &server.url,
        &["--ca-cert", s(&ca)],
        "wrong-name",
    );
    assert_eq!(code, Some(3));
    let reason = r["reason"].as_str().unwrap_or_default();
    assert!(
        reason
            .contains("checked as 127.0.0.1, is not valid for that name: it is for api.internal;"),
        "{reason}"
    );
    assert!(reason.contains("--tls-server-name"), "{reason}");

    let (code, text, r) = run(
        &dir,
        &file,
        &server.url,
        &["--ca-cert", s(&ca), "--tls-server-name", "api.internal"],
        "named",
    );
    assert_eq!(code, Some(0), "{text}\n{}", r["reason"]);
    assert_eq!(r["target"]["tls"]["server_name"], "api.internal");

    let (code, text, r) = run(
        &dir,
        &file,
        &server.url,
        &["--insecure-skip-verify"],
        "insecure",
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("warning: insecure_skip_verify is on"),
        "warned on the terminal: {text}"
    );
    assert_eq!(r["target"]["tls"]["insecure_skip_verify"], true);
}

/// Serves a router over TLS (when `tls` is given) or plain TCP on its own thread, counting the
/// requests of each HTTP version it sees.
fn version_counting(
    tls: Option<harness::tls::server::ServerTls>,
) -> (TestServer, Arc<[AtomicU64; 2]>) {
    let seen: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let counts = Arc::clone(&seen);
    let router = axum::Router::new().route(
        "/v",
        axum::routing::get(move |req: axum::extract::Request| {
            let counts = Arc::clone(&counts);
            async move {
                let i = usize::from(req.version() == axum::http::Version::HTTP_2);
                counts[i].fetch_add(1, Ordering::Relaxed);
                format!("{:?}", req.version())
            }
        }),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        runtime().block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let shutdown = async {
                let _ = stopped.await;
            };
            match tls {
                Some(tls) => {
                    tx.send(format!("https://{addr}")).unwrap();
                    let listener =
                        harness::tls::server::TlsListener::new(listener, tls.config().unwrap())
                            .unwrap();
                    axum::serve(listener, router)
                        .with_graceful_shutdown(shutdown)
                        .await
                        .unwrap();
                }
                None => {
                    tx.send(format!("http://{addr}")).unwrap();
                    axum::serve(listener, router)
                        .with_graceful_shutdown(shutdown)
                        .await
                        .unwrap();
                }
            }
        });
    });
    (
        TestServer {
            url: rx.recv().unwrap(),
            stop: Some(stop),
            thread: Some(thread),
        },
        seen,
    )
}

const VERSION_REQUEST: &str = r#"name = "versions"
suite = "reliability"
timeout = "30s"

[target]
kind = "http"
url = "http://127.0.0.1:1"

[target.request]
path = "/v"

[load]
iterations = 40
concurrency = 4

[thresholds]
success_rate = ">= 1.0"
"#;

#[test]
fn http2_by_prior_knowledge_over_plain_http_and_spread_over_connections_over_tls() {
    let (plain, seen) = version_counting(None);
    let dir = temp_dir("tls-h2c");
    let file = write_scenario(
        &dir,
        "versions",
        &format!("{VERSION_REQUEST}\n[http]\ntime_connections = true\n"),
    );
    let (code, text, r) = run(&dir, &file, &plain.url, &["--http", "http2"], "h2c");
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(r["target"]["http_version"], "http2");
    assert_eq!(r["target"]["http_protocols"]["HTTP/2"], 40);
    assert_eq!(
        r["metrics"]["http_connections"]["opened"], 1,
        "four workers' streams share one HTTP/2 connection: {}",
        r["metrics"]["http_connections"]
    );
    assert_eq!(
        (
            seen[0].load(Ordering::Relaxed),
            seen[1].load(Ordering::Relaxed)
        ),
        (0, 40),
        "the server saw HTTP/2 on every request"
    );
    // Without asking, plain http is HTTP/1.1.
    let (code, _, r) = run(&dir, &file, &plain.url, &[], "h1");
    assert_eq!(code, Some(0));
    assert_eq!(r["target"]["http_protocols"]["HTTP/1.1"], 40);

    // Over TLS, from the scenario's own [tls] and [http] (the CA file next to it).
    let pki = Pki::new("tls-h2", "h2-ca");
    let (cert, key) = pki.issue("h2-server", &["127.0.0.1"], false);
    let (secure, seen) = version_counting(Some(harness::tls::server::ServerTls {
        cert,
        key,
        client_ca: None,
    }));
    std::fs::copy(pki.ca("h2-ca"), dir.join("h2-ca.pem")).unwrap();
    let file = write_scenario(
        &dir,
        "versions_tls",
        &format!(
            "{VERSION_REQUEST}\n[tls]\nca = \"h2-ca.pem\"\nmin_version = \"1.3\"\n\n[http]\nversion = \"http2\"\nconnections = 2\ntime_connections = true\n"
        ),
    );
    let (code, text, r) = run(&dir, &file, &secure.url, &[], "h2-tls");
    assert_eq!(code, Some(0), "{text}\n{}", r["reason"]);
    assert_eq!(r["target"]["tls"]["min_version"], "1.3");
    assert_eq!(r["target"]["http_protocols"]["HTTP/2"], 40);
    let c = &r["metrics"]["http_connections"];
    assert_eq!(
        c["opened"], 2,
        "spread over the two connections asked for: {c}"
    );
    assert_eq!(
        c["connect_ms"]["count"], 2,
        "each one's TCP connect and TLS handshake: {c}"
    );
    assert_eq!(seen[1].load(Ordering::Relaxed), 40);
}

#[test]
fn tls_settings_in_a_scenario_are_checked_where_they_are_written() {
    let dir = temp_dir("tls-validate");
    let file = write_scenario(
        &dir,
        "bad_tls",
        &format!(
            "{HANDOFF}\n[tls]\nca = \"missing-ca.pem\"\nclient_cert = \"client.pem\"\nmin_version = \"1.1\"\n\n[http]\nconnections = 4\n"
        ),
    );
    let o = run_harness(&["validate", s(&file)]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let text = stdout(&o) + &stderr(&o);
    let line_of = |needle: &str| {
        std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .position(|l| l.starts_with(needle))
            .unwrap()
            + 1
    };
    for (needle, message) in [
        ("ca =", "no file"),
        ("client_cert =", "a client certificate needs its key"),
        ("min_version =", "`1.1` is not a TLS version"),
        ("connections =", "connections spreads HTTP/2 streams"),
    ] {
        let at = format!("bad_tls.toml:{}:", line_of(needle));
        assert!(
            text.lines()
                .any(|l| l.contains(&at) && text.contains(message)),
            "{needle} → {message} at {at}:\n{text}"
        );
    }
}

#[test]
fn the_reference_service_answers_h2c_when_asked() {
    let (mut child, url) = serve_reference_with("handoff", &[]);
    let dir = temp_dir("tls-h2c-reference");
    let file = write_scenario(&dir, "tls_handoff", HANDOFF);
    let (code, text, r) = run(&dir, &file, &url, &["--http", "http2"], "h2c");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(code, Some(0), "{text}\n{}", r["reason"]);
    let protocols = &r["target"]["http_protocols"];
    assert!(
        protocols["HTTP/2"].as_u64().unwrap_or(0) > 0 && protocols.get("HTTP/1.1").is_none(),
        "{protocols}"
    );
}
