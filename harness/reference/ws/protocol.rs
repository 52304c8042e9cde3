//! The reference WebSocket server's JSON protocol: what a client may send, and the frames the server
//! sends back. Every outbound frame carries a `correlation_id` (the client's when it gave one).
//!
//! Inbound, one JSON object per text frame, told apart by `type`:
//! - `{"type":"echo","correlation_id":"c1","payload":…}` → `{"type":"echo","correlation_id":"c1","payload":…}`
//! - `{"type":"subscribe","path":"/a/b"}` → `{"type":"subscribed","path":"/a/b",…}`; `unsubscribe` alike
//! - `{"type":"publish","path":"/a/b","data":…}` → `{"type":"published","delivered":n,…}` to the
//!   publisher, `{"type":"message","path":"/a/b","data":…}` to each subscriber
//!
//! A refusal is `{"type":"error","correlation_id":…,"error":{"code":…,"message":…}}`.
//!
//! Subscription paths are normalised (repeated and trailing slashes dropped, lower-cased) and then
//! must be 1 to 16 segments of letters, digits, `-`, `_` and `.`, not `.` or `..`, at most 256 bytes.

use serde_json::{Value, json};

/// Longest path accepted, in bytes, before normalisation.
pub const MAX_PATH_BYTES: usize = 256;
/// Most segments a path may have.
pub const MAX_SEGMENTS: usize = 16;

/// Why a message was refused; `code` names it in the error frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// What a valid inbound message asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Echo { payload: Value },
    Subscribe { path: String },
    Unsubscribe { path: String },
    Publish { path: String, data: Value },
}

impl Request {
    /// The message's `type`, for chaos routes and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Echo { .. } => "echo",
            Request::Subscribe { .. } => "subscribe",
            Request::Unsubscribe { .. } => "unsubscribe",
            Request::Publish { .. } => "publish",
        }
    }
}

/// The client's correlation id, if the message is JSON and carries a string one.
pub fn correlation_id(message: &Value) -> Option<String> {
    match message.get("correlation_id")? {
        Value::String(s) if !s.is_empty() && s.len() <= 128 => Some(s.clone()),
        _ => None,
    }
}

/// Reads a parsed message.
pub fn parse(message: &Value) -> Result<Request, Refusal> {
    let Some(obj) = message.as_object() else {
        return Err(Refusal::new(
            "invalid_message",
            "a message is a JSON object with a `type`",
        ));
    };
    let Some(kind) = obj.get("type").and_then(Value::as_str) else {
        return Err(Refusal::new(
            "invalid_message",
            "the message has no string `type`",
        ));
    };
    let path = || -> Result<String, Refusal> {
        match obj.get("path") {
            Some(Value::String(p)) => normalise_path(p),
            _ => Err(Refusal::new(
                "invalid_path",
                format!("a {kind} message needs a string `path`"),
            )),
        }
    };
    match kind {
        "echo" => Ok(Request::Echo {
            payload: obj.get("payload").cloned().unwrap_or(Value::Null),
        }),
        "subscribe" => Ok(Request::Subscribe { path: path()? }),
        "unsubscribe" => Ok(Request::Unsubscribe { path: path()? }),
        "publish" => Ok(Request::Publish {
            path: path()?,
            data: obj.get("data").cloned().unwrap_or(Value::Null),
        }),
        other => Err(Refusal::new(
            "unknown_type",
            format!(
                "unknown message type `{}`; use echo, subscribe, unsubscribe or publish",
                truncate(other, 40)
            ),
        )),
    }
}

/// Normalises a subscription path, or says why it is not one.
pub fn normalise_path(raw: &str) -> Result<String, Refusal> {
    let bad = |why: String| Err(Refusal::new("invalid_path", why));
    if raw.len() > MAX_PATH_BYTES {
        return bad(format!(
            "path is {} bytes long; the limit is {MAX_PATH_BYTES}",
            raw.len()
        ));
    }
    if !raw.starts_with('/') {
        return bad(format!("path `{}` must start with `/`", truncate(raw, 40)));
    }
    let segments: Vec<String> = raw
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    if segments.is_empty() {
        return bad("path names no topic: give at least one segment, e.g. /agents".into());
    }
    if segments.len() > MAX_SEGMENTS {
        return bad(format!(
            "path has {} segments; the limit is {MAX_SEGMENTS}",
            segments.len()
        ));
    }
    for s in &segments {
        if s == "." || s == ".." {
            return bad(format!("path segment `{s}` is not allowed"));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return bad(format!(
                "path segment `{}` holds `{}`; use letters, digits, `-`, `_` and `.`",
                truncate(s, 40),
                c.escape_default()
            ));
        }
    }
    Ok(format!("/{}", segments.join("/")))
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

/// `{"type":"error",…}`; without a correlation id when `cid` is `None`.
pub fn error_frame(cid: Option<&str>, code: &str, message: &str) -> String {
    let mut v = json!({ "type": "error", "error": { "code": code, "message": message } });
    if let Some(cid) = cid {
        v["correlation_id"] = cid.into();
    }
    v.to_string()
}

pub fn echo_frame(cid: &str, payload: Value) -> String {
    json!({ "type": "echo", "correlation_id": cid, "payload": payload }).to_string()
}

pub fn subscribed_frame(cid: &str, kind: &str, path: &str) -> String {
    json!({ "type": kind, "correlation_id": cid, "path": path }).to_string()
}

pub fn published_frame(cid: &str, path: &str, delivered: usize) -> String {
    json!({ "type": "published", "correlation_id": cid, "path": path, "delivered": delivered })
        .to_string()
}

pub fn message_frame(cid: &str, path: &str, data: Value) -> String {
    json!({ "type": "message", "correlation_id": cid, "path": path, "data": data }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised() {
        assert_eq!(normalise_path("/Agents//A1/").unwrap(), "/agents/a1");
        assert_eq!(normalise_path("/a.b/c_d-e").unwrap(), "/a.b/c_d-e");
    }

    #[test]
    fn invalid_paths_are_refused_with_a_reason() {
        for bad in [
            "",
            "agents",
            "/",
            "//",
            "/a/../b",
            "/a/./b",
            "/a b",
            "/<script>",
            "/a?b=1",
        ] {
            let e = normalise_path(bad).unwrap_err();
            assert_eq!(e.code, "invalid_path", "{bad}");
        }
        assert!(normalise_path(&format!("/{}", "a".repeat(300))).is_err());
        assert!(normalise_path(&"/a".repeat(17)).is_err());
    }

    #[test]
    fn messages_are_told_apart_by_type() {
        let m = |s: &str| parse(&serde_json::from_str(s).unwrap());
        assert_eq!(
            m(r#"{"type":"echo","payload":1}"#).unwrap(),
            Request::Echo { payload: 1.into() }
        );
        assert_eq!(
            m(r#"{"type":"publish","path":"/A/"}"#).unwrap(),
            Request::Publish {
                path: "/a".into(),
                data: Value::Null
            }
        );
        assert_eq!(m(r#"{"type":"nope"}"#).unwrap_err().code, "unknown_type");
        assert_eq!(m(r#"[1]"#).unwrap_err().code, "invalid_message");
        assert_eq!(
            m(r#"{"type":"subscribe"}"#).unwrap_err().code,
            "invalid_path"
        );
    }

    #[test]
    fn error_frames_carry_the_correlation_id_when_given() {
        let v: Value = serde_json::from_str(&error_frame(Some("c1"), "x", "y")).unwrap();
        assert_eq!(v["correlation_id"], "c1");
        let v: Value = serde_json::from_str(&error_frame(None, "x", "y")).unwrap();
        assert!(v.get("correlation_id").is_none());
    }
}
