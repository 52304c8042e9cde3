//! Quantities as people write them in a scenario: durations (`"250ms"`, `"2m"`, `"1m30s"`), rates
//! (`"20/s"`, `"600/m"`), sizes (`"64KiB"`) and ratios (`"95%"` or `0.95`).
//!
//! Each parser returns a message that says what is wrong and what would be right, so callers can pass
//! it straight to the user.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a quantity could not be read: what is wrong, and an example of what would be right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitError {
    pub message: String,
    pub hint: String,
}

impl UnitError {
    fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} — {}", self.message, self.hint)
    }
}

const DURATION_HINT: &str =
    "write a number and a unit, e.g. \"250ms\", \"30s\", \"2m\" or \"1m30s\"";

/// Parses `"250ms"`, `"1.5s"`, `"2m"`, `"1h"`, `"500us"`, `"1m30s"`.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(UnitError::new("empty duration", DURATION_HINT));
    }
    if s.starts_with('-') {
        return Err(UnitError::new(
            format!("`{text}` is negative; a duration cannot be"),
            DURATION_HINT,
        ));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(UnitError::new(
                format!("`{text}` is not a duration"),
                DURATION_HINT,
            ));
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| {
            UnitError::new(
                format!("`{}` is not a number", &rest[..num_len]),
                DURATION_HINT,
            )
        })?;
        rest = rest[num_len..].trim_start();
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let seconds = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hrs" => 3600.0,
            "" => {
                return Err(UnitError::new(
                    format!("`{text}` has no unit"),
                    format!("add one, e.g. \"{number}ms\" or \"{number}s\""),
                ));
            }
            other => {
                return Err(UnitError::new(
                    format!("unknown unit `{other}` in `{text}`"),
                    "use one of ns, us, ms, s, m, h",
                ));
            }
        };
        total += number * seconds;
        rest = rest[unit_len..].trim_start();
    }
    if !total.is_finite() || total > 10.0 * 365.0 * 86_400.0 {
        return Err(UnitError::new(
            format!("`{text}` is too long"),
            DURATION_HINT,
        ));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats a duration the way a person would write it: `250ms`, `30s`, `2m`, `1m30s`, `1.5s`.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos.is_multiple_of(1_000_000_000) {
        let secs = d.as_secs();
        let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
        let mut out = String::new();
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if m > 0 {
            out.push_str(&format!("{m}m"));
        }
        if s > 0 {
            out.push_str(&format!("{s}s"));
        }
        return out;
    }
    if d >= Duration::from_secs(1) {
        return format!("{}s", trim_float(d.as_secs_f64()));
    }
    if nanos.is_multiple_of(1_000_000) {
        return format!("{}ms", nanos / 1_000_000);
    }
    if d >= Duration::from_millis(1) {
        return format!("{}ms", trim_float(d.as_secs_f64() * 1e3));
    }
    format!("{}us", trim_float(d.as_secs_f64() * 1e6))
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// Events per second.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct Rate {
    pub per_second: f64,
}

impl Rate {
    pub fn per_second(per_second: f64) -> Self {
        Self { per_second }
    }

    /// Time between two events at this rate.
    pub fn interval(self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", trim_float(self.per_second))
    }
}

const RATE_HINT: &str = "write a count per unit of time, e.g. \"20/s\", \"600/m\" or \"3600/h\"";

/// Parses `"20/s"`, `"600/m"`, `"600/min"`, `"3600/h"`, `"0.5/s"`.
pub fn parse_rate(text: &str) -> Result<Rate, UnitError> {
    let s = text.trim();
    let Some((count, unit)) = s.split_once('/') else {
        return Err(UnitError::new(
            format!("`{text}` has no time unit"),
            RATE_HINT,
        ));
    };
    let count: f64 = count
        .trim()
        .parse()
        .map_err(|_| UnitError::new(format!("`{}` is not a number", count.trim()), RATE_HINT))?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hr" | "hour" => 3600.0,
        other => {
            return Err(UnitError::new(
                format!("unknown time unit `{other}` in `{text}`"),
                RATE_HINT,
            ));
        }
    };
    if !(count.is_finite() && count > 0.0) {
        return Err(UnitError::new(
            format!("rate `{text}` must be greater than zero"),
            RATE_HINT,
        ));
    }
    Ok(Rate::per_second(count / per))
}

const SIZE_HINT: &str = "write bytes with a unit, e.g. \"512B\", \"64KiB\" or \"1MiB\"";

/// Parses `"64KiB"`, `"1MiB"`, `"500B"`, `"2KB"` (KB, MB are decimal; KiB, MiB binary).
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let number: f64 = s[..split]
        .parse()
        .map_err(|_| UnitError::new(format!("`{text}` is not a size"), SIZE_HINT))?;
    let factor = match s[split..].trim() {
        "B" | "" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(UnitError::new(
                format!("unknown size unit `{other}`"),
                SIZE_HINT,
            ));
        }
    };
    Ok((number * factor).round() as u64)
}

/// Parses a ratio written as `"95%"` or `"0.95"`; it must lie in 0..=1.
pub fn parse_ratio(text: &str) -> Result<f64, UnitError> {
    let s = text.trim();
    let value = if let Some(pct) = s.strip_suffix('%') {
        pct.trim().parse::<f64>().map(|v| v / 100.0)
    } else {
        s.parse::<f64>()
    }
    .map_err(|_| {
        UnitError::new(
            format!("`{text}` is not a ratio"),
            "write a fraction such as 0.95 or a percentage such as \"95%\"",
        )
    })?;
    if !(0.0..=1.0).contains(&value) {
        return Err(UnitError::new(
            format!("`{text}` is outside 0..1"),
            "a ratio lies between 0 and 1 (0% and 100%)",
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_people_write_them() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500us").unwrap(), Duration::from_micros(500));
        assert_eq!(parse_duration(" 1h ").unwrap(), Duration::from_secs(3600));
    }

    #[test]
    fn bad_durations_say_why() {
        assert_eq!(
            parse_duration("250").unwrap_err().message,
            "`250` has no unit"
        );
        assert!(
            parse_duration("5 fortnights")
                .unwrap_err()
                .message
                .contains("unknown unit")
        );
        assert!(
            parse_duration("-3s")
                .unwrap_err()
                .message
                .contains("negative")
        );
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn durations_format_back_readably() {
        for s in ["250ms", "30s", "2m", "1m30s", "1h", "1.5s", "500us"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("20/s").unwrap().per_second, 20.0);
        assert_eq!(parse_rate("600/m").unwrap().per_second, 10.0);
        assert_eq!(parse_rate("3600/h").unwrap().per_second, 1.0);
        assert!(
            parse_rate("0/s")
                .unwrap_err()
                .message
                .contains("greater than zero")
        );
        assert!(
            parse_rate("-5/s")
                .unwrap_err()
                .message
                .contains("greater than zero")
        );
        assert!(
            parse_rate("20")
                .unwrap_err()
                .message
                .contains("no time unit")
        );
        assert_eq!(
            parse_rate("20/s").unwrap().interval(),
            Duration::from_millis(50)
        );
    }

    #[test]
    fn sizes_and_ratios() {
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("1MB").unwrap(), 1_000_000);
        assert!(parse_size("3 furlongs").is_err());
        assert_eq!(parse_ratio("95%").unwrap(), 0.95);
        assert_eq!(parse_ratio("0.9").unwrap(), 0.9);
        assert!(parse_ratio("1.5").is_err());
    }
}
