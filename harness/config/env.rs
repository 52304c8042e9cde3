//! Values from the environment: `{{env.NAME}}` (or `{{env.NAME:-fallback}}`) in any template is
//! replaced by the variable's value when the file is read, so a token comes from CI's secrets instead
//! of the scenario. `--env-file F` adds `NAME=value` lines for local runs; a variable set in the real
//! environment wins over the file, so CI can override a checked-in default.
//!
//! Every value substituted is remembered, so that redaction can mask it in every output
//! ([`crate::redact`]): what came from the environment is treated as a secret.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The prefix of a variable read from the environment.
pub const PREFIX: &str = "env.";

/// Values shorter than this are not masked: masking `1` or `on` would mangle every number in a
/// report, and a secret that short is no secret.
pub const MIN_SECRET_LEN: usize = 4;

static FILE: OnceLock<BTreeMap<String, String>> = OnceLock::new();
static USED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Why an env file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum EnvFileError {
    #[error("cannot read the env file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: expected NAME=value, found `{text}`", path.display())]
    Malformed {
        path: PathBuf,
        line: usize,
        text: String,
    },
    #[error("only one --env-file is read per process")]
    AlreadyLoaded,
}

/// Reads `path` (`NAME=value` lines; `#` comments, blank lines, an optional `export `, and values in
/// single or double quotes) as the process's env file.
pub fn load_file(path: &Path) -> Result<(), EnvFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| EnvFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let vars = parse_file(&text).map_err(|(line, text)| EnvFileError::Malformed {
        path: path.to_path_buf(),
        line,
        text,
    })?;
    FILE.set(vars).map_err(|_| EnvFileError::AlreadyLoaded)
}

/// The variables of an env file; the error is the line number and text of a malformed line.
pub fn parse_file(text: &str) -> Result<BTreeMap<String, String>, (usize, String)> {
    let mut vars = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            return Err((i + 1, line.to_string()));
        };
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err((i + 1, line.to_string()));
        }
        let value = value.trim();
        let value = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
            .unwrap_or(value);
        vars.insert(name.to_string(), value.to_string());
    }
    Ok(vars)
}

/// The value of `name`: the process's environment, else the env file.
pub fn get(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .or_else(|| FILE.get().and_then(|f| f.get(name).cloned()))
}

/// Resolves the inside of a `{{env.NAME}}` or `{{env.NAME:-fallback}}` placeholder (without the
/// `env.`): the value, remembered as a secret, or the fallback (which is not); the error is the name.
pub fn resolve(spec: &str) -> Result<String, String> {
    let (name, fallback) = match spec.split_once(":-") {
        Some((n, f)) => (n.trim(), Some(f)),
        None => (spec.trim(), None),
    };
    match get(name) {
        Some(value) => {
            remember(&value);
            Ok(value)
        }
        None => fallback.map(str::to_string).ok_or_else(|| name.to_string()),
    }
}

/// Whether `name` can name an environment variable.
pub fn is_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn remember(value: &str) {
    if value.len() >= MIN_SECRET_LEN {
        USED.lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(value.to_string());
    }
}

/// Every value substituted from the environment so far in this process.
pub fn secrets() -> Vec<String> {
    USED.lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_read_as_shells_write_them() {
        let vars = parse_file(
            "# local secrets\nTOKEN=abc123\nexport API_KEY = \"k e y\"\n\nEMPTY=\nQ='x=y'\n",
        )
        .unwrap();
        assert_eq!(vars["TOKEN"], "abc123");
        assert_eq!(vars["API_KEY"], "k e y");
        assert_eq!(vars["EMPTY"], "");
        assert_eq!(vars["Q"], "x=y");
        assert_eq!(
            parse_file("A=1\nnot a line\n"),
            Err((2, "not a line".into()))
        );
        assert_eq!(parse_file("BAD-NAME=1\n").unwrap_err().0, 1);
    }

    #[test]
    fn a_missing_variable_is_named_unless_it_has_a_fallback() {
        // PATH is set wherever tests run; this name is not.
        assert!(resolve("PATH").is_ok());
        let missing = "HARNESS_TEST_SURELY_UNSET_VARIABLE";
        assert_eq!(resolve(missing), Err(missing.to_string()));
        assert_eq!(
            resolve(&format!("{missing}:-fallback")).unwrap(),
            "fallback"
        );
        assert_eq!(resolve(&format!("{missing}:-")).unwrap(), "");
        assert!(is_name("TOKEN_2") && !is_name("2X") && !is_name("A-B"));
    }
}
