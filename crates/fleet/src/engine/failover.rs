//! Failover and return: device reports feed each device's health and each
//! carrier's health per region; the group's rule decides when a device
//! switches to its staged fallback, when it returns, and how fast (switch
//! queues drained through a token bucket per target carrier).

use std::sync::Arc;

use ferrosim_ids::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Fleet, NO_REGION, rule_in};
use crate::catalog::{CarrierId, RegionId};
use crate::decision::{Reason, What};
use crate::device::{Mode, PackedIccid, Secs, flags};
use crate::error::FleetError;
use crate::report::{DeviceReport, Registration, ReportKind, SwitchCause};

/// Slots of the sliding window of registration outcomes.
pub(super) const SLOTS: usize = 10;

/// A carrier's state in a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RegionState {
    /// Working since then.
    Healthy {
        /// Since when.
        since: Timestamp,
    },
    /// In outage since then.
    Outage {
        /// Since when.
        since: Timestamp,
        /// Declared by an operator (ends only by an operator), else detected.
        declared: bool,
    },
}

/// Registration outcomes of a carrier in a region over a sliding window,
/// and the state they led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionHealth {
    /// Accepted and failed registrations per slot.
    pub slots: [(u32, u32); SLOTS],
    /// Index (time / slot length) of the newest slot.
    pub head: i64,
    /// Its state.
    pub state: RegionState,
    /// When the next probe may go (detected outages only).
    pub next_probe: Option<Timestamp>,
    /// Registrations (accepted, failed) since the last probe went out,
    /// while a detected outage is probed: with fewer than `min_samples`
    /// outcomes in the window, all accepted (at least one) ends it.
    #[serde(default)]
    pub since_probe: Option<(u32, u32)>,
}

impl RegionHealth {
    fn new(_now: Timestamp) -> Self {
        Self {
            slots: [(0, 0); SLOTS],
            head: i64::MIN,
            state: RegionState::Healthy {
                since: Timestamp(i64::MIN),
            },
            next_probe: None,
            since_probe: None,
        }
    }

    pub(super) fn rotate(&mut self, now: Timestamp, slot_ms: i64) {
        let cur = now.millis().div_euclid(slot_ms.max(1));
        if self.head == i64::MIN || cur - self.head >= SLOTS as i64 {
            self.slots = [(0, 0); SLOTS];
        } else {
            let mut h = self.head;
            while h < cur {
                h += 1;
                self.slots[h.rem_euclid(SLOTS as i64) as usize] = (0, 0);
            }
        }
        if cur > self.head || self.head == i64::MIN {
            self.head = cur;
        }
    }

    /// (accepted, failed) over the window as of the last rotation.
    pub fn totals(&self) -> (u32, u32) {
        self.slots.iter().fold((0u32, 0u32), |(a, f), (x, y)| {
            (a.saturating_add(*x), f.saturating_add(*y))
        })
    }

    /// Whether the carrier is in outage here.
    pub fn in_outage(&self) -> bool {
        matches!(self.state, RegionState::Outage { .. })
    }
}

impl Fleet {
    /// A device's report. Updates its health and its carrier's; decisions
    /// follow at the next [`Fleet::poll`].
    pub fn handle_report(
        &mut self,
        report: &DeviceReport,
        now: Timestamp,
    ) -> Result<(), FleetError> {
        let Some(&idx) = self.index.get(&report.device) else {
            return Err(FleetError::UnknownDevice(report.device));
        };
        report
            .kind
            .validate()
            .map_err(|problem| FleetError::InvalidDevice {
                eid: report.device,
                problem,
            })?;
        // The rule is read from a handle on the catalog (not copied: this
        // runs for every report of every device).
        let catalog = Arc::clone(&self.catalog);
        let rule = rule_in(&catalog, &self.devices[idx as usize]);
        // Whose network answered a registration: the carrier of the
        // profile in use (or unsaid: taken as that), or another network
        // (roaming on another carrier's or an unknown one).
        let carrier = self.current_carrier(idx);
        let at_home = match &report.kind {
            ReportKind::Registration {
                plmn: Some(plmn), ..
            } => self.catalog.carrier(carrier).networks.contains(plmn),
            _ => true,
        };
        let d = &mut self.devices[idx as usize];
        match &report.kind {
            ReportKind::Registration { outcome, plmn } => {
                let ok = *outcome == Registration::Registered;
                let h = &mut d.health;
                let mut started_roaming = false;
                if ok {
                    h.reg_failures = 0;
                    h.reg_window_start = Secs::NEVER;
                    if let Some(plmn) = plmn {
                        h.registered_plmn = crate::device::PackedPlmn::new(*plmn);
                    }
                    if at_home {
                        h.roaming_since = Secs::NEVER;
                    } else if h.roaming_since.is_never() {
                        h.roaming_since = Secs::of(now);
                        started_roaming = true;
                    }
                    if let Some(p) = d
                        .observed
                        .profiles
                        .iter_mut()
                        .flatten()
                        .find(|p| p.has(flags::ENABLED))
                    {
                        p.flags |= flags::REGISTERED;
                    }
                } else {
                    let window = rule
                        .registration_failures
                        .map_or(u64::MAX, |r| r.window.millis() / 1000);
                    if h.reg_window_start.is_never() || h.reg_window_start.age(now) > window {
                        h.reg_window_start = Secs::of(now);
                        h.reg_failures = 0;
                    }
                    h.reg_failures = h.reg_failures.saturating_add(1);
                }
                // A carrier's health in a region is measured on its own
                // networks: a registration elsewhere shows neither that its
                // network works (devices roaming away would hide its
                // outage, and bring devices back too early) nor that the
                // other network fails (a roaming refusal is policy).
                if at_home {
                    let region = Self::region_key(&self.devices[idx as usize]);
                    self.count_registration(carrier, region, ok, now);
                }
                if !ok {
                    self.mark(idx);
                }
                if started_roaming && let Some(bound) = rule.roaming {
                    self.wake_at(idx, now.plus(bound.duration()));
                }
            }
            ReportKind::DataPath {
                latency_ms,
                loss_permille,
            } => {
                let h = &mut d.health;
                h.last_latency_ms = u16::try_from(*latency_ms).unwrap_or(u16::MAX);
                let over = rule.latency.is_some_and(|l| *latency_ms > l.above_ms);
                h.latency_streak = if over {
                    h.latency_streak.saturating_add(1)
                } else {
                    0
                };
                if *loss_permille < 1000 {
                    h.last_data_ok = Secs::of(now);
                    h.data_failing = false;
                    if let Some(p) = d
                        .observed
                        .profiles
                        .iter_mut()
                        .flatten()
                        .find(|p| p.has(flags::ENABLED))
                        && p.has(flags::REGISTERED)
                        && !p.has(flags::WORKS)
                    {
                        p.flags |= flags::WORKS;
                        self.mark(idx);
                    }
                } else {
                    h.data_failing = true;
                    self.mark(idx);
                }
                if over {
                    self.mark(idx);
                }
            }
            ReportKind::HandoverFailure { .. } => {}
            ReportKind::ProfileSwitch { enabled, cause } => {
                let packed = PackedIccid::new(enabled);
                let via = *cause == SwitchCause::FallbackExecuted;
                if d.observed.by_iccid(packed).is_none() {
                    d.work.resync = true;
                } else {
                    d.observed.set_enabled(packed, via);
                }
                d.health = crate::device::Health {
                    last_data_ok: Secs::of(now),
                    ..Default::default()
                };
                let t = d.observed.by_iccid(packed).and_then(|p| p.profile_type);
                let mode = match t {
                    Some(t) if t == d.desired.primary => Some(Mode::Primary),
                    Some(t) if Some(t) == d.desired.fallback => Some(Mode::Fallback),
                    Some(t) if Some(t) == d.desired.spare => Some(Mode::Spare),
                    _ => None,
                };
                let eid = d.eid;
                let rollout = d.rollout.map(|m| m.rollout);
                if let Some(m) = mode.filter(|m| *m != d.desired.mode) {
                    let was_primary = d.desired.mode == Mode::Primary;
                    d.desired.mode = m;
                    d.mode_since = Secs::of(now);
                    d.switches.push(Secs::of(now));
                    if was_primary {
                        let key = (
                            self.catalog.carrier_of(d.desired.primary),
                            Self::region_key(d),
                        );
                        self.on_fallback.entry(key).or_default().push(idx);
                    }
                }
                let event = match cause {
                    SwitchCause::FallbackExecuted => "fallback_executed",
                    SwitchCause::ReturnedFromFallback => "returned_from_fallback",
                    SwitchCause::RolledBack => "rolled_back",
                    SwitchCause::Other => "profile_switch",
                };
                self.decide(
                    now,
                    Some(eid),
                    rollout,
                    What::Adopt { to: t },
                    Reason::DeviceReport {
                        event: event.into(),
                    },
                );
                self.mark(idx);
            }
        }
        Ok(())
    }

    /// An operator declares `carrier` out of service in `region` (every
    /// region when `None`).
    pub fn declare_outage(
        &mut self,
        carrier: &str,
        region: Option<&str>,
        now: Timestamp,
    ) -> Result<(), FleetError> {
        let (c, r) = self.resolve_place(carrier, region)?;
        match r {
            None => {
                self.declared_everywhere[c.index()] = Some(now);
            }
            Some(r) => {
                let h = self
                    .regions
                    .entry((c, r.0))
                    .or_insert_with(|| RegionHealth::new(now));
                h.state = RegionState::Outage {
                    since: now,
                    declared: true,
                };
                h.next_probe = None;
                h.since_probe = None;
            }
        }
        self.decide(
            now,
            None,
            None,
            What::OutageStart {
                carrier: c,
                region: r,
            },
            Reason::Operator,
        );
        self.mark_on_carrier(c, r.map(|r| r.0));
        Ok(())
    }

    /// An operator declares the outage of `carrier` in `region` over.
    pub fn end_outage(
        &mut self,
        carrier: &str,
        region: Option<&str>,
        now: Timestamp,
    ) -> Result<(), FleetError> {
        let (c, r) = self.resolve_place(carrier, region)?;
        match r {
            None => {
                self.declared_everywhere[c.index()] = None;
                self.healthy_everywhere_since[c.index()] = now;
                for h in self
                    .regions
                    .iter_mut()
                    .filter(|((hc, _), _)| *hc == c)
                    .map(|(_, h)| h)
                {
                    h.state = RegionState::Healthy { since: now };
                    h.next_probe = None;
                    h.since_probe = None;
                }
            }
            Some(r) => {
                let h = self
                    .regions
                    .entry((c, r.0))
                    .or_insert_with(|| RegionHealth::new(now));
                h.state = RegionState::Healthy { since: now };
                h.next_probe = None;
                h.since_probe = None;
            }
        }
        self.decide(
            now,
            None,
            None,
            What::OutageEnd {
                carrier: c,
                region: r,
            },
            Reason::Operator,
        );
        self.wake_returns(c, r.map(|r| r.0), now);
        Ok(())
    }

    pub(super) fn resolve_place(
        &self,
        carrier: &str,
        region: Option<&str>,
    ) -> Result<(CarrierId, Option<RegionId>), FleetError> {
        let c = self
            .catalog
            .carrier_id(carrier)
            .ok_or_else(|| FleetError::UnknownName {
                kind: "carrier",
                name: carrier.to_owned(),
            })?;
        let r = match region {
            Some(name) => {
                Some(
                    self.catalog
                        .region_id(name)
                        .ok_or_else(|| FleetError::UnknownName {
                            kind: "region",
                            name: name.to_owned(),
                        })?,
                )
            }
            None => None,
        };
        Ok((c, r))
    }

    /// The carrier the device uses now (its enabled profile's, else the one
    /// it should use).
    pub(super) fn current_carrier(&self, idx: u32) -> CarrierId {
        let d = &self.devices[idx as usize];
        let t = d
            .observed
            .enabled()
            .and_then(|p| p.profile_type)
            .unwrap_or(d.desired.active());
        self.catalog.carrier_of(t)
    }

    pub(super) fn outage(&self, c: CarrierId, region: u16) -> Option<(Timestamp, bool)> {
        if let Some(since) = self.declared_everywhere[c.index()] {
            return Some((since, true));
        }
        match self.regions.get(&(c, region)).map(|h| h.state) {
            Some(RegionState::Outage { since, declared }) => Some((since, declared)),
            _ => None,
        }
    }

    pub(super) fn healthy_since(&self, c: CarrierId, region: u16) -> Option<Timestamp> {
        if self.declared_everywhere[c.index()].is_some() {
            return None;
        }
        let everywhere = self.healthy_everywhere_since[c.index()];
        match self.regions.get(&(c, region)).map(|h| h.state) {
            Some(RegionState::Outage { .. }) => None,
            Some(RegionState::Healthy { since }) => Some(since.max(everywhere)),
            None => Some(everywhere),
        }
    }

    pub(super) fn count_registration(
        &mut self,
        c: CarrierId,
        region: u16,
        ok: bool,
        now: Timestamp,
    ) {
        let cfg = self.catalog.outage;
        let slot_ms = cfg.window.millis_i64() / SLOTS as i64;
        let h = self
            .regions
            .entry((c, region))
            .or_insert_with(|| RegionHealth::new(now));
        h.rotate(now, slot_ms);
        let slot = &mut h.slots[h.head.rem_euclid(SLOTS as i64) as usize];
        if ok {
            slot.0 = slot.0.saturating_add(1);
        } else {
            slot.1 = slot.1.saturating_add(1);
        }
        if let Some((a, f)) = &mut h.since_probe {
            if ok {
                *a = a.saturating_add(1);
            } else {
                *f = f.saturating_add(1);
            }
        }
        if !cfg.enabled {
            return;
        }
        let (okc, fail) = h.totals();
        let attempts = okc.saturating_add(fail);
        if attempts < cfg.min_samples {
            // Too few outcomes for a rate: every device of the region may
            // have left the carrier. A detected outage then ends on its
            // probes: at least one registration since the last probe went
            // out, and none failed.
            if let (
                RegionState::Outage {
                    declared: false, ..
                },
                Some((probed_ok, 0)),
            ) = (h.state, h.since_probe)
                && probed_ok > 0
            {
                self.end_detected(
                    c,
                    region,
                    now,
                    Reason::ProbeSucceeded {
                        registrations: probed_ok,
                        attempts,
                    },
                );
            }
            return;
        }
        let rate = f64::from(fail) / f64::from(attempts);
        match h.state {
            RegionState::Healthy { .. } if rate >= cfg.failure_rate => {
                h.state = RegionState::Outage {
                    since: now,
                    declared: false,
                };
                h.next_probe = Some(now.plus(cfg.probe_interval.duration()));
                h.since_probe = None;
                let region = (region != NO_REGION).then_some(RegionId(region));
                self.decide(
                    now,
                    None,
                    None,
                    What::OutageStart { carrier: c, region },
                    Reason::FailureRate {
                        failures: fail,
                        attempts,
                        threshold: cfg.failure_rate,
                    },
                );
                self.mark_on_carrier(c, Some(region.map_or(NO_REGION, |r| r.0)));
            }
            RegionState::Outage {
                declared: false, ..
            } if rate <= cfg.recover_rate => {
                self.end_detected(
                    c,
                    region,
                    now,
                    Reason::FailureRate {
                        failures: fail,
                        attempts,
                        threshold: cfg.recover_rate,
                    },
                );
            }
            _ => {}
        }
    }

    /// A detected outage of `c` in `region` is over, for `reason`.
    fn end_detected(&mut self, c: CarrierId, region: u16, now: Timestamp, reason: Reason) {
        if let Some(h) = self.regions.get_mut(&(c, region)) {
            h.state = RegionState::Healthy { since: now };
            h.next_probe = None;
            h.since_probe = None;
        }
        let region_id = (region != NO_REGION).then_some(RegionId(region));
        self.decide(
            now,
            None,
            None,
            What::OutageEnd {
                carrier: c,
                region: region_id,
            },
            reason,
        );
        self.wake_returns(c, Some(region), now);
    }

    /// Marks every device using carrier `c` (in `region`, or anywhere) for a
    /// look: an outage started. One pass over the fleet per outage.
    pub(super) fn mark_on_carrier(&mut self, c: CarrierId, region: Option<u16>) {
        for idx in 0..self.devices.len() as u32 {
            let d = &self.devices[idx as usize];
            if region.is_some_and(|r| Self::region_key(d) != r) {
                continue;
            }
            if self.current_carrier(idx) == c {
                self.mark(idx);
            }
        }
    }

    /// Wakes the devices that left carrier `c` in `region` when its dwell
    /// will have passed.
    pub(super) fn wake_returns(&mut self, c: CarrierId, region: Option<u16>, now: Timestamp) {
        let keys: Vec<(CarrierId, u16)> = self
            .on_fallback
            .keys()
            .filter(|(kc, kr)| *kc == c && region.is_none_or(|r| r == *kr))
            .copied()
            .collect();
        for key in keys {
            let devices = &self.devices;
            if let Some(list) = self.on_fallback.get_mut(&key) {
                list.retain(|&i| devices[i as usize].desired.mode != Mode::Primary);
                list.dedup();
            }
            let list = self.on_fallback.get(&key).cloned().unwrap_or_default();
            for idx in list {
                let d = &self.devices[idx as usize];
                let dwell = self.rule_of(d).return_dwell;
                self.wake_at(idx, now.plus(dwell.duration()));
            }
        }
    }
}
