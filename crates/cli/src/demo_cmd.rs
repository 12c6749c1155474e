//! `ferrosim demo`: the whole activation story on one machine, with no
//! set-up. An SM-DP+ on loopback (SQLite, generated PKI), a profile type from
//! a GSMA TS.48 test package, one order per device over ES2+, and a fleet of
//! virtual devices (virtual eUICC + LPA) activating over real HTTPS; then the
//! activation report.

use std::time::{Duration, Instant};

use clap::Args;
use ferrosim_server::sandbox::{CallbackSink, Sandbox, SandboxOptions};
use ferrosim_smdp::order::ProfileState;
use ferrosim_smdp::store::Store;
use ferrosim_store::StoreOptions;

use crate::admin_cmd::block_on;
use crate::fleet::{self, Connections, Device, ms, percentile};

/// SLA of the headline metric: activation success within this time.
const SLA: Duration = Duration::from_secs(60);

/// Arguments of `ferrosim demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Virtual devices to activate.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    devices: u64,
    /// Devices activating at the same time.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    concurrency: u64,
    /// Database URL (default: SQLite in a temporary directory).
    #[arg(long, env = "FERROSIM_DATABASE_URL")]
    database_url: Option<String>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    block_on(async move {
        let n = usize::try_from(args.devices)?;
        println!(
            "ferrosim demo: {n} virtual devices, {} at a time",
            args.concurrency
        );
        let t = Instant::now();
        let sink = CallbackSink::start().await?;
        let mut sandbox = Sandbox::start(SandboxOptions {
            euiccs: n,
            profiles: args.devices,
            callback_url: Some(sink.url.clone()),
            database_url: args.database_url.clone(),
            store: StoreOptions::default(),
            ..SandboxOptions::default()
        })
        .await?;
        println!(
            "  SM-DP+ at https://{} (HTTPS, SQLite in {}), test PKI with {n} eUICCs, {n} TS.48 profiles: {}",
            sandbox.address,
            sandbox.dir.path().display(),
            ms(t.elapsed())
        );

        let t = Instant::now();
        let ci = sandbox.ci_pem();
        let identities = fleet::identities(&sandbox.pki)?;
        let eids: Vec<String> = identities.iter().map(|i| i.eid().to_string()).collect();
        let desk = fleet::OrderDesk::for_sandbox(&sandbox);
        let codes = fleet::order_profiles(&desk, &eids, 16).await?;
        println!(
            "  {n} orders placed over ES2+ (downloadOrder + confirmOrder): {}",
            ms(t.elapsed())
        );

        let devices: Vec<Device> = identities
            .into_iter()
            .zip(codes)
            .map(|(identity, code)| Device { identity, code })
            .collect();
        let bar = fleet::progress_bar(args.devices, args.quiet);
        let t = Instant::now();
        let results = fleet::activate(
            devices,
            &ci,
            &[],
            usize::try_from(args.concurrency)?,
            Connections::KeepAlive,
            &bar,
        )
        .await?;
        bar.finish_and_clear();
        let wall = t.elapsed();

        // Let the outbox deliver the last callbacks.
        let expected = results.iter().filter(|r| r.failure.is_none()).count() * 3;
        sink.wait_for(Duration::from_secs(10), |v| v.len() >= expected)
            .await;
        report(&sandbox, &results, wall, sink.received().len()).await?;
        sandbox.stop().await;
        sandbox.store.close().await;
        Ok(())
    })
}

async fn report(
    sandbox: &Sandbox,
    results: &[fleet::Activation],
    wall: Duration,
    callbacks: usize,
) -> anyhow::Result<()> {
    let n = results.len();
    let ok: Vec<&fleet::Activation> = results.iter().filter(|r| r.failure.is_none()).collect();
    let within_sla = ok.iter().filter(|r| r.elapsed <= SLA).count();
    let mut times: Vec<Duration> = ok.iter().map(|r| r.elapsed).collect();
    times.sort();
    let pct = |k: usize| 100.0 * k as f64 / n.max(1) as f64;
    println!();
    println!("Activation report");
    println!(
        "  activation success within 60 s:  {within_sla}/{n} ({:.1}%)",
        pct(within_sla)
    );
    println!(
        "  activations succeeded:           {}/{n} ({:.1}%)",
        ok.len(),
        pct(ok.len())
    );
    println!(
        "  activation time:                 p50 {}  p90 {}  p99 {}  max {}",
        ms(percentile(&times, 50.0)),
        ms(percentile(&times, 90.0)),
        ms(percentile(&times, 99.0)),
        ms(times.last().copied().unwrap_or_default())
    );
    println!(
        "  throughput:                      {:.1} activations/s over {}",
        ok.len() as f64 / wall.as_secs_f64().max(1e-9),
        ms(wall)
    );
    let failures = fleet::failures_by_reason(results);
    if failures.is_empty() {
        println!("  failures by reason:              none");
    } else {
        println!("  failures by reason:");
        for (reason, count) in failures {
            println!("    {count:>6}  {reason}");
        }
    }
    let counts = sandbox.store.count_profiles(None).await?;
    let installed = counts
        .iter()
        .find(|(s, _)| *s == ProfileState::Installed)
        .map_or(0, |(_, c)| *c);
    println!("  orders installed (SM-DP+ view):  {installed}");
    println!(
        "  operator callbacks received:     {callbacks} (eligibility, download, installation per device)"
    );
    println!();
    println!("  time per step (p50 / p99):");
    for (name, p50, p99, _) in fleet::step_latencies(results) {
        println!("    {name:<26} {:>10} / {:>10}", ms(p50), ms(p99));
    }
    Ok(())
}
