//! Frame matchers as written (`{ pointer = "/op", one_of = ["err", "denied"] }`, `{ all = [...] }`)
//! into [`FrameMatcher`]s: exactly one test or combination per table, a pointer with every test and
//! none with a combination, a regular expression that compiles, a JSON type that exists.

use toml::Spanned;

use crate::config::Diagnostics;
use crate::scenario::matcher::{FrameMatcher, JsonType, Regex};
use crate::scenario::raw::RawMatch;

const TESTS: &str = "equals, one_of, exists, matches or type (with a pointer), or not, all or any";

/// The matcher at `key`; `None` (after saying why) when it is wrong.
pub(super) fn frame_matcher(
    diag: &mut Diagnostics<'_>,
    raw: &Spanned<RawMatch>,
    key: &str,
) -> Option<FrameMatcher> {
    let m = raw.get_ref();
    let given: Vec<&str> = [
        ("equals", m.equals.is_some()),
        ("one_of", m.one_of.is_some()),
        ("exists", m.exists.is_some()),
        ("matches", m.matches.is_some()),
        ("type", m.type_.is_some()),
        ("not", m.not.is_some()),
        ("all", m.all.is_some()),
        ("any", m.any.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, present)| present.then_some(name))
    .collect();
    match given.as_slice() {
        [] => {
            diag.error(
                raw.span(),
                key,
                "this matcher has no test",
                Some(format!("give one of {TESTS}")),
            );
            return None;
        }
        [_] => {}
        several => {
            diag.error(
                raw.span(),
                key,
                format!("one matcher holds one test, not {}", several.join(" and ")),
                Some("combine several with all = [{ … }, { … }]".into()),
            );
            return None;
        }
    }
    let combination = matches!(given[0], "not" | "all" | "any");
    if combination && let Some(p) = &m.pointer {
        diag.error(
            p.span(),
            format!("{key}.pointer"),
            format!(
                "`{}` takes no pointer; its matchers have their own",
                given[0]
            ),
            None,
        );
        return None;
    }
    if let Some(not) = &m.not {
        let inner = frame_matcher(diag, not, &format!("{key}.not"))?;
        return Some(FrameMatcher::Not(Box::new(inner)));
    }
    if let Some(list) = m.all.as_ref().or(m.any.as_ref()) {
        let word = if m.all.is_some() { "all" } else { "any" };
        if list.get_ref().is_empty() {
            diag.error(
                list.span(),
                format!("{key}.{word}"),
                "an empty list matches nothing useful",
                Some("list at least one matcher".into()),
            );
            return None;
        }
        let mut inner = Vec::new();
        let mut ok = true;
        for (i, item) in list.get_ref().iter().enumerate() {
            match frame_matcher(diag, item, &format!("{key}.{word}[{i}]")) {
                Some(f) => inner.push(f),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        return Some(if m.all.is_some() {
            FrameMatcher::All(inner)
        } else {
            FrameMatcher::Any(inner)
        });
    }
    let pointer = match &m.pointer {
        None => {
            diag.missing(
                raw.span(),
                &format!("{key}.pointer"),
                "add pointer = \"/type\", where the value to test is",
            );
            return None;
        }
        Some(p) => super::websocket::json_pointer(diag, p, &format!("{key}.pointer"))?,
    };
    if let Some(v) = &m.equals {
        return Some(FrameMatcher::Equals {
            pointer,
            value: serde_json::to_value(v.get_ref()).ok()?,
        });
    }
    if let Some(values) = &m.one_of {
        if values.get_ref().is_empty() {
            diag.error(
                values.span(),
                format!("{key}.one_of"),
                "an empty list matches no frame",
                Some("list the values the pointer may hold".into()),
            );
            return None;
        }
        let values = values
            .get_ref()
            .iter()
            .filter_map(|v| serde_json::to_value(v.get_ref()).ok())
            .collect();
        return Some(FrameMatcher::OneOf { pointer, values });
    }
    if let Some(present) = &m.exists {
        return Some(FrameMatcher::Exists {
            pointer,
            present: *present.get_ref(),
        });
    }
    if let Some(pattern) = &m.matches {
        return match regex::Regex::new(pattern.get_ref()) {
            Ok(re) => Some(FrameMatcher::Matches {
                pointer,
                pattern: Regex(re),
            }),
            Err(e) => {
                diag.error(
                    pattern.span(),
                    format!("{key}.matches"),
                    format!("not a regular expression: {}", first_line(&e.to_string())),
                    None,
                );
                None
            }
        };
    }
    let t = m.type_.as_ref()?;
    let names: Vec<(String, std::ops::Range<usize>)> = match t.get_ref() {
        toml::Value::String(s) => vec![(s.clone(), t.span())],
        toml::Value::Array(items) => items
            .iter()
            .map(|v| (v.as_str().unwrap_or("").to_string(), t.span()))
            .collect(),
        _ => vec![(String::new(), t.span())],
    };
    json_types(diag, &names, t.span(), &format!("{key}.type"))
        .map(|types| FrameMatcher::Type { pointer, types })
}

/// JSON type names (`"string"`, `"number"`, …).
pub(super) fn json_types(
    diag: &mut Diagnostics<'_>,
    names: &[(String, std::ops::Range<usize>)],
    whole: std::ops::Range<usize>,
    key: &str,
) -> Option<Vec<JsonType>> {
    let mut types = Vec::new();
    for (name, span) in names {
        match JsonType::parse(name) {
            Some(t) => types.push(t),
            None => {
                let known: Vec<&str> = JsonType::ALL.iter().map(|(n, _)| *n).collect();
                diag.error(
                    span.clone(),
                    key,
                    format!("`{name}` is not a JSON type"),
                    Some(format!("use {}", known.join(", "))),
                );
                return None;
            }
        }
    }
    if types.is_empty() {
        diag.error(
            whole,
            key,
            "no JSON type given",
            Some("e.g. \"string\" or [\"string\", \"number\"]".into()),
        );
        return None;
    }
    Some(types)
}

/// The regex crate's message without its drawing of the pattern: the line after `error:`.
fn first_line(s: &str) -> String {
    s.lines()
        .find_map(|l| l.trim_start().strip_prefix("error:"))
        .unwrap_or_else(|| s.lines().next().unwrap_or(s))
        .trim()
        .to_string()
}
