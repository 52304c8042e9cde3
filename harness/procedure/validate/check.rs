//! Checks on a response: status; a JSON pointer's value (equals, one of, matches, contains, exists,
//! within range, length); a header (equals, matches, exists); response time; and `not`.

use std::collections::{BTreeMap, BTreeSet};

use toml::Spanned;

use super::{Scope, check_variables, step::status_set};
use crate::config::Diagnostics;
use crate::config::template::JsonTemplate;
use crate::config::units::parse_duration;
use crate::procedure::model::*;
use crate::procedure::raw::*;

pub(super) fn json_pointer(
    diag: &mut Diagnostics<'_>,
    pointer: &Spanned<String>,
    key: &str,
) -> bool {
    let p = pointer.get_ref();
    if p.is_empty() || p.starts_with('/') {
        return true;
    }
    diag.error(
        pointer.span(),
        key,
        format!("`{p}` is not a JSON pointer"),
        Some(format!(
            "a JSON pointer starts with `/`, e.g. \"/{}\"",
            p.replace('.', "/")
        )),
    );
    false
}

pub(super) fn check(
    diag: &mut Diagnostics<'_>,
    raw: &Spanned<RawCheck>,
    key: &str,
    scope: &Scope,
) -> Option<Check> {
    let built = positive(diag, raw, key, scope)?;
    Some(match &raw.get_ref().not {
        Some(n) if *n.get_ref() => Check::Not(Box::new(built)),
        _ => built,
    })
}

const HINT: &str = "a check is one of: { status = 200 }, { pointer = \"/x\", equals = … } (or one_of, \
     matches, contains, exists, min/max, length/min_length/max_length), { header = \"Location\", \
     exists = true } (or equals, matches), { max_time = \"500ms\" }; add not = true to turn it around";

/// The check as written, before `not`.
fn positive(
    diag: &mut Diagnostics<'_>,
    raw: &Spanned<RawCheck>,
    key: &str,
    scope: &Scope,
) -> Option<Check> {
    let c = raw.get_ref();
    let kinds = [
        c.status.is_some(),
        c.pointer.is_some(),
        c.header.is_some(),
        c.max_time.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        let msg = if kinds.iter().any(|k| *k) {
            "a check has more than one of status, pointer, header and max_time"
        } else {
            "a check needs status, pointer, header or max_time"
        };
        diag.error(raw.span(), key, msg, Some(HINT.into()));
        return None;
    }
    if let Some(status) = &c.status {
        return status_set(diag, status, &format!("{key}.status")).map(Check::Status);
    }
    if let Some(t) = &c.max_time {
        return match parse_duration(t.get_ref()) {
            Ok(d) => Some(Check::MaxTime(d)),
            Err(e) => {
                diag.error(t.span(), format!("{key}.max_time"), e.message, Some(e.hint));
                None
            }
        };
    }
    if let Some(name) = &c.header {
        return header_check(diag, raw, name, key, scope);
    }
    let pointer = c.pointer.as_ref()?;
    if !json_pointer(diag, pointer, &format!("{key}.pointer")) {
        return None;
    }
    let p = pointer.get_ref().clone();
    let tests = [
        c.equals.is_some(),
        c.one_of.is_some(),
        c.matches.is_some(),
        c.contains.is_some(),
        c.exists.is_some(),
        c.min.is_some() || c.max.is_some(),
        c.length.is_some() || c.min_length.is_some() || c.max_length.is_some(),
    ];
    if tests.iter().filter(|t| **t).count() != 1 {
        diag.error(
            pointer.span(),
            key,
            "a pointer check needs exactly one of equals, one_of, matches, contains, exists, \
             min/max or length",
            Some(HINT.into()),
        );
        return None;
    }
    if let Some(eq) = &c.equals {
        return value(diag, eq, &format!("{key}.equals"), scope)
            .map(|value| Check::Equals { pointer: p, value });
    }
    if let Some(has) = &c.contains {
        return value(diag, has, &format!("{key}.contains"), scope)
            .map(|value| Check::Contains { pointer: p, value });
    }
    if let Some(list) = &c.one_of {
        if list.get_ref().is_empty() {
            diag.error(
                list.span(),
                format!("{key}.one_of"),
                "one_of is empty, so nothing could pass",
                Some("list the values that are acceptable".into()),
            );
            return None;
        }
        let values: Option<Vec<JsonTemplate>> = list
            .get_ref()
            .iter()
            .map(|v| {
                let spanned = Spanned::new(list.span(), v.clone());
                value(diag, &spanned, &format!("{key}.one_of"), scope)
            })
            .collect();
        return values.map(|values| Check::OneOf { pointer: p, values });
    }
    if let Some(m) = &c.matches {
        return pattern(diag, m, &format!("{key}.matches")).map(|pattern| Check::Matches {
            pointer: p,
            pattern,
        });
    }
    if let Some(ex) = &c.exists {
        return Some(Check::Exists {
            pointer: p,
            present: *ex.get_ref(),
        });
    }
    if c.length.is_some() || c.min_length.is_some() || c.max_length.is_some() {
        let exact = c.length.as_ref().map(|v| *v.get_ref());
        if exact.is_some() && (c.min_length.is_some() || c.max_length.is_some()) {
            diag.error(
                raw.span(),
                format!("{key}.length"),
                "length is exact; it cannot go with min_length or max_length",
                Some("keep length, or min_length and max_length".into()),
            );
            return None;
        }
        let (min, max) = match exact {
            Some(n) => (Some(n), Some(n)),
            None => (
                c.min_length.as_ref().map(|v| *v.get_ref()),
                c.max_length.as_ref().map(|v| *v.get_ref()),
            ),
        };
        if let (Some(lo), Some(hi)) = (min, max)
            && lo > hi
        {
            diag.error(
                raw.span(),
                format!("{key}.min_length"),
                format!("min_length {lo} is above max_length {hi}"),
                Some("swap them".into()),
            );
            return None;
        }
        return Some(Check::Length {
            pointer: p,
            min,
            max,
        });
    }
    let (min, max) = (
        c.min.as_ref().map(|v| *v.get_ref()),
        c.max.as_ref().map(|v| *v.get_ref()),
    );
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        diag.error(
            c.min.as_ref().map_or(raw.span(), Spanned::span),
            format!("{key}.min"),
            format!("min {lo} is above max {hi}"),
            Some("swap them".into()),
        );
        return None;
    }
    Some(Check::InRange {
        pointer: p,
        min,
        max,
    })
}

/// `{ header = "…", exists | equals | matches }`.
fn header_check(
    diag: &mut Diagnostics<'_>,
    raw: &Spanned<RawCheck>,
    name: &Spanned<String>,
    key: &str,
    scope: &Scope,
) -> Option<Check> {
    let c = raw.get_ref();
    let others = c.one_of.is_some()
        || c.contains.is_some()
        || c.min.is_some()
        || c.max.is_some()
        || c.length.is_some()
        || c.min_length.is_some()
        || c.max_length.is_some();
    let tests = [c.equals.is_some(), c.matches.is_some(), c.exists.is_some()];
    if others || tests.iter().filter(|t| **t).count() != 1 {
        diag.error(
            name.span(),
            key,
            "a header check needs exactly one of equals, matches or exists",
            Some(HINT.into()),
        );
        return None;
    }
    let test = if let Some(eq) = &c.equals {
        let Some(text) = eq.get_ref().as_str() else {
            diag.error(
                eq.span(),
                format!("{key}.equals"),
                "a header is text; equals must be a string",
                Some("quote it".into()),
            );
            return None;
        };
        let t = super::template(
            diag,
            text,
            eq.span(),
            &format!("{key}.equals"),
            scope,
            &BTreeMap::new(),
        )?;
        HeaderTest::Equals(t)
    } else if let Some(m) = &c.matches {
        HeaderTest::Matches(pattern(diag, m, &format!("{key}.matches"))?)
    } else {
        HeaderTest::Exists(c.exists.as_ref().is_some_and(|e| *e.get_ref()))
    };
    Some(Check::Header {
        name: name.get_ref().clone(),
        test,
    })
}

/// An expected value (a JSON template) whose variables must have values here.
fn value(
    diag: &mut Diagnostics<'_>,
    raw: &Spanned<toml::Value>,
    key: &str,
    scope: &Scope,
) -> Option<JsonTemplate> {
    match JsonTemplate::from_toml(raw.get_ref()) {
        Ok(value) => {
            let mut used = BTreeSet::new();
            value.variables(&mut used);
            check_variables(diag, used, raw.span(), key, scope, &BTreeMap::new());
            Some(value)
        }
        Err(message) => {
            diag.error(raw.span(), key, message.to_string(), None);
            None
        }
    }
}

/// A regular expression, or a problem saying where it is broken.
fn pattern(diag: &mut Diagnostics<'_>, raw: &Spanned<String>, key: &str) -> Option<Pattern> {
    match regex::Regex::new(raw.get_ref()) {
        Ok(r) => Some(Pattern(r)),
        Err(e) => {
            let why = e.to_string();
            let last = why.lines().last().unwrap_or("invalid").trim().to_string();
            diag.error(
                raw.span(),
                key,
                format!("`{}` is not a regular expression: {last}", raw.get_ref()),
                Some("see https://docs.rs/regex for the syntax".into()),
            );
            None
        }
    }
}
