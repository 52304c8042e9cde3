//! Named configuration files: the ones built into the binary, overridden or extended by `*.toml` files
//! in directories the user points at. A name is the file's stem (`RELIABILITY_STANDARD` for
//! `RELIABILITY_STANDARD.toml`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{ConfigError, Source, suggest};

/// Where a named file's text comes from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// Compiled into the binary; `file` is its path in the repository, used in messages.
    Builtin {
        file: &'static str,
        text: &'static str,
    },
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub origin: Origin,
}

impl Entry {
    /// Reads the entry's text.
    pub fn source(&self) -> Result<Source, ConfigError> {
        match &self.origin {
            Origin::Builtin { file, text } => Ok(Source::new(*file, *text)),
            Origin::File(path) => read_source(path),
        }
    }

    pub fn is_builtin(&self) -> bool {
        matches!(self.origin, Origin::Builtin { .. })
    }
}

/// Reads a file into a [`Source`] named by its path as given.
pub fn read_source(path: &Path) -> Result<Source, ConfigError> {
    let bytes = std::fs::read(path).map_err(|cause| ConfigError::Read {
        path: path.to_path_buf(),
        cause,
    })?;
    let file = path.display().to_string();
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Source::new(file, text)),
        Err(e) => Err(ConfigError::Invalid(super::Problems(vec![not_utf8(
            file,
            e.as_bytes(),
            e.utf8_error().valid_up_to(),
        )]))),
    }
}

/// Where the first byte that is not UTF-8 is, as a problem with its line and column.
fn not_utf8(file: String, bytes: &[u8], at: usize) -> super::Problem {
    let before = &bytes[..at];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    // The part of the line before the bad byte is valid UTF-8: count its characters.
    let col = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    super::Problem {
        file,
        line,
        col,
        key: String::new(),
        message: format!("byte 0x{:02x} is not UTF-8", bytes[at]),
        hint: Some("scenario and procedure files are UTF-8 text; save the file as UTF-8".into()),
    }
}

/// Every name known for one kind of file (scenarios, or procedures).
#[derive(Debug, Clone)]
pub struct Catalog {
    kind: &'static str,
    entries: BTreeMap<String, Entry>,
}

impl Catalog {
    /// Built-in files first, then each directory in turn; a later file of the same name replaces an
    /// earlier one. A directory that does not exist is skipped.
    pub fn new(
        kind: &'static str,
        builtins: &[(&'static str, &'static str)],
        dirs: &[PathBuf],
    ) -> Result<Self, ConfigError> {
        let mut entries = BTreeMap::new();
        for (file, text) in builtins {
            let name = stem(Path::new(file));
            entries.insert(
                name.clone(),
                Entry {
                    name,
                    origin: Origin::Builtin { file, text },
                },
            );
        }
        for dir in dirs {
            let listing = match std::fs::read_dir(dir) {
                Ok(listing) => listing,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(ConfigError::Read {
                        path: dir.clone(),
                        cause: source,
                    });
                }
            };
            let mut paths: Vec<PathBuf> = listing
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
                .collect();
            paths.sort();
            for path in paths {
                let name = stem(&path);
                entries.insert(
                    name.clone(),
                    Entry {
                        name,
                        origin: Origin::File(path),
                    },
                );
            }
        }
        Ok(Self { kind, entries })
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// Looks a name up, or says which names exist.
    pub fn find(&self, name: &str) -> Result<&Entry, ConfigError> {
        self.get(name).ok_or_else(|| ConfigError::UnknownName {
            kind: self.kind,
            name: name.to_string(),
            hint: {
                let names = self.entries.keys().map(String::as_str);
                match suggest::nearest(name, names.clone()) {
                    Some(n) => format!("did you mean `{n}`?"),
                    None => format!("known names: {}", names.collect::<Vec<_>>().join(", ")),
                }
            },
        })
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> + Clone {
        self.entries.keys().map(String::as_str)
    }
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_override_builtins_and_unknown_names_get_suggestions() {
        let dir = std::env::temp_dir().join(format!("harness-catalog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ALPHA.toml"), "from = 'file'").unwrap();
        std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
        let cat = Catalog::new(
            "scenario",
            &[
                ("scenarios/ALPHA.toml", "from = 'builtin'"),
                ("scenarios/BETA.toml", ""),
            ],
            &[dir.clone(), dir.join("missing")],
        )
        .unwrap();
        assert_eq!(cat.names().collect::<Vec<_>>(), ["ALPHA", "BETA"]);
        assert!(!cat.find("ALPHA").unwrap().is_builtin());
        assert_eq!(
            cat.find("ALPHA").unwrap().source().unwrap().text,
            "from = 'file'"
        );
        let err = cat.find("BEAT").unwrap_err().to_string();
        assert_eq!(err, "no scenario named `BEAT` — did you mean `BETA`?");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
