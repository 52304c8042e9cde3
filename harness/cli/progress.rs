//! Live progress of a run on stderr: a progress bar on a terminal, plain periodic lines when stderr is
//! not a terminal or `CI` is set (so CI logs stay readable), nothing under `--quiet`. Also writes the
//! checkpoints and the journal the engine hands over, so an interrupted or killed run leaves its
//! measurements behind.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use url::Url;

use crate::engine::{Observer, Progress};
use crate::journal::{Entry, Journal};
use crate::kinds::Embedded;
use crate::plan::RunPlan;
use crate::result::RunResult;
use crate::result::write::write_json;

/// How often plain progress lines are printed.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

enum Display {
    Bar(ProgressBar),
    Plain { last: Mutex<Option<Duration>> },
    Quiet,
}

pub struct CliObserver {
    display: Display,
    result_path: PathBuf,
    /// What runs, for the line that says where it runs: name, suite, seed, run id.
    run: (String, String, u64, String),
    /// Open while the load runs.
    journal: Mutex<Option<Journal>>,
    /// What the banner must not show.
    secrets: crate::redact::Secrets,
}

impl CliObserver {
    pub fn new(plan: &RunPlan, quiet: bool, result_path: PathBuf) -> Self {
        let planned = plan.load.planned();
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
        let display = if quiet {
            Display::Quiet
        } else if std::io::stderr().is_terminal() && !ci {
            let bar = ProgressBar::new(planned);
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            Display::Bar(bar)
        } else {
            Display::Plain {
                last: Mutex::new(None),
            }
        };
        let id = &plan.identity;
        Self {
            secrets: crate::redact::Secrets::of(plan),
            display,
            result_path,
            run: (
                id.name.clone(),
                id.suite.to_string(),
                id.seed,
                id.run_id.clone(),
            ),
            journal: Mutex::new(None),
        }
    }

    /// The final result is written: the journal is no longer needed. (When it could not be written,
    /// the journal stays, for `harness report` to rebuild the result from.)
    pub fn result_written(&self) {
        if let Some(j) = self
            .journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            j.discard();
        }
    }

    /// Removes the bar before the summary is printed.
    pub fn finish(&self) {
        if let Display::Bar(bar) = &self.display {
            bar.finish_and_clear();
        }
    }
}

fn describe(p: &Progress) -> String {
    let p95 = p.p95_ms.map_or("-".to_string(), |v| format!("{v:.1}ms"));
    let mut s = format!(
        "{}/s, {} errors, p95 {p95}, {} in flight",
        p.last_second, p.failed, p.in_flight
    );
    if p.late > 0 {
        s.push_str(&format!(", {} late", p.late));
    }
    s
}

impl Observer for CliObserver {
    fn target(&self, url: &Url, embedded: Option<Embedded>) {
        if matches!(self.display, Display::Quiet) {
            return;
        }
        let url = self.secrets.text(&crate::redact::url(url));
        let on = match embedded {
            Some(e) => format!("the embedded {} reference target at {url}", e.as_str()),
            None => url,
        };
        let (name, suite, seed, run_id) = &self.run;
        eprintln!("running {name} ({suite}) against {on} — seed {seed}, run id {run_id}");
    }

    fn progress(&self, p: &Progress) {
        match &self.display {
            Display::Bar(bar) => {
                bar.set_position(p.done);
                bar.set_message(describe(p));
            }
            Display::Plain { last } => {
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                if last.is_some_and(|l| p.elapsed < l + PLAIN_EVERY) {
                    return;
                }
                *last = Some(p.elapsed);
                let of = match p.scheduled {
                    Some(d) => format!(" of {}s", d.as_secs()),
                    None => String::new(),
                };
                eprintln!(
                    "[{:>4}s{of}] {}/{} done, {}",
                    p.elapsed.as_secs(),
                    p.done,
                    p.planned,
                    describe(p)
                );
            }
            Display::Quiet => {}
        }
    }

    fn checkpoint(&self, partial: &RunResult) {
        if let Err(e) = write_json(partial, &self.result_path) {
            self.stopping(&format!("could not write the checkpoint: {e}"));
        }
    }

    fn journal_start(&self, header: &RunResult) {
        let dir = self
            .result_path
            .parent()
            .unwrap_or(std::path::Path::new("."));
        match Journal::create(dir, header) {
            Ok(j) => *self.journal.lock().unwrap_or_else(|p| p.into_inner()) = Some(j),
            Err(e) => self.stopping(&format!(
                "warning: cannot write the journal in {}: {e}; only the 10 s checkpoints will survive a kill",
                dir.display()
            )),
        }
    }

    fn journal(&self, entry: Entry) {
        if let Some(j) = self
            .journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            j.write(entry);
        }
    }

    fn phase(&self, what: &str) {
        self.stopping(what);
    }

    fn stopping(&self, why: &str) {
        match &self.display {
            Display::Bar(bar) => bar.println(why),
            Display::Plain { .. } => eprintln!("{why}"),
            Display::Quiet => {}
        }
    }
}
