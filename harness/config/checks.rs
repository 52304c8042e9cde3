//! Second-stage checks that every kind of configuration file shares: its name, and durations that
//! must be longer than zero.

use std::time::Duration;

use toml::Spanned;

use super::Diagnostics;
use super::units::parse_duration;

/// The file's `name`: present, not empty, and equal to the file name when the file was found by name
/// (`expected`), so that a name always finds the file that carries it. `what` is "scenario" or
/// "procedure", for messages.
pub fn name(
    diag: &mut Diagnostics<'_>,
    raw: Option<&Spanned<String>>,
    expected: Option<&str>,
    what: &str,
) -> Option<String> {
    let Some(n) = raw else {
        diag.missing(0..0, "name", "add name = \"…\" at the top of the file");
        return None;
    };
    if n.get_ref().trim().is_empty() {
        diag.error(
            n.span(),
            "name",
            "name is empty",
            Some(format!("give the {what} a name")),
        );
        return None;
    }
    if let Some(expected) = expected.filter(|e| *e != n.get_ref()) {
        diag.error(
            n.span(),
            "name",
            format!(
                "name `{}` differs from the file name `{expected}.toml`",
                n.get_ref()
            ),
            Some(format!("rename the file or the {what} so that they match")),
        );
    }
    Some(n.get_ref().clone())
}

/// A duration longer than zero.
pub fn positive_duration(
    diag: &mut Diagnostics<'_>,
    value: &Spanned<String>,
    key: &str,
) -> Option<Duration> {
    match parse_duration(value.get_ref()) {
        Ok(d) if d.is_zero() => {
            diag.error(
                value.span(),
                key,
                "must be longer than zero",
                Some("give a positive duration, e.g. \"2s\"".into()),
            );
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            diag.error(value.span(), key, e.message, Some(e.hint));
            None
        }
    }
}
