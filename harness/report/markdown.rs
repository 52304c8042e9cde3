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

/// Text made safe for a Markdown table cell: no pipes, no line breaks, no backticks breaking out of
/// code spans.
pub fn cell(s: &str) -> String {
    s.replace('|', "\\|")
        .replace(['\n', '\r'], " ")
        .replace('`', "'")
}

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
