//! `ferrosim`: the one binary of the platform.
//!
//! Each capability is a subcommand; the work itself lives in the library
//! crates, this file only parses arguments and wires them together.

use clap::{Parser, Subcommand};

mod access_config;
mod admin_cmd;
mod admin_lists_cmd;
mod api_token_cmd;
mod audit_cmd;
mod bench_cmd;
mod bench_compare;
mod bench_eim;
mod bench_eim_https;
mod bench_eim_memory;
mod bench_memory;
mod config;
mod demo_cmd;
mod demo_fleet;
mod eim_cmd;
mod eim_sanitize_cmd;
mod euicc_cmd;
mod fleet;
mod fleet_cmd;
mod fleet_serve;
mod id_args;
mod init_cmd;
mod instance;
mod ipa_cmd;
mod ipa_reset;
mod kek;
mod keys_cmd;
mod logging;
mod lpa_cmd;
mod operator_cmd;
mod operator_token_cmd;
mod order_cmd;
mod order_history_cmd;
mod pki_cmd;
mod pki_crl_cmd;
mod pki_token_cmd;
mod profile_eol_cmd;
mod report_cmd;
mod revocation_config;
mod secrets_config;
mod secrets_reseal;
mod serve_cmd;
mod simulate_cmd;
mod simulate_live;
mod slo_cmd;
mod version_cmd;

/// The allocator under the process: mimalloc by default (feature `mimalloc`),
/// else the system's.
#[cfg(feature = "mimalloc")]
type BaseAllocator = mimalloc::MiMalloc;
#[cfg(feature = "mimalloc")]
const BASE_ALLOCATOR: BaseAllocator = mimalloc::MiMalloc;
#[cfg(not(feature = "mimalloc"))]
type BaseAllocator = std::alloc::System;
#[cfg(not(feature = "mimalloc"))]
const BASE_ALLOCATOR: BaseAllocator = std::alloc::System;

/// With the feature `heap-count`, a counting global allocator over the base
/// one, so that `ferrosim bench --in-memory` can report the heap one virtual
/// eUICC takes. Off by default: it adds an atomic update to every allocation.
#[cfg(feature = "heap-count")]
#[global_allocator]
static ALLOCATOR: cap::Cap<BaseAllocator> = cap::Cap::new(BASE_ALLOCATOR, usize::MAX);

/// Without `heap-count`, the base allocator itself.
#[cfg(not(feature = "heap-count"))]
#[global_allocator]
static ALLOCATOR: BaseAllocator = BASE_ALLOCATOR;

/// A reader of the live heap bytes, when this build counts them.
fn live_heap_bytes() -> Option<fn() -> usize> {
    #[cfg(feature = "heap-count")]
    {
        Some(|| ALLOCATOR.allocated())
    }
    #[cfg(not(feature = "heap-count"))]
    {
        None
    }
}

/// ferrosim: eSIM activation platform (GSMA SGP.22 SM-DP+, virtual eUICC, LPA).
#[derive(Debug, Parser)]
#[command(name = "ferrosim", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version and what this build can do.
    Version,
    /// Test PKI: generate a GSMA RSP hierarchy, show certificates, verify chains,
    /// move the SM-DP+ keys into a PKCS#11 token.
    Pki(pki_cmd::PkiArgs),
    /// Activate a fleet of virtual devices against an SM-DP+ on loopback and report.
    Demo(demo_cmd::DemoArgs),
    /// Full downloads per second and per-function latency against an SM-DP+.
    Bench(bench_cmd::BenchArgs),
    /// Create an SM-DP+ instance: data directory, database, SM-DP+ address, test PKI.
    Init(init_cmd::InitArgs),
    /// Run the SM-DP+ (ES9+ and ES2+ over HTTPS); creates the instance on first start.
    Serve(serve_cmd::ServeArgs),
    /// Operators allowed to use ES2+: add, rotate-token, list, show, remove.
    Operator(operator_cmd::OperatorArgs),
    /// Profile types: imported profile packages and their metadata.
    ProfileType(admin_cmd::ProfileTypeArgs),
    /// Personalised profiles: import a batch file, generate, list.
    Profiles(admin_cmd::ProfilesArgs),
    /// Orders: create (with activation code and QR), release, cancel, show, list.
    Order(order_cmd::OrderArgs),
    /// A profile's end of life: revoke, show, list, reuse policy.
    Profile(profile_eol_cmd::ProfileArgs),
    /// The LPA: chip info, profiles, download, notifications, on a virtual or PC/SC eUICC.
    Lpa(lpa_cmd::LpaArgs),
    /// The virtual eUICC: create its state, serve it to PC/SC through vpcd.
    Euicc(euicc_cmd::EuiccArgs),
    /// SLOs: Prometheus rules and burn-rate alerts from OpenSLO, the Grafana dashboard.
    Slo(slo_cmd::SloArgs),
    /// The eIM (SGP.32): associate devices, queue packages and downloads, results, bootstrap.
    Eim(eim_cmd::EimArgs),
    /// The IPA (SGP.32) of a device: poll the eIM once or run on a schedule, install the first eIM.
    Ipa(ipa_cmd::IpaArgs),
    /// API tokens of the REST APIs: create, list, revoke.
    ApiToken(api_token_cmd::ApiTokenArgs),
    /// Keys of profile secrets at rest: init a key-encryption key, status, rotate.
    Keys(keys_cmd::KeysArgs),
    /// The audit trail: verify its hash chain and checkpoints, export it, sign a checkpoint.
    Audit(audit_cmd::AuditArgs),
    /// Fleet control over a running server's REST API: devices, reports, outages, rollouts, decisions.
    Fleet(fleet_cmd::FleetArgs),
    /// Reports: SLA (targets against actuals) as HTML with charts, CSV and JSON.
    Report(report_cmd::ReportArgs),
    /// The ES2+ callback outbox: pending and delivered callbacks.
    Callbacks(admin_lists_cmd::CallbacksArgs),
    /// Notifications devices sent to the SM-DP+ (enable, disable, delete...).
    Notifications(admin_lists_cmd::NotificationsArgs),
    /// Simulate a city event (outage, storm, festival, airport, rollout, fallback) in virtual time against the real fleet, eIM and eUICC code, or (--target) its phones against a running SM-DP+ over HTTPS.
    Simulate(simulate_cmd::SimulateArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Commands that print their own report log only warnings by default
    // (the simulator only errors: its report counts the failed downloads
    // by cause, a line per phone would drown it).
    let default_filter = match cli.command {
        Command::Demo(_) | Command::Bench(_) => "warn",
        Command::Simulate(_) => "error",
        _ => "info",
    };
    logging::init(default_filter)?;
    match cli.command {
        Command::Version => version_cmd::run(),
        Command::Pki(args) => pki_cmd::run(args)?,
        Command::Demo(args) => demo_cmd::run(args)?,
        Command::Bench(args) => bench_cmd::run(args)?,
        Command::Init(args) => init_cmd::run(args)?,
        Command::Serve(args) => serve_cmd::run(args)?,
        Command::Operator(args) => operator_cmd::run(args)?,
        Command::ProfileType(args) => admin_cmd::run_profile_type(args)?,
        Command::Profiles(args) => admin_cmd::run_profiles(args)?,
        Command::Order(args) => order_cmd::run(args)?,
        Command::Profile(args) => profile_eol_cmd::run(args)?,
        Command::Lpa(args) => lpa_cmd::run(args)?,
        Command::Euicc(args) => euicc_cmd::run(args)?,
        Command::Slo(args) => slo_cmd::run(args)?,
        Command::Report(args) => report_cmd::run(args)?,
        Command::Simulate(args) => simulate_cmd::run(args)?,
        Command::Eim(args) => eim_cmd::run(args)?,
        Command::Ipa(args) => ipa_cmd::run_command(args)?,
        Command::ApiToken(args) => api_token_cmd::run(args)?,
        Command::Audit(args) => audit_cmd::run(args)?,
        Command::Keys(args) => keys_cmd::run(args)?,
        Command::Fleet(args) => fleet_cmd::run(args)?,
        Command::Callbacks(args) => admin_lists_cmd::run_callbacks(args)?,
        Command::Notifications(args) => admin_lists_cmd::run_notifications(args)?,
    }
    Ok(())
}
