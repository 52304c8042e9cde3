//! Evaluating a procedure's checks against a response: status, JSON pointer equals / exists / within
//! range, response time. A failed check says what was found and what was expected.

use serde_json::Value;

use super::client::Response;
use super::vars::Vars;
use crate::config::units::format_duration;
use crate::procedure::Check;

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
    use crate::procedure::{StatusMatch, StatusSet};
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
}
