//! ES9+ `handleNotification` (SGP.22 5.6.4): installation results and the
//! other signed notifications (enable, disable, delete).

use ferrosim_asn1::json::es9::HandleNotificationRequest;
use ferrosim_asn1::tlv::Tlv;
use ferrosim_asn1::{decode_der, rsp, signed};
use ferrosim_pki::verify_euicc_chain;
use ferrosim_saip::Iccid;
use tracing::{info, warn};

use super::authenticate::refused_with;
use super::{Es9Error, bad_der};
use crate::Smdp;
use crate::config::SmdpConfig;
use crate::ids::TransactionId;
use crate::order::{DeviceProfileState, FailureInfo, ProfileRecord};
use crate::session::SessionRecord;
use crate::step::{ATTEMPTS, Outcome};
use crate::store::{
    Changes, NotificationRecord, ProfileSelector, ProfileWrite, SessionWrite, Store, StoreError,
    Versioned,
};
use crate::time::Timestamp;

/// Names of the `NotificationEvent` bits.
const OPERATIONS: [&str; 4] = ["install", "enable", "disable", "delete"];

/// A `pendingNotification` as received: its bytes (signatures are checked
/// over them) and its decoded form.
#[derive(Debug)]
pub struct ReceivedNotification<'a> {
    bytes: &'a [u8],
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Installation(Box<rsp::ProfileInstallationResult>, TransactionId),
    Other(Box<rsp::OtherSignedNotification>),
}

impl<'a> ReceivedNotification<'a> {
    /// Decodes the notification of a request.
    pub fn parse(req: &'a HandleNotificationRequest) -> Result<Self, Es9Error> {
        let bytes = req.pending_notification.0.as_slice();
        let notification: rsp::PendingNotification =
            decode_der(bytes).map_err(bad_der("pendingNotification"))?;
        let kind = match notification {
            rsp::PendingNotification::profileInstallationResult(pir) => {
                let tid = TransactionId::from_bytes(
                    pir.profile_installation_result_data
                        .transaction_id
                        .0
                        .as_ref(),
                )
                .map_err(|e| Es9Error::BadRequest(e.to_string()))?;
                Kind::Installation(Box::new(pir), tid)
            }
            rsp::PendingNotification::otherSignedNotification(other) => {
                Kind::Other(Box::new(other))
            }
            _ => return Err(Es9Error::BadRequest("unknown pendingNotification".into())),
        };
        Ok(Self { bytes, kind })
    }

    /// The profile another notification names (what to load), if any.
    pub fn named_iccid(&self) -> Option<Iccid> {
        match &self.kind {
            Kind::Installation(..) => None,
            Kind::Other(other) => other
                .tbs_other_notification
                .iccid
                .as_ref()
                .and_then(|i| Iccid::from_bcd(i.0.as_ref()).ok()),
        }
    }

    /// The session an installation result belongs to (what to load);
    /// `None` for other notifications, which need no stored record.
    pub fn transaction_id(&self) -> Option<&TransactionId> {
        match &self.kind {
            Kind::Installation(_, tid) => Some(tid),
            Kind::Other(_) => None,
        }
    }
}

/// What `handleNotification` did with a notification that decoded. Either
/// way the ES9+ answer is HTTP 204: SGP.22 ES9+.HandleNotification has no
/// other, and a refusal would only make the LPA send the notification again.
#[derive(Debug)]
#[must_use]
pub enum NotificationHandled {
    /// Verified and recorded.
    Recorded,
    /// Not usable (its session unknown or ended, another SM-DP+'s OID, a
    /// signature or certificate that does not verify): nothing recorded,
    /// the reason is for the log. The LPA removes the notification.
    Dropped(Es9Error),
}

/// The step. An installation result, verified with the session's eUICC
/// key, moves its order to `installed` or `error` and completes the session;
/// other notifications are verified against the eUICC certificate chain
/// they carry and kept. `session` and `profile` are the installation
/// result's session and the profile bound to it. A notification that cannot
/// be used is [`NotificationHandled::Dropped`]; a malformed one
/// ([`Es9Error::BadRequest`]) and a failure on our side are errors.
pub fn handle_notification(
    cfg: &SmdpConfig,
    notification: &ReceivedNotification<'_>,
    session: Option<Versioned<SessionRecord>>,
    profile: Option<Versioned<ProfileRecord>>,
    now: Timestamp,
) -> Outcome<NotificationHandled, Es9Error> {
    let outcome = match &notification.kind {
        Kind::Installation(pir, tid) => {
            installation_result(cfg, notification.bytes, pir, tid, session, profile, now)
        }
        Kind::Other(other) => {
            other_notification(cfg, notification.bytes, other, profile, now).into()
        }
    };
    let answer = match outcome.answer {
        Ok(()) => Ok(NotificationHandled::Recorded),
        Err(e) if dropped(&e) => Ok(NotificationHandled::Dropped(e)),
        Err(e) => Err(e),
    };
    Outcome::new(outcome.changes, answer)
}

/// Whether a refusal drops the notification: every refusal but a malformed
/// one ([`Es9Error::BadRequest`], `Failed` as any malformed ES9+ call) and a
/// failure on our side (which the LPA should retry).
fn dropped(e: &Es9Error) -> bool {
    !matches!(
        e,
        Es9Error::BadRequest(_) | Es9Error::Store(_) | Es9Error::Internal(_)
    )
}

fn installation_result(
    cfg: &SmdpConfig,
    bytes: &[u8],
    pir: &rsp::ProfileInstallationResult,
    tid: &TransactionId,
    session: Option<Versioned<SessionRecord>>,
    profile: Option<Versioned<ProfileRecord>>,
    now: Timestamp,
) -> Outcome<(), Es9Error> {
    let data = &pir.profile_installation_result_data;
    if !cfg.is_our_oid(&data.smdp_oid) {
        return Outcome::refuse(Es9Error::OidMismatch);
    }
    let unknown = || Es9Error::UnknownTransaction(tid.to_hex());
    let Some(mut session) = session.filter(|s| s.record.transaction_id == *tid) else {
        return Outcome::refuse(unknown());
    };
    let Some(binding) = session.record.binding().cloned() else {
        return Outcome::refuse(unknown());
    };
    let verified = signed::profile_installation_result(bytes)
        .map_err(bad_der("pendingNotification"))
        .and_then(|parts| {
            binding
                .euicc_public_key
                .verifying_key()
                .and_then(|k| k.verify_raw(parts.signed, parts.signature))
                .map_err(|_| Es9Error::EuiccSignature("profileInstallationResultData"))
        });
    if let Err(e) = verified {
        return Outcome::refuse(e);
    }
    let result = match &data.final_result {
        rsp::ProfileInstallationResultDataFinalResult::successResult(_) => Ok(()),
        rsp::ProfileInstallationResultDataFinalResult::errorResult(e) => Err(FailureInfo {
            bpp_command_id: i64::try_from(&e.bpp_command_id.0).ok(),
            error_reason: i64::try_from(&e.error_reason.0).ok(),
            message: "installation failed on the eUICC".into(),
        }),
        _ => return Outcome::refuse(Es9Error::BadRequest("unknown finalResult".into())),
    };
    let Some(read) = profile.filter(|p| p.record.iccid == binding.iccid) else {
        return Outcome::refuse(Es9Error::Internal("profile vanished".into()));
    };
    let mut profile = read.record.clone();
    let mut events = Vec::new();
    if let Err(e) = profile.record_installation(tid, &binding.eid, result, bytes, now, &mut events)
    {
        return refused_with(read, profile, events, e.into());
    }
    if let Err(e) = session.record.complete(now) {
        return Outcome::refuse(Es9Error::UnknownTransaction(e.to_string()));
    }
    let changes = Changes {
        session: Some(SessionWrite::Update {
            expected: session.version,
            record: session.record,
        }),
        profile: Some(ProfileWrite::new(read, profile)),
        events,
        notification: None,
    };
    Outcome::new(changes, Ok(()))
}

/// A verified enable, disable or delete notification is kept; when it
/// names a profile installed by this SM-DP+ on the same eUICC (`profile`,
/// loaded by the ICCID it names) and is newer than the last one applied, the
/// profile's state on the device is updated and the notification forwarded
/// to the operator (notification point 5) in the same commit.
fn other_notification(
    cfg: &SmdpConfig,
    bytes: &[u8],
    other: &rsp::OtherSignedNotification,
    profile: Option<Versioned<ProfileRecord>>,
    now: Timestamp,
) -> Result<(Changes, ()), Es9Error> {
    let (euicc_der, eum_der) = notification_certificates(bytes)?;
    let euicc = verify_euicc_chain(&cfg.trust, eum_der, euicc_der, now.to_system_time())?;
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
    let seq_number = i64::try_from(&meta.seq_number).unwrap_or(-1);
    let mut changes = Changes::default();
    if let (Some(named), Some(state)) = (
        iccid.as_ref(),
        DeviceProfileState::after_operation(operation),
    ) && let Some(read) = profile.filter(|p| p.record.iccid == *named)
        && let mut p = read.record.clone()
        && let Some(event) = p.record_device_notification(&euicc.eid, state, seq_number, bytes, now)
    {
        changes.profile = Some(ProfileWrite::new(read, p));
        changes.events.push(event);
    }
    changes.notification = Some(NotificationRecord {
        seq_number,
        operation: operation.to_owned(),
        iccid,
        eid: Some(euicc.eid),
        address: meta.notification_address.clone(),
        raw: bytes.to_vec(),
        received_at: now,
    });
    Ok((changes, ()))
}

impl<S: Store> Smdp<S> {
    /// Records a notification: loads the session and the bound profile of
    /// an installation result, runs [`handle_notification`], commits. An
    /// undecodable request is [`Es9Error::BadRequest`]; a notification
    /// that decoded but cannot be used is logged and
    /// [`NotificationHandled::Dropped`].
    pub async fn handle_notification(
        &self,
        req: &HandleNotificationRequest,
        now: Timestamp,
    ) -> Result<NotificationHandled, Es9Error> {
        let notification = ReceivedNotification::parse(req)?;
        for _ in 0..ATTEMPTS {
            let (session, profile) = match notification.transaction_id() {
                Some(tid) => {
                    let records = self.store.session_and_bound_profile(tid, false).await?;
                    (records.session, records.profile)
                }
                None => match notification.named_iccid() {
                    Some(iccid) => {
                        let profile = self
                            .store
                            .find_profile(&ProfileSelector::Iccid(iccid, None))
                            .await?;
                        (None, profile)
                    }
                    None => (None, None),
                },
            };
            let outcome = handle_notification(&self.config, &notification, session, profile, now);
            let changed = outcome
                .changes
                .profile
                .as_ref()
                .map(|p| (p.record.iccid.clone(), p.record.state));
            let (installed, forwarded) = if notification.transaction_id().is_some() {
                (changed, None)
            } else {
                (None, changed.map(|(iccid, _)| iccid))
            };
            if let Some(handled) = self.settle(outcome).await? {
                match (&handled, installed) {
                    (NotificationHandled::Dropped(e), _) => {
                        let code = e.status();
                        info!(error = %e, subject = code.subject, reason = code.reason, "notification dropped");
                    }
                    (_, Some((iccid, crate::order::ProfileState::Installed))) => {
                        info!(iccid = %iccid.as_str(), "profile installed");
                    }
                    (_, Some((iccid, state))) => {
                        warn!(iccid = %iccid.as_str(), %state, "profile installation failed");
                    }
                    (_, None) => match forwarded {
                        Some(iccid) => info!(
                            iccid = %iccid.as_str(),
                            "device notification recorded and forwarded to the operator"
                        ),
                        None => info!("notification recorded"),
                    },
                }
                return Ok(handled);
            }
        }
        Err(Es9Error::Store(StoreError::Stale))
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
