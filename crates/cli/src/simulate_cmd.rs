//! `ferrosim simulate <scenario>`: a city-scale event in virtual time
//! (`ferrosim-sim`), with a progress bar in simulated time, and its report
//! (HTML with SVG charts, JSON, CSV) written to `--out`.
//!
//! `<scenario>` is a shipped scenario's name (`outage`) or a scenario file
//! (TOML, docs/SIMULATOR.md). With `--target` the scenario's phones run in
//! full fidelity against that SM-DP+ instead ([`crate::simulate_live`]).

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
    #[arg(long, default_value_t = 2, conflicts_with = "target")]
    shards: usize,
    /// Threads running the shards (default: the machine's cores, at most --shards).
    #[arg(long, conflicts_with = "target")]
    threads: Option<usize>,
    /// Directory for report.html, report.json and series.csv.
    #[arg(long, default_value = "simulation")]
    out: PathBuf,
    /// Print the summary as one JSON object on standard output (no progress bar).
    #[arg(long)]
    json: bool,
    /// Full fidelity: run the scenario's consumer phones against this
    /// SM-DP+ over real HTTPS (`https://host:port`, its ES2+ and ES9+;
    /// loopback only unless --allow-remote). --devices defaults to 100 here.
    #[arg(long, value_name = "URL")]
    target: Option<String>,
    /// --target off loopback: allowed.
    #[arg(long, requires = "target")]
    allow_remote: bool,
    /// --target: the test PKI directory (`ferrosim pki init` layout) whose
    /// EUM the target trusts; each phone's eUICC gets a certificate from it.
    #[arg(long, value_name = "DIR", requires = "target")]
    pki: Option<PathBuf>,
    /// --target: PEM certificate(s) its TLS certificate chains to (default: the --pki CI).
    #[arg(long, value_name = "FILE", requires = "target")]
    ca: Option<PathBuf>,
    /// --target: the operator (ES2+ functionRequesterIdentifier) whose orders the phones download.
    #[arg(long, requires = "target")]
    operator: Option<String>,
    /// --target: the operator's ES2+ token.
    #[arg(long, env = "FERROSIM_ES2_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// --target, IoT scenarios: an operator API token of the target (its
    /// fleet and eIM REST APIs: associations, devices, reports, outages).
    #[arg(long, env = "FERROSIM_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
    /// --target, IoT scenarios: the AddInitialEim request (DER, from
    /// `ferrosim eim bootstrap --out`) that gives each device's eUICC the
    /// target's eIM.
    #[arg(long, value_name = "FILE", requires = "target")]
    add_initial_eim: Option<PathBuf>,
    /// --target: the profile type ordered (default: the phones' fleet group's).
    #[arg(long, requires = "target")]
    profile_type: Option<String>,
    /// --target: scenario seconds per wall-clock second for the arrival
    /// schedule (default: the scenario fits in half of --max-duration);
    /// each phone's activation runs in real time.
    #[arg(long, requires = "target")]
    time_scale: Option<f64>,
    /// --target: the run ends by then (seconds, orders included); phones
    /// not done are cut off and reported.
    #[arg(long, default_value_t = 300, requires = "target",
          value_parser = clap::value_parser!(u64).range(1..=ferrosim_sim::live::MAX_DURATION_S))]
    max_duration: u64,
    /// --target: downloads in flight at once.
    #[arg(long, default_value_t = 256, requires = "target",
          value_parser = clap::value_parser!(u64).range(1..=ferrosim_sim::live::MAX_CONCURRENCY as u64))]
    concurrency: u64,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let scenario = load(&args.scenario)?;
    if let Some(target) = args.target {
        return crate::simulate_live::run(
            &scenario,
            crate::simulate_live::LiveArgs {
                target,
                allow_remote: args.allow_remote,
                pki: args.pki,
                ca: args.ca,
                operator: args.operator,
                token: args.token,
                api_token: args.api_token,
                add_initial_eim: args.add_initial_eim,
                profile_type: args.profile_type,
                devices: args.devices,
                seed: args.seed,
                time_scale: args.time_scale,
                max_duration: args.max_duration,
                concurrency: args.concurrency,
                out: args.out,
                json: args.json,
            },
        );
    }
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
        scenario_bar(&scenario, "simulated")?
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
            "signature work: {} signs, {} verifies, {} key generations, {} key agreements at {} µs (timed before the run and during it, each operation's median of {} batches) = {:.1} s on {} threads (lower bound); the run took {:.2}x that",
            summary.ec_operations[0],
            summary.ec_operations[1],
            summary.ec_operations[2],
            summary.ec_operations[3],
            summary.ec_cost,
            summary.ec_batches.total(),
            summary.lower_bound.seconds,
            summary.lower_bound.threads,
            summary.lower_bound.ratio
        );
        println!(
            "  at each operation's fastest batch ({} µs, below what they usually cost): {:.1} s, the run {:.2}x that",
            summary.ec_cost_fastest,
            summary.lower_bound_fastest.seconds,
            summary.lower_bound_fastest.ratio
        );
        println!(
            "  at the timing before the run alone ({} µs): {:.1} s, the run {:.2}x that",
            summary.ec_cost_before_run,
            summary.lower_bound_before_run.seconds,
            summary.lower_bound_before_run.ratio
        );
        println!("report: {}", args.out.join("report.html").display());
    }
    Ok(())
}

/// A shipped scenario by name, or a file.
/// The progress bar of a run over `scenario`'s duration in seconds, its
/// position shown as "`clock` {pos}/{len} s".
pub(crate) fn scenario_bar(scenario: &Scenario, clock: &str) -> anyhow::Result<ProgressBar> {
    let bar = ProgressBar::new(scenario.scenario.duration.millis() / 1000);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {clock} {{pos}}/{{len}} s [{{bar:30}}] {{elapsed}} wall  {{msg}}"
        ))
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    Ok(bar)
}

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
