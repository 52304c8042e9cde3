//! How inbound WebSocket frames are recognised: a small language of tests on the values at JSON
//! pointers — `equals`, `one_of`, `exists`, `matches` (a regular expression), `type` — combined with
//! `not`, `all` and `any`. One language for every kind of frame the protocol names (refusals,
//! rate-limit refusals, subscription acknowledgements, deliveries, frames exempt from correlation),
//! so a server with its own message shapes can be described, whatever they are.

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

/// Something frames can be read from by JSON pointer: a parsed value, or the driver's lazily parsed
/// inbound frame.
pub trait Lookup {
    /// The value at `pointer` (`""` is the whole frame), if there is one.
    fn lookup(&self, pointer: &str) -> Option<Cow<'_, Value>>;
}

impl Lookup for Value {
    fn lookup(&self, pointer: &str) -> Option<Cow<'_, Value>> {
        self.pointer(pointer).map(Cow::Borrowed)
    }
}

/// The JSON type a `type` test asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonType {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl JsonType {
    pub const ALL: &[(&str, JsonType)] = &[
        ("null", JsonType::Null),
        ("bool", JsonType::Bool),
        ("number", JsonType::Number),
        ("string", JsonType::String),
        ("array", JsonType::Array),
        ("object", JsonType::Object),
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, t)| *t)
    }

    pub fn of(v: &Value) -> Self {
        match v {
            Value::Null => JsonType::Null,
            Value::Bool(_) => JsonType::Bool,
            Value::Number(_) => JsonType::Number,
            Value::String(_) => JsonType::String,
            Value::Array(_) => JsonType::Array,
            Value::Object(_) => JsonType::Object,
        }
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("?", |(n, _)| n)
    }
}

/// A regular expression, compared and shown by its text.
#[derive(Debug, Clone)]
pub struct Regex(pub regex::Regex);

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// A test on an inbound frame.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameMatcher {
    /// The value at the pointer equals this one.
    Equals {
        pointer: String,
        value: Value,
    },
    /// The value at the pointer is one of these.
    OneOf {
        pointer: String,
        values: Vec<Value>,
    },
    /// Something is (or, with `false`, nothing is) at the pointer.
    Exists {
        pointer: String,
        present: bool,
    },
    /// The value at the pointer — a string, or a number or boolean as written — matches the pattern.
    Matches {
        pointer: String,
        pattern: Regex,
    },
    /// The value at the pointer is of one of these types.
    Type {
        pointer: String,
        types: Vec<JsonType>,
    },
    Not(Box<FrameMatcher>),
    All(Vec<FrameMatcher>),
    Any(Vec<FrameMatcher>),
}

impl FrameMatcher {
    /// `pointer` holds `value`: the commonest test.
    pub fn equals(pointer: &str, value: impl Into<Value>) -> Self {
        FrameMatcher::Equals {
            pointer: pointer.to_string(),
            value: value.into(),
        }
    }

    /// A matcher no frame passes (`any` of nothing).
    pub fn never() -> Self {
        FrameMatcher::Any(Vec::new())
    }

    pub fn is_never(&self) -> bool {
        matches!(self, FrameMatcher::Any(v) if v.is_empty())
    }

    pub fn matches(&self, frame: &(impl Lookup + ?Sized)) -> bool {
        match self {
            FrameMatcher::Equals { pointer, value } => {
                frame.lookup(pointer).is_some_and(|v| *v == *value)
            }
            FrameMatcher::OneOf { pointer, values } => {
                frame.lookup(pointer).is_some_and(|v| values.contains(&v))
            }
            FrameMatcher::Exists { pointer, present } => {
                frame.lookup(pointer).is_some() == *present
            }
            FrameMatcher::Matches { pointer, pattern } => {
                frame.lookup(pointer).is_some_and(|v| match v.as_ref() {
                    Value::String(s) => pattern.0.is_match(s),
                    Value::Number(n) => pattern.0.is_match(&n.to_string()),
                    Value::Bool(b) => pattern.0.is_match(if *b { "true" } else { "false" }),
                    _ => false,
                })
            }
            FrameMatcher::Type { pointer, types } => frame
                .lookup(pointer)
                .is_some_and(|v| types.contains(&JsonType::of(&v))),
            FrameMatcher::Not(m) => !m.matches(frame),
            FrameMatcher::All(ms) => ms.iter().all(|m| m.matches(frame)),
            FrameMatcher::Any(ms) => ms.iter().any(|m| m.matches(frame)),
        }
    }

    /// The pointers it reads, first to last (for messages about frames that did not match).
    pub fn pointers(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_pointers(&mut out);
        out
    }

    fn collect_pointers<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            FrameMatcher::Equals { pointer, .. }
            | FrameMatcher::OneOf { pointer, .. }
            | FrameMatcher::Exists { pointer, .. }
            | FrameMatcher::Matches { pointer, .. }
            | FrameMatcher::Type { pointer, .. } => {
                if !out.contains(&pointer.as_str()) {
                    out.push(pointer);
                }
            }
            FrameMatcher::Not(m) => m.collect_pointers(out),
            FrameMatcher::All(ms) | FrameMatcher::Any(ms) => {
                for m in ms {
                    m.collect_pointers(out);
                }
            }
        }
    }
}

impl fmt::Display for FrameMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, word: &str, ms: &[FrameMatcher]| {
            write!(f, "{word}(")?;
            for (i, m) in ms.iter().enumerate() {
                if i > 0 {
                    write!(f, ", ")?;
                }
                write!(f, "{m}")?;
            }
            write!(f, ")")
        };
        match self {
            FrameMatcher::Equals { pointer, value } => write!(f, "{pointer} == {value}"),
            FrameMatcher::OneOf { pointer, values } => {
                write!(f, "{pointer} in {}", Value::Array(values.clone()))
            }
            FrameMatcher::Exists {
                pointer,
                present: true,
            } => write!(f, "{pointer} exists"),
            FrameMatcher::Exists { pointer, .. } => write!(f, "{pointer} is absent"),
            FrameMatcher::Matches { pointer, pattern } => {
                write!(f, "{pointer} =~ /{}/", pattern.0.as_str())
            }
            FrameMatcher::Type { pointer, types } => {
                let names: Vec<&str> = types.iter().map(|t| t.name()).collect();
                write!(f, "{pointer} is {}", names.join(" or "))
            }
            FrameMatcher::Not(m) => write!(f, "not({m})"),
            FrameMatcher::All(ms) => list(f, "all", ms),
            FrameMatcher::Any(ms) if ms.is_empty() => write!(f, "nothing"),
            FrameMatcher::Any(ms) => list(f, "any", ms),
        }
    }
}

/// Where in `frame` the string `needle` sits, as a JSON pointer (depth-first, first found): used to
/// tell a user where their correlation id came back when it is not where the protocol looks.
pub fn find_string(frame: &Value, needle: &str) -> Option<String> {
    fn escape(s: &str) -> Cow<'_, str> {
        if s.contains(['~', '/']) {
            Cow::Owned(s.replace('~', "~0").replace('/', "~1"))
        } else {
            Cow::Borrowed(s)
        }
    }
    match frame {
        Value::String(s) if s == needle => Some(String::new()),
        Value::Object(map) => map
            .iter()
            .find_map(|(k, v)| find_string(v, needle).map(|rest| format!("/{}{rest}", escape(k)))),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_string(v, needle).map(|rest| format!("/{i}{rest}"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn re(s: &str) -> Regex {
        Regex(regex::Regex::new(s).unwrap())
    }

    #[test]
    fn every_test_and_combination_reads_the_frame() {
        let f =
            json!({"op": "throttled", "id": null, "retry": 250, "why": "slow down", "tags": [1]});
        assert!(FrameMatcher::equals("/op", "throttled").matches(&f));
        let one_of = FrameMatcher::OneOf {
            pointer: "/op".into(),
            values: vec![json!("err"), json!("throttled")],
        };
        assert!(one_of.matches(&f));
        let absent = FrameMatcher::Exists {
            pointer: "/code".into(),
            present: false,
        };
        assert!(absent.matches(&f));
        let null_id = FrameMatcher::Type {
            pointer: "/id".into(),
            types: vec![JsonType::Null],
        };
        assert!(null_id.matches(&f));
        assert!(
            FrameMatcher::Matches {
                pointer: "/why".into(),
                pattern: re("^slow"),
            }
            .matches(&f)
        );
        assert!(
            FrameMatcher::Matches {
                pointer: "/retry".into(),
                pattern: re("^2\\d\\d$"),
            }
            .matches(&f)
        );
        assert!(
            !FrameMatcher::Matches {
                pointer: "/tags".into(),
                pattern: re(".*"),
            }
            .matches(&f),
            "an array has no text to match"
        );
        let both = FrameMatcher::All(vec![one_of.clone(), null_id.clone()]);
        assert!(both.matches(&f));
        assert!(!FrameMatcher::Not(Box::new(both.clone())).matches(&f));
        assert!(FrameMatcher::Any(vec![FrameMatcher::equals("/op", "err"), null_id]).matches(&f));
        assert!(!FrameMatcher::never().matches(&f));
        assert!(!FrameMatcher::equals("/missing", "x").matches(&f));
        assert_eq!(both.pointers(), vec!["/op", "/id"]);
        assert_eq!(
            both.to_string(),
            r#"all(/op in ["err","throttled"], /id is null)"#
        );
    }

    #[test]
    fn a_sent_id_is_found_wherever_it_came_back() {
        let f = json!({"op": "ok", "meta": {"a/b": ["x", "run-1-7"]}});
        assert_eq!(find_string(&f, "run-1-7").as_deref(), Some("/meta/a~1b/1"));
        assert_eq!(find_string(&f, "run-1-8"), None);
    }
}
