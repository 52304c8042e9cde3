//! Reading what the driver needs out of an inbound frame without building the whole JSON value: the
//! frame's top-level members are parsed as raw slices, and only the member a pointer goes through is
//! parsed further. A correlation id, a `type` to match, a path: a few small values per frame, however
//! large its payload. Frames that are not JSON objects fall back to a full parse.

use std::borrow::Cow;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::scenario::matcher::Lookup;

pub enum Inbound<'a> {
    Object(Members<'a>),
    Other(Value),
}

/// A JSON object's top-level members, in order, each value unparsed. A frame has a handful, so a
/// list searched from the end (the last of a repeated name wins, as in a full parse) costs less
/// than hashing every name of every frame.
pub struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Members<'a> {
    fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

/// A member's name, borrowed from the frame unless it had escapes to decode (serde's own `Cow`
/// always copies).
struct Name<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Name<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Name<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Name<'a>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Name<'a>, E> {
                Ok(Name(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(Visit(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Members<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Members<'a>, M::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((Name(name), value)) = map.next_entry::<Name<'a>, &'a RawValue>()? {
                    members.push((name, value));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

impl Lookup for Inbound<'_> {
    fn lookup(&self, pointer: &str) -> Option<Cow<'_, Value>> {
        Inbound::lookup(self, pointer).map(Cow::Owned)
    }
}

impl<'a> Inbound<'a> {
    /// `None` when the frame is not JSON at all.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        if let Ok(top) = serde_json::from_slice::<Members<'a>>(bytes) {
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

    #[test]
    fn a_repeated_member_reads_as_a_full_parse_reads_it_the_last_one() {
        let text = br#"{"id":"first","n":1,"id":"second"}"#;
        let full: Value = serde_json::from_slice(text).unwrap();
        let f = Inbound::parse(text).unwrap();
        assert!(matches!(f, Inbound::Object(_)));
        assert_eq!(f.lookup("/id"), full.pointer("/id").cloned());
        assert_eq!(f.text("/id").as_deref(), Some("second"));
    }
}
