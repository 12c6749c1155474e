//! `ferrosim bench --telemetry compare`: what activation telemetry costs, in
//! one run. Two embedded SM-DP+s (each on its own SQLite database, same
//! settings), one with telemetry and one without, download in alternating
//! rounds (off, on, off, on...) so that drift of a shared machine falls on
//! both alike. A telemetry round ends only once its telemetry has written
//! everything (`Telemetry::flush`), so the work off the request path is
//! counted in its time.

use std::time::{Duration, Instant};

use anyhow::bail;
use ferrosim_server::sandbox::{Sandbox, SandboxOptions};
use ferrosim_store::{Durability, StoreOptions};

use crate::admin_cmd::block_on;
use crate::bench_cmd::{cores, order, process_cpu};
use crate::fleet::{self, Connections, Device, ms};

/// What `compare` needs of `ferrosim bench`'s arguments.
pub(crate) struct CompareArgs {
    pub downloads: u64,
    pub rounds: u64,
    pub concurrency: usize,
    pub connections: Connections,
    pub durability: Durability,
    pub durability_name: String,
}

#[derive(Default)]
struct Totals {
    ok: usize,
    failed: usize,
    wall: Duration,
    cpu: Duration,
}

impl Totals {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    fn cpu_per_download_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.ok.max(1) as f64
    }
}

/// Runs the comparison.
pub(crate) fn run(args: &CompareArgs) -> anyhow::Result<()> {
    block_on(async move {
        let n = usize::try_from(args.downloads)?;
        let start = |telemetry| {
            Sandbox::start(SandboxOptions {
                euiccs: n,
                profiles: args.downloads,
                store: StoreOptions {
                    durability: args.durability,
                    ..StoreOptions::default()
                },
                telemetry,
                ..SandboxOptions::default()
            })
        };
        let mut off = start(false).await?;
        let mut on = start(true).await?;
        let mut devices_off = devices(&off).await?;
        let mut devices_on = devices(&on).await?;
        let rounds = usize::try_from(args.rounds)?.min(n.max(1));
        println!(
            "ferrosim bench --telemetry compare: {n} downloads per configuration in {rounds} alternating rounds, \
             concurrency {}, {:?} connections, SQLite durability {}",
            args.concurrency, args.connections, args.durability_name
        );
        let telemetry = on.telemetry.clone();
        let (mut t_off, mut t_on) = (Totals::default(), Totals::default());
        for round in 0..rounds {
            // This round's share of the devices (the last round takes the rest).
            let take = |left: usize| left / (rounds - round);
            let chunk_off: Vec<Device> = devices_off.drain(..take(devices_off.len())).collect();
            let chunk_on: Vec<Device> = devices_on.drain(..take(devices_on.len())).collect();
            let r_off = measure(&off, chunk_off, args, None).await?;
            let r_on = measure(&on, chunk_on, args, telemetry.as_ref()).await?;
            println!(
                "  round {}: off {} in {} ({:.1}/s) | on {} in {} ({:.1}/s)",
                round + 1,
                r_off.ok,
                ms(r_off.wall),
                r_off.rate(),
                r_on.ok,
                ms(r_on.wall),
                r_on.rate()
            );
            for (total, r) in [(&mut t_off, r_off), (&mut t_on, r_on)] {
                total.ok += r.ok;
                total.failed += r.failed;
                total.wall += r.wall;
                total.cpu += r.cpu;
            }
        }
        for (name, t) in [("off", &t_off), ("on ", &t_on)] {
            println!(
                "  telemetry {name}: {}/{n} downloads in {}: {:.1} downloads/s, CPU {:.0} µs per download ({} cores)",
                t.ok,
                ms(t.wall),
                t.rate(),
                t.cpu_per_download_us(),
                cores()
            );
        }
        let overhead = 100.0 * (1.0 - t_on.rate() / t_off.rate().max(1e-9));
        let cpu_overhead =
            100.0 * (t_on.cpu_per_download_us() / t_off.cpu_per_download_us().max(1e-9) - 1.0);
        println!(
            "  telemetry cost: {overhead:.1} % of throughput, {cpu_overhead:+.1} % CPU per download"
        );
        if let Some(t) = &telemetry {
            let written = t.query(&ferrosim_telemetry::EventQuery::all()).await?.len();
            println!(
                "  telemetry events recorded: {written}, dropped (queue full): {}",
                t.dropped()
            );
        }
        for s in [&mut off, &mut on] {
            s.stop().await;
            s.store.close().await;
        }
        let failed = t_off.failed + t_on.failed;
        if failed > 0 {
            bail!("{failed} downloads failed");
        }
        Ok(())
    })
}

async fn devices(sandbox: &Sandbox) -> anyhow::Result<Vec<Device>> {
    let identities = fleet::identities(&sandbox.pki)?;
    order(&fleet::OrderDesk::for_sandbox(sandbox), identities).await
}

async fn measure(
    sandbox: &Sandbox,
    devices: Vec<Device>,
    args: &CompareArgs,
    telemetry: Option<&ferrosim_server::telemetry::Telemetry>,
) -> anyhow::Result<Totals> {
    let cpu = process_cpu();
    let t = Instant::now();
    let results = fleet::activate(
        devices,
        &sandbox.ci_pem(),
        &[],
        args.concurrency,
        args.connections,
        &indicatif::ProgressBar::hidden(),
    )
    .await?;
    if let Some(t) = telemetry {
        t.flush().await;
    }
    let wall = t.elapsed();
    let failed = results.iter().filter(|r| r.failure.is_some()).count();
    for (reason, count) in fleet::failures_by_reason(&results) {
        println!("  failed {count:>6}: {reason}");
    }
    Ok(Totals {
        ok: results.len() - failed,
        failed,
        wall,
        cpu: process_cpu().saturating_sub(cpu),
    })
}
