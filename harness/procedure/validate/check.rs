//! Checks on a response: status, JSON pointer equals / exists / within range, response time.

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
    let c = raw.get_ref();
    let kinds = [
        c.status.is_some(),
        c.pointer.is_some(),
        c.max_time.is_some(),
    ];
    let hint = "a check is one of: { status = 200 }, { pointer = \"/x\", equals = … }, \
                { pointer = \"/x\", exists = true }, { pointer = \"/x\", min = 0, max = 100 }, \
                { max_time = \"500ms\" }";
    if kinds.iter().filter(|k| **k).count() != 1 {
        let msg = if kinds.iter().any(|k| *k) {
            "a check has more than one of status, pointer and max_time"
        } else {
            "a check needs status, pointer or max_time"
        };
        diag.error(raw.span(), key, msg, Some(hint.into()));
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
    let pointer = c.pointer.as_ref()?;
    if !json_pointer(diag, pointer, &format!("{key}.pointer")) {
        return None;
    }
    let p = pointer.get_ref().clone();
    let tests = [
        c.equals.is_some(),
        c.exists.is_some(),
        c.min.is_some() || c.max.is_some(),
    ];
    if tests.iter().filter(|t| **t).count() != 1 {
        diag.error(
            pointer.span(),
            key,
            "a pointer check needs exactly one of equals, exists, or min/max",
            Some(hint.into()),
        );
        return None;
    }
    if let Some(eq) = &c.equals {
        return match JsonTemplate::from_toml(eq.get_ref()) {
            Ok(value) => {
                let mut used = BTreeSet::new();
                value.variables(&mut used);
                check_variables(
                    diag,
                    used,
                    eq.span(),
                    &format!("{key}.equals"),
                    scope,
                    &BTreeMap::new(),
                );
                Some(Check::Equals { pointer: p, value })
            }
            Err(message) => {
                diag.error(
                    eq.span(),
                    format!("{key}.equals"),
                    message.to_string(),
                    None,
                );
                None
            }
        };
    }
    if let Some(ex) = &c.exists {
        return Some(Check::Exists {
            pointer: p,
            present: *ex.get_ref(),
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
