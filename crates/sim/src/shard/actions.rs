//! A shard's devices carrying out the fleet's actions: eIM packages
//! (queued, fetched by the IPA, run by the eUICC, results verified by the
//! eIM), device-agent commands, and what the simulator cannot serve.

use ferrosim_eim::{Operation, PackageContent};
use ferrosim_fleet::action::{Failure, ListedProfile, PsmoError};
use ferrosim_fleet::{Action, ActionResult, Command, Outcome};
use ferrosim_ids::{Iccid, Timestamp};
use ferrosim_telemetry::{EventKind, Function, ProfileChange, ProfileKey, StepStatus};
use rand::RngExt;

use super::{Ctx, Ev, OutKind, Pending, Shard};
use crate::error::SimError;
use crate::iot::{Fetched, IotCard, Op};

impl Shard {
    /// An action arrives at the window's start.
    pub(super) fn start_action(
        &mut self,
        t: i64,
        global: u32,
        action: Action,
        ctx: &Ctx<'_>,
    ) -> Result<(), SimError> {
        let local = self.local(global);
        let now = Timestamp(ctx.t0 + t);
        if let Some(p) = &self.devices[local].pending
            && p.action.id == action.id
        {
            // Issued again after a time-out: it is being executed once.
            return Ok(());
        }
        let operation = match &action.command {
            Command::EimEnable { iccid, rollback } => Operation::Enable {
                iccid: iccid.clone(),
                rollback: *rollback,
            },
            Command::EimDelete { iccid } => Operation::Delete {
                iccid: iccid.clone(),
            },
            Command::EimSetFallbackAttribute { iccid } => Operation::SetFallback {
                iccid: iccid.clone(),
            },
            Command::EimUnsetFallbackAttribute { .. } => Operation::UnsetFallback,
            Command::EimListProfileInfo => Operation::ListProfiles,
            Command::AgentApnConfig { iccid, apn } => {
                // The device agent takes the APN with its next contact.
                let at = t + ctx.population.poll_delay_ms(&mut self.rng);
                let served = ctx.apn_served.get(apn.index()).copied().unwrap_or(true);
                self.set_apn(at, local, iccid, served);
                let d = &mut self.devices[local];
                let apn = u16::try_from(apn.index()).unwrap_or(u16::MAX);
                if let Some(idx) = d.profiles.iter().position(|(i, _)| i == iccid) {
                    let idx = idx as u8;
                    let before = d.apn.replace((idx, apn));
                    // A different APN for the enabled profile than the one
                    // the agent had: it re-attaches with it. (The first
                    // settings a device gets are those it was deployed
                    // with; a profile switched to gets its own.)
                    if idx == d.enabled && before.is_some_and(|(p, a)| p == idx && a != apn) {
                        self.push(at, local, Ev::Reattach);
                    }
                }
                self.emit(
                    t,
                    local,
                    OutKind::Result(ActionResult {
                        id: action.id,
                        device: action.device,
                        outcome: Outcome::Done,
                    }),
                );
                return Ok(());
            }
            Command::AgentExecuteFallback { .. } | Command::AgentReturnFromFallback { .. } => {
                // The device agent has the IPA run the eUICC's SGP.32
                // ExecuteFallbackMechanism (or ReturnFromFallback): the
                // eUICC enables the profile holding the fallback attribute
                // (or the one enabled before it) and signs the disable and
                // enable notifications; no eIM package is involved.
                self.ensure_card(local, now, ctx)?;
                let to_fallback = matches!(action.command, Command::AgentExecuteFallback { .. });
                let (code, enabled) = match self.devices[local].card.as_mut() {
                    Some(card) if to_fallback => {
                        card.execute_fallback(now, &mut self.rng, &ctx.factory.ec)?
                    }
                    Some(card) => card.return_from_fallback(now, &mut self.rng, &ctx.factory.ec)?,
                    None => (127, None),
                };
                let idx = enabled.as_ref().and_then(|iccid| {
                    self.devices[local]
                        .profiles
                        .iter()
                        .position(|(i, _)| i == iccid)
                });
                let (Some(iccid), Some(idx), 0) = (enabled, idx, code) else {
                    // The eUICC refused the switch (no fallback attribute,
                    // the profile not disabled, ...): the device stays
                    // where it is and the agent says why.
                    let error = if code == 0 {
                        PsmoError::NotFound
                    } else {
                        psmo_error(code)
                    };
                    self.emit(t, local, failed(&action, Failure::Psmo { error }, false));
                    return Ok(());
                };
                let previous = self.devices[local].enabled;
                self.switch_to(local, idx as u8);
                if let Some(profile) = ProfileKey::from_digits(iccid.as_str()) {
                    self.emit(
                        t,
                        local,
                        OutKind::Event(
                            EventKind::Profile {
                                profile,
                                change: ProfileChange::Enabled,
                            },
                            action.activation,
                        ),
                    );
                }
                self.devices[local].pending = Some(Box::new(Pending {
                    action: action.clone(),
                    trying: Some((previous, false, 0)),
                }));
                self.attempt(t, local, ctx);
                return Ok(());
            }
            Command::EimDownloadTrigger { .. } => {
                // The IPA gets the trigger with its next poll and downloads.
                self.ensure_card(local, now, ctx)?;
                self.devices[local].pending = Some(Box::new(Pending {
                    action,
                    trying: None,
                }));
                let at = t + ctx.population.poll_delay_ms(&mut self.rng);
                self.push(at, local, Ev::Poll);
                return Ok(());
            }
            // The simulator registers its devices with their capabilities,
            // so the fleet never asks it to read them; counted as unserved
            // like ES2+ if it ever does.
            Command::Es2DownloadOrder { .. }
            | Command::Es2ConfirmOrder { .. }
            | Command::EimReadCapabilities => {
                let name = action.command.name();
                match self.unserved.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, c)) => *c += 1,
                    None => self.unserved.push((name, 1)),
                }
                self.emit(t, local, failed(&action, Failure::Unreachable, false));
                return Ok(());
            }
        };
        self.ensure_card(local, now, ctx)?;
        let eid = self.devices[local].seed.eid;
        futures::executor::block_on(ctx.factory.eim.enqueue_package(
            &eid,
            &PackageContent::Psmos(vec![operation]),
            &mut self.rng,
            now,
        ))
        .map_err(|e| SimError::Device(format!("eIM enqueue: {e}")))?;
        ctx.factory
            .ec
            .signs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.devices[local].pending = Some(Box::new(Pending {
            action,
            trying: None,
        }));
        let at = t + ctx.population.poll_delay_ms(&mut self.rng);
        self.push(at, local, Ev::Poll);
        Ok(())
    }

    /// Makes the device's eUICC on first use.
    fn ensure_card(&mut self, local: usize, now: Timestamp, ctx: &Ctx<'_>) -> Result<(), SimError> {
        if self.devices[local].card.is_none() {
            let d = &self.devices[local];
            let iccids: Vec<Iccid> = d.profiles.iter().map(|(i, _)| i.clone()).collect();
            let card = ctx.factory.make(
                d.seed.eid,
                &iccids,
                usize::from(d.enabled),
                // The staged fallback carries the attribute as deployed.
                d.seed.profiles.get(1).map(|(i, _)| i.clone()),
                now,
            )?;
            self.devices[local].card = Some(Box::new(card));
            self.cards_made += 1;
        }
        Ok(())
    }

    /// The IPA fetches and runs the queued package.
    pub(super) fn poll(&mut self, t: i64, local: usize, ctx: &Ctx<'_>) -> Result<(), SimError> {
        let d = &self.devices[local];
        if d.pending.is_none() {
            return Ok(());
        }
        let loss = ctx.population.vendor(d.seed.vendor).package_loss;
        if !(ctx.population.poll_without_service || d.registered)
            || (loss > 0.0 && self.rng.random::<f64>() < loss)
        {
            let at = t + ctx.population.poll_delay_ms(&mut self.rng);
            self.push(at, local, Ev::Poll);
            return Ok(());
        }
        if self.devices[local]
            .pending
            .as_ref()
            .is_some_and(|p| matches!(p.action.command, Command::EimDownloadTrigger { .. }))
        {
            return self.download_triggered(t, local, ctx);
        }
        let now = Timestamp(ctx.t0 + t);
        let Some(mut card) = self.devices[local].card.take() else {
            return Ok(());
        };
        let fetched = ctx.factory.fetch(&mut card, now, &mut self.rng);
        let listed = list(&card);
        self.devices[local].card = Some(card);
        let Some(pending) = self.devices[local].pending.take() else {
            return Ok(());
        };
        let action = pending.action;
        let activation = action.activation;
        let Some(fetched) = fetched? else {
            self.emit(t, local, failed(&action, Failure::Unreachable, true));
            return Ok(());
        };
        self.steps(t, local, &fetched, activation);
        if !fetched.accepted {
            self.emit(t, local, failed(&action, Failure::Unreachable, true));
            return Ok(());
        }
        let Some((op, code)) = fetched.operations.first().cloned() else {
            self.emit(t, local, failed(&action, Failure::Unreachable, true));
            return Ok(());
        };
        if code != 0 {
            let error = psmo_error(code);
            self.emit(t, local, failed(&action, Failure::Psmo { error }, false));
            return Ok(());
        }
        match op {
            Op::Enable(iccid, rollback) => {
                let Some(idx) = self.devices[local]
                    .profiles
                    .iter()
                    .position(|(i, _)| *i == iccid)
                else {
                    self.emit(
                        t,
                        local,
                        failed(
                            &action,
                            Failure::Psmo {
                                error: PsmoError::NotFound,
                            },
                            false,
                        ),
                    );
                    return Ok(());
                };
                let previous = self.devices[local].enabled;
                self.switch_to(local, idx as u8);
                if let Some(profile) = ProfileKey::from_digits(iccid.as_str()) {
                    self.emit(
                        t,
                        local,
                        OutKind::Event(
                            EventKind::Profile {
                                profile,
                                change: ProfileChange::Enabled,
                            },
                            activation,
                        ),
                    );
                }
                self.devices[local].pending = Some(Box::new(Pending {
                    action,
                    trying: Some((previous, rollback, 0)),
                }));
                self.attempt(t, local, ctx);
            }
            Op::Delete(iccid) => {
                let d = &mut self.devices[local];
                if let Some(idx) = d.profiles.iter().position(|(i, _)| *i == iccid) {
                    d.profiles.remove(idx);
                    if usize::from(d.enabled) > idx {
                        d.enabled -= 1;
                    }
                    d.apn = match d.apn {
                        Some((p, _)) if usize::from(p) == idx => None,
                        Some((p, a)) if usize::from(p) > idx => Some((p - 1, a)),
                        other => other,
                    };
                }
                if let Some(profile) = ProfileKey::from_digits(iccid.as_str()) {
                    self.emit(
                        t,
                        local,
                        OutKind::Event(
                            EventKind::Profile {
                                profile,
                                change: ProfileChange::Deleted,
                            },
                            activation,
                        ),
                    );
                }
                self.emit(
                    t,
                    local,
                    OutKind::Result(ActionResult {
                        id: action.id,
                        device: action.device,
                        outcome: Outcome::Done,
                    }),
                );
            }
            Op::List => {
                self.emit(
                    t,
                    local,
                    OutKind::Result(ActionResult {
                        id: action.id,
                        device: action.device,
                        outcome: Outcome::ProfileList { profiles: listed },
                    }),
                );
            }
            Op::Disable(_) | Op::SetFallback(_) | Op::UnsetFallback | Op::Other => {
                self.emit(
                    t,
                    local,
                    OutKind::Result(ActionResult {
                        id: action.id,
                        device: action.device,
                        outcome: Outcome::Done,
                    }),
                );
            }
        }
        Ok(())
    }

    /// The two ESipa calls of a fetched package, for telemetry.
    fn steps(&mut self, t: i64, local: usize, f: &Fetched, activation: Option<u64>) {
        for (function, bytes) in [
            (Function::IpaGetEimPackage, f.poll_bytes),
            (Function::IpaProvideEimPackageResult, f.provide_bytes),
        ] {
            let duration_ms = self.rng.random_range(80..400);
            self.emit(
                t,
                local,
                OutKind::Event(
                    EventKind::Step {
                        function,
                        status: StepStatus::Ok,
                        duration_ms,
                        signalling_bytes: bytes,
                        bpp_bytes: 0,
                    },
                    activation,
                ),
            );
        }
    }
}

fn list(card: &IotCard) -> Vec<ListedProfile> {
    card.state()
        .profiles
        .iter()
        .map(|p| ListedProfile {
            fallback_attribute: card.fallback.as_ref() == Some(&p.iccid),
            enabled: p.state == ferrosim_asn1::values::ProfileState::Enabled,
            iccid: p.iccid.clone(),
        })
        .collect()
}

/// The fleet's reading of an eUICC result code.
fn psmo_error(code: i64) -> PsmoError {
    match code {
        1 => PsmoError::NotFound,
        2 => PsmoError::WrongState,
        3 => PsmoError::NotAllowed,
        c => PsmoError::Other(u8::try_from(c).unwrap_or(u8::MAX)),
    }
}

fn failed(action: &Action, failure: Failure, retryable: bool) -> OutKind {
    OutKind::Result(ActionResult {
        id: action.id,
        device: action.device,
        outcome: Outcome::Failed { failure, retryable },
    })
}
