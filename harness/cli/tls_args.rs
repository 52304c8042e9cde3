//! The command line's TLS and HTTP options for `run`, over the scenario's `[tls]` and `[http]`.

use std::path::PathBuf;

use clap::Args;

use crate::kinds::HttpVersion;
use crate::tls::{MinVersion, TlsSettings};

#[derive(Debug, Args, Default)]
pub struct TlsArgs {
    /// Trust this CA certificate (PEM) beside the platform's roots (repeatable).
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub ca: Vec<PathBuf>,
    /// Present this client certificate chain (PEM) to servers that ask for one (mTLS).
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The private key of --client-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Check the server's certificate against this name (and send it as SNI) instead of the URL's
    /// host, e.g. when targeting 127.0.0.1 with a certificate for api.internal.
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// Lowest TLS version allowed: 1.2 (default) or 1.3.
    #[arg(long, value_name = "VERSION", value_parser = parse_min_version)]
    pub tls_min_version: Option<MinVersion>,
    /// Accept any server certificate (a throwaway test server only). Warned on every run and
    /// recorded in result.json.
    #[arg(long)]
    pub insecure_skip_verify: bool,
    /// Which HTTP to speak: auto (HTTP/2 where TLS's ALPN agrees, else HTTP/1.1), http1, or http2
    /// (over plain http: prior knowledge, h2c).
    #[arg(long = "http", value_name = "VERSION", value_parser = parse_http)]
    pub http: Option<HttpVersion>,
}

fn parse_min_version(text: &str) -> Result<MinVersion, String> {
    MinVersion::parse(text).ok_or_else(|| format!("`{text}`: use 1.2 or 1.3"))
}

fn parse_http(text: &str) -> Result<HttpVersion, String> {
    HttpVersion::ALL
        .iter()
        .copied()
        .find(|v| v.as_str() == text)
        .ok_or_else(|| format!("`{text}`: use auto, http1 or http2"))
}

impl TlsArgs {
    /// The TLS settings these flags give (empty where none was given).
    pub fn settings(&self) -> TlsSettings {
        TlsSettings {
            ca: self.ca.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
            server_name: self.tls_server_name.clone(),
            min_version: self.tls_min_version.unwrap_or_default(),
            insecure_skip_verify: self.insecure_skip_verify,
        }
    }
}
