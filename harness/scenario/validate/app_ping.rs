//! `[websocket.app_ping]`: a ping frame in the endpoint's own protocol, a matcher for its pong, and
//! where the pong carries the server's clock.

use std::time::Duration;

use toml::Spanned;

use super::matcher::frame_matcher;
use super::websocket::{duration, json_pointer, template};
use crate::config::Diagnostics;
use crate::scenario::raw::RawAppPing;
use crate::scenario::websocket::{AppPing, ServerTime};

/// Shortest interval an app ping may have: each connection sends one per interval.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// The app ping, `None` inside when the scenario has none; `None` outside when it is wrong (and
/// reported). `ping_interval` is the control pings' interval, the default for the app ping's.
pub(super) fn app_ping(
    diag: &mut Diagnostics<'_>,
    raw: Option<&Spanned<RawAppPing>>,
    ping_interval: Option<Duration>,
) -> Option<Option<AppPing>> {
    let Some(raw) = raw else {
        return Some(None);
    };
    let key = |k: &str| format!("websocket.app_ping.{k}");
    let p = raw.get_ref();
    let send = match &p.send {
        Some(_) => template(diag, p.send.as_ref(), &key("send"), "", &["id", "seq"]),
        None => {
            diag.missing(
                raw.span(),
                &key("send"),
                "add send = '{\"type\":\"ping\",\"id\":\"{{id}}\"}', the ping frame in your protocol",
            );
            None
        }
    };
    let pong = match &p.pong {
        Some(m) => frame_matcher(diag, m, &key("pong")),
        None => {
            diag.missing(
                raw.span(),
                &key("pong"),
                "add pong = { pointer = \"/type\", equals = \"pong\" }, how to recognise the answer",
            );
            None
        }
    };
    let server_time = match (&p.server_time, &p.server_time_unit) {
        (None, None) => Some(None),
        (None, Some(u)) => {
            diag.error(
                u.span(),
                key("server_time_unit"),
                "a unit without server_time",
                Some(
                    "add server_time = \"/ts\", the pointer to the server's clock in the pong"
                        .into(),
                ),
            );
            None
        }
        (Some(ptr), unit) => {
            let pointer = json_pointer(diag, ptr, &key("server_time"));
            let unit_s = unit_seconds(diag, unit.as_ref(), &key("server_time_unit"));
            pointer
                .zip(unit_s)
                .map(|(pointer, unit_s)| Some(ServerTime { pointer, unit_s }))
        }
    };
    let default_interval = ping_interval.unwrap_or(Duration::from_secs(1));
    let interval = duration(
        diag,
        p.interval.as_ref(),
        &key("interval"),
        default_interval,
    );
    if let (Some(i), Some(raw)) = (interval, &p.interval)
        && i < MIN_INTERVAL
    {
        diag.error(
            raw.span(),
            key("interval"),
            format!("an app ping every {i:?} is load, not a liveness check"),
            Some("use 10ms or more, e.g. \"1s\"".into()),
        );
        return None;
    }
    Some(Some(AppPing {
        send: send?,
        pong: pong?,
        server_time: server_time?,
        interval: interval?,
    }))
}

/// Seconds per unit of a server time: milliseconds unless the scenario says otherwise.
fn unit_seconds(
    diag: &mut Diagnostics<'_>,
    raw: Option<&Spanned<String>>,
    key: &str,
) -> Option<f64> {
    let Some(u) = raw else {
        return Some(0.001);
    };
    match u.get_ref().as_str() {
        "s" => Some(1.0),
        "ms" => Some(0.001),
        "us" => Some(0.000_001),
        other => {
            diag.error(
                u.span(),
                key,
                format!("`{other}` is not a unit of server_time"),
                Some("use \"s\", \"ms\" or \"us\" (since the Unix epoch)".into()),
            );
            None
        }
    }
}
