//! Profile end of life: an operator revokes a profile for good.
//!
//! Revoking ends whatever order the profile has (an open order becomes
//! `Unavailable`, so it is never offered again), and decides what happens to
//! the ICCID afterwards under the operator's [`ReusePolicy`]: retired for
//! ever, or quarantined for a period and then free to be reused. A profile
//! that may be on a device (installed, or its package delivered) waits in
//! [`EndOfLifeState::AwaitingDeviceDelete`] until the SM-DP+ receives the
//! device's signed delete notification; only then does the quarantine
//! period start.
//!
//! ```text
//! revoke: not on a device -> Retired | Quarantined (from the revocation time)
//!         on a device     -> AwaitingDeviceDelete -> (delete notification) -> Retired | Quarantined
//! ```
//!
//! Everything here is a decision on values: the caller loads the profile,
//! commits the changed record and stores the [`Revocation`].

use std::fmt;
use std::time::Duration;

use ferrosim_pki::Eid;
use ferrosim_saip::Iccid;
use thiserror::Error;

use crate::Smdp;
use crate::ids::OperatorId;
use crate::order::{FinalProfileStatus, OrderError, ProfileRecord, ProfileState};
use crate::step::ATTEMPTS;
use crate::store::{Changes, ProfileSelector, ProfileWrite, Store, StoreError};
use crate::time::Timestamp;

/// The longest quarantine accepted (ten years), so arithmetic never overflows.
pub const MAX_QUARANTINE: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// What an operator allows for the ICCID of a revoked profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReusePolicy {
    /// Never reused.
    Retire,
    /// Reusable once the period has passed since the profile left the
    /// device (or since the revocation when it never reached one).
    Quarantine(Duration),
}

impl ReusePolicy {
    /// `retire` or `quarantine`, as stored.
    pub fn name(self) -> &'static str {
        match self {
            Self::Retire => "retire",
            Self::Quarantine(_) => "quarantine",
        }
    }

    /// The quarantine period in whole seconds (0 for `retire`).
    pub fn quarantine_seconds(self) -> i64 {
        match self {
            Self::Retire => 0,
            Self::Quarantine(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// Parses a stored or user-given policy: `retire`, or `quarantine` with
    /// its period in seconds (at most [`MAX_QUARANTINE`]).
    pub fn parse(name: &str, quarantine_seconds: i64) -> Result<Self, EndOfLifeError> {
        match name {
            "retire" => Ok(Self::Retire),
            "quarantine" => {
                let secs = u64::try_from(quarantine_seconds)
                    .ok()
                    .filter(|s| *s <= MAX_QUARANTINE.as_secs())
                    .ok_or(EndOfLifeError::BadQuarantine(quarantine_seconds))?;
                Ok(Self::Quarantine(Duration::from_secs(secs)))
            }
            other => Err(EndOfLifeError::UnknownPolicy(other.to_owned())),
        }
    }
}

impl fmt::Display for ReusePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Retire => f.write_str("retire"),
            Self::Quarantine(d) => write!(f, "quarantine {} s", d.as_secs()),
        }
    }
}

/// Where a revoked profile's ICCID is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndOfLifeState {
    /// The profile may still be on the device: a delete was asked for and
    /// the device's delete notification has not reached the SM-DP+ yet.
    AwaitingDeviceDelete,
    /// Off every device and never to be reused.
    Retired,
    /// Off every device; reusable once the quarantine is over.
    Quarantined,
}

impl EndOfLifeState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingDeviceDelete => "awaiting-device-delete",
            Self::Retired => "retired",
            Self::Quarantined => "quarantined",
        }
    }

    /// Parses [`EndOfLifeState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::AwaitingDeviceDelete, Self::Retired, Self::Quarantined]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

impl fmt::Display for EndOfLifeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The end of life of one profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The profile.
    pub iccid: Iccid,
    /// Its operator (who revoked it).
    pub operator: OperatorId,
    /// The device it may be on, when it may be on one.
    pub eid: Option<Eid>,
    /// The profile's state when it was revoked.
    pub previous_state: ProfileState,
    /// The operator's policy at revocation time.
    pub policy: ReusePolicy,
    /// Where the ICCID is now.
    pub state: EndOfLifeState,
    /// Why (free text from the operator).
    pub reason: String,
    /// When it was revoked.
    pub revoked_at: Timestamp,
    /// When the SM-DP+ received the device's delete notification.
    pub deleted_on_device_at: Option<Timestamp>,
}

impl Revocation {
    /// When the ICCID may be reused: never for `retire` or while the
    /// profile may still be on a device; for a quarantine, its period after
    /// the device deleted the profile (or after the revocation when no
    /// device had it).
    pub fn reusable_from(&self) -> Option<Timestamp> {
        match (self.state, self.policy) {
            (EndOfLifeState::Quarantined, ReusePolicy::Quarantine(period)) => Some(
                self.deleted_on_device_at
                    .unwrap_or(self.revoked_at)
                    .plus(period),
            ),
            _ => None,
        }
    }

    /// Whether the ICCID may be reused at `now`.
    pub fn reusable_at(&self, now: Timestamp) -> bool {
        self.reusable_from().is_some_and(|from| now >= from)
    }

    /// The device's delete notification for this profile reached the
    /// SM-DP+ at `at`: the ICCID moves to the policy's state. A second
    /// notification changes nothing (`Ok(false)`).
    pub fn device_deleted(&mut self, at: Timestamp) -> Result<bool, EndOfLifeError> {
        if self.state != EndOfLifeState::AwaitingDeviceDelete {
            return Ok(false);
        }
        if at < self.revoked_at {
            return Err(EndOfLifeError::DeleteBeforeRevocation);
        }
        self.deleted_on_device_at = Some(at);
        self.state = settled(self.policy);
        Ok(true)
    }
}

/// Whether the ICCID of revocation `r` may be imported again by `operator`
/// at `now`: only by the operator that revoked it, only once
/// [`Revocation::reusable_at`] (a quarantine that is over). Both stores
/// enforce it at import and refuse with this error's text.
pub fn check_reuse(
    r: &Revocation,
    operator: &OperatorId,
    now: Timestamp,
) -> Result<(), ReuseRefused> {
    let iccid = r.iccid.as_str();
    let refuse = |why: String| Err(ReuseRefused(format!("ICCID {iccid} {why}")));
    if *operator != r.operator {
        return refuse(format!(
            "belongs to a profile revoked by operator {}: another operator may not reuse it",
            r.operator
        ));
    }
    if r.reusable_at(now) {
        return Ok(());
    }
    match (r.state, r.reusable_from()) {
        (EndOfLifeState::AwaitingDeviceDelete, _) => refuse(format!(
            "is revoked and its profile may still be on device {}: not reusable before the device's delete notification",
            r.eid
                .map(|e| e.to_string())
                .unwrap_or_else(|| "(unknown)".into())
        )),
        (EndOfLifeState::Quarantined, Some(from)) => refuse(format!(
            "is quarantined until {from} (revoked {})",
            r.revoked_at
        )),
        _ => refuse(format!(
            "is retired (revoked {}): the operator's policy never reuses it",
            r.revoked_at
        )),
    }
}

/// A revoked ICCID that may not be imported (yet): the text names the
/// ICCID and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct ReuseRefused(pub String);

fn settled(policy: ReusePolicy) -> EndOfLifeState {
    match policy {
        ReusePolicy::Retire => EndOfLifeState::Retired,
        ReusePolicy::Quarantine(_) => EndOfLifeState::Quarantined,
    }
}

/// A refused end-of-life request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EndOfLifeError {
    /// No such profile for this operator (another operator's ICCID is
    /// reported the same way, so nothing leaks).
    #[error("unknown ICCID for this operator")]
    UnknownIccid,
    /// The profile was revoked already.
    #[error("the profile is revoked already ({0})")]
    AlreadyRevoked(EndOfLifeState),
    /// The policy name is neither `retire` nor `quarantine`.
    #[error("unknown reuse policy `{0}` (retire or quarantine)")]
    UnknownPolicy(String),
    /// A quarantine period outside 0..=ten years.
    #[error("quarantine period {0} s is out of range (0..=10 years)")]
    BadQuarantine(i64),
    /// The reason is too long.
    #[error("the reason is longer than {MAX_REASON} characters")]
    ReasonTooLong,
    /// A delete notification older than the revocation.
    #[error("the delete notification is older than the revocation")]
    DeleteBeforeRevocation,
    /// The profile's order refused to end.
    #[error(transparent)]
    Order(#[from] OrderError),
}

/// The longest reason kept.
pub const MAX_REASON: usize = 256;

/// Revokes `profile` for `operator` at `now`. Returns the changed profile
/// record when its order had to be ended (to be committed) and the
/// [`Revocation`] to store. `existing` is the stored revocation of this
/// ICCID, if any (a second revocation is refused and changes nothing).
pub fn revoke(
    profile: Option<&ProfileRecord>,
    existing: Option<&Revocation>,
    operator: &OperatorId,
    policy: ReusePolicy,
    reason: &str,
    now: Timestamp,
) -> Result<(Option<ProfileRecord>, Revocation), EndOfLifeError> {
    let profile = profile
        .filter(|p| p.operator == *operator)
        .ok_or(EndOfLifeError::UnknownIccid)?;
    if let Some(r) = existing {
        return Err(EndOfLifeError::AlreadyRevoked(r.state));
    }
    if reason.chars().count() > MAX_REASON {
        return Err(EndOfLifeError::ReasonTooLong);
    }
    use ProfileState::*;
    let order_eid = profile.order.as_ref().and_then(|o| o.eid);
    // The device the profile may be on: installed, or its package handed
    // out (a download that may still complete).
    let on_device = match profile.state {
        Installed | Downloaded => order_eid,
        _ => None,
    };
    let changed = match profile.state {
        Installed | Unavailable => None,
        Available => {
            let mut p = profile.clone();
            p.state = Unavailable;
            p.updated_at = now;
            Some(p)
        }
        Allocated | Linked | Confirmed | Released | Downloaded | Error | Expired => {
            let mut p = profile.clone();
            p.cancel(FinalProfileStatus::Unavailable, None, None, now)?;
            Some(p)
        }
    };
    let state = if on_device.is_some() {
        EndOfLifeState::AwaitingDeviceDelete
    } else {
        settled(policy)
    };
    let revocation = Revocation {
        iccid: profile.iccid.clone(),
        operator: operator.clone(),
        eid: on_device.or(order_eid),
        previous_state: profile.state,
        policy,
        state,
        reason: reason.to_owned(),
        revoked_at: now,
        deleted_on_device_at: None,
    };
    Ok((changed, revocation))
}

/// Whether a revoked profile must be deleted on its device: the EID to ask
/// the eIM about, while the revocation waits for the device.
pub fn device_to_clean(revocation: &Revocation) -> Option<&Eid> {
    match revocation.state {
        EndOfLifeState::AwaitingDeviceDelete => revocation.eid.as_ref(),
        _ => None,
    }
}

/// A revocation that could not be done: refused, or the store failed.
#[derive(Debug, Error)]
pub enum RevokeError {
    /// Refused; nothing changed.
    #[error(transparent)]
    Refused(#[from] EndOfLifeError),
    /// The store failed (or kept changing under the step); nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<S: Store> Smdp<S> {
    /// Revokes a profile: loads it, runs [`revoke`] and commits the ended
    /// order. Returns the [`Revocation`] for the caller to store with the
    /// ICCID's end-of-life state (`existing` is the one stored, if any).
    pub async fn revoke_profile(
        &self,
        operator: &OperatorId,
        iccid: &Iccid,
        existing: Option<&Revocation>,
        policy: ReusePolicy,
        reason: &str,
        now: Timestamp,
    ) -> Result<Revocation, RevokeError> {
        let selector = ProfileSelector::Iccid(iccid.clone(), Some(operator.clone()));
        for _ in 0..ATTEMPTS {
            let loaded = self.store.find_profile(&selector).await?;
            let (changed, revocation) = revoke(
                loaded.as_ref().map(|v| &v.record),
                existing,
                operator,
                policy,
                reason,
                now,
            )?;
            let (Some(record), Some(v)) = (changed, loaded) else {
                return Ok(revocation);
            };
            let changes = Changes {
                profile: Some(ProfileWrite::new(v, record)),
                ..Changes::default()
            };
            match self.store.commit(changes).await {
                Ok(()) => return Ok(revocation),
                Err(StoreError::Stale) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Stale.into())
    }
}

mod es2;
pub use es2::{RevokeProfileRequest, RevokeProfileResponse};

#[cfg(test)]
mod tests;
