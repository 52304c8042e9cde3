//! The procedure file as written: serde structs mirroring the TOML, with every field optional and
//! spanned so that the second stage ([`super::validate`]) can say where a value is wrong or missing.
//! No checks here beyond the shape of the document.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::model::{AckKind, Backoff, Severity};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProcedure {
    pub name: Option<Spanned<String>>,
    pub description: Option<Spanned<String>>,
    pub variables: Option<BTreeMap<Spanned<String>, Spanned<toml::Value>>>,
    pub setup: Option<Vec<Spanned<RawStep>>>,
    /// `[[run_setup]]`: requests run once before the load, whose captures every iteration gets.
    pub run_setup: Option<Vec<Spanned<RawStep>>>,
    /// `[[run_teardown]]`: requests run once after the load, with what `run_setup` captured.
    pub run_teardown: Option<Vec<Spanned<RawStep>>>,
    pub steps: Option<Vec<Spanned<RawStep>>>,
    pub rules: Option<Vec<Spanned<RawRule>>>,
    pub rollbacks: Option<Vec<Spanned<RawRollback>>>,
    pub read_back: Option<Spanned<RawReadBack>>,
}

/// `[read_back]`: a request like a step's (it may use `{{key}}`), `elements` (a JSON pointer to the
/// array) and `element` (a pointer into each item).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReadBack {
    pub method: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub url: Option<Spanned<String>>,
    pub headers: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    pub elements: Option<Spanned<String>>,
    pub element: Option<Spanned<String>>,
}

/// `history = { key = "…", element = "…" }` on a step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHistory {
    pub key: Option<Spanned<String>>,
    pub element: Option<Spanned<String>>,
}

/// A step: an HTTP request and what to take from its response. Also the shape of a rollback step and
/// of a scenario's `[target.request]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub id: Option<Spanned<String>>,
    pub name: Option<Spanned<String>>,
    pub method: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub url: Option<Spanned<String>>,
    pub headers: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    pub body: Option<Spanned<toml::Value>>,
    pub expect_status: Option<Spanned<toml::Value>>,
    pub timeout: Option<Spanned<String>>,
    pub retries: Option<Spanned<i64>>,
    pub retry: Option<Spanned<RawRetry>>,
    pub capture: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    pub capture_header: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    pub record: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    pub ack: Option<Spanned<AckKind>>,
    pub irreversible: Option<Spanned<bool>>,
    pub history: Option<Spanned<RawHistory>>,
    /// `[[run_setup]]` only: send the request this many times (`{{index}}` counts from 0); what
    /// it captures becomes a pool each iteration draws one value from.
    pub repeat: Option<Spanned<i64>>,
    /// `[[run_teardown]]` only: send the request once per value of this `run_setup` pool.
    pub for_each: Option<Spanned<String>>,
}

/// How retries wait: `{ backoff = "exponential", delay = "50ms", max_delay = "1s",
/// honour_retry_after = true, max_retry_after = "10s", budget = "10%" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub backoff: Option<Spanned<Backoff>>,
    pub delay: Option<Spanned<String>>,
    pub max_delay: Option<Spanned<String>>,
    pub honour_retry_after: Option<Spanned<bool>>,
    pub max_retry_after: Option<Spanned<String>>,
    pub budget: Option<Spanned<String>>,
}

impl RawStep {
    /// What the step captures, from its body and from its headers.
    pub fn captured(&self) -> impl Iterator<Item = (&Spanned<String>, &Spanned<String>)> {
        self.capture
            .iter()
            .flatten()
            .chain(self.capture_header.iter().flatten())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub id: Option<Spanned<String>>,
    pub name: Option<Spanned<String>>,
    pub severity: Option<Spanned<Severity>>,
    pub step: Option<Spanned<String>>,
    pub check: Option<Spanned<RawCheck>>,
    pub description: Option<Spanned<String>>,
}

/// One condition on a response. Exactly one of: `status`; `pointer` with `equals`, `one_of`,
/// `matches`, `contains`, `exists`, `min`/`max` or `length`/`min_length`/`max_length`; `header` with
/// `equals`, `matches` or `exists`; `max_time`. `not = true` turns any of them around.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    pub status: Option<Spanned<toml::Value>>,
    pub pointer: Option<Spanned<String>>,
    pub header: Option<Spanned<String>>,
    pub equals: Option<Spanned<toml::Value>>,
    pub one_of: Option<Spanned<Vec<toml::Value>>>,
    pub matches: Option<Spanned<String>>,
    pub contains: Option<Spanned<toml::Value>>,
    pub exists: Option<Spanned<bool>>,
    pub min: Option<Spanned<f64>>,
    pub max: Option<Spanned<f64>>,
    pub length: Option<Spanned<u64>>,
    pub min_length: Option<Spanned<u64>>,
    pub max_length: Option<Spanned<u64>>,
    pub max_time: Option<Spanned<String>>,
    pub not: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRollback {
    pub id: Option<Spanned<String>>,
    pub name: Option<Spanned<String>>,
    pub undoes: Option<Spanned<Vec<Spanned<String>>>>,
    pub applies_to: Option<Spanned<Vec<Spanned<String>>>>,
    pub steps: Option<Vec<Spanned<RawStep>>>,
    pub verify: Option<Vec<Spanned<RawVerify>>>,
}

/// A read of the target's state after a rollback, and the checks its response must pass.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerify {
    pub name: Option<Spanned<String>>,
    pub method: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub url: Option<Spanned<String>>,
    pub headers: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    pub timeout: Option<Spanned<String>>,
    pub checks: Option<Vec<Spanned<RawCheck>>>,
}
