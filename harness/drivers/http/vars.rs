//! The variables of one iteration: the built-ins, the procedure's variables (rendered, or chosen from
//! `one_of` with the iteration's own random stream), and what steps capture as they go.

use std::collections::HashMap;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::config::template::{Lookup, MissingVariable};
use crate::procedure::{Procedure, VariableValue};

#[derive(Debug, Clone, Default)]
pub struct Vars(HashMap<String, Value>);

/// What the run's setup captured: values every iteration has, and pools (a repeated step's
/// captures, one value per request) each iteration draws one value from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fixtures {
    pub fixed: Vec<(String, Value)>,
    pub pools: Vec<(String, Vec<Value>)>,
}

impl Fixtures {
    /// A value for the variable `name`, fixed or pooled, appended (a pool gains one per request).
    pub fn add(&mut self, name: &str, value: Value, pooled: bool) {
        if !pooled {
            match self.fixed.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => *v = value,
                None => self.fixed.push((name.to_string(), value)),
            }
            return;
        }
        match self.pools.iter_mut().find(|(n, _)| n == name) {
            Some((_, values)) => values.push(value),
            None => self.pools.push((name.to_string(), vec![value])),
        }
    }

    pub fn pool(&self, name: &str) -> &[Value] {
        self.pools
            .iter()
            .find(|(n, _)| n == name)
            .map_or(&[], |(_, v)| v.as_slice())
    }
}

impl Lookup for Vars {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
}

/// What the built-in variables are made of.
pub struct Builtins<'a> {
    pub iteration: u64,
    pub worker: u32,
    pub run_id: &'a str,
    pub seed: u64,
    /// Which built-ins some template uses; only those are set (an iteration is on the hot path).
    pub used: &'a Used,
}

/// The built-in variables a procedure uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct Used {
    pub iteration: bool,
    pub worker: bool,
    pub run_id: bool,
    pub seed: bool,
    pub uuid: bool,
}

impl Used {
    pub fn of(procedure: &Procedure) -> Self {
        let used = procedure.variables_used();
        Self {
            iteration: used.contains("iteration"),
            worker: used.contains("worker"),
            run_id: used.contains("run_id"),
            seed: used.contains("seed"),
            uuid: used.contains("uuid"),
        }
    }
}

impl Vars {
    /// The variables an iteration starts with.
    pub fn start(
        procedure: &Procedure,
        b: &Builtins<'_>,
        fixtures: Option<&Fixtures>,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self, MissingVariable> {
        let mut vars = Vars(HashMap::new());
        let used = b.used;
        if used.iteration {
            vars.set("iteration", json!(b.iteration));
        }
        if used.worker {
            vars.set("worker", json!(b.worker));
        }
        if used.run_id {
            vars.set("run_id", json!(b.run_id));
        }
        if used.seed {
            vars.set("seed", json!(b.seed));
        }
        if used.uuid {
            vars.set("uuid", json!(uuid_v4(rng)));
        }
        if let Some(f) = fixtures {
            for (name, value) in &f.fixed {
                vars.set(name, value.clone());
            }
            for (name, values) in &f.pools {
                if !values.is_empty() {
                    let pick = rng.random_range(0..values.len());
                    vars.set(name, values[pick].clone());
                }
            }
        }
        for v in &procedure.variables {
            let value = match &v.value {
                VariableValue::Template(t) => t.render_value(&vars)?,
                VariableValue::Pad(n) => Value::String("x".repeat(*n)),
                VariableValue::OneOf(choices) => {
                    let pick = rng.random_range(0..choices.len());
                    choices[pick].render_value(&vars)?
                }
            };
            vars.set(&v.name, value);
        }
        Ok(vars)
    }

    /// Only these variables (the read-back's `key`, `run_id`, `seed`).
    pub fn of(values: &[(&str, Value)]) -> Self {
        Vars(
            values
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    pub fn set(&mut self, name: &str, value: Value) {
        self.0.insert(name.to_string(), value);
    }
}

/// A version 4 UUID from the iteration's stream, so a seed replays the same ids.
pub(super) fn uuid_v4(rng: &mut ChaCha8Rng) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b: [u8; 16] = rng.random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn uuids_are_well_formed_and_replayable() {
        let a = uuid_v4(&mut ChaCha8Rng::seed_from_u64(1));
        let b = uuid_v4(&mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
