//! Notifications (SGP.22 3.5, 5.7.9-5.7.11): the pending list, retrieval of
//! the signed notifications, their removal once delivered, and the signing
//! of enable, disable and delete notifications.
//!
//! Installation results are signed in [`super::install`]; the other
//! operations produce an OtherSignedNotification (`tbsOtherNotification`
//! signed with the eUICC key, followed by the eUICC and EUM certificates),
//! but only when the profile's metadata names an address for the operation.
//! Only the signed part is stored; the two certificates, the same for every
//! notification of the card, are appended when a notification is retrieved
//! ([`pending_notification`]).

use ferrosim_asn1::rasn::types::{FixedOctetString, Integer};
use ferrosim_asn1::rsp;
use ferrosim_asn1::tlv::{Tlv, tlv};
use tracing::{debug, error};

use super::{Es10Reply, Isdr, decode};
use ferrosim_ids::Iccid;

use crate::identity::EuiccIdentity;
use crate::profile::NotificationOperation;
use crate::state::StoredNotification;

impl Isdr {
    /// ES10b.ListNotification: the metadata of pending notifications,
    /// optionally only those of some operations.
    pub(super) fn list_notifications(&self, cmd: &Tlv<'_>) -> Es10Reply {
        let request: rsp::ListNotificationRequest = match decode(cmd) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let filter = request.profile_management_operation;
        let mut list = Vec::new();
        for n in &self.state.notifications {
            if filter.as_ref().is_none_or(|f| n.operation.is_in(f))
                && let Some(metadata) = metadata_of(&n.signed)
            {
                list.extend_from_slice(metadata);
            }
        }
        Es10Reply::Data(tlv(0xBF28, &tlv(0xA0, &list)))
    }

    /// ES10b.RetrieveNotificationsList: the signed notifications, all of
    /// them, one sequence number, or those of some operations.
    pub(super) fn retrieve_notifications(&self, cmd: &Tlv<'_>) -> Es10Reply {
        let request: rsp::RetrieveNotificationsListRequest = match decode(cmd) {
            Ok(r) => r,
            Err(e) => return e,
        };
        use rsp::RetrieveNotificationsListRequestSearchCriteria as Criteria;
        let selected = |n: &StoredNotification| match &request.search_criteria {
            None => true,
            Some(Criteria::seqNumber(seq)) => u64::try_from(seq).ok() == Some(n.seq_number),
            Some(Criteria::profileManagementOperation(ops)) => n.operation.is_in(ops),
            Some(_) => false,
        };
        let mut list = Vec::new();
        for n in self.state.notifications.iter().filter(|n| selected(n)) {
            list.extend_from_slice(&pending_notification(&self.identity, n));
        }
        Es10Reply::Data(tlv(0xBF2B, &tlv(0xA0, &list)))
    }

    /// ES10b.RemoveNotificationFromList (NotificationSent): the LPA
    /// delivered it.
    pub(super) fn notification_sent(&mut self, cmd: &Tlv<'_>) -> Es10Reply {
        let request: rsp::NotificationSentRequest = match decode(cmd) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let seq = u64::try_from(&request.seq_number).ok();
        let before = self.state.notifications.len();
        self.state
            .notifications
            .retain(|n| Some(n.seq_number) != seq);
        let status = if self.state.notifications.len() < before {
            self.changed();
            0
        } else {
            1
        };
        Es10Reply::encode(&rsp::NotificationSentResponse::new(Integer::from(status)))
    }

    /// Signs and keeps a notification of `op` on profile `iccid`, when the
    /// profile's metadata gave an address for it.
    pub(super) fn notify(
        &mut self,
        op: NotificationOperation,
        iccid: &Iccid,
        address: Option<String>,
    ) {
        let Some(address) = address else {
            debug!(?op, %iccid, "no notification address configured");
            return;
        };
        let seq = self.state.next_seq_number();
        let metadata = rsp::NotificationMetadata::new(
            Integer::from(seq),
            op.event(),
            address.clone(),
            Some(rsp::Iccid(FixedOctetString::new(iccid.to_bcd()))),
        );
        let signed = super::der(&metadata).ok().and_then(|tbs| {
            let signature = self.identity.sign_5f37(&tbs).ok()?;
            Some([tbs, signature].concat())
        });
        let Some(signed) = signed else {
            error!(?op, %iccid, "cannot sign a notification");
            return;
        };
        self.state.notifications.push(StoredNotification {
            seq_number: seq,
            operation: op,
            address,
            iccid: Some(iccid.clone()),
            signed,
        });
        self.changed();
    }
}

/// The `PendingNotification` of a stored notification as it leaves the
/// card: the ProfileInstallationResult as stored, or the
/// OtherSignedNotification rebuilt from the stored signed part and the
/// card's certificates.
pub(crate) fn pending_notification(identity: &EuiccIdentity, n: &StoredNotification) -> Vec<u8> {
    if n.signed.starts_with(&[0xBF, 0x2F]) {
        tlv(
            0x30,
            &[
                n.signed.as_slice(),
                identity.euicc_certificate_der(),
                identity.eum_certificate().der(),
            ]
            .concat(),
        )
    } else {
        n.signed.clone()
    }
}

/// The `NotificationMetadata` (`BF2F`) inside a stored notification, as signed.
fn metadata_of(signed: &[u8]) -> Option<&[u8]> {
    let (first, _) = Tlv::parse(signed).ok()?;
    match first.tag {
        0xBF2F => Some(first.raw),
        0xBF37 => first
            .require(0xBF27)
            .ok()?
            .require(0xBF2F)
            .ok()
            .map(|t| t.raw),
        _ => first.require(0xBF2F).ok().map(|t| t.raw),
    }
}
