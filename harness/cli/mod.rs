//! The command line: argument parsing (clap), one module per verb, and the mapping from outcomes to
//! the exit codes of the contract. Nothing outside this module sees arguments or exit codes.
//!
//! Exit codes: `0` every threshold held (or the command succeeded) · `1` a threshold failed ·
//! `2` the command or a scenario is invalid, nothing was run · `3` the run could not complete.

mod compare;
mod kubernetes;
mod list;
mod merge;
mod progress;
mod proxy;
mod report;
mod run;
mod serve;
mod summary;
mod tls_args;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The version `--version` prints: the package's, and the commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("HARNESS_COMMIT"), ")");

/// Exit codes of the contract (DESIGN.md): CI pipelines rely on them.
pub mod exit {
    pub const OK: u8 = 0;
    pub const THRESHOLD_FAILED: u8 = 1;
    pub const INVALID: u8 = 2;
    pub const INCOMPLETE: u8 = 3;
}

#[derive(Debug, Parser)]
#[command(
    name = "harness",
    version = VERSION,
    about = "Reliability and chaos test harness for handoff procedures and WebSocket endpoints"
)]
pub struct Cli {
    #[command(flatten)]
    pub library: Library,

    #[command(subcommand)]
    pub command: Command,
}

/// Where scenarios come from: given before the verb (`harness --scenarios DIR run …`) or after it,
/// on the verbs that read scenarios (`list`, `validate`, `run`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Library {
    /// Directory of scenario files (default: ./scenarios when it exists); its procedures/ subfolder
    /// holds procedure files. Files there add to or override the built-in configurations.
    #[arg(long, value_name = "DIR", env = "HARNESS_SCENARIOS")]
    pub scenarios: Option<PathBuf>,

    /// Read NAME=value lines from FILE for `{{env.NAME}}` in scenarios and procedures (a variable
    /// set in the environment itself wins).
    #[arg(long, value_name = "FILE", env = "HARNESS_ENV_FILE")]
    pub env_file: Option<PathBuf>,
}

impl Library {
    /// These, where given, else `outer`'s.
    fn or(self, outer: &Library) -> Library {
        Library {
            scenarios: self.scenarios.or_else(|| outer.scenarios.clone()),
            env_file: self.env_file.or_else(|| outer.env_file.clone()),
        }
    }

    /// Reads the env file, if one was given.
    fn load_env(&self) -> Result<(), u8> {
        if let Some(path) = &self.env_file
            && let Err(e) = crate::config::env::load_file(path)
        {
            eprintln!("error: {e}");
            return Err(exit::INVALID);
        }
        Ok(())
    }
}

/// `--scenarios` and `--env-file` of a verb that reads scenarios (no environment fallback here: the
/// one before the verb has it).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct VerbLibrary {
    /// Directory of scenario files (as before the verb).
    #[arg(long = "scenarios", value_name = "DIR")]
    pub scenarios: Option<PathBuf>,
    /// Read NAME=value lines from FILE for `{{env.NAME}}` (as before the verb).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Option<PathBuf>,
}

impl VerbLibrary {
    fn within(self, outer: &Library) -> Library {
        Library {
            scenarios: self.scenarios,
            env_file: self.env_file,
        }
        .or(outer)
    }
}

/// Parsed once per process, so the size of `run`'s arguments costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every named configuration: suite, target, load and thresholds.
    List {
        #[command(flatten)]
        library: VerbLibrary,
        /// Print a JSON array on stdout instead of the table (for scripts: name, suite,
        /// description, target, load, thresholds, source, and whether it is valid).
        #[arg(long)]
        json: bool,
    },
    /// Run a scenario and write result.json; exit 0 passed, 1 a threshold failed, 3 incomplete.
    Run(run::RunArgs),
    /// Render report.html, junit.xml and summary.md again from a saved result.
    Report {
        /// A result.json written by `harness run`, or the run's output folder. A folder holding a
        /// journal (the run was killed) gets its result.json rebuilt from it first.
        #[arg(value_name = "RESULT.json|DIR")]
        result: PathBuf,
        /// Write only the HTML report, to this file.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Write only the JUnit XML, to this file.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Write only the Markdown summary, to this file.
        #[arg(long, value_name = "FILE")]
        markdown: Option<PathBuf>,
    },
    /// Compare two results metric by metric; exit 1 when one regressed beyond the noise.
    Compare(compare::CompareArgs),
    /// Merge the shards' results of one run (`run --shard I/N`) into one, exactly: counts added,
    /// histograms added, thresholds judged again; exit as for a run, 2 when the shards do not match.
    Merge(merge::MergeArgs),
    /// Print the Kubernetes manifests of a run in N shards: the scenario in a ConfigMap, an Indexed
    /// Job of N pods each running one shard, and a Job that merges their results (its exit is the
    /// verdict). Made from the same plan as `run`; pipe it to `kubectl apply -f -`.
    Kubernetes(kubernetes::KubernetesArgs),
    /// Run the fault proxy on its own, e.g. `harness proxy --listen 127.0.0.1:9001 --upstream
    /// 127.0.0.1:9000 --toxic latency=200ms,jitter=50ms`.
    Proxy(proxy::ProxyArgs),
    /// Run a reference target on its own (until Ctrl-C), e.g. `harness serve handoff --bind 127.0.0.1:8080`.
    Serve(serve::ServeArgs),
    /// Print a shell completion script, e.g. `harness completions bash > ~/.local/share/bash-completion/completions/harness`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Check scenarios (and the procedures they name); prints `ok` or every problem, exit 2.
    Validate {
        #[command(flatten)]
        library: VerbLibrary,
        /// Scenario names (RELIABILITY_STANDARD) or paths to scenario files.
        #[arg(required = true, value_name = "NAME_OR_FILE")]
        names: Vec<String>,
        /// Print a JSON array on stdout (schemas/validate.schema.json): each name, whether it is
        /// valid, and its problems with file, line, column, key, message and hint.
        #[arg(long)]
        json: bool,
        /// Refuse a scenario whose run would hold more memory than this (e.g. 2GiB; default half
        /// the machine's memory), as `run` does.
        #[arg(long, value_name = "SIZE", env = "HARNESS_MEMORY_LIMIT", value_parser = run::parse_memory)]
        memory_limit: Option<u64>,
    },
}

/// A duration on the command line, read as scenario files read them (`30s`, `2m`, `1m30s`).
fn duration_arg(text: &str) -> Result<std::time::Duration, String> {
    crate::config::units::parse_duration(text).map_err(|e| e.to_string())
}

/// The summary `harness run` prints at the end of a run.
pub fn summary_text(r: &crate::result::RunResult) -> String {
    summary::render(r)
}

/// Entry point of the binary.
/// The multi-threaded runtime a verb that does I/O runs on.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Runtime::new().context("cannot start the async runtime")
}

pub fn main() -> ExitCode {
    crate::tls::install_default_provider();
    let cli = Cli::parse();
    ExitCode::from(run(cli))
}

/// Runs a parsed command line and returns its exit code; errors are printed here, with their causes.
pub fn run(cli: Cli) -> u8 {
    let library = match &cli.command {
        Command::List { library, .. } | Command::Validate { library, .. } => {
            library.clone().within(&cli.library)
        }
        Command::Run(args) => args.library.clone().within(&cli.library),
        Command::Kubernetes(args) => args.library.clone().within(&cli.library),
        _ => cli.library.clone(),
    };
    if let Err(code) = library.load_env() {
        return code;
    }
    let scenarios = library.scenarios.as_deref();
    let outcome = match cli.command {
        Command::List { json, .. } => list::run(scenarios, json),
        Command::Validate {
            names,
            json,
            memory_limit,
            ..
        } => validate::run(
            scenarios,
            &names,
            json,
            memory_limit.or_else(crate::plan::memory::default_limit),
        ),
        Command::Serve(args) => serve::run(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "harness",
                &mut std::io::stdout(),
            );
            Ok(exit::OK)
        }
        Command::Proxy(args) => proxy::run(args),
        Command::Report {
            result,
            html,
            junit,
            markdown,
        } => report::run(&result, html, junit, markdown),
        Command::Compare(args) => compare::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Run(args) => run::run(scenarios, args),
        Command::Kubernetes(args) => kubernetes::run(scenarios, library.env_file.as_deref(), args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit_code(&e)
        }
    }
}

/// The exit code an error means: a result that could not be written after the run is an incomplete
/// run (3), with what was measured lost only from disk; anything else stopped the command before it
/// ran (2).
fn exit_code(e: &anyhow::Error) -> u8 {
    use crate::result::write::ResultFileError;
    let unwritten = e
        .chain()
        .any(|c| matches!(c.downcast_ref(), Some(ResultFileError::Write { .. })));
    if unwritten {
        exit::INCOMPLETE
    } else {
        exit::INVALID
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
