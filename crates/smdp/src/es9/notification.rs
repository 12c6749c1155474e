//! ES9+ `handleNotification` (SGP.22 5.6.4): installation results and the
//! other signed notifications (enable, disable, delete).

use ferrosim_asn1::json::es9::HandleNotificationRequest;
use ferrosim_asn1::tlv::Tlv;
use ferrosim_asn1::{decode_der, rsp, signed};
use ferrosim_crypto::ecdsa::VerifyingKey;
use ferrosim_pki::verify_euicc_chain;
use ferrosim_saip::Iccid;
use tracing::{info, warn};

use super::{Es9Error, bad_der};
use crate::Smdp;
use crate::ids::TransactionId;
use crate::order::FailureInfo;
use crate::session::SessionState;
use crate::store::{NotificationRecord, ProfileSelector, Store};
use crate::time::Timestamp;

/// Names of the `NotificationEvent` bits.
const OPERATIONS: [&str; 4] = ["install", "enable", "disable", "delete"];

impl<S: Store> Smdp<S> {
    /// Records a notification. An installation result moves its order to
    /// `installed` or `error`; other notifications are verified against the
    /// eUICC certificate chain they carry and kept.
    pub async fn handle_notification(
        &self,
        req: &HandleNotificationRequest,
        now: Timestamp,
    ) -> Result<(), Es9Error> {
        let bytes = &req.pending_notification.0;
        let notification: rsp::PendingNotification =
            decode_der(bytes).map_err(bad_der("pendingNotification"))?;
        match notification {
            rsp::PendingNotification::profileInstallationResult(pir) => {
                self.installation_result(bytes, pir, now).await
            }
            rsp::PendingNotification::otherSignedNotification(other) => {
                self.other_notification(bytes, other, now).await
            }
            _ => Err(Es9Error::BadRequest("unknown pendingNotification".into())),
        }
    }

    async fn installation_result(
        &self,
        bytes: &[u8],
        pir: rsp::ProfileInstallationResult,
        now: Timestamp,
    ) -> Result<(), Es9Error> {
        let data = &pir.profile_installation_result_data;
        let tid = TransactionId::from_bytes(data.transaction_id.0.as_ref())
            .map_err(|e| Es9Error::BadRequest(e.to_string()))?;
        if !self.config.is_our_oid(&data.smdp_oid) {
            return Err(Es9Error::OidMismatch);
        }
        let session = self
            .store
            .session(&tid)
            .await?
            .ok_or_else(|| Es9Error::UnknownTransaction(tid.to_hex()))?;
        let (Some(public_key), Some(eid), Some(iccid)) = (
            session.euicc_public_key.as_deref(),
            session.eid,
            session.iccid.clone(),
        ) else {
            return Err(Es9Error::UnknownTransaction(tid.to_hex()));
        };
        let parts =
            signed::profile_installation_result(bytes).map_err(bad_der("pendingNotification"))?;
        VerifyingKey::from_sec1(public_key)
            .and_then(|k| k.verify_raw(parts.signed, parts.signature))
            .map_err(|_| Es9Error::EuiccSignature("profileInstallationResultData"))?;
        let result = match &data.final_result {
            rsp::ProfileInstallationResultDataFinalResult::successResult(_) => Ok(()),
            rsp::ProfileInstallationResultDataFinalResult::errorResult(e) => Err(FailureInfo {
                bpp_command_id: i64::try_from(&e.bpp_command_id.0).ok(),
                error_reason: i64::try_from(&e.error_reason.0).ok(),
                message: "installation failed on the eUICC".into(),
            }),
            _ => return Err(Es9Error::BadRequest("unknown finalResult".into())),
        };
        let success = result.is_ok();
        let pir_bytes = bytes.to_vec();
        let selector = ProfileSelector::Iccid(iccid.clone(), None);
        self.store
            .update_session(&tid, Some(&selector), now, move |s, p, events| {
                let p = p.ok_or_else(|| Es9Error::Internal("profile vanished".into()))?;
                p.record_installation(&s.transaction_id, &eid, result, &pir_bytes, now, events)?;
                s.state = SessionState::Completed;
                s.updated_at = now;
                Ok::<(), Es9Error>(())
            })
            .await?
            .ok_or_else(|| Es9Error::UnknownTransaction(tid.to_hex()))??;
        if success {
            info!(transaction_id = %tid, iccid = %iccid.as_str(), "profile installed");
        } else {
            warn!(transaction_id = %tid, iccid = %iccid.as_str(), "profile installation failed");
        }
        Ok(())
    }

    async fn other_notification(
        &self,
        bytes: &[u8],
        other: rsp::OtherSignedNotification,
        now: Timestamp,
    ) -> Result<(), Es9Error> {
        let (euicc_der, eum_der) = notification_certificates(bytes)?;
        let euicc =
            verify_euicc_chain(&self.config.trust, eum_der, euicc_der, now.to_system_time())?;
        let parts = signed::other_signed_notification(bytes)
            .map_err(|e| Es9Error::BadRequest(format!("pendingNotification: {e}")))?;
        euicc
            .certificate
            .verifying_key()
            .verify_raw(parts.signed, parts.signature)
            .map_err(|_| Es9Error::EuiccSignature("tbsOtherNotification"))?;
        let meta = &other.tbs_other_notification;
        let operation = meta
            .profile_management_operation
            .0
            .iter()
            .position(|b| *b)
            .and_then(|i| OPERATIONS.get(i))
            .copied()
            .unwrap_or("unknown");
        let iccid = meta
            .iccid
            .as_ref()
            .map(|i| Iccid::from_bcd(i.0.as_ref()))
            .transpose()
            .map_err(|e| Es9Error::BadRequest(format!("notification ICCID: {e}")))?;
        let record = NotificationRecord {
            seq_number: i64::try_from(&meta.seq_number).unwrap_or(-1),
            operation: operation.to_owned(),
            iccid,
            eid: Some(euicc.eid),
            address: meta.notification_address.clone(),
            raw: bytes.to_vec(),
            received_at: now,
        };
        self.store.record_notification(&record).await?;
        info!(operation, eid = %euicc.eid, "notification recorded");
        Ok(())
    }
}

/// The eUICC and EUM certificates of an OtherSignedNotification, as received.
fn notification_certificates(bytes: &[u8]) -> Result<(&[u8], &[u8]), Es9Error> {
    let bad =
        |e: ferrosim_asn1::tlv::TlvError| Es9Error::BadRequest(format!("pendingNotification: {e}"));
    let outer = Tlv::parse_exact(bytes).map_err(bad)?;
    let certs: Vec<&[u8]> = outer
        .children()
        .filter_map(Result::ok)
        .filter(|t| t.tag == 0x30)
        .map(|t| t.raw)
        .collect();
    match certs.as_slice() {
        [euicc, eum] => Ok((euicc, eum)),
        _ => Err(Es9Error::BadRequest(
            "notification lacks certificates".into(),
        )),
    }
}
