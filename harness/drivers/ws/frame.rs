//! Reading what the driver needs out of an inbound frame without building the whole JSON value: the
//! frame's top-level members are parsed as raw slices, and only the member a pointer goes through is
//! parsed further. A correlation id, a `type` to match, a path: a few small values per frame, however
//! large its payload. Frames that are not JSON objects fall back to a full parse.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::scenario::matcher::Lookup;

pub enum Inbound<'a> {
    Object(HashMap<Cow<'a, str>, &'a RawValue>),
    Other(Value),
}

impl Lookup for Inbound<'_> {
    fn lookup(&self, pointer: &str) -> Option<Cow<'_, Value>> {
        Inbound::lookup(self, pointer).map(Cow::Owned)
    }
}

impl<'a> Inbound<'a> {
    /// `None` when the frame is not JSON at all.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        if let Ok(top) = serde_json::from_slice::<HashMap<Cow<'a, str>, &'a RawValue>>(bytes) {
            return Some(Inbound::Object(top));
        }
        serde_json::from_slice::<Value>(bytes)
            .ok()
            .map(Inbound::Other)
    }

    /// The value at a JSON pointer (`""` is the whole frame).
    pub fn lookup(&self, pointer: &str) -> Option<Value> {
        match self {
            Inbound::Other(v) => v.pointer(pointer).cloned(),
            Inbound::Object(top) => {
                let rest = pointer.strip_prefix('/')?;
                let (first, tail) = match rest.split_once('/') {
                    Some((f, t)) => (f, Some(t)),
                    None => (rest, None),
                };
                let raw = top.get(unescape(first).as_ref())?;
                let value: Value = serde_json::from_str(raw.get()).ok()?;
                match tail {
                    None => Some(value),
                    Some(t) => value.pointer(&format!("/{t}")).cloned(),
                }
            }
        }
    }

    /// A string or number at a pointer, as text (correlation ids come as either).
    pub fn text(&self, pointer: &str) -> Option<String> {
        match self.lookup(pointer)? {
            Value::String(s) if !s.is_empty() => Some(s),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// A pointer segment with `~1` and `~0` decoded.
fn unescape(segment: &str) -> Cow<'_, str> {
    if segment.contains('~') {
        Cow::Owned(segment.replace("~1", "/").replace("~0", "~"))
    } else {
        Cow::Borrowed(segment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::FrameMatcher;
    use serde_json::json;

    #[test]
    fn pointers_reach_into_members_and_fall_back_for_other_frames() {
        let text = br#"{"type":"error","correlation_id":7,"error":{"code":"rate_limited"},"a/b":1,"payload":"xxxx"}"#;
        let f = Inbound::parse(text).unwrap();
        assert_eq!(f.lookup("/type"), Some(json!("error")));
        assert_eq!(f.text("/correlation_id").as_deref(), Some("7"));
        assert_eq!(f.lookup("/error/code"), Some(json!("rate_limited")));
        assert_eq!(f.lookup("/a~1b"), Some(json!(1)));
        assert_eq!(f.lookup("/missing"), None);
        assert!(FrameMatcher::equals("/error/code", "rate_limited").matches(&f));
        assert!(!FrameMatcher::equals("/type", "echo").matches(&f));
        let arr = Inbound::parse(br#"[{"id":"x"}]"#).unwrap();
        assert_eq!(arr.lookup("/0/id"), Some(json!("x")));
        assert!(Inbound::parse(b"not json").is_none());
        let escaped = Inbound::parse(br#"{"ty\"pe":1}"#).unwrap();
        assert_eq!(escaped.lookup("/ty\"pe"), Some(json!(1)));
    }
}
