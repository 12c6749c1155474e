//! The relayed steps of indirect downloads, driven over the store: which
//! SM-DP+ a step goes to, the session kept after initiateAuthentication, the
//! notification kept for the device (see [`crate::relay`]).

use ferrosim_asn1::esipa::Sgp32Version;
use ferrosim_asn1::sgp32;
use tracing::{info, warn};

use super::{Eim, EsipaReply};
use crate::error::EimError;
use crate::ids::Timestamp;
use crate::relay::{self, Es9Relay};
use crate::steps::certificates::check_device;
use crate::steps::notify;
use crate::store::{EimStore, RelaySession};

impl<S: EimStore> Eim<S> {
    /// One relayed step of an indirect download.
    pub(super) async fn relay_step(
        &self,
        parsed: relay::Parsed,
        version: Sgp32Version,
        es9: &impl Es9Relay,
        now: Timestamp,
    ) -> Result<EsipaReply, EimError> {
        use relay::{Parsed, RelayFunction as F};
        let relayed = |answer: relay::RelayAnswer| {
            Ok(EsipaReply::Relayed {
                answer: Box::new(answer),
                version,
            })
        };
        match parsed {
            Parsed::Initiate {
                challenge,
                smdp_address,
                euicc_info1,
                eim_transaction_id,
            } => {
                let device = match &eim_transaction_id {
                    Some(tid) => match self.store.device_by_transaction(tid).await? {
                        Some(eid) => self.store.device(&eid).await?,
                        None => None,
                    },
                    None => None,
                };
                let trigger =
                    device
                        .as_ref()
                        .zip(eim_transaction_id.as_ref())
                        .and_then(|(d, tid)| {
                            d.record
                                .item_with_transaction(tid)
                                .and_then(|i| activation_code_of(&i.der))
                        });
                let address = smdp_address
                    .or_else(|| trigger.as_ref().map(|(a, _)| a.clone()))
                    .or_else(|| {
                        device
                            .as_ref()
                            .and_then(|d| d.record.euicc.default_smdp_address.clone())
                    });
                let Some(address) = address.filter(|a| !a.is_empty()) else {
                    warn!(%version, "initiateAuthentication to relay names no SM-DP+");
                    return relayed(relay::error_answer(
                        F::InitiateAuthentication,
                        1,
                        None,
                        version,
                    ));
                };
                let info1 = euicc_info1
                    .or_else(|| device.as_ref().and_then(|d| d.record.euicc.info1.clone()));
                let Some(info1) = info1 else {
                    warn!(%version, "initiateAuthentication to relay without EUICCInfo1");
                    return relayed(relay::error_answer(
                        F::InitiateAuthentication,
                        127,
                        None,
                        version,
                    ));
                };
                let request = relay::RelayRequest {
                    function: F::InitiateAuthentication,
                    address: address.clone(),
                    request: relay::Es9Request::InitiateAuthentication(
                        ferrosim_asn1::json::es9::InitiateAuthenticationRequest {
                            euicc_challenge: challenge.into(),
                            euicc_info1: info1.into(),
                            smdp_address: address.clone(),
                        },
                    ),
                    version,
                };
                let outcome = es9.call(&request).await;
                // An answer whose transactionId is not 1 to 16 bytes of hex
                // is refused while it is read (a malformed answer), so it
                // opens no session.
                if let Ok(relay::Es9Response::InitiateAuthentication(r)) = &outcome {
                    self.store
                        .put_relay_session(&RelaySession {
                            transaction_id: r.transaction_id.clone(),
                            smdp_address: address.clone(),
                            eid: device.as_ref().map(|d| d.record.eid),
                            created_at: now,
                        })
                        .await?;
                }
                log_relay(&request, &outcome);
                let matching_id = trigger.and_then(|(_, m)| m);
                relayed(relay::answer(&request, &outcome, matching_id.as_deref()))
            }
            Parsed::Step {
                function,
                transaction_id,
                euicc_answer,
            } => {
                let Some(session) = self.store.relay_session(&transaction_id).await? else {
                    info!(%version, function = function.name(), "relayed step of an unknown session");
                    return relayed(relay::unknown_transaction(function, version));
                };
                if function == F::AuthenticateClient
                    && let Some(eid) = session.eid
                    && let Some(device) = self.store.device(&eid).await?
                    && let Err(e) = check_device(&device.record, &self.config.trust, now)
                {
                    warn!(%version, %e, "relayed authenticateClient refused: the device's eUICC certificates are refused by revocation checking");
                    return relayed(refused_certificates(&e, version));
                }
                let request = relay::RelayRequest {
                    function,
                    address: session.smdp_address,
                    request: relay::step_request(function, &transaction_id, euicc_answer),
                    version,
                };
                let outcome = es9.call(&request).await;
                log_relay(&request, &outcome);
                relayed(relay::answer(&request, &outcome, None))
            }
            Parsed::Notification {
                pending_notification,
                address,
                transaction_id,
            } => {
                let session = match &transaction_id {
                    Some(tid) => self.store.relay_session(tid).await?,
                    None => None,
                };
                if let Some(eid) = session.as_ref().and_then(|s| s.eid) {
                    let note = pending_notification.clone();
                    self.on_device(&eid, |device| {
                        notify::relayed_notification(device, &note, now)
                    })
                    .await?;
                }
                let address = address.or(session.map(|s| s.smdp_address));
                let Some(address) = address else {
                    warn!(%version, "a profile notification to relay names no SM-DP+: kept, not relayed");
                    return Ok(EsipaReply::NoContent);
                };
                let request = relay::RelayRequest {
                    function: F::HandleNotification,
                    address,
                    request: relay::Es9Request::HandleNotification(
                        ferrosim_asn1::json::es9::HandleNotificationRequest {
                            pending_notification: pending_notification.into(),
                        },
                    ),
                    version,
                };
                let outcome = es9.call(&request).await;
                log_relay(&request, &outcome);
                Ok(EsipaReply::NoContent)
            }
        }
    }
}

/// The ESipa authenticateClient error for a device whose certificates the
/// eIM refuses: `eumCertificateInvalid(1)` with SGP.22's 8.1.2/6.1 for the
/// EUM, `euiccCertificateInvalid(3)` with 8.1.3/6.1 for the eUICC, as the
/// SM-DP+ answers at authenticateClient.
fn refused_certificates(e: &ferrosim_pki::Error, version: Sgp32Version) -> relay::RelayAnswer {
    let eum = matches!(
        e,
        ferrosim_pki::Error::Revoked {
            cert: ferrosim_pki::CertRole::Eum,
            ..
        } | ferrosim_pki::Error::RevocationUnknown {
            cert: ferrosim_pki::CertRole::Eum,
            ..
        }
    );
    let (code, subject) = if eum { (1, "8.1.2") } else { (3, "8.1.3") };
    relay::error_answer(
        relay::RelayFunction::AuthenticateClient,
        code,
        Some(ferrosim_asn1::json::StatusCodeData {
            subject_code: subject.to_owned(),
            reason_code: "6.1".to_owned(),
            subject_identifier: None,
            message: Some(format!("refused by the eIM: {e}")),
        }),
        version,
    )
}

/// The SM-DP+ address and matching id of a queued download trigger's
/// activation code (`[LPA:]1$address$matchingId...`).
fn activation_code_of(trigger: &[u8]) -> Option<(String, Option<String>)> {
    let request: sgp32::ProfileDownloadTriggerRequest = ferrosim_asn1::decode_der(trigger).ok()?;
    let Some(sgp32::ProfileDownloadData::activationCode(code)) = request.profile_download_data
    else {
        return None;
    };
    let code = code.strip_prefix("LPA:").unwrap_or(&code);
    let mut parts = code.split('$');
    let _format = parts.next()?;
    let address = parts.next().filter(|a| !a.is_empty())?.to_owned();
    let matching_id = parts.next().filter(|m| !m.is_empty()).map(str::to_owned);
    Some((address, matching_id))
}

fn log_relay(
    request: &relay::RelayRequest,
    outcome: &Result<relay::Es9Response, relay::RelayFailure>,
) {
    match outcome {
        Ok(_) => info!(
            function = request.function.name(),
            smdp = %request.address,
            read_as = %request.version,
            "relayed ES9+ step"
        ),
        Err(e) => warn!(
            function = request.function.name(),
            smdp = %request.address,
            read_as = %request.version,
            failure = ?e,
            "relayed ES9+ step failed"
        ),
    }
}
