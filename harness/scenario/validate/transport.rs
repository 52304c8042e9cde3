//! `[tls]` and `[http]`: how the clients reach the target. Each file the TLS settings name must
//! exist (a path is taken relative to the scenario's own directory), so a typo is reported at its
//! line instead of failing the run.

use std::path::Path;

use toml::Spanned;

use super::super::model::HttpTransport;
use super::super::raw::{RawHttp, RawTls};
use crate::config::Diagnostics;
use crate::kinds::HttpVersion;
use crate::tls::{MinVersion, TlsSettings};

/// Most HTTP/2 connections a run opens.
const MAX_CONNECTIONS: i64 = 1024;

pub fn tls(diag: &mut Diagnostics<'_>, raw: Option<&Spanned<RawTls>>) -> Option<TlsSettings> {
    let Some(raw) = raw else {
        return Some(TlsSettings::default());
    };
    let t = raw.get_ref();
    let dir = Path::new(&diag.source().name)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut ok = true;
    let mut file = |diag: &mut Diagnostics<'_>, value: &Spanned<String>, key: &str| {
        let path = dir.join(value.get_ref());
        if path.is_file() {
            Some(path)
        } else {
            ok = false;
            diag.error(
                value.span(),
                key,
                format!("no file {}", path.display()),
                Some("a path is relative to the scenario file's directory".into()),
            );
            None
        }
    };
    let mut ca = Vec::new();
    if let Some(v) = &t.ca {
        let names: Vec<Spanned<String>> = match v.get_ref() {
            toml::Value::String(s) => vec![Spanned::new(v.span(), s.clone())],
            toml::Value::Array(items) if items.iter().all(toml::Value::is_str) => items
                .iter()
                .filter_map(|i| i.as_str())
                .map(|s| Spanned::new(v.span(), s.to_string()))
                .collect(),
            _ => {
                diag.error(
                    v.span(),
                    "tls.ca",
                    "ca is a file name or a list of them",
                    Some("e.g. ca = [\"certs/internal-ca.pem\"]".into()),
                );
                Vec::new()
            }
        };
        ca.extend(names.iter().filter_map(|n| file(diag, n, "tls.ca")));
    }
    let client_cert = t
        .client_cert
        .as_ref()
        .and_then(|c| file(diag, c, "tls.client_cert"));
    let client_key = t
        .client_key
        .as_ref()
        .and_then(|k| file(diag, k, "tls.client_key"));
    match (&t.client_cert, &t.client_key) {
        (Some(c), None) => diag.error(
            c.span(),
            "tls.client_cert",
            "a client certificate needs its key",
            Some("add client_key = \"FILE\"".into()),
        ),
        (None, Some(k)) => diag.error(
            k.span(),
            "tls.client_key",
            "a client key needs its certificate",
            Some("add client_cert = \"FILE\"".into()),
        ),
        _ => {}
    }
    let min_version = match &t.min_version {
        None => Some(MinVersion::default()),
        Some(v) => MinVersion::parse(v.get_ref()).or_else(|| {
            diag.error(
                v.span(),
                "tls.min_version",
                format!("`{}` is not a TLS version the harness speaks", v.get_ref()),
                Some("use \"1.2\" or \"1.3\"".into()),
            );
            None
        }),
    };
    let server_name = match &t.server_name {
        Some(n) if rustls::pki_types::ServerName::try_from(n.get_ref().as_str()).is_err() => {
            diag.error(
                n.span(),
                "tls.server_name",
                format!("`{}` is not a DNS name or an IP address", n.get_ref()),
                None,
            );
            None
        }
        other => Some(other.as_ref().map(|n| n.get_ref().clone())),
    };
    if !ok || (t.client_cert.is_some() != t.client_key.is_some()) {
        return None;
    }
    Some(TlsSettings {
        ca,
        client_cert,
        client_key,
        server_name: server_name?,
        min_version: min_version?,
        insecure_skip_verify: t
            .insecure_skip_verify
            .as_ref()
            .is_some_and(|b| *b.get_ref()),
    })
}

pub fn http(diag: &mut Diagnostics<'_>, raw: Option<&Spanned<RawHttp>>) -> Option<HttpTransport> {
    let Some(raw) = raw else {
        return Some(HttpTransport::default());
    };
    let h = raw.get_ref();
    let version = h
        .version
        .as_ref()
        .map_or(HttpVersion::Auto, |v| *v.get_ref());
    let connections = match &h.connections {
        None => None,
        Some(c) => {
            if version != HttpVersion::Http2 {
                diag.error(
                    c.span(),
                    "http.connections",
                    "connections spreads HTTP/2 streams over connections; HTTP/1.1 opens one connection per request in flight",
                    Some("add version = \"http2\", or remove connections".into()),
                );
                return None;
            }
            Some(super::count(diag, c, "http.connections", MAX_CONNECTIONS)? as usize)
        }
    };
    Some(HttpTransport {
        version,
        connections,
        time_connections: h.time_connections.as_ref().is_some_and(|b| *b.get_ref()),
    })
}
