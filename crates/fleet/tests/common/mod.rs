//! A small world for the fleet tests: a driver that executes the fleet's
//! actions against modelled SM-DP+s, an eIM and devices, and devices that
//! report their connectivity from their carriers' state. Everything runs in
//! virtual time with a seeded random number generator.
//!
//! The model is deliberately simple and explicit: a device registers when
//! its enabled profile's carrier is up (in its region); its data path works
//! when it registered and its agent has a correct APN for that profile (the
//! fixture's `iot-typo` APN is wrong: it names a domain that does not
//! exist); an enable with rollback reverts when the new profile's carrier is
//! down.

#![allow(dead_code, clippy::unwrap_used)] // shared by several test files

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ferrosim_fleet::action::{Failure, ListedProfile, PsmoError};
use ferrosim_fleet::catalog::{ApnId, CarrierId, MccMnc, ProfileTypeId};
use ferrosim_fleet::device::{Capabilities, DeviceSpec, Version};
use ferrosim_fleet::report::{Registration, ReportKind, SwitchCause};
use ferrosim_fleet::{
    Action, ActionResult, Catalog, Command, Decision, DeviceReport, Fleet, Outcome,
};
use ferrosim_ids::{Eid, Iccid, MatchingId, Timestamp};
use ferrosim_telemetry::metrics::compute;
use ferrosim_telemetry::{
    CorrelationId, Dictionary, EuiccOutcome, Event, EventKind, EventQuery, MemTelemetryStore,
    ProfileKey, RegistrationOutcome, Source,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

pub const EXAMPLE: &str = include_str!("../../testdata/fleet.toml");
/// 2026-12-01T00:00:00Z.
pub const T0: i64 = 1_796_083_200_000;

pub fn eid(n: u32) -> Eid {
    Eid::from_body(&format!("8904903200000000000000{n:08}")).unwrap()
}

pub fn caps(fallback: bool) -> Capabilities {
    Capabilities {
        sgp32_version: Version([1, 2, 0]),
        fallback_supported: fallback,
        rollback_supported: true,
        ipa_features: 0b10,
        ipa_protocols: 0b1,
    }
}

pub fn spec(n: u32, group: &str, region: &str) -> DeviceSpec {
    DeviceSpec {
        eid: eid(n),
        group: group.into(),
        vendor: "acme".into(),
        model: "m1".into(),
        firmware: "2.1.0".into(),
        region: Some(region.into()),
        tags: vec!["meter".into()],
        capabilities: Some(caps(true)),
        profiles: Vec::new(),
    }
}

/// A profile on a simulated eUICC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimProfile {
    pub iccid: Iccid,
    pub profile_type: ProfileTypeId,
    pub enabled: bool,
    pub fallback: bool,
}

/// A device as the world sees it.
#[derive(Debug, Clone, Default)]
pub struct SimDevice {
    pub region: String,
    pub profiles: Vec<SimProfile>,
    pub apn: Option<(Iccid, ApnId)>,
    /// What its IPA reports when asked (`None`: it answers without
    /// EUICCInfo2).
    pub ipa_caps: Option<Capabilities>,
}

impl SimDevice {
    pub fn enabled(&self) -> Option<&SimProfile> {
        self.profiles.iter().find(|p| p.enabled)
    }

    fn enable(&mut self, iccid: &Iccid) -> bool {
        if !self.profiles.iter().any(|p| &p.iccid == iccid) {
            return false;
        }
        for p in &mut self.profiles {
            p.enabled = &p.iccid == iccid;
        }
        true
    }
}

pub struct World {
    pub fleet: Fleet,
    pub now: Timestamp,
    pub rng: StdRng,
    /// Carriers down, per region name ("*" for every region).
    pub down: HashSet<(CarrierId, String)>,
    pub devices: HashMap<Eid, SimDevice>,
    pub next_iccid: u64,
    pub iccid_types: HashMap<Iccid, ProfileTypeId>,
    pub telemetry: MemTelemetryStore,
    pub dict: Dictionary,
    /// Every action issued, with its time.
    pub actions: Vec<(Timestamp, Action)>,
    pub decisions: Vec<Decision>,
    /// Actions are kept unanswered while this is set.
    pub hold_results: bool,
    pub held: Vec<Action>,
    /// Devices report every this often.
    pub report_every: Duration,
    /// Virtual time step of `run_for`.
    pub step: Duration,
    /// Per device, every change of its enabled profile: (time, from, to).
    pub switches: HashMap<Eid, Vec<(Timestamp, ProfileTypeId, ProfileTypeId)>>,
    /// Percentage of actions that fail (retryably) instead of executing.
    pub fail_percent: u32,
    /// Deletes executed: (device, whether it stayed connected — another
    /// profile enabled and working, or a staged fallback left — profiles
    /// left).
    pub deletes: Vec<(Eid, bool, usize)>,
    /// Profile types whose metadata lacks `fallbackAllowed`: the eUICCs
    /// refuse the fallback attribute on their profiles.
    pub no_fallback_allowed: HashSet<ProfileTypeId>,
    /// Where a carrier is down, its devices register on this network
    /// instead (roaming), with a working data path.
    pub roam: HashMap<CarrierId, MccMnc>,
}

impl World {
    pub fn new(config: &str, seed: u64) -> Self {
        let dict = Dictionary::new();
        let catalog = Catalog::from_toml(config, dict.clone()).unwrap();
        let now = Timestamp(T0);
        Self {
            fleet: Fleet::new(catalog, now),
            now,
            rng: StdRng::seed_from_u64(seed),
            down: HashSet::new(),
            devices: HashMap::new(),
            next_iccid: 1,
            iccid_types: HashMap::new(),
            telemetry: MemTelemetryStore::with_dictionary(dict.clone()),
            dict,
            actions: Vec::new(),
            decisions: Vec::new(),
            hold_results: false,
            held: Vec::new(),
            report_every: Duration::from_secs(30),
            step: Duration::from_secs(1),
            switches: HashMap::new(),
            fail_percent: 0,
            deletes: Vec::new(),
            no_fallback_allowed: HashSet::new(),
            roam: HashMap::new(),
        }
    }

    pub fn carrier(&self, name: &str) -> CarrierId {
        self.fleet.catalog().carrier_id(name).unwrap()
    }

    pub fn add(&mut self, spec: DeviceSpec) {
        self.devices.insert(
            spec.eid,
            SimDevice {
                region: spec.region.clone().unwrap_or_default(),
                ipa_caps: Some(spec.capabilities.unwrap_or(caps(true))),
                ..SimDevice::default()
            },
        );
        self.fleet.add_device(&spec, self.now).unwrap();
    }

    fn new_iccid(&mut self, t: ProfileTypeId) -> Iccid {
        let n = self.next_iccid;
        self.next_iccid += 1;
        let iccid = Iccid::from_body(&format!("894400000{n:010}")).unwrap();
        self.iccid_types.insert(iccid.clone(), t);
        iccid
    }

    pub fn carrier_up(&self, c: CarrierId, region: &str) -> bool {
        !self.down.contains(&(c, "*".into())) && !self.down.contains(&(c, region.to_owned()))
    }

    /// Drains decisions and events, answers gate queries from telemetry.
    fn drain(&mut self) -> bool {
        let mut any = false;
        while let Some(d) = self.fleet.poll_decision() {
            self.decisions.push(d);
        }
        while let Some(e) = self.fleet.poll_event() {
            self.telemetry.record(e);
        }
        while let Some(q) = self.fleet.poll_gate_query() {
            any = true;
            let events = self.telemetry.select(&EventQuery::all()).unwrap();
            let wave = compute(events.iter(), &q.wave_query, &self.dict);
            let control = compute(events.iter(), &q.control_query, &self.dict);
            self.fleet
                .handle_gate_metrics(q.rollout, q.wave, &wave.total, &control.total, self.now)
                .unwrap();
        }
        any
    }

    /// One round: poll the fleet, execute its actions, feed results back.
    pub fn poll(&mut self) {
        for _ in 0..50 {
            self.fleet.poll(self.now, &mut self.rng);
            let mut any = self.drain();
            while let Some(a) = self.fleet.poll_action() {
                any = true;
                self.actions.push((self.now, a.clone()));
                if self.hold_results {
                    self.held.push(a);
                    continue;
                }
                let before = self.enabled_type(&a.device);
                if self.fail_percent > 0
                    && rand::RngExt::random_range(&mut self.rng, 0..100) < self.fail_percent
                {
                    let result = ActionResult {
                        id: a.id,
                        device: a.device,
                        outcome: Outcome::Failed {
                            failure: Failure::Unreachable,
                            retryable: true,
                        },
                    };
                    self.fleet
                        .handle_result(&result, self.now, &mut self.rng)
                        .unwrap();
                    continue;
                }
                if let Command::EimDelete { iccid } = &a.command {
                    // Still connected after it: the enabled profile works
                    // now, or another staged fallback remains.
                    let dev = &self.devices[&a.device];
                    let fallback_left =
                        dev.profiles.iter().any(|p| p.fallback && &p.iccid != iccid);
                    let not_enabled = dev.enabled().is_some_and(|p| &p.iccid != iccid);
                    let works = not_enabled && (self.data_ok(&a.device) || fallback_left);
                    let left = dev.profiles.len().saturating_sub(1);
                    self.deletes.push((a.device, works, left));
                }
                let outcome = self.execute(&a);
                let after = self.enabled_type(&a.device);
                if let (Some(x), Some(y)) = (before, after)
                    && x != y
                {
                    self.switches
                        .entry(a.device)
                        .or_default()
                        .push((self.now, x, y));
                }
                let result = ActionResult {
                    id: a.id,
                    device: a.device,
                    outcome,
                };
                self.fleet
                    .handle_result(&result, self.now, &mut self.rng)
                    .unwrap();
            }
            if !any {
                break;
            }
        }
        self.drain();
    }

    fn event(&self, device: Eid, activation: u64, kind: EventKind) -> Event {
        Event {
            at: ferrosim_telemetry::Timestamp(self.now.millis()),
            activation: CorrelationId::new(activation),
            device,
            source: Source::Device,
            dims: self.fleet.dims(&device).unwrap(),
            kind,
        }
    }

    /// Executes an action as the SM-DP+, the eIM and the device would.
    pub fn execute(&mut self, a: &Action) -> Outcome {
        let region = self.devices[&a.device].region.clone();
        match &a.command {
            Command::Es2DownloadOrder { profile_type, .. } => {
                let iccid = self.new_iccid(*profile_type);
                Outcome::OrderReserved { iccid }
            }
            Command::Es2ConfirmOrder { .. } => Outcome::OrderConfirmed {
                matching_id: MatchingId::new(format!("MID-{}", a.id.0)).unwrap(),
            },
            Command::EimDownloadTrigger {
                profile_type,
                iccid,
                ..
            } => {
                let dev = self.devices.get_mut(&a.device).unwrap();
                assert!(dev.profiles.len() < 4, "eUICC full: {:?}", dev.profiles);
                dev.profiles.push(SimProfile {
                    iccid: iccid.clone(),
                    profile_type: *profile_type,
                    enabled: false,
                    fallback: false,
                });
                let e = self.event(
                    a.device,
                    a.activation.unwrap_or(0),
                    EventKind::Euicc {
                        profile: ProfileKey::from_digits(iccid.as_str()),
                        outcome: EuiccOutcome::Installed,
                    },
                );
                self.telemetry.record(e);
                Outcome::Installed {
                    iccid: iccid.clone(),
                }
            }
            Command::EimEnable { iccid, rollback } => {
                let t = self.iccid_types[iccid];
                let c = self.fleet.catalog().carrier_of(t);
                let up = self.carrier_up(c, &region);
                let dev = self.devices.get_mut(&a.device).unwrap();
                if *rollback
                    && !up
                    && dev.enabled().is_some()
                    && dev.profiles.iter().any(|p| &p.iccid == iccid)
                {
                    return Outcome::RolledBack;
                }
                if dev.enable(iccid) {
                    Outcome::Done
                } else {
                    psmo(PsmoError::NotFound)
                }
            }
            Command::AgentExecuteFallback { iccid }
            | Command::AgentReturnFromFallback { iccid } => {
                let dev = self.devices.get_mut(&a.device).unwrap();
                if dev.enable(iccid) {
                    Outcome::Done
                } else {
                    psmo(PsmoError::NotFound)
                }
            }
            Command::EimDelete { iccid } => {
                let dev = self.devices.get_mut(&a.device).unwrap();
                if dev.profiles.iter().any(|p| &p.iccid == iccid && p.enabled) {
                    return psmo(PsmoError::WrongState);
                }
                let before = dev.profiles.len();
                dev.profiles.retain(|p| &p.iccid != iccid);
                if dev.profiles.len() < before {
                    Outcome::Done
                } else {
                    psmo(PsmoError::NotFound)
                }
            }
            Command::EimSetFallbackAttribute { iccid } => {
                if self
                    .iccid_types
                    .get(iccid)
                    .is_some_and(|t| self.no_fallback_allowed.contains(t))
                {
                    return psmo(PsmoError::NotAllowed);
                }
                let dev = self.devices.get_mut(&a.device).unwrap();
                for p in &mut dev.profiles {
                    p.fallback = &p.iccid == iccid;
                }
                Outcome::Done
            }
            Command::EimUnsetFallbackAttribute { iccid } => {
                let dev = self.devices.get_mut(&a.device).unwrap();
                for p in dev.profiles.iter_mut().filter(|p| &p.iccid == iccid) {
                    p.fallback = false;
                }
                Outcome::Done
            }
            Command::EimListProfileInfo => Outcome::ProfileList {
                profiles: self.devices[&a.device]
                    .profiles
                    .iter()
                    .map(|p| ListedProfile {
                        iccid: p.iccid.clone(),
                        enabled: p.enabled,
                        fallback_attribute: p.fallback,
                    })
                    .collect(),
            },
            Command::AgentApnConfig { iccid, apn } => {
                self.devices.get_mut(&a.device).unwrap().apn = Some((iccid.clone(), *apn));
                Outcome::Done
            }
            Command::EimReadCapabilities => match self.devices[&a.device].ipa_caps {
                Some(capabilities) => Outcome::Capabilities { capabilities },
                None => psmo(PsmoError::Other(127)),
            },
        }
    }

    /// Whether a device's data path works now.
    pub fn data_ok(&self, e: &Eid) -> bool {
        let dev = &self.devices[e];
        let Some(p) = dev.enabled() else { return false };
        let c = self.fleet.catalog().carrier_of(p.profile_type);
        let apn = dev
            .apn
            .as_ref()
            .filter(|(i, _)| *i == p.iccid)
            .map(|(_, a)| *a);
        let apn_ok = apn.is_some_and(|a| {
            let cat = self.fleet.catalog();
            cat.apns[a.index()].carrier == c
                && !cat.apns[a.index()].settings.apn.contains("exmaple")
        });
        (self.carrier_up(c, &dev.region) || self.roam.contains_key(&c)) && apn_ok
    }

    /// Every device reports one registration and one data-path check.
    pub fn reports(&mut self) {
        let mut eids: Vec<Eid> = self.devices.keys().copied().collect();
        eids.sort();
        for e in eids {
            let dev = &self.devices[&e];
            let Some(p) = dev.enabled().cloned() else {
                continue;
            };
            let c = self.fleet.catalog().carrier_of(p.profile_type);
            let at_home = self.carrier_up(c, &dev.region);
            // The network it registers on: its carrier's, or one it roams
            // on while its carrier is down.
            let plmn = if at_home {
                self.fleet.catalog().carrier(c).networks.first().copied()
            } else {
                self.roam.get(&c).copied()
            };
            let registered = plmn.is_some();
            let data_ok = self.data_ok(&e);
            let activation = self.fleet.device(&e).unwrap().work.activation;
            let reg = self.event(
                e,
                activation,
                EventKind::Registration {
                    profile: ProfileKey::from_digits(p.iccid.as_str()),
                    outcome: if registered {
                        RegistrationOutcome::Registered
                    } else {
                        RegistrationOutcome::NoResponse
                    },
                },
            );
            self.telemetry.record(reg);
            let outcome = if registered {
                Registration::Registered
            } else {
                Registration::NoResponse
            };
            let report = DeviceReport {
                device: e,
                kind: ReportKind::Registration { outcome, plmn },
            };
            self.fleet.handle_report(&report, self.now).unwrap();
            if !registered {
                continue;
            }
            let loss = if data_ok { 0 } else { 1000 };
            let dp = self.event(
                e,
                activation,
                EventKind::DataPath {
                    latency_ms: 40,
                    loss_permille: loss,
                },
            );
            self.telemetry.record(dp);
            let report = DeviceReport {
                device: e,
                kind: ReportKind::DataPath {
                    latency_ms: 40,
                    loss_permille: loss,
                },
            };
            self.fleet.handle_report(&report, self.now).unwrap();
        }
    }

    /// Runs for `d` in one-second steps, devices reporting every
    /// `report_every`.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now.plus(d);
        let mut next_report = self.now;
        while self.now < end {
            if self.now >= next_report {
                self.reports();
                next_report = self.now.plus(self.report_every);
            }
            self.poll();
            self.now = self.now.plus(self.step);
        }
        self.poll();
    }

    /// A device reports that it switched profiles by itself.
    pub fn device_switch(&mut self, e: Eid, iccid: &Iccid, cause: SwitchCause) {
        self.devices.get_mut(&e).unwrap().enable(iccid);
        let report = DeviceReport {
            device: e,
            kind: ReportKind::ProfileSwitch {
                enabled: iccid.clone(),
                cause,
            },
        };
        self.fleet.handle_report(&report, self.now).unwrap();
    }

    pub fn enabled_type(&self, e: &Eid) -> Option<ProfileTypeId> {
        self.devices[e].enabled().map(|p| p.profile_type)
    }

    pub fn enabled_carrier(&self, e: &Eid) -> Option<CarrierId> {
        self.enabled_type(e)
            .map(|t| self.fleet.catalog().carrier_of(t))
    }

    /// Devices that hold every desired profile, use the right one, and
    /// have nothing in flight.
    pub fn converged(&self) -> usize {
        self.fleet.devices().filter(|d| d.work.converged).count()
    }
}

pub fn psmo(error: PsmoError) -> Outcome {
    Outcome::Failed {
        failure: Failure::Psmo { error },
        retryable: false,
    }
}
