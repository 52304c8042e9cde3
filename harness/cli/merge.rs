//! `harness merge SHARD.json... --out DIR`: the shards' results of one run (`harness run --shard I/N`)
//! merged into one result — written as result.json with every report beside it, summarised, and
//! answered with the exit code a run would have. Shards that do not belong together are refused
//! with exit 2 and a line per problem.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;

use super::{exit, summary};
use crate::engine::assemble::CHECKPOINT_REASON;
use crate::merge::{self, Part};
use crate::result::Status;
use crate::result::write::{read_json, write_json};

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' result.json files (or their output folders), one per shard.
    #[arg(required = true, value_name = "SHARD.json|DIR")]
    pub shards: Vec<PathBuf>,
    /// Output folder for the merged result.json and its reports.
    #[arg(long, value_name = "DIR", env = "HARNESS_OUT")]
    pub out: PathBuf,
    /// Merge although some shards are missing or aborted; the result is marked partial (and
    /// aborted, exit 3).
    #[arg(long)]
    pub allow_partial: bool,
    /// Print the merged result on stdout; the summary goes to stderr.
    #[arg(long)]
    pub json: bool,
    /// Wait up to this long (e.g. 30m) for every shard's final result: a result.json that is not
    /// a checkpoint, with no journal beside it (the shard is still running). Then merge what is
    /// there. For a merge started beside its shards, as the Kubernetes merge Job is.
    #[arg(long, value_name = "DURATION", value_parser = super::duration_arg)]
    pub wait: Option<Duration>,
}

/// The result.json of a shard given as a file or as its output folder.
fn result_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("result.json")
    } else {
        path.to_path_buf()
    }
}

/// The shard's final result is there: written, not a checkpoint, no journal of a run going on.
fn finished(path: &Path) -> bool {
    let file = result_file(path);
    let journal = file
        .parent()
        .map(|d| d.join(crate::journal::FILE))
        .is_some_and(|j| j.exists());
    !journal && read_json(&file).is_ok_and(|r| r.reason.as_deref() != Some(CHECKPOINT_REASON))
}

/// Waits until every shard has finished or `limit` has passed; says which it waits for.
fn wait_for(shards: &[PathBuf], limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut said = false;
    loop {
        let pending: Vec<_> = shards.iter().filter(|p| !finished(p)).collect();
        if pending.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "still unfinished after {}: {}; merging what is there",
                humantime::format_duration(limit),
                pending
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return;
        }
        if !said {
            eprintln!(
                "waiting up to {} for {} of {} shards to finish",
                humantime::format_duration(limit),
                pending.len(),
                shards.len()
            );
            said = true;
        }
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// How often `--wait` looks again.
const POLL: Duration = Duration::from_secs(1);

pub fn run(args: MergeArgs) -> anyhow::Result<u8> {
    if let Some(limit) = args.wait {
        wait_for(&args.shards, limit);
    }
    let mut parts = Vec::new();
    let mut unreadable = Vec::new();
    for path in &args.shards {
        let file = result_file(path);
        match read_json(&file) {
            Ok(result) => parts.push(Part {
                source: file.display().to_string(),
                result,
            }),
            Err(e) => unreadable.push(format!("{e:#}")),
        }
    }
    if !unreadable.is_empty() {
        for problem in &unreadable {
            eprintln!("error: {problem}");
        }
        eprintln!("nothing was merged");
        return Ok(exit::INVALID);
    }
    let merged = match merge::merge(parts, args.allow_partial) {
        Ok(m) => m,
        Err(refused) => {
            for problem in &refused.problems {
                eprintln!("error: {problem}");
            }
            eprintln!("{} problem(s); nothing was merged", refused.problems.len());
            return Ok(exit::INVALID);
        }
    };
    std::fs::create_dir_all(&args.out).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the output folder {}: {e}",
            args.out.display()
        )
    })?;
    let result_path = args.out.join("result.json");
    write_json(&merged, &result_path)?;
    if let Err(e) = crate::report::write_all(&merged, &args.out) {
        eprintln!(
            "warning: {e:#}; result.json is complete, and `harness report` can render it again"
        );
    }
    let text = format!("{}{}\n", summary::render(&merged), args.out.display());
    if args.json {
        eprint!("{text}");
        let written = std::fs::read_to_string(&result_path)?;
        println!("{}", written.trim_end());
    } else {
        print!("{text}");
    }
    Ok(match merged.status {
        Status::Passed => exit::OK,
        Status::Failed => exit::THRESHOLD_FAILED,
        Status::Aborted => exit::INCOMPLETE,
    })
}
