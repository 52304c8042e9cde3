//! The scenario file as written: serde structs mirroring the TOML, every field optional and spanned,
//! so that the second stage ([`super::validate`]) can say where a value is wrong or what is missing.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::model::{Embedded, FaultKind, Suite, TargetKind};
use crate::procedure::raw::RawStep;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: Option<Spanned<String>>,
    pub description: Option<Spanned<String>>,
    pub suite: Option<Spanned<Suite>>,
    pub seed: Option<Spanned<i64>>,
    pub timeout: Option<Spanned<String>>,
    pub iteration_timeout: Option<Spanned<String>>,
    pub allow_remote: Option<Spanned<bool>>,
    pub target: Option<Spanned<RawTarget>>,
    pub load: Option<Spanned<RawLoad>>,
    pub faults: Option<Spanned<RawFaults>>,
    pub thresholds: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub kind: Option<Spanned<TargetKind>>,
    pub url: Option<Spanned<String>>,
    pub embedded: Option<Spanned<Embedded>>,
    pub procedure: Option<Spanned<String>>,
    pub variables: Option<BTreeMap<Spanned<String>, Spanned<toml::Value>>>,
    pub request: Option<Spanned<RawStep>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawLoadModel {
    Closed,
    Open,
    Stepped,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLoad {
    pub model: Option<Spanned<RawLoadModel>>,
    // closed
    pub iterations: Option<Spanned<i64>>,
    pub concurrency: Option<Spanned<i64>>,
    // open (also uses iterations)
    pub rate: Option<Spanned<String>>,
    pub duration: Option<Spanned<String>>,
    pub max_in_flight: Option<Spanned<i64>>,
    // stepped: explicit stages, or a base rate multiplied by the stress factor each stage
    pub stages: Option<Vec<Spanned<RawStage>>>,
    pub base_rate: Option<Spanned<String>>,
    pub stress_factor: Option<Spanned<f64>>,
    pub stage_duration: Option<Spanned<String>>,
    pub max_stages: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    pub rate: Option<Spanned<String>>,
    pub duration: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFaults {
    pub failure_rate: Option<Spanned<f64>>,
    pub kinds: Option<Spanned<Vec<Spanned<FaultKind>>>>,
    pub latency: Option<Spanned<String>>,
    pub server: Option<Spanned<RawServerChaos>>,
}

/// Chaos the target itself applies, set through its `/admin/chaos` route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerChaos {
    pub error_rate: Option<Spanned<f64>>,
    pub routes: Option<BTreeMap<Spanned<String>, Spanned<f64>>>,
    pub latency: Option<Spanned<String>>,
    pub jitter: Option<Spanned<String>>,
    pub down_after: Option<Spanned<String>>,
    pub down_for: Option<Spanned<String>>,
}
