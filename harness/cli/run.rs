//! `harness run NAME_OR_FILE`: resolves the target (refusing anything outside loopback unless
//! allowed), picks the seed, runs the scenario with live progress, answers Ctrl-C and SIGTERM, writes
//! `result.json` into the output folder (checkpoints while running, the final result at the end),
//! prints a summary and the folder's path, and returns the exit code of the contract.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use url::Url;

use super::exit;
use super::progress::CliObserver;
use super::summary;
use crate::config::ConfigError;
use crate::drivers::http::is_loopback;
use crate::engine::{self, RunPlan, Signals};
use crate::reference::{self, handoff::HandoffConfig, ws::WsConfig};
use crate::result::Status;
use crate::result::write::write_json;
use crate::scenario::{Embedded, Endpoint, Library, Scenario, TargetKind};

/// What the user asked for.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A scenario name (RELIABILITY_STANDARD) or a path to a scenario file.
    #[arg(value_name = "NAME_OR_FILE")]
    pub scenario: String,
    /// Base URL of the target (overrides the scenario's), e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Output folder (default: reports/<name>-<timestamp>/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seed for every random choice (default: the scenario's, else drawn and printed).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Allow targets outside loopback (127.0.0.0/8, ::1, localhost).
    #[arg(long)]
    pub allow_remote: bool,
    /// No progress output; the summary and the folder path are still printed.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(dir: Option<&Path>, args: RunArgs) -> anyhow::Result<u8> {
    let library = Library::open(dir)?;
    let scenario = match library.load(&args.scenario) {
        Ok(s) => s,
        Err(ConfigError::Invalid(problems)) => {
            eprintln!("{problems}");
            eprintln!("{} problem(s); nothing was run", problems.len());
            return Ok(exit::INVALID);
        }
        Err(e) => return Err(e.into()),
    };
    let allow_remote = args.allow_remote || scenario.allow_remote;
    let target = resolve_target(&scenario, args.target.as_deref(), allow_remote)?;
    let seed = args.seed.or(scenario.seed).unwrap_or_else(rand::random);
    let out = output_folder(args.out.as_deref(), &scenario.name)?;
    let result_path = out.join("result.json");
    let runtime = super::runtime()?;
    let result = runtime.block_on(async {
        let (url, embedded, reference) = start_target(target, seed).await?;
        let plan = RunPlan {
            url,
            embedded,
            seed,
            run_id: run_id(),
            allow_remote,
            scenario,
        };
        if !args.quiet {
            let on = match embedded {
                Some(e) => format!(
                    "the embedded {} reference target at {}",
                    e.as_str(),
                    plan.url
                ),
                None => plan.url.to_string(),
            };
            eprintln!(
                "running {} ({}) against {on} — seed {seed}, run id {}",
                plan.scenario.name, plan.scenario.suite, plan.run_id
            );
        }
        let signals = Signals::default();
        listen_for_interrupts(signals.clone());
        let planned = plan.scenario.load.planned_iterations();
        let observer = CliObserver::new(args.quiet, planned, result_path.clone());
        let result = engine::run(&plan, &observer, signals).await;
        observer.finish();
        if let Some(running) = reference
            && let Err(e) = running.stop().await
        {
            eprintln!("warning: the embedded reference target did not stop cleanly: {e}");
        }
        Ok::<_, anyhow::Error>(result)
    })?;
    write_json(&result, &result_path)
        .with_context(|| format!("cannot write {}", result_path.display()))?;
    if let Err(e) = crate::report::write_all(&result, &out) {
        eprintln!(
            "warning: {e:#}; result.json is complete, and `harness report` can render it again"
        );
    }
    print!("{}", summary::render(&result));
    println!("{}", out.display());
    Ok(match result.status {
        Status::Passed => exit::OK,
        Status::Failed => exit::THRESHOLD_FAILED,
        Status::Aborted => exit::INCOMPLETE,
    })
}

/// Where the run goes.
enum Target {
    Url(Url),
    /// A reference target this process starts on 127.0.0.1.
    Embedded(Embedded),
}

/// The target's URL, starting the embedded reference target when that is the target.
async fn start_target(
    target: Target,
    seed: u64,
) -> anyhow::Result<(Url, Option<Embedded>, Option<reference::Running>)> {
    match target {
        Target::Url(url) => Ok((url, None, None)),
        Target::Embedded(Embedded::Handoff) => {
            let config = HandoffConfig {
                seed,
                ..HandoffConfig::default()
            };
            let running = reference::start_handoff(config)
                .await
                .context("cannot start the embedded reference handoff service")?;
            Ok((running.url.clone(), Some(Embedded::Handoff), Some(running)))
        }
        Target::Embedded(Embedded::Websocket) => {
            let config = WsConfig {
                seed,
                ..WsConfig::default()
            };
            let running = reference::start_ws(config)
                .await
                .context("cannot start the embedded reference WebSocket server")?;
            Ok((
                running.url.clone(),
                Some(Embedded::Websocket),
                Some(running),
            ))
        }
    }
}

/// The target: `--target`, else the scenario's url, else its embedded reference target. Refuses hosts
/// outside loopback unless remote targets are allowed.
fn resolve_target(
    scenario: &Scenario,
    flag: Option<&str>,
    allow_remote: bool,
) -> anyhow::Result<Target> {
    let url = match (flag, &scenario.target.endpoint) {
        (Some(text), _) => {
            let url = Url::parse(text).with_context(|| {
                format!("--target `{text}` is not a URL; write e.g. http://127.0.0.1:8080")
            })?;
            let schemes: &[&str] = match scenario.target.kind {
                TargetKind::Websocket => &["ws", "wss"],
                TargetKind::Handoff | TargetKind::Http => &["http", "https"],
            };
            if !schemes.contains(&url.scheme()) {
                bail!(
                    "--target {url}: a {} target needs a {} URL",
                    scenario.target.kind.as_str(),
                    schemes.join(":// or ")
                );
            }
            url
        }
        (None, Endpoint::Url(url)) => url.clone(),
        (None, Endpoint::Embedded(e)) => return Ok(Target::Embedded(*e)),
    };
    if url.scheme() == "https" || url.scheme() == "wss" {
        bail!(
            "{url}: this build speaks plain HTTP and WebSocket only (TLS is not compiled in); use an \
             http:// or ws:// target"
        );
    }
    if !allow_remote && !is_loopback(&url) {
        bail!(
            "refusing to send load to {url}: it is not a loopback address. Load, stress and chaos runs \
             are meant for targets on this machine; if you really mean to test a remote host you own, \
             pass --allow-remote (or set allow_remote = true in the scenario)"
        );
    }
    Ok(Target::Url(url))
}

/// `--out DIR`, or `reports/<name>-<UTC timestamp>/`, created.
fn output_folder(out: Option<&Path>, name: &str) -> anyhow::Result<PathBuf> {
    let dir = match out {
        Some(d) => d.to_path_buf(),
        None => {
            let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                .to_string()
                .replace([':', '-'], "");
            let base = PathBuf::from("reports").join(format!("{name}-{stamp}"));
            let mut dir = base.clone();
            let mut n = 1;
            while dir.exists() {
                n += 1;
                dir = PathBuf::from(format!("{}-{n}", base.display()));
            }
            dir
        }
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the output folder {}", dir.display()))?;
    Ok(dir)
}

/// A short id unique to this run: time and process, not the seed.
fn run_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("r{:x}{:04x}", millis, std::process::id() & 0xffff)
}

/// First Ctrl-C or SIGTERM: stop gracefully. Second: abandon iterations in flight.
fn listen_for_interrupts(signals: Signals) {
    tokio::spawn(async move {
        interrupted().await;
        signals.stop.cancel();
        interrupted().await;
        signals.force.cancel();
    });
}

pub(super) async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
