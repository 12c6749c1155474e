//! The run: shards advanced in lockstep windows, the control plane (fleet
//! and telemetry) between windows.
//!
//! Each window `[T, T+W)`: the shards run in parallel (each its devices'
//! events before `T+W`, the actions the fleet sent at `T`, the eIM
//! exchanges of its devices); their outputs are merged in (time, device)
//! order and handed to the fleet with their times (reports, action
//! results) and to the telemetry log; the fleet then polls at `T+W` and
//! its actions go to the shards of their devices for the next window. The
//! shard count is a run parameter (not the machine's core count), so the
//! same scenario, seed and shard count give the same report on any machine.

use std::sync::mpsc;
use std::time::Instant;

use ferrosim_fleet::action::Failure;
use ferrosim_fleet::config::FleetConfig;
use ferrosim_fleet::device::{Capabilities, DeviceSpec, KnownProfile, Version};
use ferrosim_fleet::report::ReportKind;
use ferrosim_fleet::{Action, ActionResult, Catalog, Command, DeviceReport, Fleet, Outcome, What};
use ferrosim_ids::Timestamp;
use ferrosim_telemetry::{
    ActivationKind, CorrelationId, Dictionary, Dims, Event, EventKind, Function, ProfileChange,
    ProfileKey, RegistrationOutcome, Source, StatusCode, StepStatus, compute,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::consumer::Downloads;
use crate::error::SimError;
use crate::iot::Factory;
use crate::network::{Load, Network};
use crate::population::{EID_PREFIX, Population};
use crate::report::{Bucket, Collected, RolloutOutcome};
use crate::scenario::Scenario;
use crate::shard::{Ctx, OutKind, Shard};

/// The scenario's epoch: 2026-07-01T00:00:00Z (only the offsets matter).
pub const T0: i64 = 1_782_864_000_000;

/// How to run a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// Devices (the scenario's default when `None`).
    pub devices: Option<u32>,
    /// Seed (the scenario's default when `None`).
    pub seed: Option<u64>,
    /// Shards the devices are split into (part of what the result depends
    /// on; 2 by default).
    pub shards: usize,
    /// Threads running the shards (at most `shards`; does not change the
    /// result).
    pub threads: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            devices: None,
            seed: None,
            shards: 2,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl RunOptions {
    /// The threads that run the shards: `threads`, at least 1 and at most
    /// `shards`.
    pub fn shard_threads(&self) -> usize {
        self.threads.clamp(1, self.shards.max(1))
    }
}

/// Where a run is, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Simulated time reached (ms).
    pub sim_ms: i64,
    /// Simulated time in all (ms).
    pub duration_ms: i64,
    /// Devices present without service.
    pub without_service: u64,
    /// Switches decided so far.
    pub switches: u64,
}

/// Runs `scenario`; `progress` is called about every simulated minute.
pub fn run(
    scenario: &Scenario,
    options: &RunOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Collected, SimError> {
    let started = Instant::now();
    let devices = options.devices.unwrap_or(scenario.scenario.devices);
    if devices == 0 || devices > 50_000_000 {
        return Err(SimError::Parameter(format!(
            "--devices must be 1..=50000000, not {devices}"
        )));
    }
    if options.shards == 0 || options.shards > 64 {
        return Err(SimError::Parameter("shards must be 1..=64".into()));
    }
    let seed = options.seed.unwrap_or(scenario.scenario.seed);
    let threads = options.shard_threads();
    let fleet_text = scenario.fleet_toml();
    let fleet_config =
        FleetConfig::from_toml(&fleet_text).map_err(|e| SimError::Fleet(e.to_string()))?;
    let dict = Dictionary::new();
    let catalog = Catalog::from_toml(&fleet_text, dict.clone())
        .map_err(|e| SimError::Fleet(e.to_string()))?;
    let network = Network::new(scenario);
    let population = Population::new(scenario, &fleet_config, &network, devices, seed)?;
    let factory = Factory::new(EID_PREFIX)?;
    // The SM-DP+: the consumer phones' orders placed before the event, and
    // the fleet's ES2+ orders during it.
    let consumer: Vec<bool> = if population.has_consumers() {
        (0..devices)
            .map(|n| population.device(n).consumer)
            .collect()
    } else {
        Vec::new()
    };
    let downloads = Some(Downloads::new(&factory, &consumer, seed, Timestamp(T0))?);
    drop(consumer);
    let window = scenario.scenario.window.millis_i64();
    let duration = scenario.scenario.duration.millis_i64();
    let bucket_ms = scenario.scenario.bucket.millis_i64();

    // Which APN settings of the catalog the carriers' cores serve.
    let apn_served: Vec<bool> = catalog
        .apns
        .iter()
        .map(|a| {
            let carrier = &catalog.carrier(a.carrier).name;
            scenario
                .carriers
                .iter()
                .find(|c| c.name == *carrier)
                .is_none_or(|c| c.apns.is_empty() || c.apns.contains(&a.settings.apn))
        })
        .collect();
    // Each catalog profile type: its carrier's name, the SM-DP+'s name for
    // it, and the carrier's network.
    let profile_types: Vec<(String, String, Option<u8>)> = catalog
        .profile_types
        .iter()
        .map(|t| {
            let carrier = catalog.carrier(t.carrier).name.clone();
            let network_ix = network.carrier(&carrier);
            let name = format!("{carrier}-{}-v{}", t.name, t.version);
            (carrier, name, network_ix)
        })
        .collect();
    let type_carrier: Vec<Option<u8>> = profile_types.iter().map(|t| t.2).collect();
    let carrier_names: Vec<String> = catalog.carriers.iter().map(|c| c.name.clone()).collect();
    // The fleet (on this thread) and the shards (on another when the run
    // has two threads): each reads only the population, so the result does
    // not depend on which is done first.
    // The shards, and the devices' EIDs (the control plane names a device
    // by EID in every event, report and result it hands on).
    let make_shards = || -> (Vec<Shard>, Eids) {
        let shards = (0..options.shards)
            .map(|i| {
                Shard::new(
                    i,
                    options.shards,
                    &population,
                    &network,
                    window as u64,
                    seed,
                )
            })
            .collect();
        (shards, Eids::of(devices))
    };
    let (fleet, shards) = if threads > 1 {
        std::thread::scope(|scope| {
            let shards = scope.spawn(make_shards);
            let fleet = deployed_fleet(catalog, &fleet_config, &population, scenario);
            let shards = shards
                .join()
                .map_err(|_| SimError::Setup("a thread making the shards panicked".into()));
            (fleet, shards)
        })
    } else {
        let fleet = deployed_fleet(catalog, &fleet_config, &population, scenario);
        (fleet, Ok(make_shards()))
    };
    let ((mut fleet, positions), (mut shards, eids)) = (fleet?, shards?);
    let mut load = Load::new(network.carriers(), network.areas());
    for s in &shards {
        load.merge(&s.load_delta);
    }
    let mut fleet_rng = StdRng::seed_from_u64(seed ^ 0x464c_4545_5400_0000);
    let mut c = Collected::new(scenario, devices, seed, options.shards, threads, &network);
    let setup_s = started.elapsed().as_secs_f64();
    let loop_started = Instant::now();

    // Per activation id (the fleet numbers them 1, 2, ...): when its
    // switch was decided and whether it is a failover (else a return).
    let mut activation_start: Vec<Option<(i64, bool)>> = Vec::new();
    // Per device number: the kind of the last switch decided for it.
    let mut last_switch: Vec<Option<bool>> = vec![None; devices as usize];
    let mut bucket = Bucket::new(0, network.carriers());
    let mut last_progress = -60_000;
    // Declarations of outages to the fleet: (when, start?, carrier, region).
    let mut declarations: Vec<(i64, bool, String, Option<String>)> = Vec::new();
    for o in &scenario.outages {
        let regions: Vec<Option<String>> = if o.areas.is_empty() {
            vec![None]
        } else {
            o.areas.iter().cloned().map(Some).collect()
        };
        for r in regions {
            if let Some(after) = o.declare_after {
                declarations.push((
                    o.start.millis_i64() + after.millis_i64(),
                    true,
                    o.carrier.clone(),
                    r.clone(),
                ));
                let end_after = o.declare_end_after.map_or(0, |s| s.millis_i64());
                declarations.push((o.end.millis_i64() + end_after, false, o.carrier.clone(), r));
            }
        }
    }
    declarations.sort_by_key(|d| d.0);
    // Rollouts by name, once created: their fleet id.
    let mut rollout_ids: Vec<(String, u32)> = Vec::new();
    // Outputs stamped past the window they were made in.
    let mut later: Vec<crate::shard::Out> = Vec::new();
    // Per device number: when its provisioning (ES2+ order) started.
    let mut provision_start: Vec<Option<i64>> = vec![None; devices as usize];
    // Per device number: when the fleet last issued an enable to it.
    let mut enable_issued: Vec<Option<i64>> = vec![None; devices as usize];
    let mut shards_s = 0.0;
    // Actions sent to devices, by command name (few names).
    let mut actions_by_command: Vec<(&'static str, u64)> = Vec::new();
    let mut t = 0;
    let env = Env {
        network: &network,
        population: &population,
        factory: &factory,
        downloads: downloads.as_ref(),
        apn_served: &apn_served,
        type_carrier: &type_carrier,
    };
    // The threads that run shards besides this one, started once for the
    // whole loop.
    std::thread::scope(|scope| -> Result<(), SimError> {
        let pool = Pool::start(scope, threads - 1, &env);
        while t < duration {
            let end = (t + window).min(duration);
            for r in scenario
                .rollouts
                .iter()
                .filter(|r| r.start.millis_i64() >= t && r.start.millis_i64() < end)
            {
                let id = fleet
                    .create_rollout(r.spec.clone(), Timestamp(T0 + t))
                    .map_err(|e| SimError::Fleet(format!("rollout {:?}: {e}", r.spec.name)))?;
                rollout_ids.push((r.spec.name.clone(), id));
            }
            for (_, start, carrier, region) in declarations.iter().filter(|d| d.0 >= t && d.0 < end)
            {
                let now = Timestamp(T0 + t);
                let r = if *start {
                    fleet.declare_outage(carrier, region.as_deref(), now)
                } else {
                    fleet.end_outage(carrier, region.as_deref(), now)
                };
                r.map_err(|e| SimError::Fleet(format!("declaring an outage of {carrier}: {e}")))?;
            }
            // The fleet's decisions due now, to the shards.
            fleet.poll(Timestamp(T0 + t), &mut fleet_rng);
            while let Some(d) = fleet.poll_decision() {
                c.decisions += 1;
                if let What::Switch { failover, .. } = d.what {
                    if failover {
                        bucket.failovers += 1;
                        c.failovers += 1;
                    } else {
                        bucket.returns += 1;
                        c.returns += 1;
                    }
                    if let Some(n) = d.device.and_then(|eid| eids.index_of(&eid)) {
                        last_switch[n as usize] = Some(failover);
                    }
                }
            }
            while let Some(e) = fleet.poll_event() {
                if let (
                    EventKind::ActivationStarted {
                        kind: ActivationKind::Failover,
                        ..
                    },
                    Some(a),
                ) = (e.kind, e.activation)
                {
                    let failover = eids
                        .index_of(&e.device)
                        .and_then(|n| last_switch[n as usize])
                        .unwrap_or(true);
                    let slot = usize::try_from(a.get()).unwrap_or(usize::MAX);
                    if slot >= activation_start.len() {
                        activation_start.resize(slot.saturating_add(1), None);
                    }
                    activation_start[slot] = Some((t, failover));
                }
                c.events.push(e);
            }
            while let Some(q) = fleet.poll_gate_query() {
                // The gate's numbers from ferrosim-telemetry over the events so
                // far, as a deployment's driver computes them.
                c.gate_queries += 1;
                let wave = compute(&c.events, &q.wave_query, &dict).total;
                let control = compute(&c.events, &q.control_query, &dict).total;
                fleet
                    .handle_gate_metrics(q.rollout, q.wave, &wave, &control, Timestamp(T0 + t))
                    .map_err(|e| SimError::Fleet(format!("gate of rollout {}: {e}", q.rollout)))?;
            }
            while let Some(a) = fleet.poll_action() {
                let Some(n) = eids.index_of(&a.device) else {
                    continue;
                };
                c.actions += 1;
                let name = a.command.name();
                match actions_by_command.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, count)) => *count += 1,
                    None => actions_by_command.push((name, 1)),
                }
                if matches!(
                    a.command,
                    Command::EimEnable { .. } | Command::AgentExecuteFallback { .. }
                ) {
                    enable_issued[n as usize] = Some(t);
                }
                if a.command.is_es2() {
                    // ES2+ is the fleet's call to the carrier's SM-DP+, made
                    // here between windows (in action order: deterministic).
                    if matches!(a.command, Command::Es2DownloadOrder { .. }) {
                        provision_start[n as usize].get_or_insert(t);
                    }
                    let es2 = Es2 {
                        downloads: downloads.as_ref(),
                        carriers: &carrier_names,
                        profile_types: &profile_types,
                        took_ms: ES2_ROUND_TRIP_MS + population.es9_server_ms,
                    };
                    let dims = fleet_dims(&fleet, &positions, n);
                    later.extend(es2.call(t, n, &a, &mut c.events, dims));
                    continue;
                }
                shards[n as usize % options.shards].deliver(n, a);
            }
            // The shards' window.
            let shards_started = Instant::now();
            pool.run(&mut shards, t, end, &load, &env)?;
            shards_s += shards_started.elapsed().as_secs_f64();
            // Merge in (time, device) order.
            // What lies beyond this window (a download's end, an ES2+ answer)
            // waits for its window.
            let mut outs: Vec<_> = std::mem::take(&mut later);
            outs.extend(shards.iter_mut().flat_map(|s| s.out.drain(..)));
            let (mut outs, beyond): (Vec<_>, Vec<_>) = outs.into_iter().partition(|o| o.t < end);
            later = beyond;
            outs.sort_by_key(|o| (o.t, o.dev));
            for s in &shards {
                load.merge(&s.load_delta);
                for (i, r) in s.budget.refused.iter().enumerate() {
                    bucket.congestion_refusals[i] += *r;
                }
            }
            for o in outs {
                let eid = eids.get(o.dev);
                let at = Timestamp(T0 + o.t);
                // The device's dimensions as the fleet has them now (before
                // the output changes its state), read only for an event.
                let event = |kind, activation: Option<u64>| Event {
                    at,
                    activation: activation.and_then(CorrelationId::new),
                    device: eid,
                    source: Source::Device,
                    dims: fleet_dims(&fleet, &positions, o.dev),
                    kind,
                };
                match o.kind {
                    OutKind::Report(kind, activation) => {
                        match &kind {
                            ReportKind::DataPath {
                                latency_ms,
                                loss_permille,
                            } => c.events.push(event(
                                EventKind::DataPath {
                                    latency_ms: *latency_ms,
                                    loss_permille: *loss_permille,
                                },
                                activation,
                            )),
                            ReportKind::ProfileSwitch { enabled, .. } => {
                                c.rollbacks += 1;
                                if let Some(profile) = ProfileKey::from_digits(enabled.as_str()) {
                                    c.events.push(event(
                                        EventKind::Profile {
                                            profile,
                                            change: ProfileChange::Enabled,
                                        },
                                        activation,
                                    ));
                                }
                            }
                            _ => {}
                        }
                        fleet
                            .handle_report(&DeviceReport { device: eid, kind }, at)
                            .map_err(|e| SimError::Device(format!("fleet report: {e}")))?;
                    }
                    OutKind::Result(result) => {
                        if let Outcome::Installed { .. } = result.outcome
                            && let Some(start) = provision_start[o.dev as usize].take()
                        {
                            c.provisioned.push((o.dev, start, o.t));
                        }
                        fleet
                            .handle_result(&result, at, &mut fleet_rng)
                            .map_err(|e| SimError::Device(format!("fleet result: {e}")))?;
                    }
                    OutKind::Event(kind, activation) => {
                        if let EventKind::Registration { outcome, .. } = kind {
                            bucket.registrations += 1;
                            match outcome {
                                RegistrationOutcome::Registered => {
                                    if let Some(a) = activation
                                        && let Some((start, failover)) = usize::try_from(a)
                                            .ok()
                                            .and_then(|a| activation_start.get_mut(a))
                                            .and_then(Option::take)
                                    {
                                        let took = o.t - start;
                                        if failover {
                                            c.failover_completion_ms.push(took);
                                            let wait = enable_issued[o.dev as usize]
                                                .map_or(0, |at| (at - start).clamp(0, took));
                                            c.failover_done.push((o.dev, took, wait));
                                            bucket.failovers_done += 1;
                                        } else {
                                            c.return_completion_ms.push(took);
                                            c.return_done.push((o.dev, took));
                                            bucket.returns_done += 1;
                                        }
                                    }
                                }
                                RegistrationOutcome::Rejected { .. } => bucket.rejected += 1,
                                RegistrationOutcome::NoResponse => bucket.no_response += 1,
                            }
                        }
                        c.events.push(event(kind, activation));
                    }
                }
            }
            t = end;
            if t - bucket.start >= bucket_ms || t >= duration {
                let present: u64 = shards.iter().map(Shard::present).sum();
                let attached: i64 = (0..network.carriers())
                    .map(|k| load.attached_to(k as u8))
                    .sum();
                bucket.without_service = present.saturating_sub(attached.max(0) as u64);
                bucket.attached = (0..network.carriers())
                    .map(|k| load.attached_to(k as u8).max(0) as u64)
                    .collect();
                let next = Bucket::new(t, network.carriers());
                c.buckets.push(std::mem::replace(&mut bucket, next));
            }
            if t - last_progress >= 60_000 || t >= duration {
                last_progress = t;
                let without_service = c.buckets.last().map_or(0, |b| b.without_service);
                progress(&Progress {
                    sim_ms: t,
                    duration_ms: duration,
                    without_service,
                    switches: c.failovers + c.returns,
                });
            }
        }
        Ok(())
    })?;
    let loop_s = loop_started.elapsed().as_secs_f64();
    let post_started = Instant::now();
    for (name, n) in actions_by_command {
        *c.actions_by_command.entry(name.to_owned()).or_default() += n;
    }
    for s in &mut shards {
        let open = s.close_bad_apns(duration);
        c.bad_apn_at_end.extend(open);
        c.bad_apn_exposure.extend_from_slice(&s.bad_apn_exposure);
    }
    c.bad_apn_exposure.sort_unstable();
    c.bad_apn_at_end.sort_unstable();
    c.rollouts = rollout_ids
        .iter()
        .filter_map(|(name, id)| fleet.rollout(*id).map(|r| RolloutOutcome::of(name, r)))
        .collect();
    c.duration_ms = duration;
    c.comparisons = crate::compare::measure(scenario, &population, &c, &dict);
    for s in &shards {
        let (signed, pending) = s.notifications();
        c.notifications.signed += signed;
        c.notifications.pending_at_end += pending;
        c.notifications.handed_on += s.notification_wait_ms.len() as u64;
        c.notification_wait_ms
            .extend_from_slice(&s.notification_wait_ms);
        c.cards_made += s.cards_made;
        c.downloads += s.downloads_done;
        c.download_completion_ms.extend_from_slice(&s.download_ms);
        for (cause, n) in &s.download_failures {
            *c.download_failures.entry(cause.clone()).or_default() += n;
        }
        for (name, n) in &s.unserved {
            *c.unserved.entry((*name).to_owned()).or_default() += n;
        }
    }
    c.ec = factory.ec.get();
    c.dictionary = dict;
    c.setup_s = setup_s;
    c.loop_s = loop_s;
    c.shards_s = shards_s;
    c.control_s = (loop_s - shards_s).max(0.0);
    c.duration_ms = duration;
    // The run's world (a million devices' eUICCs, eIM and fleet state) is
    // freed on another thread while the caller computes the metrics.
    let world = (
        shards, fleet, population, downloads, factory, eids, positions,
    );
    if threads > 1 {
        std::thread::spawn(move || drop(world));
    } else {
        drop(world);
    }
    c.metrics_s = post_started.elapsed().as_secs_f64();
    Ok(c)
}

/// The fleet with every device of `population` as deployed: primary
/// enabled and working, fallback staged with the attribute; and each
/// device's position in the fleet by device number ([`NOT_IN_FLEET`] for
/// phones).
fn deployed_fleet(
    catalog: Catalog,
    fleet_config: &FleetConfig,
    population: &Population,
    scenario: &Scenario,
) -> Result<(Fleet, Vec<u32>), SimError> {
    let mut fleet = Fleet::new(catalog, Timestamp(T0));
    let mut positions = Vec::with_capacity(population.len());
    for n in 0..population.len() as u32 {
        let d = population.device(n);
        if d.consumer {
            // Phones are not fleet devices.
            positions.push(NOT_IN_FLEET);
            continue;
        }
        positions.push(u32::try_from(fleet.len()).unwrap_or(NOT_IN_FLEET));
        let group = fleet_config
            .groups
            .iter()
            .find(|g| g.name == population.group(d.mix))
            .ok_or_else(|| SimError::Fleet("group vanished".into()))?;
        let vendor = population.vendor(d.vendor);
        let mut profiles = vec![KnownProfile {
            iccid: d.profiles[0].0.clone(),
            profile_type: Some(group.primary.clone()),
            enabled: true,
            fallback_attribute: false,
            works: true,
        }];
        if let (Some(f), Some(p)) = (&group.fallback, d.profiles.get(1)) {
            profiles.push(KnownProfile {
                iccid: p.0.clone(),
                profile_type: Some(f.clone()),
                enabled: false,
                fallback_attribute: true,
                works: false,
            });
        }
        let spec = DeviceSpec {
            eid: d.eid,
            group: group.name.clone(),
            vendor: vendor.name.clone(),
            model: vendor.model.clone(),
            firmware: vendor.firmware.clone(),
            region: Some(scenario.areas[usize::from(d.area)].name.clone()),
            tags: vec![],
            capabilities: Some(Capabilities {
                sgp32_version: Version([1, 2, 0]),
                fallback_supported: true,
                rollback_supported: true,
                ipa_features: 0,
                ipa_protocols: 1,
            }),
            profiles,
        };
        fleet
            .add_device(&spec, Timestamp(T0))
            .map_err(|e| SimError::Fleet(e.to_string()))?;
    }
    Ok((fleet, positions))
}

/// The position of a device that is not in the fleet (a phone).
const NOT_IN_FLEET: u32 = u32::MAX;

/// The telemetry dimensions of device `n` as the fleet has them now
/// (none for a phone).
fn fleet_dims(fleet: &Fleet, positions: &[u32], n: u32) -> Dims {
    positions
        .get(n as usize)
        .and_then(|&p| fleet.dims_at(p))
        .unwrap_or_default()
}

/// Every device's EID by device number, made once ([`Population::eid`]
/// builds and checks one; the control plane needs one per event, report,
/// result and action).
struct Eids(Vec<ferrosim_ids::Eid>);

impl Eids {
    /// The EIDs of devices `0..devices`.
    fn of(devices: u32) -> Self {
        Self((0..devices).map(Population::eid).collect())
    }

    /// The EID of device `n` (of the run).
    fn get(&self, n: u32) -> ferrosim_ids::Eid {
        self.0
            .get(n as usize)
            .copied()
            .unwrap_or_else(|| Population::eid(n))
    }

    /// The number of the run's device with this EID, as
    /// [`Population::index_of`].
    fn index_of(&self, eid: &ferrosim_ids::Eid) -> Option<u32> {
        let n = Population::number_in(eid)?;
        (self.0.get(n as usize) == Some(eid)).then_some(n)
    }
}

/// What the shards read and do not change during the loop (all of
/// [`Ctx`] but the load, which changes between windows).
struct Env<'a> {
    network: &'a Network,
    population: &'a Population,
    factory: &'a Factory,
    downloads: Option<&'a Downloads>,
    apn_served: &'a [bool],
    type_carrier: &'a [Option<u8>],
}

impl Env<'_> {
    /// The shards' context for a window that starts with `load`.
    fn ctx<'b>(&'b self, load: &'b Load) -> Ctx<'b> {
        Ctx {
            network: self.network,
            load,
            population: self.population,
            factory: self.factory,
            downloads: self.downloads,
            t0: T0,
            apn_served: self.apn_served,
            type_carrier: self.type_carrier,
        }
    }
}

/// One window of some shards, for a worker: the shards move to it and
/// back ([`Done`]).
struct Job {
    shards: Vec<Shard>,
    start: i64,
    end: i64,
    load: Load,
}

/// A worker's answer: its shards back, and how their window went.
struct Done {
    shards: Vec<Shard>,
    result: Result<(), SimError>,
}

/// The worker threads that run shards' windows beside the calling thread,
/// started once per run (not a thread per shard per window). A window's
/// shards are split in the same chunks on any run, and their order is kept,
/// so the pool changes nothing in the result.
struct Pool {
    workers: Vec<(mpsc::Sender<Job>, mpsc::Receiver<Done>)>,
}

impl Pool {
    /// `n` workers in `scope`, reading `env`.
    fn start<'scope, 'env: 'scope>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        n: usize,
        env: &'env Env<'env>,
    ) -> Self {
        let workers = (0..n)
            .map(|_| {
                let (jobs, job_rx) = mpsc::channel::<Job>();
                let (done_tx, done) = mpsc::channel::<Done>();
                scope.spawn(move || {
                    while let Ok(Job {
                        mut shards,
                        start,
                        end,
                        load,
                    }) = job_rx.recv()
                    {
                        let ctx = env.ctx(&load);
                        let result = shards
                            .iter_mut()
                            .try_for_each(|s| s.run_window(start, end, &ctx));
                        if done_tx.send(Done { shards, result }).is_err() {
                            break;
                        }
                    }
                });
                (jobs, done)
            })
            .collect();
        Self { workers }
    }

    /// Runs the window `[start, end)` of every shard: the first chunk of
    /// shards on this thread, the others on the workers (all on this
    /// thread when at most one shard has work in it).
    fn run(
        &self,
        shards: &mut Vec<Shard>,
        start: i64,
        end: i64,
        load: &Load,
        env: &Env<'_>,
    ) -> Result<(), SimError> {
        let ctx = env.ctx(load);
        let busy = shards.iter().filter(|s| s.has_work_before(end)).count();
        if self.workers.is_empty() || busy <= 1 {
            return shards
                .iter_mut()
                .try_for_each(|s| s.run_window(start, end, &ctx));
        }
        let per = shards.len().div_ceil(self.workers.len() + 1);
        let mut rest = shards.split_off(per.min(shards.len()));
        let mut sent = 0;
        for (jobs, _) in &self.workers {
            if rest.is_empty() {
                break;
            }
            let tail = rest.split_off(per.min(rest.len()));
            let chunk = std::mem::replace(&mut rest, tail);
            jobs.send(Job {
                shards: chunk,
                start,
                end,
                load: load.clone(),
            })
            .map_err(|_| SimError::Device("a shard thread ended".into()))?;
            sent += 1;
        }
        let mut result = Ok(());
        for s in shards.iter_mut() {
            if let Err(e) = s.run_window(start, end, &ctx) {
                result = Err(e);
            }
        }
        for (_, done) in &self.workers[..sent] {
            let Done {
                shards: back,
                result: r,
            } = done
                .recv()
                .map_err(|_| SimError::Device("a shard thread panicked".into()))?;
            shards.extend(back);
            if let Err(e) = r {
                result = Err(e);
            }
        }
        result
    }
}

/// An ES2+ call's round trip between the fleet and an SM-DP+ (HTTPS
/// between two data centres), besides the SM-DP+'s own time.
const ES2_ROUND_TRIP_MS: i64 = 100;

/// The fleet's ES2+ calls at the scenario's SM-DP+.
struct Es2<'a> {
    downloads: Option<&'a Downloads>,
    carriers: &'a [String],
    profile_types: &'a [(String, String, Option<u8>)],
    took_ms: i64,
}

impl Es2<'_> {
    /// Carries out `a` (downloadOrder or confirmOrder) at `t`: its result
    /// and the ES2+ step for telemetry, stamped when the answer arrives.
    fn call(
        &self,
        t: i64,
        n: u32,
        a: &Action,
        events: &mut Vec<Event>,
        dims: Dims,
    ) -> Vec<crate::shard::Out> {
        let now = Timestamp(T0 + t);
        let call = format!("fleet-{}", a.id.0);
        let (function, outcome) = match (&a.command, self.downloads) {
            (_, None) => (Function::Es2DownloadOrder, Err("no SM-DP+".to_owned())),
            (Command::Es2DownloadOrder { profile_type, .. }, Some(d)) => {
                let (carrier, name, _) = &self.profile_types[profile_type.index()];
                (
                    Function::Es2DownloadOrder,
                    d.fleet_order(carrier, name, &call, now)
                        .map(|iccid| Outcome::OrderReserved { iccid }),
                )
            }
            (Command::Es2ConfirmOrder { carrier, iccid, .. }, Some(d)) => (
                Function::Es2ConfirmOrder,
                d.fleet_confirm(&self.carriers[carrier.index()], iccid, &call, now)
                    .and_then(|m| {
                        ferrosim_ids::MatchingId::new(&m)
                            .map(|matching_id| Outcome::OrderConfirmed { matching_id })
                            .map_err(|e| e.to_string())
                    }),
            ),
            _ => (Function::Es2DownloadOrder, Err("not ES2+".to_owned())),
        };
        let at = t + self.took_ms;
        let status = match &outcome {
            Ok(_) => StepStatus::Ok,
            Err(code) => code
                .parse::<StatusCode>()
                .map_or(StepStatus::Unreachable, StepStatus::Failed),
        };
        events.push(Event {
            at: ferrosim_telemetry::Timestamp(T0 + at),
            activation: a.correlation(),
            device: a.device,
            source: Source::Smdp,
            dims,
            kind: EventKind::Step {
                function,
                status,
                duration_ms: u32::try_from(self.took_ms).unwrap_or(u32::MAX),
                signalling_bytes: 0,
                bpp_bytes: 0,
            },
        });
        let outcome = outcome.unwrap_or_else(|code| Outcome::Failed {
            failure: match code.parse::<StatusCode>() {
                Ok(code) => Failure::Es2 { code },
                Err(()) => Failure::Unreachable,
            },
            retryable: true,
        });
        vec![crate::shard::Out {
            t: at,
            dev: n,
            kind: OutKind::Result(ActionResult {
                id: a.id,
                device: a.device,
                outcome,
            }),
        }]
    }
}
