//! Steps and their requests: method, path or URL, headers, JSON body, expected status, timeout,
//! retries, captures and recorded timings.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use toml::Spanned;

use super::check::json_pointer;
use super::{Scope, check_variables, template};
use crate::config::Diagnostics;
use crate::config::checks::positive_duration;
use crate::config::suggest;
use crate::config::template::JsonTemplate;
use crate::procedure::model::*;
use crate::procedure::raw::*;

/// Most retries a step may ask for; more hides a broken target rather than testing it.
const MAX_RETRIES: i64 = 10;

/// Builds a step (or a rollback step, or a scenario's single request when `need_id` is false).
pub fn step(
    diag: &mut Diagnostics<'_>,
    raw: &Spanned<RawStep>,
    key: &str,
    need_id: bool,
    scope: &mut Scope,
    captured_by: &BTreeMap<String, (usize, String)>,
) -> Option<Step> {
    let r = raw.get_ref();
    only_in(
        diag,
        r.repeat.as_ref().map(Spanned::span),
        key,
        "repeat",
        "run_setup",
    );
    only_in(
        diag,
        r.for_each.as_ref().map(Spanned::span),
        key,
        "for_each",
        "run_teardown",
    );
    let id = match &r.id {
        Some(id) => nonempty_id(diag, id, &format!("{key}.id")),
        None if need_id => {
            diag.missing(
                raw.span(),
                &format!("{key}.id"),
                "add id = \"…\", a short name other parts refer to",
            );
            None
        }
        None => Some(String::new()),
    };
    let request = request(
        diag,
        RequestParts {
            method: r.method.as_ref(),
            path: r.path.as_ref(),
            url: r.url.as_ref(),
            headers: r.headers.as_ref(),
            body: r.body.as_ref(),
        },
        raw.span(),
        key,
        scope,
        captured_by,
    );
    let expect = match &r.expect_status {
        Some(v) => status_set(diag, v, &format!("{key}.expect_status")),
        None => Some(StatusSet::success()),
    };
    let timeout = optional_duration(diag, r.timeout.as_ref(), &format!("{key}.timeout"));
    let retries = match &r.retries {
        Some(n) if !(0..=MAX_RETRIES).contains(n.get_ref()) => {
            diag.error(
                n.span(),
                format!("{key}.retries"),
                format!(
                    "retries must be between 0 and {MAX_RETRIES}, not {}",
                    n.get_ref()
                ),
                Some(
                    "retries are further attempts after a transient failure; 0 disables them"
                        .into(),
                ),
            );
            None
        }
        Some(n) => Some(*n.get_ref() as u32),
        None => Some(0),
    };
    let retry = retries.and_then(|n| retry_policy(diag, n, r.retry.as_ref(), key));
    let mut captures = Vec::new();
    for (var, pointer, ckey) in capture_entries(diag, r.capture.as_ref(), &format!("{key}.capture"))
    {
        if json_pointer(diag, pointer, &ckey) {
            captures.push(Capture {
                variable: var.get_ref().clone(),
                pointer: pointer.get_ref().clone(),
            });
        }
    }
    let mut header_captures = Vec::new();
    let headers = r.capture_header.as_ref();
    for (var, header, ckey) in capture_entries(diag, headers, &format!("{key}.capture_header")) {
        if reqwest::header::HeaderName::from_bytes(header.get_ref().as_bytes()).is_err() {
            diag.error(
                header.span(),
                &ckey,
                format!("`{}` is not a header name", header.get_ref()),
                Some("write it as sent, e.g. \"Location\"".into()),
            );
        } else {
            header_captures.push((var.get_ref().clone(), header.get_ref().clone()));
        }
    }
    let mut records = Vec::new();
    let mut entries: Vec<_> = r.record.iter().flatten().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (metric, pointer) in entries {
        let rkey = format!(
            "{key}.record.{}",
            crate::config::structured::display_key(metric.get_ref())
        );
        let ok_name = record_name(diag, metric, &rkey);
        if json_pointer(diag, pointer, &rkey) && ok_name {
            records.push(Record {
                metric: metric.get_ref().clone(),
                pointer: pointer.get_ref().clone(),
            });
        }
    }
    let history = match &r.history {
        None => Some(None),
        Some(h) => history_write(
            diag,
            h,
            key,
            scope,
            captured_by,
            &captures,
            &header_captures,
        )
        .map(Some),
    };
    Some(Step {
        name: r
            .name
            .as_ref()
            .map(|n| n.get_ref().clone())
            .or_else(|| id.clone())
            .unwrap_or_default(),
        id: id?,
        request: request?,
        expect: expect?,
        timeout: timeout?,
        retry: retry?,
        captures,
        header_captures,
        records,
        ack: r.ack.as_ref().map(|a| *a.get_ref()),
        irreversible: r.irreversible.as_ref().is_some_and(|b| *b.get_ref()),
        history: history?,
    })
}

/// `field` (at `span`, if written) belongs to the steps of `[[place]]` only.
fn only_in(
    diag: &mut Diagnostics<'_>,
    span: Option<Range<usize>>,
    key: &str,
    field: &str,
    place: &str,
) {
    if let Some(span) = span
        && !key.starts_with(place)
    {
        diag.error(
            span,
            format!("{key}.{field}"),
            format!("`{field}` belongs to [[{place}]] steps only"),
            Some(format!("move the step to [[{place}]], or remove `{field}`")),
        );
    }
}

/// A capture table's entries in file order, with the key of each; a built-in variable captured into
/// is reported and left out.
fn capture_entries<'r>(
    diag: &mut Diagnostics<'_>,
    table: Option<&'r BTreeMap<Spanned<String>, Spanned<String>>>,
    key: &str,
) -> Vec<(&'r Spanned<String>, &'r Spanned<String>, String)> {
    let mut entries: Vec<_> = table.into_iter().flatten().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
        .into_iter()
        .filter_map(|(var, value)| {
            let ckey = format!("{key}.{}", var.get_ref());
            if BUILTIN_VARIABLES.contains(&var.get_ref().as_str()) {
                diag.error(
                    var.span(),
                    &ckey,
                    format!(
                        "`{}` is a built-in variable and cannot be captured into",
                        var.get_ref()
                    ),
                    Some("choose another variable name".into()),
                );
                return None;
            }
            Some((var, value, ckey))
        })
        .collect()
}

/// A step's `history = { key, element }`: templates that may use what the step itself captures.
fn history_write(
    diag: &mut Diagnostics<'_>,
    raw: &Spanned<RawHistory>,
    key: &str,
    scope: &Scope,
    captured_by: &BTreeMap<String, (usize, String)>,
    captures: &[Capture],
    header_captures: &[(String, String)],
) -> Option<HistoryWrite> {
    let key = format!("{key}.history");
    let mut own = Scope {
        available: scope.available.clone(),
    };
    own.available
        .extend(captures.iter().map(|c| c.variable.clone()));
    own.available
        .extend(header_captures.iter().map(|(v, _)| v.clone()));
    let h = raw.get_ref();
    let mut field = |value: Option<&Spanned<String>>, name: &str, example: &str| match value {
        Some(v) => template(
            diag,
            v.get_ref(),
            v.span(),
            &format!("{key}.{name}"),
            &own,
            captured_by,
        ),
        None => {
            diag.missing(raw.span(), &format!("{key}.{name}"), example);
            None
        }
    };
    let k = field(
        h.key.as_ref(),
        "key",
        "add key = \"{{report_id}}\", the collection written to",
    );
    let e = field(
        h.element.as_ref(),
        "element",
        "add element = \"{{role}}\", what the write adds to it",
    );
    Some(HistoryWrite {
        key: k?,
        element: e?,
    })
}

/// The waits of a step's retries, from `retry = { … }` over the defaults.
fn retry_policy(
    diag: &mut Diagnostics<'_>,
    retries: u32,
    raw: Option<&Spanned<RawRetry>>,
    key: &str,
) -> Option<RetryPolicy> {
    let mut policy = RetryPolicy::with_retries(retries);
    let Some(raw) = raw else {
        return Some(policy);
    };
    let r = raw.get_ref();
    let key = format!("{key}.retry");
    if let Some(b) = &r.backoff {
        policy.backoff = *b.get_ref();
    }
    let delay = optional_duration(diag, r.delay.as_ref(), &format!("{key}.delay"));
    let max_delay = optional_duration(diag, r.max_delay.as_ref(), &format!("{key}.max_delay"));
    let cap = optional_duration(
        diag,
        r.max_retry_after.as_ref(),
        &format!("{key}.max_retry_after"),
    );
    policy.delay = delay?.unwrap_or(policy.delay);
    policy.max_delay = max_delay?.unwrap_or(policy.delay.max(policy.max_delay));
    if policy.max_delay < policy.delay {
        diag.error(
            raw.span(),
            format!("{key}.max_delay"),
            "max_delay is shorter than delay",
            Some("make max_delay at least the first delay".into()),
        );
        return None;
    }
    if let Some(b) = &r.budget {
        match crate::config::units::parse_ratio(b.get_ref()) {
            Ok(share) if share > 0.0 => policy.budget = Some(share),
            Ok(_) => {
                diag.error(
                    b.span(),
                    format!("{key}.budget"),
                    "a budget of 0 allows no retries",
                    Some("set retries = 0 instead, or a share such as \"10%\"".into()),
                );
                return None;
            }
            Err(e) => {
                diag.error(b.span(), format!("{key}.budget"), e.message, Some(e.hint));
                return None;
            }
        }
    }
    let honour = r.honour_retry_after.as_ref().is_none_or(|h| *h.get_ref());
    policy.retry_after_cap = match (honour, cap?) {
        (false, Some(_)) => {
            diag.error(
                raw.span(),
                format!("{key}.max_retry_after"),
                "max_retry_after is set but honour_retry_after = false",
                Some("drop one of them".into()),
            );
            return None;
        }
        (false, None) => None,
        (true, cap) => Some(cap.unwrap_or(RetryPolicy::DEFAULT_RETRY_AFTER_CAP)),
    };
    Some(policy)
}

fn record_name(diag: &mut Diagnostics<'_>, name: &Spanned<String>, key: &str) -> bool {
    let n = name.get_ref();
    let well_formed = !n.is_empty()
        && n.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
    if !well_formed {
        diag.error(
            name.span(),
            key,
            format!("`{n}` is not a usable metric name"),
            Some("use lower-case words joined by dots, e.g. \"lock.acquire\"".into()),
        );
        return false;
    }
    let root = n.split('.').next().unwrap_or_default();
    if crate::thresholds::catalogue::reserved_roots().any(|r| r == root) {
        diag.error(
            name.span(),
            key,
            format!("`{n}` would clash with the harness's own `{root}` metrics"),
            Some("choose a name with another first word, e.g. \"lock.acquire\"".into()),
        );
        return false;
    }
    true
}

pub(super) fn nonempty_id(
    diag: &mut Diagnostics<'_>,
    id: &Spanned<String>,
    key: &str,
) -> Option<String> {
    let text = id.get_ref().trim();
    if text.is_empty() || text.contains(char::is_whitespace) {
        diag.error(
            id.span(),
            key,
            format!("`{}` is not a usable id", id.get_ref()),
            Some("use a short name without spaces, e.g. \"resource_handoff\"".into()),
        );
        return None;
    }
    Some(text.to_string())
}

/// The request fields a step and a verification share.
pub struct RequestParts<'a> {
    pub method: Option<&'a Spanned<String>>,
    pub path: Option<&'a Spanned<String>>,
    pub url: Option<&'a Spanned<String>>,
    pub headers: Option<&'a BTreeMap<Spanned<String>, Spanned<String>>>,
    pub body: Option<&'a Spanned<toml::Value>>,
}

pub(super) fn request(
    diag: &mut Diagnostics<'_>,
    parts: RequestParts<'_>,
    table_span: Range<usize>,
    key: &str,
    scope: &Scope,
    captured_by: &BTreeMap<String, (usize, String)>,
) -> Option<RequestTemplate> {
    let method = match parts.method {
        Some(m) => match Method::parse(m.get_ref()) {
            Some(method) => Some(method),
            None => {
                diag.error(
                    m.span(),
                    format!("{key}.method"),
                    format!("`{}` is not an HTTP method", m.get_ref()),
                    Some(suggest::did_you_mean(
                        &m.get_ref().to_ascii_uppercase(),
                        Method::ALL.iter().map(|(n, _)| *n),
                    )),
                );
                None
            }
        },
        None => Some(Method::Get),
    };
    let target = match (parts.path, parts.url) {
        (Some(_), Some(u)) => {
            diag.error(
                u.span(),
                format!("{key}.url"),
                "both path and url are set",
                Some(
                    "use path for the target's own URL, or url for another address, not both"
                        .into(),
                ),
            );
            None
        }
        (Some(p), None) => {
            // A path may also be a variable that holds one (a captured `Location`).
            if !p.get_ref().starts_with('/') && !p.get_ref().starts_with("{{") {
                diag.error(
                    p.span(),
                    format!("{key}.path"),
                    format!("path `{}` does not start with `/`", p.get_ref()),
                    Some(format!("write it as \"/{}\"", p.get_ref())),
                );
                None
            } else {
                template(
                    diag,
                    p.get_ref(),
                    p.span(),
                    &format!("{key}.path"),
                    scope,
                    captured_by,
                )
                .map(RequestTarget::Path)
            }
        }
        (None, Some(u)) => {
            let text = u.get_ref();
            if !(text.starts_with("http://")
                || text.starts_with("https://")
                || text.starts_with("{{"))
            {
                diag.error(
                    u.span(),
                    format!("{key}.url"),
                    format!("url `{text}` is not an http:// or https:// URL"),
                    Some("write a full URL, or use path for the target's own address".into()),
                );
                None
            } else {
                template(
                    diag,
                    text,
                    u.span(),
                    &format!("{key}.url"),
                    scope,
                    captured_by,
                )
                .map(RequestTarget::Url)
            }
        }
        (None, None) => {
            diag.missing(
                table_span,
                &format!("{key}.path"),
                "add path = \"/…\" (joined to the target's URL) or url = \"http://…\"",
            );
            None
        }
    };
    let mut headers = Vec::new();
    let mut entries: Vec<_> = parts.headers.into_iter().flatten().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (name, value) in entries {
        let hkey = format!("{key}.headers.{}", name.get_ref());
        if name.get_ref().is_empty()
            || !name
                .get_ref()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
        {
            diag.error(
                name.span(),
                &hkey,
                format!("`{}` is not a valid HTTP header name", name.get_ref()),
                Some("header names are letters, digits and - (e.g. X-Request-Id)".into()),
            );
            continue;
        }
        if let Some(t) = template(
            diag,
            value.get_ref(),
            value.span(),
            &hkey,
            scope,
            captured_by,
        ) {
            headers.push((name.get_ref().clone(), t));
        }
    }
    let body = match parts.body {
        Some(b) => match JsonTemplate::from_toml(b.get_ref()) {
            Ok(body) => {
                let mut used = BTreeSet::new();
                body.variables(&mut used);
                check_variables(
                    diag,
                    used,
                    b.span(),
                    &format!("{key}.body"),
                    scope,
                    captured_by,
                );
                Some(Some(body))
            }
            Err(message) => {
                diag.error(
                    b.span(),
                    format!("{key}.body"),
                    message.to_string(),
                    Some("write variables as {{name}}".into()),
                );
                None
            }
        },
        None => Some(None),
    };
    Some(RequestTemplate {
        method: method?,
        target: target?,
        headers,
        body: body?,
    })
}

/// `200`, `[200, 201]`, `"2xx"`, `["2xx", 409]`.
pub(super) fn status_set(
    diag: &mut Diagnostics<'_>,
    value: &Spanned<toml::Value>,
    key: &str,
) -> Option<StatusSet> {
    let hint = "write a status code (200), a class (\"2xx\") or a list ([200, 409])";
    let items: Vec<&toml::Value> = match value.get_ref() {
        toml::Value::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    let mut set = Vec::new();
    for item in items {
        let parsed = match item {
            toml::Value::Integer(c) if (100..=599).contains(c) => {
                Some(StatusMatch::Exact(*c as u16))
            }
            toml::Value::String(s) => {
                let b = s.as_bytes();
                if b.len() == 3
                    && (b'1'..=b'5').contains(&b[0])
                    && s[1..].eq_ignore_ascii_case("xx")
                {
                    Some(StatusMatch::Class(u16::from(b[0] - b'0')))
                } else {
                    s.parse::<u16>()
                        .ok()
                        .filter(|c| (100..=599).contains(c))
                        .map(StatusMatch::Exact)
                }
            }
            _ => None,
        };
        match parsed {
            Some(m) => set.push(m),
            None => {
                diag.error(
                    value.span(),
                    key,
                    format!("`{item}` is not an HTTP status"),
                    Some(hint.into()),
                );
                return None;
            }
        }
    }
    if set.is_empty() {
        diag.error(value.span(), key, "no status listed", Some(hint.into()));
        return None;
    }
    Some(StatusSet(set))
}

/// Reads an optional duration; `Some(None)` when absent, `None` when malformed.
pub fn optional_duration(
    diag: &mut Diagnostics<'_>,
    value: Option<&Spanned<String>>,
    key: &str,
) -> Option<Option<std::time::Duration>> {
    match value {
        None => Some(None),
        Some(v) => positive_duration(diag, v, key).map(Some),
    }
}
