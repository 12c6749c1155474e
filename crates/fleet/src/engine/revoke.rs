//! A profile revoked by its operator: the fleet stops counting it as the
//! device's profile of its type, so the reconciler orders a fresh one,
//! enables it (and delivers its APN setting again) if the revoked one was
//! in use, keeping the device connected,
//! moves the fallback attribute to it, and deletes the revoked profile once
//! the device's enabled profile is proven working (the delete notification
//! then tells the SM-DP+).

use ferrosim_ids::{Eid, Iccid};

use super::Fleet;
use crate::catalog::ProfileTypeId;
use crate::device::{PackedIccid, flags};
use crate::error::FleetError;

impl Fleet {
    /// Marks a device's profile as revoked (see the module documentation);
    /// answers its profile type. Refused for an unknown device, a profile
    /// the fleet does not know on it or did not order, and one revoked
    /// already.
    pub fn revoke_profile(
        &mut self,
        eid: &Eid,
        iccid: &Iccid,
    ) -> Result<ProfileTypeId, FleetError> {
        let idx = *self.index.get(eid).ok_or(FleetError::UnknownDevice(*eid))?;
        let refused = |problem: String| FleetError::InvalidDevice { eid: *eid, problem };
        let d = &mut self.devices[idx as usize];
        let Some(p) = d.observed.by_iccid_mut(PackedIccid::new(iccid)) else {
            return Err(refused(format!(
                "profile {} is not on the device as the fleet knows it",
                iccid.as_str()
            )));
        };
        let Some(t) = p.profile_type else {
            return Err(refused(format!(
                "profile {} was not ordered by the fleet: revoke it at its operator",
                iccid.as_str()
            )));
        };
        if p.has(flags::REVOKED) {
            return Err(refused(format!(
                "profile {} is revoked already",
                iccid.as_str()
            )));
        }
        p.flags |= flags::REVOKED;
        // The APN setting was delivered for the revoked profile in use: its
        // replacement gets it delivered again.
        if p.has(flags::ENABLED) && d.observed.apn_delivered.is_some_and(|(at, _)| at == t) {
            d.observed.apn_delivered = None;
        }
        self.mark(idx);
        Ok(t)
    }
}
