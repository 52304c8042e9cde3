//! TLS for every client of the harness (the HTTP and WebSocket drivers, the probes, the admin calls,
//! the preflight) and for the reference targets: what the user asked for (`[tls]` in a scenario, or
//! the command line) made into rustls configurations once per run, and rustls' errors told in words
//! that say which certificate, which name and what to do.
//!
//! Trust starts from the platform's roots, with the CA files the user names added; a client
//! certificate is presented when one is given; `insecure_skip_verify` accepts any certificate (the
//! handshake's signatures are still checked, so the connection is still TLS) and is warned about on
//! every run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod server;
pub mod stream;
mod verify;

use rustls::CertificateError;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use self::verify::{AcceptAny, CheckAs};

/// The lowest TLS version a connection may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum MinVersion {
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

impl MinVersion {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "1.2" | "tls1.2" | "TLSv1.2" => Some(MinVersion::Tls12),
            "1.3" | "tls1.3" | "TLSv1.3" => Some(MinVersion::Tls13),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MinVersion::Tls12 => "1.2",
            MinVersion::Tls13 => "1.3",
        }
    }

    fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static BOTH: [&rustls::SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static ONLY_13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            MinVersion::Tls12 => &BOTH,
            MinVersion::Tls13 => &ONLY_13,
        }
    }
}

/// What the user asked of TLS, before any file is read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsSettings {
    /// CA certificates (PEM) trusted beside the platform's roots.
    pub ca: Vec<PathBuf>,
    /// A client certificate chain (PEM) presented to servers that ask for one, with its key.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// The name the server's certificate is checked against (and sent as SNI by the WebSocket
    /// client) instead of the URL's host.
    pub server_name: Option<String>,
    pub min_version: MinVersion,
    /// Accept any certificate. Warned on every run and recorded in the result.
    pub insecure_skip_verify: bool,
}

impl TlsSettings {
    /// The settings with `other`'s given values taking precedence (the command line over the
    /// scenario).
    pub fn overlay(mut self, other: &TlsSettings) -> Self {
        self.ca.extend(other.ca.iter().cloned());
        if other.client_cert.is_some() {
            self.client_cert.clone_from(&other.client_cert);
            self.client_key.clone_from(&other.client_key);
        }
        if other.server_name.is_some() {
            self.server_name.clone_from(&other.server_name);
        }
        if other.min_version != MinVersion::default() {
            self.min_version = other.min_version;
        }
        self.insecure_skip_verify |= other.insecure_skip_verify;
        self
    }
}

/// Why the TLS configuration could not be made. Nothing was run (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {} holds no PEM certificate (expected a `-----BEGIN CERTIFICATE-----` block)", path.display())]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("{what} {} is not PEM the harness can read: {why}", path.display())]
    BadPem {
        what: &'static str,
        path: PathBuf,
        why: String,
    },
    #[error("client key {} holds no private key (PKCS#8, PKCS#1 or SEC1 PEM)", path.display())]
    NoKey { path: PathBuf },
    #[error("CA certificate {}: {why}", path.display())]
    BadCa { path: PathBuf, why: String },
    #[error("a client certificate needs its key: give client_key (or --client-key) too")]
    CertWithoutKey,
    #[error("a client key needs its certificate: give client_cert (or --client-cert) too")]
    KeyWithoutCert,
    #[error("the client certificate {} and key {} do not go together: {why}", cert.display(), key.display())]
    ClientAuth {
        cert: PathBuf,
        key: PathBuf,
        why: String,
    },
    #[error("`{0}` is not a server name the certificate could be checked against")]
    ServerName(String),
    #[error("cannot make the certificate verifier: {0}")]
    Roots(String),
    #[error("cannot make the TLS configuration: {0}")]
    Config(String),
}

/// Whether `url` is one the clients speak TLS to.
pub fn is_secure(url: &url::Url) -> bool {
    matches!(url.scheme(), "https" | "wss")
}

/// The crypto every TLS connection of the harness uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes [`provider`] the process's default, for HTTP clients made without the harness's TLS
/// configuration (a plain `reqwest::Client::new()`); harmless when one is installed already.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The client side of TLS for one run, made once: each client takes its rustls configuration from
/// here (the HTTP one with the ALPN protocols it speaks).
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub settings: TlsSettings,
    verifier: Arc<dyn ServerCertVerifier>,
    client_auth: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    server_name: Option<ServerName<'static>>,
}

impl ClientTls {
    /// Reads every file `settings` names and makes the verifier.
    pub fn new(settings: &TlsSettings) -> Result<Self, TlsSetupError> {
        let provider = provider();
        let mut extra = Vec::new();
        for path in &settings.ca {
            extra.extend(read_certs("CA certificate", path)?);
        }
        let verifier: Arc<dyn ServerCertVerifier> = if settings.insecure_skip_verify {
            Arc::new(AcceptAny(Arc::clone(&provider)))
        } else {
            let mut roots = rustls::RootCertStore::empty();
            // Each extra root is added on its own, so a bad CA file is named.
            for (path, cert) in settings.ca.iter().zip(extra.iter()) {
                roots.add(cert.clone()).map_err(|e| TlsSetupError::BadCa {
                    path: path.clone(),
                    why: e.to_string(),
                })?;
            }
            roots.extend(platform_roots().iter().cloned());
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::clone(&provider),
            )
            .build()
            .map_err(|e| TlsSetupError::Roots(e.to_string()))?
        };
        let server_name = settings
            .server_name
            .as_deref()
            .map(|name| {
                ServerName::try_from(name.to_string())
                    .map_err(|_| TlsSetupError::ServerName(name.to_string()))
            })
            .transpose()?;
        let verifier: Arc<dyn ServerCertVerifier> = match &server_name {
            Some(name) => Arc::new(CheckAs {
                name: name.clone(),
                inner: verifier,
            }),
            None => verifier,
        };
        let client_auth = match (&settings.client_cert, &settings.client_key) {
            (None, None) => None,
            (Some(_), None) => return Err(TlsSetupError::CertWithoutKey),
            (None, Some(_)) => return Err(TlsSetupError::KeyWithoutCert),
            (Some(cert), Some(key)) => {
                let chain = read_certs("client certificate", cert)?;
                let der = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
                    rustls::pki_types::pem::Error::Io(source) => TlsSetupError::Read {
                        what: "client key",
                        path: key.clone(),
                        source,
                    },
                    rustls::pki_types::pem::Error::NoItemsFound => {
                        TlsSetupError::NoKey { path: key.clone() }
                    }
                    other => TlsSetupError::BadPem {
                        what: "client key",
                        path: key.clone(),
                        why: other.to_string(),
                    },
                })?;
                Some((chain, Arc::new(der)))
            }
        };
        let tls = Self {
            settings: settings.clone(),
            verifier,
            client_auth,
            server_name,
        };
        // Made once here so that a key that does not match its certificate is reported now.
        tls.config(&[])?;
        Ok(tls)
    }

    /// A rustls client configuration offering `alpn` (most preferred first; empty: no ALPN).
    pub fn config(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(self.settings.min_version.versions())
            .map_err(|e| TlsSetupError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::clone(&self.verifier));
        let mut config = match &self.client_auth {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| TlsSetupError::ClientAuth {
                    cert: self.settings.client_cert.clone().unwrap_or_default(),
                    key: self.settings.client_key.clone().unwrap_or_default(),
                    why: e.to_string(),
                })?,
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// The name to send (SNI) and check the certificate against for a connection to `host`.
    pub fn server_name_for(&self, host: &str) -> Result<ServerName<'static>, TlsSetupError> {
        if let Some(name) = &self.server_name {
            return Ok(name.clone());
        }
        ServerName::try_from(host.to_string()).map_err(|_| TlsSetupError::ServerName(host.into()))
    }
}

/// The roots every run trusts: the platform's (read once per process), or the bundled Mozilla set
/// when the platform has none (a minimal container).
fn platform_roots() -> &'static [rustls::pki_types::TrustAnchor<'static>] {
    static ROOTS: std::sync::OnceLock<Vec<rustls::pki_types::TrustAnchor<'static>>> =
        std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut store = rustls::RootCertStore::empty();
        store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        if store.is_empty() {
            tracing::debug!("no platform root certificates; using the bundled ones");
            webpki_roots::TLS_SERVER_ROOTS.to_vec()
        } else {
            store.roots
        }
    })
}

/// Reads every PEM certificate in `path`; at least one.
pub(crate) fn read_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::Io(source) => TlsSetupError::Read {
            what,
            path: path.to_path_buf(),
            source,
        },
        other => TlsSetupError::BadPem {
            what,
            path: path.to_path_buf(),
            why: other.to_string(),
        },
    })?;
    let certs = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsSetupError::BadPem {
            what,
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The rustls error somewhere in `e`'s chain of causes (an `io::Error` carrying one counts).
pub fn find<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(t) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(t);
        }
        next = err.source();
    }
    None
}

/// A TLS failure in words: what is wrong with which certificate (for `name`, the name it was checked
/// against), and what to do about it.
pub fn describe(e: &rustls::Error, name: &str) -> String {
    let cert = |why: String, hint: &str| {
        format!("the server's certificate, checked as {name}, {why}{hint}")
    };
    const TRUST_HINT: &str = "; trust its CA with `ca = [\"FILE\"]` in [tls] or --ca-cert FILE (or, for a throwaway test \
         server only, insecure_skip_verify)";
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => cert(
                "is signed by a CA the harness does not trust".into(),
                TRUST_HINT,
            ),
            CertificateError::NotValidForName => cert(
                "is not valid for that name".into(),
                "; set server_name in [tls] (or --tls-server-name) to a name the certificate has",
            ),
            CertificateError::NotValidForNameContext { presented, .. } => cert(
                format!(
                    "is not valid for that name: it is for {}",
                    if presented.is_empty() {
                        "no name at all".to_string()
                    } else {
                        presented
                            .iter()
                            .map(|n| plain_name(n))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
                "; set server_name in [tls] (or --tls-server-name) to one of them",
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                cert("has expired".into(), "")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => cert(
                "is not valid yet (is this machine's clock right?)".into(),
                "",
            ),
            CertificateError::Revoked => cert("has been revoked".into(), ""),
            CertificateError::BadSignature => cert("has a bad signature".into(), ""),
            other => cert(format!("was refused: {other:?}"), ""),
        },
        rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired)
        | rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure) => {
            format!(
                "the server ended the TLS handshake ({e}); if it requires a client certificate, give \
                 client_cert and client_key in [tls] (or --client-cert/--client-key)"
            )
        }
        rustls::Error::AlertReceived(rustls::AlertDescription::BadCertificate)
        | rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA) => format!(
            "the server refused the client certificate ({e}); is it signed by a CA the server trusts?"
        ),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            format!("the server does not speak TLS here ({e}); is this an http:// or ws:// port?")
        }
        other => format!("TLS failed: {other}"),
    }
}

/// A name as rustls presents it (`DnsName("api.internal")`, `IpAddress(127.0.0.1)`), as a user
/// writes it.
fn plain_name(presented: &str) -> &str {
    let inner = presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or(presented);
    inner.trim_matches('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_as_users_write_them() {
        assert_eq!(MinVersion::parse("1.3"), Some(MinVersion::Tls13));
        assert_eq!(MinVersion::parse("TLSv1.2"), Some(MinVersion::Tls12));
        assert_eq!(MinVersion::parse("1.1"), None);
    }

    #[test]
    fn a_missing_or_empty_file_is_named() {
        let e = ClientTls::new(&TlsSettings {
            ca: vec!["/nonexistent/ca.pem".into()],
            ..TlsSettings::default()
        })
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read CA certificate /nonexistent/ca.pem"),
            "{e}"
        );
        let dir = std::env::temp_dir().join(format!("harness-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = ClientTls::new(&TlsSettings {
            ca: vec![empty.clone()],
            ..TlsSettings::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
        let e = ClientTls::new(&TlsSettings {
            client_cert: Some(empty),
            ..TlsSettings::default()
        })
        .unwrap_err();
        assert!(matches!(e, TlsSetupError::CertWithoutKey), "{e}");
    }

    #[test]
    fn an_unknown_issuer_says_how_to_trust_it() {
        let e = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let text = describe(&e, "127.0.0.1");
        assert!(
            text.contains("checked as 127.0.0.1, is signed by a CA the harness does not trust"),
            "{text}"
        );
        assert!(text.contains("--ca-cert"), "{text}");
        assert_eq!(plain_name("DnsName(\"api.internal\")"), "api.internal");
        assert_eq!(plain_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(plain_name("plain"), "plain");
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        assert!(find(&io).is_some());
    }
}
