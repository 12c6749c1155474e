//! Full-fidelity mode for IoT scenarios (`outage`, `storm`, `rollout`): the
//! scenario's IoT devices against a running `ferrosim serve` (its eIM, its
//! fleet and its SM-DP+) over real HTTPS.
//!
//! Each device is a virtual IoT eUICC issued by the EUM the target trusts
//! ([`EumIssuer`]), given the target's eIM with the operator's
//! AddInitialEim request (`ferrosim eim bootstrap`), associated with that
//! eIM over its REST API and registered in the target's fleet in the
//! scenario's group (with the Fallback Mechanism). From then on the target
//! decides: its fleet orders the group's primary and fallback profiles over
//! ES2+ at the SM-DP+, has the eIM trigger their downloads and enable the
//! primary, stages the fallback with the fallback attribute. The device's
//! real IPA ([`ferrosim_ipa`]) polls the eIM (ESipa over HTTPS, downloads
//! straight from the SM-DP+'s ES9+), and its agent takes the fleet's
//! commands (APN settings, ExecuteFallbackMechanism, ReturnFromFallback,
//! run on the eUICC through the IPA) and reports their results.
//!
//! When every device holds its primary and its staged fallback, the event
//! starts: the scenario's clock runs compressed by the time scale, the
//! network model ([`crate::network`]) answers each device's registrations
//! on the carrier of the profile its eUICC has enabled (outages, attach
//! limits, congestion, modem failures), and the device sends what it sees
//! to the fleet's report endpoint (`POST /api/v1/fleet/reports`). The
//! outages' declarations by the carriers' operations centres go to
//! `POST /api/v1/fleet/outages` at their scenario times. The fleet's
//! reconciler decides the failovers and returns with its own rule, on real
//! time; the devices carry them out. The failover (and return) completion
//! times are measured: from the fleet's decision (its record, read back
//! from `GET /api/v1/fleet/decisions`) to the device's registration on
//! the profile it switched to.
//!
//! A scenario's rollouts are created at the target's fleet at their
//! scenario times and run by its rollout engine; the devices' agents take
//! the APN settings it sends ([`super::rollout`]).
//!
//! The radio's timers (detection of a lost network, T3410, the
//! registration backoff) run on the scenario's clock; everything the
//! device's software and the target do takes real time. Bounded: at most
//! [`MAX_IOT_DEVICES`] devices and the run's `max_duration`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use ferrosim_asn1::{decode_der, sgp32};
use ferrosim_euicc::{ProfileState, VirtualEuicc};
use ferrosim_fleet::config::FleetConfig;
use ferrosim_ids::{Eid, Iccid, Timestamp};
use ferrosim_ipa::driver::https::HttpsEsipa;
use ferrosim_ipa::driver::{MemoryStore, StateStore, run_session};
use ferrosim_ipa::machine::{Action, ItemReport, LocalOperation};
use ferrosim_ipa::{Binding, DownloadPath, Ipa, IpaConfig};
use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
use ferrosim_lpa::{Es10, Es10Options};
use ferrosim_telemetry::{Dims, Event, EventKind, ProfileKey, RegistrationOutcome, Source};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::rollout::{self, AgentApns, LiveRollout};
use super::{Ctx, EumIssuer, LiveOptions, LiveProgress, Target};
use crate::engine::T0;
use crate::error::SimError;
use crate::network::{AreaIx, Attach, CarrierIx, Network};
use crate::population::Population;
use crate::report::{Bucket, Collected, SecondsPercentiles, seconds};
use crate::scenario::Scenario;

/// Most IoT devices in one full-fidelity run (each polls the target).
pub const MAX_IOT_DEVICES: u32 = 500;
/// Shortest and longest wall time between two polls of a device (its IPA's
/// session with the eIM, then its agent's commands).
const POLL_MIN: Duration = Duration::from_millis(300);
const POLL_MAX: Duration = Duration::from_secs(5);
/// After the event's end the devices keep running this long (within the
/// run's bound) to carry out the switches their fleet decided before it.
const GRACE: Duration = Duration::from_secs(5);
/// T3410: a registration without answer is given up after this (scenario ms).
const T3410_MS: i64 = 15_000;

/// What the IoT devices need from the target's operator.
#[derive(Debug, Clone)]
pub struct IotAccess {
    /// A fleet and eIM API token (operator scope) of the target.
    pub api_token: String,
    /// The AddInitialEim request (DER, `ferrosim eim bootstrap`) that gives
    /// each eUICC the target's eIM (its id, FQDN, key, counter, token).
    pub add_initial_eim: Vec<u8>,
}

/// What a full-fidelity IoT run adds to the summary
/// (`full_fidelity_iot` in the JSON report).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IotFullFidelity {
    /// The target (eIM, fleet API and SM-DP+ base URL).
    pub target: String,
    /// Whether it is on loopback.
    pub loopback: bool,
    /// Scenario seconds per wall-clock second during the event.
    pub time_scale: f64,
    /// The run's bound (s).
    pub max_duration_s: f64,
    /// Wall time between two polls of a device (s).
    pub poll_interval_s: f64,
    /// IoT devices run.
    pub devices: u64,
    /// The scenario's consumer phones among `--devices` (not run here).
    pub consumers_not_run: u64,
    /// Devices associated with the target's eIM over its REST API.
    pub associated: u64,
    /// Devices registered in the target's fleet.
    pub registered_in_fleet: u64,
    /// Devices whose setup failed, by cause.
    pub setup_failures: BTreeMap<String, u64>,
    /// Devices holding their primary (enabled) and their staged fallback
    /// (with the fallback attribute) when the event started.
    pub converged: u64,
    /// Wall time from the first registration to the event's start (s).
    pub converge_s: f64,
    /// Wall time of the event (s).
    pub event_s: f64,
    /// When the event ended (ms since the Unix epoch): the fleet's
    /// decisions up to then are the run's (the devices then ran on for up
    /// to 5 s to carry out the last ones).
    pub ended_at_ms: i64,
    /// The event ended at the run's bound before the scenario's end.
    pub cut_off: bool,
    /// IPA sessions with the eIM, and of those that failed.
    pub esipa_sessions: u64,
    /// ... failed (network, eIM, eUICC).
    pub esipa_session_failures: u64,
    /// Profiles the IPAs downloaded (eIM download triggers, ES9+ direct).
    pub downloads: u64,
    /// Commands the devices' agents took, by command.
    pub agent_commands: BTreeMap<String, u64>,
    /// ExecuteFallbackMechanism and ReturnFromFallback run on the eUICCs
    /// (by the IPA, for the agent): done, refused by the eUICC.
    pub local_switches: u64,
    /// ... refused by the eUICC (its result code not 0).
    pub local_refusals: u64,
    /// Connectivity reports sent to the fleet, and refused or lost.
    pub reports_sent: u64,
    /// ... refused or lost.
    pub report_failures: u64,
    /// Outage declarations and ends sent to the fleet, and refused or lost.
    pub declarations: u64,
    /// ... refused or lost.
    pub declaration_failures: u64,
    /// Failovers and returns the target's fleet decided for the devices.
    pub failovers_decided: u64,
    /// ... returns.
    pub returns_decided: u64,
    /// Devices on their fallback at the end (from their eUICCs).
    pub on_fallback_at_end: u64,
    /// Failover completion (real s, from the fleet's decision to the
    /// registration on the fallback).
    pub failover_completion_s: SecondsPercentiles,
    /// Data-path checks the devices made after registering (and reported).
    pub data_path_checks: u64,
    /// ... failed (no data at all: an outage, or an APN the carrier does
    /// not serve).
    pub data_path_failures: u64,
    /// APN settings the devices' agents took (`agent.apnConfig`).
    pub apn_settings_taken: u64,
    /// The scenario's rollouts as the target ran them (rollout scenarios).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rollouts: Vec<LiveRollout>,
}

/// One device's plan.
struct Plan {
    n: u32,
    eid: Eid,
    area: AreaIx,
    group: String,
    vendor: u8,
    /// The carriers of the group's primary and fallback.
    primary: CarrierIx,
    fallback: Option<CarrierIx>,
    seed: u64,
}

/// What one device did.
#[derive(Default)]
struct Record {
    n: u32,
    eid: Option<Eid>,
    setup_error: Option<String>,
    associated: bool,
    registered: bool,
    converged: bool,
    sessions: u64,
    session_failures: u64,
    downloads: u64,
    commands: BTreeMap<String, u64>,
    local_switches: u64,
    local_refusals: u64,
    reports_sent: u64,
    report_failures: u64,
    /// Registration attempts: scenario ms, outcome, carrier.
    attempts: Vec<(i64, RegistrationOutcome, CarrierIx, Option<ProfileKey>)>,
    /// Successful registrations: wall epoch ms, ICCID, on the fallback.
    registrations: Vec<(i64, Iccid, bool)>,
    /// Attachment changes: scenario ms, the carrier attached to (None: none).
    attached: Vec<(i64, Option<CarrierIx>)>,
    /// Data-path checks: scenario ms, latency, loss (per mille), carrier.
    data_paths: Vec<(i64, u32, u16, CarrierIx)>,
    /// The APN settings its agent took, and its time on unserved ones.
    apns: AgentApns,
    apn_settings_taken: u64,
    /// Still on an unserved APN when it stopped.
    bad_apn_at_end: bool,
    on_fallback: bool,
}

/// What the devices share.
struct Shared {
    options: LiveOptions,
    access: IotAccess,
    http: reqwest::Client,
    esipa: HttpsEsipa,
    direct: HttpsEs9Client,
    issuer: Arc<EumIssuer>,
    population: Population,
    /// The scenario's area names (the devices' fleet regions).
    areas: Vec<String>,
    /// The APNs each carrier's core serves (empty: any).
    served_apns: Vec<Vec<String>>,
    counter: u32,
    association_token: Option<i64>,
    poll: Duration,
    deadline: Instant,
    stop: AtomicBool,
    converged: AtomicU64,
    /// Devices whose setup failed (they do nothing more).
    gave_up: AtomicU64,
    registered: AtomicU64,
    failovers_done: AtomicU64,
}

impl Shared {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.options.target.base_url)
    }

    async fn call(
        &self,
        post: bool,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let url = self.url(path);
        let mut request = if post {
            self.http.post(url)
        } else {
            self.http.get(url)
        }
        .bearer_auth(&self.access.api_token);
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
}

/// The eIM counter and association token in an AddInitialEim request.
fn read_add_initial_eim(der: &[u8]) -> Result<(u32, Option<i64>), SimError> {
    let bad = |e: String| SimError::Parameter(format!("--add-initial-eim: {e}"));
    let request: sgp32::AddInitialEimRequest =
        decode_der(der).map_err(|e| bad(format!("not an AddInitialEimRequest: {e}")))?;
    let config = request
        .eim_configuration_data_list
        .first()
        .ok_or_else(|| bad("no eIM in it".into()))?;
    let counter = match &config.counter_value {
        Some(c) => u32::try_from(c.clone()).map_err(|_| bad("counter out of range".into()))?,
        None => 0,
    };
    let token = match &config.association_token {
        Some(t) => Some(i64::try_from(t.clone()).map_err(|_| bad("token out of range".into()))?),
        None => None,
    };
    Ok((counter, token))
}

/// Runs `scenario`'s IoT devices against `options.target` (see the module
/// documentation); `progress` is called about four times a second. Returns
/// what the run collected and the full-fidelity figures.
pub async fn run(
    scenario: &Scenario,
    options: &LiveOptions,
    access: IotAccess,
    issuer: Arc<EumIssuer>,
    progress: &mut dyn FnMut(&LiveProgress),
) -> Result<(Collected, IotFullFidelity), SimError> {
    let run_start = Instant::now();
    let deadline = run_start + options.max_duration;
    let time_scale = options.check(scenario)?;
    if options.devices > MAX_IOT_DEVICES {
        return Err(SimError::Parameter(format!(
            "--devices must be 1..={MAX_IOT_DEVICES} for IoT devices in full-fidelity mode, not {}",
            options.devices
        )));
    }
    if access.api_token.trim().is_empty() {
        return Err(SimError::Parameter("--api-token is empty".into()));
    }
    let (counter, association_token) = read_add_initial_eim(&access.add_initial_eim)?;
    let seed = options.seed.unwrap_or(scenario.scenario.seed);
    let fleet_config = FleetConfig::from_toml(&scenario.fleet_toml())
        .map_err(|e| SimError::Fleet(e.to_string()))?;
    let network = Network::new(scenario);
    let population = Population::new(scenario, &fleet_config, &network, options.devices, seed)?;
    let roots = TlsTrust::roots_from_bytes(&options.tls_roots_pem)
        .map_err(|e| SimError::Parameter(format!("--ca: {e}")))?;
    let trust = TlsTrust::Roots(roots);
    let esipa = HttpsEsipa::new(
        &options.target.address,
        Binding::Asn1,
        &trust,
        Duration::from_secs(20),
    )
    .map_err(|e| SimError::Parameter(format!("--target: {e}")))?;
    let direct = HttpsEs9Client::new(&HttpsOptions::new(trust))
        .map_err(|e| SimError::Parameter(format!("--ca: {e}")))?;
    let mut certs = Vec::new();
    for pem in pem_blocks(&options.tls_roots_pem) {
        certs.push(
            reqwest::Certificate::from_pem(&pem)
                .map_err(|e| SimError::Parameter(format!("--ca: {e}")))?,
        );
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .tls_certs_only(certs)
        .build()
        .map_err(|e| SimError::Parameter(format!("--ca: {e}")))?;

    // The devices of the scenario's IoT groups, which the target's fleet
    // must know.
    let (status, groups) = fetch(&http, &options.target, &access, "/api/v1/fleet/groups").await?;
    if status != 200 {
        return Err(SimError::Parameter(format!(
            "--target: GET /api/v1/fleet/groups answered {status} ({groups}): is [fleet] on and --api-token an operator token?"
        )));
    }
    let known: Vec<String> = groups
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| g["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if !scenario.rollouts.is_empty() {
        let devices = list_devices(&http, &options.target, &access).await?;
        rollout::check_groups_empty(scenario, &devices)?;
    }
    let run_id = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() % 1_000_000_000);
    let mut plans = Vec::new();
    let mut consumers_not_run = 0;
    for n in 0..options.devices {
        let d = population.device(n);
        if d.consumer {
            consumers_not_run += 1;
            continue;
        }
        let group = population.group(d.mix).to_owned();
        if !known.contains(&group) {
            return Err(SimError::Parameter(format!(
                "the target's fleet has no group {group:?} (it has {known:?}): give it the scenario's fleet catalog"
            )));
        }
        // Fresh EIDs each run: the target's eIM and fleet keep the ones of
        // earlier runs.
        let eid = issuer.eid_at(run_id * 100_000 + u64::from(n))?;
        plans.push(Plan {
            n,
            eid,
            area: d.area,
            group,
            vendor: d.vendor,
            primary: d.profiles[0].1,
            fallback: d.profiles.get(1).map(|p| p.1),
            seed: seed.rotate_left(23) ^ u64::from(n),
        });
    }
    if plans.is_empty() {
        return Err(SimError::Parameter(format!(
            "{} has no IoT devices among the first {} (its consumer phones run without --api-token)",
            scenario.scenario.name, options.devices
        )));
    }
    let poll = Duration::from_secs_f64(
        (scenario.population.poll_within.millis() as f64 / 1000.0 / time_scale)
            .clamp(POLL_MIN.as_secs_f64(), POLL_MAX.as_secs_f64()),
    );
    let shared = Arc::new(Shared {
        options: options.clone(),
        access,
        http,
        esipa,
        direct,
        issuer,
        population: population.clone(),
        areas: scenario.areas.iter().map(|a| a.name.clone()).collect(),
        served_apns: scenario.carriers.iter().map(|c| c.apns.clone()).collect(),
        counter,
        association_token,
        poll,
        deadline,
        stop: AtomicBool::new(false),
        converged: AtomicU64::new(0),
        gave_up: AtomicU64::new(0),
        registered: AtomicU64::new(0),
        failovers_done: AtomicU64::new(0),
    });
    let duration_ms = scenario.scenario.duration.millis_i64();
    let (event_tx, event_rx) = watch::channel::<Option<Arc<Ctx>>>(None);
    let mut tasks = JoinSet::new();
    let devices = plans.len() as u64;
    for plan in plans {
        let shared = Arc::clone(&shared);
        let rx = event_rx.clone();
        tasks.spawn(async move { device(plan, &shared, rx).await });
    }

    // Until every device holds its primary and its staged fallback (or half
    // of the bound has passed): then the event starts.
    let converge_started = Instant::now();
    let converge_by = run_start + options.max_duration / 2;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let converged = shared.converged.load(Ordering::Relaxed);
        progress(&LiveProgress {
            sim_ms: 0,
            duration_ms,
            started: shared.registered.load(Ordering::Relaxed),
            done: converged,
            failed: 0,
            registered: 0,
        });
        let gave_up = shared.gave_up.load(Ordering::Relaxed);
        if converged + gave_up >= devices || Instant::now() >= converge_by {
            break;
        }
    }
    let converge_s = converge_started.elapsed().as_secs_f64();
    let event_start = Instant::now();
    let event_epoch_ms = Timestamp::now().0;
    let converged_at_start = shared.converged.load(Ordering::Relaxed);
    let ctx = Arc::new(Ctx::new(
        &network,
        &population,
        shared.direct.clone(),
        event_start,
        time_scale,
    ));
    let _ = event_tx.send(Some(Arc::clone(&ctx)));

    // The outages' declarations at their scenario times.
    let mut declarations = declarations(scenario);
    let event_end = (event_start
        + Duration::from_secs_f64(duration_ms as f64 / 1000.0 / time_scale))
    .min(deadline);
    let (mut declared, mut declaration_failures) = (0, 0);
    // The scenario's rollouts, created at the target at their times.
    let mut planned = rollout::plan(scenario, time_scale);
    let mut created: Vec<LiveRollout> = Vec::new();
    while Instant::now() < event_end {
        tick.tick().await;
        let now_ms = ctx.sim_ms();
        while let Some((at, _, _, _)) = declarations.first()
            && *at <= now_ms
        {
            let (_, carrier, region, on) = declarations.remove(0);
            declared += 1;
            let body = json!({"carrier": carrier, "region": region, "declared": on});
            match shared.call(true, "/api/v1/fleet/outages", Some(body)).await {
                Ok((s, _)) if (200..300).contains(&s) => {}
                _ => declaration_failures += 1,
            }
        }
        while planned.first().is_some_and(|p| p.at_ms <= now_ms) {
            let p = planned.remove(0);
            created.push(create_rollout(&shared, &p.spec).await);
        }
        progress(&LiveProgress {
            sim_ms: now_ms.min(duration_ms),
            duration_ms,
            started: devices,
            done: ctx.registered.load(Ordering::Relaxed),
            failed: 0,
            registered: shared.failovers_done.load(Ordering::Relaxed),
        });
    }
    let reached_ms = ctx.sim_ms().min(duration_ms);
    let event_s = event_start.elapsed().as_secs_f64();
    let ended_at_ms = Timestamp::now().0;
    let grace_end = (Instant::now() + GRACE).min(deadline);
    while Instant::now() < grace_end {
        tick.tick().await;
    }
    shared.stop.store(true, Ordering::SeqCst);
    let mut records = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(r) => records.push(r),
            Err(e) => {
                return Err(SimError::Device(format!(
                    "a device's task ended abnormally: {e}"
                )));
            }
        }
    }
    records.sort_by_key(|r| r.n);

    // The fleet's decisions about these devices.
    let ours: HashMap<String, usize> = records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.eid.map(|e| (e.to_string(), i)))
        .collect();
    let ids: Vec<u32> = created.iter().filter_map(|r| r.id).collect();
    let logged = decisions(&shared, &ours, &ids).await?;
    // The rollouts as the target ran them: its view, its rollbacks.
    let mut outcomes = Vec::new();
    for r in &mut created {
        let Some(id) = r.id else { continue };
        let path = format!("/api/v1/fleet/rollouts/{id}");
        let (status, view) = shared
            .call(false, &path, None)
            .await
            .map_err(SimError::Device)?;
        if status != 200 {
            return Err(SimError::Device(format!("GET {path}: {status} {view}")));
        }
        let o = rollout::outcome(&r.name, &view);
        r.state.clone_from(&o.state);
        r.waves_started = o.waves_started;
        r.devices_changed = o.devices_changed;
        r.gate_verdicts = o.gates.iter().map(|g| g.verdict.clone()).collect();
        r.rolled_back = rollout::rolled_back(&logged, id);
        outcomes.push(o);
    }
    // Decided during the event; the ones of the grace period are not its.
    let mut decisions = switches(&logged, &ours);
    decisions.retain(|d| d.1 <= ended_at_ms);
    let mut c = Collected::new(scenario, options.devices, seed, 1, 1, &network);
    let carrier_syms: Vec<_> = (0..network.carriers())
        .map(|i| c.dictionary.intern(network.carrier_name(i as u8)).ok())
        .collect();
    for r in &records {
        let Some(eid) = r.eid else { continue };
        // A report of the device's own, at scenario time `t` on carrier index `carrier`.
        let device_event = |t: &i64, carrier: &CarrierIx, kind: EventKind| Event {
            at: ferrosim_telemetry::Timestamp(T0 + t),
            activation: None,
            device: eid,
            source: Source::Device,
            dims: Dims {
                carrier: carrier_syms.get(usize::from(*carrier)).copied().flatten(),
                ..Dims::default()
            },
            kind,
        };
        for (t, outcome, carrier, profile) in &r.attempts {
            c.events.push(device_event(
                t,
                carrier,
                EventKind::Registration {
                    profile: *profile,
                    outcome: *outcome,
                },
            ));
        }
        for (t, latency_ms, loss_permille, carrier) in &r.data_paths {
            c.events.push(device_event(
                t,
                carrier,
                EventKind::DataPath {
                    latency_ms: *latency_ms,
                    loss_permille: *loss_permille,
                },
            ));
        }
        for ms in &r.apns.exposure {
            c.bad_apn_exposure.push((r.n, *ms));
        }
        if r.bad_apn_at_end {
            c.bad_apn_at_end.push(r.n);
        }
    }
    c.events.sort_by_key(|e| (e.at, e.device));
    c.duration_ms = reached_ms.max(1);
    let to_sim = |epoch_ms: i64| ((epoch_ms - event_epoch_ms) as f64 * time_scale) as i64;
    let width = scenario.scenario.bucket.millis_i64().max(1);
    let count = (c.duration_ms + width - 1) / width;
    let mut buckets: Vec<Bucket> = (0..count)
        .map(|i| Bucket::new(i * width, network.carriers()))
        .collect();
    let bucket_of = |t: i64| usize::try_from(t.max(0) / width).ok();
    for r in &records {
        for (t, outcome, _, _) in &r.attempts {
            if let Some(b) = bucket_of(*t).and_then(|i| buckets.get_mut(i)) {
                b.registrations += 1;
                match outcome {
                    RegistrationOutcome::Registered => {}
                    RegistrationOutcome::Rejected { .. } => b.rejected += 1,
                    RegistrationOutcome::NoResponse => b.no_response += 1,
                }
            }
        }
        for b in &mut buckets {
            let end = b.start + width;
            let state = r
                .attached
                .iter()
                .take_while(|(t, _)| *t <= end)
                .last()
                .and_then(|(_, c)| *c);
            match state {
                Some(carrier) => b.attached[usize::from(carrier)] += 1,
                None if r.converged => b.without_service += 1,
                None => {}
            }
        }
    }
    for (device, at, failover) in &decisions {
        let r = &records[*device];
        if let Some(b) = bucket_of(to_sim(*at)).and_then(|i| buckets.get_mut(i)) {
            if *failover {
                b.failovers += 1;
            } else {
                b.returns += 1;
            }
        }
        // Done at the first registration on the profile it switched to.
        let done = r
            .registrations
            .iter()
            .find(|(t, _, on_fallback)| *t >= *at && *on_fallback == *failover);
        if let Some((t, _, _)) = done {
            let ms = t - at;
            if *failover {
                c.failover_completion_ms.push(ms);
                c.failover_done.push((r.n, ms, 0));
            } else {
                c.return_completion_ms.push(ms);
                c.return_done.push((r.n, ms));
            }
            if let Some(b) = bucket_of(to_sim(*t)).and_then(|i| buckets.get_mut(i)) {
                if *failover {
                    b.failovers_done += 1;
                } else {
                    b.returns_done += 1;
                }
            }
        }
    }
    c.buckets = buckets;
    c.rollouts = outcomes;
    // The comparisons over this run's devices, by their EIDs at the target.
    let groups: Vec<String> = (0..options.devices)
        .map(|n| population.group(population.device(n).mix).to_owned())
        .collect();
    let mut eids: Vec<Eid> = (0..options.devices).map(Population::eid).collect();
    for r in &records {
        if let (Some(slot), Some(eid)) = (eids.get_mut(r.n as usize), r.eid) {
            *slot = eid;
        }
    }
    c.comparisons = crate::compare::measure_devices(scenario, &groups, &eids, &c, &c.dictionary);
    c.failovers = decisions.iter().filter(|d| d.2).count() as u64;
    c.returns = decisions.len() as u64 - c.failovers;
    c.decisions = decisions.len() as u64;
    c.cards_made = records.iter().filter(|r| r.associated).count() as u64;
    let mut figures = IotFullFidelity {
        target: options.target.base_url.clone(),
        loopback: options.target.loopback,
        time_scale,
        max_duration_s: options.max_duration.as_secs_f64(),
        poll_interval_s: poll.as_secs_f64(),
        devices,
        consumers_not_run,
        associated: c.cards_made,
        registered_in_fleet: records.iter().filter(|r| r.registered).count() as u64,
        setup_failures: BTreeMap::new(),
        converged: converged_at_start,
        converge_s,
        event_s,
        ended_at_ms,
        cut_off: reached_ms < duration_ms,
        esipa_sessions: 0,
        esipa_session_failures: 0,
        downloads: 0,
        agent_commands: BTreeMap::new(),
        local_switches: 0,
        local_refusals: 0,
        reports_sent: 0,
        report_failures: 0,
        declarations: declared,
        declaration_failures,
        failovers_decided: c.failovers,
        returns_decided: c.returns,
        on_fallback_at_end: records.iter().filter(|r| r.on_fallback).count() as u64,
        failover_completion_s: seconds(&c.failover_completion_ms),
        data_path_checks: 0,
        data_path_failures: 0,
        apn_settings_taken: 0,
        rollouts: created,
    };
    for r in &records {
        if let Some(e) = &r.setup_error {
            *figures.setup_failures.entry(e.clone()).or_default() += 1;
        }
        figures.esipa_sessions += r.sessions;
        figures.esipa_session_failures += r.session_failures;
        figures.downloads += r.downloads;
        for (command, n) in &r.commands {
            *figures.agent_commands.entry(command.clone()).or_default() += n;
            *c.actions_by_command.entry(command.clone()).or_default() += n;
        }
        figures.local_switches += r.local_switches;
        figures.local_refusals += r.local_refusals;
        figures.reports_sent += r.reports_sent;
        figures.data_path_checks += r.data_paths.len() as u64;
        figures.data_path_failures += r.data_paths.iter().filter(|d| d.2 >= 1000).count() as u64;
        figures.apn_settings_taken += r.apn_settings_taken;
        figures.report_failures += r.report_failures;
    }
    c.actions = figures.agent_commands.values().sum();
    c.setup_s = converge_s;
    c.loop_s = event_s;
    if figures.associated == 0 {
        return Err(SimError::Setup(format!(
            "no device could be associated with the target's eIM: {:?}",
            figures.setup_failures
        )));
    }
    Ok((c, figures))
}

/// Creates a rollout at the target: its id, or why the target refused it.
async fn create_rollout(shared: &Shared, spec: &ferrosim_fleet::RolloutSpec) -> LiveRollout {
    let mut r = LiveRollout {
        name: spec.name.clone(),
        id: None,
        error: None,
        soak_s: spec.soak.millis() as f64 / 1000.0,
        max_wait_s: spec.max_wait.millis() as f64 / 1000.0,
        state: "not created".into(),
        waves_started: 0,
        devices_changed: 0,
        rolled_back: 0,
        gate_verdicts: Vec::new(),
    };
    let body = match serde_json::to_value(spec) {
        Ok(b) => b,
        Err(e) => {
            r.error = Some(e.to_string());
            return r;
        }
    };
    match shared
        .call(true, "/api/v1/fleet/rollouts", Some(body))
        .await
    {
        Ok((201, v)) => match v["id"].as_u64().and_then(|id| u32::try_from(id).ok()) {
            Some(id) => r.id = Some(id),
            None => r.error = Some(format!("201 without an id: {v}")),
        },
        Ok((status, v)) => {
            r.error = Some(format!(
                "{status} {}",
                v["message"].as_str().unwrap_or_default()
            ));
        }
        Err(e) => r.error = Some(e),
    }
    r
}

/// The PEM blocks of `pem` (each certificate on its own).
fn pem_blocks(pem: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(pem);
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.starts_with("-----BEGIN") {
            current.clear();
        }
        current.push_str(line);
        current.push('\n');
        if line.starts_with("-----END") {
            out.push(current.clone().into_bytes());
        }
    }
    out
}

async fn fetch(
    http: &reqwest::Client,
    target: &Target,
    access: &IotAccess,
    path: &str,
) -> Result<(u16, Value), SimError> {
    let response = http
        .get(format!("{}{path}", target.base_url))
        .bearer_auth(&access.api_token)
        .send()
        .await
        .map_err(|e| SimError::Parameter(format!("--target: {path}: {e}")))?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Every device of the target's fleet (`GET /api/v1/fleet/devices`, page
/// by page).
async fn list_devices(
    http: &reqwest::Client,
    target: &Target,
    access: &IotAccess,
) -> Result<Vec<Value>, SimError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/api/v1/fleet/devices?limit=1000&after={a}"),
            None => "/api/v1/fleet/devices?limit=1000".to_owned(),
        };
        let (status, v) = fetch(http, target, access, &path).await?;
        if status != 200 {
            return Err(SimError::Parameter(format!(
                "--target: GET {path} answered {status} ({v})"
            )));
        }
        out.extend(v["devices"].as_array().cloned().unwrap_or_default());
        match v["next_after"].as_str() {
            Some(next) if Some(next) != after.as_deref() => after = Some(next.to_owned()),
            _ => return Ok(out),
        }
    }
}

/// The outages' declarations and ends: scenario ms, carrier, region (the
/// area), declared.
fn declarations(scenario: &Scenario) -> Vec<(i64, String, String, bool)> {
    let mut out = Vec::new();
    for o in &scenario.outages {
        let areas: Vec<String> = if o.areas.is_empty() {
            scenario.areas.iter().map(|a| a.name.clone()).collect()
        } else {
            o.areas.clone()
        };
        for area in areas {
            if let Some(after) = o.declare_after {
                out.push((
                    o.start.millis_i64() + after.millis_i64(),
                    o.carrier.clone(),
                    area.clone(),
                    true,
                ));
            }
            if let Some(after) = o.declare_end_after {
                out.push((
                    o.end.millis_i64() + after.millis_i64(),
                    o.carrier.clone(),
                    area,
                    false,
                ));
            }
        }
    }
    out.sort_by_key(|d| d.0);
    out
}

/// The fleet's switch decisions about `ours`: device (index into the
/// records), when (epoch ms), failover (or return).
fn switches(decisions: &[Value], ours: &HashMap<String, usize>) -> Vec<(usize, i64, bool)> {
    let mut out = Vec::new();
    for d in decisions {
        if d["what"]["decision"] != "switch" {
            continue;
        }
        let Some(&device) = d["device"].as_str().and_then(|e| ours.get(e)) else {
            continue;
        };
        let (Some(at), Some(failover)) = (d["at"].as_i64(), d["what"]["failover"].as_bool()) else {
            continue;
        };
        out.push((device, at, failover));
    }
    out
}

/// The fleet's decisions about `ours` or one of `rollouts`, oldest first.
async fn decisions(
    shared: &Shared,
    ours: &HashMap<String, usize>,
    rollouts: &[u32],
) -> Result<Vec<Value>, SimError> {
    let mut out = Vec::new();
    let mut after = 0u64;
    loop {
        let path = format!("/api/v1/fleet/decisions?limit=1000&after={after}");
        let (status, v) = shared
            .call(false, &path, None)
            .await
            .map_err(SimError::Device)?;
        if status != 200 {
            return Err(SimError::Device(format!("GET {path}: {status} {v}")));
        }
        let page = v["decisions"].as_array().cloned().unwrap_or_default();
        let full = page.len() == 1000;
        if let Some(last) = page.last().and_then(|d| d["seq"].as_u64()) {
            after = last;
        }
        for d in page {
            let device = d["device"].as_str().is_some_and(|e| ours.contains_key(e));
            let rollout = d["rollout"]
                .as_u64()
                .and_then(|r| u32::try_from(r).ok())
                .is_some_and(|r| rollouts.contains(&r));
            if device || rollout {
                out.push(d);
            }
        }
        if !full {
            return Ok(out);
        }
    }
}

/// The device's radio: where it is registered, and when it tries next.
struct Radio {
    /// The profile it is registered with, and its carrier.
    on: Option<(Iccid, CarrierIx)>,
    attempts: u16,
    /// Next registration attempt (scenario ms).
    next_attempt: i64,
    /// It noticed its network is gone at this time (scenario ms).
    lose_at: Option<i64>,
    /// The APN of its enabled profile changed: it re-attaches with it.
    reattach: bool,
}

/// One device from setup to the end of the run.
async fn device(plan: Plan, shared: &Shared, event: watch::Receiver<Option<Arc<Ctx>>>) -> Record {
    let mut record = Record {
        n: plan.n,
        eid: Some(plan.eid),
        ..Record::default()
    };
    let mut card = match setup(&plan, shared, &mut record).await {
        Ok(card) => card,
        Err(e) => {
            record.setup_error = Some(e.chars().take(160).collect());
            shared.gave_up.fetch_add(1, Ordering::Relaxed);
            return record;
        }
    };
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let mut store = MemoryStore::default();
    let config = IpaConfig {
        eid: Some(plan.eid),
        download_path: DownloadPath::Direct,
        notification_retry: ferrosim_lpa::RetryPolicy::immediate(1),
        ..IpaConfig::default()
    };
    let agent = format!("/api/v1/fleet/devices/{}/agent", plan.eid);
    let vendor = shared.population.vendor(plan.vendor).clone();
    let mut primary_iccid: Option<Iccid> = None;
    let mut radio = Radio {
        on: None,
        attempts: 0,
        next_attempt: 0,
        lose_at: None,
        reattach: false,
    };
    while !shared.stop.load(Ordering::SeqCst) && Instant::now() < shared.deadline {
        // The IPA's session with the eIM.
        {
            let mut es10 = match Es10::open(
                |apdu: &[u8]| card.handle_apdu(apdu, Timestamp::now()),
                &Es10Options::default(),
            ) {
                Ok(e) => e,
                Err(e) => {
                    record.setup_error = Some(format!("eUICC: {e}"));
                    return record;
                }
            };
            let state = store.last.clone().unwrap_or_default();
            let mut ipa = Ipa::new(
                config.clone(),
                es10.link(),
                state,
                StdRng::seed_from_u64(rng.random()),
                Timestamp::now(),
            );
            record.sessions += 1;
            match run_session(
                &mut ipa,
                es10.transport_mut(),
                &shared.esipa,
                &shared.direct,
                &mut store,
            )
            .await
            {
                Ok(report) => {
                    if report.error.is_some() {
                        record.session_failures += 1;
                    }
                    record.downloads += report
                        .items
                        .iter()
                        .filter(|i| matches!(i, ItemReport::Download { .. }))
                        .count() as u64;
                }
                Err(_) => record.session_failures += 1,
            }
            let _ = es10.close();
        }
        // The agent's commands.
        if let Ok((200, commands)) = shared.call(false, &agent, None).await {
            for c in commands["commands"].as_array().cloned().unwrap_or_default() {
                let name = c["command"].as_str().unwrap_or("?").to_owned();
                *record.commands.entry(name.clone()).or_default() += 1;
                let local = match name.as_str() {
                    "agent.executeFallbackMechanism" => Some(LocalOperation::ExecuteFallback),
                    "agent.returnFromFallback" => Some(LocalOperation::ReturnFromFallback),
                    _ => None,
                };
                if name == "agent.apnConfig" {
                    let ctx = event.borrow().clone();
                    take_apn(
                        &c,
                        &plan,
                        shared,
                        &card,
                        primary_iccid.as_ref(),
                        ctx.as_deref(),
                        &mut record,
                        &mut radio,
                    );
                }
                let (ok, error) = match local {
                    Some(op) => {
                        let code = local_operation(&mut card, &config, &mut store, op, &mut rng);
                        record.local_switches += 1;
                        match code {
                            Ok(0) => (true, None),
                            Ok(2) => {
                                record.local_refusals += 1;
                                (false, Some("wrong_state"))
                            }
                            Ok(_) => {
                                record.local_refusals += 1;
                                (false, Some("not_allowed"))
                            }
                            Err(_) => (false, Some("unreachable")),
                        }
                    }
                    None => (true, None),
                };
                let body = json!({"action": c["action"], "ok": ok, "error": error});
                let _ = shared.call(true, &agent, Some(body)).await;
            }
        }
        // What the eUICC holds now.
        let (enabled, fallback) = profiles(&card);
        if !record.converged {
            let staged = plan.fallback.is_none()
                || fallback
                    .as_ref()
                    .is_some_and(|f| Some(f) != enabled.as_ref());
            if enabled.is_some() && staged {
                record.converged = true;
                primary_iccid.clone_from(&enabled);
                shared.converged.fetch_add(1, Ordering::Relaxed);
            }
        }
        // The network, once the event runs.
        let ctx = event.borrow().clone();
        if let (Some(ctx), Some(enabled), Some(primary)) = (ctx, enabled, primary_iccid.as_ref()) {
            let on_fallback = &enabled != primary;
            record.on_fallback = on_fallback;
            let carrier = if on_fallback {
                plan.fallback.unwrap_or(plan.primary)
            } else {
                plan.primary
            };
            radio_step(
                &plan,
                shared,
                &ctx,
                &mut radio,
                &mut record,
                &enabled,
                carrier,
                on_fallback,
                vendor.modem_failure,
                &mut rng,
            )
            .await;
        }
        let jitter = rng.random_range(0.8..1.2);
        tokio::time::sleep(shared.poll.mul_f64(jitter)).await;
    }
    let end = event.borrow().as_ref().map_or(0, |ctx| ctx.sim_ms());
    record.bad_apn_at_end = record.apns.close(end);
    record
}

/// One look of the device at its network: it loses its registration
/// during an outage (noticed within the population's `detect_within`),
/// registers on the carrier of its enabled profile when it is not
/// registered there, with the population's backoff, and reports every
/// attempt to the fleet.
#[allow(clippy::too_many_arguments)]
async fn radio_step(
    plan: &Plan,
    shared: &Shared,
    ctx: &Ctx,
    radio: &mut Radio,
    record: &mut Record,
    enabled: &Iccid,
    carrier: CarrierIx,
    on_fallback: bool,
    modem_failure: f64,
    rng: &mut StdRng,
) {
    let t = ctx.sim_ms();
    let detach = |radio: &mut Radio, record: &mut Record| {
        if let Some((_, c)) = radio.on.take() {
            let _ = ctx.net(|n| n.load.add(c, plan.area, -1));
            record.attached.push((t, None));
        }
    };
    if std::mem::take(&mut radio.reattach) {
        // A new APN for the enabled profile: the modem detaches and
        // registers again with it.
        detach(radio, record);
        radio.next_attempt = t;
        radio.attempts = 0;
        radio.lose_at = None;
    }
    match &radio.on {
        Some((iccid, _)) if iccid != enabled => {
            // The eUICC switched: the modem re-attaches with the new profile.
            detach(radio, record);
            radio.next_attempt = t;
            radio.attempts = 0;
        }
        Some((_, c)) => {
            let severity = ctx.network.outage(*c, plan.area, t);
            if severity > 0.0 && radio.lose_at.is_none() && rng.random_bool(severity.min(1.0)) {
                radio.lose_at =
                    Some(t + rng.random_range(0..=shared.population.detect_within_ms().max(0)));
            }
            if radio.lose_at.is_some_and(|at| at <= t) {
                radio.lose_at = None;
                detach(radio, record);
                radio.next_attempt = t;
                radio.attempts = 0;
            }
            return;
        }
        None => {}
    }
    if radio.on.is_some() || t < radio.next_attempt {
        return;
    }
    let (answer, _refused) = ctx.register(carrier, plan.area, modem_failure, rng);
    let outcome = match answer {
        Attach::Registered { .. } => RegistrationOutcome::Registered,
        Attach::Rejected { cause, .. } => RegistrationOutcome::Rejected { cause },
        Attach::NoResponse => RegistrationOutcome::NoResponse,
    };
    record.attempts.push((
        t,
        outcome,
        carrier,
        ProfileKey::from_digits(enabled.as_str()),
    ));
    let registration = match outcome {
        RegistrationOutcome::Registered => json!({"result": "registered"}),
        RegistrationOutcome::Rejected { cause } => json!({"result": "rejected", "cause": cause}),
        RegistrationOutcome::NoResponse => json!({"result": "no_response"}),
    };
    let mut reports = vec![json!({"device": plan.eid.to_string(),
        "kind": {"type": "registration", "outcome": registration}})];
    if outcome == RegistrationOutcome::Registered {
        ctx.attach(carrier, plan.area, None);
        radio.on = Some((enabled.clone(), carrier));
        radio.attempts = 0;
        radio.lose_at = None;
        record.attached.push((t, Some(carrier)));
        record
            .registrations
            .push((Timestamp::now().0, enabled.clone(), on_fallback));
        if on_fallback {
            shared.failovers_done.fetch_add(1, Ordering::Relaxed);
        }
        ctx.registered.fetch_add(1, Ordering::Relaxed);
        let (latency_ms, mut loss_permille) = ctx.data_path(carrier, plan.area, rng);
        if record.apns.on_bad(enabled) {
            // The core refuses the PDN connection: no data at all.
            loss_permille = 1000;
        }
        record
            .data_paths
            .push((t, latency_ms, loss_permille, carrier));
        reports.push(json!({"device": plan.eid.to_string(),
            "kind": {"type": "data_path", "latency_ms": latency_ms, "loss_permille": loss_permille}}));
    } else {
        radio.attempts = radio.attempts.saturating_add(1);
        let wait = if outcome == RegistrationOutcome::NoResponse {
            T3410_MS
        } else {
            0
        };
        radio.next_attempt = t + wait + shared.population.retry_delay_ms(radio.attempts, rng);
    }
    match shared
        .call(
            true,
            "/api/v1/fleet/reports",
            Some(json!({ "reports": reports })),
        )
        .await
    {
        Ok((200, _)) => record.reports_sent += reports.len() as u64,
        _ => record.report_failures += reports.len() as u64,
    }
}

/// The device's agent takes the APN setting of an `agent.apnConfig`
/// command: the network model says whether the profile's carrier serves
/// it; a changed APN of the enabled profile makes the modem re-attach.
#[allow(clippy::too_many_arguments)]
fn take_apn(
    command: &Value,
    plan: &Plan,
    shared: &Shared,
    card: &VirtualEuicc,
    primary: Option<&Iccid>,
    ctx: Option<&Ctx>,
    record: &mut Record,
    radio: &mut Radio,
) {
    let (Some(iccid), Some(apn)) = (
        command["iccid"]
            .as_str()
            .and_then(|i| i.parse::<Iccid>().ok()),
        command["apn"]["apn"].as_str(),
    ) else {
        return;
    };
    // The primary until the device holds both (the fleet enables and
    // configures the primary first).
    let carrier = match primary {
        Some(p) if *p != iccid => plan.fallback.unwrap_or(plan.primary),
        _ => plan.primary,
    };
    let served = shared
        .served_apns
        .get(usize::from(carrier))
        .is_none_or(|apns| apns.is_empty() || apns.iter().any(|a| a == apn));
    let t = ctx.map_or(0, Ctx::sim_ms);
    record.apn_settings_taken += 1;
    let changed = record.apns.take(&iccid, apn, served, t);
    if changed && profiles(card).0.as_ref() == Some(&iccid) {
        radio.reattach = true;
    }
}

/// The enabled profile and the one holding the fallback attribute, as the
/// eUICC has them.
fn profiles(card: &VirtualEuicc) -> (Option<Iccid>, Option<Iccid>) {
    let state = card.state();
    let enabled = state
        .profiles
        .iter()
        .find(|p| p.state == ProfileState::Enabled)
        .map(|p| p.iccid.clone());
    let fallback = state.switching.as_ref().and_then(|s| s.fallback.clone());
    (enabled, fallback)
}

/// The device's eUICC given the target's eIM, associated with it over the
/// eIM's REST API, and registered in the target's fleet.
async fn setup(plan: &Plan, shared: &Shared, record: &mut Record) -> Result<VirtualEuicc, String> {
    let mut card = shared.issuer.card(plan.eid).map_err(|e| e.to_string())?;
    let answer = {
        let mut es10 = Es10::open(
            |apdu: &[u8]| card.handle_apdu(apdu, Timestamp::now()),
            &Es10Options::default(),
        )
        .map_err(|e| format!("eUICC: {e}"))?;
        let answer = es10
            .transmit_es10(&shared.access.add_initial_eim)
            .map_err(|e| format!("AddInitialEim: {e}"))?;
        let _ = es10.close();
        answer
    };
    match decode_der::<sgp32::AddInitialEimResponse>(&answer) {
        Ok(sgp32::AddInitialEimResponse::addInitialEimOk(_)) => {}
        other => return Err(format!("the eUICC refused AddInitialEim: {other:?}")),
    }
    let b64 = |der: &[u8]| base64::engine::general_purpose::STANDARD.encode(der);
    let identity = card.identity();
    let body = json!({
        "eid": plan.eid.to_string(),
        "eumCertificate": b64(identity.eum_certificate().der()),
        "euiccCertificate": b64(identity.euicc_certificate_der()),
        "counter": shared.counter,
        "associationToken": shared.association_token,
    });
    let (s, v) = shared.call(true, "/api/v1/eim/devices", Some(body)).await?;
    if s != 201 {
        return Err(format!(
            "eIM association: {s} {}",
            v["message"].as_str().unwrap_or("")
        ));
    }
    record.associated = true;
    let vendor = shared.population.vendor(plan.vendor);
    let region = shared
        .areas
        .get(usize::from(plan.area))
        .cloned()
        .unwrap_or_default();
    let body = json!({
        "eid": plan.eid.to_string(), "group": plan.group, "vendor": vendor.name,
        "model": vendor.model, "firmware": vendor.firmware, "region": region,
        "capabilities": {"sgp32_version": [1, 2, 0], "fallback_supported": true}
    });
    let (s, v) = shared
        .call(true, "/api/v1/fleet/devices", Some(body))
        .await?;
    if s != 201 {
        return Err(format!(
            "fleet registration: {s} {}",
            v["message"].as_str().unwrap_or("")
        ));
    }
    record.registered = true;
    shared.registered.fetch_add(1, Ordering::Relaxed);
    Ok(card)
}

/// Has the IPA run `operation` on the eUICC (ES10b, without the eIM): the
/// eUICC's result code. What the eIM must learn (notifyStateChange) goes
/// with the next session.
fn local_operation(
    card: &mut VirtualEuicc,
    config: &IpaConfig,
    store: &mut MemoryStore,
    operation: LocalOperation,
    rng: &mut StdRng,
) -> Result<i64, String> {
    let mut es10 = Es10::open(
        |apdu: &[u8]| card.handle_apdu(apdu, Timestamp::now()),
        &Es10Options::default(),
    )
    .map_err(|e| e.to_string())?;
    let state = store.last.clone().unwrap_or_default();
    let mut ipa = Ipa::new(
        config.clone(),
        es10.link(),
        state,
        StdRng::seed_from_u64(rng.random()),
        Timestamp::now(),
    );
    ipa.start_local(operation, false, Timestamp::now());
    let mut code = Err(format!("{} did not end", operation.name()));
    while let Some(action) = ipa.poll() {
        match action {
            Action::Transmit(apdu) => {
                let response = ferrosim_lpa::Transport::transmit(es10.transport_mut(), &apdu);
                ipa.handle_apdu_response(response, Timestamp::now());
            }
            Action::Persist(state) => {
                let _ = store.save(&state);
            }
            Action::SessionDone(report) => {
                code = match (&report.error, report.items.first()) {
                    (Some(e), _) => Err(e.to_string()),
                    (None, Some(ItemReport::Local { code, .. })) => Ok(*code),
                    (None, _) => Err("no result".into()),
                };
            }
            _ => {}
        }
    }
    let _ = es10.close();
    code
}

/// The full-fidelity section of the HTML report of an IoT run.
pub fn html(ff: &IotFullFidelity) -> String {
    let secs = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.3} s"));
    maud::html! {
        h2 { "Full fidelity: the target's eIM, fleet and SM-DP+ over HTTPS" }
        table {
            tr { th { "devices associated with the eIM / in the fleet / with primary and staged fallback" }
                 td { (ff.associated) " / " (ff.registered_in_fleet) " / " (ff.converged) " of " (ff.devices) } }
            tr { th { "profiles downloaded by the IPAs" } td { (ff.downloads) } }
            tr { th { "IPA sessions with the eIM (failed)" } td { (ff.esipa_sessions) " (" (ff.esipa_session_failures) ")" } }
            tr { th { "failovers / returns decided by the target's fleet" } td { (ff.failovers_decided) " / " (ff.returns_decided) } }
            tr { th { "failover completion (p50 / p99 / max, real time)" }
                 td { (secs(ff.failover_completion_s.p50)) " / " (secs(ff.failover_completion_s.p99)) " / " (secs(ff.failover_completion_s.max)) } }
            tr { th { "ExecuteFallbackMechanism / ReturnFromFallback run (refused by the eUICC)" } td { (ff.local_switches) " (" (ff.local_refusals) ")" } }
            tr { th { "connectivity reports sent (failed)" } td { (ff.reports_sent) " (" (ff.report_failures) ")" } }
            tr { th { "outage declarations sent (failed)" } td { (ff.declarations) " (" (ff.declaration_failures) ")" } }
            tr { th { "on their fallback at the end" } td { (ff.on_fallback_at_end) } }
            tr { th { "poll interval, bound" } td { (format!("{:.2}", ff.poll_interval_s)) " s, " (format!("{:.0}", ff.max_duration_s)) " s" } }
        }
        @if !ff.rollouts.is_empty() {
            table {
                tr { th { "rollout" } th { "target's id" } th { "soak / max wait sent" } th { "state" }
                     th { "waves started" } th { "devices changed" } th { "rolled back" } th { "gates" } }
                @for r in &ff.rollouts {
                    tr { td { (r.name) } td { (r.id.map_or_else(|| format!("refused: {}", r.error.as_deref().unwrap_or("?")), |id| id.to_string())) }
                         td { (format!("{:.1} s / {:.1} s", r.soak_s, r.max_wait_s)) } td { (r.state) }
                         td { (r.waves_started) } td { (r.devices_changed) } td { (r.rolled_back) }
                         td { (r.gate_verdicts.join(", ")) } }
                }
            }
            p { "Data-path checks " (ff.data_path_checks) ", failed " (ff.data_path_failures)
                "; APN settings taken by the agents " (ff.apn_settings_taken) "." }
        }
        @for (command, n) in &ff.agent_commands {
            p { "Agent command " (command) ": " (n) }
        }
        @for (cause, n) in &ff.setup_failures {
            p { "Setup failed: " (n) " × " (cause) }
        }
    }
    .into_string()
}
