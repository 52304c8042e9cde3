//! Writing `result.json` so that a reader never sees half a file: the text goes to a temporary file
//! in the same folder, which then replaces the old one. And reading one back.

use std::path::{Path, PathBuf};

use super::RunResult;

/// Why a result file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ResultFileError {
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is result schema version {found}; this harness reads up to version {} — read it with the harness that wrote it, or a newer one",
        path.display(),
        super::SCHEMA_VERSION
    )]
    NewerSchema { path: PathBuf, found: u64 },
    #[error("{} is not a harness result: {source}", path.display())]
    NotAResult {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Writes `result` as pretty JSON to `path`, atomically.
pub fn write_json(result: &RunResult, path: &Path) -> Result<(), ResultFileError> {
    let write = || -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(result).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text + "\n")?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|source| ResultFileError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a `result.json`.
pub fn read_json(path: &Path) -> Result<RunResult, ResultFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ResultFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let not_a_result = |source| ResultFileError::NotAResult {
        path: path.to_path_buf(),
        source,
    };
    // The version first: a newer harness's result may not parse as this one's, and saying so beats
    // a complaint about a field.
    let value: serde_json::Value = serde_json::from_str(&text).map_err(not_a_result)?;
    if let Some(found) = value
        .get("schema_version")
        .and_then(serde_json::Value::as_u64)
        && found > u64::from(super::SCHEMA_VERSION)
    {
        return Err(ResultFileError::NewerSchema {
            path: path.to_path_buf(),
            found,
        });
    }
    serde_json::from_value(value).map_err(not_a_result)
}
