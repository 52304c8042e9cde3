//! `harness validate NAME_OR_FILE...`: reads each scenario and the procedure it names, and prints `ok`
//! or every problem found, each as `file:line:col: key: what is wrong — how to fix it`; with `--json`,
//! a JSON array of the same (schemas/validate.schema.json). A scenario whose run would hold more
//! memory than the limit is refused here too, with the setting to lower, as `run` refuses it.

use std::path::Path;

use serde_json::{Value, json};

use crate::config::ConfigError;
use crate::scenario::Library;

use super::exit;

pub fn run(
    dir: Option<&Path>,
    names: &[String],
    as_json: bool,
    memory_limit: Option<u64>,
) -> anyhow::Result<u8> {
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
        let too_large = outcome
            .as_ref()
            .ok()
            .and_then(|s| too_large(s, memory_limit));
        if outcome.is_err() || too_large.is_some() {
            code = exit::INVALID;
        }
        if as_json {
            let mut it = item(name, outcome.err());
            if let Some(e) = &too_large {
                it["valid"] = json!(false);
                it["error"] = json!(e.to_string());
            }
            items.push(it);
            continue;
        }
        match (outcome, too_large) {
            (Ok(_), Some(e)) => eprintln!("error: {label}{e}"),
            (Ok(_), None) => println!("{label}ok"),
            (Err(ConfigError::Invalid(problems)), _) => {
                eprintln!("{problems}");
                eprintln!("{label}{} problem(s)", problems.len());
            }
            (Err(other), _) => eprintln!("error: {label}{other}"),
        }
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&items)?);
    }
    Ok(code)
}

/// Why a scenario's run, as planned with nothing given on the command line, would hold more than
/// `limit`. A plan that cannot be made here (it needs what only `run` is given) is not judged.
fn too_large(
    scenario: &crate::scenario::Scenario,
    limit: Option<u64>,
) -> Option<crate::plan::memory::TooLarge> {
    let plan = crate::plan::build(scenario, crate::plan::Overrides::default()).ok()?;
    crate::plan::memory::check(&plan, limit).err()
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
