//! [`Fleet`]: the fleet control plane's decision core, sans-IO.
//!
//! Inputs go in with the time they arrived — device reports
//! ([`Fleet::handle_report`]), action results ([`Fleet::handle_result`]),
//! gate measurements ([`Fleet::handle_gate_metrics`]), operator commands
//! (outages, rollouts) — and only update state and mark the device for a
//! look. [`Fleet::poll`] then takes the decisions that are due at `now`
//! (randomness passed in), and the driver drains what they produced:
//! [`Fleet::poll_action`], [`Fleet::poll_decision`], [`Fleet::poll_event`],
//! [`Fleet::poll_gate_query`]; [`Fleet::next_wakeup`] says when to call
//! `poll` again. Per input the work is constant (a few table look-ups and,
//! at most, one heap operation); only rare fleet-wide events (an outage
//! starting, a rollout wave starting) scan the devices.
//!
//! The whole state is data: [`Fleet::snapshot`] and [`Fleet::restore`]
//! move it through a restart; actions that were in flight are issued again
//! with their ids, which drivers use to execute them once.

mod failover;
mod names;
pub mod reconcile;
mod reconfigure;
pub use reconcile as reconcile_step;
mod results;
mod revoke;
mod rollouts;
mod snapshot;
mod switching;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

use ferrosim_ids::{Eid, MatchingId, Timestamp};
use ferrosim_telemetry::{CorrelationId, Dims, Event, EventKind, Source};
use serde::{Deserialize, Serialize};

use crate::action::{Action, ActionId};
use crate::catalog::{CarrierId, Catalog, ProfileTypeId, RegionId, RuleId};
use crate::decision::{Decision, Reason, What};
use crate::device::{
    Capabilities, Desired, DeviceSpec, DeviceState, Health, Mode, Observed, ObservedProfile,
    PackedIccid, Secs, SwitchLog, Version, Work, flags,
};
use crate::error::FleetError;
use crate::gate::GateQuery;
use crate::limit::TokenBucket;
use crate::rollout::Rollout;
use crate::rules::Rule;

pub use failover::{RegionHealth, RegionState};
pub use names::Names;
pub use snapshot::Snapshot;

/// Where an ordered download stands for one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDownload {
    /// The profile type being downloaded.
    pub profile_type: ProfileTypeId,
    /// Its ICCID, once DownloadOrder reserved one.
    pub iccid: Option<ferrosim_ids::Iccid>,
    /// The matching id, once ConfirmOrder released the order.
    pub matching_id: Option<MatchingId>,
}

/// An action out with a driver.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Flight {
    device: u32,
    action: Action,
    deadline: Timestamp,
    /// Restored by a restart and not re-issued yet (it waits for a token
    /// of its rate limit): its re-issue gives the restart as reason.
    restart: bool,
}

/// The fleet's hash maps: keyed by EIDs, action ids and device positions
/// the engine made itself (no attacker chooses them), so a fast hasher
/// with a fixed seed, which also keeps any iteration order the same from
/// run to run.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// Kind of a switch-queue entry.
const Q_FAILOVER: u8 = 0;
const Q_RETURN: u8 = 1;
const Q_PROBE: u8 = 2;

/// The fleet's decision core. See the module documentation.
#[derive(Debug)]
pub struct Fleet {
    catalog: Arc<Catalog>,
    names: Names,
    devices: Vec<DeviceState>,
    index: FastMap<Eid, u32>,
    downloads: FastMap<u32, PendingDownload>,
    in_flight: FastMap<ActionId, Flight>,
    deadlines: BinaryHeap<Reverse<(Timestamp, ActionId)>>,
    es2_buckets: Vec<TokenBucket>,
    smdp_buckets: Vec<TokenBucket>,
    /// Per ES2+ bucket then per SM-DP+ bucket: the last slot handed to a
    /// device waiting for a token, so waiting devices wake one per token
    /// instead of all at every token.
    waiting_until: Vec<Timestamp>,
    switch_buckets: Vec<TokenBucket>,
    switch_limits: Vec<u32>,
    carrier_devices: Vec<u64>,
    carrier_ppm: Vec<u32>,
    rates_stale: bool,
    switch_queues: Vec<BinaryHeap<Reverse<(Timestamp, u32, u8)>>>,
    timers: BinaryHeap<Reverse<(Timestamp, u32)>>,
    dirty: Vec<u32>,
    dirty_bits: Vec<u64>,
    regions: FastMap<(CarrierId, u16), RegionHealth>,
    declared_everywhere: Vec<Option<Timestamp>>,
    healthy_everywhere_since: Vec<Timestamp>,
    on_fallback: FastMap<(CarrierId, u16), Vec<u32>>,
    rollouts: BTreeMap<u32, Rollout>,
    rollout_timers: BinaryHeap<Reverse<(Timestamp, u32)>>,
    next_action: u64,
    next_decision: u64,
    next_rollout: u32,
    next_activation: u64,
    actions: VecDeque<Action>,
    decisions: VecDeque<Decision>,
    events: VecDeque<Event>,
    gate_queries: VecDeque<GateQuery>,
}

/// Pops the front of an outgoing queue; once drained, a queue that grew
/// large (a fleet-wide outage, a rollout wave) gives its memory back.
fn pop_and_shrink<T>(q: &mut VecDeque<T>) -> Option<T> {
    let item = q.pop_front();
    // Only a queue far larger than a busy poll's keeps its memory from
    // being given back at every drain and grown again at the next.
    if item.is_none() && q.capacity() > 65_536 {
        q.shrink_to(4096);
    }
    item
}

/// The failover rule device `d` follows in `catalog`: its own (set by a
/// rollout) or its group's.
fn rule_in<'c>(catalog: &'c Catalog, d: &DeviceState) -> &'c Rule {
    let id: RuleId = d.desired.rule.unwrap_or(catalog.group(d.group).rule);
    catalog.rule(id)
}

/// Region key of a device without a region.
const NO_REGION: u16 = u16::MAX;

impl Fleet {
    /// An empty fleet on `catalog`, at `now`.
    pub fn new(catalog: Catalog, now: Timestamp) -> Self {
        let carriers = catalog.carriers.len();
        let es2_buckets = catalog
            .carriers
            .iter()
            .map(|c| TokenBucket::new(c.limits.es2_per_minute, c.limits.es2_burst, now))
            .collect();
        let smdp_buckets = catalog
            .smdps
            .iter()
            .map(|s| TokenBucket::new(s.downloads_per_minute, s.burst, now))
            .collect();
        let names = Names::new(catalog.dictionary().clone());
        let buckets = catalog.carriers.len() + catalog.smdps.len();
        Self {
            waiting_until: vec![Timestamp(i64::MIN); buckets],
            es2_buckets,
            smdp_buckets,
            switch_buckets: vec![TokenBucket::new(1, 1, now); carriers],
            switch_limits: vec![1; carriers],
            carrier_devices: vec![0; carriers],
            carrier_ppm: vec![1_000_000; carriers],
            rates_stale: true,
            switch_queues: vec![BinaryHeap::new(); carriers],
            declared_everywhere: vec![None; carriers],
            healthy_everywhere_since: vec![Timestamp(i64::MIN); carriers],
            catalog: Arc::new(catalog),
            names,
            devices: Vec::new(),
            index: FastMap::default(),
            downloads: FastMap::default(),
            in_flight: FastMap::default(),
            deadlines: BinaryHeap::new(),
            timers: BinaryHeap::new(),
            dirty: Vec::new(),
            dirty_bits: Vec::new(),
            regions: FastMap::default(),
            on_fallback: FastMap::default(),
            rollouts: BTreeMap::new(),
            rollout_timers: BinaryHeap::new(),
            next_action: 1,
            next_decision: 1,
            next_rollout: 1,
            next_activation: 1,
            actions: VecDeque::new(),
            decisions: VecDeque::new(),
            events: VecDeque::new(),
            gate_queries: VecDeque::new(),
        }
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Adds a failover rule to the catalog (an operator's REST call),
    /// checked like the TOML's. It is appended, so every id in the fleet's
    /// state keeps its meaning, and it becomes part of the configuration
    /// the fleet's state is stored with. No device uses it until a rollout
    /// of kind `rule` moves devices to it (staged and gated like any
    /// change).
    pub fn add_rule(&mut self, rule: crate::config::RuleConfig) -> Result<RuleId, FleetError> {
        if self.catalog.rule_id(&rule.name).is_some() {
            return Err(FleetError::DuplicateRule(rule.name));
        }
        let name = rule.name.clone();
        let mut config = self.catalog.config().clone();
        config.rules.push(rule);
        let catalog = Catalog::from_config(config, self.catalog.dictionary().clone())
            .map_err(|e| FleetError::InvalidRule(e.to_string()))?;
        let id = catalog
            .rule_id(&name)
            .ok_or_else(|| FleetError::InvalidRule(format!("rule {name:?} not in the catalog")))?;
        self.catalog = Arc::new(catalog);
        Ok(id)
    }

    /// The vendor/model/firmware name table.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether there is no device.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// One device.
    pub fn device(&self, eid: &Eid) -> Option<&DeviceState> {
        self.index.get(eid).map(|&i| &self.devices[i as usize])
    }

    /// Every device, in registration order.
    pub fn devices(&self) -> impl Iterator<Item = &DeviceState> {
        self.devices.iter()
    }

    /// A rollout.
    pub fn rollout(&self, id: u32) -> Option<&Rollout> {
        self.rollouts.get(&id)
    }

    /// Every rollout.
    pub fn rollouts(&self) -> impl Iterator<Item = &Rollout> {
        self.rollouts.values()
    }

    /// Actions out with drivers.
    pub fn in_flight(&self) -> impl Iterator<Item = &Action> {
        self.in_flight.values().map(|f| &f.action)
    }

    /// The download in progress for a device.
    pub fn pending_download(&self, eid: &Eid) -> Option<&PendingDownload> {
        self.index.get(eid).and_then(|i| self.downloads.get(i))
    }

    /// Health of a carrier in a region.
    pub fn region_health(
        &self,
        carrier: CarrierId,
        region: Option<RegionId>,
    ) -> Option<&RegionHealth> {
        self.regions
            .get(&(carrier, region.map_or(NO_REGION, |r| r.0)))
    }

    /// Switches allowed onto `carrier` in any minute, now.
    pub fn switch_rate(&mut self, carrier: CarrierId, now: Timestamp) -> u32 {
        self.refresh_rates(now);
        self.switch_limits[carrier.index()]
    }

    /// Makes room for `additional` more devices, so that adding a large
    /// fleet device by device ([`Fleet::add_device`]) does not grow its
    /// tables step by step (each step copying what is there).
    pub fn reserve(&mut self, additional: usize) {
        self.devices.reserve(additional);
        self.index.reserve(additional);
    }

    /// Registers a device; its desired state is its group's.
    pub fn add_device(&mut self, spec: &DeviceSpec, now: Timestamp) -> Result<(), FleetError> {
        let bad = |problem: String| FleetError::InvalidDevice {
            eid: spec.eid,
            problem,
        };
        if self.index.contains_key(&spec.eid) {
            return Err(FleetError::DuplicateDevice(spec.eid));
        }
        let cat = self.catalog.clone();
        let group = cat
            .group_id(&spec.group)
            .ok_or_else(|| bad(format!("unknown group {:?}", spec.group)))?;
        let region = match &spec.region {
            Some(r) => Some(
                cat.region_id(r)
                    .ok_or_else(|| bad(format!("unknown region {r:?}")))?,
            ),
            None => None,
        };
        let mut tags = 0u64;
        for t in &spec.tags {
            let bit = cat
                .tag_bit(t)
                .ok_or_else(|| bad(format!("unknown tag {t:?}")))?;
            tags |= 1 << bit;
        }
        let firmware_version = Version::parse(&spec.firmware)
            .ok_or_else(|| bad(format!("firmware {:?} is not a version", spec.firmware)))?;
        let mut observed = Observed::default();
        for p in &spec.profiles {
            let profile_type = match &p.profile_type {
                Some(r) => Some(cat.profile_type_id(r).ok_or_else(|| {
                    bad(format!(
                        "unknown profile type {}/{}@{}",
                        r.carrier, r.profile_type, r.version
                    ))
                })?),
                None => None,
            };
            let mut f = 0;
            if p.enabled {
                f |= flags::ENABLED;
            }
            if p.fallback_attribute {
                f |= flags::FALLBACK_ATTR;
            }
            if p.works {
                f |= flags::WORKS | flags::REGISTERED;
            }
            if !observed.insert(ObservedProfile {
                iccid: PackedIccid::new(&p.iccid),
                profile_type,
                flags: f,
            }) {
                return Err(bad(format!(
                    "more than {} profiles",
                    crate::device::MAX_PROFILES
                )));
            }
        }
        if observed.iter().filter(|p| p.has(flags::ENABLED)).count() > 1 {
            return Err(bad("more than one profile enabled".into()));
        }
        if observed
            .iter()
            .filter(|p| p.has(flags::FALLBACK_ATTR))
            .count()
            > 1
        {
            return Err(bad(
                "more than one profile with the fallback attribute".into()
            ));
        }
        let names = [&spec.vendor, &spec.model, &spec.firmware];
        let mut ids = [crate::device::NameId(0); 3];
        for (slot, name) in ids.iter_mut().zip(names) {
            *slot = self.names.intern(name).map_err(bad)?;
        }
        let g = cat.group(group);
        let desired = Desired {
            primary: g.primary,
            fallback: g.fallback,
            spare: None,
            mode: Mode::Primary,
            primary_apn: None,
            rule: None,
        };
        let idx = u32::try_from(self.devices.len()).map_err(|_| bad("fleet is full".into()))?;
        self.devices.push(DeviceState {
            eid: spec.eid,
            group,
            region,
            tags,
            vendor: ids[0],
            model: ids[1],
            firmware: ids[2],
            firmware_version,
            // Unknown until the IPA answers: nothing but the enable's
            // rollback flag (as a registration that leaves it out).
            caps: spec.capabilities.unwrap_or(Capabilities {
                rollback_supported: true,
                ..Capabilities::default()
            }),
            desired,
            observed,
            health: Health {
                last_data_ok: Secs::of(now),
                ..Health::default()
            },
            switches: SwitchLog::default(),
            mode_since: Secs::of(now),
            work: Work {
                read_caps: spec.capabilities.is_none(),
                ..Work::default()
            },
            rollout: None,
        });
        self.index.insert(spec.eid, idx);
        self.count_carriers(idx, 1);
        self.mark(idx);
        Ok(())
    }

    /// Takes the decisions due at `now`: timers, time-outs, switch queues,
    /// rollouts, and every device marked by an input since the last call.
    pub fn poll<R: rand::CryptoRng + ?Sized>(&mut self, now: Timestamp, rng: &mut R) {
        self.refresh_rates(now);
        self.expire_flights(now);
        while let Some(&Reverse((at, idx))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            self.mark(idx);
        }
        self.poll_rollouts(now);
        self.poll_probes(now);
        // Devices marked by inputs, by timers, or by the steps above; a
        // device marked again while being handled is handled in the next
        // round of this loop.
        while !self.dirty.is_empty() {
            let batch = std::mem::take(&mut self.dirty);
            for idx in batch {
                self.unmark(idx);
                self.evaluate(idx, now, rng);
            }
            self.drain_switch_queues(now);
        }
        self.drain_switch_queues(now);
        while !self.dirty.is_empty() {
            let batch = std::mem::take(&mut self.dirty);
            for idx in batch {
                self.unmark(idx);
                self.evaluate(idx, now, rng);
            }
        }
    }

    /// The next action for a driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        pop_and_shrink(&mut self.actions)
    }

    /// The next decision record (for the decision log).
    pub fn poll_decision(&mut self) -> Option<Decision> {
        pop_and_shrink(&mut self.decisions)
    }

    /// The next telemetry event the fleet produced (activation starts of
    /// failovers and rollout steps).
    pub fn poll_event(&mut self) -> Option<Event> {
        pop_and_shrink(&mut self.events)
    }

    /// The next gate measurement the fleet needs.
    pub fn poll_gate_query(&mut self) -> Option<GateQuery> {
        self.gate_queries.pop_front()
    }

    /// When `poll` has something to do next without new input.
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        let mut t: Option<Timestamp> = None;
        let mut consider = |x: Timestamp| t = Some(t.map_or(x, |t| t.min(x)));
        if let Some(Reverse((at, _))) = self.timers.peek() {
            consider(*at);
        }
        if let Some(Reverse((at, _))) = self.deadlines.peek() {
            consider(*at);
        }
        if let Some(Reverse((at, _))) = self.rollout_timers.peek() {
            consider(*at);
        }
        for (c, q) in self.switch_queues.iter().enumerate() {
            if let Some(Reverse((at, _, _))) = q.peek() {
                let mut b = self.switch_buckets[c];
                let when = match b.try_take(*at) {
                    Ok(()) => *at,
                    Err(next) => next,
                };
                consider(when);
            }
        }
        for h in self.regions.values() {
            if let Some(p) = h.next_probe {
                consider(p);
            }
        }
        if !self.dirty.is_empty() {
            consider(Timestamp(i64::MIN));
        }
        t
    }

    /// Telemetry dimensions of a device (carrier of its enabled profile or
    /// of its desired active one).
    pub fn dims(&self, eid: &Eid) -> Option<Dims> {
        let d = self.device(eid)?;
        Some(self.dims_of(d))
    }

    /// Telemetry dimensions of the device at `position` in registration
    /// order (as [`Fleet::devices`] lists them), as [`Fleet::dims`]: for
    /// drivers that number their devices the way they registered them and
    /// read dimensions for every event they log.
    pub fn dims_at(&self, position: u32) -> Option<Dims> {
        let d = self.devices.get(position as usize)?;
        Some(self.dims_of(d))
    }

    fn dims_of(&self, d: &DeviceState) -> Dims {
        let t = d
            .observed
            .enabled()
            .and_then(|p| p.profile_type)
            .unwrap_or(d.desired.active());
        let carrier = self.catalog.carrier(self.catalog.carrier_of(t));
        let (rollout, wave) = match d.rollout {
            Some(m) => (
                self.rollouts
                    .get(&m.rollout)
                    .and_then(|r| self.names.rollout_sym(&r.spec.name)),
                Some(u16::from(m.wave) + 1),
            ),
            None => (None, None),
        };
        Dims {
            carrier: Some(carrier.sym),
            smdp: Some(self.catalog.smdps[carrier.smdp.index()].sym),
            vendor: self.names.sym(d.vendor),
            model: self.names.sym(d.model),
            firmware: self.names.sym(d.firmware),
            group: Some(self.catalog.group(d.group).sym),
            rollout,
            wave,
        }
    }

    // ---- helpers shared by the submodules ----

    fn rule_of(&self, d: &DeviceState) -> &Rule {
        rule_in(&self.catalog, d)
    }

    fn mark(&mut self, idx: u32) {
        let (w, b) = ((idx / 64) as usize, idx % 64);
        if self.dirty_bits.len() <= w {
            self.dirty_bits.resize(w + 1, 0);
        }
        if self.dirty_bits[w] & (1 << b) == 0 {
            self.dirty_bits[w] |= 1 << b;
            self.dirty.push(idx);
        }
    }

    fn unmark(&mut self, idx: u32) {
        let (w, b) = ((idx / 64) as usize, idx % 64);
        if let Some(word) = self.dirty_bits.get_mut(w) {
            *word &= !(1 << b);
        }
    }

    fn wake_at(&mut self, idx: u32, at: Timestamp) {
        self.timers.push(Reverse((at, idx)));
    }

    fn decide(
        &mut self,
        now: Timestamp,
        device: Option<Eid>,
        rollout: Option<u32>,
        what: What,
        reason: Reason,
    ) {
        let seq = self.next_decision;
        self.next_decision += 1;
        self.decisions.push_back(Decision {
            seq,
            at: now,
            device,
            rollout,
            what,
            reason,
        });
    }

    fn new_activation(
        &mut self,
        idx: u32,
        kind: ferrosim_telemetry::ActivationKind,
        now: Timestamp,
    ) {
        let id = self.next_activation;
        self.next_activation += 1;
        self.devices[idx as usize].work.activation = id;
        let d = &self.devices[idx as usize];
        let event = Event {
            at: ferrosim_telemetry::Timestamp(now.millis()),
            activation: CorrelationId::new(id),
            device: d.eid,
            source: Source::Fleet,
            dims: self.dims_of(d),
            kind: EventKind::ActivationStarted { kind, iot: true },
        };
        self.events.push_back(event);
    }

    /// Adds `delta` to the device counts of the carriers a device's desired
    /// state names (the base of the switch-rate fractions).
    fn count_carriers(&mut self, idx: u32, delta: i64) {
        let d = self.devices[idx as usize].desired;
        let ppm = self.rule_of(&self.devices[idx as usize]).fraction_ppm;
        let mut seen: [Option<CarrierId>; 3] = [None; 3];
        for (i, t) in [Some(d.primary), d.fallback, d.spare]
            .into_iter()
            .enumerate()
        {
            let Some(t) = t else { continue };
            let c = self.catalog.carrier_of(t);
            if seen.contains(&Some(c)) {
                continue;
            }
            seen[i] = Some(c);
            let n = &mut self.carrier_devices[c.index()];
            *n = n.saturating_add_signed(delta);
            if delta > 0 {
                self.carrier_ppm[c.index()] = self.carrier_ppm[c.index()].min(ppm);
            }
        }
        self.rates_stale = true;
    }

    fn refresh_rates(&mut self, now: Timestamp) {
        if !self.rates_stale {
            return;
        }
        self.rates_stale = false;
        for c in 0..self.catalog.carriers.len() {
            let n = self.carrier_devices[c];
            let by_fraction = u32::try_from(
                (u128::from(n) * u128::from(self.carrier_ppm[c])).div_ceil(1_000_000),
            )
            .unwrap_or(u32::MAX)
            .max(1);
            let absolute = self.catalog.carriers[c].limits.switches_per_minute;
            let limit = if absolute > 0 {
                by_fraction.min(absolute)
            } else {
                by_fraction
            };
            // Up to 60 a minute, switches are spaced evenly (burst 1). Above,
            // a driver polling every second or so must be able to release a
            // second's worth at once: the burst is one second of the limit
            // and the steady rate the rest, so that no minute ever sees more
            // than the limit (burst + rate = limit).
            let (rate, burst) = if limit > 60 {
                let burst = limit.div_ceil(60);
                (limit - burst, burst)
            } else {
                (limit, 1)
            };
            self.switch_buckets[c].reshape(rate, burst, now);
            self.switch_limits[c] = limit;
        }
    }

    fn region_key(d: &DeviceState) -> u16 {
        d.region.map_or(NO_REGION, |r| r.0)
    }
}
