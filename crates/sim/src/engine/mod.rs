//! The run: shards advanced in lockstep windows, the control plane (fleet
//! and telemetry) beside them, one window behind.
//!
//! Each window `[T, T+W)`: the shards run in parallel (each its devices'
//! events before `T+W`, the actions the fleet decided at `T-W`, the eIM
//! exchanges of its devices) while the control plane hands the previous
//! window's outputs, merged in (time, device) order, to the fleet with
//! their times (reports, action results) and to the telemetry log, and the
//! fleet polls at `T`; its actions go to the shards of their devices for
//! the next window. The
//! shard count is a run parameter (not the machine's core count), so the
//! same scenario, seed and shard count give the same report on any machine.

use std::time::Instant;

use ferrosim_crypto::ec_cost;
use ferrosim_fleet::config::FleetConfig;
use ferrosim_fleet::device::{Capabilities, DeviceSpec, KnownProfile, Version};
use ferrosim_fleet::{Catalog, Fleet};
use ferrosim_ids::Timestamp;
use ferrosim_telemetry::{Dictionary, Dims};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::consumer::Downloads;
use crate::error::SimError;
use crate::iot::Factory;
use crate::network::{AreaIx, Load, Network};
use crate::population::{DeviceSeed, EID_PREFIX, Population};
use crate::report::{Collected, RolloutOutcome};
use crate::scenario::Scenario;
use crate::shard::Shard;

mod control;
mod pool;

pub(crate) use control::sort_outs;
use control::{Control, Es2};
use pool::{Env, Pool, Runner};

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
///
/// The steps: setup (`World::new`: population, SM-DP+ and its orders;
/// `World::fleet_and_shards`: the deployed fleet and the shards), then per
/// window `Pool::run` (the shards' window, in parallel, on the `Runner`'s
/// thread) and beside it the control plane one window behind
/// (`Control::apply`: the previous window's outputs put in order and
/// handed to the fleet and the telemetry log; `Control::end_window`: time
/// series, progress; `Control::begin_window` and `Control::decide`: the
/// fleet's decisions at the window's start), then `Control::collect` (the
/// window's outputs taken, the load added up) and `Control::deliver` (the
/// actions decided, to the shards for the next window); and at the end `finish` (the run's figures gathered
/// from the shards and the fleet).
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
    let (world, catalog, seeds) = World::new(scenario, devices, seed, threads)?;
    let (fleet, positions, mut shards, eids) =
        world.fleet_and_shards(catalog, &seeds, scenario, options, seed)?;
    drop(seeds);
    let mut load = Load::new(world.network.carriers(), world.network.areas());
    for s in &shards {
        load.merge(&s.load_delta);
    }
    let es2 = Es2::new(
        world.downloads.as_ref(),
        world.carrier_names.clone(),
        world.profile_types.clone(),
        &world.population,
    );
    let mut control = Control::new(
        scenario,
        fleet,
        positions,
        eids,
        StdRng::seed_from_u64(seed ^ 0x464c_4545_5400_0000),
        world.dict.clone(),
        Collected::new(
            scenario,
            devices,
            seed,
            options.shards,
            threads,
            &world.network,
        ),
        load,
        es2,
        world.network.carriers(),
        devices,
    );
    let setup_s = started.elapsed().as_secs_f64();

    let loop_started = Instant::now();
    let duration = scenario.scenario.duration.millis_i64();
    let window = scenario.scenario.window.millis_i64();
    let env = world.env();
    let (mut shards_s, mut control_s) = (0.0, 0.0);
    // EC timing rounds on as many threads as run the shards, now and then
    // (`SAMPLE_EVERY` of wall time), between two windows while nothing
    // else of the run works, for the run's bound: they change nothing in
    // the run's result.
    let mut ec_samples = ec_cost::Batches::default();
    let mut last_sample = Instant::now();
    std::thread::scope(|scope| -> Result<(), SimError> {
        // The shards' windows run on a thread of their own (with the
        // pool's workers) when the run has two threads, so that the
        // control plane works beside them; on one thread, one after the
        // other, with the same result.
        let runner = (threads > 1).then(|| Runner::start(scope, threads - 1, &env));
        let serial = Pool::start(scope, 0, &env);
        // The previous window's outputs and the devices present after it.
        let mut previous: Option<(control::Window, u64)> = None;
        let mut t = 0;
        while t < duration {
            let end = (t + window).min(duration);
            if last_sample.elapsed() >= SAMPLE_EVERY {
                ec_samples.extend(ec_cost::sample_on(threads).unwrap_or_default());
                last_sample = Instant::now();
            }
            // The shards' window [t, end), with the actions the fleet
            // decided at the previous window's start.
            match &runner {
                Some(r) => r.send(std::mem::take(&mut shards), t, end, control.load.clone())?,
                None => {
                    let started = Instant::now();
                    serial.run(&mut shards, t, end, &control.load, &env)?;
                    shards_s += started.elapsed().as_secs_f64();
                }
            }
            // Meanwhile the control plane: the previous window's outputs,
            // then the fleet's decisions at this window's start.
            let started = Instant::now();
            if let Some((outs, present)) = previous.take() {
                control.apply(outs)?;
                control.end_window(t, duration, present, progress);
            }
            control.begin_window(t, end)?;
            control.decide(t)?;
            control_s += started.elapsed().as_secs_f64();
            if let Some(r) = &runner {
                let ran = r.recv()?;
                shards = ran.shards;
                shards_s += ran.took_s;
                ran.result?;
            }
            // Between the windows only what the next one needs: the
            // outputs taken (put in order beside it), the load added up and
            // the actions delivered.
            let started = Instant::now();
            let outs = control.collect(&mut shards, end);
            let present = shards.iter().map(Shard::present).sum();
            control.deliver(&mut shards);
            previous = Some((outs, present));
            control_s += started.elapsed().as_secs_f64();
            t = end;
        }
        if let Some((outs, present)) = previous.take() {
            let started = Instant::now();
            control.apply(outs)?;
            control.end_window(t, duration, present, progress);
            control_s += started.elapsed().as_secs_f64();
        }
        Ok(())
    })?;
    let loop_s = loop_started.elapsed().as_secs_f64();

    let post_started = Instant::now();
    let (mut c, fleet) = finish(scenario, control, &mut shards, &world, duration);
    c.setup_s = setup_s;
    c.loop_s = loop_s;
    c.shards_s = shards_s;
    c.control_s = control_s;
    c.ec_samples = ec_samples;
    // The run's world (a million devices' eUICCs, eIM and fleet state) is
    // freed on another thread while the caller computes the metrics.
    let world = (shards, fleet, world);
    if threads > 1 {
        std::thread::spawn(move || drop(world));
    } else {
        drop(world);
    }
    c.metrics_s = post_started.elapsed().as_secs_f64();
    Ok(c)
}

/// What a run reads and does not change: the scenario's network and
/// population, the eUICC factory (with the eIM), the SM-DP+ with the
/// consumer phones' orders, and the fleet catalog's tables.
struct World {
    dict: Dictionary,
    fleet_config: FleetConfig,
    network: Network,
    population: Population,
    factory: Factory,
    downloads: Option<Downloads>,
    /// Per APN setting of the catalog: whether its carrier's core serves it.
    apn_served: Vec<bool>,
    /// Each catalog profile type: its carrier's name, the SM-DP+'s name
    /// for it, and the carrier's network.
    profile_types: Vec<(String, String, Option<u8>)>,
    /// Each catalog profile type's carrier network.
    type_carrier: Vec<Option<u8>>,
    /// The catalog's carriers' names.
    carrier_names: Vec<String>,
}

impl World {
    /// The world of `scenario` with `devices` devices and `seed`: the
    /// population, and the SM-DP+ with the consumer phones' orders placed
    /// before the event (and the fleet's ES2+ orders during it); the fleet
    /// catalog, for the fleet; and every device's seed, made once on
    /// `threads` threads ([`seeds`]), for the fleet and the shards.
    fn new(
        scenario: &Scenario,
        devices: u32,
        seed: u64,
        threads: usize,
    ) -> Result<(Self, Catalog, Vec<DeviceSeed>), SimError> {
        let fleet_text = scenario.fleet_toml();
        let fleet_config =
            FleetConfig::from_toml(&fleet_text).map_err(|e| SimError::Fleet(e.to_string()))?;
        let dict = Dictionary::new();
        let catalog = Catalog::from_toml(&fleet_text, dict.clone())
            .map_err(|e| SimError::Fleet(e.to_string()))?;
        let network = Network::new(scenario);
        let population = Population::new(scenario, &fleet_config, &network, devices, seed)?;
        let seeds = seeds(&population, threads);
        let factory = Factory::new(EID_PREFIX)?;
        let consumer: Vec<bool> = if population.has_consumers() {
            seeds.iter().map(|d| d.consumer).collect()
        } else {
            Vec::new()
        };
        let downloads = Some(Downloads::new(&factory, &consumer, seed, Timestamp(T0))?);
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
        let type_carrier = profile_types.iter().map(|t| t.2).collect();
        let carrier_names = catalog.carriers.iter().map(|c| c.name.clone()).collect();
        let world = Self {
            dict,
            fleet_config,
            network,
            population,
            factory,
            downloads,
            apn_served,
            profile_types,
            type_carrier,
            carrier_names,
        };
        Ok((world, catalog, seeds))
    }

    /// The fleet with every device deployed (and each device's position in
    /// it), the shards, and the devices' EIDs (the control plane names a
    /// device by EID in every event, report and result it hands on), all
    /// from the devices' `seeds` (by device number). The fleet is made on
    /// this thread and the shards on another when the run has two threads:
    /// each only reads the population and the seeds, so the result does
    /// not depend on which is done first.
    #[allow(clippy::type_complexity)]
    fn fleet_and_shards(
        &self,
        catalog: Catalog,
        seeds: &[DeviceSeed],
        scenario: &Scenario,
        options: &RunOptions,
        seed: u64,
    ) -> Result<(Fleet, Vec<u32>, Vec<Shard>, Eids), SimError> {
        let window = scenario.scenario.window.millis_i64();
        let make_shards = || -> (Vec<Shard>, Eids) {
            let shards = (0..options.shards)
                .map(|i| {
                    Shard::new(
                        i,
                        options.shards,
                        &self.population,
                        seeds,
                        &self.network,
                        window as u64,
                        seed,
                    )
                })
                .collect();
            (shards, Eids::of(seeds))
        };
        let deploy = || {
            deployed_fleet(
                catalog,
                &self.fleet_config,
                &self.population,
                seeds,
                scenario,
            )
        };
        let (fleet, shards) = if options.shard_threads() > 1 {
            std::thread::scope(|scope| {
                let shards = scope.spawn(make_shards);
                let fleet = deploy();
                let shards = shards
                    .join()
                    .map_err(|_| SimError::Setup("a thread making the shards panicked".into()));
                (fleet, shards)
            })
        } else {
            let fleet = deploy();
            (fleet, Ok(make_shards()))
        };
        let ((fleet, positions), (shards, eids)) = (fleet?, shards?);
        Ok((fleet, positions, shards, eids))
    }

    /// What the shards read during the loop.
    fn env(&self) -> Env<'_> {
        Env {
            network: &self.network,
            population: &self.population,
            factory: &self.factory,
            downloads: self.downloads.as_ref(),
            apn_served: &self.apn_served,
            type_carrier: &self.type_carrier,
        }
    }
}

/// The end of the loop at `duration`: the run's figures gathered from the
/// shards (open bad-APN stretches closed, notifications, downloads, eUICCs
/// made), the fleet (rollouts as they ended) and the control plane, and
/// the scenario's comparisons measured; and the fleet, to be freed.
fn finish(
    scenario: &Scenario,
    control: Control<'_>,
    shards: &mut [Shard],
    world: &World,
    duration: i64,
) -> (Collected, Fleet) {
    let Control {
        mut c,
        fleet,
        dict,
        rollout_ids,
        actions_by_command,
        ..
    } = control;
    for (name, n) in actions_by_command {
        *c.actions_by_command.entry(name.to_owned()).or_default() += n;
    }
    for s in shards.iter_mut() {
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
    c.comparisons = crate::compare::measure(scenario, &world.population, &c, &dict);
    for s in shards.iter() {
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
    c.ec = world.factory.ec.get();
    c.dictionary = dict;
    (c, fleet)
}

/// Every device's seed by device number ([`Population::device`]), made
/// once for the fleet, the shards and the EID table, on two threads when
/// the run has two (each device's seed depends only on its number).
fn seeds(population: &Population, threads: usize) -> Vec<DeviceSeed> {
    let devices = population.len() as u32;
    let make = |range: std::ops::Range<u32>| -> Vec<DeviceSeed> {
        range.map(|n| population.device(n)).collect()
    };
    if threads < 2 || devices < 2 {
        return make(0..devices);
    }
    let half = devices / 2;
    std::thread::scope(|scope| {
        let upper = scope.spawn(|| make(half..devices));
        let mut seeds = make(0..half);
        // A panicking half panics here too, as it would on one thread.
        seeds.extend(
            upper
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e)),
        );
        seeds
    })
}

/// The fleet with every device of `population` (their `seeds`, by device
/// number) as deployed: primary enabled and working, fallback staged with
/// the attribute; and each device's position in the fleet by device number
/// ([`NOT_IN_FLEET`] for phones).
fn deployed_fleet(
    catalog: Catalog,
    fleet_config: &FleetConfig,
    population: &Population,
    seeds: &[DeviceSeed],
    scenario: &Scenario,
) -> Result<(Fleet, Vec<u32>), SimError> {
    let mut fleet = Fleet::new(catalog, Timestamp(T0));
    fleet.reserve(seeds.iter().filter(|d| !d.consumer).count());
    let mut positions = Vec::with_capacity(seeds.len());
    // The devices of one mix, vendor and area differ only in their EID and
    // ICCIDs: one spec each, made once and reused (no strings copied per
    // device).
    let mut specs: std::collections::HashMap<(u8, u8, AreaIx), DeviceSpec> =
        std::collections::HashMap::new();
    for d in seeds {
        if d.consumer {
            // Phones are not fleet devices.
            positions.push(NOT_IN_FLEET);
            continue;
        }
        positions.push(u32::try_from(fleet.len()).unwrap_or(NOT_IN_FLEET));
        let key = (d.mix, d.vendor, d.area);
        let spec = match specs.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(deployed_spec(fleet_config, population, scenario, d)?)
            }
        };
        spec.eid = d.eid;
        for (known, (iccid, _)) in spec.profiles.iter_mut().zip(&d.profiles) {
            known.iccid = iccid.clone();
        }
        fleet
            .add_device(spec, Timestamp(T0))
            .map_err(|e| SimError::Fleet(e.to_string()))?;
    }
    Ok((fleet, positions))
}

/// Device `d` (an IoT device of `population`) as deployed, for the fleet:
/// its group's primary enabled and working, the group's fallback staged
/// with the attribute.
fn deployed_spec(
    fleet_config: &FleetConfig,
    population: &Population,
    scenario: &Scenario,
    d: &DeviceSeed,
) -> Result<DeviceSpec, SimError> {
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
    Ok(DeviceSpec {
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
    })
}

/// How often (wall time) the loop takes a round of EC timing batches on
/// the run's threads ([`ec_cost::sample_on`], some 4 ms: about 0.2 % of
/// the run).
const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

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
    /// The EIDs of the devices whose `seeds` these are (by device number).
    fn of(seeds: &[DeviceSeed]) -> Self {
        Self(seeds.iter().map(|d| d.eid).collect())
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
