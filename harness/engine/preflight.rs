//! Before a run: is the target there at all? A target that refuses connections makes every iteration
//! fail the same way; saying so at once (exit 3) is more useful than a run of identical errors.

use std::time::Duration;

use url::Url;

use super::error::TargetError;

/// How long the first connection may take.
pub const CONNECT_WITHIN: Duration = Duration::from_secs(3);

/// Opens (and closes) one TCP connection to the target.
pub async fn check_reachable(url: &Url, reach: crate::net::Reach) -> Result<(), TargetError> {
    let (host, port) = crate::net::host_port(url)?;
    let address = format!("{host}:{port}");
    let connect = async {
        let mut last = None;
        for addr in crate::net::resolve_all(url, reach).await? {
            match tokio::net::TcpStream::connect(addr).await {
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
                crate::net::Reach::Loopback
            )
            .await
            .is_ok()
        );
        drop(listener);
        let err = check_reachable(
            &Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
            crate::net::Reach::Loopback,
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("cannot connect"), "{err}");
    }
}
