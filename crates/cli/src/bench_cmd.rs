//! `ferrosim bench`: full profile downloads per second and per-function
//! latency at a chosen concurrency, against the embedded SM-DP+ (SQLite or
//! PostgreSQL, one or more instances) or any SM-DP+ URL, with kept-alive or
//! new TLS connections; or (`--in-memory`) the SM-DP+'s pure steps on an
//! in-memory store with the devices in the same process and no HTTP; or
//! (`--eim`) eUICC packages through the eIM and the IPAs of virtual IoT
//! devices, over HTTPS or (`--eim --in-memory`) in memory.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use ferrosim_crypto::ec_cost;
use ferrosim_euicc::EuiccIdentity;
use ferrosim_lpa::SmdpAddress;
use ferrosim_server::sandbox::{OPERATOR, PROFILE_TYPE, Sandbox, SandboxOptions};
use ferrosim_store::{Durability, StoreOptions};

use crate::admin_cmd::block_on;
use crate::bench_memory::{EC_PER_DOWNLOAD, EcBound, EcCosts};
use crate::fleet::{self, Connections, Device, ms, percentile};

/// Connection handling of the virtual devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ConnMode {
    /// One pool of kept-alive TLS connections shared by all devices.
    KeepAlive,
    /// New TCP and TLS connections for every device.
    New,
}

/// Activation telemetry of the embedded SM-DP+ during the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TelemetryMode {
    /// No telemetry (no `/metrics`, no events recorded).
    Off,
    /// Telemetry as `ferrosim serve` runs it.
    On,
    /// Two SM-DP+s, one with and one without telemetry, measured in
    /// alternating rounds: the cost of telemetry in one run.
    Compare,
}

/// Where the embedded SM-DP+'s telemetry events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TelemetryDb {
    /// A database of their own (on SQLite a second file), as `serve` does.
    Own,
    /// The SM-DP+'s database, in its commits.
    Shared,
    /// In memory (isolates the cost of the SQL writes).
    Memory,
}

impl TelemetryDb {
    pub(crate) fn choice(self) -> ferrosim_server::sandbox::TelemetryDatabase {
        use ferrosim_server::sandbox::TelemetryDatabase as D;
        match self {
            Self::Own => D::Own,
            Self::Shared => D::Shared,
            Self::Memory => D::Memory,
        }
    }
}

/// Arguments of `ferrosim bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Full downloads to run.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    downloads: u64,
    /// Downloads in flight at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=8192))]
    concurrency: u64,
    /// Keep TLS connections alive, or open new ones per device.
    #[arg(long, value_enum, default_value_t = ConnMode::KeepAlive)]
    connections: ConnMode,
    /// Embedded SM-DP+: database URL (default SQLite in a temporary directory).
    #[arg(long, env = "FERROSIM_DATABASE_URL")]
    database_url: Option<String>,
    /// Embedded SM-DP+ on SQLite: `full` or `normal` commit durability.
    #[arg(long, default_value = "full")]
    durability: String,
    /// Embedded SM-DP+: instances sharing the database (ES9+ calls alternate between them).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=16))]
    instances: u64,
    /// Embedded SM-DP+: database connections per instance (PostgreSQL).
    #[arg(long, default_value_t = 16)]
    db_connections: u32,
    /// An external SM-DP+ instead: its address (`host:port`).
    #[arg(long, requires_all = ["ca", "token", "pki"])]
    smdp_address: Option<String>,
    /// External SM-DP+: CA/CI certificate(s) its TLS certificate chains to (PEM).
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// External SM-DP+: the operator's ES2+ token.
    #[arg(long, env = "FERROSIM_BENCH_TOKEN")]
    token: Option<String>,
    /// External SM-DP+: the operator id.
    #[arg(long, default_value = OPERATOR)]
    operator: String,
    /// External SM-DP+: the profile type to order.
    #[arg(long, default_value = PROFILE_TYPE)]
    profile_type: String,
    /// External SM-DP+: a PKI directory (`ferrosim pki init --euiccs N`) whose eUICCs it trusts.
    #[arg(long)]
    pki: Option<std::path::PathBuf>,
    /// Embedded SM-DP+: activation telemetry `off`, `on`, or `compare` (with
    /// and without, in alternating rounds of the same run; SQLite only).
    #[arg(long, value_enum, default_value_t = TelemetryMode::Off)]
    telemetry: TelemetryMode,
    /// `--telemetry compare`: rounds per configuration (the downloads are
    /// split between them).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=100))]
    rounds: u64,
    /// Embedded SM-DP+ with telemetry: where the events go, `own` (a
    /// database of their own, as `serve` does on SQLite), `shared` (the
    /// SM-DP+'s database, in its commits) or `memory`.
    #[arg(long, value_enum, default_value_t = TelemetryDb::Own)]
    telemetry_database: TelemetryDb,
    /// Embedded SM-DP+: record the audit trail (as `serve` does by default).
    #[arg(long)]
    audit: bool,
    /// No HTTP and no database: the SM-DP+'s ES9+ steps on an in-memory
    /// store, the LPAs and virtual eUICCs in this process; prints the
    /// elliptic-curve lower bound and the eUICC heap per device beside the rate.
    /// The bound's P-256 costs are timed before and after the downloads on
    /// as many threads at once as the run uses, in interleaved rounds of
    /// batches timed on each thread's CPU clock; the fastest batch counts.
    #[arg(long, conflicts_with_all = ["smdp_address", "database_url", "instances", "connections", "telemetry", "durability", "audit"])]
    in_memory: bool,
    /// `--in-memory`: profiles each virtual device downloads (one after the other).
    #[arg(long, default_value_t = 2, requires = "in_memory", value_parser = clap::value_parser!(u64).range(1..=16))]
    profiles_per_device: u64,
    /// `--in-memory`: seed every random choice of the SM-DP+ and the eUICCs
    /// (the ECDSA signatures of aws-lc stay random).
    #[arg(long, requires = "in_memory")]
    seed: Option<u64>,
    /// `--in-memory`: worker threads (default: the cores of the machine).
    #[arg(long, requires = "in_memory", value_parser = clap::value_parser!(u64).range(1..=256))]
    threads: Option<u64>,
    /// Benchmark the eIM instead of downloads: eUICC packages (disable,
    /// enable, list profiles) signed and queued by the eIM, run by the IPAs
    /// of virtual IoT devices, their signed results verified and stored.
    /// Over HTTPS with the eIM of `ferrosim serve` in this process (SQLite
    /// unless --database-url), or with --in-memory on the eIM core alone.
    #[arg(long, conflicts_with_all = ["smdp_address", "instances", "connections", "telemetry", "audit", "profiles_per_device", "seed", "downloads", "concurrency"])]
    eim: bool,
    /// `--eim`: packages to run in all.
    #[arg(long, default_value_t = 10_000, requires = "eim", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    packages: u64,
    /// `--eim`: virtual IoT devices; over HTTPS their IPAs all poll at once.
    #[arg(long, default_value_t = 64, requires = "eim", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    devices: u64,
    /// `--eim`: packages queued for a device before its IPA polls (one
    /// session runs them, then finds the queue empty).
    #[arg(long, default_value_t = 1, requires = "eim", value_parser = clap::value_parser!(u64).range(1..=64))]
    packages_per_session: u64,
    /// `--eim` over HTTPS: the ESipa binding the IPAs speak.
    #[arg(long, value_enum, default_value_t = EsipaBinding::Asn1, requires = "eim", conflicts_with = "in_memory")]
    binding: EsipaBinding,
    /// Print the figures as one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The ESipa bindings (`--eim --binding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EsipaBinding {
    /// DER messages on `POST /gsma/rsp2/asn1`.
    Asn1,
    /// JSON on `POST /gsma/rsp2/esipa/<function>`.
    Json,
}

/// Runs the benchmark.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.telemetry != TelemetryMode::Off && args.smdp_address.is_some() {
        bail!("--telemetry applies to the embedded SM-DP+, not to --smdp-address");
    }
    if args.eim {
        return eim(&args);
    }
    if args.in_memory {
        return in_memory(&args);
    }
    let connections = match args.connections {
        ConnMode::KeepAlive => Connections::KeepAlive,
        ConnMode::New => Connections::New,
    };
    if args.telemetry == TelemetryMode::Compare {
        if args.database_url.is_some() || args.instances > 1 {
            bail!(
                "--telemetry compare runs two embedded SM-DP+s on SQLite: without --database-url and --instances"
            );
        }
        return crate::bench_compare::run(&crate::bench_compare::CompareArgs {
            downloads: args.downloads,
            rounds: args.rounds,
            concurrency: usize::try_from(args.concurrency)?,
            connections,
            durability: args.durability.parse().map_err(anyhow::Error::msg)?,
            durability_name: args.durability.clone(),
            database: args.telemetry_database,
        });
    }
    block_on(async move {
        let n = usize::try_from(args.downloads)?;
        let mut extra_instances = Vec::new();
        let mut sandbox_holder = None;
        let (devices, ci, targets, label) = if let Some(address) = &args.smdp_address {
            external(&args, address, n).await?
        } else {
            let durability: Durability = args.durability.parse().map_err(anyhow::Error::msg)?;
            let sandbox = Sandbox::start(SandboxOptions {
                euiccs: n,
                profiles: args.downloads,
                database_url: args.database_url.clone(),
                store: StoreOptions {
                    durability,
                    max_connections: args.db_connections,
                    ..StoreOptions::default()
                },
                telemetry: args.telemetry == TelemetryMode::On,
                telemetry_database: args.telemetry_database.choice(),
                audit: args.audit,
                ..SandboxOptions::default()
            })
            .await?;
            let mut targets = vec![SmdpAddress::new(&sandbox.address)?];
            for _ in 1..args.instances {
                let extra = sandbox.start_instance().await?;
                targets.push(SmdpAddress::new(&format!(
                    "localhost:{}",
                    extra.local_addr().port()
                ))?);
                extra_instances.push(extra);
            }
            let ci = sandbox.ci_pem();
            let identities = fleet::identities(&sandbox.pki)?;
            let desk = fleet::OrderDesk::for_sandbox(&sandbox);
            let devices = order(&desk, identities).await?;
            let db = if sandbox.store.backend() == ferrosim_store::Backend::Postgres {
                "PostgreSQL".to_owned()
            } else {
                format!("SQLite, durability {}", args.durability)
            };
            let label = format!(
                "embedded SM-DP+, {} instance(s), {db}, audit {}, telemetry {}",
                args.instances,
                if args.audit { "on" } else { "off" },
                if args.telemetry == TelemetryMode::On {
                    "on"
                } else {
                    "off"
                }
            );
            sandbox_holder = Some(sandbox);
            (devices, ci, targets, label)
        };
        if !args.json {
            println!(
                "ferrosim bench: {n} downloads, concurrency {}, {:?} connections, {label}",
                args.concurrency, args.connections
            );
        }
        // The EC lower bound needs server and devices in this process.
        let embedded = args.smdp_address.is_none();
        let mut ec_batches = embedded.then(|| ec_cost::measure_on(cores())).transpose()?;
        let cpu_before = process_cpu();
        let t = Instant::now();
        let results = fleet::activate(
            devices,
            &ci,
            &targets,
            usize::try_from(args.concurrency)?,
            connections,
            &indicatif::ProgressBar::hidden(),
        )
        .await?;
        let wall = t.elapsed();
        let cpu = process_cpu().saturating_sub(cpu_before);
        // Timed again after the downloads: the VM's speed moves in spells,
        // and the batches of both timings count.
        if let Some(batches) = &mut ec_batches {
            batches.extend(ec_cost::measure_on(cores())?);
        }
        let totals = fleet::RunTotals::of(&results, wall, cpu);
        // The P-256 work of a download beside the run (embedded only):
        // the same bound as `--in-memory`, on all cores.
        let ec = ec_batches.as_ref().map(|b| {
            let bound = EcBound::new(
                EcCosts::from(b.median()),
                cores(),
                totals.per_s,
                totals.cpu_us_each,
            );
            (bound, b.per_operation())
        });
        if args.json {
            println!(
                "{}",
                serde_json::to_string(&figures(&results, &totals, wall, embedded, ec))?
            );
        } else {
            report(&results, &totals, wall, cpu, embedded, ec);
        }
        for i in extra_instances {
            i.shutdown(Duration::from_secs(5)).await;
        }
        if let Some(mut sandbox) = sandbox_holder {
            sandbox.stop().await;
            sandbox.store.close().await;
        }
        let failed = results.iter().filter(|r| r.failure.is_some()).count();
        if failed > 0 {
            bail!("{failed} of {n} downloads failed (reasons above)");
        }
        Ok(())
    })
}

fn in_memory(args: &BenchArgs) -> anyhow::Result<()> {
    let options = crate::bench_memory::Options {
        downloads: usize::try_from(args.downloads)?,
        concurrency: usize::try_from(args.concurrency)?,
        profiles_per_device: usize::try_from(args.profiles_per_device)?,
        seed: args.seed,
        live_heap_bytes: crate::live_heap_bytes(),
    };
    let threads = match args.threads {
        Some(t) => usize::try_from(t)?,
        None => cores(),
    };
    let figures = crate::bench_memory::run(&options, threads)?;
    if args.json {
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        crate::bench_memory::print(&figures);
    }
    if figures.failed > 0 {
        bail!(
            "{} of {} downloads failed (reasons above)",
            figures.failed,
            figures.downloads
        );
    }
    Ok(())
}

fn eim(args: &BenchArgs) -> anyhow::Result<()> {
    let options = crate::bench_eim::Options {
        packages: args.packages,
        devices: args.devices,
        per_session: args.packages_per_session,
    };
    options.check()?;
    let figures = if args.in_memory {
        let threads = match args.threads {
            Some(t) => usize::try_from(t)?,
            None => cores(),
        };
        crate::bench_eim_memory::run(&options, threads)?
    } else {
        crate::bench_eim_https::run(
            &options,
            &crate::bench_eim_https::Serving {
                database_url: args.database_url.clone(),
                durability: args.durability.parse().map_err(anyhow::Error::msg)?,
                durability_name: args.durability.clone(),
                db_connections: args.db_connections,
                binding: match args.binding {
                    EsipaBinding::Asn1 => ferrosim_ipa::Binding::Asn1,
                    EsipaBinding::Json => ferrosim_ipa::Binding::Json,
                },
            },
        )?
    };
    if args.json {
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        crate::bench_eim::print(&figures);
    }
    if figures.failed > 0 {
        bail!(
            "{} of {} packages failed (reasons above)",
            figures.failed,
            figures.packages
        );
    }
    Ok(())
}

/// The figures of an HTTPS run, for `--json`; `ec` is the EC lower bound
/// and the batches it is taken from (embedded SM-DP+ only).
fn figures(
    results: &[fleet::Activation],
    totals: &fleet::RunTotals,
    wall: Duration,
    embedded: bool,
    ec: Option<(EcBound, usize)>,
) -> serde_json::Value {
    let (ok, times) = (totals.completed, &totals.times);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    serde_json::json!({
        "mode": if embedded { "https-embedded" } else { "https-external" },
        "downloads": results.len(),
        "completed": ok,
        "failed": results.len() - ok,
        "wall_s": wall.as_secs_f64(),
        "downloads_per_s": totals.per_s,
        // The process's CPU only covers the SM-DP+ when it is embedded.
        "cpu_us_per_download": embedded.then_some(totals.cpu_us_each),
        "p50_ms": ms(percentile(times, 50.0)),
        "p99_ms": ms(percentile(times, 99.0)),
        // The EC lower bound: only with the SM-DP+ embedded (`null` else).
        "ec_per_download": ec.map(|_| EC_PER_DOWNLOAD),
        "ec_costs_us": ec.map(|(e, _)| e.costs),
        "ec_us_per_download": ec.map(|(e, _)| e.us_per_download),
        "ec_share": ec.map(|(e, _)| e.share),
        "ec_bound_downloads_per_s": ec.map(|(e, _)| e.downloads_per_s),
        "ec_bound_ratio": ec.map(|(e, _)| e.ratio),
        "ec_batches": ec.map(|(_, batches)| batches),
        "failures": fleet::failures_by_reason(results),
        "steps": fleet::step_latencies(results)
            .into_iter()
            .map(|(name, p50, p99, n)| serde_json::json!({
                "step": name, "p50_ms": ms(p50), "p99_ms": ms(p99), "count": n
            }))
            .collect::<Vec<_>>(),
    })
}

pub(crate) async fn order(
    desk: &fleet::OrderDesk,
    identities: Vec<EuiccIdentity>,
) -> anyhow::Result<Vec<Device>> {
    let eids: Vec<String> = identities.iter().map(|i| i.eid().to_string()).collect();
    let codes = fleet::order_profiles(desk, &eids, 32).await?;
    Ok(identities
        .into_iter()
        .zip(codes)
        .map(|(identity, code)| Device { identity, code })
        .collect())
}

async fn external(
    args: &BenchArgs,
    address: &str,
    n: usize,
) -> anyhow::Result<(Vec<Device>, String, Vec<SmdpAddress>, String)> {
    let (Some(ca), Some(token), Some(pki)) = (&args.ca, &args.token, &args.pki) else {
        bail!("--smdp-address needs --ca, --token and --pki");
    };
    let ci = std::fs::read_to_string(ca).with_context(|| format!("reading {}", ca.display()))?;
    let mut identities = Vec::new();
    let dir = pki.join("eUICC");
    let mut eids: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".pem")
                .filter(|s| !s.ends_with(".key"))
                .map(str::to_owned)
        })
        .collect();
    eids.sort();
    if eids.len() < n {
        bail!(
            "{} has {} eUICCs; {n} needed (ferrosim pki init --euiccs {n})",
            pki.display(),
            eids.len()
        );
    }
    for eid in eids.iter().take(n) {
        identities.push(EuiccIdentity::load_from_dir(pki, Some(eid))?);
    }
    let desk = fleet::OrderDesk {
        base_url: format!("https://{address}"),
        address: address.to_owned(),
        token: token.clone(),
        operator: args.operator.clone(),
        profile_type: args.profile_type.clone(),
        ci_pem: ci.clone(),
    };
    let devices = order(&desk, identities).await?;
    Ok((
        devices,
        ci,
        Vec::new(),
        format!("external SM-DP+ at {address}"),
    ))
}

fn report(
    results: &[fleet::Activation],
    totals: &fleet::RunTotals,
    wall: Duration,
    cpu: Duration,
    embedded: bool,
    ec: Option<(EcBound, usize)>,
) {
    let (ok, times) = (totals.completed, &totals.times);
    println!("  completed:        {ok}/{} in {}", results.len(), ms(wall));
    println!("  throughput:       {:.1} full downloads/s", totals.per_s);
    println!(
        "  download time:    p50 {}  p99 {}  max {}",
        ms(percentile(times, 50.0)),
        ms(percentile(times, 99.0)),
        ms(times.last().copied().unwrap_or_default())
    );
    if embedded {
        println!(
            "  CPU (server and devices in this process): {:.2} s, {:.0} µs per download, {:.0}% of {} cores",
            cpu.as_secs_f64(),
            totals.cpu_us_each,
            100.0 * cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9) / cores() as f64,
            cores()
        );
    }
    if let Some((ec, batches)) = ec {
        println!(
            "  EC lower bound:   {:.0} µs per download ({:.0}% of the CPU; sign {:.1}, verify {:.1}, key pair {:.1}, agreement {:.1} µs, each operation's median of {} batches)",
            ec.us_per_download,
            ec.share * 100.0,
            ec.costs.sign_us,
            ec.costs.verify_us,
            ec.costs.key_generation_us,
            ec.costs.key_agreement_us,
            batches
        );
        println!(
            "                    {:.0} downloads/s on {} cores with nothing else; this run reached {:.0}% of it",
            ec.downloads_per_s,
            cores(),
            ec.ratio * 100.0
        );
    }
    for (reason, count) in fleet::failures_by_reason(results) {
        println!("  failed {count:>6}: {reason}");
    }
    println!("  per function (p50 / p99):");
    for (name, p50, p99, _) in fleet::step_latencies(results) {
        println!("    {name:<26} {:>10} / {:>10}", ms(p50), ms(p99));
    }
}

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// CPU time (user + system) this process has used, from the kernel's
/// per-process CPU clock: nanosecond resolution, so a run of a few
/// milliseconds still reads its CPU (the 10 ms ticks of /proc/self/stat
/// read zero for it).
pub(crate) fn process_cpu() -> Duration {
    cpu_clock(rustix::time::ClockId::ProcessCPUTime)
}

/// The time a kernel CPU clock (this process's or this thread's) reads.
pub(crate) fn cpu_clock(clock: rustix::time::ClockId) -> Duration {
    let t = rustix::time::clock_gettime(clock);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}
