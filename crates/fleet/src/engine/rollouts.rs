//! Rollouts in motion: waves start, soak, are gated on measured outcomes,
//! and roll back on a failed gate or an abort.

use std::cmp::Reverse;

use ferrosim_ids::{Eid, Timestamp};
use ferrosim_telemetry::{ActivationKind, Metrics};

use super::Fleet;
use crate::decision::{Reason, What};
use crate::device::{MarkState, RolloutMark};
use crate::error::FleetError;
use crate::gate::{GateQuery, Verdict, evaluate};
use crate::rollout::{Change, Rollout, RolloutSpec, RolloutState};

/// How often a gate without enough samples asks again.
const REQUERY: std::time::Duration = std::time::Duration::from_secs(60);

impl Fleet {
    /// Creates a rollout and starts its first wave at the next poll.
    /// Incompatible devices are skipped now, each with a decision saying why.
    pub fn create_rollout(&mut self, spec: RolloutSpec, now: Timestamp) -> Result<u32, FleetError> {
        Rollout::validate(&spec).map_err(FleetError::InvalidRollout)?;
        let change =
            Change::resolve(&spec.change, &self.catalog).map_err(FleetError::InvalidRollout)?;
        let groups = spec
            .groups
            .iter()
            .map(|g| {
                self.catalog
                    .group_id(g)
                    .ok_or_else(|| FleetError::UnknownName {
                        kind: "group",
                        name: g.clone(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut tag_mask = 0u64;
        for t in &spec.tags_any {
            let bit = self
                .catalog
                .tag_bit(t)
                .ok_or_else(|| FleetError::UnknownName {
                    kind: "tag",
                    name: t.clone(),
                })?;
            tag_mask |= 1 << bit;
        }
        let id = self.next_rollout;
        self.next_rollout += 1;
        let mut rollout = Rollout {
            id,
            spec,
            state: RolloutState::Running,
            wave: None,
            wave_started: None,
            gate_pending: false,
            eligible: 0,
            skipped: 0,
            members: Vec::new(),
            previous: Default::default(),
            gates: Vec::new(),
            created: now,
            groups,
            tag_mask,
        };
        for idx in 0..self.devices.len() as u32 {
            if !rollout.selects(&self.devices[idx as usize]) {
                continue;
            }
            match self.fit(&rollout, change, idx) {
                Ok(()) => rollout.eligible += 1,
                Err(why) => {
                    rollout.skipped += 1;
                    let d = &mut self.devices[idx as usize];
                    if d.rollout.is_none_or(|m| m.state != MarkState::Applied) {
                        d.rollout = Some(RolloutMark {
                            rollout: id,
                            wave: 0,
                            state: MarkState::Skipped,
                        });
                    }
                    let eid = d.eid;
                    self.decide(
                        now,
                        Some(eid),
                        Some(id),
                        What::Skip,
                        Reason::Incompatible { filter: why },
                    );
                }
            }
        }
        self.rollouts.insert(id, rollout);
        self.rollout_timers.push(Reverse((now, id)));
        self.decide(
            now,
            None,
            Some(id),
            What::RolloutState {
                state: RolloutState::Running.name().into(),
            },
            Reason::Operator,
        );
        Ok(id)
    }

    /// Whether a selected device can take the change.
    fn fit(&self, r: &Rollout, change: Change, idx: u32) -> Result<(), String> {
        let d = &self.devices[idx as usize];
        if let Some(m) = d
            .rollout
            .filter(|m| m.rollout != r.id && m.state == MarkState::Applied)
        {
            return Err(format!("in rollout {} (soaking)", m.rollout));
        }
        if let Some(why) = r.spec.compat.check(d)? {
            return Err(why);
        }
        change.apply(&d.desired, &self.catalog).map(|_| ())
    }

    /// An operator approves the next wave of a rollout waiting for it.
    pub fn approve_rollout(&mut self, id: u32, now: Timestamp) -> Result<(), FleetError> {
        self.rollout_command(id, "approve", now, |s| {
            (s == RolloutState::AwaitingApproval).then_some(RolloutState::Running)
        })?;
        self.start_next_wave(id, now);
        Ok(())
    }

    /// Pauses a running rollout: no new wave, no gate verdict.
    pub fn pause_rollout(&mut self, id: u32, now: Timestamp) -> Result<(), FleetError> {
        self.rollout_command(id, "pause", now, |s| {
            (s == RolloutState::Running).then_some(RolloutState::Paused)
        })
    }

    /// Resumes a paused rollout where it was.
    pub fn resume_rollout(&mut self, id: u32, now: Timestamp) -> Result<(), FleetError> {
        self.rollout_command(id, "resume", now, |s| {
            (s == RolloutState::Paused).then_some(RolloutState::Running)
        })?;
        if let Some(r) = self.rollouts.get_mut(&id) {
            r.gate_pending = false;
        }
        self.rollout_timers.push(Reverse((now, id)));
        Ok(())
    }

    /// Aborts a rollout and rolls back every device it changed.
    pub fn abort_rollout(&mut self, id: u32, now: Timestamp) -> Result<(), FleetError> {
        self.rollout_command(id, "abort", now, |s| {
            (!s.is_final()).then_some(RolloutState::Aborted)
        })?;
        let members: Vec<Eid> = self
            .rollouts
            .get(&id)
            .map(|r| r.members.concat())
            .unwrap_or_default();
        self.roll_back(id, &members, "aborted by an operator", now);
        Ok(())
    }

    fn rollout_command(
        &mut self,
        id: u32,
        command: &'static str,
        now: Timestamp,
        next: impl FnOnce(RolloutState) -> Option<RolloutState>,
    ) -> Result<(), FleetError> {
        let r = self
            .rollouts
            .get_mut(&id)
            .ok_or(FleetError::UnknownRollout(id))?;
        let to = next(r.state).ok_or(FleetError::RolloutState {
            id,
            command,
            state: r.state.name(),
        })?;
        r.state = to;
        self.decide(
            now,
            None,
            Some(id),
            What::RolloutState {
                state: to.name().into(),
            },
            Reason::Operator,
        );
        Ok(())
    }

    /// The measurements a gate query asked for (wave and control metrics
    /// from `ferrosim-telemetry`). A verdict for a wave that is no longer
    /// waiting for one is ignored.
    pub fn handle_gate_metrics(
        &mut self,
        id: u32,
        wave: u8,
        wave_metrics: &Metrics,
        control: &Metrics,
        now: Timestamp,
    ) -> Result<(), FleetError> {
        let r = self
            .rollouts
            .get_mut(&id)
            .ok_or(FleetError::UnknownRollout(id))?;
        if r.state != RolloutState::Running || r.wave != Some(wave) || !r.gate_pending {
            return Ok(());
        }
        r.gate_pending = false;
        let mut report = evaluate(&r.spec.gate, wave_metrics, control);
        let started = r.wave_started.unwrap_or(now);
        let out_of_time = now >= started.plus(r.spec.max_wait.duration());
        // A wave is judged on devices that carry the change: while one of
        // them has not got there (a download retrying, a result not yet
        // in), its good reports on the old profile prove nothing.
        let members = r
            .members
            .get(usize::from(wave))
            .cloned()
            .unwrap_or_default();
        let in_place = members
            .iter()
            .filter(|eid| {
                self.index
                    .get(eid)
                    .is_some_and(|&idx| self.change_in_place(idx, now))
            })
            .count();
        if in_place < members.len() && report.verdict != Verdict::Fail {
            report.checks.push(crate::gate::GateCheck {
                metric: "devices_with_the_change".into(),
                wave: Some(in_place as f64 / members.len() as f64),
                control: None,
                bound: 1.0,
                passed: false,
            });
            report.verdict = Verdict::Insufficient;
        }
        let Some(r) = self.rollouts.get_mut(&id) else {
            return Ok(());
        };
        if report.verdict == Verdict::Insufficient {
            if !out_of_time {
                self.rollout_timers.push(Reverse((now.plus(REQUERY), id)));
                return Ok(());
            }
            report.verdict = Verdict::Fail;
        }
        let last = usize::from(wave) + 1 == r.spec.waves.len();
        let manual = r.spec.manual_approval;
        r.gates.push(report.clone());
        let members = r
            .members
            .get(usize::from(wave))
            .cloned()
            .unwrap_or_default();
        if report.verdict == Verdict::Pass {
            self.decide(
                now,
                None,
                Some(id),
                What::GatePass { wave },
                Reason::Gate { report },
            );
            for eid in &members {
                if let Some(&idx) = self.index.get(eid) {
                    let d = &mut self.devices[idx as usize];
                    if let Some(m) = d
                        .rollout
                        .as_mut()
                        .filter(|m| m.rollout == id && m.state == MarkState::Applied)
                    {
                        m.state = MarkState::Passed;
                    }
                    // Replaced profiles may go now.
                    self.mark(idx);
                }
            }
            let next = if last {
                RolloutState::Completed
            } else if manual {
                RolloutState::AwaitingApproval
            } else {
                RolloutState::Running
            };
            if let Some(r) = self.rollouts.get_mut(&id) {
                r.state = next;
            }
            if next != RolloutState::Running {
                self.decide(
                    now,
                    None,
                    Some(id),
                    What::RolloutState {
                        state: next.name().into(),
                    },
                    Reason::Plan {
                        cumulative_percent: self
                            .rollouts
                            .get(&id)
                            .and_then(|r| r.spec.waves.get(usize::from(wave)).copied())
                            .unwrap_or(100),
                        eligible: self.rollouts.get(&id).map_or(0, |r| r.eligible),
                    },
                );
            } else {
                self.start_next_wave(id, now);
            }
        } else {
            self.decide(
                now,
                None,
                Some(id),
                What::GateFail { wave },
                Reason::Gate { report },
            );
            if let Some(r) = self.rollouts.get_mut(&id) {
                r.state = RolloutState::Halted;
            }
            self.decide(
                now,
                None,
                Some(id),
                What::RolloutState {
                    state: RolloutState::Halted.name().into(),
                },
                Reason::RolloutHalted {
                    cause: format!("gate of wave {} failed", u16::from(wave) + 1),
                },
            );
            self.roll_back(id, &members, "gate failed", now);
        }
        Ok(())
    }

    /// Whether a device's desired active profile is the enabled one and
    /// nothing is in flight or waiting to be retried for it.
    fn change_in_place(&self, idx: u32, now: Timestamp) -> bool {
        let d = &self.devices[idx as usize];
        let active = d.desired.active();
        d.observed
            .enabled()
            .is_some_and(|p| p.profile_type == Some(active))
            && d.work.in_flight.is_none()
            && (d.work.not_before.is_never() || d.work.not_before.ts() <= now)
    }

    /// Rollouts whose timer came: start a wave, or ask for a gate.
    pub(super) fn poll_rollouts(&mut self, now: Timestamp) {
        while let Some(&Reverse((at, id))) = self.rollout_timers.peek() {
            if at > now {
                break;
            }
            self.rollout_timers.pop();
            let Some(r) = self.rollouts.get(&id) else {
                continue;
            };
            if r.state != RolloutState::Running {
                continue;
            }
            match (r.wave, r.wave_started) {
                (None, _) => self.start_next_wave(id, now),
                (Some(w), Some(started)) if !r.gate_pending => {
                    if now < started.plus(r.spec.soak.duration()) {
                        let at = started.plus(r.spec.soak.duration());
                        self.rollout_timers.push(Reverse((at, id)));
                        continue;
                    }
                    let wave_devices = r.members.get(usize::from(w)).cloned().unwrap_or_default();
                    let control = self.control_devices(id);
                    let q = GateQuery::new(id, w, wave_devices, control, started, now);
                    if let Some(r) = self.rollouts.get_mut(&id) {
                        r.gate_pending = true;
                    }
                    self.gate_queries.push_back(q);
                }
                _ => {}
            }
        }
    }

    /// Devices of the rollout's selection it has not touched.
    fn control_devices(&self, id: u32) -> Vec<Eid> {
        let Some(r) = self.rollouts.get(&id) else {
            return Vec::new();
        };
        self.devices
            .iter()
            .filter(|d| r.selects(d) && d.rollout.is_none_or(|m| m.rollout != id))
            .map(|d| d.eid)
            .collect()
    }

    fn start_next_wave(&mut self, id: u32, now: Timestamp) {
        let Some(r) = self.rollouts.get(&id) else {
            return;
        };
        let w = r.wave.map_or(0, |w| w + 1);
        if usize::from(w) >= r.spec.waves.len() {
            return;
        }
        let Ok(change) = Change::resolve(&r.spec.change, &self.catalog) else {
            return;
        };
        let done: u64 = r.members.iter().map(|m| m.len() as u64).sum();
        let want = r.target(w).saturating_sub(done);
        let mut candidates: Vec<(u64, u32)> = (0..self.devices.len() as u32)
            .filter(|&idx| {
                let d = &self.devices[idx as usize];
                r.selects(d)
                    && d.rollout.is_none_or(|m| m.rollout != id)
                    && self.fit(r, change, idx).is_ok()
            })
            .map(|idx| (r.rank(&self.devices[idx as usize].eid), idx))
            .collect();
        candidates.sort_unstable();
        candidates.truncate(usize::try_from(want).unwrap_or(usize::MAX));
        let mut members = Vec::with_capacity(candidates.len());
        let mut previous = Vec::with_capacity(candidates.len());
        for &(_, idx) in &candidates {
            let d = &mut self.devices[idx as usize];
            let Ok(next) = change.apply(&d.desired, &self.catalog) else {
                continue;
            };
            previous.push((d.eid, d.desired));
            members.push(d.eid);
            let switches_profile = next.active() != d.desired.active();
            self.count_carriers(idx, -1);
            let d = &mut self.devices[idx as usize];
            d.desired.primary = next.primary;
            d.desired.fallback = next.fallback;
            d.desired.primary_apn = next.primary_apn;
            d.desired.rule = next.rule;
            d.rollout = Some(RolloutMark {
                rollout: id,
                wave: w,
                state: MarkState::Applied,
            });
            d.work.converged = false;
            self.count_carriers(idx, 1);
            // Only a step that moves the device to another profile is an
            // activation (its success: the profile installed or enabled,
            // then registered on). A new APN, rule or staged fallback
            // leaves the device on its profile: the gate judges its
            // registrations and data path.
            if switches_profile {
                self.new_activation(idx, ActivationKind::RolloutStep, now);
            }
            self.mark(idx);
        }
        let n = members.len() as u64;
        let Some(r) = self.rollouts.get_mut(&id) else {
            return;
        };
        r.previous.extend(previous);
        r.members.push(members);
        r.wave = Some(w);
        r.wave_started = Some(now);
        r.gate_pending = false;
        let soak_end = now.plus(r.spec.soak.duration());
        let plan = Reason::Plan {
            cumulative_percent: r.spec.waves[usize::from(w)],
            eligible: r.eligible,
        };
        self.rollout_timers.push(Reverse((soak_end, id)));
        self.decide(
            now,
            None,
            Some(id),
            What::WaveStart {
                wave: w,
                devices: n,
            },
            plan,
        );
    }

    /// Restores the desired state `devices` had before rollout `id` changed
    /// it; the reconciler then re-enables the previous profile and, once
    /// it works, removes what the rollout added.
    fn roll_back(&mut self, id: u32, devices: &[Eid], cause: &str, now: Timestamp) {
        for eid in devices {
            let Some(&idx) = self.index.get(eid) else {
                continue;
            };
            let Some(prev) = self
                .rollouts
                .get(&id)
                .and_then(|r| r.previous.get(eid).copied())
            else {
                continue;
            };
            let d = &self.devices[idx as usize];
            if d.rollout
                .is_none_or(|m| m.rollout != id || m.state == MarkState::RolledBack)
            {
                continue;
            }
            let switches_profile = prev.active() != d.desired.active();
            self.count_carriers(idx, -1);
            let d = &mut self.devices[idx as usize];
            d.desired.primary = prev.primary;
            d.desired.fallback = prev.fallback;
            d.desired.primary_apn = prev.primary_apn;
            d.desired.rule = prev.rule;
            if let Some(m) = d.rollout.as_mut() {
                m.state = MarkState::RolledBack;
            }
            d.work.converged = false;
            d.work.attempts = 0;
            d.work.not_before = crate::device::Secs::NEVER;
            self.count_carriers(idx, 1);
            if switches_profile {
                self.new_activation(idx, ActivationKind::RolloutStep, now);
            }
            self.decide(
                now,
                Some(*eid),
                Some(id),
                What::RollBack,
                Reason::RolloutHalted {
                    cause: cause.to_owned(),
                },
            );
            self.mark(idx);
        }
    }
}
