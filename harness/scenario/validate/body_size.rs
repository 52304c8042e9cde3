//! `[probes.body_size]`: the request body size an HTTP target accepts, declared or searched for.

use toml::Spanned;

use super::websocket::header_table;
use crate::config::Diagnostics;
use crate::config::units::parse_size;
use crate::scenario::model::TargetKind;
use crate::scenario::raw::RawBodySizeProbe;
use crate::scenario::websocket::{BodySizeProbe, MAX_BODY};

const PAYLOAD: &str = "{{payload}}";

pub(super) fn body_size(
    diag: &mut Diagnostics<'_>,
    raw: &Spanned<RawBodySizeProbe>,
    kind: Option<TargetKind>,
) -> Option<BodySizeProbe> {
    let key = |k: &str| format!("probes.body_size.{k}");
    if kind == Some(TargetKind::Websocket) {
        diag.error(
            raw.span(),
            "probes.body_size",
            "[probes.body_size] sends HTTP request bodies; a WebSocket endpoint's message size is \
             probed by [probes.hardening] max_message_size",
            Some("remove it, or use [probes.hardening]".into()),
        );
        return None;
    }
    let r = raw.get_ref();
    let mut ok = true;
    let path = match &r.path {
        Some(p) if p.get_ref().starts_with('/') => p.get_ref().clone(),
        Some(p) => {
            diag.error(
                p.span(),
                key("path"),
                "a request path starts with `/`",
                Some("e.g. \"/v1/uploads\"".into()),
            );
            ok = false;
            String::new()
        }
        None => {
            diag.missing(
                raw.span(),
                &key("path"),
                "add path = \"/v1/uploads\", the route that takes a body",
            );
            ok = false;
            String::new()
        }
    };
    let method = match &r.method {
        None => "POST".to_string(),
        Some(m) => {
            let upper = m.get_ref().to_ascii_uppercase();
            if !["POST", "PUT", "PATCH"].contains(&upper.as_str()) {
                diag.error(
                    m.span(),
                    key("method"),
                    format!("`{}` does not send a body", m.get_ref()),
                    Some("use POST, PUT or PATCH".into()),
                );
                ok = false;
            }
            upper
        }
    };
    // The padding's place first, then `{{env.NAME}}` on either side of it.
    let parts = match &r.body {
        None => Some((String::new(), String::new())),
        Some(b) if b.get_ref().matches(PAYLOAD).count() != 1 => {
            diag.error(
                b.span(),
                key("body"),
                "the body needs exactly one {{payload}}, where the padding goes",
                Some("e.g. body = '{\"note\": \"{{payload}}\"}'".into()),
            );
            None
        }
        Some(b) => {
            let (before, after) = b.get_ref().split_once(PAYLOAD).unwrap_or_default();
            let expand = crate::config::template::expand_env;
            match (expand(before), expand(after)) {
                (Ok(p), Ok(s)) => Some((p, s)),
                (Err(e), _) | (_, Err(e)) => {
                    diag.error(b.span(), key("body"), e.to_string(), None);
                    None
                }
            }
        }
    };
    let (prefix, suffix) = parts.unwrap_or_else(|| {
        ok = false;
        (String::new(), String::new())
    });
    let fixed = (prefix.len() + suffix.len()) as u64;
    let content_type = match &r.content_type {
        Some(c) => c.get_ref().clone(),
        None if r.body.is_some() => "application/json".into(),
        None => "application/octet-stream".into(),
    };
    let (headers, headers_ok) = header_table(diag, r.headers.as_ref(), &key("headers"));
    ok &= headers_ok;
    let size = |diag: &mut Diagnostics<'_>, v: &Spanned<String>, field: &str| match parse_size(
        v.get_ref(),
    ) {
        Ok(n) if n > MAX_BODY => {
            diag.error(
                v.span(),
                key(field),
                format!("{n} bytes is more than the {MAX_BODY} this probe sends"),
                None,
            );
            None
        }
        Ok(n) if n < fixed.max(1) => {
            diag.error(
                v.span(),
                key(field),
                format!(
                    "{n} bytes is less than the body's own {fixed} bytes around {{{{payload}}}}"
                ),
                Some(format!("give at least {}", fixed.max(1))),
            );
            None
        }
        Ok(n) => Some(n),
        Err(e) => {
            diag.error(v.span(), key(field), e.message, Some(e.hint));
            None
        }
    };
    let declared = match &r.limit {
        Some(v) => match size(diag, v, "limit") {
            Some(n) => Some(n),
            None => {
                ok = false;
                None
            }
        },
        None => None,
    };
    let search = match &r.search {
        None => None,
        Some(list) if list.get_ref().len() != 2 => {
            diag.error(
                list.span(),
                key("search"),
                format!(
                    "a search runs between two sizes, not {}",
                    list.get_ref().len()
                ),
                Some("e.g. search = [\"1KiB\", \"16MiB\"]: one accepted, one refused".into()),
            );
            ok = false;
            None
        }
        Some(list) => {
            let lo = size(diag, &list.get_ref()[0], "search");
            let hi = size(diag, &list.get_ref()[1], "search");
            match (lo, hi) {
                (Some(lo), Some(hi)) if lo < hi => Some((lo, hi)),
                (Some(lo), Some(hi)) => {
                    diag.error(
                        list.span(),
                        key("search"),
                        format!("the search runs from a size accepted up to one refused: {lo} is not below {hi}"),
                        Some("give the smaller size first".into()),
                    );
                    ok = false;
                    None
                }
                _ => {
                    ok = false;
                    None
                }
            }
        }
    };
    if declared.is_none() && search.is_none() && r.limit.is_none() && r.search.is_none() {
        diag.missing(
            raw.span(),
            &key("limit"),
            "add limit = \"1MiB\", the largest body the target should accept, or search = \
             [\"1KiB\", \"16MiB\"] to find it",
        );
        ok = false;
    }
    if let (Some(limit), Some((lo, hi)), Some(list)) = (declared, search, &r.search)
        && !(lo..hi).contains(&limit)
    {
        diag.error(
            list.span(),
            key("search"),
            format!("the declared limit {limit} is outside the search ({lo} to {hi})"),
            Some("search around the limit".into()),
        );
        ok = false;
    }
    let far_over = match &r.far_over {
        None => None,
        Some(v) => match size(diag, v, "far_over") {
            Some(n) => {
                if let Some(limit) = declared.filter(|l| n <= *l + 1) {
                    diag.error(
                        v.span(),
                        key("far_over"),
                        format!("{n} bytes is not far over the limit of {limit}"),
                        Some(format!("e.g. far_over = \"{}\"", limit * 4)),
                    );
                    ok = false;
                }
                Some(n)
            }
            None => {
                ok = false;
                None
            }
        },
    };
    let reject_status = super::probes::statuses(
        diag,
        r.reject_status.as_ref(),
        &key("reject_status"),
        &[413],
    );
    (ok && reject_status.is_some()).then(|| BodySizeProbe {
        method,
        path,
        content_type,
        prefix,
        suffix,
        headers,
        declared,
        search,
        far_over,
        reject_status: reject_status.unwrap_or_default(),
    })
}
