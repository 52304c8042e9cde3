//! The `[target]` table: kind, URL or embedded reference target, the procedure (resolved by name or
//! path, with its own problems reported in its own file), variable overrides, or the single request
//! of an `http` target.

use std::path::Path;
use std::sync::Arc;

use toml::Spanned;

use super::Resolver;
use crate::config::catalog::read_source;
use crate::config::{ConfigError, Diagnostics, Problem};
use crate::procedure::{self, Procedure};
use crate::scenario::model::*;
use crate::scenario::raw::*;

pub(super) fn target(
    diag: &mut Diagnostics<'_>,
    raw: &Spanned<RawTarget>,
    resolver: &Resolver<'_>,
    foreign: &mut Vec<Problem>,
) -> Option<Target> {
    let t = raw.get_ref();
    let Some(kind) = &t.kind else {
        diag.missing(
            raw.span(),
            "target.kind",
            "add kind = \"handoff\", \"websocket\" or \"http\"",
        );
        return None;
    };
    let kind = *kind.get_ref();
    let endpoint = match (&t.url, &t.embedded) {
        (Some(u), Some(_)) => {
            diag.error(
                u.span(),
                "target.url",
                "both url and embedded are set",
                Some("use url for your own service, or embedded for the built-in reference target, not both".into()),
            );
            None
        }
        (Some(u), None) => target_url(diag, u, kind).map(Endpoint::Url),
        (None, Some(e)) => {
            let embedded = *e.get_ref();
            let fits = match kind {
                TargetKind::Handoff | TargetKind::Http => embedded == Embedded::Handoff,
                TargetKind::Websocket => embedded == Embedded::Websocket,
            };
            if !fits {
                diag.error(
                    e.span(),
                    "target.embedded",
                    format!(
                        "a {} target cannot use the embedded {} server",
                        kind.as_str(),
                        embedded.as_str()
                    ),
                    Some(format!(
                        "use embedded = \"{}\"",
                        if kind == TargetKind::Websocket {
                            "websocket"
                        } else {
                            "handoff"
                        }
                    )),
                );
                None
            } else {
                Some(Endpoint::Embedded(embedded))
            }
        }
        (None, None) => match kind {
            TargetKind::Handoff => Some(Endpoint::Embedded(Embedded::Handoff)),
            TargetKind::Websocket => Some(Endpoint::Embedded(Embedded::Websocket)),
            TargetKind::Http => {
                diag.missing(
                    raw.span(),
                    "target.url",
                    "an http target needs url = \"http://127.0.0.1:PORT\" (or embedded = \"handoff\")",
                );
                None
            }
        },
    };
    let procedure = match kind {
        TargetKind::Handoff => {
            if let Some(req) = &t.request {
                diag.error(
                    req.span(),
                    "target.request",
                    "[target.request] is for kind = \"http\"; a handoff target runs its procedure",
                    Some("remove [target.request], or set kind = \"http\"".into()),
                );
            }
            match &t.procedure {
                Some(p) => resolve_procedure(diag, p, resolver, foreign)
                    .map(|proc_| override_variables(diag, t.variables.as_ref(), proc_))
                    .map(Some),
                None => {
                    diag.missing(
                        raw.span(),
                        "target.procedure",
                        "add procedure = \"PHASE_TRANSITION_STANDARD\" (a name, or a path to a procedure file)",
                    );
                    None
                }
            }
        }
        TargetKind::Http => {
            if let Some(v) = t.variables.as_ref().and_then(|v| v.keys().next()) {
                diag.error(
                    v.span(),
                    "target.variables",
                    "[target.variables] overrides a procedure's variables; an http target has none",
                    Some("remove [target.variables]".into()),
                );
            }
            if let Some(p) = &t.procedure {
                diag.error(
                    p.span(),
                    "target.procedure",
                    "procedures run against kind = \"handoff\" targets",
                    Some("set kind = \"handoff\", or describe the single request under [target.request]".into()),
                );
            }
            single_request(diag, t.request.as_ref()).map(Some)
        }
        TargetKind::Websocket => {
            for (key, span) in [
                ("target.procedure", t.procedure.as_ref().map(Spanned::span)),
                ("target.request", t.request.as_ref().map(Spanned::span)),
            ] {
                if let Some(span) = span {
                    diag.error(
                        span,
                        key,
                        "a websocket target takes no HTTP requests",
                        Some(format!("remove {key}")),
                    );
                }
            }
            Some(None)
        }
    };
    Some(Target {
        kind,
        endpoint: endpoint?,
        procedure: procedure?,
    })
}

fn target_url(
    diag: &mut Diagnostics<'_>,
    raw: &Spanned<String>,
    kind: TargetKind,
) -> Option<url::Url> {
    let text = match crate::config::template::expand_env(raw.get_ref()) {
        Ok(t) => t,
        Err(e) => {
            diag.error(raw.span(), "target.url", e.to_string(), None);
            return None;
        }
    };
    let parsed = match url::Url::parse(&text) {
        Ok(u) => u,
        Err(e) => {
            diag.error(
                raw.span(),
                "target.url",
                format!("`{}` is not a URL ({e})", raw.get_ref()),
                Some("write it in full, e.g. \"http://127.0.0.1:8080\"".into()),
            );
            return None;
        }
    };
    let schemes: &[&str] = match kind {
        TargetKind::Websocket => &["ws", "wss"],
        TargetKind::Handoff | TargetKind::Http => &["http", "https"],
    };
    if !schemes.contains(&parsed.scheme()) {
        diag.error(
            raw.span(),
            "target.url",
            format!(
                "a {} target needs a {} URL, not {}://",
                kind.as_str(),
                schemes.join(":// or "),
                parsed.scheme()
            ),
            Some(format!("e.g. \"{}://127.0.0.1:8080\"", schemes[0])),
        );
        return None;
    }
    if parsed.host_str().is_none() {
        diag.error(
            raw.span(),
            "target.url",
            "the URL has no host",
            Some("e.g. \"http://127.0.0.1:8080\"".into()),
        );
        return None;
    }
    Some(parsed)
}

fn resolve_procedure(
    diag: &mut Diagnostics<'_>,
    name: &Spanned<String>,
    resolver: &Resolver<'_>,
    foreign: &mut Vec<Problem>,
) -> Option<Arc<Procedure>> {
    let text = name.get_ref();
    let looks_like_path = text.ends_with(".toml") || text.contains('/');
    let (source, expected) = if looks_like_path {
        let path = resolver
            .base_dir
            .map_or_else(|| Path::new(text).to_path_buf(), |d| d.join(text));
        match read_source(&path) {
            Ok(s) => (s, None),
            Err(e) => {
                diag.error(
                    name.span(),
                    "target.procedure",
                    e.to_string(),
                    Some("check the path; it is relative to the scenario file".into()),
                );
                return None;
            }
        }
    } else {
        match resolver
            .procedures
            .find(text)
            .and_then(|entry| entry.source())
        {
            Ok(s) => (s, Some(text.as_str())),
            Err(ConfigError::UnknownName { hint, .. }) => {
                diag.error(
                    name.span(),
                    "target.procedure",
                    format!("no procedure named `{text}`"),
                    Some(format!("{hint} (procedures are looked up in scenarios/procedures/ and among the built-in ones)")),
                );
                return None;
            }
            Err(e) => {
                diag.error(name.span(), "target.procedure", e.to_string(), None);
                return None;
            }
        }
    };
    match procedure::parse(&source, expected) {
        Ok(p) => Some(Arc::new(p)),
        Err(problems) => {
            diag.error(
                name.span(),
                "target.procedure",
                format!(
                    "procedure `{text}` has {} problem(s), listed with their places in {}",
                    problems.len(),
                    source.name
                ),
                None,
            );
            foreign.extend(problems.0);
            None
        }
    }
}

/// Applies `[target.variables]`: each must name a variable the procedure declares.
fn override_variables(
    diag: &mut Diagnostics<'_>,
    raw: Option<&std::collections::BTreeMap<Spanned<String>, Spanned<toml::Value>>>,
    procedure: Arc<Procedure>,
) -> Arc<Procedure> {
    let Some(raw) = raw else {
        return procedure;
    };
    let declared: Vec<&str> = procedure
        .variables
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    for name in raw.keys() {
        if !declared.contains(&name.get_ref().as_str()) {
            diag.error(
                name.span(),
                format!("target.variables.{}", name.get_ref()),
                format!(
                    "procedure `{}` has no variable `{}` to override",
                    procedure.name,
                    name.get_ref()
                ),
                Some(crate::config::suggest::did_you_mean(
                    name.get_ref(),
                    declared.iter().copied(),
                )),
            );
        }
    }
    // Like the procedure's own, the values may use what its run setup captures.
    let mut scope = procedure::validate::Scope::new();
    for r in &procedure.run_setup {
        scope.available.extend(r.captured().map(str::to_string));
    }
    let overrides = procedure::validate::variables(diag, Some(raw), &mut scope, "target.variables");
    let mut updated = (*procedure).clone();
    for o in overrides {
        if let Some(v) = updated.variables.iter_mut().find(|v| v.name == o.name) {
            *v = o;
        }
    }
    Arc::new(updated)
}

/// `[target.request]` as a one-step procedure, so that one driver runs both kinds of target.
fn single_request(
    diag: &mut Diagnostics<'_>,
    raw: Option<&Spanned<crate::procedure::raw::RawStep>>,
) -> Option<Arc<Procedure>> {
    let step = match raw {
        Some(r) => {
            let mut scope = procedure::validate::Scope::new();
            let mut step = procedure::validate::step(
                diag,
                r,
                "target.request",
                false,
                &mut scope,
                &Default::default(),
            )?;
            if r.get_ref().capture.is_some() {
                diag.error(
                    r.span(),
                    "target.request.capture",
                    "a single request has no later step to use captures",
                    Some("remove capture, or use a handoff procedure".into()),
                );
            }
            if step.id.is_empty() {
                step.id = "request".into();
            }
            step
        }
        None => procedure::Step {
            id: "request".into(),
            name: "GET /".into(),
            request: procedure::RequestTemplate {
                method: procedure::Method::Get,
                target: procedure::RequestTarget::Path(crate::config::template::Template::literal(
                    "/",
                )),
                headers: Vec::new(),
                body: None,
            },
            expect: procedure::StatusSet::success(),
            timeout: None,
            retry: procedure::RetryPolicy::with_retries(0),
            captures: Vec::new(),
            header_captures: Vec::new(),
            records: Vec::new(),
            ack: None,
            irreversible: false,
            history: None,
        },
    };
    Some(Arc::new(Procedure {
        name: step.request.describe(),
        description: String::new(),
        source: diag.source().name.clone(),
        variables: Vec::new(),
        setup: Vec::new(),
        run_setup: Vec::new(),
        run_teardown: Vec::new(),
        steps: vec![step],
        rules: Vec::new(),
        rollbacks: Vec::new(),
        read_back: None,
    }))
}
