//! `ferrosim simulate <scenario>`: a city-scale event in virtual time
//! (`ferrosim-sim`), with a progress bar in simulated time, and its report
//! (HTML with SVG charts, JSON, CSV) written to `--out`.
//!
//! `<scenario>` is a shipped scenario's name (`outage`) or a scenario file
//! (TOML, docs/SIMULATOR.md).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use ferrosim_sim::{Progress, RunOptions, Scenario, simulate};
use indicatif::{ProgressBar, ProgressStyle};

/// `ferrosim simulate …`
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// A shipped scenario (outage, storm, festival, airport, rollout, fallback) or the path of a scenario file.
    scenario: String,
    /// Devices (the scenario's default otherwise).
    #[arg(long)]
    devices: Option<u32>,
    /// Seed: the same seed (and shard count) gives the same report.
    #[arg(long)]
    seed: Option<u64>,
    /// Shards the devices are split into (the result depends on it, not
    /// on the machine's cores).
    #[arg(long, default_value_t = 2)]
    shards: usize,
    /// Threads running the shards (default: the machine's cores, at most --shards).
    #[arg(long)]
    threads: Option<usize>,
    /// Directory for report.html, report.json and series.csv.
    #[arg(long, default_value = "simulation")]
    out: PathBuf,
    /// Print the summary as one JSON object on standard output (no progress bar).
    #[arg(long)]
    json: bool,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let scenario = load(&args.scenario)?;
    if !(1..=64).contains(&args.shards) {
        bail!("--shards must be 1..=64");
    }
    let mut options = RunOptions {
        devices: args.devices,
        seed: args.seed,
        shards: args.shards,
        ..RunOptions::default()
    };
    if let Some(t) = args.threads {
        if t == 0 {
            bail!("--threads must be at least 1");
        }
        options.threads = t;
    }
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(scenario.scenario.duration.millis() / 1000);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} simulated {pos}/{len} s [{bar:30}] {elapsed} wall  {msg}",
            )
            .context("progress bar template")?
            .progress_chars("=> "),
        );
        bar
    };
    let mut progress = |p: &Progress| {
        bar.set_position(u64::try_from(p.sim_ms / 1000).unwrap_or(0));
        bar.set_message(format!(
            "{} without service, {} switches",
            p.without_service, p.switches
        ));
    };
    let (collected, metrics, summary) = simulate(&scenario, &options, &mut progress)?;
    bar.finish_and_clear();
    ferrosim_sim::report::write(&args.out, &summary, &metrics, &collected)?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        let pct = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.2} %", v * 100.0));
        let secs = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1} s"));
        println!(
            "{}: {} devices, {:.0} simulated minutes in {:.1} s wall ({:.1} s setup), peak memory {} MB",
            summary.scenario,
            summary.devices,
            summary.simulated_s / 60.0,
            summary.wall_s,
            summary.setup_s,
            summary.peak_rss_bytes / 1_000_000
        );
        println!(
            "activation success within 60 s {}, MTTR {}, bytes per active profile {}",
            pct(summary.activation_success_within_60s),
            secs(summary.mttr_s),
            summary
                .bytes_per_active_profile
                .map_or("-".to_owned(), |b| format!("{b:.0}"))
        );
        println!(
            "failovers {} (completed {}: p50 {}, p99 {}, max {}), returns {} (completed {}), rollbacks {}",
            summary.failovers,
            summary.failover_completion_s.count,
            secs(summary.failover_completion_s.p50),
            secs(summary.failover_completion_s.p99),
            secs(summary.failover_completion_s.max),
            summary.returns,
            summary.return_completion_s.count,
            summary.rollbacks
        );
        if summary.downloads > 0 || !summary.download_failures.is_empty() {
            println!(
                "downloads {} (scan to profile enabled: p50 {}, p99 {}, max {}), failed {}",
                summary.downloads,
                secs(summary.download_completion_s.p50),
                secs(summary.download_completion_s.p99),
                secs(summary.download_completion_s.max),
                summary.download_failures.values().sum::<u64>()
            );
        }
        println!(
            "signature work: {} signs, {} verifies, {} key generations, {} key agreements = {:.1} s on {} threads (lower bound); the run took {:.2}x that",
            summary.ec_operations[0],
            summary.ec_operations[1],
            summary.ec_operations[2],
            summary.ec_operations[3],
            summary.lower_bound.seconds,
            summary.lower_bound.threads,
            summary.lower_bound.ratio
        );
        println!("report: {}", args.out.join("report.html").display());
    }
    Ok(())
}

/// A shipped scenario by name, or a file.
fn load(name: &str) -> anyhow::Result<Scenario> {
    let path = Path::new(name);
    if path.extension().is_some_and(|e| e == "toml") || path.exists() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read scenario file {}", path.display()))?;
        return Scenario::from_toml(&text)
            .with_context(|| format!("scenario file {}", path.display()));
    }
    Ok(Scenario::builtin(name)?)
}
