//! `harness validate NAME_OR_FILE...`: reads each scenario and the procedure it names, and prints `ok`
//! or every problem found, each as `file:line:col: key: what is wrong — how to fix it`.

use std::path::Path;

use crate::config::ConfigError;
use crate::scenario::Library;

use super::exit;

pub fn run(dir: Option<&Path>, names: &[String]) -> anyhow::Result<u8> {
    let library = Library::open(dir)?;
    let mut code = exit::OK;
    for name in names {
        let label = if names.len() > 1 {
            format!("{name}: ")
        } else {
            String::new()
        };
        match library.load(name) {
            Ok(_) => println!("{label}ok"),
            Err(ConfigError::Invalid(problems)) => {
                code = exit::INVALID;
                eprintln!("{problems}");
                eprintln!("{label}{} problem(s)", problems.len());
            }
            Err(other) => {
                code = exit::INVALID;
                eprintln!("error: {label}{other}");
            }
        }
    }
    Ok(code)
}
