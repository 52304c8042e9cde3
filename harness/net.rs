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

/// Every address `url`'s host resolves to, with its port.
pub async fn resolve_all(url: &Url) -> Result<Vec<SocketAddr>, NetError> {
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
    Ok(addrs)
}

/// The first address `url`'s host resolves to.
pub async fn resolve(url: &Url) -> Result<SocketAddr, NetError> {
    Ok(resolve_all(url).await?[0])
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
}
