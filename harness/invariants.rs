//! Invariant checks after a concurrency run, the way Jepsen checks a history: what the clients saw
//! acknowledged is compared with what the service says its state is.
//!
//! The history is every acknowledged transfer (`ack = "transfer"` steps): resource, previous owner,
//! new owner, version. The state is the service's dump (`GET /api/v1/coordination/state`). Reported
//! as violations:
//! - an acknowledged transfer lost: two transfers acknowledged with the same version of a resource, a
//!   transfer that took the resource from someone other than the previous acknowledged owner, or an
//!   acknowledged version the service no longer has;
//! - two owners: a resource listed under more than one agent, or under an agent that does not own it;
//! - a lock held past its expiry: a lease the service still reports though its time has passed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest list of violations kept in a result; the count is always exact.
const MAX_DETAILS: usize = 20;

/// One acknowledged transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub resource: String,
    pub previous_owner: String,
    pub owner: String,
    pub version: u64,
}

impl Ack {
    /// Reads an acknowledgement from a transfer's response; `None` if a field is missing.
    pub fn from_response(body: &Value) -> Option<Self> {
        Some(Self {
            resource: body.get("resource_id")?.as_str()?.to_string(),
            previous_owner: body.get("previous_owner")?.as_str()?.to_string(),
            owner: body.get("owner")?.as_str()?.to_string(),
            version: body.get("version")?.as_u64()?,
        })
    }
}

/// The outcome of the checks, as `metrics.invariants` in `result.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvariantReport {
    /// Acknowledged operations in the history.
    pub acknowledged: u64,
    /// Resources in the service's state.
    pub resources: u64,
    pub violations: u64,
    /// The first violations, in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

/// Why a state dump could not be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the state has no `{list}` list")]
pub struct MissingList {
    pub list: &'static str,
}

/// Checks `history` against the service's `state` dump.
pub fn check(history: &[Ack], state: &Value) -> Result<InvariantReport, MissingList> {
    let resources = state
        .get("resources")
        .and_then(Value::as_array)
        .ok_or(MissingList { list: "resources" })?;
    let agents = state
        .get("agents")
        .and_then(Value::as_array)
        .ok_or(MissingList { list: "agents" })?;
    let mut violations = Vec::new();

    let mut by_resource: BTreeMap<&str, Vec<&Ack>> = BTreeMap::new();
    for a in history {
        by_resource.entry(&a.resource).or_default().push(a);
    }
    let current: BTreeMap<&str, (&str, u64)> = resources
        .iter()
        .filter_map(|r| {
            Some((
                r.get("resource_id")?.as_str()?,
                (r.get("owner")?.as_str()?, r.get("version")?.as_u64()?),
            ))
        })
        .collect();

    for (resource, acks) in &mut by_resource {
        acks.sort_by_key(|a| a.version);
        for pair in acks.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if a.version == b.version {
                violations.push(format!(
                    "acknowledged transfer lost: {resource} version {} was acknowledged twice (to {} and to {}); one overwrote the other",
                    a.version, a.owner, b.owner
                ));
            } else if b.version == a.version + 1 && b.previous_owner != a.owner {
                violations.push(format!(
                    "acknowledged transfer lost: {resource} version {} was taken from {}, but version {} had given it to {}",
                    b.version, b.previous_owner, a.version, a.owner
                ));
            }
        }
        let Some(last) = acks.last() else { continue };
        match current.get(resource) {
            None => violations.push(format!("acknowledged transfer lost: {resource} is not in the service's state")),
            Some((_, version)) if *version < last.version => violations.push(format!(
                "acknowledged transfer lost: {resource} is at version {version}, but version {} (to {}) was acknowledged",
                last.version, last.owner
            )),
            Some((owner, version)) if *version == last.version && *owner != last.owner => violations.push(format!(
                "acknowledged transfer lost: {resource} version {version} is owned by {owner}, but that version was acknowledged as going to {}",
                last.owner
            )),
            _ => {}
        }
    }

    let mut listed: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for a in agents {
        let Some(agent) = a.get("agent_id").and_then(Value::as_str) else {
            continue;
        };
        for r in a
            .get("resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(r) = r.as_str() {
                listed.entry(r).or_default().push(agent);
            }
        }
    }
    for (resource, holders) in &listed {
        if holders.len() > 1 {
            let named: Vec<&str> = holders.iter().take(3).copied().collect();
            let more = if holders.len() > 3 {
                format!(" and {} more", holders.len() - 3)
            } else {
                String::new()
            };
            violations.push(format!(
                "two owners: {resource} is held by {} agents: {}{more}",
                holders.len(),
                named.join(", ")
            ));
        } else if let Some((owner, _)) = current.get(resource)
            && holders[0] != *owner
        {
            violations.push(format!(
                "two owners: {resource} is owned by {owner} but held by {}",
                holders[0]
            ));
        }
    }

    let now = state.get("now_ms").and_then(Value::as_i64);
    for r in resources {
        let expires = r
            .get("lock")
            .and_then(|l| l.get("expires_at_ms"))
            .and_then(Value::as_i64);
        if let (Some(now), Some(expires), Some(id)) =
            (now, expires, r.get("resource_id").and_then(Value::as_str))
            && expires <= now
        {
            violations.push(format!(
                "lock held past its expiry: {id}'s lock expired {}ms ago",
                now - expires
            ));
        }
    }

    Ok(InvariantReport {
        acknowledged: history.len() as u64,
        resources: resources.len() as u64,
        violations: violations.len() as u64,
        details: violations.into_iter().take(MAX_DETAILS).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ack(resource: &str, from: &str, to: &str, version: u64) -> Ack {
        Ack {
            resource: resource.into(),
            previous_owner: from.into(),
            owner: to.into(),
            version,
        }
    }

    fn state(resources: Value, agents: Value) -> Value {
        json!({ "now_ms": 1000, "resources": resources, "agents": agents })
    }

    #[test]
    fn a_consistent_history_has_no_violations() {
        let history = [ack("r1", "a", "b", 2), ack("r1", "b", "c", 3)];
        let s = state(
            json!([{"resource_id": "r1", "owner": "c", "version": 3, "lock": null}]),
            json!([{"agent_id": "c", "resources": ["r1"]}]),
        );
        let report = check(&history, &s).unwrap();
        assert_eq!(
            (report.violations, report.acknowledged, report.resources),
            (0, 2, 1)
        );
    }

    #[test]
    fn lost_updates_double_owners_and_stale_locks_are_each_reported() {
        // Two transfers from a, both acknowledged as version 2: one of them was overwritten.
        let history = [
            ack("r1", "a", "b", 2),
            ack("r1", "a", "c", 2),
            ack("r2", "x", "y", 5),
        ];
        let s = state(
            json!([
                {"resource_id": "r1", "owner": "c", "version": 2, "lock": null},
                {"resource_id": "r2", "owner": "x", "version": 4, "lock": {"holder": "x", "lock_id": "l", "expires_at_ms": 900}},
            ]),
            json!([
                {"agent_id": "b", "resources": ["r1"]},
                {"agent_id": "c", "resources": ["r1"]},
                {"agent_id": "x", "resources": ["r2"]},
            ]),
        );
        let report = check(&history, &s).unwrap();
        let text = report.details.join("\n");
        assert!(
            text.contains("r1 version 2 was acknowledged twice"),
            "{text}"
        );
        assert!(text.contains("r2 is at version 4, but version 5"), "{text}");
        assert!(
            text.contains("two owners: r1 is held by 2 agents: b, c"),
            "{text}"
        );
        assert!(text.contains("lock held past its expiry: r2"), "{text}");
        assert_eq!(report.violations, 4);
    }

    #[test]
    fn a_broken_chain_is_a_lost_transfer() {
        let history = [ack("r", "a", "b", 2), ack("r", "a", "c", 3)];
        let s = state(
            json!([{"resource_id": "r", "owner": "c", "version": 3}]),
            json!([{"agent_id": "c", "resources": ["r"]}]),
        );
        let report = check(&history, &s).unwrap();
        assert!(
            report.details[0]
                .contains("version 3 was taken from a, but version 2 had given it to b"),
            "{:?}",
            report.details
        );
    }

    #[test]
    fn responses_without_the_fields_are_not_acknowledgements() {
        assert!(Ack::from_response(&json!({"resource_id": "r", "owner": "b"})).is_none());
        let a = Ack::from_response(
            &json!({"resource_id": "r", "owner": "b", "previous_owner": "a", "version": 3}),
        )
        .unwrap();
        assert_eq!(a, ack("r", "a", "b", 3));
        assert!(check(&[], &json!({})).is_err());
    }
}
