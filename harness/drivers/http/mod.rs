//! The HTTP driver: runs a procedure (or a scenario's single request, which is a one-step procedure)
//! against an HTTP target. One iteration renders the variables, runs the setup requests, then the
//! steps in order — with per-attempt timeouts, retries of transient failures, captured values and
//! validation rules by severity — and when a step fails, the rollbacks of the steps that took effect,
//! verified by reading the target's state back.

mod checks;
mod client;
mod connect_timer;
mod h1;
mod retry;
mod rollback;
mod run_steps;
mod vars;

pub use client::{ClientError, MAX_BODY_BYTES, build_client};
pub use run_steps::{SetupDone, SetupFailed, TeardownDone};

use crate::net::is_loopback;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use url::Url;

use self::client::{Effect, Request, Response, send};
use self::vars::{Builtins, Vars};
use super::{Driver, IterationContext, Timer};
use crate::config::units::format_duration;
use crate::faults::{FaultPlan, Injected, inject};
use crate::history::Write;
use crate::iteration::{Failure, IterationReport, Outcome, RecordedSample, RetryTrace, StepSample};
use crate::procedure::{
    Method, Procedure, RequestTarget, RequestTemplate, RetryPolicy, Severity, Step,
};
use crate::taxonomy::ErrorKind;

/// What the driver needs beyond the procedure.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub run_id: String,
    pub seed: u64,
    /// How requests reach the target (the loopback gate, TLS, HTTP version).
    pub net: crate::net::Network,
    /// Time a rollback gets, counted from when it starts.
    pub iteration_timeout: Duration,
    /// Idle connections kept per host (about the number of workers).
    pub pool_size: usize,
}

pub struct HttpDriver {
    /// The HTTP/1.1 hot path, for the requests it serves (all of them, unless HTTP/2 is asked for).
    h1: Option<h1::H1Client>,
    /// One client, or for HTTP/2 one per connection the streams are spread over: requests the
    /// HTTP/1.1 client does not serve.
    clients: Vec<reqwest::Client>,
    next_client: AtomicU64,
    /// Responses by HTTP version.
    versions: Versions,
    /// Every new connection of the clients.
    connects: connect_timer::ConnectTimer,
    base: String,
    procedure: Arc<Procedure>,
    recorded: Vec<String>,
    builtins: vars::Used,
    /// Parsed URLs of request targets without variables, by their text (parsed once, not per
    /// request), with their request line and `Host` for the HTTP/1.1 client.
    literal_urls: std::collections::HashMap<String, (Arc<Url>, Option<h1::Target>)>,
    /// Some check or capture reads response headers, so responses keep theirs.
    keep_headers: bool,
    /// First attempts and retries so far of the steps with a retry budget, over every worker: what
    /// the budget is judged on.
    attempts: (AtomicU64, AtomicU64),
    /// What the run's setup captured, once it has run.
    fixtures: std::sync::OnceLock<vars::Fixtures>,
    settings: HttpSettings,
}

/// Notes the write `step` made, for the history check (if it declares one). A write whose key or
/// element cannot be rendered is left out: it names nothing the read-back could find.
fn wrote(step: &Step, vars: &Vars, acknowledged: bool, out: &mut Vec<Write>) {
    let Some(h) = &step.history else {
        return;
    };
    if let (Ok(key), Ok(element)) = (h.key.render(vars), h.element.render(vars)) {
        out.push(Write {
            key,
            element,
            acknowledged,
        });
    }
}

/// The iteration whose retries these are (their jitter is drawn from it), and what they cost.
pub(super) struct RetryLog {
    iteration: u64,
    trace: RetryTrace,
}

/// What running one step produced.
struct StepRun {
    latency: Duration,
    effect: Effect,
    result: Result<Response, Failure>,
    /// An injected fault says to treat the response as failing a critical rule.
    invalid: bool,
}

/// The failure of a step that an injected fault stopped.
fn injected<T>(fault: &Injected<T>, step: &Step) -> Failure {
    fault
        .failure(Some(&step.id))
        .unwrap_or_else(|| Failure::at(&step.id, ErrorKind::Injected, "injected fault"))
}

/// Responses counted by the HTTP version they came in.
#[derive(Debug, Default)]
struct Versions {
    http1: AtomicU64,
    http2: AtomicU64,
    other: AtomicU64,
}

impl HttpDriver {
    /// Sends `req` on the next client (round robin), counting the version of its response.
    async fn send(
        &self,
        req: &Request,
        deadline: Instant,
        timer: &mut Timer,
    ) -> Result<Response, client::SendError> {
        let result = match &self.h1 {
            Some(h1) if h1.serves(&req.url) => {
                let worker = timer.worker();
                client::bounded(Box::pin(h1.exchange(req, worker)), deadline, timer).await
            }
            _ => {
                let i = match self.clients.len() {
                    1 => 0,
                    n => self.next_client.fetch_add(1, Ordering::Relaxed) as usize % n,
                };
                send(&self.clients[i], req, deadline, timer).await
            }
        };
        if let Ok(resp) = &result {
            let counter = match resp.version {
                reqwest::Version::HTTP_10 | reqwest::Version::HTTP_11 => &self.versions.http1,
                reqwest::Version::HTTP_2 => &self.versions.http2,
                _ => &self.versions.other,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Responses by HTTP version so far (`"HTTP/1.1"`, `"HTTP/2"`), the versions seen only.
    pub fn protocols(&self) -> std::collections::BTreeMap<String, u64> {
        [
            ("HTTP/1.1", &self.versions.http1),
            ("HTTP/2", &self.versions.http2),
            ("other", &self.versions.other),
        ]
        .into_iter()
        .map(|(name, n)| (name.to_string(), n.load(Ordering::Relaxed)))
        .filter(|(_, n)| *n > 0)
        .collect()
    }

    /// The connections opened so far: how many, how many failed, and how long each took.
    pub fn connections(&self) -> crate::result::HttpConnections {
        let t = self.connects.0.lock().unwrap_or_else(|p| p.into_inner());
        crate::result::HttpConnections {
            opened: t.opened,
            failed: t.failed,
            connect_ms: crate::metrics::LatencySummary::of(&t.took),
            connect_hdr: (!t.took.is_empty()).then(|| crate::metrics::histogram::encode(&t.took)),
        }
    }

    pub fn new(
        procedure: Arc<Procedure>,
        base: &Url,
        settings: HttpSettings,
    ) -> Result<Self, client::ClientError> {
        let base = base.as_str().trim_end_matches('/').to_string();
        let connects = connect_timer::ConnectTimer::default();
        let mut literal_urls = std::collections::HashMap::new();
        for r in procedure.requests() {
            if let Some((key, text)) = match &r.target {
                RequestTarget::Path(t) => t
                    .as_literal()
                    .map(|p| (p.to_string(), format!("{base}{p}"))),
                RequestTarget::Url(t) => t.as_literal().map(|u| (u.to_string(), u.to_string())),
            } && let Ok(url) = Url::parse(&text)
            {
                let target = h1::Target::of(&url).ok();
                literal_urls.insert(key, (Arc::new(url), target));
            }
        }
        Ok(Self {
            h1: h1::H1Client::new(
                settings.pool_size,
                &settings.net,
                settings.net.time_connections.then_some(&connects),
            )?,
            clients: {
                let n = match settings.net.http {
                    crate::kinds::HttpVersion::Http2 => settings.net.http2_connections.max(1),
                    _ => 1,
                };
                (0..n)
                    .map(|_| {
                        client::build_timed_client(
                            settings.pool_size,
                            &settings.net,
                            settings.net.time_connections.then_some(&connects),
                        )
                    })
                    .collect::<Result<_, _>>()?
            },
            next_client: AtomicU64::new(0),
            versions: Versions::default(),
            connects,
            base,
            literal_urls,
            keep_headers: procedure.reads_headers(),
            attempts: (AtomicU64::new(0), AtomicU64::new(0)),
            fixtures: std::sync::OnceLock::new(),
            recorded: procedure
                .recorded_metrics()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            builtins: vars::Used::of(&procedure),
            procedure,
            settings,
        })
    }

    /// The recorded metrics, in the order of [`RecordedSample::metric`].
    pub fn recorded_metrics(&self) -> &[String] {
        &self.recorded
    }

    fn render(&self, req: &RequestTemplate, vars: &Vars, step: &str) -> Result<Request, Failure> {
        let fail = |kind, detail: String| Failure::at(step, kind, detail);
        let missing =
            |e: crate::config::template::MissingVariable| fail(ErrorKind::Template, e.to_string());
        let literal = match &req.target {
            RequestTarget::Path(t) | RequestTarget::Url(t) => t.as_literal(),
        };
        let cached = literal.and_then(|l| self.literal_urls.get(l));
        let (url, target) = match cached {
            Some((url, target)) => (Arc::clone(url), target.clone()),
            None => (Arc::new(self.render_url(req, vars, step)?), None),
        };
        if self.settings.net.reach == crate::net::Reach::Loopback && !is_loopback(&url) {
            return Err(fail(
                ErrorKind::Blocked,
                format!(
                    "refused to send to {url}: the host is outside loopback (allow it with --allow-remote)"
                ),
            ));
        }
        let mut headers = Vec::with_capacity(req.headers.len());
        for (name, value) in &req.headers {
            headers.push((name.clone(), value.render(vars).map_err(missing)?));
        }
        let body = match &req.body {
            Some(b) => Some(
                serde_json::to_vec(&b.render(vars).map_err(missing)?)
                    .unwrap_or_default()
                    .into(),
            ),
            None => None,
        };
        Ok(Request {
            method: method(req.method),
            url,
            target,
            headers,
            body,
            keep_headers: self.keep_headers,
        })
    }

    fn render_url(&self, req: &RequestTemplate, vars: &Vars, step: &str) -> Result<Url, Failure> {
        let fail = |kind, detail: String| Failure::at(step, kind, detail);
        let missing =
            |e: crate::config::template::MissingVariable| fail(ErrorKind::Template, e.to_string());
        let text = match &req.target {
            RequestTarget::Path(t) => {
                let path = t.render(vars).map_err(missing)?;
                // A path from a variable (a captured `Location`) may be a whole URL, or relative.
                if path.starts_with("http://") || path.starts_with("https://") {
                    path
                } else if path.starts_with('/') {
                    format!("{}{}", self.base, path)
                } else {
                    format!("{}/{}", self.base, path)
                }
            }
            RequestTarget::Url(t) => t.render(vars).map_err(missing)?,
        };
        Url::parse(&text).map_err(|e| {
            fail(
                ErrorKind::Template,
                format!("`{text}` is not a valid URL: {e}"),
            )
        })
    }

    /// Runs step `index`: every attempt, under the iteration's fault when it falls on this step.
    async fn run_step(
        &self,
        (index, step): (usize, &Step),
        vars: &Vars,
        deadline: Instant,
        fault: Option<FaultPlan>,
        (timer, log): (&mut Timer, &mut RetryLog),
    ) -> StepRun {
        let started = Instant::now();
        let step_deadline = step
            .timeout
            .map_or(deadline, |t| (started + t).min(deadline));
        let attempts = self.attempts((index, step), vars, deadline, timer, log);
        let Some(fault) = fault.filter(|f| f.step == index) else {
            // No fault here (nearly always): the attempts alone, not inside `inject`'s larger future.
            let (effect, result) = attempts.await;
            return StepRun {
                latency: started.elapsed(),
                effect,
                result,
                invalid: false,
            };
        };
        let outcome = inject(Some(fault), index, step_deadline, Box::pin(attempts)).await;
        let (effect, result, invalid) = match outcome {
            Injected::Ran((effect, result)) => (effect, result, false),
            Injected::Invalid((effect, result)) => (effect, result, true),
            refused @ Injected::Refused => (Effect::None, Err(injected(&refused, step)), false),
            withheld @ Injected::Withheld(_) => {
                (Effect::Maybe, Err(injected(&withheld, step)), false)
            }
        };
        StepRun {
            latency: started.elapsed(),
            effect,
            result,
            invalid,
        }
    }

    /// Sends a step's request, retrying transient failures (after the policy's backoff, or the
    /// target's `Retry-After`) while time remains.
    async fn attempts(
        &self,
        (index, step): (usize, &Step),
        vars: &Vars,
        deadline: Instant,
        timer: &mut Timer,
        log: &mut RetryLog,
    ) -> (Effect, Result<Response, Failure>) {
        let fail = |kind, detail: String| Failure::at(&step.id, kind, detail);
        let req = match self.render(&step.request, vars, &step.id) {
            Ok(r) => r,
            Err(f) => return (Effect::None, Err(f)),
        };
        let mut effect = Effect::None;
        let policy = &step.retry;
        let mut attempt = 0;
        if policy.budget.is_some() {
            self.attempts.0.fetch_add(1, Ordering::Relaxed);
        }
        loop {
            let attempt_deadline = step
                .timeout
                .map_or(deadline, |t| (Instant::now() + t).min(deadline));
            let (mut failure, transient, retry_after) =
                match self.send(&req, attempt_deadline, timer).await {
                    Ok(resp) if step.expect.contains(resp.status) => {
                        return (Effect::Applied, Ok(resp));
                    }
                    Ok(resp) => {
                        let kind = match resp.status {
                            429 => ErrorKind::RateLimited,
                            400..=499 => ErrorKind::Http4xx,
                            500..=599 => ErrorKind::Http5xx,
                            _ => ErrorKind::HttpOther,
                        };
                        if resp.status >= 500 {
                            effect = effect.max(Effect::Maybe);
                        }
                        let transient = resp.status >= 500 || resp.status == 429;
                        let detail = format!("{} (expected {})", resp.describe(), step.expect);
                        (fail(kind, detail), transient, resp.retry_after)
                    }
                    Err(e) => {
                        effect = effect.max(e.effect);
                        let transient = matches!(e.kind, ErrorKind::Connect | ErrorKind::Timeout);
                        (fail(e.kind, e.detail), transient, None)
                    }
                };
            let stop = if !transient || attempt >= policy.retries {
                None
            } else {
                match self.retry_wait(policy, (index, attempt), retry_after.as_deref(), log) {
                    Err(why) => Some(why),
                    Ok(wait) if Instant::now() + wait.duration() >= deadline => Some(format!(
                        "no time left to wait {} before retrying",
                        format_duration(wait.duration())
                    )),
                    Ok(wait) => {
                        if policy.budget.is_some() {
                            self.attempts.1.fetch_add(1, Ordering::Relaxed);
                        }
                        log.trace.retried.push(failure.kind);
                        log.trace.waited += wait.duration();
                        if matches!(wait, retry::Wait::RetryAfter(_)) {
                            log.trace.honoured_retry_after += 1;
                        }
                        tokio::time::sleep(wait.duration()).await;
                        attempt += 1;
                        continue;
                    }
                }
            };
            if attempt > 0 {
                failure.detail = format!("{} (after {} attempts)", failure.detail, attempt + 1);
            }
            if let Some(why) = stop {
                failure.detail = format!("{}; not retried: {why}", failure.detail);
            }
            return (effect, Err(failure));
        }
    }

    /// How long to wait before retry `attempt` of step `index`, or why not to retry: the run's retry
    /// budget is spent, or the target asked for longer than the policy allows.
    fn retry_wait(
        &self,
        policy: &RetryPolicy,
        (index, attempt): (usize, u32),
        retry_after: Option<&str>,
        log: &mut RetryLog,
    ) -> Result<retry::Wait, String> {
        if let Some(share) = policy.budget {
            let (firsts, retries) = (
                self.attempts.0.load(Ordering::Relaxed),
                self.attempts.1.load(Ordering::Relaxed),
            );
            if retries as f64 >= share * firsts as f64 + RetryPolicy::BUDGET_FLOOR as f64 {
                log.trace.over_budget += 1;
                return Err(format!(
                    "the retry budget ({:.0}% of first attempts) is spent",
                    share * 100.0
                ));
            }
        }
        let jitter = retry::jitter(self.settings.seed, log.iteration, index, attempt);
        match retry::wait(policy, attempt, jitter, retry_after, SystemTime::now()) {
            retry::Wait::BeyondCap(asked) => {
                log.trace.beyond_cap += 1;
                Err(format!(
                    "the target asked to retry after {}, beyond max_retry_after",
                    format_duration(asked)
                ))
            }
            wait => Ok(wait),
        }
    }

    /// Reads the collection at `key` back (the procedure's `[read_back]`): its elements as text.
    pub async fn read_back(&self, key: &str) -> Result<Vec<String>, String> {
        let rb = self
            .procedure
            .read_back
            .as_ref()
            .ok_or("the procedure has no [read_back]")?;
        let mut vars = Vars::of(&[
            ("key", Value::String(key.to_string())),
            ("run_id", Value::String(self.settings.run_id.clone())),
            ("seed", serde_json::json!(self.settings.seed)),
        ]);
        for (name, value) in self.fixtures.get().map_or(&[][..], |f| &f.fixed) {
            vars.set(name, value.clone());
        }
        let req = self
            .render(&rb.request, &vars, "read_back")
            .map_err(|f| f.detail)?;
        let deadline = Instant::now() + self.settings.iteration_timeout;
        let mut timer = Timer::new();
        let resp = self
            .send(&req, deadline, &mut timer)
            .await
            .map_err(|e| e.detail)?;
        if !(200..300).contains(&resp.status) {
            return Err(resp.describe());
        }
        let body = resp.json().map_err(|e| e.to_string())?;
        let items = body
            .pointer(&rb.elements)
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{} is not an array in the response", rb.elements))?;
        items
            .iter()
            .map(|item| match item.pointer(&rb.element) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Ok(other.to_string()),
                None => Err(format!("an item has no {}", rb.element)),
            })
            .collect()
    }

    /// Notes what a successful response of an `ack` step acknowledged.
    fn acknowledged(step: &Step, resp: &Response, out: &mut Vec<crate::invariants::Ack>) {
        if step.ack.is_some()
            && let Some(ack) = resp
                .json()
                .ok()
                .and_then(crate::invariants::Ack::from_response)
        {
            out.push(ack);
        }
    }

    /// Values the target reported for the recorded metrics of `step`.
    fn recorded_values(&self, step: &Step, resp: &Response, out: &mut Vec<RecordedSample>) {
        if step.records.is_empty() {
            return;
        }
        let Ok(json) = resp.json() else { return };
        for r in &step.records {
            let metric = self.recorded.iter().position(|m| *m == r.metric);
            if let (Some(metric), Some(millis)) =
                (metric, json.pointer(&r.pointer).and_then(|v| v.as_f64()))
            {
                out.push(RecordedSample { metric, millis });
            }
        }
    }
}

fn method(m: Method) -> reqwest::Method {
    match m {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Patch => reqwest::Method::PATCH,
        Method::Delete => reqwest::Method::DELETE,
        Method::Head => reqwest::Method::HEAD,
        Method::Options => reqwest::Method::OPTIONS,
    }
}

/// Applies a step's captures; a value missing from the response fails the step.
fn capture(step: &Step, resp: &Response, vars: &mut Vars) -> Result<(), Failure> {
    let fail = |detail: String| Failure::at(&step.id, ErrorKind::Capture, detail);
    for (variable, name) in &step.header_captures {
        match resp.header(name) {
            Some(v) => vars.set(variable, Value::String(v.to_string())),
            None => {
                return Err(fail(format!(
                    "the response has no {name} header, so `{variable}` has no value"
                )));
            }
        }
    }
    if step.captures.is_empty() {
        return Ok(());
    }
    let json = resp.json().map_err(|e| fail(e.to_string()))?;
    for c in &step.captures {
        match json.pointer(&c.pointer) {
            Some(v) => vars.set(&c.variable, v.clone()),
            None => {
                return Err(fail(format!(
                    "{} is not in the response, so `{}` has no value",
                    c.pointer, c.variable
                )));
            }
        }
    }
    Ok(())
}

impl Driver for HttpDriver {
    async fn iterate(&self, ctx: IterationContext, timer: &mut Timer) -> IterationReport {
        let mut report = IterationReport::succeeded();
        let mut rng = ctx.rng;
        let builtins = Builtins {
            iteration: ctx.index,
            worker: ctx.worker,
            run_id: &self.settings.run_id,
            seed: self.settings.seed,
            used: &self.builtins,
        };
        let mut vars = match Vars::start(&self.procedure, &builtins, self.fixtures.get(), &mut rng)
        {
            Ok(v) => v,
            Err(e) => {
                return IterationReport::failed(Failure {
                    kind: ErrorKind::Template,
                    rule: None,
                    step: None,
                    detail: e.to_string(),
                });
            }
        };
        let mut log = RetryLog {
            iteration: ctx.index,
            trace: RetryTrace::default(),
        };
        for s in &self.procedure.setup {
            let run = self
                .run_step((0, s), &vars, ctx.deadline, None, (timer, &mut log))
                .await;
            let outcome = run.result.and_then(|resp| {
                self.recorded_values(s, &resp, &mut report.recorded);
                capture(s, &resp, &mut vars)
            });
            if let Err(f) = outcome {
                report.outcome = Outcome::Failed(Failure {
                    step: Some(format!("setup {}", s.id)),
                    ..f
                });
                report.retries = log.trace;
                return report;
            }
        }

        let steps = &self.procedure.steps;
        let mut effects = vec![Effect::None; steps.len()];
        let mut high: Option<Failure> = None;
        let mut failed: Option<(usize, Failure)> = None;
        'steps: for (i, step) in steps.iter().enumerate() {
            let run = self
                .run_step((i, step), &vars, ctx.deadline, ctx.fault, (timer, &mut log))
                .await;
            report.steps.push(StepSample {
                step: i,
                latency: run.latency,
                ok: run.result.is_ok() && !run.invalid,
            });
            effects[i] = run.effect;
            let resp = match run.result {
                Ok(resp) => resp,
                Err(f) => {
                    if run.effect == Effect::Maybe {
                        wrote(step, &vars, false, &mut report.writes);
                    }
                    failed = Some((i, f));
                    break;
                }
            };
            self.recorded_values(step, &resp, &mut report.recorded);
            Self::acknowledged(step, &resp, &mut report.acks);
            if let Err(f) = capture(step, &resp, &mut vars) {
                failed = Some((i, f));
                break;
            }
            wrote(step, &vars, true, &mut report.writes);
            // Like a failed rule, after the captures: the rollback may need what the response said.
            if run.invalid {
                failed = Some((i, injected(&Injected::Invalid(()), step)));
                break;
            }
            for rule in self.procedure.rules_for(i) {
                let Err(why) = checks::evaluate(&rule.check, &resp, &vars) else {
                    continue;
                };
                let failure = Failure {
                    kind: ErrorKind::Validation,
                    rule: Some(rule.id.clone()),
                    step: Some(step.id.clone()),
                    detail: format!("{} ({}) failed: {why}", rule.id, rule.name),
                };
                match rule.severity {
                    Severity::Critical => {
                        failed = Some((i, failure));
                        break 'steps;
                    }
                    Severity::High => {
                        high.get_or_insert(failure);
                    }
                    Severity::Medium | Severity::Low => report.warnings.push(rule.id.clone()),
                }
            }
        }
        if let Some((i, failure)) = failed {
            report.rollback_withheld = matches!(
                rollback::due(&self.procedure, i, &effects),
                rollback::Due::Irreversible(_)
            );
            // Boxed: the rollback's future would make every iteration's as large as itself (rare path).
            report.rollback = Box::pin(rollback::run(
                self,
                i,
                &effects,
                &mut vars,
                &mut report.acks,
                (timer, &mut log),
            ))
            .await;
            report.outcome = Outcome::Failed(failure);
        } else if let Some(failure) = high {
            report.outcome = Outcome::Failed(failure);
        }
        report.retries = log.trace;
        report
    }
}
