//! Input hardening of a WebSocket endpoint, as named checks: messages just under, at and over the size
//! limit (over it, the expected close code); malformed JSON and an unknown message type refused with an
//! error frame while the connection lives on; invalid subscription paths refused; paths normalised as
//! declared. (Whether every outbound frame carried a correlation id is judged at the end of the run, over
//! every frame the harness received: see [`correlation_check`].)

use std::time::Duration;

use super::{ProbeError, WsEnv, json_escaped};
use crate::drivers::ws::conn::{Conn, Reply};
use crate::metrics::ConnectionStats;
use crate::result::CheckResult;
use crate::scenario::websocket::HardeningProbe;

/// How long each answer may take.
const WAIT: Duration = Duration::from_secs(3);

/// Runs every check; a check that cannot run (a connection refused) fails with the reason.
pub async fn probe(env: &WsEnv, p: &HardeningProbe) -> Vec<CheckResult> {
    let mut checks = sizes(env, p).await;
    checks.push(refusals(env, p).await);
    checks.push(unknown_type(env, p).await);
    checks.push(invalid_paths(env, p).await);
    if !p.normalised_paths.is_empty() {
        checks.push(normalisation(env, p).await);
    }
    checks
}

/// The check on correlation ids, from the frames that lacked one (those the protocol exempts aside),
/// listing the first of them.
pub fn correlation_check(counts: &ConnectionStats, pointer: &str) -> CheckResult {
    let (without, frames) = (counts.without_correlation, counts.received);
    CheckResult::new(
        "hardening.correlation_ids",
        without == 0,
        if without == 0 {
            format!(
                "all {frames} frames received that needed a correlation id carried one at {pointer}"
            )
        } else {
            let shown = counts.uncorrelated_samples.len() as u64;
            format!(
                "{without} of {frames} frames received carried no correlation id at {pointer}; {}: {}",
                if shown < without {
                    format!("the first {shown}")
                } else {
                    "they were".to_string()
                },
                counts.uncorrelated_samples.join(", ")
            )
        },
    )
}

fn id(env: &WsEnv, what: &str) -> String {
    format!("{}-hardening-{what}", env.run_id)
}

/// An echo frame of exactly `size` bytes, padding its `{{payload}}`.
fn echo_of_size(env: &WsEnv, cid: &str, size: usize) -> Result<String, ProbeError> {
    let render = |payload: &str| -> String {
        let (id, p) = (
            serde_json::Value::String(cid.into()),
            serde_json::Value::String(payload.into()),
        );
        let null = serde_json::Value::Null;
        env.shared
            .protocol
            .echo
            .render(&crate::drivers::ws::FrameVars {
                id: &id,
                seq: &null,
                publisher: &null,
                path: &null,
                payload: &p,
                run_id: &null,
                index: &null,
            })
            .unwrap_or_default()
    };
    let empty = render("").len();
    let per_char = render("x").len().saturating_sub(empty);
    if per_char == 0 {
        return Err(ProbeError::NoPayload);
    }
    if size < empty || !(size - empty).is_multiple_of(per_char) {
        return Err(ProbeError::Size { size, empty });
    }
    Ok(render(&"x".repeat((size - empty) / per_char)))
}

async fn sizes(env: &WsEnv, p: &HardeningProbe) -> Vec<CheckResult> {
    let limit = p.max_message_bytes;
    let names = [
        ("hardening.size_under_limit", limit.saturating_sub(1)),
        ("hardening.size_at_limit", limit),
        ("hardening.size_over_limit", limit + 1),
    ];
    let conn = match env.open(u32::MAX - 1).await {
        Ok(c) => c,
        Err(e) => {
            return names
                .iter()
                .map(|(n, _)| CheckResult::new(n, false, format!("could not connect: {e}")))
                .collect();
        }
    };
    let mut out = Vec::new();
    for (name, size) in names {
        let cid = id(env, &format!("size-{size}"));
        let frame = match echo_of_size(env, &cid, size) {
            Ok(f) => f,
            Err(e) => {
                out.push(CheckResult::new(name, false, e.to_string()));
                continue;
            }
        };
        let reply = env.send_text(&conn, &cid, |_| frame, WAIT).await;
        let over = size > limit;
        out.push(match (over, reply) {
            (false, Some(Reply::Answer(_))) => {
                CheckResult::new(name, true, format!("a {size}-byte message was answered"))
            }
            (true, Some(Reply::Closed(c))) if c.code == Some(p.size_close_code) => {
                CheckResult::new(
                    name,
                    true,
                    format!(
                        "a {size}-byte message closed the connection with {}",
                        p.size_close_code
                    ),
                )
            }
            (true, Some(Reply::Answer(_))) => CheckResult::new(
                name,
                false,
                format!("a {size}-byte message was accepted, though the limit is {limit} bytes"),
            ),
            (over, reply) => CheckResult::new(
                name,
                false,
                format!(
                    "a {size}-byte message {}; expected {}",
                    describe(&reply),
                    if over {
                        format!("a close with {}", p.size_close_code)
                    } else {
                        "an answer".into()
                    }
                ),
            ),
        });
    }
    conn.close().await;
    out
}

/// Refused with a plain refusal: a rate-limit refusal says nothing about the input.
fn refused_as_invalid(reply: &Option<Reply>) -> bool {
    matches!(
        reply,
        Some(Reply::Rejected {
            rate_limited: false,
            ..
        })
    )
}

fn describe(reply: &Option<Reply>) -> String {
    match reply {
        Some(Reply::Answer(_)) => "was answered".into(),
        Some(Reply::Rejected {
            rate_limited: true,
            frame,
            ..
        }) => format!("was refused as over the rate limit ({frame}), not as invalid"),
        Some(Reply::Rejected { frame, .. }) => format!("was refused ({frame})"),
        Some(Reply::Closed(c)) => format!("ended the connection ({c})"),
        None => "got no answer".into(),
    }
}

/// Malformed JSON is refused with an error frame, and the connection still answers afterwards.
async fn refusals(env: &WsEnv, p: &HardeningProbe) -> CheckResult {
    let name = "hardening.malformed_json";
    let conn = match env.open(u32::MAX - 2).await {
        Ok(c) => c,
        Err(e) => return CheckResult::new(name, false, format!("could not connect: {e}")),
    };
    let mut problems = Vec::new();
    for (i, text) in p.malformed.iter().enumerate() {
        let cid = id(env, &format!("malformed-{i}"));
        let reply = env.send_text(&conn, &cid, |_| text.clone(), WAIT).await;
        if !refused_as_invalid(&reply) {
            problems.push(format!("{text:?} {}", describe(&reply)));
        }
    }
    let after = still_answers(env, &conn).await;
    conn.close().await;
    match (problems.is_empty(), after) {
        (true, Ok(())) => CheckResult::new(
            name,
            true,
            format!(
                "{} malformed messages refused with error frames; the connection still answers",
                p.malformed.len()
            ),
        ),
        (_, after) => {
            if let Err(e) = after {
                problems.push(e.to_string());
            }
            CheckResult::new(name, false, problems.join("; "))
        }
    }
}

async fn still_answers(env: &WsEnv, conn: &Conn) -> Result<(), ProbeError> {
    let cid = id(env, "after");
    match env
        .ask(conn, &env.shared.protocol.echo, &cid, "", "", WAIT)
        .await
    {
        Some(Reply::Answer(_)) => Ok(()),
        other => Err(ProbeError::NotAnswering {
            what: describe(&other),
        }),
    }
}

async fn unknown_type(env: &WsEnv, p: &HardeningProbe) -> CheckResult {
    let name = "hardening.unknown_type";
    let conn = match env.open(u32::MAX - 3).await {
        Ok(c) => c,
        Err(e) => return CheckResult::new(name, false, format!("could not connect: {e}")),
    };
    let cid = id(env, "unknown");
    let reply = env.ask(&conn, &p.unknown_type, &cid, "", "", WAIT).await;
    let after = still_answers(env, &conn).await;
    conn.close().await;
    match (&reply, after) {
        (reply, Ok(())) if refused_as_invalid(reply) => CheckResult::new(
            name,
            true,
            "a message of an unknown type was refused with an error frame",
        ),
        (_, after) => CheckResult::new(
            name,
            false,
            format!(
                "a message of an unknown type {}{}",
                describe(&reply),
                after.err().map_or(String::new(), |e| format!("; {e}"))
            ),
        ),
    }
}

async fn invalid_paths(env: &WsEnv, p: &HardeningProbe) -> CheckResult {
    let name = "hardening.invalid_paths";
    let conn = match env.open(u32::MAX - 4).await {
        Ok(c) => c,
        Err(e) => return CheckResult::new(name, false, format!("could not connect: {e}")),
    };
    let mut accepted = Vec::new();
    for (i, path) in p.invalid_paths.iter().enumerate() {
        let cid = id(env, &format!("path-{i}"));
        let reply = env
            .ask(
                &conn,
                &env.shared.protocol.subscribe,
                &cid,
                &json_escaped(path),
                "",
                WAIT,
            )
            .await;
        if !refused_as_invalid(&reply) {
            accepted.push(format!("{:?} {}", shorten(path), describe(&reply)));
        }
    }
    conn.close().await;
    if accepted.is_empty() {
        CheckResult::new(
            name,
            true,
            format!(
                "{} invalid subscription paths refused",
                p.invalid_paths.len()
            ),
        )
    } else {
        CheckResult::new(name, false, accepted.join("; "))
    }
}

async fn normalisation(env: &WsEnv, p: &HardeningProbe) -> CheckResult {
    let name = "hardening.path_normalisation";
    let conn = match env.open(u32::MAX - 5).await {
        Ok(c) => c,
        Err(e) => return CheckResult::new(name, false, format!("could not connect: {e}")),
    };
    let protocol = &env.shared.protocol;
    let mut wrong = Vec::new();
    for (i, (sent, expected)) in p.normalised_paths.iter().enumerate() {
        let cid = id(env, &format!("normalise-{i}"));
        let reply = env
            .ask(
                &conn,
                &protocol.subscribe,
                &cid,
                &json_escaped(sent),
                "",
                WAIT,
            )
            .await;
        let answer = match &reply {
            Some(Reply::Answer(frame)) => Reply::json(frame),
            _ => None,
        };
        match &reply {
            Some(Reply::Answer(_))
                if answer
                    .as_ref()
                    .is_some_and(|f| protocol.subscribed.matches(f)) =>
            {
                let frame = answer.as_ref().unwrap_or(&serde_json::Value::Null);
                let got = frame.pointer(&protocol.subscribed_path);
                if got.and_then(|v| v.as_str()) != Some(expected.as_str()) {
                    wrong.push(format!(
                        "{sent:?} was acknowledged as {}, expected {expected:?}",
                        got.map_or("nothing".to_string(), |v| v.to_string())
                    ));
                }
            }
            other => wrong.push(format!("{sent:?} {}", describe(other))),
        }
    }
    conn.close().await;
    if wrong.is_empty() {
        CheckResult::new(
            name,
            true,
            format!("{} paths normalised as declared", p.normalised_paths.len()),
        )
    } else {
        CheckResult::new(name, false, wrong.join("; "))
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}
