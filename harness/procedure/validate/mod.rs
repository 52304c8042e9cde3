//! Second stage of reading a procedure: raw structs into a [`Procedure`], reporting every problem with
//! its place — missing or duplicate ids, unknown methods, malformed templates and pointers, rules and
//! rollbacks that name no step, rollbacks that cannot be verified, and variables used before anything
//! gives them a value.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use toml::Spanned;

mod check;
mod rules;
mod step;

pub use step::{RequestParts, optional_duration, step};

use super::model::*;
use super::raw::*;
use crate::config::suggest;
use crate::config::template::Template;
use crate::config::{Diagnostics, checks};

/// Most padding a `{ pad = … }` variable may give.
const MAX_PAD: u64 = 64 * 1024 * 1024;

/// Builds a procedure from its raw form; `expected_name` is the file stem when the procedure was found
/// by name, so that the two cannot disagree.
pub fn procedure(
    diag: &mut Diagnostics<'_>,
    raw: RawProcedure,
    expected_name: Option<&str>,
) -> Option<Procedure> {
    let name = checks::name(diag, raw.name.as_ref(), expected_name, "procedure");

    let mut scope = Scope::new();
    // The run's setup comes first: what it captures, every iteration (and its variables) has.
    let (run_setup, run_teardown, run_fixed) = run_steps(diag, &raw, &mut scope);
    let variables = variables(diag, raw.variables.as_ref(), &mut scope, "variables");

    // Setup requests run first, so what they capture is available to every step.
    let mut setup = Vec::new();
    for (i, raw_step) in raw.setup.iter().flatten().enumerate() {
        let built = step(
            diag,
            raw_step,
            &format!("setup[{i}]"),
            false,
            &mut scope,
            &BTreeMap::new(),
        );
        for c in raw_step.get_ref().captured() {
            scope.available.insert(c.0.get_ref().clone());
        }
        setup.push(built.map(|mut s| {
            if s.id.is_empty() {
                s.id = format!("setup[{i}]");
            }
            s
        }));
    }

    // What every part of the procedure can use: built-ins, variables, setup captures.
    let base_scope = Scope {
        available: scope.available.clone(),
    };

    // Steps, in order; each sees the variables captured before it.
    let mut steps = Vec::new();
    let mut step_spans: BTreeMap<String, Range<usize>> = BTreeMap::new();
    let mut scope_after: Vec<BTreeSet<String>> = Vec::new();
    let mut captured_by: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let raw_steps = raw.steps.as_deref().unwrap_or_default();
    if raw_steps.is_empty() && !diag.was_dropped("steps") {
        diag.error(
            0..0,
            "steps",
            "the procedure has no steps",
            Some("add at least one [[steps]] table with an id, a method and a path".into()),
        );
    }
    for (i, raw_step) in raw_steps.iter().enumerate() {
        for (var, _) in raw_step.get_ref().captured() {
            let id = raw_step
                .get_ref()
                .id
                .as_ref()
                .map_or(String::new(), |s| s.get_ref().clone());
            captured_by.entry(var.get_ref().clone()).or_insert((i, id));
        }
    }
    for (i, raw_step) in raw_steps.iter().enumerate() {
        let key = format!("steps[{i}]");
        let built = step(diag, raw_step, &key, true, &mut scope, &captured_by);
        if let Some(id) = &raw_step.get_ref().id {
            match step_spans.get(id.get_ref()) {
                Some(first) => {
                    let (line, _) = diag.source().line_col(first.start);
                    diag.error(
                        id.span(),
                        format!("{key}.id"),
                        format!(
                            "step id `{}` is used twice (first on line {line})",
                            id.get_ref()
                        ),
                        Some("give every step its own id".into()),
                    );
                }
                None => {
                    step_spans.insert(id.get_ref().clone(), id.span());
                }
            }
        }
        for c in raw_step.get_ref().captured() {
            scope.available.insert(c.0.get_ref().clone());
        }
        scope_after.push(scope.available.clone());
        steps.push(built);
    }
    let base_scope = base_scope.available;
    let step_ids: Vec<String> = raw_steps
        .iter()
        .map(|s| {
            s.get_ref()
                .id
                .as_ref()
                .map_or(String::new(), |i| i.get_ref().clone())
        })
        .collect();

    let rules = rules::rules(
        diag,
        raw.rules.as_deref().unwrap_or_default(),
        &step_ids,
        &scope_after,
        &base_scope,
    );
    let rollbacks = rules::rollbacks(
        diag,
        raw.rollbacks.as_deref().unwrap_or_default(),
        &step_ids,
        &scope_after,
        &base_scope,
        &captured_by,
    );

    let read_back = read_back(diag, raw.read_back.as_ref(), &run_fixed, &captured_by);
    let steps: Option<Vec<Step>> = steps.into_iter().collect();
    let setup: Option<Vec<Step>> = setup.into_iter().collect();
    if let (Some(steps), Some(read_back)) = (&steps, &read_back) {
        let writes = steps.iter().any(|s| s.history.is_some());
        match (writes, read_back.is_some()) {
            (true, false) => diag.missing(
                0..0,
                "read_back",
                "add [read_back] with the request that reads a collection back (path = \"/…/{{key}}\") \
                 and elements = \"/pointer/to/the/array\"",
            ),
            (false, true) => {
                if let Some(r) = &raw.read_back {
                    diag.error(
                        r.span(),
                        "read_back",
                        "nothing writes to a history for [read_back] to read",
                        Some("add history = { key = \"…\", element = \"…\" } to the steps that write".into()),
                    );
                }
            }
            _ => {}
        }
    }
    if diag.has_errors() {
        return None;
    }
    Some(Procedure {
        name: name?,
        description: raw.description.map(Spanned::into_inner).unwrap_or_default(),
        source: diag.source().name.clone(),
        variables,
        setup: setup?,
        run_setup: run_setup?,
        run_teardown: run_teardown?,
        steps: steps?,
        rules: rules?,
        rollbacks: rollbacks?,
        read_back: read_back?,
    })
}

/// Most times one `[[run_setup]]` step may be sent.
const MAX_REPEAT: i64 = 10_000;

/// `[[run_setup]]` and `[[run_teardown]]`: the requests the run sends once, before and after the
/// load. What the setup captures joins `scope`; a repeated step's captures are pools, which a
/// teardown step can go through with `for_each`.
fn run_steps(
    diag: &mut Diagnostics<'_>,
    raw: &RawProcedure,
    scope: &mut Scope,
) -> (Option<Vec<RunStep>>, Option<Vec<RunStep>>, BTreeSet<String>) {
    let mut run_scope = Scope {
        available: RUN_VARIABLES.iter().map(|s| s.to_string()).collect(),
    };
    let mut pools = BTreeSet::new();
    let mut setup = Some(Vec::new());
    for (i, raw_step) in raw.run_setup.iter().flatten().enumerate() {
        let key = format!("run_setup[{i}]");
        let r = raw_step.get_ref();
        let built = run_step(diag, raw_step, &key, &mut run_scope);
        let repeat = match &r.repeat {
            Some(n) if !(1..=MAX_REPEAT).contains(n.get_ref()) => {
                diag.error(
                    n.span(),
                    format!("{key}.repeat"),
                    format!(
                        "repeat must be between 1 and {MAX_REPEAT}, not {}",
                        n.get_ref()
                    ),
                    Some("repeat is how many times the request is sent, e.g. repeat = 5".into()),
                );
                None
            }
            Some(n) => Some(Some(*n.get_ref() as u32)),
            None => Some(None),
        };
        for (var, _) in r.captured() {
            let var = var.get_ref().clone();
            if r.repeat.is_some() {
                pools.insert(var.clone());
            } else {
                run_scope.available.insert(var.clone());
            }
            scope.available.insert(var);
        }
        match (built, repeat, setup.as_mut()) {
            (Some(step), Some(repeat), Some(out)) => out.push(RunStep {
                step,
                repeat,
                for_each: None,
            }),
            _ => setup = None,
        }
    }
    let mut teardown = Some(Vec::new());
    for (i, raw_step) in raw.run_teardown.iter().flatten().enumerate() {
        let key = format!("run_teardown[{i}]");
        // Pools too, so that one used without for_each is told as such below.
        let mut step_scope = Scope {
            available: run_scope.available.union(&pools).cloned().collect(),
        };
        let for_each = match &raw_step.get_ref().for_each {
            None => Some(None),
            Some(name) if pools.contains(name.get_ref()) => {
                step_scope.available.insert(name.get_ref().clone());
                Some(Some(name.get_ref().clone()))
            }
            Some(name) => {
                let pools: Vec<&str> = pools.iter().map(String::as_str).collect();
                diag.error(
                    name.span(),
                    format!("{key}.for_each"),
                    format!(
                        "`{}` is not a pool of [[run_setup]] (a capture of a step with repeat)",
                        name.get_ref()
                    ),
                    Some(if pools.is_empty() {
                        "give the run_setup step that captures it repeat = N".into()
                    } else {
                        format!("the pools are: {}", pools.join(", "))
                    }),
                );
                None
            }
        };
        let built = run_step(diag, raw_step, &key, &mut step_scope).filter(|step| {
            let mut used = BTreeSet::new();
            step.request.variables(&mut used);
            // A for_each that names no pool has been reported already.
            let Some(wanted) = for_each.as_ref().map(|f| f.as_deref()) else {
                return true;
            };
            let stray: Vec<&String> = used
                .intersection(&pools)
                .filter(|p| Some(p.as_str()) != wanted)
                .collect();
            for pool in &stray {
                diag.error(
                    raw_step.span(),
                    key.clone(),
                    format!(
                        "`{pool}` holds one value per request of a repeated [[run_setup]] step, so this request needs to go through them"
                    ),
                    Some(format!("add for_each = \"{pool}\"")),
                );
            }
            stray.is_empty()
        });
        match (built, for_each, teardown.as_mut()) {
            (Some(step), Some(for_each), Some(out)) => out.push(RunStep {
                step,
                repeat: None,
                for_each,
            }),
            _ => teardown = None,
        }
    }
    let fixed = run_scope
        .available
        .into_iter()
        .filter(|v| !RUN_VARIABLES.contains(&v.as_str()))
        .collect();
    (setup, teardown, fixed)
}

/// One request of the run's own: a step without what only the load's steps can have.
fn run_step(
    diag: &mut Diagnostics<'_>,
    raw: &Spanned<RawStep>,
    key: &str,
    scope: &mut Scope,
) -> Option<Step> {
    let r = raw.get_ref();
    let load_only = [
        ("ack", r.ack.as_ref().map(Spanned::span)),
        ("history", r.history.as_ref().map(Spanned::span)),
        ("irreversible", r.irreversible.as_ref().map(Spanned::span)),
        (
            "record",
            r.record
                .as_ref()
                .and_then(|t| t.keys().next())
                .map(Spanned::span),
        ),
    ];
    let mut ok = true;
    for (field, span) in load_only {
        if let Some(span) = span {
            ok = false;
            diag.error(
                span,
                format!("{key}.{field}"),
                format!("`{field}` means something for the load's steps only, not for a request the run sends once"),
                Some(format!("remove `{field}` here, or make the request a [[steps]] step")),
            );
        }
    }
    let built = step(diag, raw, key, false, scope, &BTreeMap::new());
    built.filter(|_| ok).map(|mut s| {
        if s.id.is_empty() {
            s.id = key.to_string();
        }
        s
    })
}

/// `[read_back]`: its request may use `{{key}}` (the collection), `run_id`, `seed` and the single
/// values the run's setup captured (`run_fixed`: a token, say).
fn read_back(
    diag: &mut Diagnostics<'_>,
    raw: Option<&Spanned<RawReadBack>>,
    run_fixed: &BTreeSet<String>,
    captured_by: &BTreeMap<String, (usize, String)>,
) -> Option<Option<ReadBack>> {
    let Some(raw) = raw else {
        return Some(None);
    };
    let r = raw.get_ref();
    let mut scope = Scope {
        available: ["key", "run_id", "seed"].map(str::to_string).into(),
    };
    scope.available.extend(run_fixed.iter().cloned());
    let request = step::request(
        diag,
        step::RequestParts {
            method: r.method.as_ref(),
            path: r.path.as_ref(),
            url: r.url.as_ref(),
            headers: r.headers.as_ref(),
            body: None,
        },
        raw.span(),
        "read_back",
        &scope,
        captured_by,
    );
    let elements = match &r.elements {
        Some(p) => check::json_pointer(diag, p, "read_back.elements").then(|| p.get_ref().clone()),
        None => {
            diag.missing(
                raw.span(),
                "read_back.elements",
                "add elements = \"/items\", a JSON pointer to the array the collection is",
            );
            None
        }
    };
    let element = match &r.element {
        Some(p) => check::json_pointer(diag, p, "read_back.element").then(|| p.get_ref().clone()),
        None => Some(String::new()),
    };
    Some(Some(ReadBack {
        request: request?,
        elements: elements?,
        element: element?,
    }))
}

/// Which variables have a value at a point of the procedure.
pub struct Scope {
    pub available: BTreeSet<String>,
}

impl Scope {
    pub fn new() -> Self {
        Self {
            available: BUILTIN_VARIABLES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl Default for Scope {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads a `[variables]` table (of a procedure, or a scenario's `[target.variables]` overrides, with
/// `prefix` naming the table in messages). Values may use what `scope` holds (the built-ins, the run setup's captures).
pub fn variables(
    diag: &mut Diagnostics<'_>,
    raw: Option<&BTreeMap<Spanned<String>, Spanned<toml::Value>>>,
    scope: &mut Scope,
    prefix: &str,
) -> Vec<Variable> {
    let mut out = Vec::new();
    // What the values may use: what was available before the table (built-ins, the run's captures).
    let builtins = Scope {
        available: scope.available.clone(),
    };
    let mut entries: Vec<_> = raw.into_iter().flatten().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (name, value) in entries {
        let key = format!("{prefix}.{}", name.get_ref());
        if BUILTIN_VARIABLES.contains(&name.get_ref().as_str()) {
            diag.error(
                name.span(),
                &key,
                format!(
                    "`{}` is a built-in variable and cannot be redefined",
                    name.get_ref()
                ),
                Some(format!(
                    "choose another name; built-ins are {}",
                    BUILTIN_VARIABLES.join(", ")
                )),
            );
            continue;
        }
        let parsed = match value.get_ref() {
            toml::Value::String(s) => {
                template(diag, s, value.span(), &key, &builtins, &BTreeMap::new())
                    .map(VariableValue::Template)
            }
            toml::Value::Table(t)
                if t.len() == 1 && t.get("one_of").is_some_and(toml::Value::is_array) =>
            {
                let items = t["one_of"].as_array().cloned().unwrap_or_default();
                let mut choices = Vec::new();
                for item in &items {
                    match item.as_str() {
                        Some(s) => {
                            if let Some(t) =
                                template(diag, s, value.span(), &key, &builtins, &BTreeMap::new())
                            {
                                choices.push(t);
                            }
                        }
                        None => diag.error(
                            value.span(),
                            &key,
                            "every choice in one_of must be a string",
                            Some("quote the values, e.g. one_of = [\"res-1\", \"res-2\"]".into()),
                        ),
                    }
                }
                if items.is_empty() {
                    diag.error(
                        value.span(),
                        &key,
                        "one_of is empty",
                        Some("list at least one choice".into()),
                    );
                }
                Some(VariableValue::OneOf(choices))
            }
            toml::Value::Table(t) if t.len() == 1 && t.contains_key("pad") => {
                match t["pad"].as_str().map(crate::config::units::parse_size) {
                    Some(Ok(n)) if n <= MAX_PAD => Some(VariableValue::Pad(n as usize)),
                    Some(Ok(n)) => {
                        diag.error(
                            value.span(),
                            &key,
                            format!("{n} bytes of padding is more than the {MAX_PAD} a request may carry"),
                            None,
                        );
                        None
                    }
                    Some(Err(e)) => {
                        diag.error(value.span(), &key, e.message, Some(e.hint));
                        None
                    }
                    None => {
                        diag.error(
                            value.span(),
                            &key,
                            "pad is a size",
                            Some("e.g. payload = { pad = \"64KiB\" }".into()),
                        );
                        None
                    }
                }
            }
            _ => {
                diag.error(
                    value.span(),
                    &key,
                    "a variable is a string, { one_of = [ … ] } or { pad = \"SIZE\" }",
                    Some("e.g. agent = \"agent-{{iteration}}\", resource = { one_of = [\"r1\", \"r2\"] } or payload = { pad = \"64KiB\" }".into()),
                );
                None
            }
        };
        // Declared, even if wrongly: its uses are not mistakes of their own.
        scope.available.insert(name.get_ref().clone());
        if let Some(value) = parsed {
            out.push(Variable {
                name: name.get_ref().clone(),
                value,
            });
        }
    }
    out
}

/// Parses a template and checks that every variable it uses has a value in `scope`.
pub(super) fn template(
    diag: &mut Diagnostics<'_>,
    text: &str,
    span: Range<usize>,
    key: &str,
    scope: &Scope,
    captured_by: &BTreeMap<String, (usize, String)>,
) -> Option<Template> {
    match Template::parse(text) {
        Ok(t) => {
            let used: Vec<String> = t.variables().map(str::to_string).collect();
            check_variables(diag, used, span, key, scope, captured_by);
            Some(t)
        }
        Err(message) => {
            use crate::config::template::TemplateError;
            // An environment variable's message says how to mend it.
            let hint = (!matches!(
                message,
                TemplateError::MissingEnv { .. } | TemplateError::BadEnvName { .. }
            ))
            .then(|| "write variables as {{name}}".to_string());
            diag.error(span, key, message.to_string(), hint);
            None
        }
    }
}

pub(super) fn check_variables(
    diag: &mut Diagnostics<'_>,
    used: impl IntoIterator<Item = String>,
    span: Range<usize>,
    key: &str,
    scope: &Scope,
    captured_by: &BTreeMap<String, (usize, String)>,
) {
    for var in used {
        if scope.available.contains(&var) {
            continue;
        }
        let hint = match captured_by.get(&var) {
            Some((i, id)) => format!(
                "it is captured by steps[{i}] (`{id}`), which runs later; use it after that step"
            ),
            None => match suggest::nearest(&var, scope.available.iter().map(String::as_str)) {
                Some(n) => format!("did you mean `{n}`?"),
                None => "declare it under [variables] or capture it in an earlier step".to_string(),
            },
        };
        diag.error(
            span.clone(),
            key,
            format!("variable `{var}` has no value here"),
            Some(hint),
        );
    }
}
