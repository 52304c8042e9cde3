//! The toxics the fault proxy applies, with Toxiproxy's semantics, and the windows of a run they apply
//! over. A toxic is written as a name and parameters — `latency=200ms,jitter=50ms` on the command line,
//! a `[[faults.network]]` table in a scenario — and both go through [`Fault::from_params`].

use std::fmt;
use std::time::Duration;

use crate::config::units::{UnitError, format_duration, parse_duration, parse_ratio, parse_size};

/// What a toxic does to the data (or the connections) it applies to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Toxic {
    /// Each chunk is delayed by `latency` ± up to `jitter`, keeping its order.
    Latency { latency: Duration, jitter: Duration },
    /// At most this many bytes a second pass.
    Bandwidth { bytes_per_s: u64 },
    /// When one side closes, the close reaches the other this much later.
    SlowClose { delay: Duration },
    /// No data passes; the connection is closed after `timeout`, or (with 0) held until the toxic
    /// ends (a blackhole).
    Timeout { timeout: Duration },
    /// The connection is reset (TCP RST) `timeout` after the toxic starts on it.
    ResetPeer { timeout: Duration },
    /// Data is cut into pieces of `average` ± `variation` bytes, `delay` apart.
    Slicer {
        average: usize,
        variation: usize,
        delay: Duration,
    },
    /// The connection is closed once this many bytes have passed.
    LimitData { bytes: u64 },
    /// New connections are refused and open ones cut: an outage.
    Down,
}

impl Toxic {
    /// Whether the toxic acts on the data as it flows (delays, drops, cuts or paces it), rather than
    /// on the connection as a whole (a reset, an outage).
    pub fn shapes_data(&self) -> bool {
        !matches!(self, Toxic::ResetPeer { .. } | Toxic::Down)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Toxic::Latency { .. } => "latency",
            Toxic::Bandwidth { .. } => "bandwidth",
            Toxic::SlowClose { .. } => "slow_close",
            Toxic::Timeout { .. } => "timeout",
            Toxic::ResetPeer { .. } => "reset_peer",
            Toxic::Slicer { .. } => "slicer",
            Toxic::LimitData { .. } => "limit_data",
            Toxic::Down => "down",
        }
    }
}

/// Which way the data a toxic acts on flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client (the harness) to the target.
    Upstream,
    /// From the target to the client.
    Downstream,
    Both,
}

impl Direction {
    pub fn includes(self, d: Direction) -> bool {
        self == Direction::Both || self == d
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Upstream => "upstream",
            Direction::Downstream => "downstream",
            Direction::Both => "both",
        }
    }
}

/// A toxic over a window of the run, on a share of the connections.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fault {
    pub toxic: Toxic,
    pub direction: Direction,
    /// Share of connections affected, 0..=1 (drawn per connection from the seed).
    pub toxicity: f64,
    /// When the window opens, from the start of the load.
    pub from: Duration,
    /// When it closes; `None`: at the end of the run.
    pub until: Option<Duration>,
}

impl Fault {
    /// Whether the window is open `t` after the start.
    pub fn active(&self, t: Duration) -> bool {
        t >= self.from && self.until.is_none_or(|u| t < u)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = format_duration;
        match self.toxic {
            Toxic::Latency { latency, jitter } => {
                write!(f, "latency {} ± {}", d(latency), d(jitter))?
            }
            Toxic::Bandwidth { bytes_per_s } => write!(f, "bandwidth {bytes_per_s} B/s")?,
            Toxic::SlowClose { delay } => write!(f, "slow close {}", d(delay))?,
            Toxic::Timeout { timeout } if timeout.is_zero() => write!(f, "blackhole")?,
            Toxic::Timeout { timeout } => write!(f, "timeout {}", d(timeout))?,
            Toxic::ResetPeer { timeout } => write!(f, "reset peer after {}", d(timeout))?,
            Toxic::Slicer {
                average,
                variation,
                delay,
            } => write!(f, "slicer {average}±{variation} B every {}", d(delay))?,
            Toxic::LimitData { bytes } => write!(f, "limit data {bytes} B")?,
            Toxic::Down => write!(f, "down")?,
        }
        if self.direction != Direction::Both && self.toxic != Toxic::Down {
            write!(f, " {}", self.direction.as_str())?;
        }
        if self.toxicity < 1.0 {
            write!(f, " on {:.0}% of connections", self.toxicity * 100.0)?;
        }
        match self.until {
            Some(u) => write!(f, " from {} until {}", d(self.from), d(u)),
            None if self.from.is_zero() => Ok(()),
            None => write!(f, " from {}", d(self.from)),
        }
    }
}

/// A parameter that is wrong: its key, what is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamError {
    pub key: String,
    pub message: String,
    pub hint: String,
}

fn err(key: &str, message: impl Into<String>, hint: impl Into<String>) -> ParamError {
    ParamError {
        key: key.to_string(),
        message: message.into(),
        hint: hint.into(),
    }
}

/// The toxics by name, for messages.
pub const NAMES: &[&str] = &[
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
    "down",
];

/// The keys every fault may have beside its toxic's own.
const COMMON: &[&str] = &["toxic", "direction", "toxicity", "from", "until"];

impl Fault {
    /// Builds a fault from its toxic's name and its parameters (`get(key)` gives a value as written).
    /// Every key `keys` lists must be known.
    pub fn from_params<'a>(
        name: &str,
        keys: impl Iterator<Item = &'a str>,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Vec<ParamError>> {
        let own: &[&str] = match name {
            "latency" => &["latency", "jitter"],
            "bandwidth" => &["rate"],
            "slow_close" => &["delay"],
            "timeout" | "reset_peer" => &["timeout"],
            "slicer" => &["average_size", "size_variation", "delay"],
            "limit_data" => &["bytes"],
            "down" => &[],
            other => {
                return Err(vec![err(
                    "toxic",
                    format!("`{other}` is not a toxic"),
                    format!(
                        "{} (one of {})",
                        crate::config::suggest::did_you_mean(other, NAMES.iter().copied()),
                        NAMES.join(", ")
                    ),
                )]);
            }
        };
        let mut errors = Vec::new();
        for k in keys {
            if !COMMON.contains(&k) && !own.contains(&k) {
                errors.push(err(
                    k,
                    format!("a {name} toxic has no `{k}`"),
                    if own.is_empty() {
                        format!("{name} takes no parameters of its own")
                    } else {
                        format!("its parameters are {}", own.join(", "))
                    },
                ));
            }
        }
        // A parameter read with `parse`; absent, its default, or (without one) a problem.
        fn read<T>(
            value: Option<String>,
            key: &str,
            name: &str,
            default: Option<T>,
            parse: fn(&str) -> Result<T, UnitError>,
            errors: &mut Vec<ParamError>,
        ) -> Option<T> {
            match value {
                Some(v) => match parse(&v) {
                    Ok(x) => Some(x),
                    Err(e) => {
                        errors.push(err(key, e.message, e.hint));
                        None
                    }
                },
                None if default.is_some() => default,
                None => {
                    errors.push(err(
                        key,
                        format!("a {name} toxic needs `{key}`"),
                        format!("add {key} = \"…\""),
                    ));
                    None
                }
            }
        }
        let duration = |key: &str, default: Option<Duration>, errors: &mut Vec<ParamError>| {
            read(get(key), key, name, default, parse_duration, errors)
        };
        let size = |key: &str, default: Option<u64>, errors: &mut Vec<ParamError>| {
            read(get(key), key, name, default, parse_size, errors)
        };
        let toxic = match name {
            "latency" => {
                let latency = duration("latency", None, &mut errors);
                let jitter = duration("jitter", Some(Duration::ZERO), &mut errors);
                latency
                    .zip(jitter)
                    .map(|(latency, jitter)| Toxic::Latency { latency, jitter })
            }
            "bandwidth" => match get("rate") {
                Some(v) => {
                    let per = v.trim().strip_suffix("/s").unwrap_or(v.trim());
                    match parse_size(per) {
                        Ok(n) if n > 0 => Some(Toxic::Bandwidth { bytes_per_s: n }),
                        Ok(_) => {
                            errors.push(err(
                                "rate",
                                "the rate must be more than zero",
                                "e.g. \"64KiB/s\"",
                            ));
                            None
                        }
                        Err(e) => {
                            errors.push(err(
                                "rate",
                                e.message,
                                "write bytes a second, e.g. \"64KiB/s\"",
                            ));
                            None
                        }
                    }
                }
                None => {
                    errors.push(err(
                        "rate",
                        "a bandwidth toxic needs `rate`",
                        "e.g. rate = \"64KiB/s\"",
                    ));
                    None
                }
            },
            "slow_close" => {
                duration("delay", None, &mut errors).map(|delay| Toxic::SlowClose { delay })
            }
            "timeout" => duration("timeout", Some(Duration::ZERO), &mut errors)
                .map(|timeout| Toxic::Timeout { timeout }),
            "reset_peer" => duration("timeout", Some(Duration::ZERO), &mut errors)
                .map(|timeout| Toxic::ResetPeer { timeout }),
            "slicer" => {
                let average = size("average_size", Some(64), &mut errors);
                let variation = size("size_variation", Some(0), &mut errors);
                let delay = duration("delay", Some(Duration::ZERO), &mut errors);
                match (average, variation, delay) {
                    (Some(0), _, _) => {
                        errors.push(err(
                            "average_size",
                            "pieces must hold at least one byte",
                            "e.g. \"64B\"",
                        ));
                        None
                    }
                    (Some(a), Some(v), Some(delay)) if v < a => Some(Toxic::Slicer {
                        average: a as usize,
                        variation: v as usize,
                        delay,
                    }),
                    (Some(_), Some(_), Some(_)) => {
                        errors.push(err(
                            "size_variation",
                            "the variation must be smaller than the average size",
                            "e.g. average_size = \"64B\", size_variation = \"16B\"",
                        ));
                        None
                    }
                    _ => None,
                }
            }
            "limit_data" => {
                size("bytes", None, &mut errors).map(|bytes| Toxic::LimitData { bytes })
            }
            _ => Some(Toxic::Down),
        };
        let direction = match get("direction").as_deref() {
            None | Some("both") => Some(Direction::Both),
            Some("upstream") => Some(Direction::Upstream),
            Some("downstream") => Some(Direction::Downstream),
            Some(other) => {
                errors.push(err(
                    "direction",
                    format!("`{other}` is not a direction"),
                    "use upstream (to the target), downstream (from it) or both",
                ));
                None
            }
        };
        let toxicity = match get("toxicity") {
            None => Some(1.0),
            Some(v) => match parse_ratio(&v) {
                Ok(r) => Some(r),
                Err(e) => {
                    errors.push(err(
                        "toxicity",
                        e.message,
                        "the share of connections affected, e.g. 0.5 or \"50%\"",
                    ));
                    None
                }
            },
        };
        if name == "down" && toxicity.is_some_and(|t| t < 1.0) {
            errors.push(err(
                "toxicity",
                "an outage takes every connection down",
                "remove toxicity from a down toxic",
            ));
        }
        let from = duration("from", Some(Duration::ZERO), &mut errors);
        let until = match get("until") {
            None => Some(None),
            Some(_) => duration("until", None, &mut errors).map(Some),
        };
        if let (Some(f), Some(Some(u))) = (from, until)
            && u <= f
        {
            errors.push(err(
                "until",
                format!(
                    "the window ends ({}) before it starts ({})",
                    format_duration(u),
                    format_duration(f)
                ),
                "make until later than from",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        match (toxic, direction, toxicity, from, until) {
            (Some(toxic), Some(direction), Some(toxicity), Some(from), Some(until)) => Ok(Fault {
                toxic,
                direction,
                toxicity,
                from,
                until,
            }),
            _ => Err(vec![err("toxic", "the toxic is incomplete", "")]),
        }
    }

    /// Parses the command line's `NAME=VALUE,KEY=VALUE…`, e.g. `latency=200ms,jitter=50ms` or `down,from=5s,until=10s`.
    pub fn parse_spec(spec: &str) -> Result<Self, SpecError> {
        let mut parts = spec.split(',').map(str::trim).filter(|p| !p.is_empty());
        let Some(first) = parts.next() else {
            return Err(SpecError::Empty);
        };
        let (name, first_value) = match first.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (first, None),
        };
        let mut params: Vec<(String, String)> = Vec::new();
        if let Some(v) = first_value {
            // The toxic's main parameter goes with its name: latency=200ms, bandwidth=64KiB/s, …
            let key = match name {
                "latency" => "latency",
                "bandwidth" => "rate",
                "slow_close" | "slicer" => "delay",
                "timeout" | "reset_peer" => "timeout",
                "limit_data" => "bytes",
                "down" => return Err(SpecError::DownTakesNoValue),
                // Not a toxic: the error below names the nearest one.
                _ => "toxic",
            };
            params.push((key.to_string(), v.to_string()));
        }
        for p in parts {
            let (k, v) = p.split_once('=').ok_or_else(|| SpecError::NotKeyValue {
                part: p.to_string(),
                spec: spec.to_string(),
            })?;
            params.push((k.trim().to_string(), v.trim().to_string()));
        }
        Fault::from_params(name, params.iter().map(|(k, _)| k.as_str()), |key| {
            params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        })
        .map_err(|errors| {
            SpecError::Invalid(
                errors
                    .iter()
                    .map(|e| format!("{}: {} — {}", e.key, e.message, e.hint))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
    }
}

/// Why a `--toxic` spec could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("an empty toxic; write e.g. latency=200ms,jitter=50ms")]
    Empty,
    #[error("`down` takes no value; write `down` alone")]
    DownTakesNoValue,
    #[error("`{part}` in `{spec}`: write KEY=VALUE")]
    NotKeyValue { part: String, spec: String },
    /// Every problem of its keys, `key: what — how`, joined by `; `.
    #[error("{0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_read_as_people_write_them() {
        let f = Fault::parse_spec("latency=200ms,jitter=50ms").unwrap();
        assert_eq!(
            f.toxic,
            Toxic::Latency {
                latency: Duration::from_millis(200),
                jitter: Duration::from_millis(50)
            }
        );
        assert_eq!(
            (f.direction, f.toxicity, f.until),
            (Direction::Both, 1.0, None)
        );
        let f = Fault::parse_spec("bandwidth=64KiB/s,direction=downstream,toxicity=50%").unwrap();
        assert_eq!(f.toxic, Toxic::Bandwidth { bytes_per_s: 65536 });
        assert_eq!((f.direction, f.toxicity), (Direction::Downstream, 0.5));
        let f = Fault::parse_spec("down,from=5s,until=10s").unwrap();
        assert!(!f.active(Duration::from_secs(4)) && f.active(Duration::from_secs(5)));
        assert!(!f.active(Duration::from_secs(10)));
        assert_eq!(f.to_string(), "down from 5s until 10s");
        assert_eq!(
            Fault::parse_spec("timeout").unwrap().toxic,
            Toxic::Timeout {
                timeout: Duration::ZERO
            }
        );
    }

    #[test]
    fn mistakes_name_the_key() {
        let e = Fault::parse_spec("latncy=1s").unwrap_err().to_string();
        assert!(e.contains("did you mean `latency`"), "{e}");
        let e = Fault::parse_spec("latency=1s,rate=5")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("rate: a latency toxic has no `rate`"), "{e}");
        let e = Fault::parse_spec("down,from=10s,until=5s")
            .unwrap_err()
            .to_string();
        assert!(e.contains("until"), "{e}");
        let e = Fault::parse_spec("slicer=1ms,average_size=8B,size_variation=8B")
            .unwrap_err()
            .to_string();
        assert!(e.contains("size_variation"), "{e}");
        assert!(Fault::parse_spec("down,toxicity=0.5").is_err());
    }
}
