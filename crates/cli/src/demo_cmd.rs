//! `ferrosim demo`: the whole activation story on one machine, with no
//! set-up. An SM-DP+ on loopback (SQLite, generated PKI), a profile type from
//! a GSMA TS.48 test package, one order per device over ES2+, and a fleet of
//! virtual devices (virtual eUICC + LPA) activating over real HTTPS, each
//! enabling its profile afterwards; then the activation report with the
//! three headline metrics, computed by `ferrosim-telemetry` from the events
//! the SM-DP+ recorded during the run. The live dashboard is served while it
//! runs (its URL is printed). A second act ([`crate::demo_fleet`]) shows IoT
//! devices with staged fallbacks riding out a carrier outage.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use ferrosim_telemetry::{Event, EventQuery, MetricsReport, Timestamp, compute, write_jsonl};

use clap::Args;
use ferrosim_server::sandbox::{CallbackSink, Sandbox, SandboxOptions};
use ferrosim_smdp::order::ProfileState;
use ferrosim_smdp::store::ProfileStore;
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
    /// IoT devices of the second act (a carrier outage they ride out on
    /// their staged fallbacks, in virtual time); 0 skips it.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    iot_devices: u32,
    /// Keep the SM-DP+ and its dashboard up this many seconds after the
    /// report.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    linger: u64,
    /// Also write the run's telemetry events to this file, one JSON object
    /// per line (input of `ferrosim report sla --events`).
    #[arg(long, value_name = "FILE.jsonl")]
    events_out: Option<std::path::PathBuf>,
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
            telemetry: true,
            ..SandboxOptions::default()
        })
        .await?;
        let run_start = Timestamp::now();
        println!(
            "  SM-DP+ at https://{} (HTTPS, SQLite in {}), test PKI with {n} eUICCs, {n} TS.48 profiles: {}",
            sandbox.address,
            sandbox.dir.path().display(),
            ms(t.elapsed())
        );
        println!(
            "  live dashboard: {}/dashboard (metrics at {}/metrics; the TLS certificate chains to the \
             sandbox's test CI in {}, so a browser asks before showing it)",
            sandbox.base_url(),
            sandbox.base_url(),
            sandbox.pki_dir.display()
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
        let results = fleet::activate_then(
            devices,
            &ci,
            &[],
            usize::try_from(args.concurrency)?,
            Connections::KeepAlive,
            &bar,
            fleet::AfterDownload::Enable,
        )
        .await?;
        bar.finish_and_clear();
        let wall = t.elapsed();

        // Let the outbox deliver the last callbacks.
        let successes = results.iter().filter(|r| r.failure.is_none()).count();
        let expected = successes * 3;
        sink.wait_for(Duration::from_secs(10), |v| v.len() >= expected)
            .await;
        let (headline, events) = headline(&sandbox, run_start, successes).await?;
        report(&sandbox, &results, wall, sink.received().len(), &headline).await?;
        if let Some(path) = &args.events_out {
            write_events(&sandbox, &events, path)?;
        }
        if args.iot_devices > 0 {
            let iot = args.iot_devices;
            tokio::task::spawn_blocking(move || crate::demo_fleet::run(iot)).await??;
        }
        if args.linger > 0 {
            println!();
            println!(
                "  serving the dashboard at {}/dashboard for {} s more",
                sandbox.base_url(),
                args.linger
            );
            tokio::time::sleep(Duration::from_secs(args.linger)).await;
        }
        sandbox.stop().await;
        sandbox.store.close().await;
        if let Some(events) = &sandbox.telemetry_store {
            events.close().await;
        }
        Ok(())
    })
}

/// How long the headline waits for the events of the activations that
/// succeeded to be recorded (the last ones arrive with the devices'
/// notifications, after the downloads returned).
const EVENTS_SETTLE: Duration = Duration::from_secs(10);

/// The run's headline metrics, computed by the telemetry crate from the
/// events the SM-DP+ recorded since `from`, once the `successes` the devices
/// saw are all recorded as successful activations (or after
/// [`EVENTS_SETTLE`]): computed earlier, an activation whose last event was
/// still on its way counted as not successful.
async fn headline(
    sandbox: &Sandbox,
    from: Timestamp,
    successes: usize,
) -> anyhow::Result<((MetricsReport, usize), Vec<Event>)> {
    let telemetry = sandbox
        .telemetry
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("the demo's SM-DP+ runs without telemetry"))?;
    let settle_until = Instant::now() + EVENTS_SETTLE;
    loop {
        telemetry.flush().await;
        let now = Timestamp::now();
        let to = Timestamp(now.millis() + 1);
        let events = telemetry.query(&EventQuery::between(from, to)).await?;
        let mut query = ferrosim_telemetry::MetricsQuery::window(from, to);
        query.as_of = now;
        let metrics = compute(&events, &query, telemetry.dictionary());
        let a = &metrics.total.activations;
        let recorded = a.within_target + a.late;
        if recorded >= successes as u64 || Instant::now() >= settle_until {
            return Ok(((metrics, events.len()), events));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes the run's events as JSON lines to `path`.
fn write_events(sandbox: &Sandbox, events: &[Event], path: &Path) -> anyhow::Result<()> {
    let telemetry = sandbox
        .telemetry
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("the demo's SM-DP+ runs without telemetry"))?;
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    write_jsonl(&mut out, events, telemetry.dictionary())
        .with_context(|| format!("writing {}", path.display()))?;
    out.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "  {} telemetry events written to {} (ferrosim report sla --events {} ...)",
        events.len(),
        path.display(),
        path.display()
    );
    Ok(())
}

fn print_headline((report, events): &(MetricsReport, usize)) {
    let m = &report.total;
    let a = &m.activations;
    println!(
        "  headline metrics (ferrosim-telemetry, from the {events} events the SM-DP+ recorded):"
    );
    println!(
        "    activation success within {} s: {}",
        SLA.as_secs(),
        match a.success_ratio {
            Some(r) => format!(
                "{:.2} % ({} of {} decided, {} pending)",
                100.0 * r,
                a.within_target,
                a.decided,
                a.pending
            ),
            None => format!("none decided yet ({} pending)", a.pending),
        }
    );
    let r = &m.recovery;
    println!(
        "    MTTR of failed activations:  {}",
        match r.mttr_ms {
            Some(mttr) => format!(
                "{} ({} recovered of {} failed, {} open)",
                ms(Duration::from_secs_f64(mttr / 1000.0)),
                r.recovered,
                r.failed,
                r.unrecovered
            ),
            None if r.failed == 0 => "no failed activation".to_owned(),
            None => format!("none recovered ({} failed, all open)", r.failed),
        }
    );
    let b = &m.bytes;
    println!(
        "    bytes per active profile:    {}",
        match b.bytes_per_active_profile {
            Some(v) => format!(
                "{v:.0} B ({} B of BPP and signalling over {} profiles in use; {} downloaded never enabled)",
                b.bpp_bytes + b.signalling_bytes,
                b.active_profiles,
                b.downloaded_never_enabled
            ),
            None => "no profile in use".to_owned(),
        }
    );
}

async fn report(
    sandbox: &Sandbox,
    results: &[fleet::Activation],
    wall: Duration,
    callbacks: usize,
    headline: &(MetricsReport, usize),
) -> anyhow::Result<()> {
    let n = results.len();
    let ok: Vec<&fleet::Activation> = results.iter().filter(|r| r.failure.is_none()).collect();
    let mut times: Vec<Duration> = ok.iter().map(|r| r.elapsed).collect();
    times.sort();
    let pct = |k: usize| 100.0 * k as f64 / n.max(1) as f64;
    println!();
    println!("Activation report");
    print_headline(headline);
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
