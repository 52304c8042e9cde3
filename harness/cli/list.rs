//! `harness list`: every named configuration as a table — name, suite, target, load model and size,
//! number of thresholds, and where it comes from — or, with `--json`, as a JSON array for scripts.

use std::path::Path;

use crate::scenario::{Endpoint, Library, Scenario};

use super::exit;

pub fn run(dir: Option<&Path>, json: bool) -> anyhow::Result<u8> {
    let library = Library::open(dir)?;
    if json {
        let items: Vec<serde_json::Value> = library
            .entries()
            .map(|entry| {
                let source = source_of(entry);
                match library.load_entry(entry) {
                    Ok(s) => described(&s, source),
                    Err(e) => serde_json::json!({
                        "name": entry.name,
                        "source": source,
                        "valid": false,
                        "problem": e.to_string(),
                    }),
                }
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(exit::OK);
    }
    let mut rows = vec![[
        "NAME".to_string(),
        "SUITE".to_string(),
        "TARGET".to_string(),
        "LOAD".to_string(),
        "THRESHOLDS".to_string(),
        "SOURCE".to_string(),
    ]];
    for entry in library.entries() {
        let source = source_of(entry);
        rows.push(match library.load_entry(entry) {
            Ok(s) => row(&s, source),
            Err(_) => [
                entry.name.clone(),
                "-".into(),
                format!("invalid: run `harness validate {}`", entry.name),
                "-".into(),
                "-".into(),
                source,
            ],
        });
    }
    print!("{}", table(&rows));
    Ok(exit::OK)
}

/// Where a configuration comes from: `built-in`, or its file.
fn source_of(entry: &crate::config::Entry) -> String {
    match &entry.origin {
        crate::config::Origin::Builtin { .. } => "built-in".to_string(),
        crate::config::Origin::File(p) => p.display().to_string(),
    }
}

fn described(s: &Scenario, source: String) -> serde_json::Value {
    let endpoint = match &s.target.endpoint {
        Endpoint::Url(u) => serde_json::json!({ "url": u.to_string() }),
        Endpoint::Embedded(e) => serde_json::json!({ "embedded": e.as_str() }),
    };
    serde_json::json!({
        "name": s.name,
        "suite": s.suite.to_string(),
        "description": s.description,
        "target": {
            "kind": s.target.kind.as_str(),
            "procedure": s.target.procedure.as_ref().map(|p| p.name.clone()),
            "endpoint": endpoint,
        },
        "load": { "model": s.load.model().to_string(), "summary": s.load.summary() },
        "thresholds": s
            .thresholds
            .iter()
            .map(|t| serde_json::json!({ "metric": t.metric, "condition": t.condition.to_string() }))
            .collect::<Vec<_>>(),
        "source": source,
        "valid": true,
    })
}

fn row(s: &Scenario, source: String) -> [String; 6] {
    let endpoint = match &s.target.endpoint {
        Endpoint::Url(u) => u.to_string(),
        Endpoint::Embedded(_) => "embedded".to_string(),
    };
    let work = s
        .target
        .procedure
        .as_ref()
        .filter(|_| s.target.kind == crate::scenario::TargetKind::Handoff)
        .map(|p| format!(" {}", p.name))
        .unwrap_or_default();
    [
        s.name.clone(),
        s.suite.to_string(),
        format!("{}{work} ({endpoint})", s.target.kind.as_str()),
        format!("{}: {}", s.load.model(), s.load.summary()),
        s.thresholds.len().to_string(),
        source,
    ]
}

/// Left-aligned columns separated by two spaces.
fn table(rows: &[[String; 6]]) -> String {
    let mut widths = [0usize; 6];
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, (cell, w)) in r.iter().zip(widths).enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
