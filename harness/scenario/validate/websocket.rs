//! The `[websocket]` table: the iteration mode, connections and subscribers, and the protocol profile
//! (frame templates, JSON pointers and matchers), with the reference server's protocol as default.

use std::time::Duration;

use toml::Spanned;

use super::count;
use super::matcher::{frame_matcher, json_types};
use crate::config::Diagnostics;
use crate::config::template::Template;
use crate::config::units::{parse_duration, parse_size};
use crate::scenario::model::{Load, TargetKind};
use crate::scenario::raw::{RawMatch, RawProtocol, RawWebsocket};
use crate::scenario::websocket::{
    ConnSetup, FRAME_VARIABLES, FrameMatcher, OnConnect, RefusalKind, RetryAfterPointer, WsMode,
    WsProtocol, WsSettings,
};

/// Largest payload padding a frame may ask for.
const MAX_PAYLOAD: u64 = 16 * 1024 * 1024;
const MAX_CONNECTIONS: i64 = 100_000;

pub(super) fn websocket(
    diag: &mut Diagnostics<'_>,
    raw: Option<&Spanned<RawWebsocket>>,
    kind: Option<TargetKind>,
    load: Option<&Load>,
) -> Option<Option<WsSettings>> {
    if kind != Some(TargetKind::Websocket) {
        if let (Some(r), Some(k)) = (raw, kind) {
            diag.error(
                r.span(),
                "websocket",
                format!(
                    "[websocket] is for kind = \"websocket\" targets, not {}",
                    k.as_str()
                ),
                Some("remove [websocket], or set target.kind = \"websocket\"".into()),
            );
            return None;
        }
        return Some(None);
    }
    let empty;
    let w = match raw {
        Some(r) => r.get_ref(),
        None => {
            empty = RawWebsocket {
                mode: None,
                connections: None,
                subscribers: None,
                path: None,
                payload_size: None,
                ping_interval: None,
                settle: None,
                connect_timeout: None,
                max_message_size: None,
                headers: None,
                subprotocols: None,
                on_connect: None,
                app_ping: None,
                protocol: None,
            };
            &empty
        }
    };
    let mode = w.mode.as_ref().map_or(WsMode::Echo, |m| *m.get_ref());
    let workers = load.map(Load::concurrency).unwrap_or(1);
    let connections = match &w.connections {
        Some(c) => count(diag, c, "websocket.connections", MAX_CONNECTIONS).map(|c| c as u32),
        None => Some(workers),
    };
    let subscribers = match (&w.subscribers, mode) {
        (Some(s), WsMode::Echo) if *s.get_ref() != 0 => {
            diag.error(
                s.span(),
                "websocket.subscribers",
                "subscribers check the deliveries of publish mode; echo mode has none",
                Some("set mode = \"publish\", or remove subscribers".into()),
            );
            None
        }
        (Some(s), WsMode::Publish) => {
            count(diag, s, "websocket.subscribers", 1000).map(|c| c as u32)
        }
        (_, WsMode::Echo) => Some(0),
        (None, WsMode::Publish) => Some(2),
    };
    let path = template(
        diag,
        w.path.as_ref(),
        "websocket.path",
        "/load/{{run_id}}",
        &["run_id"],
    );
    let payload_size = size(diag, w.payload_size.as_ref(), "websocket.payload_size", 64);
    let ping_interval = match &w.ping_interval {
        None => Some(Some(Duration::from_secs(1))),
        Some(p) => match parse_duration(p.get_ref()) {
            Ok(d) if d.is_zero() => Some(None),
            Ok(d) => Some(Some(d)),
            Err(e) => {
                diag.error(p.span(), "websocket.ping_interval", e.message, Some(e.hint));
                None
            }
        },
    };
    let settle = duration(
        diag,
        w.settle.as_ref(),
        "websocket.settle",
        Duration::from_secs(2),
    );
    let connect_timeout = duration(
        diag,
        w.connect_timeout.as_ref(),
        "websocket.connect_timeout",
        Duration::from_secs(5),
    );
    let max_message_size = match &w.max_message_size {
        None => Some(None),
        Some(raw) => match size(diag, Some(raw), "websocket.max_message_size", 0) {
            Some(n) if n < 1024 => {
                diag.error(
                    raw.span(),
                    "websocket.max_message_size",
                    format!("{n} bytes would refuse nearly every frame"),
                    Some("give at least 1KiB, e.g. \"1MiB\"".into()),
                );
                None
            }
            n => n.map(Some),
        },
    };
    let setup = setup(diag, w);
    let app_ping = super::app_ping::app_ping(diag, w.app_ping.as_ref(), ping_interval.flatten());
    let protocol = protocol(diag, w.protocol.as_ref())
        .zip(setup)
        .zip(app_ping)
        .map(|((mut p, setup), app_ping)| {
            p.setup = setup;
            p.app_ping = app_ping;
            p
        });
    Some(Some(WsSettings {
        mode,
        connections: connections?,
        subscribers: subscribers?,
        path: path?,
        payload_size: payload_size?,
        ping_interval: ping_interval?,
        settle: settle?,
        connect_timeout: connect_timeout?,
        max_message_size: max_message_size?,
        protocol: protocol?,
    }))
}

fn protocol(diag: &mut Diagnostics<'_>, raw: Option<&Spanned<RawProtocol>>) -> Option<WsProtocol> {
    let d = WsProtocol::default();
    let Some(raw) = raw else {
        return Some(d);
    };
    let p = raw.get_ref();
    let key = |k: &str| format!("websocket.protocol.{k}");
    let frame =
        |diag: &mut Diagnostics<'_>, v: &Option<Spanned<String>>, k: &str, default: &Template| {
            match v {
                None => Some(default.clone()),
                Some(_) => template(diag, v.as_ref(), &key(k), "", FRAME_VARIABLES),
            }
        };
    let echo = frame(diag, &p.echo, "echo", &d.echo);
    let publish = frame(diag, &p.publish, "publish", &d.publish);
    let subscribe = frame(diag, &p.subscribe, "subscribe", &d.subscribe);
    let correlation_id = pointer(
        diag,
        &p.correlation_id,
        &key("correlation_id"),
        &d.correlation_id,
    );
    let correlation_types = match &p.correlation_types {
        None => Some(d.correlation_types.clone()),
        Some(t) => {
            let names: Vec<_> = t
                .get_ref()
                .iter()
                .map(|n| (n.get_ref().clone(), n.span()))
                .collect();
            json_types(diag, &names, t.span(), &key("correlation_types"))
        }
    };
    let uncorrelated = matcher(diag, &p.uncorrelated, &key("uncorrelated"), &d.uncorrelated);
    let rejection = matcher(diag, &p.rejection, &key("rejection"), &d.rejection);
    let rate_limited = matcher(diag, &p.rate_limited, &key("rate_limited"), &d.rate_limited);
    let subscribed = matcher(diag, &p.subscribed, &key("subscribed"), &d.subscribed);
    let delivery = matcher(diag, &p.delivery, &key("delivery"), &d.delivery);
    for (raw, k) in [
        (&p.uncorrelated, "uncorrelated"),
        (&p.rejection, "rejection"),
        (&p.subscribed, "subscribed"),
        (&p.delivery, "delivery"),
    ] {
        misplaced_retry_after(diag, raw.as_ref(), &key(k));
    }
    if let Some(r) = &p.rate_limited {
        for item in nested(r.get_ref()) {
            misplaced_retry_after(diag, Some(item), &key("rate_limited"));
        }
    }
    let retry_after = retry_after(diag, p.rate_limited.as_ref(), &key("rate_limited"));
    let close_refusals = close_refusals(diag, p.close_refusals.as_ref(), &key("close_refusals"));
    let delivery_id = pointer(diag, &p.delivery_id, &key("delivery_id"), &d.delivery_id);
    let delivery_publisher = pointer(
        diag,
        &p.delivery_publisher,
        &key("delivery_publisher"),
        &d.delivery_publisher,
    );
    let delivery_seq = pointer(diag, &p.delivery_seq, &key("delivery_seq"), &d.delivery_seq);
    let subscribed_path = pointer(
        diag,
        &p.subscribed_path,
        &key("subscribed_path"),
        &d.subscribed_path,
    );
    Some(WsProtocol {
        setup: ConnSetup::default(),
        app_ping: None,
        echo: echo?,
        publish: publish?,
        subscribe: subscribe?,
        correlation_id: correlation_id?,
        correlation_types: correlation_types?,
        uncorrelated: uncorrelated?,
        rejection: rejection?,
        rate_limited: rate_limited?,
        retry_after: retry_after?,
        close_refusals: close_refusals?,
        subscribed: subscribed?,
        delivery: delivery?,
        delivery_id: delivery_id?,
        delivery_publisher: delivery_publisher?,
        delivery_seq: delivery_seq?,
        subscribed_path: subscribed_path?,
    })
}

/// A table of request headers, `{{env.NAME}}` expanded: the valid ones, and whether all were.
pub(super) fn header_table(
    diag: &mut Diagnostics<'_>,
    table: Option<&Spanned<std::collections::BTreeMap<Spanned<String>, Spanned<String>>>>,
    prefix: &str,
) -> (Vec<(String, String)>, bool) {
    use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
    let mut ok = true;
    let mut headers = Vec::new();
    for (name, value) in table.iter().flat_map(|h| h.get_ref()) {
        let key = format!("{prefix}.{}", name.get_ref());
        let value = match crate::config::template::expand_env(value.get_ref()) {
            Ok(v) => Spanned::new(value.span(), v),
            Err(e) => {
                diag.error(value.span(), &key, e.to_string(), None);
                ok = false;
                continue;
            }
        };
        if HeaderName::from_bytes(name.get_ref().as_bytes()).is_err() {
            diag.error(
                name.span(),
                &key,
                "not an HTTP header name",
                Some("e.g. Authorization".into()),
            );
            ok = false;
        } else if HeaderValue::from_str(value.get_ref()).is_err() {
            diag.error(
                value.span(),
                &key,
                "not a valid header value (control characters or non-ASCII)",
                None,
            );
            ok = false;
        } else {
            headers.push((name.get_ref().clone(), value.get_ref().clone()));
        }
    }
    (headers, ok)
}

/// Handshake headers, subprotocols and on-connect frames.
fn setup(diag: &mut Diagnostics<'_>, w: &RawWebsocket) -> Option<ConnSetup> {
    let (headers, mut ok) = header_table(diag, w.headers.as_ref(), "websocket.headers");
    let mut subprotocols = Vec::new();
    for p in w.subprotocols.iter().flat_map(|s| s.get_ref()) {
        let token = p.get_ref();
        if token.is_empty()
            || !token
                .chars()
                .all(|c| c.is_ascii_graphic() && !",;\"".contains(c))
        {
            diag.error(
                p.span(),
                "websocket.subprotocols",
                format!("{token:?} is not a subprotocol name"),
                Some("a token of printable ASCII without commas, e.g. \"graphql-ws\"".into()),
            );
            ok = false;
        } else {
            subprotocols.push(token.clone());
        }
    }
    let mut on_connect = Vec::new();
    for (i, step) in w.on_connect.iter().flatten().enumerate() {
        let key = format!("websocket.on_connect[{i}]");
        let s = step.get_ref();
        let send = match &s.send {
            Some(_) => template(diag, s.send.as_ref(), &format!("{key}.send"), "", &["id"]),
            None => {
                diag.missing(
                    step.span(),
                    &format!("{key}.send"),
                    "add send = '…', the frame to send",
                );
                None
            }
        };
        let expect = match &s.expect {
            None => Some(None),
            Some(m) => frame_matcher(diag, m, &format!("{key}.expect")).map(Some),
        };
        match (send, expect) {
            (Some(send), Some(expect)) => on_connect.push(OnConnect { send, expect }),
            _ => ok = false,
        }
    }
    ok.then_some(ConnSetup {
        headers,
        subprotocols,
        on_connect,
        max_message: None,
    })
}

/// A template whose variables must all be among `allowed`.
pub(super) fn template(
    diag: &mut Diagnostics<'_>,
    raw: Option<&Spanned<String>>,
    key: &str,
    default: &str,
    allowed: &[&str],
) -> Option<Template> {
    let Some(raw) = raw else {
        return Template::parse(default).ok();
    };
    match Template::parse(raw.get_ref()) {
        Err(e) => {
            diag.error(raw.span(), key, e.to_string(), None);
            None
        }
        Ok(t) => {
            if let Some(v) = t.variables().find(|v| !allowed.contains(v)) {
                diag.error(
                    raw.span(),
                    key,
                    format!("`{{{{{v}}}}}` is not a variable here"),
                    Some(format!(
                        "use {}",
                        allowed
                            .iter()
                            .map(|a| format!("{{{{{a}}}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                );
                return None;
            }
            Some(t)
        }
    }
}

fn pointer(
    diag: &mut Diagnostics<'_>,
    raw: &Option<Spanned<String>>,
    key: &str,
    default: &str,
) -> Option<String> {
    match raw {
        None => Some(default.to_string()),
        Some(p) => json_pointer(diag, p, key),
    }
}

/// A JSON pointer: empty (the whole frame) or starting with `/`.
pub(super) fn json_pointer(
    diag: &mut Diagnostics<'_>,
    p: &Spanned<String>,
    key: &str,
) -> Option<String> {
    if p.get_ref().is_empty() || p.get_ref().starts_with('/') {
        return Some(p.get_ref().clone());
    }
    diag.error(
        p.span(),
        key,
        format!("`{}` is not a JSON pointer", p.get_ref()),
        Some(format!(
            "a JSON pointer starts with `/`, e.g. \"/{}\"",
            p.get_ref()
        )),
    );
    None
}

fn matcher(
    diag: &mut Diagnostics<'_>,
    raw: &Option<Spanned<RawMatch>>,
    key: &str,
    default: &FrameMatcher,
) -> Option<FrameMatcher> {
    match raw {
        None => Some(default.clone()),
        Some(raw) => frame_matcher(diag, raw, key),
    }
}

/// The matchers inside a combination (not the top level).
fn nested(m: &RawMatch) -> Vec<&Spanned<RawMatch>> {
    let mut out: Vec<&Spanned<RawMatch>> = Vec::new();
    let mut direct: Vec<&Spanned<RawMatch>> = Vec::new();
    if let Some(n) = &m.not {
        direct.push(n);
    }
    for list in [&m.all, &m.any].into_iter().flatten() {
        direct.extend(list.get_ref().iter());
    }
    for d in direct {
        out.push(d);
        out.extend(nested(d.get_ref()));
    }
    out
}

/// `retry_after` belongs at the top of `rate_limited` only.
fn misplaced_retry_after(diag: &mut Diagnostics<'_>, raw: Option<&Spanned<RawMatch>>, key: &str) {
    let Some(raw) = raw else { return };
    for (field, name) in [
        (&raw.get_ref().retry_after, "retry_after"),
        (&raw.get_ref().retry_after_unit, "retry_after_unit"),
    ] {
        if let Some(f) = field {
            diag.error(
                f.span(),
                format!("{key}.{name}"),
                format!("`{name}` belongs at the top of rate_limited only"),
                Some("move it to [websocket.protocol.rate_limited]".into()),
            );
        }
    }
}

fn retry_after(
    diag: &mut Diagnostics<'_>,
    raw: Option<&Spanned<RawMatch>>,
    key: &str,
) -> Option<Option<RetryAfterPointer>> {
    let Some(m) = raw.map(Spanned::get_ref) else {
        return Some(None);
    };
    let unit_s = match &m.retry_after_unit {
        None => 1.0,
        Some(u) => match u.get_ref().as_str() {
            "s" => 1.0,
            "ms" => 0.001,
            other => {
                diag.error(
                    u.span(),
                    format!("{key}.retry_after_unit"),
                    format!("`{other}` is not a unit of retry_after"),
                    Some("use \"s\" or \"ms\"".into()),
                );
                return None;
            }
        },
    };
    match (&m.retry_after, &m.retry_after_unit) {
        (None, None) => Some(None),
        (None, Some(u)) => {
            diag.error(
                u.span(),
                format!("{key}.retry_after_unit"),
                "a unit without retry_after",
                Some("add retry_after = \"/retry_after\", the pointer to the value".into()),
            );
            None
        }
        (Some(p), _) => json_pointer(diag, p, &format!("{key}.retry_after"))
            .map(|pointer| Some(RetryAfterPointer { pointer, unit_s })),
    }
}

fn close_refusals(
    diag: &mut Diagnostics<'_>,
    raw: Option<&Spanned<std::collections::BTreeMap<Spanned<String>, Spanned<String>>>>,
    key: &str,
) -> Option<std::collections::BTreeMap<u16, RefusalKind>> {
    let mut out = std::collections::BTreeMap::new();
    let Some(raw) = raw else {
        return Some(out);
    };
    let mut ok = true;
    for (code, kind) in raw.get_ref() {
        let parsed = code
            .get_ref()
            .parse::<u16>()
            .ok()
            .filter(|c| (1000..=4999).contains(c));
        let Some(c) = parsed else {
            diag.error(
                code.span(),
                key,
                format!("`{}` is not a WebSocket close code", code.get_ref()),
                Some("close codes run from 1000 to 4999, e.g. 1008 = \"refused\"".into()),
            );
            ok = false;
            continue;
        };
        match RefusalKind::parse(kind.get_ref()) {
            Some(k) => {
                out.insert(c, k);
            }
            None => {
                diag.error(
                    kind.span(),
                    format!("{key}.{c}"),
                    format!("`{}` is not a kind of refusal", kind.get_ref()),
                    Some("use \"refused\" or \"rate_limited\"".into()),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

pub(super) fn duration(
    diag: &mut Diagnostics<'_>,
    raw: Option<&Spanned<String>>,
    key: &str,
    default: Duration,
) -> Option<Duration> {
    match raw {
        None => Some(default),
        Some(r) => crate::config::checks::positive_duration(diag, r, key),
    }
}

pub(super) fn size(
    diag: &mut Diagnostics<'_>,
    raw: Option<&Spanned<String>>,
    key: &str,
    default: usize,
) -> Option<usize> {
    let Some(raw) = raw else {
        return Some(default);
    };
    match parse_size(raw.get_ref()) {
        Ok(n) if n > MAX_PAYLOAD => {
            diag.error(
                raw.span(),
                key,
                format!("{n} bytes is more than the {MAX_PAYLOAD} this harness sends"),
                None,
            );
            None
        }
        Ok(n) => Some(n as usize),
        Err(e) => {
            diag.error(raw.span(), key, e.message, Some(e.hint));
            None
        }
    }
}
