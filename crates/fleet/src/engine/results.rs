//! Results of actions, as drivers report them: the observed state moves,
//! the device's in-flight slot frees, failures back off.

use ferrosim_ids::Timestamp;

use super::{Fleet, Flight};
use crate::action::{ActionResult, Command, Failure, Outcome, PsmoError};
use crate::decision::{Reason, What};
use crate::device::{Mode, ObservedProfile, PackedIccid, Secs, flags};
use crate::error::FleetError;

impl Fleet {
    /// The device's IPA reported its capabilities (EUICCInfo2
    /// `iotSpecificInfo`, IpaCapabilities) on its own account: in answer
    /// to a data request someone else queued, or after a firmware update.
    /// They replace what the fleet had (registered or read before) wherever
    /// it decides — device-local switching, the fallback attribute, rollout
    /// compatibility filters — and a change is logged as a decision with
    /// the new values. Returns whether anything changed.
    pub fn refresh_capabilities(
        &mut self,
        eid: &ferrosim_ids::Eid,
        capabilities: &crate::device::Capabilities,
        now: Timestamp,
    ) -> Result<bool, FleetError> {
        let Some(&idx) = self.index.get(eid) else {
            return Err(FleetError::UnknownDevice(*eid));
        };
        let changed = self.take_capabilities(idx, capabilities, now);
        if changed {
            self.mark(idx);
        }
        Ok(changed)
    }

    /// Takes capabilities the device's IPA reported; whether they differ
    /// from the ones in use.
    fn take_capabilities(
        &mut self,
        idx: u32,
        capabilities: &crate::device::Capabilities,
        now: Timestamp,
    ) -> bool {
        let d = &mut self.devices[idx as usize];
        // Rollback support is not among what the IPA reports: the
        // registered value stays.
        let caps = crate::device::Capabilities {
            rollback_supported: d.caps.rollback_supported,
            ..*capabilities
        };
        let changed = d.caps != caps || !d.work.caps_from_ipa;
        d.caps = caps;
        d.work.read_caps = false;
        d.work.caps_from_ipa = true;
        if changed {
            let (eid, rollout) = (d.eid, d.rollout.map(|m| m.rollout));
            self.decide(
                now,
                Some(eid),
                rollout,
                What::Capabilities { capabilities: caps },
                Reason::DeviceReport {
                    event: "ipa_euicc_data".into(),
                },
            );
        }
        changed
    }

    /// A driver's result for an action. A result for an action that is not
    /// in flight (a duplicate, or for an action replaced after a restart) is
    /// ignored: nothing is done twice.
    pub fn handle_result<R: rand::CryptoRng + ?Sized>(
        &mut self,
        result: &ActionResult,
        now: Timestamp,
        rng: &mut R,
    ) -> Result<(), FleetError> {
        let Some(&idx) = self.index.get(&result.device) else {
            return Err(FleetError::UnknownDevice(result.device));
        };
        if self.devices[idx as usize].work.in_flight != Some(result.id) {
            return Ok(());
        }
        let Some(flight) = self.in_flight.remove(&result.id) else {
            return Ok(());
        };
        // Time-outs of answered actions stay in the heap until they pass;
        // when they are most of it, rebuild it from what is still in flight.
        if self.deadlines.len() > 2 * self.in_flight.len() + 4096 {
            self.deadlines = self
                .in_flight
                .iter()
                .map(|(id, f)| std::cmp::Reverse((f.deadline, *id)))
                .collect();
            // Given back only when far larger than what is in flight (a
            // drained fleet-wide wave), with room to spare: shrunk to fit,
            // the map was grown again (each step rehashing and copying
            // every flight) a few windows later.
            if self.in_flight.capacity() > 8 * self.in_flight.len() + 65_536 {
                self.in_flight.shrink_to(2 * self.in_flight.len() + 4096);
            }
        }
        let d = &mut self.devices[idx as usize];
        d.work.in_flight = None;
        self.apply_outcome(idx, &flight, &result.outcome, now, rng);
        self.mark(idx);
        Ok(())
    }

    fn apply_outcome<R: rand::CryptoRng + ?Sized>(
        &mut self,
        idx: u32,
        flight: &Flight,
        outcome: &Outcome,
        now: Timestamp,
        rng: &mut R,
    ) {
        let command = &flight.action.command;
        match outcome {
            Outcome::Failed { failure, retryable } => {
                self.failed(idx, command, *failure, *retryable, now, rng);
                return;
            }
            Outcome::OrderReserved { iccid } => {
                if let Some(p) = self.downloads.get_mut(&idx) {
                    p.iccid = Some(iccid.clone());
                    p.matching_id = None;
                }
            }
            Outcome::OrderConfirmed { matching_id } => {
                if let Some(p) = self.downloads.get_mut(&idx) {
                    p.matching_id = Some(matching_id.clone());
                }
            }
            Outcome::Installed { iccid } => {
                let t = self.downloads.remove(&idx).map(|p| p.profile_type);
                let ok = self.devices[idx as usize].observed.insert(ObservedProfile {
                    iccid: PackedIccid::new(iccid),
                    profile_type: t,
                    flags: 0,
                });
                if !ok {
                    // More profiles than tracked: read the truth again.
                    self.devices[idx as usize].work.resync = true;
                }
            }
            Outcome::Done => {
                if !self.done(idx, command, now) {
                    // A bare "done" for a command that must answer with
                    // data: read the eUICC again, after a backoff (a driver
                    // answering so forever must not make a hot loop).
                    self.devices[idx as usize].work.resync = true;
                    self.back_off(
                        idx,
                        now,
                        rng,
                        Reason::UnexpectedOutcome {
                            command: command.name().to_owned(),
                        },
                    );
                    return;
                }
            }
            Outcome::RolledBack => {
                self.rolled_back(idx, now, rng);
                return;
            }
            Outcome::Capabilities { capabilities } => {
                self.take_capabilities(idx, capabilities, now);
            }
            Outcome::ProfileList { profiles } => {
                let pending = self
                    .downloads
                    .get(&idx)
                    .and_then(|p| p.iccid.clone().map(|i| (i, p.profile_type)));
                let d = &mut self.devices[idx as usize];
                let old = d.observed;
                d.observed.profiles = Default::default();
                for p in profiles {
                    let packed = PackedIccid::new(&p.iccid);
                    let known = old.by_iccid(packed);
                    let profile_type = known.and_then(|k| k.profile_type).or(pending
                        .as_ref()
                        .filter(|(i, _)| *i == p.iccid)
                        .map(|(_, t)| *t));
                    let mut f = known.map_or(0, |k| {
                        k.flags
                            & (flags::WORKS
                                | flags::REGISTERED
                                | flags::VIA_FALLBACK
                                | flags::REVOKED
                                | flags::FALLBACK_REFUSED)
                    });
                    if p.enabled {
                        f |= flags::ENABLED;
                    } else {
                        f &= !(flags::VIA_FALLBACK | flags::REGISTERED);
                    }
                    if p.fallback_attribute {
                        f |= flags::FALLBACK_ATTR;
                    }
                    d.observed.insert(ObservedProfile {
                        iccid: packed,
                        profile_type,
                        flags: f,
                    });
                }
                // Another profile holds the attribute: that may have been
                // why the eUICC refused it, so the refusal is not kept.
                if d.observed.iter().any(|p| p.has(flags::FALLBACK_ATTR)) {
                    for p in d.observed.profiles.iter_mut().flatten() {
                        p.flags &= !flags::FALLBACK_REFUSED;
                    }
                }
                d.work.resync = false;
                if pending.is_some_and(|(i, _)| d.observed.by_iccid(PackedIccid::new(&i)).is_some())
                {
                    self.downloads.remove(&idx);
                }
            }
        }
        self.devices[idx as usize].work.attempts = 0;
        self.devices[idx as usize].work.not_before = Secs::NEVER;
    }

    /// Applies a successful PSMO or agent command; `false` when "done" is
    /// no answer for this command.
    fn done(&mut self, idx: u32, command: &Command, now: Timestamp) -> bool {
        let d = &mut self.devices[idx as usize];
        match command {
            Command::EimEnable { iccid, .. } | Command::AgentReturnFromFallback { iccid } => {
                d.observed.set_enabled(PackedIccid::new(iccid), false);
                d.health = crate::device::Health {
                    last_data_ok: Secs::of(now),
                    ..Default::default()
                };
            }
            Command::AgentExecuteFallback { iccid } => {
                d.observed.set_enabled(PackedIccid::new(iccid), true);
                d.health = crate::device::Health {
                    last_data_ok: Secs::of(now),
                    ..Default::default()
                };
            }
            Command::EimDelete { iccid } => d.observed.remove(PackedIccid::new(iccid)),
            Command::EimSetFallbackAttribute { iccid } => {
                for p in d.observed.profiles.iter_mut().flatten() {
                    if p.iccid == PackedIccid::new(iccid) {
                        p.flags |= flags::FALLBACK_ATTR;
                        p.flags &= !flags::FALLBACK_REFUSED;
                    } else {
                        p.flags &= !flags::FALLBACK_ATTR;
                    }
                }
            }
            Command::EimUnsetFallbackAttribute { iccid } => {
                if let Some(p) = d.observed.by_iccid_mut(PackedIccid::new(iccid)) {
                    p.flags &= !flags::FALLBACK_ATTR;
                }
            }
            Command::AgentApnConfig { iccid, apn } => {
                if let Some(t) = d
                    .observed
                    .by_iccid(PackedIccid::new(iccid))
                    .and_then(|p| p.profile_type)
                {
                    d.observed.apn_delivered = Some((t, *apn));
                }
            }
            // Answered with their own outcomes; a bare "done" says nothing
            // about the eUICC, so its state is read again.
            Command::Es2DownloadOrder { .. }
            | Command::Es2ConfirmOrder { .. }
            | Command::EimDownloadTrigger { .. }
            | Command::EimListProfileInfo
            | Command::EimReadCapabilities => return false,
        }
        true
    }

    /// The IPA rolled an enable back: the profile enabled before is in use
    /// again. A return (or probe) to the primary that did not connect puts
    /// the device back on its fallback; anything else retries with backoff.
    fn rolled_back<R: rand::CryptoRng + ?Sized>(&mut self, idx: u32, now: Timestamp, rng: &mut R) {
        let d = &mut self.devices[idx as usize];
        let eid = d.eid;
        let rollout = d.rollout.map(|m| m.rollout);
        if d.desired.mode == Mode::Primary
            && d.desired.fallback.is_some()
            && !d.switches.last().is_never()
        {
            let back = d.observed.enabled().and_then(|p| p.profile_type);
            if back.is_some() && back == d.desired.fallback {
                d.desired.mode = Mode::Fallback;
                d.mode_since = Secs::of(now);
                d.switches.push(Secs::of(now));
                let carrier = self.catalog.carrier_of(d.desired.primary);
                let key = (carrier, Self::region_key(d));
                self.on_fallback.entry(key).or_default().push(idx);
                self.decide(
                    now,
                    Some(eid),
                    rollout,
                    What::Adopt { to: back },
                    Reason::DeviceReport {
                        event: "rolled_back".into(),
                    },
                );
                return;
            }
        }
        self.back_off(
            idx,
            now,
            rng,
            Reason::DeviceReport {
                event: "rolled_back".into(),
            },
        );
    }

    fn failed<R: rand::CryptoRng + ?Sized>(
        &mut self,
        idx: u32,
        command: &Command,
        failure: Failure,
        retryable: bool,
        now: Timestamp,
        rng: &mut R,
    ) {
        let attempts = self.devices[idx as usize].work.attempts.saturating_add(1);
        if !retryable {
            match (command, failure) {
                // The profile is not there: forget it (the reconciler
                // downloads it again if it is wanted).
                (
                    Command::EimEnable { iccid, .. }
                    | Command::EimDelete { iccid }
                    | Command::EimSetFallbackAttribute { iccid }
                    | Command::EimUnsetFallbackAttribute { iccid },
                    Failure::Psmo {
                        error: PsmoError::NotFound,
                    },
                ) => {
                    self.devices[idx as usize]
                        .observed
                        .remove(PackedIccid::new(iccid));
                }
                // The eUICC refuses the attribute on this profile
                // (fallbackNotAllowed): remembered on the profile so the
                // reconciler stops asking, and the profiles are read again
                // (in case another profile holds the attribute).
                (
                    Command::EimSetFallbackAttribute { iccid },
                    Failure::Psmo {
                        error: PsmoError::NotAllowed,
                    },
                ) => {
                    let d = &mut self.devices[idx as usize];
                    if let Some(p) = d.observed.by_iccid_mut(PackedIccid::new(iccid)) {
                        p.flags |= flags::FALLBACK_REFUSED;
                    }
                    d.work.resync = true;
                }
                // The IPA cannot tell (an error answer that will stay):
                // the registered capabilities are used.
                (Command::EimReadCapabilities, _) => {
                    self.devices[idx as usize].work.read_caps = false;
                }
                // What was known of the eUICC is wrong: read it again.
                (_, Failure::Psmo { .. }) => self.devices[idx as usize].work.resync = true,
                // The SM-DP+ refused the order or the download failed for
                // good: start the download over (a new order).
                (
                    Command::Es2DownloadOrder { .. }
                    | Command::Es2ConfirmOrder { .. }
                    | Command::EimDownloadTrigger { .. },
                    _,
                ) => {
                    self.downloads.remove(&idx);
                }
                _ => {}
            }
        }
        self.back_off(idx, now, rng, Reason::ActionFailed { failure, attempts });
    }
}
