//! Failover and return: device reports feed each device's health and each
//! carrier's health per region; the group's rule decides when a device
//! switches to its staged fallback, when it returns, and how fast (switch
//! queues drained through a token bucket per target carrier).

use std::cmp::Reverse;

use ferrosim_ids::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Fleet, NO_REGION, Q_FAILOVER, Q_PROBE, Q_RETURN};
use crate::catalog::{CarrierId, RegionId};
use crate::decision::{Reason, What};
use crate::device::{DeviceState, MarkState, Mode, PackedIccid, Secs, flags};
use crate::error::FleetError;
use crate::limit;
use crate::report::{DeviceReport, Registration, ReportKind, SwitchCause};

/// Slots of the sliding window of registration outcomes.
const SLOTS: usize = 10;

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
        }
    }

    fn rotate(&mut self, now: Timestamp, slot_ms: i64) {
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
            return Err(FleetError::UnknownDevice(report.device.to_string()));
        };
        report
            .kind
            .validate()
            .map_err(|problem| FleetError::InvalidDevice {
                eid: report.device.to_string(),
                problem,
            })?;
        let rule = self.rule_of(&self.devices[idx as usize]).clone();
        let d = &mut self.devices[idx as usize];
        d.health.last_report = Secs::of(now);
        match &report.kind {
            ReportKind::Registration { outcome, .. } => {
                let ok = *outcome == Registration::Registered;
                let h = &mut d.health;
                if ok {
                    h.reg_failures = 0;
                    h.reg_window_start = Secs::NEVER;
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
                let carrier = self.current_carrier(idx);
                let region = Self::region_key(&self.devices[idx as usize]);
                self.count_registration(carrier, region, ok, now);
                if !ok {
                    self.mark(idx);
                }
            }
            ReportKind::DataPath {
                latency_ms,
                loss_permille,
            } => {
                let h = &mut d.health;
                h.last_latency_ms = *latency_ms;
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
                    last_report: Secs::of(now),
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
                }
            }
            Some(r) => {
                let h = self
                    .regions
                    .entry((c, r.0))
                    .or_insert_with(|| RegionHealth::new(now));
                h.state = RegionState::Healthy { since: now };
                h.next_probe = None;
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

    fn resolve_place(
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

    fn outage(&self, c: CarrierId, region: u16) -> Option<(Timestamp, bool)> {
        if let Some(since) = self.declared_everywhere[c.index()] {
            return Some((since, true));
        }
        match self.regions.get(&(c, region)).map(|h| h.state) {
            Some(RegionState::Outage { since, declared }) => Some((since, declared)),
            _ => None,
        }
    }

    fn healthy_since(&self, c: CarrierId, region: u16) -> Option<Timestamp> {
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

    fn count_registration(&mut self, c: CarrierId, region: u16, ok: bool, now: Timestamp) {
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
        if !cfg.enabled {
            return;
        }
        let (okc, fail) = h.totals();
        let attempts = okc.saturating_add(fail);
        if attempts < cfg.min_samples {
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
                h.state = RegionState::Healthy { since: now };
                h.next_probe = None;
                let region_id = (region != NO_REGION).then_some(RegionId(region));
                self.decide(
                    now,
                    None,
                    None,
                    What::OutageEnd {
                        carrier: c,
                        region: region_id,
                    },
                    Reason::FailureRate {
                        failures: fail,
                        attempts,
                        threshold: cfg.recover_rate,
                    },
                );
                self.wake_returns(c, Some(region), now);
            }
            _ => {}
        }
    }

    /// Marks every device using carrier `c` (in `region`, or anywhere) for a
    /// look: an outage started. One pass over the fleet per outage.
    fn mark_on_carrier(&mut self, c: CarrierId, region: Option<u16>) {
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
    fn wake_returns(&mut self, c: CarrierId, region: Option<u16>, now: Timestamp) {
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

    /// Whether a device must leave the carrier it uses, and why.
    fn trigger(&self, idx: u32, now: Timestamp) -> Option<Reason> {
        let d = &self.devices[idx as usize];
        let rule = self.rule_of(d);
        let c = self.current_carrier(idx);
        if rule.on_carrier_outage
            && let Some((_, declared)) = self.outage(c, Self::region_key(d))
        {
            return Some(Reason::CarrierOutage {
                carrier: c,
                declared,
            });
        }
        let h = &d.health;
        if let Some(rf) = rule.registration_failures {
            let within = h.reg_window_start.age(now);
            if h.reg_failures >= rf.count && within <= rf.window.millis() / 1000 {
                return Some(Reason::RegistrationFailures {
                    failures: h.reg_failures,
                    threshold: rf.count,
                    within_s: within,
                    window_s: rf.window.millis() / 1000,
                });
            }
        }
        if let Some(t) = rule.no_data_path {
            let since = h.last_data_ok.age(now);
            if h.data_failing && since >= t.millis() / 1000 {
                return Some(Reason::NoDataPath {
                    since_ok_s: since,
                    bound_s: t.millis() / 1000,
                });
            }
        }
        if let Some(l) = rule.latency
            && h.latency_streak >= l.consecutive
        {
            return Some(Reason::Latency {
                latency_ms: h.last_latency_ms,
                bound_ms: l.above_ms,
                streak: h.latency_streak,
            });
        }
        None
    }

    /// Whether a device on a fallback may return to its primary now; else
    /// when to look again.
    fn return_due(&self, idx: u32, now: Timestamp) -> Result<Reason, Option<Timestamp>> {
        let d = &self.devices[idx as usize];
        let rule = self.rule_of(d);
        let c = self.catalog.carrier_of(d.desired.primary);
        let Some(since) = self.healthy_since(c, Self::region_key(d)) else {
            return Err(None);
        };
        let healthy_for =
            u64::try_from(now.millis().saturating_sub(since.millis())).unwrap_or(0) / 1000;
        let on_fallback = d.mode_since.age(now);
        let dwell = rule.return_dwell.millis() / 1000;
        let min_on = rule.min_on_fallback.millis() / 1000;
        if d.switches.in_last_hour(now) >= rule.max_switches_per_hour {
            // The switch budget is spent: look again when the oldest switch
            // of the hour leaves it.
            let oldest = d
                .switches
                .at
                .iter()
                .filter(|t| !t.is_never() && t.age(now) < 3600)
                .min()
                .copied();
            let at = oldest.map_or(now, |t| t.ts().plus(std::time::Duration::from_secs(3601)));
            return Err(Some(at));
        }
        if healthy_for >= dwell && on_fallback >= min_on {
            return Ok(Reason::PrimaryHealthy {
                healthy_for_s: healthy_for,
                dwell_s: dwell,
                on_fallback_s: on_fallback,
                min_on_fallback_s: min_on,
            });
        }
        let at = Timestamp(
            since
                .millis()
                .saturating_add(rule.return_dwell.millis_i64()),
        )
        .max(d.mode_since.ts().plus(rule.min_on_fallback.duration()));
        Err(Some(at.max(now.plus(std::time::Duration::from_secs(1)))))
    }

    /// The per-device part of failover: queue a switch or a return.
    pub(super) fn failover_check<R: rand::CryptoRng + ?Sized>(
        &mut self,
        idx: u32,
        now: Timestamp,
        rng: &mut R,
    ) {
        let d = &self.devices[idx as usize];
        if d.work.queued {
            return;
        }
        let mode = d.desired.mode;
        // A failover (or a further one from the fallback to the spare).
        let next = match mode {
            Mode::Primary => Some(Mode::Fallback),
            Mode::Fallback
                if d.desired
                    .spare
                    .is_some_and(|s| d.observed.of_type(s).is_some()) =>
            {
                Some(Mode::Spare)
            }
            _ => None,
        };
        // Only a device that actually uses the profile it should: a switch
        // already under way is not judged on its old profile's reports.
        let settled = d
            .observed
            .enabled()
            .and_then(|p| p.profile_type)
            .is_some_and(|t| t == d.desired.active());
        if let (Some(next), true) = (next, settled)
            && let Some(reason) = self.trigger(idx, now)
        {
            self.queue_failover(idx, next, reason, now, rng);
            return;
        }
        if mode != Mode::Primary {
            match self.return_due(idx, now) {
                Ok(_) => self.enqueue(idx, Q_RETURN, now, rng),
                Err(Some(at)) => self.wake_at(idx, at),
                Err(None) => {}
            }
        }
    }

    fn hold(&mut self, idx: u32, now: Timestamp, reason: Reason) {
        let d = &mut self.devices[idx as usize];
        if !d.work.hold_logged.is_never() && d.work.hold_logged.age(now) < 3600 {
            return;
        }
        d.work.hold_logged = Secs::of(now);
        let (eid, rollout) = (d.eid, d.rollout.map(|m| m.rollout));
        self.decide(now, Some(eid), rollout, What::Hold, reason);
    }

    fn queue_failover<R: rand::CryptoRng + ?Sized>(
        &mut self,
        idx: u32,
        next: Mode,
        reason: Reason,
        now: Timestamp,
        rng: &mut R,
    ) {
        let d = &self.devices[idx as usize];
        if let Some(m) = d.rollout.filter(|m| m.state == MarkState::Applied) {
            return self.hold(idx, now, Reason::InRolloutSoak { rollout: m.rollout });
        }
        let max = self.rule_of(d).max_switches_per_hour;
        let used = d.switches.in_last_hour(now);
        if used >= max {
            let _ = reason;
            return self.hold(
                idx,
                now,
                Reason::SwitchBudget {
                    switches_last_hour: used,
                    max,
                },
            );
        }
        if next == Mode::Fallback && d.desired.fallback.is_none() {
            // Nothing staged: provision a fallback afresh on the first
            // pre-authorised carrier that has a profile type allowing it.
            let primary = self.catalog.carrier_of(d.desired.primary);
            let pick = self.pick_fallback(primary, &[primary]);
            let Some(t) = pick else {
                return self.hold(idx, now, Reason::NoStagedFallback);
            };
            self.count_carriers(idx, -1);
            self.devices[idx as usize].desired.fallback = Some(t);
            self.count_carriers(idx, 1);
            let eid = self.devices[idx as usize].eid;
            self.decide(
                now,
                Some(eid),
                None,
                What::Restage { spare: t },
                Reason::NoStagedFallback,
            );
        }
        let _ = next;
        self.enqueue(idx, Q_FAILOVER, now, rng);
    }

    fn pick_fallback(
        &self,
        primary: CarrierId,
        exclude: &[CarrierId],
    ) -> Option<crate::catalog::ProfileTypeId> {
        let cat = &self.catalog;
        cat.carrier(primary)
            .fallbacks
            .iter()
            .filter(|c| !exclude.contains(c))
            .find_map(|c| {
                cat.profile_types
                    .iter()
                    .position(|t| t.carrier == *c && t.fallback_allowed)
                    .map(|i| crate::catalog::ProfileTypeId(i as u16))
            })
    }

    fn enqueue<R: rand::CryptoRng + ?Sized>(
        &mut self,
        idx: u32,
        kind: u8,
        now: Timestamp,
        rng: &mut R,
    ) {
        let d = &mut self.devices[idx as usize];
        let target = match kind {
            Q_FAILOVER => match d.desired.mode {
                Mode::Primary => d.desired.fallback,
                _ => d.desired.spare,
            },
            _ => Some(d.desired.primary),
        };
        let Some(target) = target else { return };
        d.work.queued = true;
        let jitter = limit::jitter(
            self.catalog
                .rule(d.desired.rule.unwrap_or(self.catalog.group(d.group).rule))
                .jitter,
            rng,
        );
        let c = self.catalog.carrier_of(target);
        self.switch_queues[c.index()].push(Reverse((now.plus(jitter.duration()), idx, kind)));
    }

    /// Switches queued devices whose turn came, at each target carrier's
    /// rate.
    pub(super) fn drain_switch_queues(&mut self, now: Timestamp) {
        for c in 0..self.switch_queues.len() {
            while let Some(&Reverse((at, idx, kind))) = self.switch_queues[c].peek() {
                if at > now {
                    break;
                }
                // Still due? (Conditions may have cleared while it waited.)
                let reason = match kind {
                    Q_FAILOVER => {
                        let d = &self.devices[idx as usize];
                        let ok = d.desired.mode != Mode::Spare;
                        if ok { self.trigger(idx, now) } else { None }
                    }
                    Q_RETURN => self.return_due(idx, now).ok(),
                    _ => self.probe_due(idx, now),
                };
                let Some(reason) = reason else {
                    self.switch_queues[c].pop();
                    self.devices[idx as usize].work.queued = false;
                    self.mark(idx);
                    continue;
                };
                if self.switch_buckets[c].try_take(now).is_err() {
                    break;
                }
                self.switch_queues[c].pop();
                self.switch(idx, kind, reason, now);
            }
        }
    }

    fn switch(&mut self, idx: u32, kind: u8, reason: Reason, now: Timestamp) {
        let method = self.rule_of(&self.devices[idx as usize]).method;
        let restage = self
            .rule_of(&self.devices[idx as usize])
            .restage_after_switch;
        let d = &mut self.devices[idx as usize];
        d.work.queued = false;
        let from = d.desired.active();
        let failover = kind == Q_FAILOVER;
        d.desired.mode = match (kind, d.desired.mode) {
            (Q_FAILOVER, Mode::Primary) => Mode::Fallback,
            (Q_FAILOVER, _) => Mode::Spare,
            _ => Mode::Primary,
        };
        let to = d.desired.active();
        d.mode_since = Secs::of(now);
        d.switches.push(Secs::of(now));
        d.work.attempts = 0;
        d.work.not_before = Secs::NEVER;
        let eid = d.eid;
        let primary_carrier = self.catalog.carrier_of(d.desired.primary);
        let key = (primary_carrier, Self::region_key(d));
        if failover && from == d.desired.primary {
            self.on_fallback.entry(key).or_default().push(idx);
        }
        self.decide(
            now,
            Some(eid),
            None,
            What::Switch {
                from,
                to,
                method,
                failover,
            },
            reason,
        );
        self.new_activation(idx, ferrosim_telemetry::ActivationKind::Failover, now);
        if failover && restage && self.devices[idx as usize].desired.spare.is_none() {
            let exclude = [primary_carrier, self.catalog.carrier_of(to)];
            if let Some(spare) = self.pick_fallback(primary_carrier, &exclude) {
                self.count_carriers(idx, -1);
                self.devices[idx as usize].desired.spare = Some(spare);
                self.count_carriers(idx, 1);
                self.decide(
                    now,
                    Some(eid),
                    None,
                    What::Restage { spare },
                    Reason::PreAuthorised {
                        carrier: self.catalog.carrier_of(spare),
                    },
                );
            }
        }
        if kind != Q_FAILOVER {
            // Back on the primary: the spare is no longer wanted.
            if self.devices[idx as usize].desired.spare.is_some() {
                self.count_carriers(idx, -1);
                self.devices[idx as usize].desired.spare = None;
                self.count_carriers(idx, 1);
            }
        }
        self.mark(idx);
    }

    fn probe_due(&self, idx: u32, now: Timestamp) -> Option<Reason> {
        let d: &DeviceState = &self.devices[idx as usize];
        if d.desired.mode == Mode::Primary {
            return None;
        }
        let c = self.catalog.carrier_of(d.desired.primary);
        match self.regions.get(&(c, Self::region_key(d))).map(|h| h.state) {
            Some(RegionState::Outage {
                since,
                declared: false,
            }) if self.declared_everywhere[c.index()].is_none() => {
                let max = self.rule_of(d).max_switches_per_hour;
                (d.switches.in_last_hour(now) < max).then(|| Reason::Probe {
                    outage_for_s: u64::try_from(now.millis().saturating_sub(since.millis()))
                        .unwrap_or(0)
                        / 1000,
                })
            }
            _ => None,
        }
    }

    /// Detected outages with too few devices left on the carrier to measure
    /// it: one device returns (with rollback) per probe interval.
    pub(super) fn poll_probes(&mut self, now: Timestamp) {
        let cfg = self.catalog.outage;
        let due: Vec<(CarrierId, u16)> = self
            .regions
            .iter()
            .filter(|(_, h)| h.next_probe.is_some_and(|p| p <= now))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            let slot_ms = cfg.window.millis_i64() / SLOTS as i64;
            let Some(h) = self.regions.get_mut(&key) else {
                continue;
            };
            h.rotate(now, slot_ms);
            let (a, f) = h.totals();
            h.next_probe = Some(now.plus(cfg.probe_interval.duration()));
            if a.saturating_add(f) >= cfg.min_samples {
                continue;
            }
            let Some(list) = self.on_fallback.get_mut(&key) else {
                continue;
            };
            while let Some(idx) = list.pop() {
                let d = &self.devices[idx as usize];
                if d.desired.mode != Mode::Primary && !d.work.queued {
                    if self.probe_due(idx, now).is_some() {
                        self.devices[idx as usize].work.queued = true;
                        let c = key.0;
                        self.switch_queues[c.index()].push(Reverse((now, idx, Q_PROBE)));
                        // Keep it listed: it returns for good only later.
                        if let Some(list) = self.on_fallback.get_mut(&key) {
                            list.insert(0, idx);
                        }
                    }
                    break;
                }
            }
        }
    }
}
