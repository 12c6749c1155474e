//! Switching a device: when it must leave the carrier it uses
//! ([`Fleet::trigger`]), when it may return, holds, and the switch queues
//! drained through a token bucket per target carrier so a failover never
//! becomes a signalling storm on the fallback carrier. The inputs that feed
//! these decisions (reports, carrier health) are in `failover`.

use std::cmp::Reverse;

use ferrosim_ids::Timestamp;

use super::failover::{RegionState, SLOTS};
use super::{Fleet, Q_FAILOVER, Q_PROBE, Q_RETURN};
use crate::catalog::CarrierId;
use crate::decision::{Reason, What};
use crate::device::{DeviceState, MarkState, Mode, Secs};
use crate::limit;

impl Fleet {
    /// Whether a device must leave the carrier it uses, and why.
    pub(super) fn trigger(&self, idx: u32, now: Timestamp) -> Option<Reason> {
        let d = &self.devices[idx as usize];
        let rule = self.rule_of(d);
        let c = self.current_carrier(idx);
        if rule.on_carrier_outage
            && let Some((since, declared)) = self.outage(c, Self::region_key(d))
            && !(Self::measures_outage(d, since, declared))
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
        if let (Some(bound), Some(plmn)) = (rule.roaming, h.registered_plmn.get())
            && !h.roaming_since.is_never()
            && h.roaming_since.age(now) >= bound.millis() / 1000
        {
            return Some(Reason::Roaming {
                plmn,
                network_carrier: self.catalog.carrier_of_network(plmn),
                carrier: c,
                for_s: h.roaming_since.age(now),
                bound_s: bound.millis() / 1000,
            });
        }
        if let Some(l) = rule.latency
            && h.latency_streak >= l.consecutive
        {
            return Some(Reason::Latency {
                latency_ms: u32::from(h.last_latency_ms),
                bound_ms: l.above_ms,
                streak: h.latency_streak,
            });
        }
        None
    }

    /// Whether a device is the measurement of a detected outage rather
    /// than its casualty: it came back to its primary (a probe, or a
    /// return) after the outage began. Its own reports judge it (its
    /// registration and data-path triggers still apply, and the return
    /// was an enable with rollback); sending it away again for the outage
    /// would leave nobody to see the carrier recover.
    fn measures_outage(d: &DeviceState, since: Timestamp, declared: bool) -> bool {
        let last = d.switches.last();
        !declared && d.desired.mode == Mode::Primary && !last.is_never() && last >= Secs::of(since)
    }

    /// Whether a device on a fallback may return to its primary now; else
    /// when to look again.
    pub(super) fn return_due(&self, idx: u32, now: Timestamp) -> Result<Reason, Option<Timestamp>> {
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

    pub(super) fn hold(&mut self, idx: u32, now: Timestamp, reason: Reason) {
        let d = &mut self.devices[idx as usize];
        if !d.work.hold_logged.is_never() && d.work.hold_logged.age(now) < 3600 {
            return;
        }
        d.work.hold_logged = Secs::of(now);
        let (eid, rollout) = (d.eid, d.rollout.map(|m| m.rollout));
        self.decide(now, Some(eid), rollout, What::Hold, reason);
    }

    pub(super) fn queue_failover<R: rand::CryptoRng + ?Sized>(
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

    pub(super) fn pick_fallback(
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

    pub(super) fn enqueue<R: rand::CryptoRng + ?Sized>(
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

    pub(super) fn switch(&mut self, idx: u32, kind: u8, reason: Reason, now: Timestamp) {
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

    pub(super) fn probe_due(&self, idx: u32, now: Timestamp) -> Option<Reason> {
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
            // A listed device that may switch now, from the end of the list
            // (a probed device moves to its front: probes take turns); the
            // others stay listed, to return when the outage ends.
            let Some(list) = self.on_fallback.get(&key) else {
                continue;
            };
            let pick = list.iter().rev().copied().find(|&idx| {
                let d = &self.devices[idx as usize];
                d.desired.mode != Mode::Primary
                    && !d.work.queued
                    && self.probe_due(idx, now).is_some()
            });
            let Some(idx) = pick else {
                continue;
            };
            // What the carrier does from now on decides the outage's end,
            // if too few outcomes arrive for the failure rate to.
            if let Some(h) = self.regions.get_mut(&key) {
                h.since_probe = Some((0, 0));
            }
            self.devices[idx as usize].work.queued = true;
            self.switch_queues[key.0.index()].push(Reverse((now, idx, Q_PROBE)));
            // Keep it listed (it returns for good only later), last in
            // line for the next probe.
            if let Some(list) = self.on_fallback.get_mut(&key) {
                if let Some(pos) = list.iter().rposition(|&i| i == idx) {
                    list.remove(pos);
                }
                list.insert(0, idx);
            }
        }
    }
}
