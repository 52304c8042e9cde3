//! The loopback gate: load, stress and chaos traffic goes to this machine unless the user allows
//! otherwise. Every client of the harness (the drivers, the probes, the proxy, the plan's check of the
//! target) asks this module, so the rule is written once.

use url::Url;

/// Whether `url` points at this machine.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
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
        ] {
            assert!(is_loopback(&Url::parse(ok).unwrap()), "{ok}");
        }
        for no in [
            "http://10.0.0.1/",
            "http://example.com/",
            "http://[::2]/",
            "http://localhost.evil.com/",
        ] {
            assert!(!is_loopback(&Url::parse(no).unwrap()), "{no}");
        }
    }
}
