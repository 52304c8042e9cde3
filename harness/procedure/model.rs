//! A validated handoff procedure: ordered steps (HTTP requests with captures), validation rules with
//! severities, rollbacks tied to the steps they undo, and the checks that verify a rollback restored
//! the target's state. Built only by [`super::validate`], so every value here has been checked.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::template::{JsonTemplate, Template};

/// Variables every iteration provides without declaring them.
pub const BUILTIN_VARIABLES: &[&str] = &["iteration", "worker", "run_id", "uuid", "seed"];

/// Variables a request of `[[run_setup]]` or `[[run_teardown]]` has without declaring them: no
/// iteration or worker, but the repetition it is (`index`, from 0).
pub const RUN_VARIABLES: &[&str] = &["run_id", "uuid", "seed", "index"];

#[derive(Debug, Clone)]
pub struct Procedure {
    pub name: String,
    pub description: String,
    /// The file it came from, for messages.
    pub source: String,
    pub variables: Vec<Variable>,
    /// Requests that prepare each iteration's fixtures before the first step; not rolled back.
    pub setup: Vec<Step>,
    /// Requests sent once before the load; what they capture every iteration has.
    pub run_setup: Vec<RunStep>,
    /// Requests sent once after the load (also after a failed setup, for what it made).
    pub run_teardown: Vec<RunStep>,
    pub steps: Vec<Step>,
    pub rules: Vec<Rule>,
    pub rollbacks: Vec<Rollback>,
    /// Reads each collection the history wrote to back after the run.
    pub read_back: Option<ReadBack>,
}

impl Procedure {
    /// Rules that apply to the step at `index`, in file order.
    pub fn rules_for(&self, index: usize) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(move |r| r.step == index)
    }

    /// Whether any step can be rolled back.
    pub fn has_rollbacks(&self) -> bool {
        !self.rollbacks.is_empty()
    }

    /// What the metric catalogue needs to know of it.
    pub fn facts(&self) -> crate::thresholds::ProcedureFacts {
        crate::thresholds::ProcedureFacts {
            steps: self.steps.iter().map(|s| s.id.clone()).collect(),
            rules: self.rules.iter().map(|r| r.id.clone()).collect(),
            records: self
                .recorded_metrics()
                .iter()
                .map(|r| r.to_string())
                .collect(),
            has_rollbacks: self.has_rollbacks(),
            has_warnings: self
                .rules
                .iter()
                .any(|r| r.severity >= super::Severity::Medium),
            has_retries: self.has_retries(),
            has_history: self.read_back.is_some(),
            has_acks: self.steps.iter().any(|s| s.ack.is_some()),
        }
    }

    /// Whether some check or capture reads response headers.
    pub fn reads_headers(&self) -> bool {
        let steps = self
            .setup
            .iter()
            .chain(&self.steps)
            .chain(self.rollbacks.iter().flat_map(|r| &r.steps))
            .chain(
                self.run_setup
                    .iter()
                    .chain(&self.run_teardown)
                    .map(|r| &r.step),
            );
        let mut checks = self.rules.iter().map(|r| &r.check).chain(
            self.rollbacks
                .iter()
                .flat_map(|r| r.verify.iter().flat_map(|v| &v.checks)),
        );
        steps.clone().any(|s| !s.header_captures.is_empty()) || checks.any(Check::reads_headers)
    }

    /// Whether any request of the procedure may be retried.
    pub fn has_retries(&self) -> bool {
        self.setup
            .iter()
            .chain(&self.steps)
            .chain(self.rollbacks.iter().flat_map(|r| &r.steps))
            .any(|s| s.retry.retries > 0)
    }

    /// Every request the procedure can send: the run's setup and teardown, setup, steps, rollback
    /// steps and verifications.
    pub fn requests(&self) -> impl Iterator<Item = &RequestTemplate> {
        self.run_setup
            .iter()
            .chain(&self.run_teardown)
            .map(|r| &r.step)
            .chain(&self.setup)
            .chain(&self.steps)
            .chain(self.rollbacks.iter().flat_map(|r| &r.steps))
            .map(|s| &s.request)
            .chain(
                self.rollbacks
                    .iter()
                    .flat_map(|r| r.verify.iter().map(|v| &v.request)),
            )
            .chain(self.read_back.iter().map(|r| &r.request))
    }

    /// Every variable some template of the procedure uses.
    pub fn variables_used(&self) -> std::collections::BTreeSet<String> {
        let mut used = std::collections::BTreeSet::new();
        for v in &self.variables {
            match &v.value {
                VariableValue::Template(t) => used.extend(t.variables().map(str::to_string)),
                VariableValue::OneOf(ts) => ts
                    .iter()
                    .for_each(|t| used.extend(t.variables().map(str::to_string))),
                VariableValue::Pad(_) => {}
            }
        }
        for r in self.requests() {
            r.variables(&mut used);
        }
        let checks = self.rules.iter().map(|r| &r.check).chain(
            self.rollbacks
                .iter()
                .flat_map(|r| r.verify.iter().flat_map(|v| &v.checks)),
        );
        fn check_variables(c: &Check, used: &mut std::collections::BTreeSet<String>) {
            match c {
                Check::Equals { value, .. } | Check::Contains { value, .. } => {
                    value.variables(used)
                }
                Check::OneOf { values, .. } => values.iter().for_each(|v| v.variables(used)),
                Check::Header {
                    test: HeaderTest::Equals(t),
                    ..
                } => used.extend(t.variables().map(str::to_string)),
                Check::Not(c) => check_variables(c, used),
                _ => {}
            }
        }
        for c in checks {
            check_variables(c, &mut used);
        }
        used
    }

    /// Names of the histograms that steps fill from values their responses report.
    pub fn recorded_metrics(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .setup
            .iter()
            .chain(&self.steps)
            .flat_map(|s| s.records.iter().map(|r| r.metric.as_str()))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

#[derive(Debug, Clone)]
pub struct Variable {
    pub name: String,
    pub value: VariableValue,
}

#[derive(Debug, Clone)]
pub enum VariableValue {
    /// The same template every iteration (it may use the built-ins, e.g. `agent-{{iteration}}`).
    Template(Template),
    /// One of these, chosen per iteration from the run's seed.
    OneOf(Vec<Template>),
    /// Padding: this many bytes of `x`, e.g. to make a body of a given size.
    Pad(usize),
}

#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    pub name: String,
    pub request: RequestTemplate,
    /// Status codes that count as the request having worked; anything else fails the step.
    pub expect: StatusSet,
    /// Per attempt; `None` leaves the step bounded only by the iteration's timeout.
    pub timeout: Option<Duration>,
    /// Further attempts after a transient failure (connection error, timeout, 5xx, 429), and the
    /// waits between them.
    pub retry: RetryPolicy,
    pub captures: Vec<Capture>,
    /// Values taken from response headers: (variable, header name).
    pub header_captures: Vec<(String, String)>,
    pub records: Vec<Record>,
    /// What a successful response acknowledges, for the history invariant checks read.
    pub ack: Option<AckKind>,
    /// Once it has taken effect it cannot be undone (an approval, a sign-off): a later failure runs
    /// no rollback of it or of the steps before it, except a rollback that names it in `undoes` (its
    /// compensation).
    pub irreversible: bool,
    /// The write a successful response acknowledges, for the history check.
    pub history: Option<HistoryWrite>,
}

/// A request of the run's own, sent once before the load or after it.
#[derive(Debug, Clone)]
pub struct RunStep {
    pub step: Step,
    /// `[[run_setup]]`: sent this many times; with `repeat` written, what the step captures is a
    /// pool (one value per request) each iteration draws one value from, else one value for all.
    pub repeat: Option<u32>,
    /// `[[run_teardown]]`: sent once for each value of this pool, the variable naming the value.
    pub for_each: Option<String>,
}

impl RunStep {
    /// The variables the step captures (from its body and its headers).
    pub fn captured(&self) -> impl Iterator<Item = &str> {
        self.step
            .captures
            .iter()
            .map(|c| c.variable.as_str())
            .chain(self.step.header_captures.iter().map(|(v, _)| v.as_str()))
    }
}

/// A write to a collection: add `element` to the collection at `key`.
#[derive(Debug, Clone)]
pub struct HistoryWrite {
    pub key: Template,
    pub element: Template,
}

/// How to read a collection back after the run: a request (which may use `{{key}}`), the array in its
/// response, and where in each item the element is.
#[derive(Debug, Clone)]
pub struct ReadBack {
    pub request: RequestTemplate,
    /// JSON pointer to the array.
    pub elements: String,
    /// JSON pointer into each item of the array; empty: the item itself.
    pub element: String,
}

/// How a step's request is tried again after a transient failure.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Further attempts; 0: none.
    pub retries: u32,
    pub backoff: Backoff,
    /// The wait before the first retry (then doubled each time, when exponential).
    pub delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
    /// Honour a `Retry-After` up to this long (a longer one ends the retries); `None`: ignore it.
    pub retry_after_cap: Option<Duration>,
    /// Retries may add at most this share to the run's first attempts (beyond a first few), so
    /// that a failing service is not hammered by its clients' retries; `None`: no budget.
    pub budget: Option<f64>,
}

impl RetryPolicy {
    /// Retries a budget always allows, however few first attempts there were.
    pub const BUDGET_FLOOR: u64 = 10;

    pub const DEFAULT_DELAY: Duration = Duration::from_millis(50);
    pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(1);
    pub const DEFAULT_RETRY_AFTER_CAP: Duration = Duration::from_secs(10);

    /// `retries` further attempts with the default waits.
    pub fn with_retries(retries: u32) -> Self {
        Self {
            retries,
            backoff: Backoff::Exponential,
            delay: Self::DEFAULT_DELAY,
            max_delay: Self::DEFAULT_MAX_DELAY,
            retry_after_cap: Some(Self::DEFAULT_RETRY_AFTER_CAP),
            budget: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    Fixed,
    Exponential,
}

/// Operations whose acknowledgements the harness records (Jepsen style) and checks afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckKind {
    /// A resource changed hands; the response carries `resource_id`, `previous_owner`, `owner` and
    /// `version` (the coordination API's transfer).
    Transfer,
}

/// A duration the target reports in its response (in milliseconds, at a JSON pointer), recorded into a
/// histogram of its own: e.g. the lock wait a service measured while serving the request.
#[derive(Debug, Clone)]
pub struct Record {
    /// Metric name, e.g. `lock.acquire`; thresholds use `lock.acquire.p95`.
    pub metric: String,
    pub pointer: String,
}

/// A value taken from a JSON response into a variable for later steps.
#[derive(Debug, Clone)]
pub struct Capture {
    pub variable: String,
    /// RFC 6901 JSON pointer, e.g. `/data/id`.
    pub pointer: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
}

impl Method {
    pub const ALL: [(&'static str, Method); 7] = [
        ("GET", Method::Get),
        ("POST", Method::Post),
        ("PUT", Method::Put),
        ("PATCH", Method::Patch),
        ("DELETE", Method::Delete),
        ("HEAD", Method::Head),
        ("OPTIONS", Method::Options),
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map(|(_, m)| *m)
    }

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("GET", |(name, _)| name)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a request goes: a path joined to the target's base URL, or a full URL.
#[derive(Debug, Clone)]
pub enum RequestTarget {
    Path(Template),
    Url(Template),
}

#[derive(Debug, Clone)]
pub struct RequestTemplate {
    pub method: Method,
    pub target: RequestTarget,
    pub headers: Vec<(String, Template)>,
    pub body: Option<JsonTemplate>,
}

impl RequestTemplate {
    /// Adds the variables the request uses (in its path or URL, headers and body) to `out`.
    pub fn variables(&self, out: &mut std::collections::BTreeSet<String>) {
        match &self.target {
            RequestTarget::Path(t) | RequestTarget::Url(t) => {
                out.extend(t.variables().map(str::to_string))
            }
        }
        for (_, h) in &self.headers {
            out.extend(h.variables().map(str::to_string));
        }
        if let Some(b) = &self.body {
            b.variables(out);
        }
    }

    /// `POST /api/v1/...` for messages and reports.
    pub fn describe(&self) -> String {
        let where_ = match &self.target {
            RequestTarget::Path(t) | RequestTarget::Url(t) => t.to_string(),
        };
        format!("{} {}", self.method, where_)
    }
}

/// Accepted status codes: exact codes and whole classes (`2xx`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(pub Vec<StatusMatch>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    Exact(u16),
    /// The hundreds digit: `2` for `2xx`.
    Class(u16),
}

impl StatusSet {
    pub fn success() -> Self {
        Self(vec![StatusMatch::Class(2)])
    }

    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|m| match m {
            StatusMatch::Exact(c) => *c == status,
            StatusMatch::Class(c) => status / 100 == *c,
        })
    }
}

impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|m| match m {
                StatusMatch::Exact(c) => c.to_string(),
                StatusMatch::Class(c) => format!("{c}xx"),
            })
            .collect();
        f.write_str(&parts.join(" or "))
    }
}

/// How much a failed rule matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Fails the step at once and triggers rollback.
    Critical,
    /// Fails the iteration once the procedure has finished.
    High,
    /// Recorded as a warning.
    Medium,
    /// Recorded as a warning.
    Low,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub name: String,
    pub severity: Severity,
    /// Index into [`Procedure::steps`].
    pub step: usize,
    pub check: Check,
}

/// A condition on one response.
#[derive(Debug, Clone)]
pub enum Check {
    Status(StatusSet),
    Equals {
        pointer: String,
        value: JsonTemplate,
    },
    Exists {
        pointer: String,
        present: bool,
    },
    InRange {
        pointer: String,
        min: Option<f64>,
        max: Option<f64>,
    },
    MaxTime(Duration),
    /// The value at `pointer` equals one of these.
    OneOf {
        pointer: String,
        values: Vec<JsonTemplate>,
    },
    /// The string at `pointer` matches a regular expression.
    Matches {
        pointer: String,
        pattern: Pattern,
    },
    /// The array at `pointer` holds `value`, or the string there contains it.
    Contains {
        pointer: String,
        value: JsonTemplate,
    },
    /// The array (or string, or object) at `pointer` has between `min` and `max` items.
    Length {
        pointer: String,
        min: Option<u64>,
        max: Option<u64>,
    },
    /// A response header.
    Header {
        name: String,
        test: HeaderTest,
    },
    /// The opposite of a check.
    Not(Box<Check>),
}

/// What a header check asks of the header.
#[derive(Debug, Clone)]
pub enum HeaderTest {
    Exists(bool),
    Equals(Template),
    Matches(Pattern),
}

/// A regular expression, shown as written.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/", self.0.as_str())
    }
}

impl Check {
    /// Whether it reads the JSON body.
    pub fn reads_json(&self) -> bool {
        match self {
            Check::Status(_) | Check::MaxTime(_) | Check::Header { .. } => false,
            Check::Not(c) => c.reads_json(),
            _ => true,
        }
    }

    /// Whether it reads response headers.
    pub fn reads_headers(&self) -> bool {
        match self {
            Check::Header { .. } => true,
            Check::Not(c) => c.reads_headers(),
            _ => false,
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Status(s) => write!(f, "status is {s}"),
            Check::Equals { pointer, .. } => write!(f, "{pointer} equals the expected value"),
            Check::Exists {
                pointer,
                present: true,
            } => write!(f, "{pointer} exists"),
            Check::Exists {
                pointer,
                present: false,
            } => write!(f, "{pointer} is absent"),
            Check::InRange { pointer, min, max } => {
                let lo = min.map_or("-inf".to_string(), |v| v.to_string());
                let hi = max.map_or("+inf".to_string(), |v| v.to_string());
                write!(f, "{pointer} within [{lo}, {hi}]")
            }
            Check::MaxTime(d) => write!(
                f,
                "response within {}",
                crate::config::units::format_duration(*d)
            ),
            Check::OneOf { pointer, values } => {
                write!(f, "{pointer} is one of {} values", values.len())
            }
            Check::Matches { pointer, pattern } => write!(f, "{pointer} matches {pattern}"),
            Check::Contains { pointer, .. } => write!(f, "{pointer} contains the expected value"),
            Check::Length { pointer, min, max } => {
                let lo = min.map_or("0".to_string(), |v| v.to_string());
                let hi = max.map_or("any".to_string(), |v| v.to_string());
                write!(f, "{pointer} has {lo} to {hi} items")
            }
            Check::Header { name, test } => match test {
                HeaderTest::Exists(true) => write!(f, "header {name} is present"),
                HeaderTest::Exists(false) => write!(f, "header {name} is absent"),
                HeaderTest::Equals(_) => write!(f, "header {name} equals the expected value"),
                HeaderTest::Matches(p) => write!(f, "header {name} matches {p}"),
            },
            Check::Not(c) => write!(f, "not ({c})"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Rollback {
    pub id: String,
    pub name: String,
    /// Indexes into [`Procedure::steps`] of the steps this rollback undoes.
    pub undoes: Vec<usize>,
    /// Indexes of the steps whose failure it answers; empty: any step's.
    pub applies_to: Vec<usize>,
    pub steps: Vec<Step>,
    pub verify: Vec<Verification>,
}

/// A read of the target's state after a rollback; the rollback counts as succeeded only if every check
/// of every verification passes.
#[derive(Debug, Clone)]
pub struct Verification {
    pub name: String,
    pub request: RequestTemplate,
    pub timeout: Option<Duration>,
    pub checks: Vec<Check>,
}
