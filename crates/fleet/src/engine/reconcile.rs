//! The reconciler: the next step from a device's observed state towards
//! its desired state, one action in flight per device.
//!
//! [`next_step`] is a pure function of the catalog, the device and its
//! pending download. The order of steps keeps a device connected: first
//! the profile it should use is installed and enabled (with rollback) and
//! its APN delivered, then fallbacks are staged and marked, and only then
//! are profiles no longer wanted (or revoked) removed — never the enabled one, never
//! while the enabled one has not been proven working, never a profile the
//! fleet did not order, and never one a soaking rollout may roll back to.

use ferrosim_ids::Timestamp;

use super::{Fleet, PendingDownload};
use crate::action::{Action, ActivationCode, Command};
use crate::catalog::{Catalog, ProfileTypeId};
use crate::config::SwitchMethod;
use crate::decision::{Need, Reason, What};
use crate::device::{DeviceState, MarkState, Secs, flags};
use crate::duration::Span;
use crate::limit;

/// What the reconciler wants for a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do: observed matches desired.
    Converged,
    /// Nothing to do now (waiting for proof that the enabled profile works
    /// before removing anything).
    Wait,
    /// Issue this command.
    Issue(Command, Need, Option<ProfileTypeId>),
}

/// The next step for `d` (see the module documentation).
pub fn next_step(
    cat: &Catalog,
    d: &DeviceState,
    method: SwitchMethod,
    pending: Option<&PendingDownload>,
) -> Step {
    if d.work.resync {
        return Step::Issue(Command::EimListProfileInfo, Need::Resync, None);
    }
    if d.work.read_caps {
        return Step::Issue(Command::EimReadCapabilities, Need::Capabilities, None);
    }
    let caps = d.caps;
    let want = d.desired;
    let o = &d.observed;
    let active = want.active();
    let enabled = o.enabled();

    // 1. The profile to use: installed, then enabled.
    let Some(target) = o.of_type(active) else {
        return download(cat, active, pending);
    };
    // The target's ICCID is decoded (digits and check digit) only for a
    // command that names it: most calls find the device converged.
    if !target.has(flags::ENABLED) {
        let Some(iccid) = target.iccid.iccid() else {
            return Step::Issue(Command::EimListProfileInfo, Need::Resync, None);
        };
        let device_local = method == SwitchMethod::DeviceLocal && caps.fallback_supported;
        if device_local
            && target.has(flags::FALLBACK_ATTR)
            && want.mode != crate::device::Mode::Primary
        {
            return Step::Issue(
                Command::AgentExecuteFallback { iccid },
                Need::ExecuteFallback,
                Some(active),
            );
        }
        if device_local && enabled.is_some_and(|e| e.has(flags::VIA_FALLBACK)) {
            return Step::Issue(
                Command::AgentReturnFromFallback { iccid },
                Need::ReturnFromFallback,
                Some(active),
            );
        }
        let rollback = caps.rollback_supported && enabled.is_some();
        return Step::Issue(
            Command::EimEnable { iccid, rollback },
            Need::Enable,
            Some(active),
        );
    }

    // 2. Its APN.
    let apn = if active == want.primary {
        want.primary_apn.unwrap_or(cat.profile_type(active).apn)
    } else {
        cat.profile_type(active).apn
    };
    if o.apn_delivered != Some((active, apn)) {
        let Some(iccid) = target.iccid.iccid() else {
            return Step::Issue(Command::EimListProfileInfo, Need::Resync, None);
        };
        return Step::Issue(
            Command::AgentApnConfig { iccid, apn },
            Need::Apn,
            Some(active),
        );
    }

    // 3. The other desired profiles, staged.
    for t in [want.fallback, want.spare, Some(want.primary)]
        .into_iter()
        .flatten()
    {
        if t != active && o.of_type(t).is_none() {
            return download(cat, t, pending);
        }
    }

    // 4. The fallback attribute on the right profile.
    if caps.fallback_supported {
        let target = want
            .fallback_target()
            .filter(|t| cat.profile_type(*t).fallback_allowed)
            .and_then(|t| o.of_type(t))
            .filter(|p| !p.has(flags::FALLBACK_REFUSED));
        let holder = o.iter().find(|p| p.has(flags::FALLBACK_ATTR));
        match (holder, target) {
            (Some(h), Some(t)) if h.iccid == t.iccid => {}
            (Some(h), _) if h.has(flags::ENABLED) && h.has(flags::VIA_FALLBACK) => {}
            (Some(h), _) => {
                if let Some(iccid) = h.iccid.iccid() {
                    return Step::Issue(
                        Command::EimUnsetFallbackAttribute { iccid },
                        Need::UnsetFallbackAttribute,
                        h.profile_type,
                    );
                }
            }
            (None, Some(t)) => {
                if let Some(iccid) = t.iccid.iccid() {
                    return Step::Issue(
                        Command::EimSetFallbackAttribute { iccid },
                        Need::SetFallbackAttribute,
                        t.profile_type,
                    );
                }
            }
            (None, None) => {}
        }
    }

    // 5. Profiles the fleet ordered and no longer wants, and revoked ones.
    let soaking = d.rollout.is_some_and(|m| m.state == MarkState::Applied);
    let stray = o.iter().find(|p| {
        (p.has(flags::REVOKED) || p.profile_type.is_some_and(|t| !want.holds(t)))
            && !p.has(flags::ENABLED)
    });
    if let Some(p) = stray {
        if soaking {
            return Step::Converged;
        }
        let enabled_works = enabled.is_some_and(|e| e.has(flags::WORKS));
        if !enabled_works {
            return Step::Wait;
        }
        let Some(iccid) = p.iccid.iccid() else {
            return Step::Issue(Command::EimListProfileInfo, Need::Resync, None);
        };
        if p.has(flags::FALLBACK_ATTR) {
            return Step::Issue(
                Command::EimUnsetFallbackAttribute { iccid },
                Need::UnsetFallbackAttribute,
                p.profile_type,
            );
        }
        return Step::Issue(Command::EimDelete { iccid }, Need::Remove, p.profile_type);
    }
    Step::Converged
}

fn download(cat: &Catalog, t: ProfileTypeId, pending: Option<&PendingDownload>) -> Step {
    let carrier = cat.carrier_of(t);
    let smdp = cat.carrier(carrier).smdp;
    match pending.filter(|p| p.profile_type == t) {
        Some(PendingDownload {
            iccid: Some(iccid),
            matching_id: Some(matching_id),
            ..
        }) => Step::Issue(
            Command::EimDownloadTrigger {
                profile_type: t,
                iccid: iccid.clone(),
                activation_code: ActivationCode {
                    smdp,
                    matching_id: matching_id.clone(),
                },
            },
            Need::Download,
            Some(t),
        ),
        Some(PendingDownload {
            iccid: Some(iccid), ..
        }) => Step::Issue(
            Command::Es2ConfirmOrder {
                carrier,
                smdp,
                iccid: iccid.clone(),
            },
            Need::Confirm,
            Some(t),
        ),
        _ => Step::Issue(
            Command::Es2DownloadOrder {
                carrier,
                smdp,
                profile_type: t,
            },
            Need::Order,
            Some(t),
        ),
    }
}

impl Fleet {
    /// Looks at one device: failover or return first, then the next
    /// reconciler step.
    pub(super) fn evaluate<R: rand::CryptoRng + ?Sized>(
        &mut self,
        idx: u32,
        now: Timestamp,
        rng: &mut R,
    ) {
        self.failover_check(idx, now, rng);
        self.reconcile(idx, now, rng);
    }

    fn reconcile<R: rand::CryptoRng + ?Sized>(&mut self, idx: u32, now: Timestamp, rng: &mut R) {
        let d = &self.devices[idx as usize];
        if d.work.in_flight.is_some() {
            return;
        }
        if !d.work.not_before.is_never() && d.work.not_before.ts() > now {
            let at = d.work.not_before.ts();
            self.wake_at(idx, at);
            return;
        }
        let method = self.rule_of(d).method;
        let step = next_step(&self.catalog, d, method, self.downloads.get(&idx));
        let (command, need, profile_type) = match step {
            Step::Converged | Step::Wait => {
                let converged = step == Step::Converged;
                let d = &mut self.devices[idx as usize];
                d.work.converged = converged;
                if converged && d.rollout.is_none() {
                    d.work.activation = 0;
                }
                return;
            }
            Step::Issue(c, n, t) => (c, n, t),
        };
        // Rate limits: ES2+ per carrier, downloads per SM-DP+.
        if let Some(slot) = self.limit_slot(&command)
            && let Err((at, interval)) = self.take_token(slot, now)
        {
            // A little jitter, so a queue of devices wakes one by one.
            let spread = limit::jitter(Span(u64::try_from(interval.min(1000)).unwrap_or(1)), rng);
            self.wake_at(idx, at.plus(spread.duration()));
            return;
        }
        let id = crate::action::ActionId(self.next_action);
        self.next_action += 1;
        let d = &mut self.devices[idx as usize];
        d.work.in_flight = Some(id);
        d.work.converged = false;
        if matches!(command, Command::Es2DownloadOrder { .. }) {
            self.downloads.insert(
                idx,
                PendingDownload {
                    profile_type: profile_type.unwrap_or(d.desired.active()),
                    iccid: None,
                    matching_id: None,
                },
            );
        }
        let timeout = if command.is_es2() {
            self.catalog.reconciler.es2_timeout
        } else {
            self.catalog.reconciler.eim_timeout
        };
        let eid = d.eid;
        let activation = (d.work.activation != 0).then_some(d.work.activation);
        let name = command.name();
        let action = Action {
            id,
            device: eid,
            command,
            activation,
            reissue: false,
        };
        let deadline = now.plus(timeout.duration());
        self.deadlines.push(std::cmp::Reverse((deadline, id)));
        self.in_flight.insert(
            id,
            super::Flight {
                device: idx,
                action: action.clone(),
                deadline,
                restart: false,
            },
        );
        self.actions.push_back(action);
        let rollout = self.devices[idx as usize].rollout.map(|m| m.rollout);
        self.decide(
            now,
            Some(eid),
            rollout,
            What::Issue {
                action: id,
                command: name.to_owned(),
            },
            Reason::Gap { need, profile_type },
        );
    }

    /// The rate limit a command is under: its carrier's ES2+ bucket, or
    /// its SM-DP+'s download bucket (slots after the carriers').
    pub(super) fn limit_slot(&self, command: &Command) -> Option<usize> {
        match command {
            Command::Es2DownloadOrder { carrier, .. }
            | Command::Es2ConfirmOrder { carrier, .. } => Some(carrier.index()),
            Command::EimDownloadTrigger {
                activation_code, ..
            } => Some(self.es2_buckets.len() + activation_code.smdp.index()),
            _ => None,
        }
    }

    /// Takes a token of limit `slot` at `now`, or says when to come back
    /// (and the bucket's token interval): each waiter gets its own later
    /// slot, one token interval after the last one handed out, so a queue
    /// wakes one by one instead of all of it at every token.
    pub(super) fn take_token(
        &mut self,
        slot: usize,
        now: Timestamp,
    ) -> Result<(), (Timestamp, i64)> {
        let carriers = self.es2_buckets.len();
        let b = if slot < carriers {
            &mut self.es2_buckets[slot]
        } else {
            &mut self.smdp_buckets[slot - carriers]
        };
        let Err(next) = b.try_take(now) else {
            return Ok(());
        };
        let interval = (60_000 / i64::from(b.rate_per_minute.max(1))).max(1);
        let after_last = self.waiting_until[slot].millis().saturating_add(interval);
        let at = Timestamp(next.millis().max(after_last));
        self.waiting_until[slot] = at;
        Err((at, interval))
    }

    /// Re-issues actions whose time-out passed (same id: the driver
    /// executes it at most once), and actions a restart left to re-issue.
    /// A re-issued ES2+ call or download trigger reaches the SM-DP+ again:
    /// it takes a token like a first one, and waits for it.
    pub(super) fn expire_flights(&mut self, now: Timestamp) {
        while let Some(&std::cmp::Reverse((at, id))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let Some(f) = self.in_flight.get(&id) else {
                continue;
            };
            if f.deadline != at {
                continue;
            }
            if let Some(slot) = self.limit_slot(&f.action.command)
                && let Err((later, _)) = self.take_token(slot, now)
            {
                if let Some(f) = self.in_flight.get_mut(&id) {
                    f.deadline = later;
                }
                self.deadlines.push(std::cmp::Reverse((later, id)));
                continue;
            }
            let Some(f) = self.in_flight.get_mut(&id) else {
                continue;
            };
            let timeout = if f.action.command.is_es2() {
                self.catalog.reconciler.es2_timeout
            } else {
                self.catalog.reconciler.eim_timeout
            };
            let restart = std::mem::take(&mut f.restart);
            f.deadline = now.plus(timeout.duration());
            f.action.reissue = true;
            let action = f.action.clone();
            let (deadline, idx) = (f.deadline, f.device);
            self.deadlines.push(std::cmp::Reverse((deadline, id)));
            self.actions.push_back(action);
            let d = &self.devices[idx as usize];
            let (eid, rollout) = (d.eid, d.rollout.map(|m| m.rollout));
            let reason = if restart {
                Reason::Restart
            } else {
                Reason::Timeout {
                    timeout_ms: timeout.millis(),
                }
            };
            self.decide(
                now,
                Some(eid),
                rollout,
                What::Reissue { action: id },
                reason,
            );
        }
    }

    /// Schedules the next attempt of a device's current step after a failure.
    pub(super) fn back_off<R: rand::CryptoRng + ?Sized>(
        &mut self,
        idx: u32,
        now: Timestamp,
        rng: &mut R,
        reason: Reason,
    ) {
        let cfg = self.catalog.reconciler;
        let d = &mut self.devices[idx as usize];
        d.work.attempts = d.work.attempts.saturating_add(1);
        let attempt = d.work.attempts;
        let delay = limit::backoff(u32::from(attempt), cfg.retry_base, cfg.retry_max, rng);
        let at = now.plus(delay.duration());
        // Round up to the next second: the device keeps whole seconds.
        d.work.not_before = Secs::of(at.plus(std::time::Duration::from_millis(999)));
        let (eid, rollout) = (d.eid, d.rollout.map(|m| m.rollout));
        self.decide(
            now,
            Some(eid),
            rollout,
            What::Retry {
                attempt: attempt.saturating_add(1),
                delay_ms: delay.millis(),
            },
            reason,
        );
        let wake = self.devices[idx as usize].work.not_before.ts();
        self.wake_at(idx, wake);
    }
}
