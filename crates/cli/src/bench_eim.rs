//! `ferrosim bench --eim`: eUICC packages executed end to end per second,
//! through the eIM and the IPAs of virtual IoT devices: the eIM signs and
//! queues each package, the device's IPA fetches it (GetEimPackage), the
//! slim virtual eUICC verifies the eIM signature and runs it, the IPA
//! returns the eUICC's signed result (ProvideEimPackageResult), the eIM
//! verifies and stores it and acknowledges it. A package is done when its
//! result is stored at the eIM and the acknowledgement reached the IPA.
//!
//! Two modes share the devices, the operation mix and the figures of this
//! module: in memory ([`crate::bench_eim_memory`]: a thread per core, each
//! driving its own devices through the eIM core on a `MemEimStore`, no HTTP)
//! and over HTTPS ([`crate::bench_eim_https`]: the eIM's ESipa endpoints of
//! `ferrosim serve` in this process on SQLite or PostgreSQL, the IPAs
//! polling them over loopback HTTPS with kept-alive connections).
//!
//! The operation mix, per device and in this order, repeated: disable its
//! enabled profile, enable it again, list the profiles (see [`operation`]).
//! Each is one signed package with a signed result: four P-256 operations
//! ([`EC_PER_PACKAGE`]). The profiles' metadata names no notification
//! address, so enabling and disabling leave no notification to sign or
//! deliver: what is measured is the eIM's control channel only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferrosim_asn1::rasn::types::{FixedOctetString, Integer};
use ferrosim_asn1::{decode_der, encode_der, rsp, sgp32};
use ferrosim_crypto::{KeySource, SoftwareKey};
use ferrosim_eim::{
    AssociationRequest, Counter, Eid, Eim, EimConfig, EimId, EimStore, ItemOutcome, Operation,
    PackageContent, Trust,
};
use ferrosim_euicc::profile::PolicyRules;
use ferrosim_euicc::{
    EuiccIdentity, EuiccState, InstalledProfile, ProfileClass, ProfileState, VirtualEuicc,
};
use ferrosim_ids::{Clock, Iccid, SystemClock, Timestamp};
use ferrosim_ipa::driver::MemoryStore;
use ferrosim_ipa::{Ipa, IpaConfig, ItemReport, PackageOutcome, PendingState, SessionReport};
use ferrosim_lpa::{Es10, Es10Options, Transport, TransportError};
use ferrosim_pki::TestPki;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;

use crate::bench_memory::{EcCosts, EcCounts};
use crate::fleet::percentile;

/// The eIM id the bench devices are associated under.
pub(crate) const EIM_ID: &str = "eim.bench.ferrosim";
/// The association token agreed with every device.
const ASSOCIATION_TOKEN: i64 = 1;
/// Most packages one device may be given (its counter must not run out).
pub(crate) const MAX_PACKAGES_PER_DEVICE: u64 = 1_000_000;

/// The P-256 operations of one package: the eIM signs it, the eUICC
/// verifies that signature and signs its result, the eIM verifies the
/// result's signature.
pub const EC_PER_PACKAGE: EcCounts = EcCounts {
    signs: 2,
    verifies: 2,
    key_generations: 0,
    key_agreements: 0,
};

/// What to run, in either mode.
#[derive(Debug, Clone)]
pub struct Options {
    /// Packages executed in all.
    pub packages: u64,
    /// Virtual IoT devices (each with its IPA).
    pub devices: u64,
    /// Packages queued for a device before its IPA polls (one session runs them all).
    pub per_session: u64,
}

impl Options {
    /// Refuses settings that cannot run, with the rule broken.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.packages == 0 || self.devices == 0 || self.per_session == 0 {
            bail!("--packages, --devices and --packages-per-session must be at least 1");
        }
        if self.devices > self.packages {
            bail!(
                "--devices {} is more than --packages {}: every device needs at least one package",
                self.devices,
                self.packages
            );
        }
        if self.packages.div_ceil(self.devices) > MAX_PACKAGES_PER_DEVICE {
            bail!(
                "{} packages on {} devices is more than {MAX_PACKAGES_PER_DEVICE} per device \
                 (the eIM counter of a device would run out): use more --devices",
                self.packages,
                self.devices
            );
        }
        Ok(())
    }

    /// The packages device `n` runs (the total spread as evenly as possible).
    pub fn share(&self, n: u64) -> u64 {
        self.packages / self.devices + u64::from(n < self.packages % self.devices)
    }
}

/// The operation of a device's `n`-th package (0-based): disable, enable,
/// list, repeated.
pub fn operation(n: u64) -> Operation {
    match n % 3 {
        0 => Operation::Disable {
            iccid: profile_iccid(),
        },
        1 => Operation::Enable {
            iccid: profile_iccid(),
            rollback: false,
        },
        _ => Operation::ListProfiles,
    }
}

/// The operation mix as reported.
pub const OPERATION_MIX: [&str; 3] = ["disable", "enable", "listProfileInfo"];

/// The profile every device enables and disables.
fn profile_iccid() -> Iccid {
    Iccid::from_body("894400000000000001").unwrap_or_else(|_| unreachable!("a valid ICCID body"))
}

/// A second profile, disabled, so the lists have two entries.
fn spare_iccid() -> Iccid {
    Iccid::from_body("894400000000000002").unwrap_or_else(|_| unreachable!("a valid ICCID body"))
}

/// The virtual eUICC as the IPA's APDU transport.
pub struct Card(pub VirtualEuicc);

impl Transport for Card {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        Ok(self.0.handle_apdu(command, SystemClock.now()))
    }
}

/// One virtual IoT device: its eUICC (behind the ES10 link) and its IPA.
pub struct Device {
    /// The EID.
    pub eid: Eid,
    /// The eUICC.
    pub es10: Es10<Card>,
    /// The IPA.
    pub ipa: Ipa<StdRng>,
    /// The IPA's pending state (in memory).
    pub state: MemoryStore,
    /// Packages queued for it so far.
    pub queued: u64,
    /// Packages it must run in all.
    pub share: u64,
}

/// The eIM's key and what the eUICCs are told about the eIM.
pub struct EimKey {
    /// The signing key.
    pub key: Arc<dyn KeySource>,
    /// `SubjectPublicKeyInfo` DER of its public key.
    spki: Vec<u8>,
}

impl EimKey {
    /// A fresh key.
    pub fn generate() -> anyhow::Result<Self> {
        let key = SoftwareKey::generate()?;
        let point = key.verifying_key()?.to_uncompressed()?;
        // SubjectPublicKeyInfo header of an uncompressed P-256 point.
        let mut spki = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06,
            0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        spki.extend_from_slice(&point);
        Ok(Self {
            key: Arc::new(key),
            spki,
        })
    }

    /// The eIM over `store`, trusting the CI of `pki`.
    pub fn eim<S: EimStore>(&self, store: S, pki: &TestPki) -> anyhow::Result<Eim<S>> {
        Ok(Eim::new(
            store,
            EimConfig {
                eim_id: EimId::new(EIM_ID)?,
                key: Arc::clone(&self.key),
                trust: pki.trust_store()?,
            },
        ))
    }

    /// The AddInitialEim request a device's eUICC is given (counter 0, the
    /// association token, the eIM's address when it has one).
    fn add_initial_eim(&self, address: Option<&str>) -> anyhow::Result<Vec<u8>> {
        let config = sgp32::EimConfigurationData::new(
            EIM_ID.into(),
            address.map(str::to_owned),
            None,
            Some(Integer::from(0)),
            Some(Integer::from(ASSOCIATION_TOKEN)),
            Some(sgp32::EimConfigurationDataEimPublicKeyData::eimPublicKey(
                decode_der(&self.spki)?,
            )),
            None,
            None,
            None,
            None,
            None,
        );
        Ok(encode_der(&sgp32::AddInitialEimRequest::new(vec![config]))?)
    }
}

/// A profile as the eUICC keeps it after an installation: metadata with
/// its ICCID and names and no notification addresses.
fn installed(iccid: &Iccid, n: u8, enabled: bool) -> anyhow::Result<InstalledProfile> {
    let metadata = rsp::StoreMetadataRequest::new(
        rsp::Iccid(FixedOctetString::new(iccid.to_bcd())),
        "ferrosim bench".into(),
        format!("profile {n}"),
        None,
        None,
        ProfileClass::Operational.to_asn1(),
        None,
        None,
        None,
        None,
        None,
    );
    let mut isdp_aid = [0u8; 16];
    isdp_aid[..9].copy_from_slice(&[0xA0, 0x00, 0x00, 0x05, 0x59, 0x10, 0x10, 0xFF, 0xFF]);
    isdp_aid[15] = n;
    Ok(InstalledProfile {
        iccid: iccid.clone(),
        isdp_aid,
        state: if enabled {
            ProfileState::Enabled
        } else {
            ProfileState::Disabled
        },
        nickname: None,
        profile_class: ProfileClass::Operational,
        policy_rules: PolicyRules::default(),
        metadata_der: encode_der(&metadata)?.into_boxed_slice(),
        dp_oid: None,
        smdp_address: "smdp.bench.invalid".to_owned(),
        smdp_oid: "2.999.10".to_owned(),
        imsi: None,
        aka_algorithm: None,
        k: None,
        opc: None,
        pins: Vec::new(),
        puks: Vec::new(),
        spn: None,
        apn: None,
        package_len: 0,
        package_sha256: [0; 32],
        installed_at: ferrosim_ids::Timestamp::EPOCH,
    })
}

/// The devices of `pki` (one per eUICC certificate, `options.devices` of
/// them), each with two installed profiles (the first enabled), given this
/// eIM as its first eIM (AddInitialEim) and an IPA.
pub fn devices(
    pki: &TestPki,
    key: &EimKey,
    address: Option<&str>,
    options: &Options,
) -> anyhow::Result<Vec<Device>> {
    let add = key.add_initial_eim(address)?;
    let identities: Vec<EuiccIdentity> = crate::fleet::identities(pki)?;
    let count = usize::try_from(options.devices)?;
    if identities.len() < count {
        bail!(
            "{} eUICC certificates for {count} devices",
            identities.len()
        );
    }
    let mut out = Vec::with_capacity(count);
    for (n, identity) in identities.into_iter().take(count).enumerate() {
        let eid = *identity.eid();
        let state = EuiccState {
            profiles: vec![
                installed(&profile_iccid(), 1, true)?,
                installed(&spare_iccid(), 2, false)?,
            ],
            ..EuiccState::default()
        };
        let card = Card(VirtualEuicc::new(identity, state));
        let mut es10 = Es10::open(card, &Es10Options::default())
            .with_context(|| format!("opening the ISD-R of {eid}"))?;
        let answer: sgp32::AddInitialEimResponse = decode_der(&es10.transmit_es10(&add)?)?;
        if !matches!(answer, sgp32::AddInitialEimResponse::addInitialEimOk(_)) {
            bail!("the eUICC of {eid} refused AddInitialEim: {answer:?}");
        }
        let share = options.share(n as u64);
        let config = IpaConfig {
            eid: Some(eid),
            deliver_notifications: false,
            max_items_per_session: usize::try_from(options.per_session)?,
            ..IpaConfig::default()
        };
        let ipa = Ipa::new(
            config,
            es10.link(),
            PendingState::default(),
            StdRng::from_rng(&mut rand::rng()),
            Timestamp::now(),
        );
        out.push(Device {
            eid,
            es10,
            ipa,
            state: MemoryStore::default(),
            queued: 0,
            share,
        });
    }
    Ok(out)
}

/// Associates every device with `eim` (its verified eUICC certificate and
/// key, counter 0, the association token).
pub async fn associate<S: EimStore>(
    eim: &Eim<S>,
    pki: &TestPki,
    devices: &[Device],
) -> anyhow::Result<()> {
    for (device, issued) in devices.iter().zip(&pki.euiccs) {
        eim.associate(
            AssociationRequest {
                eid: device.eid,
                eum_certificate: pki.eum.certificate.der().to_vec(),
                euicc_certificate: issued.certificate.der().to_vec(),
                counter: Counter::new(0)?,
                association_token: Some(ASSOCIATION_TOKEN),
                euicc_version: ferrosim_asn1::esipa::Sgp32Version::V1_2,
                emulated: false,
            },
            Timestamp::now(),
        )
        .await
        .with_context(|| format!("associating {}", device.eid))?;
    }
    Ok(())
}

/// The eUICC package of a device's `n`-th package.
pub fn content(n: u64) -> PackageContent {
    PackageContent::Psmos(vec![operation(n)])
}

/// How one package ended, seen from the bench.
#[derive(Debug, Clone)]
pub struct PackageRun {
    /// From queuing the device's packages of the session to the end of the
    /// session.
    pub elapsed: Duration,
    /// Why it did not complete, if it did not.
    pub failure: Option<String>,
}

/// Reads a session's report for the packages `first..first + count` of a
/// device (queued in that order, with the counters `counters`): each must
/// have been executed with its expected result and acknowledged by the eIM
/// (which stores a result before it acknowledges it).
pub fn check_session(
    report: &SessionReport,
    first: u64,
    counters: &[Counter],
    started: Instant,
) -> Vec<PackageRun> {
    let elapsed = started.elapsed();
    counters
        .iter()
        .enumerate()
        .map(|(i, counter)| {
            let n = first + i as u64;
            let failure = package_failure(report, n, *counter);
            PackageRun { elapsed, failure }
        })
        .collect()
}

fn package_failure(report: &SessionReport, n: u64, counter: Counter) -> Option<String> {
    let found = report.items.iter().find_map(|item| match item {
        ItemReport::Package {
            counter: Some(c),
            outcome,
        } if *c == u64::from(counter.get()) => Some(outcome),
        _ => None,
    });
    let Some(outcome) = found else {
        return Some(match &report.error {
            Some(e) => format!("session failed: {e}"),
            None => "not run in the session".to_owned(),
        });
    };
    match outcome {
        PackageOutcome::Executed { seq_number, codes } => {
            let expected: &[i64] = if matches!(operation(n), Operation::ListProfiles) {
                &[-1]
            } else {
                &[0]
            };
            if codes != expected {
                Some(format!(
                    "{} answered {codes:?}, expected {expected:?}",
                    operation(n).name()
                ))
            } else if !report.acknowledged.contains(seq_number) {
                Some(match &report.error {
                    Some(e) => format!("result not acknowledged by the eIM: {e}"),
                    None => "result not acknowledged by the eIM".to_owned(),
                })
            } else {
                None
            }
        }
        other => Some(format!("{} not executed: {other:?}", operation(n).name())),
    }
}

/// Counts, per device, the results the eIM stored with a verified eUICC
/// signature and the expected outcome; returns the failures found (a
/// device holding fewer than it completed, or a result not verified).
pub async fn audit_store<S: EimStore>(
    eim: &Eim<S>,
    completed: &[(Eid, u64)],
) -> anyhow::Result<(u64, Vec<String>)> {
    let mut stored = 0;
    let mut problems = Vec::new();
    for (eid, done) in completed {
        let results = eim.store().results(eid).await?;
        let good = results
            .iter()
            .filter(|r| {
                r.trust == Some(Trust::Verified)
                    && matches!(&r.outcome, ItemOutcome::Executed(codes)
                        if codes.iter().all(|c| matches!(c, None | Some(0))))
            })
            .count() as u64;
        stored += good;
        if good != *done {
            problems.push(format!(
                "the eIM holds {good} verified results for {eid}, the IPA saw {done} acknowledged"
            ));
        }
    }
    Ok((stored, problems))
}

/// The figures of one `--eim` run (`--json` prints them as one object).
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// `"eim-in-memory"` or `"eim-https"`.
    pub mode: &'static str,
    /// How the eIM was reached and stored its data.
    pub setup: String,
    /// Packages asked for.
    pub packages: u64,
    /// Packages executed, their results verified and stored by the eIM and
    /// acknowledged to the IPA.
    pub completed: u64,
    /// Packages that did not complete.
    pub failed: u64,
    /// Verified results the eIM holds after the run (checked in its store).
    pub stored_results: u64,
    /// Virtual IoT devices.
    pub devices: u64,
    /// Packages queued per device before each of its IPA sessions.
    pub packages_per_session: u64,
    /// The operations, in the order each device runs them.
    pub operation_mix: [&'static str; 3],
    /// Threads driving the devices (in memory), or the eIM server's worker
    /// threads (HTTPS; the IPAs have as many).
    pub threads: usize,
    /// Wall time of the packages (s).
    pub wall_s: f64,
    /// Completed packages per second.
    pub packages_per_s: f64,
    /// Process CPU per completed package (µs): eIM, IPAs and eUICCs.
    pub cpu_us_per_package: f64,
    /// Of it, the eIM's (µs): in memory, the thread CPU time of its calls;
    /// over HTTPS, every thread but the IPAs' (TLS, HTTP, the database).
    pub eim_cpu_us_per_package: f64,
    /// Of it, the devices' (IPAs and eUICCs, with their HTTPS clients).
    pub device_cpu_us_per_package: f64,
    /// Share of the machine's cores the process kept busy.
    pub cpu_utilisation: f64,
    /// From queuing a device's packages to the end of its session (ms).
    pub p50_ms: f64,
    /// 99th percentile (ms).
    pub p99_ms: f64,
    /// Slowest (ms).
    pub max_ms: f64,
    /// P-256 operations per package.
    pub ec_per_package: EcCounts,
    /// Their measured costs (µs).
    pub ec_costs_us: EcCosts,
    /// EC CPU per package (µs).
    pub ec_us_per_package: f64,
    /// The rate the EC work alone allows on the machine's cores.
    pub ec_bound_packages_per_s: f64,
    /// The target of this mode on the reference 2-core machine.
    pub target_packages_per_s: f64,
    /// 1-minute load average when the run started.
    pub load_average: Option<f64>,
    /// Failures by reason.
    pub failures: Vec<(String, u64)>,
}

/// What a mode measured, for [`figures`].
pub struct Measured {
    /// `"eim-in-memory"` or `"eim-https"`.
    pub mode: &'static str,
    /// How the eIM was reached.
    pub setup: String,
    /// Threads (see [`Figures::threads`]).
    pub threads: usize,
    /// Every package's run.
    pub runs: Vec<PackageRun>,
    /// Verified results in the store and what the audit found wrong.
    pub stored: (u64, Vec<String>),
    /// Wall time.
    pub wall: Duration,
    /// Process CPU.
    pub cpu: Duration,
    /// Of it, the eIM's.
    pub eim_cpu: Duration,
    /// The load average at the start.
    pub load_average: Option<f64>,
    /// The target rate.
    pub target: f64,
}

/// Turns what a run measured into its figures.
pub fn figures(options: &Options, m: Measured, ec: EcCosts) -> Figures {
    let completed = m.runs.iter().filter(|r| r.failure.is_none()).count() as u64;
    let mut failures: std::collections::BTreeMap<String, u64> = Default::default();
    for r in &m.runs {
        if let Some(f) = &r.failure {
            *failures.entry(f.clone()).or_default() += 1;
        }
    }
    for problem in &m.stored.1 {
        *failures.entry(problem.clone()).or_default() += 1;
    }
    let mut failures: Vec<(String, u64)> = failures.into_iter().collect();
    failures.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut times: Vec<Duration> = m
        .runs
        .iter()
        .filter(|r| r.failure.is_none())
        .map(|r| r.elapsed)
        .collect();
    times.sort();
    let wall_s = m.wall.as_secs_f64().max(1e-9);
    let per = |d: Duration| d.as_secs_f64() * 1e6 / completed.max(1) as f64;
    let ec_us = ec.of(EC_PER_PACKAGE);
    let cores = crate::bench_cmd::cores();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Figures {
        mode: m.mode,
        setup: m.setup,
        packages: options.packages,
        completed,
        // A package whose result the store does not hold is a failure too.
        failed: options.packages - completed + m.stored.1.len() as u64,
        stored_results: m.stored.0,
        devices: options.devices,
        packages_per_session: options.per_session,
        operation_mix: OPERATION_MIX,
        threads: m.threads,
        wall_s,
        packages_per_s: completed as f64 / wall_s,
        cpu_us_per_package: per(m.cpu),
        eim_cpu_us_per_package: per(m.eim_cpu),
        device_cpu_us_per_package: per(m.cpu.saturating_sub(m.eim_cpu)),
        cpu_utilisation: m.cpu.as_secs_f64() / wall_s / cores as f64,
        p50_ms: ms(percentile(&times, 50.0)),
        p99_ms: ms(percentile(&times, 99.0)),
        max_ms: ms(times.last().copied().unwrap_or_default()),
        ec_per_package: EC_PER_PACKAGE,
        ec_costs_us: ec,
        ec_us_per_package: ec_us,
        ec_bound_packages_per_s: if ec_us > 0.0 {
            cores as f64 * 1e6 / ec_us
        } else {
            0.0
        },
        target_packages_per_s: m.target,
        load_average: m.load_average,
        failures,
    }
}

/// Prints the figures for a person.
pub fn print(f: &Figures) {
    println!(
        "ferrosim bench --eim ({}): {} packages on {} devices, {} per session, mix {}",
        f.mode,
        f.packages,
        f.devices,
        f.packages_per_session,
        f.operation_mix.join(" / ")
    );
    println!("  setup:            {}", f.setup);
    println!(
        "  completed:        {}/{} in {:.1} ms ({} verified results stored)",
        f.completed,
        f.packages,
        f.wall_s * 1e3,
        f.stored_results
    );
    println!(
        "  throughput:       {:.0} packages/s (target {:.0}/s on 2 cores)",
        f.packages_per_s, f.target_packages_per_s
    );
    println!(
        "  package time:     p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        f.p50_ms, f.p99_ms, f.max_ms
    );
    println!(
        "  CPU per package:  {:.0} µs ({:.0} eIM + {:.0} IPA and eUICC); {:.0}% of {} cores",
        f.cpu_us_per_package,
        f.eim_cpu_us_per_package,
        f.device_cpu_us_per_package,
        f.cpu_utilisation * 100.0,
        crate::bench_cmd::cores()
    );
    let c = &f.ec_costs_us;
    println!(
        "  EC lower bound:   {} signs x {:.1} + {} verifies x {:.1} = {:.0} µs per package, {:.0} packages/s on these cores",
        f.ec_per_package.signs,
        c.sign_us,
        f.ec_per_package.verifies,
        c.verify_us,
        f.ec_us_per_package,
        f.ec_bound_packages_per_s
    );
    if let Some(load) = f.load_average {
        println!("  load average:     {load:.2} (1 min, at the start)");
    }
    for (reason, count) in &f.failures {
        println!("  failed {count:>6}: {reason}");
    }
}

/// The 1-minute load average, from /proc/loadavg.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU time this thread has used (for the eIM's share in memory).
pub fn thread_cpu() -> Duration {
    crate::bench_cmd::cpu_clock(rustix::time::ClockId::ThreadCPUTime)
}

/// CPU time of this process's threads whose name starts with `prefix`,
/// plus the main thread's, from /proc/self/task. Each thread's time is the
/// scheduler's run time in nanoseconds (`schedstat`), so a run of a few
/// milliseconds still reads its CPU; where a kernel has no `schedstat`,
/// its user + system time in 10 ms ticks (`stat`).
pub fn threads_cpu(prefix: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let pid = std::process::id().to_string();
    let mut total = Duration::ZERO;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // "tid (name) state ...": the name may hold spaces, so split at the parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        if !name.starts_with(prefix) && task.file_name().to_string_lossy() != pid {
            continue;
        }
        total += run_time(&task.path()).unwrap_or_else(|| stat_ticks(&stat[close + 1..]));
    }
    total
}

/// A thread's time on a CPU, from the first field of its `schedstat`.
fn run_time(task: &std::path::Path) -> Option<Duration> {
    let schedstat = std::fs::read_to_string(task.join("schedstat")).ok()?;
    let nanos = schedstat.split_whitespace().next()?.parse::<u64>().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// User + system time from the fields of a `stat` line after the name's
/// closing parenthesis (fields 14 and 15 of the line, 12 and 13 there).
fn stat_ticks(after_name: &str) -> Duration {
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((field(11) + field(12)) * 10)
}
