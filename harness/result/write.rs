//! Writing `result.json` so that a reader never sees half a file: the text goes to a temporary file
//! in the same folder, which then replaces the old one.

use std::path::Path;

use super::RunResult;

/// Writes `result` as pretty JSON to `path`, atomically.
pub fn write_json(result: &RunResult, path: &Path) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(result).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text + "\n")?;
    std::fs::rename(&tmp, path)
}

/// Reads a `result.json`.
pub fn read_json(path: &Path) -> Result<RunResult, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a harness result: {e}", path.display()))
}
