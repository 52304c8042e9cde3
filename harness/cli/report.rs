//! `harness report RESULT.json`: renders the reports again from a saved result — all three next to
//! it by default, or just the ones named with `--html`, `--junit`, `--markdown`.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::exit;
use crate::report::{self, html::Html, junit::Junit, markdown::Markdown};
use crate::result::write::read_json;

pub fn run(
    result: &Path,
    html: Option<PathBuf>,
    junit: Option<PathBuf>,
    markdown: Option<PathBuf>,
) -> anyhow::Result<u8> {
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
