//! `harness validate NAME_OR_FILE...`: reads each scenario and the procedure it names, and prints `ok`
//! or every problem found, each as `file:line:col: key: what is wrong — how to fix it`; with `--json`,
//! a JSON array of the same (schemas/validate.schema.json).

use std::path::Path;

use serde_json::{Value, json};

use crate::config::ConfigError;
use crate::scenario::Library;

use super::exit;

pub fn run(dir: Option<&Path>, names: &[String], as_json: bool) -> anyhow::Result<u8> {
    let library = Library::open(dir)?;
    let mut code = exit::OK;
    let mut items = Vec::new();
    for name in names {
        let label = if names.len() > 1 {
            format!("{name}: ")
        } else {
            String::new()
        };
        let outcome = library.load(name);
        if outcome.is_err() {
            code = exit::INVALID;
        }
        if as_json {
            items.push(item(name, outcome.err()));
            continue;
        }
        match outcome {
            Ok(_) => println!("{label}ok"),
            Err(ConfigError::Invalid(problems)) => {
                eprintln!("{problems}");
                eprintln!("{label}{} problem(s)", problems.len());
            }
            Err(other) => eprintln!("error: {label}{other}"),
        }
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&items)?);
    }
    Ok(code)
}

/// One name's verdict: its problems each with their place, or an error that is not about a place
/// in a file (a name that names nothing, a file that cannot be read).
fn item(name: &str, error: Option<ConfigError>) -> Value {
    match error {
        None => json!({ "name": name, "valid": true, "problems": [] }),
        Some(ConfigError::Invalid(problems)) => json!({
            "name": name,
            "valid": false,
            "problems": problems.iter().map(|p| json!({
                "file": p.file,
                "line": p.line,
                "column": p.col,
                "key": p.key,
                "message": p.message,
                "hint": p.hint,
            })).collect::<Vec<_>>(),
        }),
        Some(other) => json!({
            "name": name,
            "valid": false,
            "problems": [],
            "error": other.to_string(),
        }),
    }
}
