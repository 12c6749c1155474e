//! `ferrosim bench --eim` over HTTPS: the eIM's ESipa endpoints as
//! `ferrosim serve` runs them (`POST /gsma/rsp2/asn1`, or the JSON
//! binding), on SQLite (or PostgreSQL), in this process on 127.0.0.1 with
//! TLS; the devices' IPAs poll it over loopback HTTPS, all at once, sharing
//! kept-alive connections (HTTP/2).
//!
//! The server checks access as `serve` does by default (rate limits per
//! address, token and EID; see [`unreachable_limits`]), with limits raised
//! above what the bench's IPAs, all on one address, make.
//!
//! The server and the IPAs run on two runtimes with as many worker threads
//! as cores each, so that the process's CPU can be split: the IPAs' threads
//! (and the main thread) are the devices', every other thread (the server's
//! workers, the database's) the eIM's. Packages are queued on the server's
//! runtime, as the operator's API would queue them.

use std::time::{Duration, Instant};

use anyhow::Context;
use ferrosim_eim::{Counter, Eid, Eim};
use ferrosim_ids::Timestamp;
use ferrosim_ipa::Binding;
use ferrosim_ipa::driver::https::HttpsEsipa;
use ferrosim_ipa::driver::run_session;
use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
use ferrosim_server::access::{Access, AccessPolicy};
use ferrosim_server::relay::SmdpRelay;
use ferrosim_server::sandbox::{Sandbox, SandboxOptions, tls_identity};
use ferrosim_server::{ServerOptions, esipa};
use ferrosim_store::{Durability, SqlStore, StoreOptions};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::bench_eim::{
    self, Device, EimKey, Figures, Measured, Options, PackageRun, check_session, threads_cpu,
};
use crate::bench_memory::EcCosts;

/// The target of this mode on the reference 2-core machine.
const TARGET: f64 = 1_500.0;
/// Name of the IPAs' threads (their CPU is the devices').
const IPA_THREADS: &str = "bench-ipa";
/// Longest an ESipa call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How the eIM is served and stores its data.
#[derive(Debug, Clone)]
pub struct Serving {
    /// Database URL; SQLite in a temporary directory when `None`.
    pub database_url: Option<String>,
    /// SQLite commit durability.
    pub durability: Durability,
    /// As given, for the report.
    pub durability_name: String,
    /// Database connections (PostgreSQL).
    pub db_connections: u32,
    /// The ESipa binding the IPAs speak.
    pub binding: Binding,
}

/// Runs the benchmark.
pub fn run(options: &Options, serving: &Serving) -> anyhow::Result<Figures> {
    options.check()?;
    let cores = crate::bench_cmd::cores();
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .thread_name("eim-server")
        .enable_all()
        .build()?;
    let ipa_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .thread_name(IPA_THREADS)
        .enable_all()
        .build()?;
    let key = EimKey::generate()?;
    let (mut sandbox, eim, server, address) = server_runtime.block_on(async {
        let sandbox = Sandbox::start(SandboxOptions {
            euiccs: usize::try_from(options.devices)?,
            profiles: 0,
            database_url: serving.database_url.clone(),
            store: StoreOptions {
                durability: serving.durability,
                max_connections: serving.db_connections,
                ..StoreOptions::default()
            },
            ..SandboxOptions::default()
        })
        .await
        .context("starting the server")?;
        let eim = key.eim(sandbox.store.clone(), &sandbox.pki)?;
        let routes = esipa::routes(
            eim.clone(),
            SmdpRelay::new(Some(sandbox.smdp.clone()), None),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let address = format!("localhost:{}", listener.local_addr()?.port());
        let mut server_options = ServerOptions::new(tls_identity(&sandbox.pki));
        server_options.access = Some(Access::new(unreachable_limits()));
        let server =
            ferrosim_server::start_with(listener, sandbox.smdp.clone(), server_options, routes)
                .await?;
        anyhow::Ok((sandbox, eim, server, address))
    })?;
    let devices = bench_eim::devices(&sandbox.pki, &key, Some(&address), options)?;
    server_runtime.block_on(bench_eim::associate(&eim, &sandbox.pki, &devices))?;
    let roots = TlsTrust::roots_from_bytes(sandbox.ci_pem().as_bytes())?;
    let client = HttpsEsipa::new(
        &address,
        serving.binding,
        &TlsTrust::Roots(roots.clone()),
        CALL_TIMEOUT,
    )?;
    // Never called: no package triggers a download.
    let direct = HttpsEs9Client::new(&HttpsOptions::new(TlsTrust::Roots(roots)))?;
    let db = if sandbox.store.backend() == ferrosim_store::Backend::Postgres {
        "PostgreSQL".to_owned()
    } else {
        format!("SQLite, durability {}", serving.durability_name)
    };
    let setup = format!(
        "eIM ESipa of `ferrosim serve` in this process, {} binding over loopback HTTPS (kept-alive), {db}; {cores} server and {cores} IPA threads",
        match serving.binding {
            Binding::Asn1 => "ASN.1",
            Binding::Json => "JSON",
        }
    );
    let ec = EcCosts::measure()?;
    let load_average = bench_eim::load_average();
    let cpu_before = crate::bench_cmd::process_cpu();
    let devices_cpu_before = threads_cpu(IPA_THREADS);
    let t = Instant::now();
    let queue = server_runtime.handle().clone();
    let outcomes = ipa_runtime.block_on(async {
        let tasks: Vec<_> = devices
            .into_iter()
            .map(|device| {
                tokio::spawn(poll_all(
                    device,
                    eim.clone(),
                    queue.clone(),
                    client.clone(),
                    direct.clone(),
                    options.per_session,
                ))
            })
            .collect();
        let mut outcomes = Vec::with_capacity(tasks.len());
        for task in tasks {
            outcomes.push(task.await.context("a device task failed")??);
        }
        anyhow::Ok(outcomes)
    })?;
    let wall = t.elapsed();
    let cpu = crate::bench_cmd::process_cpu().saturating_sub(cpu_before);
    let devices_cpu = threads_cpu(IPA_THREADS).saturating_sub(devices_cpu_before);
    let mut runs = Vec::new();
    let mut completed = Vec::new();
    for (eid, device_runs) in outcomes {
        completed.push((
            eid,
            device_runs.iter().filter(|r| r.failure.is_none()).count() as u64,
        ));
        runs.extend(device_runs);
    }
    let stored = server_runtime.block_on(bench_eim::audit_store(&eim, &completed))?;
    server_runtime.block_on(async {
        server.shutdown(Duration::from_secs(2)).await;
        sandbox.stop().await;
        sandbox.store.close().await;
    });
    drop(ipa_runtime);
    Ok(bench_eim::figures(
        options,
        Measured {
            mode: "eim-https",
            setup,
            threads: cores,
            runs,
            stored,
            wall,
            cpu,
            eim_cpu: cpu.saturating_sub(devices_cpu),
            load_average,
            target: TARGET,
        },
        ec,
    ))
}

/// Access control as `serve` runs it by default (per address, per token,
/// per EID: every ESipa call is counted against the EID it carries), with
/// limits no bench run reaches: all the IPAs here share one address and
/// each polls far more often than a device in the field, so serve's default
/// limits would refuse them; the checks still cost what they cost.
fn unreachable_limits() -> AccessPolicy {
    AccessPolicy {
        rate_per_sec: 1e9,
        burst: u32::MAX,
        eid_rate_per_sec: 1e9,
        eid_burst: u32::MAX,
        ..AccessPolicy::default()
    }
}

/// One device: its packages queued and run, a session at a time.
async fn poll_all(
    mut device: Device,
    eim: Eim<SqlStore>,
    queue: tokio::runtime::Handle,
    client: HttpsEsipa,
    direct: HttpsEs9Client,
    per_session: u64,
) -> anyhow::Result<(Eid, Vec<PackageRun>)> {
    let mut runs = Vec::with_capacity(usize::try_from(device.share)?);
    while device.queued < device.share {
        let n = per_session.min(device.share - device.queued);
        let started = Instant::now();
        let (eid, first, eim) = (device.eid, device.queued, eim.clone());
        let queued = queue
            .spawn(async move {
                let mut rng = StdRng::from_rng(&mut rand::rng());
                let mut counters: Vec<Counter> = Vec::new();
                for i in 0..n {
                    let q = eim
                        .enqueue_package(
                            &eid,
                            &bench_eim::content(first + i),
                            &mut rng,
                            Timestamp::now(),
                        )
                        .await
                        .map_err(|e| format!("queuing: {e}"))?;
                    counters.push(q.counter.ok_or("queued without a counter")?);
                }
                Ok::<_, String>(counters)
            })
            .await
            .context("the queuing task failed")?;
        let counters = match queued {
            Ok(counters) => counters,
            Err(reason) => {
                // Whatever was queued stays for the next session.
                for _ in 0..n {
                    runs.push(PackageRun {
                        elapsed: started.elapsed(),
                        failure: Some(reason.clone()),
                    });
                }
                device.queued += n;
                continue;
            }
        };
        let report = run_session(
            &mut device.ipa,
            device.es10.transport_mut(),
            &client,
            &direct,
            &mut device.state,
        )
        .await?;
        runs.extend(check_session(&report, first, &counters, started));
        device.queued += n;
    }
    Ok((device.eid, runs))
}
