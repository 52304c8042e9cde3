//! The largest request body an HTTP target accepts. With a declared limit, bodies of exactly the
//! limit, one byte more, and far more are sent: the first must be accepted, the others kept out (a
//! `reject_status`, by default 413, or the connection closed on them). With a search, the limit is
//! found first by bisection between a size accepted and a size refused — to the byte, in about
//! log2(range) requests — and then judged the same way.

use std::time::{Duration, Instant};

use url::Url;

use super::ProbeError;
use crate::result::CheckResult;
use crate::result::body_size::{BodyAttempt, BodyOutcome, BodySizeMetrics};
use crate::scenario::websocket::BodySizeProbe;

/// What the probe is about to do, for the progress display.
pub fn describe(p: &BodySizeProbe) -> String {
    match (p.declared, p.search) {
        (_, Some((lo, hi))) => format!(
            "searching for the body-size limit of {} {} between {lo} and {hi} bytes",
            p.method, p.path
        ),
        (Some(limit), None) => format!(
            "probing the body-size limit of {} {}: {limit} bytes declared",
            p.method, p.path
        ),
        (None, None) => format!("probing the body-size limit of {} {}", p.method, p.path),
    }
}

/// Sends bodies and classifies what came back.
struct Sender<'a> {
    client: reqwest::Client,
    url: Url,
    p: &'a BodySizeProbe,
    timeout: Duration,
    attempts: Vec<BodyAttempt>,
}

impl Sender<'_> {
    async fn send(&mut self, purpose: &str, bytes: u64) -> BodyOutcome {
        let Some(body) = self.p.body(bytes) else {
            return BodyOutcome::Other;
        };
        let method =
            reqwest::Method::from_bytes(self.p.method.as_bytes()).unwrap_or(reqwest::Method::POST);
        let mut req = self
            .client
            .request(method, self.url.clone())
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, &self.p.content_type);
        for (name, value) in &self.p.headers {
            req = req.header(name, value);
        }
        let started = Instant::now();
        let sent = req.body(body).send().await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let (status, outcome, error) = match sent {
            Ok(resp) => {
                let code = resp.status().as_u16();
                let outcome = if self.p.reject_status.contains(&code) {
                    BodyOutcome::Refused
                } else if (200..400).contains(&code) {
                    BodyOutcome::Accepted
                } else {
                    BodyOutcome::Other
                };
                (Some(code), outcome, None)
            }
            Err(e) if e.is_timeout() => (None, BodyOutcome::Timeout, Some(error_text(&e))),
            Err(e) => (None, BodyOutcome::Closed, Some(error_text(&e))),
        };
        self.attempts.push(BodyAttempt {
            purpose: purpose.into(),
            bytes,
            status,
            outcome,
            ms,
            error,
        });
        outcome
    }

    fn last(&self) -> Option<&BodyAttempt> {
        self.attempts.last()
    }
}

/// An error with its causes, on one line.
fn error_text(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// How an attempt went, in words.
fn told(a: &BodyAttempt) -> String {
    match (a.status, a.outcome, &a.error) {
        (Some(code), _, _) => format!("{} bytes: {code}", a.bytes),
        (None, BodyOutcome::Timeout, _) => format!("{} bytes: no answer in time", a.bytes),
        (None, _, Some(e)) => format!(
            "{} bytes: the connection closed without a status ({e})",
            a.bytes
        ),
        (None, _, None) => format!("{} bytes: no answer", a.bytes),
    }
}

/// Bisection between `lo` (should be accepted) and `hi` (should be kept out): the largest size
/// accepted with the next one kept out, or why there is none.
async fn search(s: &mut Sender<'_>, mut lo: u64, mut hi: u64) -> Result<u64, String> {
    if s.send("search", lo).await != BodyOutcome::Accepted {
        let a = s.last().map(told).unwrap_or_default();
        return Err(format!(
            "the smallest size of the search was not accepted ({a}): the route may not take this \
             body at all"
        ));
    }
    match s.send("search", hi).await {
        BodyOutcome::Accepted => {
            return Err(format!(
                "{hi} bytes was accepted: the limit, if any, is above the search"
            ));
        }
        o if o.kept_out() => {}
        _ => {
            let a = s.last().map(told).unwrap_or_default();
            return Err(format!(
                "{a}, neither accepted nor refused as too large (reject_status {:?})",
                s.p.reject_status
            ));
        }
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match s.send("search", mid).await {
            BodyOutcome::Accepted => lo = mid,
            o if o.kept_out() => hi = mid,
            _ => {
                let a = s.last().map(told).unwrap_or_default();
                return Err(format!(
                    "{a}, neither accepted nor refused as too large (reject_status {:?})",
                    s.p.reject_status
                ));
            }
        }
    }
    Ok(lo)
}

/// Runs the probe: the metrics, and the named checks.
pub async fn probe_http(
    base: &Url,
    p: &BodySizeProbe,
    timeout: Duration,
    net: &crate::net::Network,
) -> Result<(BodySizeMetrics, Vec<CheckResult>), ProbeError> {
    let url = base.join(&p.path).map_err(|source| ProbeError::Url {
        base: base.clone(),
        path: p.path.clone(),
        source,
    })?;
    let client = crate::drivers::http::build_client(1, net).map_err(ProbeError::Client)?;
    let mut s = Sender {
        client,
        url,
        p,
        timeout,
        attempts: Vec::new(),
    };
    let mut checks = Vec::new();
    let mut m = BodySizeMetrics {
        declared_limit: p.declared,
        ..BodySizeMetrics::default()
    };
    let found = match p.search {
        Some((lo, hi)) => {
            let found = search(&mut s, lo, hi).await;
            let requests = s.attempts.len();
            let (passed, detail) = match (&found, p.declared) {
                (Ok(f), Some(d)) if *f == d => (
                    true,
                    format!("found {f} bytes, as declared ({requests} requests)"),
                ),
                (Ok(f), Some(d)) => (
                    false,
                    format!(
                        "found {f} bytes, declared {d} ({:+} bytes; {requests} requests)",
                        *f as i64 - d as i64
                    ),
                ),
                (Ok(f), None) => (
                    true,
                    format!("found {f} bytes between {lo} and {hi} ({requests} requests)"),
                ),
                (Err(why), _) => (false, why.clone()),
            };
            checks.push(CheckResult::new("body_size.found", passed, detail));
            if let Err(why) = &found {
                m.note = Some(why.clone());
            }
            found.ok()
        }
        None => None,
    };
    // Judge the declared limit if there is one, else the one found.
    if let Some(limit) = p.declared.or(found) {
        let at = s.send("at_limit", limit).await;
        let at_told = s.last().map(told).unwrap_or_default();
        checks.push(CheckResult::new(
            "body_size.at_limit",
            at == BodyOutcome::Accepted,
            format!("a body of exactly the limit should be accepted: {at_told}"),
        ));
        let over = s.send("over_limit", limit + 1).await;
        let over_told = s.last().map(told).unwrap_or_default();
        checks.push(CheckResult::new(
            "body_size.over_limit",
            over.kept_out(),
            format!(
                "one byte over should be refused ({:?}): {over_told}",
                p.reject_status
            ),
        ));
        let far = p.far_over(limit);
        let far_outcome = s.send("far_over_limit", far).await;
        let far_told = s.last().map(told).unwrap_or_default();
        checks.push(CheckResult::new(
            "body_size.far_over_limit",
            far_outcome.kept_out(),
            format!("far over should be refused, and promptly: {far_told}"),
        ));
        // Without a search, a declared limit the target keeps to the byte is found too.
        m.found_limit = match p.search {
            Some(_) => found,
            None => (at == BodyOutcome::Accepted && over.kept_out()).then_some(limit),
        };
    }
    m.attempts = s.attempts;
    Ok((m, checks))
}
