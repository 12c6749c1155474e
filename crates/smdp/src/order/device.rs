//! The profile's state on the device after its order completed, as the
//! device's notifications (SGP.22 `OtherSignedNotification`: enable,
//! disable, delete) last reported it, and the event that forwards each one
//! to the operator (ES2+ `handleDownloadProgressInfo`, notification point 5).
//!
//! Sequence numbers are the eUICC's (one counter per eUICC), so a repeated
//! or older notification of the same device changes nothing and is not
//! forwarded twice.

use ferrosim_pki::Eid;

use super::{NotificationPoint, ProfileRecord, ProfileState, ProgressEvent};
use crate::time::Timestamp;

/// A profile's state on the device, as its notifications last said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceProfileState {
    /// Enabled on the device.
    Enabled,
    /// Disabled (installed, not in use).
    Disabled,
    /// Deleted from the device.
    Deleted,
}

impl DeviceProfileState {
    /// Every state, for listings and tests.
    pub const ALL: [DeviceProfileState; 3] = [Self::Enabled, Self::Disabled, Self::Deleted];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
            Self::Deleted => "deleted",
        }
    }

    /// Parses [`DeviceProfileState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The state a notification's operation (`enable`, `disable`,
    /// `delete`) leaves the profile in; `None` for others (`install`).
    pub fn after_operation(operation: &str) -> Option<Self> {
        match operation {
            "enable" => Some(Self::Enabled),
            "disable" => Some(Self::Disabled),
            "delete" => Some(Self::Deleted),
            _ => None,
        }
    }
}

impl std::fmt::Display for DeviceProfileState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The last device notification applied to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceReport {
    /// The state it reported.
    pub state: DeviceProfileState,
    /// Its eUICC sequence number.
    pub seq_number: i64,
    /// When it arrived.
    pub at: Timestamp,
}

impl ProfileRecord {
    /// The profile's state on the device: the last one its notifications
    /// reported, else `installed` once the installation result arrived;
    /// `None` before that.
    pub fn device_state(&self) -> Option<&'static str> {
        match self.order.as_ref().and_then(|o| o.device) {
            Some(d) => Some(d.state.as_str()),
            None if self.state == ProfileState::Installed => Some("installed"),
            None => None,
        }
    }

    /// A verified notification from eUICC `eid` reports the profile in
    /// `state` (its `seq_number`, the notification's bytes as signed).
    /// Applies only to an installed order on that eUICC, and only if it is
    /// newer than the last one applied; then returns the event that
    /// forwards it to the operator. Otherwise nothing changes (`None`).
    pub fn record_device_notification(
        &mut self,
        eid: &Eid,
        state: DeviceProfileState,
        seq_number: i64,
        notification: &[u8],
        now: Timestamp,
    ) -> Option<ProgressEvent> {
        if self.state != ProfileState::Installed {
            return None;
        }
        let order = self.order.as_mut()?;
        if order.eid.as_ref() != Some(eid) {
            return None;
        }
        if order.device.is_some_and(|d| d.seq_number >= seq_number) {
            return None;
        }
        order.device = Some(DeviceReport {
            state,
            seq_number,
            at: now,
        });
        self.updated_at = now;
        let mut ev = self.event_for(eid, NotificationPoint::DeviceNotification, None, now);
        ev.result_data = Some(notification.to_vec());
        Some(ev)
    }
}
