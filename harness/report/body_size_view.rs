//! The body-size probe as the reports show it.

use serde::Serialize;

use super::rows::{Pair, pair};
use crate::result::RunResult;
use crate::result::body_size::BodyOutcome;

#[derive(Debug, Serialize)]
pub struct BodySizeView {
    /// "limit 50000 bytes" or "no limit found".
    pub verdict: String,
    pub facts: Vec<Pair>,
    /// Every body sent: purpose, size, answer, time.
    pub attempts: Vec<[String; 4]>,
    pub note: Option<String>,
}

pub fn body_size(r: &RunResult) -> Option<BodySizeView> {
    let b = r.metrics.body_size.as_ref()?;
    let verdict = match b.found_limit {
        Some(l) => format!("limit {l} bytes"),
        None => "no limit confirmed".into(),
    };
    let mut facts = Vec::new();
    if let Some(d) = b.declared_limit {
        facts.push(pair("declared", format!("{d} bytes")));
    }
    let searched = b.attempts.iter().filter(|a| a.purpose == "search").count();
    if searched > 0 {
        facts.push(pair(
            "search",
            format!(
                "{searched} requests, found {}",
                b.found_limit
                    .map_or("nothing".to_string(), |l| format!("{l} bytes"))
            ),
        ));
    }
    for (purpose, label) in [
        ("at_limit", "at the limit"),
        ("over_limit", "one byte over"),
        ("far_over_limit", "far over"),
    ] {
        if let Some(a) = b.attempts.iter().find(|a| a.purpose == purpose) {
            facts.push(pair(label, format!("{} bytes: {}", a.bytes, answer(a))));
        }
    }
    let attempts = b
        .attempts
        .iter()
        .map(|a| {
            [
                a.purpose.replace('_', " "),
                a.bytes.to_string(),
                answer(a),
                format!("{:.1} ms", a.ms),
            ]
        })
        .collect();
    Some(BodySizeView {
        verdict,
        facts,
        attempts,
        note: b.note.clone(),
    })
}

fn answer(a: &crate::result::body_size::BodyAttempt) -> String {
    match (a.status, a.outcome) {
        (Some(s), o) => format!("{s} ({})", outcome(o)),
        (None, o) => outcome(o).to_string(),
    }
}

fn outcome(o: BodyOutcome) -> &'static str {
    match o {
        BodyOutcome::Accepted => "accepted",
        BodyOutcome::Refused => "refused",
        BodyOutcome::Closed => "connection closed",
        BodyOutcome::Timeout => "no answer in time",
        BodyOutcome::Other => "neither",
    }
}
