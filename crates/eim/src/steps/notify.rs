//! A profile notification the IPA hands to the eIM for its SM-DP+
//! (ESipa `handleNotification` with a `pendingNotification`): the eIM keeps
//! it for the device and learns the profile change it reports, then relays
//! it (see [`crate::relay`]).

use ferrosim_asn1::{decode_der, sgp32};

use super::associate::update;
use super::{Step, profiles};
use crate::error::EimError;
use crate::ids::Timestamp;
use crate::record::{DeviceRecord, NotificationRecord};
use crate::store::Versioned;

/// Records `notification` (the `PendingNotification` as received) on the
/// device: the profiles as it reports them, and the notification itself
/// (once per sequence number).
pub fn relayed_notification(
    device: &Versioned<DeviceRecord>,
    notification: &[u8],
    now: Timestamp,
) -> Result<Step<()>, EimError> {
    let decoded: sgp32::PendingNotification = decode_der(notification)?;
    let mut record = device.record.clone();
    let seq = profiles::apply_notification(&mut record.profiles, &decoded, now);
    let eid = record.eid;
    let mut changes = update(device, record);
    if let Some(seq_number) = seq {
        changes.notifications.push(NotificationRecord {
            eid,
            seq_number,
            der: notification.to_vec(),
            received_at: now,
        });
    }
    Ok(Step::new(changes, ()))
}
