//! A fleet of virtual devices (virtual eUICC + LPA) activating profiles
//! against an SM-DP+ over HTTPS, with the numbers `ferrosim demo` and
//! `ferrosim bench` report.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrosim_euicc::{EuiccIdentity, EuiccState, SharedIdentity, VirtualEuicc};
use ferrosim_ids::{Clock, SystemClock};
use ferrosim_lpa::download::{Consent, StepTiming};
use ferrosim_lpa::es9::RoundRobin;
use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
use ferrosim_lpa::{
    ActivationCode, DownloadRequest, Es10, Es10Options, SmdpAddress, download_profile,
};
use ferrosim_pki::TestPki;
use ferrosim_server::es2_client::Es2Client;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Semaphore;

/// One virtual device and the order it activates.
pub struct Device {
    /// Its eUICC identity (EID, certificate, key, EUM, trusted CIs).
    pub identity: EuiccIdentity,
    /// The activation code of its order.
    pub code: ActivationCode,
}

/// How one activation ended.
#[derive(Debug, Clone)]
pub struct Activation {
    /// Wall-clock time from the first APDU to the acknowledged installation result.
    pub elapsed: Duration,
    /// `None` on success, else where and why it failed.
    pub failure: Option<String>,
    /// Per-step timings.
    pub timings: Vec<StepTiming>,
}

/// How devices reach the SM-DP+.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connections {
    /// One HTTPS client for all devices: TLS sessions are kept alive and reused.
    KeepAlive,
    /// A new HTTPS client (new TCP and TLS connections) per device.
    New,
}

/// The virtual devices of a sandbox PKI, one per eUICC certificate, all
/// sharing one copy of the EUM and CI certificates.
pub fn identities(pki: &TestPki) -> anyhow::Result<Vec<EuiccIdentity>> {
    let shared = SharedIdentity::new(
        pki.eum.certificate.der(),
        &[pki.ci.certificate.der().to_vec()],
    )?;
    pki.euiccs
        .iter()
        .map(|e| {
            Ok(EuiccIdentity::with_shared(
                Arc::clone(&shared),
                e.certificate.der(),
                Arc::new(e.signing_key()?),
            )?)
        })
        .collect()
}

/// Where and as whom to place orders over ES2+.
#[derive(Debug, Clone)]
pub struct OrderDesk {
    /// `https://host:port` of the SM-DP+.
    pub base_url: String,
    /// The SM-DP+ address for activation codes.
    pub address: String,
    /// The operator's ES2+ token.
    pub token: String,
    /// The operator's id.
    pub operator: String,
    /// The profile type to order.
    pub profile_type: String,
    /// The CA/CI certificate (PEM) the SM-DP+'s TLS certificate chains to.
    pub ci_pem: String,
}

impl OrderDesk {
    /// The sandbox operator ordering the sandbox profile type from `sandbox`.
    pub fn for_sandbox(sandbox: &ferrosim_server::sandbox::Sandbox) -> Self {
        use ferrosim_server::sandbox::{OPERATOR, PROFILE_TYPE};
        Self {
            base_url: sandbox.base_url(),
            address: sandbox.address.clone(),
            token: sandbox.token.clone(),
            operator: OPERATOR.into(),
            profile_type: PROFILE_TYPE.into(),
            ci_pem: sandbox.ci_pem(),
        }
    }
}

/// Orders one profile per EID over ES2+ (downloadOrder linked to the EID,
/// confirmOrder with release) and returns the activation codes, in order.
pub async fn order_profiles(
    desk: &OrderDesk,
    eids: &[String],
    concurrency: usize,
) -> anyhow::Result<Vec<ActivationCode>> {
    let client = Es2Client::new(
        &desk.base_url,
        &desk.operator,
        &desk.token,
        desk.ci_pem.as_bytes(),
    )?;
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(eids.len());
    for eid in eids {
        let (client, sem, eid) = (client.clone(), Arc::clone(&sem), eid.clone());
        let profile_type = desk.profile_type.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await?;
            let (_, matching_id) = client
                .order_released(&profile_type, Some(&eid), None)
                .await?;
            Ok::<String, anyhow::Error>(matching_id)
        }));
    }
    let address = SmdpAddress::new(&desk.address)?;
    let mut codes = Vec::with_capacity(tasks.len());
    for t in tasks {
        let mid = t.await??;
        codes.push(ActivationCode::new(address.clone(), Some(&mid))?);
    }
    Ok(codes)
}

/// What a device does after its download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterDownload {
    /// Nothing (the download alone is measured).
    Nothing,
    /// Enables the profile and sends the eUICC's notifications (the enable
    /// notification goes to the SM-DP+): the profile is then in use.
    Enable,
}

/// Activates every device, at most `concurrency` at a time, over ES9+
/// clients made by `client` (called once with keep-alive connections, once
/// per device with new ones) and spread over `targets` (empty: the address
/// of the activation code).
pub async fn activate(
    devices: Vec<Device>,
    ci_pem: &str,
    targets: &[SmdpAddress],
    concurrency: usize,
    connections: Connections,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<Activation>> {
    activate_then(
        devices,
        ci_pem,
        targets,
        concurrency,
        connections,
        progress,
        AfterDownload::Nothing,
    )
    .await
}

/// [`activate`], then `after` on each device whose download succeeded.
pub async fn activate_then(
    devices: Vec<Device>,
    ci_pem: &str,
    targets: &[SmdpAddress],
    concurrency: usize,
    connections: Connections,
    progress: &ProgressBar,
    after: AfterDownload,
) -> anyhow::Result<Vec<Activation>> {
    // The trust roots are parsed once, outside the measured work; with new
    // connections each device still gets a client (and connections) of its own.
    let options = HttpsOptions::new(TlsTrust::Roots(TlsTrust::roots_from_bytes(
        ci_pem.as_bytes(),
    )?));
    let make = || -> anyhow::Result<RoundRobin<HttpsEs9Client>> {
        Ok(RoundRobin::new(
            HttpsEs9Client::new(&options)?,
            targets.to_vec(),
        ))
    };
    let shared = match connections {
        Connections::KeepAlive => Some(make()?),
        Connections::New => None,
    };
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(devices.len());
    for device in devices {
        let sem = Arc::clone(&sem);
        let client = match &shared {
            Some(shared) => shared.clone(),
            None => make()?,
        };
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            let result = activate_one(device, &client, after).await;
            progress.inc(1);
            result
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await?);
    }
    Ok(out)
}

async fn activate_one(
    device: Device,
    client: &RoundRobin<HttpsEs9Client>,
    after: AfterDownload,
) -> Activation {
    let start = Instant::now();
    let mut euicc = VirtualEuicc::new(device.identity, EuiccState::default());
    let transport = move |apdu: &[u8]| euicc.handle_apdu(apdu, SystemClock.now());
    let mut es10 = match Es10::open(transport, &Es10Options::default()) {
        Ok(e) => e,
        Err(e) => {
            return Activation {
                elapsed: start.elapsed(),
                failure: Some(format!("opening the ISD-R: {e}")),
                timings: Vec::new(),
            };
        }
    };
    let request = DownloadRequest::new(&device.code, None);
    match download_profile(&mut es10, client, &request, |_| Consent::Accept).await {
        Ok(outcome) => {
            let failure = match after {
                AfterDownload::Nothing => None,
                AfterDownload::Enable => enable(&mut es10, client, &outcome.iccid).await.err(),
            };
            Activation {
                elapsed: start.elapsed(),
                failure,
                timings: outcome.timings,
            }
        }
        Err(e) => Activation {
            elapsed: start.elapsed(),
            failure: Some(format!("{}: {}", e.step, e.failure)),
            timings: e.timings,
        },
    }
}

/// Enables the downloaded profile and delivers the eUICC's notifications.
async fn enable<T: ferrosim_lpa::Transport>(
    es10: &mut Es10<T>,
    client: &RoundRobin<HttpsEs9Client>,
    iccid: &str,
) -> Result<(), String> {
    use ferrosim_lpa::es10::types::ProfileId;
    use ferrosim_lpa::notifications::{RetryPolicy, process_notifications};
    let iccid = ferrosim_saip::Iccid::new(iccid).map_err(|e| format!("installed ICCID: {e}"))?;
    es10.enable_profile(&ProfileId::Iccid(iccid), false)
        .map_err(|e| format!("enabling the profile: {e}"))?;
    let report = process_notifications(es10, client, None, &RetryPolicy::immediate(3))
        .await
        .map_err(|e| format!("listing notifications: {e}"))?;
    if report.is_complete() {
        Ok(())
    } else {
        Err(format!(
            "notifications: {} not delivered",
            report.undelivered.len()
        ))
    }
}

/// A progress bar for `n` activations.
pub fn progress_bar(n: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(n);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} activating [{bar:40}] {pos}/{len} {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// What a benchmark reads off its activations: how many completed, their
/// times (sorted, for percentiles), the rate over `wall` and the process
/// CPU `cpu` per completed one.
#[derive(Debug, Clone)]
pub struct RunTotals {
    /// Activations without a failure.
    pub completed: usize,
    /// Their durations, shortest first.
    pub times: Vec<Duration>,
    /// Completed activations per second of `wall`.
    pub per_s: f64,
    /// CPU per completed activation (µs).
    pub cpu_us_each: f64,
}

impl RunTotals {
    /// The totals of `results`, which took `wall` and `cpu`.
    pub fn of(results: &[Activation], wall: Duration, cpu: Duration) -> Self {
        let mut times: Vec<Duration> = results
            .iter()
            .filter(|r| r.failure.is_none())
            .map(|r| r.elapsed)
            .collect();
        times.sort();
        let completed = times.len();
        Self {
            completed,
            times,
            per_s: completed as f64 / wall.as_secs_f64().max(1e-9),
            cpu_us_each: cpu.as_secs_f64() * 1e6 / completed.max(1) as f64,
        }
    }
}

/// Percentile `p` (0..=100) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Failures grouped by their description, most frequent first.
pub fn failures_by_reason(results: &[Activation]) -> Vec<(String, usize)> {
    let mut map: BTreeMap<String, usize> = BTreeMap::new();
    for r in results {
        if let Some(f) = &r.failure {
            *map.entry(f.clone()).or_default() += 1;
        }
    }
    let mut v: Vec<_> = map.into_iter().collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1));
    v
}

/// p50/p99 of each step over the successful activations, in flow order.
pub fn step_latencies(results: &[Activation]) -> Vec<(&'static str, Duration, Duration, usize)> {
    let mut by_step: Vec<(&'static str, Vec<Duration>)> = Vec::new();
    for r in results.iter().filter(|r| r.failure.is_none()) {
        for t in &r.timings {
            let name = t.step.name();
            match by_step.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(t.elapsed),
                None => by_step.push((name, vec![t.elapsed])),
            }
        }
    }
    by_step
        .into_iter()
        .map(|(name, mut v)| {
            v.sort();
            (name, percentile(&v, 50.0), percentile(&v, 99.0), v.len())
        })
        .collect()
}

/// Formats a duration in milliseconds with one decimal.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
