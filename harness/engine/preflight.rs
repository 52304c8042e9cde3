//! Before a run: is the target there at all? A target that refuses connections makes every iteration
//! fail the same way; saying so at once (exit 3) is more useful than a run of identical errors.

use std::time::Duration;

use url::Url;

/// How long the first connection may take.
pub const CONNECT_WITHIN: Duration = Duration::from_secs(3);

/// Opens (and closes) one TCP connection to the target.
pub async fn check_reachable(url: &Url) -> Result<(), String> {
    let host = url.host_str().ok_or_else(|| format!("{url} has no host"))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| format!("{url} has no port and its scheme has no default one"))?;
    let address = format!("{host}:{port}");
    let connect = async {
        let mut last = None;
        for addr in tokio::net::lookup_host(&address)
            .await
            .map_err(|e| format!("cannot resolve {address}: {e}"))?
        {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(format!("cannot connect to {addr}: {e}")),
            }
        }
        Err(last.unwrap_or_else(|| format!("{address} resolves to no address")))
    };
    match tokio::time::timeout(CONNECT_WITHIN, connect).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no connection to {address} within {}s",
            CONNECT_WITHIN.as_secs()
        )),
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
            check_reachable(&Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap())
                .await
                .is_ok()
        );
        drop(listener);
        let err = check_reachable(&Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap())
            .await
            .unwrap_err();
        assert!(err.contains("cannot connect"), "{err}");
    }
}
