//! Secrets kept out of everything the harness writes. A run knows some values are secret — the
//! password in a target URL (`http://user:pass@…`), a query parameter named like a credential
//! (`?access_token=…`), the value of a header that carries one (`Authorization`, `Cookie`,
//! `X-Api-Key`, anything named `*token*`, `*secret*`, `*key*`, `*password*`, `*auth*`) in a procedure
//! or a WebSocket handshake. A target may echo any of them back (in an error body, a frame), and
//! from there they would reach result.json, every report and the terminal; so every string of a
//! result has each such value replaced by [`MASK`], and URLs are written with their secrets masked.

use serde_json::Value;
use url::Url;

use crate::plan::{Endpoint, RunPlan, TargetPlan};
use crate::result::RunResult;

/// What a secret is replaced with.
pub const MASK: &str = "[redacted]";

/// Secrets shorter than this are not searched for in text (a one-letter "password" would mask every
/// occurrence of that letter); their URL and header places are still masked.
const MIN_LEN: usize = 4;

/// Whether a header or query parameter of this name carries a credential.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie" | "sig" | "signature"
    ) || [
        "token",
        "secret",
        "key",
        "password",
        "passwd",
        "auth",
        "session",
        "credential",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// `url` with its password and credential-named query values masked.
pub fn url(url: &Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some(MASK));
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_name(&k) {
                    MASK.to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// The secret values a run knows of.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Secrets {
    values: Vec<String>,
    /// Names the user listed (`redact = [...]`) beside the usual ones.
    listed: Vec<String>,
}

impl Secrets {
    /// The secrets in `plan`: its target URL's password and credential query values, and the literal
    /// values of credential headers in its procedure and its WebSocket handshake.
    pub fn of(plan: &RunPlan) -> Self {
        let mut s = Secrets {
            listed: plan.redact.clone(),
            ..Secrets::default()
        };
        if let Endpoint::At { url, .. } = &plan.endpoint {
            s.add_url(url);
        }
        match &plan.target {
            TargetPlan::Request(p) | TargetPlan::Procedure(p) => {
                for r in p.requests() {
                    for (name, value) in &r.headers {
                        if s.is_secret(name)
                            && let Some(v) = value.as_literal()
                        {
                            s.add_header_value(v);
                        }
                    }
                    use crate::procedure::model::RequestTarget;
                    let literal = match &r.target {
                        RequestTarget::Url(t) => t.as_literal().map(str::to_string),
                        // A path's query, read against any base.
                        RequestTarget::Path(t) => t
                            .as_literal()
                            .filter(|p| p.contains('?'))
                            .map(|p| format!("http://127.0.0.1{p}")),
                    };
                    if let Some(Ok(u)) = literal.as_deref().map(Url::parse) {
                        s.add_url(&u);
                    }
                }
            }
            TargetPlan::WebSocket(w) => {
                for (name, value) in &w.protocol.setup.headers {
                    if s.is_secret(name) {
                        s.add_header_value(value);
                    }
                }
            }
        }
        if let Some(b) = &plan.probes.body_size {
            for (name, value) in &b.headers {
                if s.is_secret(name) {
                    s.add_header_value(value);
                }
            }
        }
        // Whatever came from the environment through `{{env.NAME}}` is a secret wherever it went.
        for v in crate::config::env::secrets() {
            s.add(&v);
        }
        s.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        s.values.dedup();
        s
    }

    /// Whether a header or query parameter of this name carries a secret in this run.
    fn is_secret(&self, name: &str) -> bool {
        is_secret_name(name) || self.listed.iter().any(|l| l.eq_ignore_ascii_case(name))
    }

    fn add(&mut self, v: &str) {
        let v = v.trim();
        if v.len() >= MIN_LEN {
            self.values.push(v.to_string());
            // As a URL or a form would carry it.
            let encoded: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
            if encoded != v {
                self.values.push(encoded);
            }
        }
    }

    fn add_url(&mut self, u: &Url) {
        if let Some(p) = u.password() {
            self.add(p);
            let decoded = urlencoding_decode(p).unwrap_or_else(|_| p.to_string());
            self.add(&decoded);
            // The client sends a URL's user and password as Basic authorization.
            use base64::Engine;
            let user = urlencoding_decode(u.username()).unwrap_or_default();
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{decoded}"));
            self.add(&basic);
        }
        for (k, v) in u.query_pairs() {
            if self.is_secret(&k) {
                self.add(&v);
            }
        }
    }

    /// A header value, and the credential in it (`Bearer t0ken` → `t0ken` too).
    fn add_header_value(&mut self, v: &str) {
        self.add(v);
        if let Some((_, credential)) = v.split_once(' ') {
            self.add(credential);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every secret masked.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), MASK);
            }
        }
        out
    }

    /// `result` with every secret in every string masked (the target's URL included).
    pub fn result(&self, result: RunResult) -> RunResult {
        if self.is_empty() {
            return result;
        }
        let Ok(mut value) = serde_json::to_value(&result) else {
            return result;
        };
        self.walk(&mut value);
        serde_json::from_value(value).unwrap_or(result)
    }

    fn walk(&self, v: &mut Value) {
        match v {
            Value::String(s) => {
                let masked = self.text(s);
                if masked != *s {
                    *s = masked;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.walk(i)),
            Value::Object(map) => {
                // Keys too: error samples and headers are keyed by what a target sent.
                let keys: Vec<String> = map.keys().cloned().collect();
                for k in keys {
                    let masked = self.text(&k);
                    if masked != k
                        && let Some(inner) = map.remove(&k)
                    {
                        map.insert(masked.clone(), inner);
                    }
                    if let Some(inner) = map.get_mut(&masked) {
                        self.walk(inner);
                    }
                }
            }
            _ => {}
        }
    }
}

fn urlencoding_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes: Vec<u8> = url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())
        .unwrap_or_default();
    String::from_utf8(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password_and_credential_query_values() {
        let u =
            Url::parse("http://ann:hunter22@127.0.0.1:8080/x?access_token=abc123&page=2").unwrap();
        assert_eq!(
            url(&u),
            "http://ann:%5Bredacted%5D@127.0.0.1:8080/x?access_token=%5Bredacted%5D&page=2"
        );
        let plain = Url::parse("http://127.0.0.1:8080/x?page=2").unwrap();
        assert_eq!(url(&plain), "http://127.0.0.1:8080/x?page=2");
    }

    #[test]
    fn credential_names_are_recognised() {
        for yes in [
            "Authorization",
            "X-Api-Key",
            "api_key",
            "access_token",
            "Cookie",
            "X-Auth",
        ] {
            assert!(is_secret_name(yes), "{yes}");
        }
        for no in ["Content-Type", "Accept", "page", "id"] {
            assert!(!is_secret_name(no), "{no}");
        }
    }

    #[test]
    fn every_occurrence_is_masked_and_short_values_are_not_searched() {
        let mut s = Secrets::default();
        s.add_header_value("Bearer t0ken-xyz");
        s.add("ab");
        s.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        assert_eq!(
            s.text("denied: Bearer t0ken-xyz (t0ken-xyz) abc"),
            "denied: [redacted] ([redacted]) abc"
        );
    }
}
