//! `ferrosim bench --eim --in-memory`: the eIM core on a `MemEimStore` and
//! the devices in this process, without HTTP. One thread per core, each
//! with its own share of the devices, runs them one session after another:
//! queue the device's packages at the eIM (signed there), run its IPA
//! session (every ESipa message as the ASN.1 binding's DER, through
//! [`Eim::handle`]), check the report. All threads share the one eIM.
//!
//! The eIM's CPU is the thread CPU time of its calls (queuing, and
//! answering each ESipa message), the rest is the IPAs' and eUICCs'.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use ferrosim_eim::relay::NoRelay;
use ferrosim_eim::{Counter, Eid, Eim, EsipaAnswer, EsipaReply, MemEimStore};
use ferrosim_ids::Timestamp;
use ferrosim_ipa::driver::inprocess::InProcessEim;
use ferrosim_ipa::driver::{EsipaClient, run_session};
use ferrosim_ipa::esipa::reply_from_asn1;
use ferrosim_ipa::{EimReply, EsipaError, EsipaRequest};
use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
use ferrosim_lpa::es9::{Es9Request, Es9Response};
use ferrosim_pki::{TestPki, TestPkiOptions};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::bench_eim::{
    self, Device, EimKey, Figures, Measured, Options, PackageRun, check_session, thread_cpu,
};
use crate::bench_memory::EcCosts;

/// The target of this mode on the reference 2-core machine.
const TARGET: f64 = 4_000.0;

/// The eIM in this thread, its CPU time counted.
struct MeteredEim {
    eim: Eim<MemEimStore>,
    /// For relayed ES9+ steps (none in this bench: no download triggers).
    relay: InProcessEim<MemEimStore, NoRelay>,
    spent_ns: AtomicU64,
}

impl MeteredEim {
    fn add(&self, since: Duration) {
        let spent = thread_cpu().saturating_sub(since);
        self.spent_ns.fetch_add(
            u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn spent(&self) -> Duration {
        Duration::from_nanos(self.spent_ns.load(Ordering::Relaxed))
    }

    /// What `ferrosim serve` answers to `der` (status, body).
    async fn exchange(&self, der: &[u8]) -> (u16, Vec<u8>) {
        let reply = match self.eim.handle(der, &NoRelay, Timestamp::now()).await {
            Ok(reply) => reply,
            Err(_) => EsipaReply::error_for(der),
        };
        match reply.into_asn1() {
            Ok(EsipaAnswer::Message { der, .. }) => (200, der),
            Ok(EsipaAnswer::NoContent) => (204, Vec::new()),
            Err(_) => (500, Vec::new()),
        }
    }
}

impl EsipaClient for MeteredEim {
    async fn send(&self, request: &EsipaRequest) -> Result<EimReply, EsipaError> {
        let der = request.to_der()?;
        let start = thread_cpu();
        let (status, body) = self.exchange(&der).await;
        self.add(start);
        reply_from_asn1(request.function(), status, &body)
    }

    async fn relay(&self, request: &Es9Request) -> Es9Response {
        self.relay.relay(request).await
    }
}

/// What one thread did.
struct ThreadOutcome {
    runs: Vec<PackageRun>,
    eim_cpu: Duration,
    /// Packages completed per device.
    completed: Vec<(Eid, u64)>,
}

/// Runs the benchmark on `threads` threads.
pub fn run(options: &Options, threads: usize) -> anyhow::Result<Figures> {
    options.check()?;
    let threads = threads.clamp(1, usize::try_from(options.devices)?);
    let pki = TestPki::generate(&TestPkiOptions {
        euicc_count: usize::try_from(options.devices)?,
        ..TestPkiOptions::default()
    })
    .context("generating the PKI")?;
    let key = EimKey::generate()?;
    let eim = key.eim(MemEimStore::new(), &pki)?;
    let devices = bench_eim::devices(&pki, &key, None, options)?;
    let setup = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    setup.block_on(bench_eim::associate(&eim, &pki, &devices))?;
    // Never called: no package triggers a download.
    let direct = HttpsEs9Client::new(&HttpsOptions::new(TlsTrust::Roots(
        TlsTrust::roots_from_bytes(pki.ci.certificate_pem().as_bytes())?,
    )))?;
    let ec = EcCosts::measure()?;
    let mut groups: Vec<Vec<Device>> = (0..threads).map(|_| Vec::new()).collect();
    for (n, device) in devices.into_iter().enumerate() {
        groups[n % threads].push(device);
    }
    let load_average = bench_eim::load_average();
    let cpu_before = crate::bench_cmd::process_cpu();
    let t = Instant::now();
    let outcomes: Vec<anyhow::Result<ThreadOutcome>> = std::thread::scope(|s| {
        let handles: Vec<_> = groups
            .into_iter()
            .map(|group| {
                let eim = eim.clone();
                let direct = &direct;
                s.spawn(move || drive(group, eim, direct, options.per_session))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a bench thread panicked")))
            })
            .collect()
    });
    let wall = t.elapsed();
    let cpu = crate::bench_cmd::process_cpu().saturating_sub(cpu_before);
    let mut runs = Vec::new();
    let mut eim_cpu = Duration::ZERO;
    let mut completed = Vec::new();
    for outcome in outcomes {
        let outcome = outcome?;
        runs.extend(outcome.runs);
        eim_cpu += outcome.eim_cpu;
        completed.extend(outcome.completed);
    }
    let stored = setup.block_on(bench_eim::audit_store(&eim, &completed))?;
    Ok(bench_eim::figures(
        options,
        Measured {
            mode: "eim-in-memory",
            setup: format!(
                "eIM core on the in-memory store, ESipa ASN.1 messages in process, {threads} threads"
            ),
            threads,
            runs,
            stored,
            wall,
            cpu,
            eim_cpu,
            load_average,
            target: TARGET,
        },
        ec,
    ))
}

/// One thread: its devices in turn, a session each, until every device ran
/// its share.
fn drive(
    mut devices: Vec<Device>,
    eim: Eim<MemEimStore>,
    direct: &HttpsEs9Client,
    per_session: u64,
) -> anyhow::Result<ThreadOutcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = MeteredEim {
        relay: InProcessEim {
            eim: eim.clone(),
            relay: NoRelay,
        },
        eim,
        spent_ns: AtomicU64::new(0),
    };
    let mut rng = StdRng::from_rng(&mut rand::rng());
    let mut runs = Vec::new();
    let mut completed: Vec<u64> = vec![0; devices.len()];
    runtime.block_on(async {
        loop {
            let mut busy = false;
            for (index, device) in devices.iter_mut().enumerate() {
                if device.queued >= device.share {
                    continue;
                }
                busy = true;
                let n = per_session.min(device.share - device.queued);
                let started = Instant::now();
                let mut counters: Vec<Counter> = Vec::new();
                for i in 0..n {
                    let start = thread_cpu();
                    let queued = client
                        .eim
                        .enqueue_package(
                            &device.eid,
                            &bench_eim::content(device.queued + i),
                            &mut rng,
                            Timestamp::now(),
                        )
                        .await;
                    client.add(start);
                    match queued.map(|q| q.counter) {
                        Ok(Some(counter)) => counters.push(counter),
                        Ok(None) => {
                            runs.push(failed(started, "queued without a counter".into()));
                            break;
                        }
                        Err(e) => {
                            runs.push(failed(started, format!("queuing: {e}")));
                            break;
                        }
                    }
                }
                let report = run_session(
                    &mut device.ipa,
                    device.es10.transport_mut(),
                    &client,
                    direct,
                    &mut device.state,
                )
                .await?;
                let session = check_session(&report, device.queued, &counters, started);
                completed[index] += session.iter().filter(|r| r.failure.is_none()).count() as u64;
                runs.extend(session);
                // Packages that could not be queued count as failed above.
                for _ in counters.len() as u64 + 1..n {
                    runs.push(failed(started, "not queued (an earlier one failed)".into()));
                }
                device.queued += n;
            }
            if !busy {
                return Ok::<_, anyhow::Error>(());
            }
        }
    })?;
    Ok(ThreadOutcome {
        runs,
        eim_cpu: client.spent(),
        completed: devices.iter().map(|d| d.eid).zip(completed).collect(),
    })
}

fn failed(started: Instant, reason: String) -> PackageRun {
    PackageRun {
        elapsed: started.elapsed(),
        failure: Some(reason),
    }
}
