//! Where a target is on the network: its host and port resolved to addresses, and the loopback gate —
//! load, stress and chaos traffic goes to this machine unless the user allows otherwise. Every client
//! of the harness (the drivers, the probes, the proxy, the plan's check of the target) asks this
//! module, so each rule is written once.

use std::net::SocketAddr;

use url::Url;

/// Why a target's address could not be found.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{url} has no host")]
    NoHost { url: Url },
    #[error("{url} has no port and its scheme has no default one")]
    NoPort { url: Url },
    #[error("cannot resolve {address}: {source}")]
    Resolve {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{address} resolves to no address")]
    NoAddress { address: String },
    #[error(
        "{address} resolves to {ip}, which is not this machine; load goes only to loopback — pass --allow-remote (or set allow_remote = true) if this target is yours to load"
    )]
    NotLoopback {
        address: String,
        ip: std::net::IpAddr,
    },
}

/// Whether traffic may leave this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Only loopback addresses (the default).
    Loopback,
    /// Anywhere (`--allow-remote`).
    Anywhere,
}

impl Reach {
    pub fn of(allow_remote: bool) -> Self {
        if allow_remote {
            Reach::Anywhere
        } else {
            Reach::Loopback
        }
    }

    /// Refuses `addrs` (what `address` resolved to) unless every one is allowed: a name that
    /// resolves elsewhere, through a hosts file or DNS, is not trusted because it reads `localhost`.
    pub fn check(self, address: &str, addrs: &[SocketAddr]) -> Result<(), NetError> {
        if self == Reach::Anywhere {
            return Ok(());
        }
        match addrs.iter().find(|a| !a.ip().is_loopback()) {
            Some(a) => Err(NetError::NotLoopback {
                address: address.to_string(),
                ip: a.ip(),
            }),
            None => Ok(()),
        }
    }
}

/// The host and port of `url` (brackets of an IPv6 literal removed).
pub fn host_port(url: &Url) -> Result<(String, u16), NetError> {
    let host = url
        .host_str()
        .ok_or_else(|| NetError::NoHost { url: url.clone() })?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| NetError::NoPort { url: url.clone() })?;
    Ok((host, port))
}

/// Every address `url`'s host resolves to, with its port, each one allowed by `reach`.
pub async fn resolve_all(url: &Url, reach: Reach) -> Result<Vec<SocketAddr>, NetError> {
    let (host, port) = host_port(url)?;
    let address = format!("{host}:{port}");
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|source| NetError::Resolve {
            address: address.clone(),
            source,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(NetError::NoAddress { address });
    }
    reach.check(&address, &addrs)?;
    Ok(addrs)
}

/// The first address `url`'s host resolves to (every one allowed by `reach`).
pub async fn resolve(url: &Url, reach: Reach) -> Result<SocketAddr, NetError> {
    Ok(resolve_all(url, reach).await?[0])
}

/// Whether `e` says this process (or the system) has no descriptor left for a connection.
pub fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// A connect error in words a user can act on: running out of descriptors says how to get more.
pub fn describe_connect_error(e: &std::io::Error) -> String {
    if out_of_descriptors(e) {
        "too many open files — raise the limit (ulimit -n) or use fewer connections".into()
    } else {
        e.to_string()
    }
}

/// A resolver for the HTTP client that applies the loopback gate to every name it resolves, on every
/// new connection (so a name that changes what it points to mid-run is caught too).
#[derive(Debug, Clone, Copy)]
pub struct GatedResolver(pub Reach);

impl reqwest::dns::Resolve for GatedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let reach = self.0;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(Box::new(NetError::NoAddress { address: host })
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            reach.check(&host, &addrs)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// How every client of a run reaches the target: where it may go, its TLS, and which HTTP it speaks.
/// Made once, when the run is planned (the TLS files are read then), and shared by the drivers, the
/// probes, the admin calls and the preflight.
#[derive(Debug, Clone)]
pub struct Network {
    pub reach: Reach,
    pub tls: std::sync::Arc<crate::tls::ClientTls>,
    pub http: crate::kinds::HttpVersion,
    /// HTTP/2 connections the load spreads its requests over (streams multiplex on each).
    pub http2_connections: usize,
    /// Time every new HTTP connection (`[http] time_connections`).
    pub time_connections: bool,
}

impl Network {
    /// Loopback, default TLS (the platform's roots), HTTP/1.1 or ALPN's choice: what a run gets when
    /// nothing is said.
    pub fn local() -> Result<Self, crate::tls::TlsSetupError> {
        Ok(Self {
            reach: Reach::Loopback,
            tls: std::sync::Arc::new(crate::tls::ClientTls::new(
                &crate::tls::TlsSettings::default(),
            )?),
            http: crate::kinds::HttpVersion::Auto,
            http2_connections: 1,
            time_connections: false,
        })
    }

    /// The ALPN protocols an HTTP client offers.
    pub fn alpn(&self) -> &'static [&'static [u8]] {
        match self.http {
            crate::kinds::HttpVersion::Auto => &[b"h2", b"http/1.1"],
            crate::kinds::HttpVersion::Http1 => &[b"http/1.1"],
            crate::kinds::HttpVersion::Http2 => &[b"h2"],
        }
    }
}

/// Whether `url` points at this machine.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        // Schemes the URL standard does not know (tcp://) keep an address as text.
        Some(url::Host::Domain(d)) => match d.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.is_loopback(),
            Err(_) => d.eq_ignore_ascii_case("localhost"),
        },
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_means_this_machine_only() {
        for ok in [
            "http://127.0.0.1:8080/",
            "http://127.5.6.7/",
            "http://[::1]:9/",
            "http://localhost/x",
            "tcp://127.0.0.1:7/",
        ] {
            assert!(is_loopback(&Url::parse(ok).unwrap()), "{ok}");
        }
        for no in [
            "http://10.0.0.1/",
            "http://example.com/",
            "http://[::2]/",
            "http://localhost.evil.com/",
            "tcp://10.0.0.1:7/",
        ] {
            assert!(!is_loopback(&Url::parse(no).unwrap()), "{no}");
        }
    }

    #[test]
    fn a_name_is_judged_by_every_address_it_resolves_to() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        let mixed = [addr("127.0.0.1:80"), addr("192.0.2.7:80")];
        let e = Reach::Loopback.check("localhost:80", &mixed).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("localhost:80 resolves to 192.0.2.7, which is not this machine"),
            "{e}"
        );
        assert!(Reach::Anywhere.check("localhost:80", &mixed).is_ok());
        let local = [addr("127.0.0.1:80"), addr("[::1]:80")];
        assert!(Reach::Loopback.check("localhost:80", &local).is_ok());
    }

    #[tokio::test]
    async fn the_http_clients_resolver_resolves_this_machine_and_gates_it() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let addrs: Vec<SocketAddr> = GatedResolver(Reach::Loopback)
            .resolve(name)
            .await
            .unwrap()
            .collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
