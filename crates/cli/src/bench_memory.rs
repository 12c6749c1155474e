//! `ferrosim bench --in-memory`: full profile downloads with the SM-DP+, the
//! LPAs and the virtual eUICCs in this process and no HTTP. The SM-DP+ runs
//! its pure ES9+ steps on a [`MemStore`], each LPA calls it through
//! [`InProcessEs9`], each eUICC answers APDUs in memory. What it measures is
//! the protocol code itself: the elliptic-curve work, the ASN.1, the
//! profile personalisation and BSP, the state machines and the store.
//!
//! Beside the rate it prints the elliptic-curve lower bound: the P-256
//! operations one download performs on both sides ([`EC_PER_DOWNLOAD`]),
//! each timed on this machine in the same run, before the downloads,
//! between their waves (one round of smaller batches while no download
//! runs, [`WAVES`]) and after them, by [`ferrosim_crypto::ec_cost`] (on as
//! many threads at once as the run uses, each batch timed on its thread's
//! CPU clock), so that the achieved CPU per download can be read against
//! what the signatures alone cost while the downloads ran. The bound counts
//! each operation at its median batch of all those timings: a central estimate of
//! what it costs, as criterion reports one, not a minimum. Beside it the
//! run prints the same bound at each operation's fastest batch
//! (`ec_us_per_download_fastest`, `ec_bound_ratio_fastest`): on a VM whose
//! speed moves from second to second, the fastest batch reads 10-25 %
//! below what the operations usually cost, in the timing and in the
//! downloads alike.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferrosim_asn1::json::es2::{ConfirmOrderRequest, DownloadOrderRequest, RequestHeader};
use ferrosim_crypto::ec_cost;
use ferrosim_euicc::footprint::{HeapFootprint, measure_by_drop};
use ferrosim_euicc::{EuiccState, VirtualEuicc};
use ferrosim_lpa::download::Consent;
use ferrosim_lpa::es9::inprocess::InProcessEs9;
use ferrosim_lpa::{
    ActivationCode, DownloadRequest, Es10, Es10Options, SmdpAddress, download_profile,
};
use ferrosim_pki::{TestPki, TestPkiOptions};
use ferrosim_saip::{Iccid, Imsi};
use ferrosim_server::sandbox::TS48_PACKAGE;
use ferrosim_smdp::inventory::{self, ProfileRange, ProfileTypeImport};
use ferrosim_smdp::memstore::MemStore;
use ferrosim_smdp::metadata::{PolicyRules, ProfileClass};
use ferrosim_smdp::store::Operator;
use ferrosim_smdp::time::Timestamp;
use ferrosim_smdp::{Credential, Randomness, Smdp, SmdpConfig};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::fleet::{self, Activation, RunTotals, percentile};

/// The SM-DP+ address of the in-memory run (never resolved: no network).
const ADDRESS: &str = "smdp.bench.invalid";
const OPERATOR: &str = "bench-op";
const PROFILE_TYPE: &str = "ts48";

/// The P-256 operations of one full download with a pending installation
/// result delivered, on both sides, once the caches are warm (the SM-DP+
/// keeps the EUM it verified, the eUICCs of one EUM keep the DPauth and DPpb
/// certificates they verified):
///
/// | step | SM-DP+ | eUICC |
/// |---|---|---|
/// | initiateAuthentication / AuthenticateServer | sign serverSigned1 | verify serverSignature1, sign euiccSigned1 |
/// | authenticateClient / PrepareDownload | verify the eUICC certificate and euiccSignature1, sign smdpSigned2 | verify smdpSignature2, one-time key, sign euiccSigned2 |
/// | getBoundProfilePackage / LoadBoundProfilePackage | verify euiccSignature2, one-time key, key agreement, sign InitialiseSecureChannel | verify InitialiseSecureChannel, key agreement |
/// | handleNotification / installation result | verify euiccSignPIR | sign euiccSignPIR |
pub const EC_PER_DOWNLOAD: EcCounts = EcCounts {
    signs: 6,
    verifies: 7,
    key_generations: 2,
    key_agreements: 2,
};

/// Counts of P-256 operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EcCounts {
    /// ECDSA signatures.
    pub signs: u32,
    /// ECDSA verifications.
    pub verifies: u32,
    /// One-time key pairs made from a random scalar.
    pub key_generations: u32,
    /// ECDH key agreements.
    pub key_agreements: u32,
}

/// Cost of each P-256 operation on this machine (µs), with the production
/// backend (aws-lc through `ferrosim-crypto`), from a timing of
/// [`ferrosim_crypto::ec_cost`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EcCosts {
    /// ECDSA signature (raw r||s).
    pub sign_us: f64,
    /// ECDSA verification with a parsed key.
    pub verify_us: f64,
    /// One-time key pair from a scalar.
    pub key_generation_us: f64,
    /// ECDH with a one-time key.
    pub key_agreement_us: f64,
}

impl EcCosts {
    /// Each operation's median batch of a timing on this thread alone
    /// ([`ec_cost::measure_on`] with one thread): what the operations
    /// usually cost here.
    pub fn measure() -> anyhow::Result<Self> {
        Ok(ec_cost::measure_on(1)?.median().into())
    }

    /// CPU time (µs) of `counts`.
    pub fn of(&self, counts: EcCounts) -> f64 {
        f64::from(counts.signs) * self.sign_us
            + f64::from(counts.verifies) * self.verify_us
            + f64::from(counts.key_generations) * self.key_generation_us
            + f64::from(counts.key_agreements) * self.key_agreement_us
    }
}

impl From<ec_cost::PerOperation<f64>> for EcCosts {
    fn from(us: ec_cost::PerOperation<f64>) -> Self {
        Self {
            sign_us: us.sign,
            verify_us: us.verify,
            key_generation_us: us.key_pair,
            key_agreement_us: us.agreement,
        }
    }
}

/// A run beside the P-256 work its downloads cannot avoid: the operations
/// of one download ([`EC_PER_DOWNLOAD`]) at `costs`, the rate `threads`
/// threads could reach doing nothing else, and how much of it the run
/// reached. Both benchmarks print it (`--in-memory` and HTTPS against the
/// embedded SM-DP+).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EcBound {
    /// Cost of each operation (µs).
    pub costs: EcCosts,
    /// P-256 CPU time of one download at `costs` (µs).
    pub us_per_download: f64,
    /// Share of the run's CPU per download that is this P-256 work.
    pub share: f64,
    /// Downloads per second the threads could do with nothing but it.
    pub downloads_per_s: f64,
    /// The run's rate over that bound.
    pub ratio: f64,
}

impl EcBound {
    /// The bound at `costs` on `threads` threads, for a run of
    /// `downloads_per_s` at `cpu_us_per_download`. Zero costs give a zero
    /// bound and ratio (unknown).
    pub fn new(
        costs: EcCosts,
        threads: usize,
        downloads_per_s: f64,
        cpu_us_per_download: f64,
    ) -> Self {
        let us_per_download = costs.of(EC_PER_DOWNLOAD);
        let bound = if us_per_download > 0.0 {
            threads as f64 * 1e6 / us_per_download
        } else {
            0.0
        };
        Self {
            costs,
            us_per_download,
            share: if cpu_us_per_download > 0.0 {
                us_per_download / cpu_us_per_download
            } else {
                0.0
            },
            downloads_per_s: bound,
            ratio: if bound > 0.0 {
                downloads_per_s / bound
            } else {
                0.0
            },
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Full downloads.
    pub downloads: usize,
    /// Downloads in flight at once.
    pub concurrency: usize,
    /// Profiles each virtual device downloads, one after the other.
    pub profiles_per_device: usize,
    /// Seed of every random choice (SM-DP+ and eUICCs); `None`: the OS.
    pub seed: Option<u64>,
    /// Reads the process's live heap bytes (a counting allocator), if any.
    pub live_heap_bytes: Option<fn() -> usize>,
}

/// The figures of one in-memory run.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// `"in-memory"`.
    pub mode: &'static str,
    /// Downloads asked for.
    pub downloads: usize,
    /// Downloads that ended with the installation result acknowledged.
    pub completed: usize,
    /// Downloads that failed.
    pub failed: usize,
    /// Virtual devices.
    pub devices: usize,
    /// Downloads in flight at once.
    pub concurrency: usize,
    /// Worker threads.
    pub threads: usize,
    /// The seed, if the run was seeded.
    pub seed: Option<u64>,
    /// Wall time of the downloads (s).
    pub wall_s: f64,
    /// Completed downloads per second.
    pub downloads_per_s: f64,
    /// Process CPU per completed download (µs).
    pub cpu_us_per_download: f64,
    /// Download time percentiles (ms).
    pub p50_ms: f64,
    /// 99th percentile (ms).
    pub p99_ms: f64,
    /// P-256 operations per download.
    pub ec_per_download: EcCounts,
    /// Their costs: each operation's median batch of the timings before,
    /// between the waves of and after the downloads (µs each).
    pub ec_costs_us: EcCosts,
    /// EC CPU per download at those costs (µs).
    pub ec_us_per_download: f64,
    /// `ec_us_per_download / cpu_us_per_download`: the EC share of the
    /// download CPU.
    pub ec_share: f64,
    /// The rate the EC work alone allows on `threads` threads.
    pub ec_bound_downloads_per_s: f64,
    /// `downloads_per_s / ec_bound_downloads_per_s`.
    pub ec_bound_ratio: f64,
    /// The process's CPU time over the downloads' wall time on `threads`
    /// threads: how busy the run kept them. `ec_bound_ratio` is
    /// `ec_share x cpu_utilisation`, so a ratio below the EC share means
    /// the threads waited: on other work of the machine (their run queue)
    /// or idle. Measured on this 2-core VM: about 0.99 with nothing else
    /// running, lower when other processes share the cores (the main
    /// thread's little CPU counts too, so it can read a hair above 1).
    pub cpu_utilisation: f64,
    /// Batches each operation's costs are taken from (all timings, all
    /// threads).
    pub ec_batches: usize,
    /// The same operations at their fastest batch (µs each): the least
    /// disturbed reading, below what they usually cost. Not the bound.
    pub ec_costs_fastest_us: EcCosts,
    /// EC CPU per download at the fastest batches (µs).
    pub ec_us_per_download_fastest: f64,
    /// The rate the EC work allows at the fastest batches.
    pub ec_bound_downloads_per_s_fastest: f64,
    /// `downloads_per_s / ec_bound_downloads_per_s_fastest`.
    pub ec_bound_ratio_fastest: f64,
    /// Heap per virtual eUICC after its downloads (shared identity parts
    /// not counted); `None` without a counting allocator.
    pub euicc_heap_bytes_per_device: Option<usize>,
    /// Profiles installed per measured device.
    pub profiles_per_device: usize,
    /// Failures by reason.
    pub failures: Vec<(String, usize)>,
}

struct Bench {
    smdp: Smdp<MemStore>,
    /// One identity per device, loaded (keys parsed, certificate chains
    /// checked) before the timed part: a device is made once, not per download.
    identities: Vec<ferrosim_euicc::EuiccIdentity>,
    codes: Vec<ActivationCode>,
}

/// Runs the benchmark on a multi-threaded tokio runtime of `threads` workers.
pub fn run(options: &Options, threads: usize) -> anyhow::Result<Figures> {
    if options.downloads == 0 || options.concurrency == 0 || options.profiles_per_device == 0 {
        bail!("downloads, concurrency and profiles per device must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;
    let mut bench = runtime.block_on(prepare(options))?;
    let mut ec_batches = ec_cost::measure_on(threads.max(1))?;
    let devices = options.downloads.div_ceil(options.profiles_per_device);
    let waves = runtime.block_on(download_all(&mut bench, options, devices, threads.max(1)))?;
    drop(runtime);
    let (wall, cpu) = (waves.wall, waves.cpu);
    ec_batches.extend(waves.ec_samples);
    let heap = options
        .live_heap_bytes
        .map(|live| heap_per_device(waves.cards, live));
    let results = waves.results;
    // Timed again after the downloads (and the heap count), and the
    // batches of all timings count: the VM has slow spells of seconds to
    // minutes in which every operation runs 25-40 % slower, and one of
    // them during a single timing would decide the reading alone.
    ec_batches.extend(ec_cost::measure_on(threads.max(1))?);
    Ok(figures(
        options,
        threads,
        devices,
        &results,
        wall,
        cpu,
        &ec_batches,
        heap,
    ))
}

#[allow(clippy::too_many_arguments)]
fn figures(
    options: &Options,
    threads: usize,
    devices: usize,
    results: &[Activation],
    wall: Duration,
    cpu: Duration,
    ec_batches: &ec_cost::Batches,
    heap: Option<HeapFootprint>,
) -> Figures {
    let totals = RunTotals::of(results, wall, cpu);
    let (completed, times) = (totals.completed, &totals.times);
    let wall_s = wall.as_secs_f64().max(1e-9);
    let (downloads_per_s, cpu_us_per_download) = (totals.per_s, totals.cpu_us_each);
    let median = EcBound::new(
        EcCosts::from(ec_batches.median()),
        threads,
        downloads_per_s,
        cpu_us_per_download,
    );
    let fastest = EcBound::new(
        EcCosts::from(ec_batches.fastest()),
        threads,
        downloads_per_s,
        cpu_us_per_download,
    );
    Figures {
        mode: "in-memory",
        downloads: options.downloads,
        completed,
        failed: results.len() - completed,
        devices,
        concurrency: options.concurrency,
        threads,
        seed: options.seed,
        wall_s,
        downloads_per_s,
        cpu_us_per_download,
        p50_ms: percentile(times, 50.0).as_secs_f64() * 1e3,
        p99_ms: percentile(times, 99.0).as_secs_f64() * 1e3,
        ec_per_download: EC_PER_DOWNLOAD,
        ec_costs_us: median.costs,
        ec_us_per_download: median.us_per_download,
        ec_share: median.share,
        ec_bound_downloads_per_s: median.downloads_per_s,
        ec_bound_ratio: median.ratio,
        cpu_utilisation: cpu.as_secs_f64() / (wall_s * threads.max(1) as f64),
        ec_batches: ec_batches.per_operation(),
        ec_costs_fastest_us: fastest.costs,
        ec_us_per_download_fastest: fastest.us_per_download,
        ec_bound_downloads_per_s_fastest: fastest.downloads_per_s,
        ec_bound_ratio_fastest: fastest.ratio,
        euicc_heap_bytes_per_device: heap.map(|h| h.bytes_per_device()),
        profiles_per_device: options.profiles_per_device,
        failures: fleet::failures_by_reason(results),
    }
}

/// Heap the devices give back when dropped, per device. Only this thread
/// runs now (the runtime is gone), so the process-wide count is theirs.
fn heap_per_device(cards: Vec<VirtualEuicc>, live: fn() -> usize) -> HeapFootprint {
    measure_by_drop(cards, live)
}

fn seed_bytes(seed: u64, domain: u8) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..8].copy_from_slice(&seed.to_be_bytes());
    out[8] = domain;
    out
}

/// The PKI, the SM-DP+ on a `MemStore` with the TS.48 profile type, and one
/// released order per download.
async fn prepare(options: &Options) -> anyhow::Result<Bench> {
    let devices = options.downloads.div_ceil(options.profiles_per_device);
    let pki = TestPki::generate(&TestPkiOptions {
        euicc_count: devices,
        smdp_address: ADDRESS.into(),
        ..TestPkiOptions::default()
    })
    .context("generating the PKI")?;
    let credential = |issued: &ferrosim_pki::Issued| -> anyhow::Result<Credential> {
        Ok(Credential {
            certificate: issued.certificate.clone(),
            key: Arc::new(issued.signing_key()?),
        })
    };
    let config = SmdpConfig::new(
        ADDRESS.to_owned(),
        credential(&pki.dp_auth)?,
        credential(&pki.dp_pb)?,
        pki.trust_store()?,
    )?;
    let randomness = match options.seed {
        Some(seed) => Randomness::seeded(seed_bytes(seed, 0)),
        None => Randomness::os(),
    };
    let now = Timestamp::now();
    let store = MemStore::new();
    let operator_id = ferrosim_smdp::ids::OperatorId::new(OPERATOR)?;
    let token = inventory::add_operator(
        &store,
        operator_id.clone(),
        "Bench Operator".into(),
        None,
        &mut randomness.for_call(),
    )
    .await?;
    inventory::import_profile_type(
        &store,
        ProfileTypeImport {
            operator: operator_id.clone(),
            name: PROFILE_TYPE.into(),
            package: TS48_PACKAGE.to_vec(),
            service_provider_name: Some("ferrosim bench".into()),
            profile_name: Some("TS.48 test profile".into()),
            profile_class: ProfileClass::Operational,
            policy_rules: PolicyRules::default(),
            owner_mcc_mnc: None,
            fallback_allowed: false,
        },
        now,
    )
    .await?;
    inventory::generate_profiles(
        &store,
        &operator_id,
        PROFILE_TYPE,
        &ProfileRange {
            count: u64::try_from(options.downloads)?,
            first_iccid: Iccid::from_body("894400000000000001")?,
            first_imsi: Imsi::with_mnc_len("001010000000001", 2)?,
        },
        &mut randomness.for_call(),
        now,
    )
    .await?;
    let smdp = Smdp::with_randomness(config, store, randomness);
    let operator = smdp.authenticate_operator(&token).await?;
    let codes = order(&smdp, &operator, options.downloads, now).await?;
    let identities = fleet::identities(&pki)?;
    Ok(Bench {
        smdp,
        identities,
        codes,
    })
}

/// Orders and releases `n` profiles (no EID, no confirmation code).
async fn order(
    smdp: &Smdp<MemStore>,
    operator: &Operator,
    n: usize,
    now: Timestamp,
) -> anyhow::Result<Vec<ActivationCode>> {
    let address = SmdpAddress::new(ADDRESS)?;
    let mut codes = Vec::with_capacity(n);
    for i in 0..n {
        let header = RequestHeader {
            function_requester_identifier: OPERATOR.into(),
            function_call_identifier: format!("bench-{i}"),
        };
        let ordered = smdp
            .download_order(
                operator,
                &DownloadOrderRequest {
                    header: header.clone(),
                    eid: None,
                    iccid: None,
                    profile_type: Some(PROFILE_TYPE.into()),
                },
                now,
            )
            .await?;
        let confirmed = smdp
            .confirm_order(
                operator,
                &ConfirmOrderRequest {
                    header,
                    iccid: ordered.iccid,
                    eid: None,
                    matching_id: None,
                    confirmation_code: None,
                    smds_address: None,
                    release_flag: true,
                },
                now,
            )
            .await?;
        codes.push(ActivationCode::new(
            address.clone(),
            Some(&confirmed.matching_id),
        )?);
    }
    Ok(codes)
}

/// Waves the downloads run in, with a round of EC timing batches between
/// two waves ([`ec_cost::sample_on`]) while no download runs.
const WAVES: usize = 8;

/// The downloads' outcome: the cards and results, the waves' wall and
/// process CPU time added up (the timing rounds between them not
/// counted), and those timing rounds.
struct Waves {
    cards: Vec<VirtualEuicc>,
    results: Vec<Activation>,
    wall: Duration,
    cpu: Duration,
    ec_samples: ec_cost::Batches,
}

/// Every device downloads its profiles, `concurrency` downloads at a time,
/// in [`WAVES`] waves of devices, and between two waves times one round of EC
/// batches on `threads` threads, so that the bound's costs follow the
/// machine's speed through the downloads rather than only before and after
/// them. A wave's last downloads leave a thread idle for at most one
/// download (about a millisecond), which the wall time counts.
async fn download_all(
    bench: &mut Bench,
    options: &Options,
    devices: usize,
    threads: usize,
) -> anyhow::Result<Waves> {
    let mut identities = std::mem::take(&mut bench.identities)
        .into_iter()
        .take(devices)
        .enumerate();
    let es9 = InProcessEs9::new(bench.smdp.clone());
    let sem = Arc::new(Semaphore::new(options.concurrency));
    let mut codes = bench.codes.iter();
    let mut out = Waves {
        cards: Vec::with_capacity(devices),
        results: Vec::with_capacity(options.downloads),
        wall: Duration::ZERO,
        cpu: Duration::ZERO,
        ec_samples: ec_cost::Batches::default(),
    };
    let per_wave = devices.div_ceil(WAVES).max(1);
    for wave in 0..WAVES {
        if wave > 0 {
            // Between two waves: no download runs.
            out.ec_samples.extend(ec_cost::sample_on(threads)?);
        }
        let cpu_before = crate::bench_cmd::process_cpu();
        let t = Instant::now();
        let (cards, results) = wave_of(
            identities.by_ref().take(per_wave),
            &mut codes,
            options,
            &es9,
            &sem,
        )
        .await?;
        out.wall += t.elapsed();
        out.cpu += crate::bench_cmd::process_cpu().saturating_sub(cpu_before);
        out.cards.extend(cards);
        out.results.extend(results);
    }
    Ok(out)
}

/// One wave: the downloads of `identities` (numbered in the run), each
/// device's next `profiles_per_device` activation codes from `codes`.
async fn wave_of<'a>(
    identities: impl Iterator<Item = (usize, ferrosim_euicc::EuiccIdentity)>,
    codes: &mut impl Iterator<Item = &'a ActivationCode>,
    options: &Options,
    es9: &InProcessEs9<MemStore>,
    sem: &Arc<Semaphore>,
) -> anyhow::Result<(Vec<VirtualEuicc>, Vec<Activation>)> {
    let mut tasks = Vec::new();
    for (n, identity) in identities {
        let mine: Vec<ActivationCode> = codes
            .by_ref()
            .take(options.profiles_per_device)
            .cloned()
            .collect();
        let rng = match options.seed {
            Some(seed) => {
                let mut s = seed_bytes(seed, 1);
                s[9..17].copy_from_slice(&(n as u64).to_be_bytes());
                StdRng::from_seed(s)
            }
            None => StdRng::from_rng(&mut rand::rng()),
        };
        let card = VirtualEuicc::new(identity, EuiccState::default());
        let es9 = es9.clone();
        let sem = Arc::clone(sem);
        tasks.push(tokio::spawn(async move {
            device(card, rng, mine, &es9, &sem).await
        }));
    }
    let mut cards = Vec::with_capacity(tasks.len());
    let mut results = Vec::with_capacity(tasks.len() * options.profiles_per_device);
    for t in tasks {
        let (card, activations) = t.await?;
        cards.push(card);
        results.extend(activations);
    }
    Ok((cards, results))
}

/// One device: its downloads one after the other, each holding a permit.
async fn device(
    mut card: VirtualEuicc,
    mut rng: StdRng,
    codes: Vec<ActivationCode>,
    es9: &InProcessEs9<MemStore>,
    sem: &Semaphore,
) -> (VirtualEuicc, Vec<Activation>) {
    let mut out = Vec::with_capacity(codes.len());
    // The card's clock (ms since the epoch, as the eUICC keeps time), read
    // once per download rather than per APDU (a download is some 130 APDUs
    // within a millisecond or two).
    let clock = std::sync::atomic::AtomicI64::new(0);
    let set_clock = || {
        clock.store(
            Timestamp::now().millis(),
            std::sync::atomic::Ordering::Relaxed,
        );
    };
    set_clock();
    {
        let transport = |apdu: &[u8]| {
            let now = Timestamp::from_millis(clock.load(std::sync::atomic::Ordering::Relaxed));
            card.handle_apdu_with_rng(apdu, now, &mut rng)
        };
        let mut es10 = match Es10::open(transport, &Es10Options::default()) {
            Ok(es10) => es10,
            Err(e) => {
                let failure = Activation {
                    elapsed: Duration::ZERO,
                    failure: Some(format!("opening the ISD-R: {e}")),
                    timings: Vec::new(),
                };
                return (card, vec![failure; codes.len()]);
            }
        };
        for code in &codes {
            let Ok(_permit) = sem.acquire().await else {
                break;
            };
            let start = Instant::now();
            set_clock();
            let request = DownloadRequest::new(code, None);
            let activation =
                match download_profile(&mut es10, es9, &request, |_| Consent::Accept).await {
                    Ok(outcome) => Activation {
                        elapsed: start.elapsed(),
                        failure: None,
                        timings: outcome.timings,
                    },
                    Err(e) => Activation {
                        elapsed: start.elapsed(),
                        failure: Some(format!("{}: {}", e.step, e.failure)),
                        timings: e.timings,
                    },
                };
            out.push(activation);
        }
    }
    (card, out)
}

/// Prints the figures for a person.
pub fn print(f: &Figures) {
    println!(
        "ferrosim bench --in-memory: {} downloads on {} devices, concurrency {}, {} threads, seed {}",
        f.downloads,
        f.devices,
        f.concurrency,
        f.threads,
        f.seed.map_or("none (OS)".to_owned(), |s| s.to_string())
    );
    println!(
        "  completed:        {}/{} in {:.1} ms",
        f.completed,
        f.downloads,
        f.wall_s * 1e3
    );
    println!(
        "  throughput:       {:.1} full downloads/s",
        f.downloads_per_s
    );
    println!(
        "  download time:    p50 {:.2} ms  p99 {:.2} ms",
        f.p50_ms, f.p99_ms
    );
    println!(
        "  CPU:              {:.0} µs per download (SM-DP+, LPA and eUICC together)",
        f.cpu_us_per_download
    );
    let c = &f.ec_costs_us;
    let n = &f.ec_per_download;
    println!(
        "  EC lower bound:   {} signs x {:.1} + {} verifies x {:.1} + {} key pairs x {:.1} + {} agreements x {:.1} = {:.0} µs per download ({:.0}% of the CPU; each operation's median of {} batches)",
        n.signs,
        c.sign_us,
        n.verifies,
        c.verify_us,
        n.key_generations,
        c.key_generation_us,
        n.key_agreements,
        c.key_agreement_us,
        f.ec_us_per_download,
        f.ec_share * 100.0,
        f.ec_batches
    );
    println!(
        "                    {:.0} downloads/s on {} threads; achieved {:.0}% of it",
        f.ec_bound_downloads_per_s,
        f.threads,
        f.ec_bound_ratio * 100.0
    );
    println!(
        "                    (= EC share x CPU utilisation {:.0}%: the process's CPU over {} threads' wall time)",
        f.cpu_utilisation * 100.0,
        f.threads
    );
    let m = &f.ec_costs_fastest_us;
    println!(
        "  EC at fastest:    {:.1} / {:.1} / {:.1} / {:.1} µs = {:.0} µs per download, {:.0} downloads/s; achieved {:.0}% of it (each operation's fastest batch, not the bound)",
        m.sign_us,
        m.verify_us,
        m.key_generation_us,
        m.key_agreement_us,
        f.ec_us_per_download_fastest,
        f.ec_bound_downloads_per_s_fastest,
        f.ec_bound_ratio_fastest * 100.0
    );
    match f.euicc_heap_bytes_per_device {
        Some(bytes) => println!(
            "  eUICC heap:       {bytes} bytes per device with {} profile(s) installed (shared identity not counted)",
            f.profiles_per_device
        ),
        None => println!(
            "  eUICC heap:       not measured (build with `--features heap-count` for a counting allocator)"
        ),
    }
    for (reason, count) in &f.failures {
        println!("  failed {count:>6}: {reason}");
    }
}
