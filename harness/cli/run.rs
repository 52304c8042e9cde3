//! `harness run NAME_OR_FILE`: resolves the target (refusing anything outside loopback unless
//! allowed), picks the seed, runs the scenario with live progress, answers Ctrl-C and SIGTERM, writes
//! `result.json` into the output folder (checkpoints while running, the final result at the end),
//! prints a summary and the folder's path, and returns the exit code of the contract.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use url::Url;

use super::exit;
use super::progress::CliObserver;
use super::summary;
use crate::config::ConfigError;
use crate::engine::{self, Signals};
use crate::plan::{self, Overrides};
use crate::result::write::write_json;
use crate::result::{Shard, Status};
use crate::scenario::Library;

/// What the user asked for.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A scenario name (RELIABILITY_STANDARD) or a path to a scenario file.
    #[arg(value_name = "NAME_OR_FILE")]
    pub scenario: String,
    /// Base URL of the target (overrides the scenario's), e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL", env = "HARNESS_TARGET")]
    pub target: Option<String>,
    /// Output folder (default: reports/<name>-<timestamp>/).
    #[arg(long, value_name = "DIR", env = "HARNESS_OUT")]
    pub out: Option<PathBuf>,
    /// Seed for every random choice (default: the scenario's, else drawn and printed).
    #[arg(long, value_name = "N", env = "HARNESS_SEED")]
    pub seed: Option<u64>,
    /// Allow targets outside loopback (127.0.0.0/8, ::1, localhost).
    #[arg(long)]
    pub allow_remote: bool,
    /// No progress output; the summary and the folder path are still printed.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the result (the result.json written, schemas/result.schema.json) on stdout; the
    /// summary and the folder path go to stderr.
    #[arg(long)]
    pub json: bool,
    /// Run shard I of N (from 0): every N-th iteration from the I-th, a 1/N share of the workers and
    /// of every stage's rate. Probes run on shard 0 only. Merge the shards' results with
    /// `harness merge`.
    #[arg(long, value_name = "I/N", env = "HARNESS_SHARD", value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// How many shards there are, the index taken from JOB_COMPLETION_INDEX (a Kubernetes Indexed
    /// Job sets it in each pod).
    #[arg(
        long,
        value_name = "N",
        env = "HARNESS_SHARDS",
        conflicts_with = "shard"
    )]
    pub shards: Option<u32>,
    /// When the load begins (RFC 3339, e.g. 2026-12-03T10:00:00Z): shards started apart wait for
    /// it, so their timelines line up. The wait does not count against the budget.
    #[arg(long, value_name = "TIME", env = "HARNESS_START_AT", value_parser = parse_start_at)]
    pub start_at: Option<std::time::SystemTime>,
    /// Serve live metrics for Prometheus at http://ADDR/metrics while the run goes on (e.g.
    /// 127.0.0.1:9464; port 0 picks one, printed on stderr); at the end they are result.json's.
    #[arg(long, value_name = "ADDR", env = "HARNESS_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Keep serving the final metrics this long after the run (e.g. 30s, a scrape interval or
    /// two), so that Prometheus sees them; Ctrl-C ends the wait.
    #[arg(long, value_name = "DURATION", value_parser = super::duration_arg, requires = "metrics_listen")]
    pub metrics_linger: Option<std::time::Duration>,
    /// Refuse a run whose estimated memory exceeds this (e.g. 2GiB; default half the machine's
    /// memory), saying which setting to lower.
    #[arg(long, value_name = "SIZE", env = "HARNESS_MEMORY_LIMIT", value_parser = parse_memory)]
    pub memory_limit: Option<u64>,
    /// Exit 0 when the run completed although a threshold failed (it is judged and recorded all
    /// the same): for shards, whose verdict is the merge's.
    #[arg(long)]
    pub defer_verdict: bool,
    #[command(flatten)]
    pub tls: super::tls_args::TlsArgs,
    #[command(flatten)]
    pub library: super::VerbLibrary,
}

/// `I/N`, with I below N.
pub fn parse_shard(text: &str) -> Result<Shard, String> {
    let (i, n) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}` is not I/N; write e.g. 0/4 for the first of four"))?;
    let number = |s: &str, what: &str| {
        s.trim()
            .parse::<u32>()
            .map_err(|_| format!("`{text}`: the {what} `{s}` is not a whole number"))
    };
    let (index, count) = (number(i, "index")?, number(n, "count")?);
    if count == 0 {
        return Err(format!("`{text}`: there must be at least one shard"));
    }
    if index >= count {
        return Err(format!(
            "`{text}`: shards count from 0, so the index must be below {count}"
        ));
    }
    Ok(Shard { index, count })
}

pub(super) fn parse_memory(text: &str) -> Result<u64, String> {
    crate::config::units::parse_size(text)
        .map_err(|e| format!("`{text}`: {}; write e.g. 2GiB", e.message))
}

pub(super) fn parse_start_at(text: &str) -> Result<std::time::SystemTime, String> {
    humantime::parse_rfc3339_weak(text.trim()).map_err(|e| {
        format!("`{text}` is not an RFC 3339 time ({e}); write e.g. 2026-12-03T10:00:00Z")
    })
}

/// The shard this process runs: `--shard`, or `--shards N` with the index from
/// JOB_COMPLETION_INDEX; the whole load when neither is given.
fn shard_of(args: &RunArgs) -> anyhow::Result<Option<Shard>> {
    if let Some(s) = args.shard {
        return Ok(Some(s));
    }
    let Some(count) = args.shards else {
        return Ok(None);
    };
    let index = std::env::var("JOB_COMPLETION_INDEX").map_err(|_| {
        anyhow::anyhow!(
            "--shards {count} (or HARNESS_SHARDS) needs the shard's index: pass --shard I/{count}, \
             or set JOB_COMPLETION_INDEX (a Kubernetes Indexed Job sets it)"
        )
    })?;
    parse_shard(&format!("{}/{count}", index.trim()))
        .map(Some)
        .map_err(|e| anyhow::anyhow!("JOB_COMPLETION_INDEX with --shards: {e}"))
}

pub fn run(dir: Option<&Path>, args: RunArgs) -> anyhow::Result<u8> {
    let plan = match plan_of(dir, &args) {
        Ok(plan) => plan,
        Err(e) => {
            if let Some(ConfigError::Invalid(problems)) = e.downcast_ref::<ConfigError>() {
                eprintln!("{problems}");
                eprintln!("{} problem(s); nothing was run", problems.len());
                return Ok(exit::INVALID);
            }
            return Err(e);
        }
    };
    let memory_limit = args.memory_limit.or_else(plan::memory::default_limit);
    let checked = plan::descriptors::ensure(&plan)
        .map(|_| ())
        .map_err(|e| e.to_string())
        .and_then(|()| {
            plan::memory::check(&plan, memory_limit)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
    if let Err(e) = checked {
        eprintln!("error: {e}");
        eprintln!("nothing was run");
        return Ok(exit::INVALID);
    }
    run_planned(plan, args)
}

/// The plan `harness run` makes of `args` (the scenario read from the library in `dir`): everything
/// it checks before anything runs.
pub fn plan_of(dir: Option<&Path>, args: &RunArgs) -> anyhow::Result<plan::RunPlan> {
    let library = Library::open(dir)?;
    let scenario = library.load(&args.scenario)?;
    let target = match args.target.as_deref() {
        Some(text) => Some(Url::parse(text).with_context(|| {
            format!("--target `{text}` is not a URL; write e.g. http://127.0.0.1:8080")
        })?),
        None => None,
    };
    let shard = shard_of(args)?;
    if let Some(s) = shard
        && s.count > 1
        && args.seed.is_none()
        && scenario.seed.is_none()
    {
        anyhow::bail!(
            "--shard {}/{}: the shards of one run must share a seed, so that together they make \
             the random choices one run would; pass the same --seed N (or HARNESS_SEED) to every \
             shard, or set seed in the scenario",
            s.index,
            s.count
        );
    }
    let overrides = Overrides {
        target,
        shard,
        start_at: args.start_at,
        seed: args.seed,
        allow_remote: args.allow_remote,
        tls: args.tls.settings(),
        http: args.tls.http,
        ..Overrides::default()
    };
    Ok(plan::build(&scenario, overrides)?)
}

/// Runs what `args` ask for, as planned.
fn run_planned(plan: plan::RunPlan, args: RunArgs) -> anyhow::Result<u8> {
    if plan.net.tls.settings.insecure_skip_verify {
        eprintln!(
            "warning: insecure_skip_verify is on: the target's TLS certificate is not checked, so \
             this run cannot tell the target from an impostor (recorded in result.json)"
        );
    }
    let runtime = super::runtime()?;
    let live = match args.metrics_listen {
        Some(addr) => {
            let live = crate::live::Live::new(&plan);
            let server = runtime
                .block_on(crate::live::serve(addr, live.clone()))
                .with_context(|| {
                    format!("cannot listen on {addr} for --metrics-listen; pick a free port")
                })?;
            eprintln!("live metrics at http://{}/metrics", server.addr);
            Some((live, server))
        }
        None => None,
    };
    let folder_name = match plan.identity.shard {
        Shard { count: 1, .. } => plan.identity.name.clone(),
        Shard { index, count } => format!("{}-shard{index}of{count}", plan.identity.name),
    };
    let out = output_folder(args.out.as_deref(), &folder_name)?;
    let result_path = out.join("result.json");
    let (result, observer) = runtime.block_on(async {
        let signals = Signals::default();
        listen_for_interrupts(signals.clone());
        let observer = CliObserver::new(&plan, args.quiet, result_path.clone());
        let result = match &live {
            Some((live, _)) => {
                let both = engine::Both(&observer, live.as_ref());
                engine::run(&plan, &both, signals).await
            }
            None => engine::run(&plan, &observer, signals).await,
        };
        if let Some((live, _)) = &live {
            live.finish(&result);
        }
        observer.finish();
        (result, observer)
    });
    let say = |text: &str| match args.json {
        true => eprint!("{text}"),
        false => print!("{text}"),
    };
    if let Err(e) = write_json(&result, &result_path) {
        // The run happened: say how it went, then fail with the path and the OS's reason (exit 3).
        say(&summary::render(&result));
        return Err(e.into());
    }
    observer.result_written();
    if let Err(e) = crate::report::write_all(&result, &out) {
        eprintln!(
            "warning: {e:#}; result.json is complete, and `harness report` can render it again"
        );
    }
    say(&summary::render(&result));
    say(&format!("{}\n", out.display()));
    if args.json {
        // The very bytes of result.json, so that a script reads what a later `report` reads.
        let written = std::fs::read_to_string(&result_path)
            .with_context(|| format!("cannot read back {}", result_path.display()))?;
        println!("{}", written.trim_end());
    }
    if let Some((_, server)) = live {
        runtime.block_on(async {
            if let Some(linger) = args.metrics_linger {
                eprintln!(
                    "serving the final metrics for {} more (Ctrl-C ends it)",
                    humantime::format_duration(linger)
                );
                tokio::select! {
                    _ = tokio::time::sleep(linger) => {}
                    _ = interrupted() => {}
                }
            }
            server.stop().await;
        });
    }
    Ok(match result.status {
        Status::Passed => exit::OK,
        Status::Failed if args.defer_verdict => {
            eprintln!("a threshold failed; the verdict is deferred (--defer-verdict) to the merge");
            exit::OK
        }
        Status::Failed => exit::THRESHOLD_FAILED,
        Status::Aborted => exit::INCOMPLETE,
    })
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
