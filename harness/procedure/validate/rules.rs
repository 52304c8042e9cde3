//! Validation rules (tied to the step whose response they check) and rollbacks (tied to the steps
//! they undo, each with the verification that decides whether it succeeded).

use std::collections::{BTreeMap, BTreeSet};

use toml::Spanned;

use super::Scope;
use super::check::check;
use super::step::{RequestParts, nonempty_id, optional_duration, request, step};
use crate::config::Diagnostics;
use crate::config::suggest;
use crate::procedure::model::*;
use crate::procedure::raw::*;

pub(super) fn rules(
    diag: &mut Diagnostics<'_>,
    raw: &[Spanned<RawRule>],
    step_ids: &[String],
    scope_after: &[BTreeSet<String>],
    base_scope: &BTreeSet<String>,
) -> Option<Vec<Rule>> {
    let mut out = Vec::new();
    let mut ok = true;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, raw_rule) in raw.iter().enumerate() {
        let key = format!("rules[{i}]");
        let r = raw_rule.get_ref();
        let id = match &r.id {
            Some(id) => {
                let id_text = nonempty_id(diag, id, &format!("{key}.id"));
                if let Some(t) = &id_text {
                    if let Some(line) = seen.get(t) {
                        diag.error(
                            id.span(),
                            format!("{key}.id"),
                            format!("rule id `{t}` is used twice (first on line {line})"),
                            Some("give every rule its own id, e.g. VR009".into()),
                        );
                    }
                    seen.insert(t.clone(), diag.source().line_col(id.span().start).0);
                }
                id_text
            }
            None => {
                diag.missing(raw_rule.span(), &format!("{key}.id"), "add id = \"VR…\"");
                None
            }
        };
        let severity = match &r.severity {
            Some(s) => Some(*s.get_ref()),
            None => {
                diag.missing(
                    raw_rule.span(),
                    &format!("{key}.severity"),
                    "add severity = \"critical\", \"high\", \"medium\" or \"low\"",
                );
                None
            }
        };
        let step = match &r.step {
            Some(s) => match step_ids.iter().position(|id| id == s.get_ref()) {
                Some(index) => Some(index),
                None => {
                    diag.error(
                        s.span(),
                        format!("{key}.step"),
                        format!(
                            "rule names step `{}`, which this procedure does not have",
                            s.get_ref()
                        ),
                        Some(suggest::did_you_mean(
                            s.get_ref(),
                            step_ids.iter().map(String::as_str),
                        )),
                    );
                    None
                }
            },
            None => {
                diag.missing(
                    raw_rule.span(),
                    &format!("{key}.step"),
                    "add step = \"<id of the step whose response it checks>\"",
                );
                None
            }
        };
        let scope = Scope {
            available: step
                .and_then(|s| scope_after.get(s).cloned())
                .unwrap_or_else(|| base_scope.clone()),
        };
        let check = match &r.check {
            Some(c) => check(diag, c, &format!("{key}.check"), &scope),
            None => {
                diag.missing(
                    raw_rule.span(),
                    &format!("{key}.check"),
                    "add check = { … }, e.g. check = { status = 200 }",
                );
                None
            }
        };
        match (id, severity, step, check) {
            (Some(id), Some(severity), Some(step), Some(check)) => out.push(Rule {
                name: r
                    .name
                    .as_ref()
                    .map_or_else(|| id.clone(), |n| n.get_ref().clone()),
                id,
                severity,
                step,
                check,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

pub(super) fn rollbacks(
    diag: &mut Diagnostics<'_>,
    raw: &[Spanned<RawRollback>],
    step_ids: &[String],
    scope_after: &[BTreeSet<String>],
    base_scope: &BTreeSet<String>,
    captured_by: &BTreeMap<String, (usize, String)>,
) -> Option<Vec<Rollback>> {
    let mut out = Vec::new();
    let mut ok = true;
    for (i, raw_rb) in raw.iter().enumerate() {
        let key = format!("rollbacks[{i}]");
        let r = raw_rb.get_ref();
        let id = match &r.id {
            Some(id) => nonempty_id(diag, id, &format!("{key}.id")),
            None => {
                diag.missing(raw_rb.span(), &format!("{key}.id"), "add id = \"…\"");
                None
            }
        };
        let mut undoes = Vec::new();
        match &r.undoes {
            Some(list) if list.get_ref().is_empty() => {
                diag.error(
                    list.span(),
                    format!("{key}.undoes"),
                    "undoes is empty",
                    Some("name the steps this rollback undoes".into()),
                );
                ok = false;
            }
            Some(list) => {
                for s in list.get_ref() {
                    match step_named(diag, s, &format!("{key}.undoes"), "rollback", step_ids) {
                        Some(index) => undoes.push(index),
                        None => ok = false,
                    }
                }
            }
            None => {
                ok = false;
                diag.missing(
                    raw_rb.span(),
                    &format!("{key}.undoes"),
                    "add undoes = [\"<step id>\", …], the steps this rollback reverses",
                );
            }
        }
        let mut applies_to = Vec::new();
        for s in r
            .applies_to
            .as_ref()
            .map(|l| l.get_ref().as_slice())
            .unwrap_or_default()
        {
            match step_named(
                diag,
                s,
                &format!("{key}.applies_to"),
                "applies_to",
                step_ids,
            ) {
                Some(index) => applies_to.push(index),
                None => ok = false,
            }
        }
        if let Some(first) = undoes.iter().min()
            && let Some(early) = applies_to.iter().find(|a| *a < first)
        {
            ok = false;
            diag.error(
                r.applies_to.as_ref().map_or(raw_rb.span(), Spanned::span),
                format!("{key}.applies_to"),
                format!(
                    "step `{}` comes before every step this rollback undoes, so its failure \
                     leaves nothing for it to undo",
                    step_ids[*early]
                ),
                Some("name the steps at or after the first one it undoes".into()),
            );
        }
        // A rollback may use what was captured up to the last step it undoes.
        let mut scope = Scope {
            available: undoes
                .iter()
                .max()
                .and_then(|m| scope_after.get(*m).cloned())
                .unwrap_or_else(|| base_scope.clone()),
        };
        let mut steps = Vec::new();
        let raw_steps = r.steps.as_deref().unwrap_or_default();
        if raw_steps.is_empty() {
            ok = false;
            diag.error(
                raw_rb.span(),
                format!("{key}.steps"),
                "the rollback has no steps",
                Some("add [[rollbacks.steps]] with the requests that undo the change".into()),
            );
        }
        for (j, s) in raw_steps.iter().enumerate() {
            if let Some(flag) = &s.get_ref().irreversible {
                ok = false;
                diag.error(
                    flag.span(),
                    format!("{key}.steps[{j}].irreversible"),
                    "a rollback's request cannot be irreversible",
                    Some("mark the procedure's step instead".into()),
                );
            }
            match step(
                diag,
                s,
                &format!("{key}.steps[{j}]"),
                false,
                &mut scope,
                captured_by,
            ) {
                Some(built) => steps.push(built),
                None => ok = false,
            }
            for c in s.get_ref().captured() {
                scope.available.insert(c.0.get_ref().clone());
            }
        }
        let mut verify = Vec::new();
        let raw_verify = r.verify.as_deref().unwrap_or_default();
        if raw_verify.is_empty() {
            ok = false;
            diag.error(
                raw_rb.span(),
                format!("{key}.verify"),
                "the rollback has no verification, so its success could only be assumed",
                Some(
                    "add [[rollbacks.verify]] reading the state back, with checks it must pass"
                        .into(),
                ),
            );
        }
        for (j, v) in raw_verify.iter().enumerate() {
            let vkey = format!("{key}.verify[{j}]");
            let raw_v = v.get_ref();
            let request = request(
                diag,
                RequestParts {
                    method: raw_v.method.as_ref(),
                    path: raw_v.path.as_ref(),
                    url: raw_v.url.as_ref(),
                    headers: raw_v.headers.as_ref(),
                    body: None,
                },
                v.span(),
                &vkey,
                &scope,
                captured_by,
            );
            let timeout =
                optional_duration(diag, raw_v.timeout.as_ref(), &format!("{vkey}.timeout"));
            let raw_checks = raw_v.checks.as_deref().unwrap_or_default();
            if raw_checks.is_empty() {
                diag.missing(
                    v.span(),
                    &format!("{vkey}.checks"),
                    "add checks = [ { pointer = \"/owner\", equals = \"{{source_agent}}\" } ]",
                );
            }
            let checks: Vec<Option<Check>> = raw_checks
                .iter()
                .enumerate()
                .map(|(k, c)| check(diag, c, &format!("{vkey}.checks[{k}]"), &scope))
                .collect();
            match (
                request,
                timeout,
                checks.into_iter().collect::<Option<Vec<_>>>(),
            ) {
                (Some(request), Some(timeout), Some(checks)) if !checks.is_empty() => {
                    verify.push(Verification {
                        name: raw_v
                            .name
                            .as_ref()
                            .map_or_else(|| request.describe(), |n| n.get_ref().clone()),
                        request,
                        timeout,
                        checks,
                    })
                }
                _ => ok = false,
            }
        }
        match id {
            Some(id) if ok => out.push(Rollback {
                name: r
                    .name
                    .as_ref()
                    .map_or_else(|| id.clone(), |n| n.get_ref().clone()),
                id,
                undoes,
                applies_to,
                steps,
                verify,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// The index of the step `name` names, or a problem at `key` saying `who` names a step the
/// procedure does not have.
fn step_named(
    diag: &mut Diagnostics<'_>,
    name: &Spanned<String>,
    key: &str,
    who: &str,
    step_ids: &[String],
) -> Option<usize> {
    let found = step_ids.iter().position(|id| id == name.get_ref());
    if found.is_none() {
        diag.error(
            name.span(),
            key,
            format!(
                "{who} names step `{}`, which this procedure does not have",
                name.get_ref()
            ),
            Some(suggest::did_you_mean(
                name.get_ref(),
                step_ids.iter().map(String::as_str),
            )),
        );
    }
    found
}
