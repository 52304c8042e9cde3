//! The Markdown summary: a compact table fit for a CI job summary or a pull-request comment.

use minijinja::value::Serde;
use serde::Serialize;

use super::view::ReportView;
use super::{Exporter, ReportError};
use crate::result::{RunResult, Status, format_value};

pub struct Markdown;

#[derive(Debug, Serialize)]
struct Totals {
    iterations: u64,
    succeeded: u64,
    failed: u64,
    success: String,
    throughput: String,
}

/// Text made inert in Markdown (GitHub's included): HTML cannot open a tag or an entity, emphasis,
/// links, images, headings, strike-through and code spans cannot start, a table cell cannot end, and
/// a line cannot break. Control and bidirectional-override characters are dropped. Every value a
/// Markdown template prints goes through this unless it is a code span's content ([`code`]).
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c if is_hidden(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// The content of a code span in a table: nothing in a code span is Markdown or HTML, so only what
/// would end it (a backtick), end the cell (a pipe) or break the line is changed.
pub fn code(s: &str) -> String {
    s.chars()
        .filter(|c| !is_hidden(*c) || matches!(c, '\n' | '\r' | '\t'))
        .map(|c| match c {
            '`' => "'".to_string(),
            '|' => "\\|".to_string(),
            '\n' | '\r' | '\t' => " ".to_string(),
            c => c.to_string(),
        })
        .collect()
}

pub use crate::text::is_hidden;

impl Exporter for Markdown {
    fn file_name(&self) -> &'static str {
        "summary.md"
    }

    fn render(&self, r: &RunResult) -> Result<String, ReportError> {
        let icon = match r.status {
            Status::Passed => "✅",
            Status::Failed => "❌",
            Status::Aborted => "⚠️",
        };
        let totals = Totals {
            iterations: r.totals.iterations,
            succeeded: r.totals.succeeded,
            failed: r.totals.failed,
            success: r
                .metrics
                .success_rate
                .map_or("—".into(), |v| format_value("ratio", v)),
            throughput: r
                .metrics
                .throughput_per_s
                .map_or("—".into(), |v| format_value("rate", v)),
        };
        super::render(
            "summary.md",
            minijinja::context! { r => Serde(ReportView::of(r)), icon => icon, totals => Serde(totals) },
        )
    }
}
