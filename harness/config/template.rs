//! `{{variable}}` templates in request paths, headers, JSON bodies and expected values.
//!
//! Parsing happens once, when a procedure is validated, so a typo such as an unclosed `{{` is reported
//! with its place in the file; rendering at run time is a walk over the parts. A string that is exactly
//! one `{{variable}}` renders to the variable's JSON value, so a captured number stays a number in a
//! body (`version = "{{version}}"` sends `"version": 3`, not `"3"`).

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

/// A string with `{{variable}}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// Something that supplies variable values while rendering.
pub trait Lookup {
    fn get(&self, name: &str) -> Option<&Value>;
}

impl Lookup for std::collections::HashMap<String, Value> {
    fn get(&self, name: &str) -> Option<&Value> {
        std::collections::HashMap::get(self, name)
    }
}

impl Lookup for std::collections::BTreeMap<String, Value> {
    fn get(&self, name: &str) -> Option<&Value> {
        std::collections::BTreeMap::get(self, name)
    }
}

/// A variable a template needs and the lookup lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingVariable(pub String);

impl fmt::Display for MissingVariable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "variable `{}` has no value", self.0)
    }
}

/// Why a template is malformed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    #[error("`{{{{` without a closing `}}}}` in \"{text}\"")]
    Unclosed { text: String },
    #[error(
        "`{{{{{name}}}}}` is not a variable name (letters, digits, `_` and `.`, starting with a letter)"
    )]
    BadName { name: String },
    #[error("{value} is not a finite number")]
    NotFinite { value: f64 },
    #[error(
        "the environment variable {name} is not set (give it a fallback with `{{{{env.{name}:-value}}}}`, or pass --env-file FILE)"
    )]
    MissingEnv { name: String },
    #[error("`{name}` is not an environment variable's name (letters, digits and `_`)")]
    BadEnvName { name: String },
    #[error(
        "`{{{{{name}}}}}` has no value here: only `{{{{env.NAME}}}}` can be used in this setting"
    )]
    OnlyEnv { name: String },
}

impl Template {
    /// Parses `text`; the error says what is malformed.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(TemplateError::Unclosed { text: text.into() });
            };
            let name = after[..close].trim();
            if let Some(spec) = name.strip_prefix(super::env::PREFIX) {
                // `{{env.NAME}}` is the environment's value, fixed when the file is read.
                let var = spec.split_once(":-").map_or(spec, |(n, _)| n).trim();
                if !super::env::is_name(var) {
                    return Err(TemplateError::BadEnvName { name: var.into() });
                }
                let value =
                    super::env::resolve(spec).map_err(|name| TemplateError::MissingEnv { name })?;
                parts.push(Part::Literal(value));
                rest = &after[close + 2..];
                continue;
            }
            if !is_variable_name(name) {
                return Err(TemplateError::BadName {
                    name: after[..close].to_string(),
                });
            }
            parts.push(Part::Variable(name.to_string()));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        // An environment value joins the text around it, so `Bearer {{env.TOKEN}}` is a literal.
        let mut merged: Vec<Part> = Vec::with_capacity(parts.len());
        for part in parts {
            match (merged.last_mut(), part) {
                (Some(Part::Literal(prev)), Part::Literal(next)) => prev.push_str(&next),
                (_, part) => merged.push(part),
            }
        }
        merged.retain(|p| !matches!(p, Part::Literal(s) if s.is_empty()));
        Ok(Self { parts: merged })
    }

    /// A template with no placeholders.
    pub fn literal(text: &str) -> Self {
        Self {
            parts: vec![Part::Literal(text.to_string())],
        }
    }

    /// The text, when the template has no placeholders.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Literal(s)] => Some(s),
            _ => None,
        }
    }

    /// Names of the variables this template uses.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Variable(v) => Some(v.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Renders to a string; non-string values are written as JSON (`3`, `true`).
    pub fn render(&self, vars: &dyn Lookup) -> Result<String, MissingVariable> {
        let literal: usize = self
            .parts
            .iter()
            .map(|p| match p {
                Part::Literal(s) => s.len(),
                Part::Variable(_) => 16,
            })
            .sum();
        let mut out = String::with_capacity(literal);
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Variable(name) => match vars.get(name) {
                    Some(Value::String(s)) => out.push_str(s),
                    Some(other) => out.push_str(&other.to_string()),
                    None => return Err(MissingVariable(name.clone())),
                },
            }
        }
        Ok(out)
    }

    /// Renders to a JSON value: a lone `{{variable}}` keeps the variable's type.
    pub fn render_value(&self, vars: &dyn Lookup) -> Result<Value, MissingVariable> {
        if let [Part::Variable(name)] = self.parts.as_slice() {
            return vars
                .get(name)
                .cloned()
                .ok_or_else(|| MissingVariable(name.clone()));
        }
        self.render(vars).map(Value::String)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Literal(s) => f.write_str(s)?,
                Part::Variable(v) => write!(f, "{{{{{v}}}}}")?,
            }
        }
        Ok(())
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// `text` with its `{{env.NAME}}` placeholders replaced, for a setting that is not rendered per
/// request (a handshake header, the target URL); any other variable is an error.
pub fn expand_env(text: &str) -> Result<String, TemplateError> {
    let t = Template::parse(text)?;
    match t.as_literal() {
        Some(s) => Ok(s.to_string()),
        None => Err(TemplateError::OnlyEnv {
            name: t.variables().next().unwrap_or_default().to_string(),
        }),
    }
}

/// A JSON value whose strings are templates.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonTemplate {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    /// Builds from a TOML value; the error names the malformed string.
    pub fn from_toml(value: &toml::Value) -> Result<Self, TemplateError> {
        Ok(match value {
            toml::Value::String(s) => Self::String(Template::parse(s)?),
            toml::Value::Integer(i) => Self::Number((*i).into()),
            toml::Value::Float(f) => Self::Number(
                serde_json::Number::from_f64(*f).ok_or(TemplateError::NotFinite { value: *f })?,
            ),
            toml::Value::Boolean(b) => Self::Bool(*b),
            toml::Value::Datetime(d) => Self::String(Template::literal(&d.to_string())),
            toml::Value::Array(items) => Self::Array(
                items
                    .iter()
                    .map(Self::from_toml)
                    .collect::<Result<_, _>>()?,
            ),
            toml::Value::Table(t) => Self::Object(
                t.iter()
                    .map(|(k, v)| Ok((k.clone(), Self::from_toml(v)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
        })
    }

    /// Every variable used anywhere inside.
    pub fn variables(&self, out: &mut BTreeSet<String>) {
        match self {
            Self::String(t) => out.extend(t.variables().map(str::to_string)),
            Self::Array(items) => items.iter().for_each(|i| i.variables(out)),
            Self::Object(fields) => fields.iter().for_each(|(_, v)| v.variables(out)),
            Self::Null | Self::Bool(_) | Self::Number(_) => {}
        }
    }

    pub fn render(&self, vars: &dyn Lookup) -> Result<Value, MissingVariable> {
        Ok(match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Number(n) => Value::Number(n.clone()),
            Self::String(t) => t.render_value(vars)?,
            Self::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| i.render(vars))
                    .collect::<Result<_, _>>()?,
            ),
            Self::Object(fields) => {
                let mut map = serde_json::Map::new();
                for (k, v) in fields {
                    map.insert(k.clone(), v.render(vars)?);
                }
                Value::Object(map)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn environment_values_are_read_when_the_template_is() {
        let t = Template::parse("Bearer {{env.PATH}}").unwrap();
        let path = std::env::var("PATH").unwrap();
        assert_eq!(t.as_literal(), Some(format!("Bearer {path}").as_str()));
        let t = Template::parse("{{ env.HARNESS_TEST_NOT_SET:-guest }}/{{id}}").unwrap();
        assert_eq!(t.variables().collect::<Vec<_>>(), ["id"]);
        assert_eq!(t.to_string(), "guest/{{id}}");
        let e = Template::parse("x{{env.HARNESS_TEST_NOT_SET}}").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("the environment variable HARNESS_TEST_NOT_SET is not set"),
            "{e}"
        );
        assert!(matches!(
            Template::parse("{{env.A-B}}"),
            Err(TemplateError::BadEnvName { .. })
        ));
    }

    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn vars() -> HashMap<String, Value> {
        HashMap::from([
            ("agent".to_string(), json!("agent-7")),
            ("version".to_string(), json!(3)),
        ])
    }

    #[test]
    fn renders_strings_and_keeps_lone_variables_typed() {
        let t = Template::parse("/agents/{{agent}}/v{{ version }}").unwrap();
        assert_eq!(t.render(&vars()).unwrap(), "/agents/agent-7/v3");
        assert_eq!(t.variables().collect::<Vec<_>>(), ["agent", "version"]);
        let lone = Template::parse("{{version}}").unwrap();
        assert_eq!(lone.render_value(&vars()).unwrap(), json!(3));
        assert_eq!(t.to_string(), "/agents/{{agent}}/v{{version}}");
    }

    #[test]
    fn malformed_templates_and_missing_variables_are_errors() {
        assert!(
            Template::parse("/a/{{agent")
                .unwrap_err()
                .to_string()
                .contains("without a closing")
        );
        assert!(
            Template::parse("{{9lives}}")
                .unwrap_err()
                .to_string()
                .contains("not a variable name")
        );
        let t = Template::parse("{{nobody}}").unwrap();
        assert_eq!(
            t.render(&vars()).unwrap_err(),
            MissingVariable("nobody".into())
        );
    }

    #[test]
    fn json_bodies_render_recursively() {
        let toml: toml::Value = toml::from_str(
            "owner = '{{agent}}'\nversion = '{{version}}'\ntags = ['x', '{{agent}}']\nn = 1.5",
        )
        .unwrap();
        let body = JsonTemplate::from_toml(&toml).unwrap();
        let mut used = BTreeSet::new();
        body.variables(&mut used);
        assert_eq!(used.into_iter().collect::<Vec<_>>(), ["agent", "version"]);
        assert_eq!(
            body.render(&vars()).unwrap(),
            json!({"owner": "agent-7", "version": 3, "tags": ["x", "agent-7"], "n": 1.5})
        );
    }
}
