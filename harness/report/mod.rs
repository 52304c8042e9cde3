//! Reports people read: a self-contained HTML page with charts, JUnit XML for CI test views, and a
//! Markdown summary for job summaries and pull-request comments. Each is a pure [`Exporter`]: a
//! `RunResult` in, the text of one file out. Text comes from template files (`templates/`) filled
//! from a serialisable view model ([`view::ReportView`]); HTML and XML templates escape every value.
//!
//! A report knows nothing of drivers; it reads only the result.

pub mod body_size_view;
pub mod charts;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod rows;
pub mod view;
pub mod ws_view;

use std::path::{Path, PathBuf};

use crate::result::RunResult;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot render {file}: {source}")]
    Render {
        file: &'static str,
        #[source]
        source: minijinja::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Turns a result into the text of one report file.
pub trait Exporter {
    /// The file's usual name in a run's output folder.
    fn file_name(&self) -> &'static str;
    fn render(&self, result: &RunResult) -> Result<String, ReportError>;
}

/// The reports every run writes next to its `result.json`.
pub fn exporters() -> [&'static dyn Exporter; 3] {
    [&html::Html, &junit::Junit, &markdown::Markdown]
}

/// Writes every report into `dir`, returning their paths.
pub fn write_all(result: &RunResult, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    exporters()
        .iter()
        .map(|e| {
            let path = dir.join(e.file_name());
            write(*e, result, &path)?;
            Ok(path)
        })
        .collect()
}

/// Writes one report to `path`.
pub fn write(exporter: &dyn Exporter, result: &RunResult, path: &Path) -> Result<(), ReportError> {
    let text = exporter.render(result)?;
    std::fs::write(path, text).map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// The template environment: every template, auto-escaping for HTML, XML and Markdown, and the
/// Markdown filters `cell` (text) and `code` (a code span's content).
pub(crate) fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    // Files end with a newline, as text files should; templates are set before they are added.
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    // Markdown templates escape every value they print, as HTML and XML ones do; `cell` says so
    // where a value is printed on purpose, and `code` is for what goes inside a code span.
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".md") {
            minijinja::AutoEscape::Custom("markdown".into())
        } else {
            minijinja::default_auto_escape_callback(name)
        }
    });
    for (name, text) in [
        ("report.html", include_str!("templates/report.html")),
        ("junit.xml", include_str!("templates/junit.xml")),
        ("summary.md", include_str!("templates/summary.md")),
        ("compare.html", include_str!("templates/compare.html")),
        ("compare.md", include_str!("templates/compare.md")),
    ] {
        // The templates are part of the binary and are checked by the tests; a broken one is a bug.
        env.add_template(name, text)
            .expect("the built-in templates parse");
    }
    env.add_filter("cell", |s: String| {
        minijinja::Value::from_safe_string(markdown::text(&s))
    });
    env.add_filter("code", |s: String| {
        minijinja::Value::from_safe_string(markdown::code(&s))
    });
    env.set_formatter(escape);
    env
}

/// Escapes the five characters that need it in HTML and XML text and attributes (minijinja's own
/// HTML escaping also turns `/` into `&#x2f;`, which makes URLs in reports hard to read).
fn escape(
    out: &mut minijinja::Output,
    state: &mut minijinja::State,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    if value.is_safe() {
        return minijinja::escape_formatter(out, state, value);
    }
    if matches!(state.auto_escape(), minijinja::AutoEscape::Custom(name) if name == "markdown") {
        let text = if value.is_none() || value.is_undefined() {
            String::new()
        } else {
            value.to_string()
        };
        return out
            .write_str(&markdown::text(&text))
            .map_err(minijinja::Error::from);
    }
    if !matches!(state.auto_escape(), minijinja::AutoEscape::Html) {
        return minijinja::escape_formatter(out, state, value);
    }
    let text = value.to_string();
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    out.write_str(&escaped).map_err(minijinja::Error::from)
}

/// Renders `name` with `ctx`.
pub(crate) fn render(name: &'static str, ctx: minijinja::Value) -> Result<String, ReportError> {
    templates()
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|source| ReportError::Render { file: name, source })
}
