//! `harness compare BASE.json NEW.json`: metric by metric, improved / regressed / within noise; prints
//! the table (Markdown) and exits 1 when a metric regressed beyond its noise band.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::exit;
use crate::compare::{self, Options, Verdict};
use crate::config::suggest;
use crate::config::units::{parse_duration, parse_ratio};
use crate::result::write::read_json;

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// The result to compare against (a result.json of an earlier run, e.g. from main).
    #[arg(value_name = "BASE.json")]
    pub base: PathBuf,
    /// The result judged against it: a metric worse beyond its noise band regressed.
    #[arg(value_name = "NEW.json")]
    pub new: PathBuf,
    /// Also write the comparison as HTML: each change against its noise band, what differed
    /// between the runs, steps and error kinds side by side, both spectra and timelines.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Also write the comparison as Markdown.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Noise band: a change within it is noise (percent, or points for success rates).
    #[arg(long, default_value = "5%", value_name = "BAND")]
    pub noise: String,
    /// A band for one metric, METRIC=BAND (repeatable), e.g. latency.p99=10%.
    #[arg(long, value_name = "METRIC=BAND")]
    pub noise_for: Vec<String>,
    /// Latencies: a change smaller than this (of the base value) is noise, whatever its percentage.
    #[arg(long, default_value = "0.5ms", value_name = "DURATION")]
    pub noise_floor: String,
    /// Print the comparison as JSON (schemas/compare.schema.json) instead of the Markdown table.
    #[arg(long)]
    pub json: bool,
}

fn band(flag: &str, text: &str) -> anyhow::Result<f64> {
    parse_ratio(text).map_err(|e| anyhow::anyhow!("{flag} {text}: {e}"))
}

fn options(args: &CompareArgs) -> anyhow::Result<Options> {
    let mut opts = Options {
        noise: band("--noise", &args.noise)?,
        floor_ms: parse_duration(&args.noise_floor)
            .map_err(|e| anyhow::anyhow!("--noise-floor {}: {e}", args.noise_floor))?
            .as_secs_f64()
            * 1000.0,
        ..Options::default()
    };
    for item in &args.noise_for {
        let (metric, value) = item.split_once('=').with_context(|| {
            format!("--noise-for {item}: write METRIC=BAND, e.g. latency.p99=10%")
        })?;
        if !compare::metrics().any(|m| m == metric) {
            bail!(
                "--noise-for {item}: `{metric}` is not a compared metric — {}",
                suggest::did_you_mean(metric, compare::metrics())
            );
        }
        opts.noise_for
            .insert(metric.to_string(), band("--noise-for", value)?);
    }
    Ok(opts)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

pub fn run(args: CompareArgs) -> anyhow::Result<u8> {
    let opts = options(&args)?;
    let base = read_json(&args.base)?;
    let new = read_json(&args.new)?;
    let c = compare::compare(&base, &new, &opts);
    let md = compare::markdown(&c)?;
    if args.json {
        println!("{}", compare::json(&c)?);
    } else {
        print!("{md}");
    }
    if let Some(p) = &args.markdown {
        write(p, &md)?;
    }
    if let Some(p) = &args.html {
        write(p, &compare::html(&c, &base, &new)?)?;
    }
    Ok(
        if c.metrics.iter().any(|m| m.verdict == Verdict::Regressed) {
            exit::THRESHOLD_FAILED
        } else {
            exit::OK
        },
    )
}
