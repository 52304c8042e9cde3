//! Before a run: is the target there at all? A target that refuses connections makes every iteration
//! fail the same way; saying so at once (exit 3) is more useful than a run of identical errors. An
//! https or wss target gets its TLS handshake too, so a certificate the run cannot trust is told at
//! once, in words, instead of as every iteration's error.

use std::time::Duration;

use url::Url;

use super::error::TargetError;

/// How long the first connection may take.
pub const CONNECT_WITHIN: Duration = Duration::from_secs(3);

/// Opens (and closes) one TCP connection to the target, and makes it TLS for an https or wss one.
pub async fn check_reachable(url: &Url, net: &crate::net::Network) -> Result<(), TargetError> {
    let (host, port) = crate::net::host_port(url)?;
    let address = format!("{host}:{port}");
    let connect = async {
        let mut last = None;
        for addr in crate::net::resolve_all(url, net.reach).await? {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(tcp) if crate::tls::is_secure(url) => return handshake(url, tcp, net).await,
                Ok(_) => return Ok(()),
                Err(source) => last = Some(TargetError::Connect { addr, source }),
            }
        }
        Err(
            last.unwrap_or(TargetError::Net(crate::net::NetError::NoAddress {
                address: address.clone(),
            })),
        )
    };
    match tokio::time::timeout(CONNECT_WITHIN, connect).await {
        Ok(result) => result,
        Err(_) => Err(TargetError::ConnectTimeout {
            address,
            secs: CONNECT_WITHIN.as_secs(),
        }),
    }
}

/// The TLS handshake of the preflight: a failure says which certificate, which name and why.
async fn handshake(
    url: &Url,
    tcp: tokio::net::TcpStream,
    net: &crate::net::Network,
) -> Result<(), TargetError> {
    let (host, _) = crate::net::host_port(url)?;
    let tls_err = |why: String| TargetError::Tls {
        address: url.host_str().unwrap_or_default().to_string(),
        why,
    };
    let name = net
        .tls
        .server_name_for(&host)
        .map_err(|e| tls_err(e.to_string()))?;
    let shown = name.to_str().into_owned();
    let config = net.tls.config(&[]).map_err(|e| tls_err(e.to_string()))?;
    let describe = |e: std::io::Error| match crate::tls::find(&e) {
        Some(t) => crate::tls::describe(t, &shown),
        None => format!("the TLS handshake failed: {e}"),
    };
    let (mut tls, _) = crate::tls::stream::handshake(tcp, config, name)
        .await
        .map_err(|e| tls_err(describe(e)))?;
    // In TLS 1.3 a server judges the client's certificate after the handshake, and refuses it with
    // an alert on the first read: one request, answered or refused, tells.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!(
        "HEAD / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        url.host_str().unwrap_or_default()
    );
    let mut buf = [0u8; 512];
    let exchange = async {
        tls.write_all(request.as_bytes()).await?;
        tls.flush().await?;
        tls.read(&mut buf).await
    };
    match tokio::time::timeout(CONNECT_WITHIN, exchange).await {
        Ok(Err(e)) if crate::tls::find(&e).is_some() => Err(tls_err(describe(e))),
        // An answer, a close, or silence: TLS itself is fine.
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listening_port_is_reachable_and_a_closed_one_is_not() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(
            check_reachable(
                &Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
                &crate::net::Network::local().unwrap()
            )
            .await
            .is_ok()
        );
        drop(listener);
        let err = check_reachable(
            &Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
            &crate::net::Network::local().unwrap(),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("cannot connect"), "{err}");
    }
}
