//! First stage of reading a configuration file: TOML text into raw serde structs, reporting *every*
//! structural mistake (syntax, unknown key, wrong type, unknown enum value), not only the first.
//!
//! serde stops at the first error. To find them all, the file is parsed once into a spanned tree and
//! deserialized from that tree; after each error the offending key is removed from the tree and the
//! deserialization runs again. Spans always refer to the original text, so every message carries its
//! true `line:col`. Raw structs should make their fields optional (missing keys are the second stage's
//! business) so that every serde error is attributable to a key that can be removed.
//!
//! This module knows nothing of scenarios or procedures.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, Deserializer};

use super::diagnostics::Diagnostics;
use super::suggest;

/// Upper bound on re-runs after a removal; far more than any real file has mistakes.
const MAX_ROUNDS: usize = 200;

/// Parses the diagnostics' source into `T`, reporting every problem. Returns `None` when the text is not
/// valid TOML or a problem could not be attributed to a key; otherwise returns `T` built from the keys
/// that were well-formed (check [`Diagnostics::has_errors`] before trusting it).
pub fn deserialize<T: DeserializeOwned>(diag: &mut Diagnostics<'_>) -> Option<T> {
    let source = diag.source();
    let (table, syntax_errors) = DeTable::parse_recoverable(&source.text);
    if !syntax_errors.is_empty() {
        report_syntax_errors(diag, syntax_errors);
        return None;
    }
    let mut table = table;
    for _ in 0..MAX_ROUNDS {
        let error = match T::deserialize(Deserializer::from(table.clone())) {
            Ok(value) => return Some(value),
            Err(e) => e,
        };
        let span = error.span().unwrap_or(0..0);
        let path = find_path(table.get_ref(), &span, &mut Vec::new());
        let key = path.as_deref().map(display_path).unwrap_or_default();
        let (message, hint) = reword(error.message());
        diag.error(span.clone(), key.clone(), message, hint);
        match path {
            Some(path) if remove(table.get_mut(), &path) => diag.mark_dropped(&key),
            _ => return None,
        }
    }
    None
}

/// One TOML mistake often causes several parser errors on the same line; the first explains it.
fn report_syntax_errors(diag: &mut Diagnostics<'_>, mut errors: Vec<toml::de::Error>) {
    errors.sort_by_key(|e| e.span().map_or(0, |s| s.start));
    let mut last_line = 0;
    for e in errors {
        let span = e.span().unwrap_or(0..0);
        let (line, _) = diag.source().line_col(span.start);
        if line == last_line {
            continue;
        }
        last_line = line;
        diag.error(
            span,
            "",
            format!("TOML syntax error: {}", e.message()),
            Some("fix the TOML syntax at this place; other checks run once the file parses".into()),
        );
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// The path to the key whose name or value has exactly `span`.
fn find_path(
    table: &DeTable<'_>,
    span: &Range<usize>,
    path: &mut Vec<Segment>,
) -> Option<Vec<Segment>> {
    for (k, v) in table.iter() {
        path.push(Segment::Key(k.get_ref().to_string()));
        if k.span() == *span || v.span() == *span {
            return Some(path.clone());
        }
        if let Some(found) = find_in_value(v, span, path) {
            return Some(found);
        }
        path.pop();
    }
    None
}

fn find_in_value(
    value: &Spanned<DeValue<'_>>,
    span: &Range<usize>,
    path: &mut Vec<Segment>,
) -> Option<Vec<Segment>> {
    match value.get_ref() {
        DeValue::Table(inner) => find_path(inner, span, path),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Segment::Index(i));
                if item.span() == *span {
                    return Some(path.clone());
                }
                if let Some(found) = find_in_value(item, span, path) {
                    return Some(found);
                }
                path.pop();
            }
            None
        }
        _ => None,
    }
}

/// Removes the innermost *key* on `path`. An error on an array element removes the whole array, so
/// that the indexes of later elements, shown in other messages, stay true.
fn remove(table: &mut DeTable<'_>, path: &[Segment]) -> bool {
    let last_key = path.iter().rposition(|s| matches!(s, Segment::Key(_)));
    let Some(last_key) = last_key else {
        return false;
    };
    let mut current: &mut DeTable<'_> = table;
    let mut i = 0;
    while i < last_key {
        let Segment::Key(k) = &path[i] else {
            return false;
        };
        let Some(mut value) = current.get_mut(k.as_str()).map(Spanned::get_mut) else {
            return false;
        };
        i += 1;
        while let Some(Segment::Index(n)) = path.get(i).filter(|_| i < last_key) {
            let DeValue::Array(items) = value else {
                return false;
            };
            let Some(item) = items.get_mut(*n) else {
                return false;
            };
            value = item.get_mut();
            i += 1;
        }
        let DeValue::Table(inner) = value else {
            return false;
        };
        current = inner;
    }
    let Segment::Key(k) = &path[last_key] else {
        return false;
    };
    current.remove(k.as_str()).is_some()
}

/// `steps[2].id`, `thresholds."latency.p95"`.
fn display_path(path: &[Segment]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&display_key(k));
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A key as it would be written in TOML: bare when it can be, quoted otherwise.
pub fn display_key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        k.to_string()
    } else {
        format!("\"{k}\"")
    }
}

/// Turns serde's wording into ours: what is wrong, and how to fix it.
fn reword(message: &str) -> (String, Option<String>) {
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let (name, expected) = split_expected(rest);
        let hint = if expected.is_empty() {
            "this table takes no keys; remove it".to_string()
        } else {
            match suggest::nearest(&name, expected.iter().map(String::as_str)) {
                Some(near) => format!("did you mean `{near}`?"),
                None => format!(
                    "remove it; the keys allowed here are {}",
                    expected
                        .iter()
                        .map(|e| format!("`{e}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        };
        return (format!("unknown key `{name}`"), Some(hint));
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let (name, expected) = split_expected(rest);
        let hint = suggest::did_you_mean(&name, expected.iter().map(String::as_str));
        return (format!("`{name}` is not an accepted value"), Some(hint));
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((found, expected)) = rest.split_once(", expected ")
        {
            let expected = friendly_type(expected);
            let found = found
                .replace("floating point", "number")
                .replace("integer", "whole number");
            let hint = type_hint(&expected);
            return (format!("expected {expected}, found {found}"), hint);
        }
    }
    (message.to_string(), None)
}

/// Splits "`name`, expected one of `a`, `b`" into the name and the expected names.
fn split_expected(rest: &str) -> (String, Vec<String>) {
    let mut ticks = rest.split('`');
    ticks.next();
    let name = ticks.next().unwrap_or_default().to_string();
    let expected = rest
        .split_once("expected")
        .map(|(_, e)| {
            e.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    (name, expected)
}

fn friendly_type(serde_name: &str) -> String {
    let t = serde_name.trim();
    let s = match t {
        "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize" => {
            "a whole number"
        }
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "a string" | "a borrowed string" | "string" => "a string",
        "a sequence" => "an array",
        "a map" | "map" => "a table",
        _ if t.starts_with("struct ") => "a table",
        _ => return t.to_string(),
    };
    s.to_string()
}

fn type_hint(expected: &str) -> Option<String> {
    let hint = match expected {
        "a whole number" => "write a whole number without quotes, e.g. 100",
        "a number" => "write a number without quotes, e.g. 0.1",
        "true or false" => "write true or false without quotes",
        "a string" => "put the value in quotes",
        "an array" => "write a list in brackets, e.g. [\"a\", \"b\"]",
        "a table" => "write a table, e.g. key = { … } or a [section]",
        _ => return None,
    };
    Some(hint.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::diagnostics::Source;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Top {
        name: Option<String>,
        kind: Option<Kind>,
        load: Option<Load>,
        steps: Option<Vec<Step>>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Http,
        Websocket,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Load {
        iterations: Option<u64>,
        concurrency: Option<u64>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Step {
        id: Option<String>,
    }

    fn run(text: &str) -> (Option<Top>, Vec<String>) {
        let src = Source::new("t.toml", text);
        let mut diag = Diagnostics::new(&src);
        let top = deserialize::<Top>(&mut diag);
        let msgs = diag
            .into_problems()
            .iter()
            .map(ToString::to_string)
            .collect();
        (top, msgs)
    }

    #[test]
    fn reports_every_structural_problem_with_its_place() {
        let text = "name = 'x'\nkind = 'htp'\n[load]\niterations = 'ten'\nconcurency = 5\n\
                    [[steps]]\nid = 3\n[[steps]]\nid = 'b'\nbogus = 1\n";
        let (top, msgs) = run(text);
        assert!(top.is_some(), "the well-formed rest still deserializes");
        assert_eq!(
            msgs,
            vec![
                "t.toml:2:8: kind: `htp` is not an accepted value — did you mean `http`?",
                "t.toml:4:14: load.iterations: expected a whole number, found string \"ten\" — \
                 write a whole number without quotes, e.g. 100",
                "t.toml:5:1: load.concurency: unknown key `concurency` — did you mean `concurrency`?",
                "t.toml:7:6: steps[0].id: expected a string, found whole number `3` — put the value in quotes",
                "t.toml:10:1: steps[1].bogus: unknown key `bogus` — remove it; the keys allowed here are `id`",
            ]
        );
    }

    #[test]
    fn syntax_errors_stop_before_typing_and_keep_one_per_line() {
        let (top, msgs) = run("name = \nload = [1,\n");
        assert!(top.is_none());
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(msgs[0].starts_with("t.toml:1:"), "{}", msgs[0]);
        assert!(msgs[0].contains("TOML syntax error"), "{}", msgs[0]);
        assert!(msgs[1].starts_with("t.toml:2:"), "{}", msgs[1]);
    }

    #[test]
    fn keys_needing_quotes_are_shown_quoted() {
        assert_eq!(display_key("latency.p95"), "\"latency.p95\"");
        assert_eq!(display_key("success_rate"), "success_rate");
    }
}
