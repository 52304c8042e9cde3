//! Evaluating a procedure's checks against a response: status, JSON pointer equals / exists / within
//! range, response time. A failed check says what was found and what was expected.

use serde_json::Value;

use super::client::Response;
use super::vars::Vars;
use crate::config::units::format_duration;
use crate::procedure::{Check, HeaderTest};

/// Why a response failed a check: what was found, against what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Mismatch(pub String);

impl From<super::client::NotJson> for Mismatch {
    fn from(e: super::client::NotJson) -> Self {
        Mismatch(e.to_string())
    }
}

/// `Ok` when the response passes; otherwise why not.
pub fn evaluate(check: &Check, resp: &Response, vars: &Vars) -> Result<(), Mismatch> {
    match check {
        Check::Status(set) => {
            if set.contains(resp.status) {
                Ok(())
            } else {
                Err(Mismatch(format!("status {} is not {set}", resp.status)))
            }
        }
        Check::MaxTime(limit) => {
            if resp.elapsed <= *limit {
                Ok(())
            } else {
                Err(Mismatch(format!(
                    "response took {}, more than {}",
                    format_duration(resp.elapsed),
                    format_duration(*limit)
                )))
            }
        }
        Check::Exists { pointer, present } => {
            let found = resp.json()?.pointer(pointer).is_some();
            match (found, present) {
                (true, true) | (false, false) => Ok(()),
                (false, true) => Err(Mismatch(format!("{pointer} is missing from the response"))),
                (true, false) => Err(Mismatch(format!("{pointer} is present but should not be"))),
            }
        }
        Check::Equals { pointer, value } => {
            let expected = value.render(vars).map_err(|e| Mismatch(e.to_string()))?;
            match resp.json()?.pointer(pointer) {
                Some(actual) if json_eq(actual, &expected) => Ok(()),
                Some(actual) => Err(Mismatch(format!(
                    "{pointer} is {}, expected {}",
                    show(actual),
                    show(&expected)
                ))),
                None => Err(Mismatch(format!(
                    "{pointer} is missing, expected {}",
                    show(&expected)
                ))),
            }
        }
        Check::OneOf { pointer, values } => {
            let json = resp.json()?;
            let actual = json.pointer(pointer).ok_or_else(|| missing(pointer))?;
            let expected: Vec<Value> = values
                .iter()
                .map(|v| v.render(vars))
                .collect::<Result<_, _>>()
                .map_err(|e| Mismatch(e.to_string()))?;
            if expected.iter().any(|e| json_eq(actual, e)) {
                Ok(())
            } else {
                Err(Mismatch(format!(
                    "{pointer} is {}, not one of {}",
                    show(actual),
                    show(&Value::Array(expected))
                )))
            }
        }
        Check::Matches { pointer, pattern } => {
            let json = resp.json()?;
            let actual = json.pointer(pointer).ok_or_else(|| missing(pointer))?;
            let text = match actual {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if pattern.0.is_match(&text) {
                Ok(())
            } else {
                Err(Mismatch(format!(
                    "{pointer} is {}, which does not match {pattern}",
                    show(actual)
                )))
            }
        }
        Check::Contains { pointer, value } => {
            let expected = value.render(vars).map_err(|e| Mismatch(e.to_string()))?;
            let json = resp.json()?;
            let actual = json.pointer(pointer).ok_or_else(|| missing(pointer))?;
            let holds = match (actual, &expected) {
                (Value::Array(items), e) => items.iter().any(|i| json_eq(i, e)),
                (Value::String(s), Value::String(e)) => s.contains(e.as_str()),
                _ => false,
            };
            if holds {
                Ok(())
            } else {
                Err(Mismatch(format!(
                    "{pointer} is {}, which does not contain {}",
                    show(actual),
                    show(&expected)
                )))
            }
        }
        Check::Length { pointer, min, max } => {
            let json = resp.json()?;
            let actual = json.pointer(pointer).ok_or_else(|| missing(pointer))?;
            let n = match actual {
                Value::Array(a) => a.len() as u64,
                Value::Object(o) => o.len() as u64,
                Value::String(s) => s.chars().count() as u64,
                other => {
                    return Err(Mismatch(format!(
                        "{pointer} is {}, which has no length",
                        show(other)
                    )));
                }
            };
            if min.is_some_and(|lo| n < lo) || max.is_some_and(|hi| n > hi) {
                let wanted = match (min, max) {
                    (Some(lo), Some(hi)) if lo == hi => format!("exactly {lo}"),
                    (Some(lo), Some(hi)) => format!("{lo} to {hi}"),
                    (Some(lo), None) => format!("at least {lo}"),
                    (None, Some(hi)) => format!("at most {hi}"),
                    (None, None) => "any number".into(),
                };
                Err(Mismatch(format!("{pointer} has {n} items, not {wanted}")))
            } else {
                Ok(())
            }
        }
        Check::Header { name, test } => {
            let found = resp.header(name);
            match (test, found) {
                (HeaderTest::Exists(true), Some(_)) | (HeaderTest::Exists(false), None) => Ok(()),
                (HeaderTest::Exists(true), None) => {
                    Err(Mismatch(format!("the response has no {name} header")))
                }
                (HeaderTest::Exists(false), Some(v)) => Err(Mismatch(format!(
                    "header {name} is present ({}) but should not be",
                    clip(v)
                ))),
                (_, None) => Err(Mismatch(format!("the response has no {name} header"))),
                (HeaderTest::Equals(t), Some(v)) => {
                    let expected = t.render(vars).map_err(|e| Mismatch(e.to_string()))?;
                    if v == expected {
                        Ok(())
                    } else {
                        Err(Mismatch(format!(
                            "header {name} is {}, expected {}",
                            clip(v),
                            clip(&expected)
                        )))
                    }
                }
                (HeaderTest::Matches(p), Some(v)) => {
                    if p.0.is_match(v) {
                        Ok(())
                    } else {
                        Err(Mismatch(format!(
                            "header {name} is {}, which does not match {p}",
                            clip(v)
                        )))
                    }
                }
            }
        }
        Check::Not(inner) => {
            // A body that is not JSON fails the check, turned around or not.
            if inner.reads_json() {
                resp.json()?;
            }
            match evaluate(inner, resp, vars) {
                Ok(()) => Err(Mismatch(format!("{inner}, but it should not"))),
                Err(_) => Ok(()),
            }
        }
        Check::InRange { pointer, min, max } => {
            let json = resp.json()?;
            let Some(actual) = json.pointer(pointer) else {
                return Err(Mismatch(format!("{pointer} is missing from the response")));
            };
            let Some(n) = actual.as_f64() else {
                return Err(Mismatch(format!(
                    "{pointer} is {}, not a number",
                    show(actual)
                )));
            };
            if min.is_some_and(|lo| n < lo) || max.is_some_and(|hi| n > hi) {
                Err(Mismatch(format!("{pointer} is {n}, outside {}", check)))
            } else {
                Ok(())
            }
        }
    }
}

/// JSON equality where `100` and `100.0` are the same number.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn missing(pointer: &str) -> Mismatch {
    Mismatch(format!("{pointer} is missing from the response"))
}

/// A header value for a message, quoted and cut short.
fn clip(v: &str) -> String {
    show(&Value::String(v.to_string()))
}

fn show(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 120 {
        format!("{}…", text.chars().take(120).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::template::JsonTemplate;
    use crate::procedure::{Pattern, StatusMatch, StatusSet};
    use serde_json::json;
    use std::time::Duration;

    fn resp(body: Value, ms: u64) -> Response {
        Response::new(
            200,
            body.to_string().into_bytes(),
            Duration::from_millis(ms),
        )
    }

    fn vars() -> Vars {
        let mut v = Vars::default();
        v.set("target", json!("agent-b"));
        v
    }

    fn eq(pointer: &str, toml: &str) -> Check {
        let value: toml::Value = toml::from_str(&format!("v = {toml}")).unwrap();
        Check::Equals {
            pointer: pointer.into(),
            value: JsonTemplate::from_toml(&value["v"]).unwrap(),
        }
    }

    #[test]
    fn each_check_passes_and_fails_with_a_reason() {
        let r = resp(json!({"owner": "agent-b", "n": 100, "done": true}), 20);
        let v = vars();
        assert!(evaluate(&eq("/owner", "'{{target}}'"), &r, &v).is_ok());
        assert!(evaluate(&eq("/n", "100.0"), &r, &v).is_ok(), "100 == 100.0");
        assert_eq!(
            evaluate(&eq("/owner", "'x'"), &r, &v).unwrap_err().0,
            "/owner is \"agent-b\", expected \"x\""
        );
        assert_eq!(
            evaluate(&eq("/nobody", "1"), &r, &v).unwrap_err().0,
            "/nobody is missing, expected 1"
        );
        let exists = Check::Exists {
            pointer: "/done".into(),
            present: true,
        };
        assert!(evaluate(&exists, &r, &v).is_ok());
        let range = Check::InRange {
            pointer: "/n".into(),
            min: Some(0.0),
            max: Some(50.0),
        };
        assert!(evaluate(&range, &r, &v).unwrap_err().0.contains("outside"));
        let status = Check::Status(StatusSet(vec![StatusMatch::Exact(201)]));
        assert_eq!(
            evaluate(&status, &r, &v).unwrap_err().0,
            "status 200 is not 201"
        );
        assert!(
            evaluate(&Check::MaxTime(Duration::from_millis(10)), &r, &v)
                .unwrap_err()
                .0
                .contains("20ms")
        );
        let html = Response::new(200, b"<p>".to_vec(), Duration::ZERO);
        assert!(
            evaluate(&exists, &html, &v)
                .unwrap_err()
                .0
                .contains("not JSON")
        );
    }

    #[test]
    fn the_richer_checks_pass_fail_and_turn_around() {
        let v = vars();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("location", "/orders/7".parse().unwrap());
        let r = resp(json!({"s": "ok", "tags": ["a", "b"], "msg": "all good"}), 1)
            .with_headers(Some(headers));
        let t = |toml: &str| {
            let value: toml::Value = toml::from_str(&format!("v = {toml}")).unwrap();
            JsonTemplate::from_toml(&value["v"]).unwrap()
        };
        let one_of = Check::OneOf {
            pointer: "/s".into(),
            values: vec![t("'ok'"), t("'fine'")],
        };
        assert!(evaluate(&one_of, &r, &v).is_ok());
        let contains = |p: &str, x: &str| Check::Contains {
            pointer: p.into(),
            value: t(x),
        };
        assert!(evaluate(&contains("/tags", "'b'"), &r, &v).is_ok());
        assert!(evaluate(&contains("/msg", "'good'"), &r, &v).is_ok());
        assert!(evaluate(&contains("/tags", "'c'"), &r, &v).is_err());
        let length = Check::Length {
            pointer: "/tags".into(),
            min: Some(3),
            max: None,
        };
        assert_eq!(
            evaluate(&length, &r, &v).unwrap_err().0,
            "/tags has 2 items, not at least 3"
        );
        let pattern = Pattern(regex::Regex::new("^/orders/[0-9]+$").unwrap());
        let header = Check::Header {
            name: "Location".into(),
            test: HeaderTest::Matches(pattern),
        };
        assert!(evaluate(&header, &r, &v).is_ok());
        let absent = Check::Header {
            name: "Retry-After".into(),
            test: HeaderTest::Exists(true),
        };
        assert_eq!(
            evaluate(&absent, &r, &v).unwrap_err().0,
            "the response has no Retry-After header"
        );
        let not = Check::Not(Box::new(Check::Exists {
            pointer: "/error".into(),
            present: true,
        }));
        assert!(evaluate(&not, &r, &v).is_ok());
        let not_ok = Check::Not(Box::new(one_of));
        assert!(
            evaluate(&not_ok, &r, &v)
                .unwrap_err()
                .0
                .contains("should not")
        );
        // A body that is not JSON fails a pointer check whether turned around or not.
        let html = Response::new(200, b"<p>".to_vec(), Duration::ZERO);
        assert!(
            evaluate(&not, &html, &v)
                .unwrap_err()
                .0
                .contains("not JSON")
        );
    }
}
