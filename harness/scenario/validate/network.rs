//! `[[faults.network]]`: toxics the fault proxy applies between the harness and the target, each over
//! a window of the load. Parameters are read by the proxy's own parser, so a scenario and
//! `harness proxy --toxic` accept the same things; problems are reported at the key they concern.

use std::time::Duration;

use toml::Spanned;

use crate::config::Diagnostics;
use crate::config::units::format_duration;
use crate::proxy::{Fault, Toxic};
use crate::scenario::raw::RawNetworkFault;

fn text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads every entry; `schedule` is how long the load lasts, when it has a schedule.
pub(super) fn network(
    diag: &mut Diagnostics<'_>,
    raw: &[Spanned<RawNetworkFault>],
    schedule: Option<Duration>,
) -> Option<Vec<Fault>> {
    let mut out = Vec::new();
    let mut ok = true;
    for (i, entry) in raw.iter().enumerate() {
        let table = entry.get_ref();
        let key = |k: &str| format!("faults.network[{i}].{k}");
        let span_of = |k: &str| {
            table
                .iter()
                .find(|(name, _)| name.get_ref() == k)
                .map_or(entry.span(), |(_, v)| v.span())
        };
        let Some(name) = table
            .iter()
            .find(|(k, _)| k.get_ref() == "toxic")
            .map(|(_, v)| text(v.get_ref()))
        else {
            diag.missing(
                entry.span(),
                &key("toxic"),
                "add toxic = \"latency\" (or bandwidth, slow_close, timeout, reset_peer, slicer, limit_data, down)",
            );
            ok = false;
            continue;
        };
        let fault = Fault::from_params(&name, table.keys().map(|k| k.get_ref().as_str()), |k| {
            table
                .iter()
                .find(|(name, _)| name.get_ref() == k)
                .map(|(_, v)| text(v.get_ref()))
        });
        match fault {
            Err(errors) => {
                ok = false;
                for e in errors {
                    diag.error(span_of(&e.key), key(&e.key), e.message, Some(e.hint));
                }
            }
            Ok(f) => {
                if f.toxic == Toxic::Down && f.until.is_none() {
                    diag.error(
                        entry.span(),
                        key("until"),
                        "an outage that never ends leaves nothing to measure",
                        Some("give the window an end, e.g. from = \"10s\", until = \"20s\"".into()),
                    );
                    ok = false;
                }
                let end = f.until.unwrap_or(f.from);
                if let Some(s) = schedule
                    && end > s
                {
                    diag.error(
                        span_of(if f.until.is_some() { "until" } else { "from" }),
                        key(if f.until.is_some() { "until" } else { "from" }),
                        format!(
                            "the window reaches {} but the load lasts {}",
                            format_duration(end),
                            format_duration(s)
                        ),
                        Some(
                            "end the window while the load runs, so recovery can be measured"
                                .into(),
                        ),
                    );
                    ok = false;
                }
                out.push(f);
            }
        }
    }
    ok.then_some(out)
}
