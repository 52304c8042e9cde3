//! `harness report RESULT.json|DIR`: renders the reports again from a saved result — all three next
//! to it by default, or just the ones named with `--html`, `--junit`, `--markdown`. When the folder
//! holds a journal (the run was killed before it wrote its final result), the result is first
//! rebuilt from the journal and written as result.json.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::exit;
use crate::journal;
use crate::report::{self, html::Html, junit::Junit, markdown::Markdown};
use crate::result::write::{read_json, write_json};

pub fn run(
    result: &Path,
    html: Option<PathBuf>,
    junit: Option<PathBuf>,
    markdown: Option<PathBuf>,
) -> anyhow::Result<u8> {
    let (result, dir) = if result.is_dir() {
        (result.join("result.json"), result.to_path_buf())
    } else {
        let dir = result
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        (result.to_path_buf(), dir)
    };
    let result = result.as_path();
    if dir.join(journal::FILE).exists() {
        let recovered = journal::recover(&dir)?;
        write_json(&recovered.result, result)?;
        eprintln!(
            "rebuilt {} from {} ({} lines{}): {} iterations",
            result.display(),
            dir.join(journal::FILE).display(),
            recovered.lines,
            if recovered.torn {
                ", the last one cut off"
            } else {
                ""
            },
            recovered.result.totals.iterations
        );
        std::fs::remove_file(dir.join(journal::FILE))
            .with_context(|| format!("removing {}", dir.join(journal::FILE).display()))?;
    }
    let r = read_json(result)?;
    let written = if html.is_none() && junit.is_none() && markdown.is_none() {
        let dir = result
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        report::write_all(&r, dir)?
    } else {
        let mut out = Vec::new();
        for (path, exporter) in [
            (html, &Html as &dyn report::Exporter),
            (junit, &Junit as &dyn report::Exporter),
            (markdown, &Markdown as &dyn report::Exporter),
        ] {
            if let Some(path) = path {
                report::write(exporter, &r, &path)
                    .with_context(|| format!("writing {}", path.display()))?;
                out.push(path);
            }
        }
        out
    };
    for p in written {
        println!("{}", p.display());
    }
    Ok(exit::OK)
}
