//! `harness list`: every named configuration as a table — name, suite, target, load model and size,
//! number of thresholds, and where it comes from.

use std::path::Path;

use crate::scenario::{Endpoint, Library, Scenario};

use super::exit;

pub fn run(dir: Option<&Path>) -> anyhow::Result<u8> {
    let library = Library::open(dir)?;
    let mut rows = vec![[
        "NAME".to_string(),
        "SUITE".to_string(),
        "TARGET".to_string(),
        "LOAD".to_string(),
        "THRESHOLDS".to_string(),
        "SOURCE".to_string(),
    ]];
    for entry in library.entries() {
        let source = match &entry.origin {
            crate::config::Origin::Builtin { .. } => "built-in".to_string(),
            crate::config::Origin::File(p) => p.display().to_string(),
        };
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
