//! `ferrosim bench --telemetry compare`: what activation telemetry costs, in
//! one run. Two embedded SM-DP+s (each on its own SQLite database, same
//! settings), one with telemetry and one without, download in alternating
//! rounds so that drift of a shared machine falls on both alike: each round
//! runs both configurations back to back, the one that goes first switching
//! every round (off-on, on-off, ...). A telemetry round ends only once its
//! telemetry has written everything (`Telemetry::flush`), so the work off
//! the request path is counted in its time.
//!
//! The cost is the median over the rounds of each round's own comparison
//! (`1 - rate on / rate off`): one round disturbed by something else on the
//! machine moves the totals but not the median.

use std::time::{Duration, Instant};

use anyhow::bail;
use ferrosim_server::sandbox::{Sandbox, SandboxOptions};
use ferrosim_server::telemetry::{Telemetry, TelemetryStats};
use ferrosim_store::{Durability, StoreOptions};

use crate::admin_cmd::block_on;
use crate::bench_cmd::{TelemetryDb, cores, order, process_cpu};
use crate::fleet::{self, Connections, Device, ms};

/// What `compare` needs of `ferrosim bench`'s arguments.
pub(crate) struct CompareArgs {
    pub downloads: u64,
    pub rounds: u64,
    pub concurrency: usize,
    pub connections: Connections,
    pub durability: Durability,
    pub durability_name: String,
    pub database: TelemetryDb,
}

#[derive(Default, Clone, Copy)]
struct Totals {
    ok: usize,
    failed: usize,
    wall: Duration,
    cpu: Duration,
    /// Of `wall`, the wait for the telemetry writer to store the round's
    /// events after the last download.
    flush: Duration,
}

impl Totals {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    fn cpu_per_download_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.ok.max(1) as f64
    }

    fn add(&mut self, r: &Totals) {
        self.ok += r.ok;
        self.failed += r.failed;
        self.wall += r.wall;
        self.cpu += r.cpu;
        self.flush += r.flush;
    }
}

/// Throughput cost and extra CPU per download of `on` against `off`, in %.
fn cost(off: &Totals, on: &Totals) -> (f64, f64) {
    (
        100.0 * (1.0 - on.rate() / off.rate().max(1e-9)),
        100.0 * (on.cpu_per_download_us() / off.cpu_per_download_us().max(1e-9) - 1.0),
    )
}

/// The median of `values` (the mean of the middle two for an even count);
/// `NaN` when empty.
fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// The first and third quartiles of `values` (medians of the lower and
/// upper halves; the middle value of an odd count is in neither).
fn quartiles(values: &[f64]) -> (f64, f64) {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    let half = v.len() / 2;
    (median(&v[..half]), median(&v[v.len() - half..]))
}

/// Smallest and largest of `values`.
fn range(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// The 1-minute load average of the machine, when it can be read.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut parts = text.split_whitespace();
    Some(format!(
        "{} {} {}",
        parts.next()?,
        parts.next()?,
        parts.next()?
    ))
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
                telemetry_database: args.database.choice(),
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
             concurrency {}, {:?} connections, SQLite durability {}, telemetry database {:?}, load average {}",
            args.concurrency,
            args.connections,
            args.durability_name,
            args.database,
            load_average().unwrap_or_else(|| "unknown".into())
        );
        let telemetry = on.telemetry.clone();
        let (mut t_off, mut t_on) = (Totals::default(), Totals::default());
        let (mut costs, mut cpu_costs) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // This round's share of the devices (the last round takes the rest).
            let take = |left: usize| left / (rounds - round);
            let chunk_off: Vec<Device> = devices_off.drain(..take(devices_off.len())).collect();
            let chunk_on: Vec<Device> = devices_on.drain(..take(devices_on.len())).collect();
            let on_first = round % 2 == 1;
            let (r_off, r_on) = if on_first {
                let r_on = measure(&on, chunk_on, args, telemetry.as_ref()).await?;
                (measure(&off, chunk_off, args, None).await?, r_on)
            } else {
                let r_off = measure(&off, chunk_off, args, None).await?;
                (
                    r_off,
                    measure(&on, chunk_on, args, telemetry.as_ref()).await?,
                )
            };
            let (c, cpu_c) = cost(&r_off, &r_on);
            costs.push(c);
            cpu_costs.push(cpu_c);
            println!(
                "  round {:>2} ({}): off {} in {} ({:.1}/s) | on {} in {} ({:.1}/s, flush {}) | cost {c:.1} %, CPU {cpu_c:+.1} %",
                round + 1,
                if on_first { "on first " } else { "off first" },
                r_off.ok,
                ms(r_off.wall),
                r_off.rate(),
                r_on.ok,
                ms(r_on.wall),
                r_on.rate(),
                ms(r_on.flush)
            );
            t_off.add(&r_off);
            t_on.add(&r_on);
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
        let (total_cost, total_cpu) = cost(&t_off, &t_on);
        let (lo, hi) = range(&costs);
        let (q1, q3) = quartiles(&costs);
        println!(
            "  telemetry cost: median {:.1} % of throughput over {rounds} rounds (quartiles {q1:.1} to {q3:.1} %, \
             rounds {lo:.1} to {hi:.1} %), median {:+.1} % CPU per download; all rounds together {total_cost:.1} %, \
             {total_cpu:+.1} % CPU; waiting for the writer's last append of each round: {} in all",
            median(&costs),
            median(&cpu_costs),
            ms(t_on.flush)
        );
        if let Some(t) = &telemetry {
            report_writer(t).await?;
        }
        println!(
            "  load average after: {}",
            load_average().unwrap_or_else(|| "unknown".into())
        );
        for s in [&mut off, &mut on] {
            s.stop().await;
            s.store.close().await;
            if let Some(own) = &s.telemetry_store {
                own.close().await;
            }
        }
        let failed = t_off.failed + t_on.failed;
        if failed > 0 {
            bail!("{failed} downloads failed");
        }
        Ok(())
    })
}

/// Prints what the telemetry writer did: events kept and lost, and the time
/// its appends took.
async fn report_writer(t: &Telemetry) -> anyhow::Result<()> {
    let recorded = t.query(&ferrosim_telemetry::EventQuery::all()).await?.len();
    let TelemetryStats {
        written,
        dropped,
        unattributed,
        appends,
        append_time,
        append_max,
        lookups,
    } = t.stats();
    println!(
        "  telemetry events recorded: {recorded} (written {written}), dropped: queue full {dropped}, \
         unattributed {unattributed}"
    );
    println!(
        "  telemetry writer: {appends} appends, {} in appends (mean {:.2} ms, longest {}), \
         {lookups} session look-ups",
        ms(append_time),
        append_time.as_secs_f64() * 1e3 / appends.max(1) as f64,
        ms(append_max)
    );
    Ok(())
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
    let downloaded = t.elapsed();
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
        flush: wall.saturating_sub(downloaded),
    })
}

#[cfg(test)]
mod tests {
    use super::{median, quartiles, range};

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(median(&[f64::NAN, 5.0]), 5.0);
        assert_eq!(range(&[2.0, -1.0, 7.5]), (-1.0, 7.5));
        assert_eq!(quartiles(&[5.0, 1.0, 3.0, 2.0, 4.0]), (1.5, 4.5));
        assert_eq!(quartiles(&[4.0, 1.0, 3.0, 2.0]), (1.5, 3.5));
        assert!(quartiles(&[1.0]).0.is_nan());
    }
}
