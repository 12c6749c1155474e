//! The profile download (SGP.22 section 3.1.3): common mutual
//! authentication, the end user's confirmation, the bound profile package
//! and its installation, as one function over an [`Es10`] session and an
//! [`Es9Client`].
//!
//! ```text
//! GetEUICCChallenge, GetEUICCInfo1 ─► initiateAuthentication ─► AuthenticateServer
//!   ─► authenticateClient ─► metadata check + consent ─► PrepareDownload (hashCc)
//!   ─► getBoundProfilePackage ─► LoadBoundProfilePackage ─► handleNotification(PIR)
//!   ─► RemoveNotificationFromList
//! ```
//!
//! Failures after initiateAuthentication cancel the session on both sides:
//! ES10b CancelSession with the reason that fits (`endUserRejection` when the
//! user refuses or has no confirmation code, `postponed`, `timeout`,
//! `metadataMismatch`, `loadBppExecutionError` when loading the package
//! breaks down, `undefinedReason` otherwise), then ES9+ cancelSession with the
//! eUICC's signed answer. When the eUICC itself refuses (AuthenticateServer
//! or PrepareDownload error), its answer goes to the SM-DP+ in the next ES9+
//! call instead, as SGP.22 prescribes. An installation failure reported in
//! the ProfileInstallationResult is delivered like a success: it *is* the
//! end of the session.

mod outcome;

use std::time::Instant;

use ferrosim_asn1::json::Base64;
use ferrosim_asn1::json::es9::{
    AuthenticateClientRequest, CancelSessionRequest, GetBoundProfilePackageRequest,
    InitiateAuthenticationRequest,
};
use ferrosim_asn1::tlv::Tlv;
use sha2::{Digest, Sha256};

pub use outcome::{
    Cancellation, Consent, DownloadError, DownloadFailure, DownloadOutcome, ProfileMetadata, Step,
    StepTiming,
};

use crate::activation_code::{ActivationCode, SmdpAddress};
use crate::es9::{Es9Client, Es9ClientError};
use crate::es10::Es10;
use crate::es10::commands::{AuthenticateServerInput, PrepareDownloadInput, ctx_params1};
use crate::es10::types::{CancelSessionReason, DeviceInfo, InstallationOutcome};
use crate::notifications::{RetryPolicy, deliver};
use crate::transport::Transport;

/// What to download and how.
#[derive(Debug, Clone)]
pub struct DownloadRequest<'a> {
    /// The activation code (SM-DP+ address, matching id, OID).
    pub activation_code: &'a ActivationCode,
    /// The confirmation code, when the order has one.
    pub confirmation_code: Option<&'a str>,
    /// The device described to the SM-DP+.
    pub device_info: DeviceInfo,
    /// How the installation result is delivered.
    pub notification_retry: RetryPolicy,
}

impl<'a> DownloadRequest<'a> {
    /// A request with the default device info and retry policy.
    pub fn new(activation_code: &'a ActivationCode, confirmation_code: Option<&'a str>) -> Self {
        Self {
            activation_code,
            confirmation_code,
            device_info: DeviceInfo::default(),
            notification_retry: RetryPolicy::default(),
        }
    }
}

/// SHA-256(SHA-256(confirmation code) || transactionId), the `hashCc` of PrepareDownload.
pub fn hash_confirmation_code(code: &str, transaction_id: &[u8]) -> [u8; 32] {
    let inner = Sha256::digest(code.as_bytes());
    let mut outer = Sha256::new();
    outer.update(inner);
    outer.update(transaction_id);
    outer.finalize().into()
}

/// Downloads and installs the profile the activation code points to.
/// `consent` sees the profile metadata and decides.
pub async fn download_profile<T, C, F>(
    es10: &mut Es10<T>,
    es9: &C,
    request: &DownloadRequest<'_>,
    consent: F,
) -> Result<DownloadOutcome, DownloadError>
where
    T: Transport,
    C: Es9Client,
    F: FnMut(&ProfileMetadata) -> Consent,
{
    let mut flow = Flow {
        es10,
        es9,
        address: request.activation_code.smdp_address().clone(),
        transaction_id: Vec::new(),
        timings: Vec::new(),
    };
    match flow.run(request, consent).await {
        Ok(outcome) => Ok(outcome),
        Err(Failed {
            step,
            failure,
            cancel,
        }) => {
            let cancellation = match cancel {
                Some(reason) => Some(flow.cancel(reason).await),
                None => None,
            };
            if let Some(c) = &cancellation {
                tracing::warn!(%step, error = %failure, cancellation = %c, "download failed");
            }
            Err(DownloadError {
                step,
                failure,
                cancellation,
                timings: flow.timings,
            })
        }
    }
}

/// A failure inside the flow: where, what, and whether to cancel.
struct Failed {
    step: Step,
    failure: DownloadFailure,
    cancel: Option<CancelSessionReason>,
}

impl Failed {
    /// A failure before any session exists.
    fn early(step: Step, failure: impl Into<DownloadFailure>) -> Self {
        Self {
            step,
            failure: failure.into(),
            cancel: None,
        }
    }

    /// A failure inside a session: cancel with the reason that fits.
    fn in_session(step: Step, failure: impl Into<DownloadFailure>) -> Self {
        let failure = failure.into();
        let reason = match (&failure, step) {
            (DownloadFailure::UserRejected | DownloadFailure::ConfirmationCodeRequired, _) => {
                CancelSessionReason::EndUserRejection
            }
            (DownloadFailure::UserPostponed, _) => CancelSessionReason::Postponed,
            (DownloadFailure::Smdp(Es9ClientError::Timeout { .. }), _) => {
                CancelSessionReason::Timeout
            }
            (DownloadFailure::MetadataMismatch(_), _) => CancelSessionReason::MetadataMismatch,
            (DownloadFailure::Euicc(_), Step::LoadBoundProfilePackage) => {
                CancelSessionReason::LoadBppExecutionError
            }
            _ => CancelSessionReason::UndefinedReason,
        };
        Self {
            step,
            failure,
            cancel: Some(reason),
        }
    }

    /// A failure the other side already knows about: no cancellation.
    fn reported(step: Step, failure: DownloadFailure) -> Self {
        Self {
            step,
            failure,
            cancel: None,
        }
    }
}

struct Flow<'a, T, C> {
    es10: &'a mut Es10<T>,
    es9: &'a C,
    address: SmdpAddress,
    transaction_id: Vec<u8>,
    timings: Vec<StepTiming>,
}

impl<T: Transport, C: Es9Client> Flow<'_, T, C> {
    fn record(&mut self, step: Step, started: Instant) {
        self.timings.push(StepTiming {
            step,
            elapsed: started.elapsed(),
        });
    }

    fn tid_hex(&self) -> String {
        hex::encode_upper(&self.transaction_id)
    }

    async fn run<F>(
        &mut self,
        request: &DownloadRequest<'_>,
        mut consent: F,
    ) -> Result<DownloadOutcome, Failed>
    where
        F: FnMut(&ProfileMetadata) -> Consent,
    {
        let code = request.activation_code;

        // Challenge and EUICCInfo1.
        let t = Instant::now();
        let challenge = self
            .es10
            .get_euicc_challenge()
            .map_err(|e| Failed::early(Step::GetEuiccChallenge, e))?;
        self.record(Step::GetEuiccChallenge, t);
        let t = Instant::now();
        let info1 = self
            .es10
            .get_euicc_info1()
            .map_err(|e| Failed::early(Step::GetEuiccInfo1, e))?;
        self.record(Step::GetEuiccInfo1, t);

        // initiateAuthentication.
        let t = Instant::now();
        let initiated = self
            .es9
            .initiate_authentication(
                &self.address,
                &InitiateAuthenticationRequest {
                    euicc_challenge: Base64(challenge.to_vec()),
                    euicc_info1: Base64(info1.raw),
                    smdp_address: self.address.to_string(),
                },
            )
            .await
            .map_err(|e| Failed::early(Step::InitiateAuthentication, e))?;
        self.record(Step::InitiateAuthentication, t);
        self.transaction_id = parse_transaction_id(&initiated.transaction_id)
            .map_err(|e| Failed::early(Step::InitiateAuthentication, e))?;
        tracing::info!(transaction_id = %self.tid_hex(), address = %self.address, "download session started");

        // AuthenticateServer.
        let step = Step::AuthenticateServer;
        let ctx = ctx_params1(code.matching_id(), &request.device_info)
            .map_err(|e| Failed::in_session(step, e))?;
        let t = Instant::now();
        let answer = self
            .es10
            .authenticate_server(&AuthenticateServerInput {
                server_signed1: &initiated.server_signed1.0,
                server_signature1: &initiated.server_signature1.0,
                euicc_ci_pkid_to_be_used: &initiated.euicc_ci_pkid_to_be_used.0,
                server_certificate: &initiated.server_certificate.0,
                ctx_params1: &ctx,
            })
            .map_err(|e| Failed::in_session(step, e))?;
        self.record(step, t);
        let authenticate_client = AuthenticateClientRequest {
            transaction_id: self.tid_hex(),
            authenticate_server_response: Base64(answer.raw),
        };
        if let Some(code) = answer.error {
            // The SM-DP+ learns of the refusal from the error response itself.
            let _ = self
                .es9
                .authenticate_client(&self.address, &authenticate_client)
                .await;
            return Err(Failed::reported(
                step,
                DownloadFailure::ServerNotAuthenticated { code },
            ));
        }
        if let Some(expected) = code.smdp_oid() {
            check_smdp_oid(expected, &initiated.server_certificate.0)
                .map_err(|e| Failed::in_session(step, e))?;
        }

        // authenticateClient.
        let step = Step::AuthenticateClient;
        let t = Instant::now();
        let authenticated = self
            .es9
            .authenticate_client(&self.address, &authenticate_client)
            .await
            .map_err(|e| Failed::in_session(step, e))?;
        self.record(step, t);
        self.check_tid(step, &authenticated.transaction_id)?;

        // Metadata, confirmation code, consent.
        let step = Step::ConfirmProfile;
        let t = Instant::now();
        let metadata = ProfileMetadata::decode(authenticated.profile_metadata.0).map_err(|e| {
            Failed::in_session(step, DownloadFailure::MetadataMismatch(e.to_string()))
        })?;
        let cc_required = cc_required_flag(&authenticated.smdp_signed2.0)
            .map_err(|e| Failed::in_session(step, e))?;
        match consent(&metadata) {
            Consent::Accept => {}
            Consent::Reject => return Err(Failed::in_session(step, DownloadFailure::UserRejected)),
            Consent::Postpone => {
                return Err(Failed::in_session(step, DownloadFailure::UserPostponed));
            }
        }
        let hash_cc = match (cc_required, request.confirmation_code) {
            (false, _) => None,
            (true, Some(cc)) => Some(hash_confirmation_code(cc, &self.transaction_id)),
            (true, None) => {
                return Err(Failed::in_session(
                    step,
                    DownloadFailure::ConfirmationCodeRequired,
                ));
            }
        };
        self.record(step, t);

        // PrepareDownload.
        let step = Step::PrepareDownload;
        let t = Instant::now();
        let prepared = self
            .es10
            .prepare_download(&PrepareDownloadInput {
                smdp_signed2: &authenticated.smdp_signed2.0,
                smdp_signature2: &authenticated.smdp_signature2.0,
                hash_cc,
                smdp_certificate: &authenticated.smdp_certificate.0,
            })
            .map_err(|e| Failed::in_session(step, e))?;
        self.record(step, t);
        let get_bpp = GetBoundProfilePackageRequest {
            transaction_id: self.tid_hex(),
            prepare_download_response: Base64(prepared.raw),
        };
        if let Some(code) = prepared.error {
            let _ = self
                .es9
                .get_bound_profile_package(&self.address, &get_bpp)
                .await;
            return Err(Failed::reported(
                step,
                DownloadFailure::DownloadNotPrepared { code },
            ));
        }

        // getBoundProfilePackage.
        let step = Step::GetBoundProfilePackage;
        let t = Instant::now();
        let package = self
            .es9
            .get_bound_profile_package(&self.address, &get_bpp)
            .await
            .map_err(|e| Failed::in_session(step, e))?;
        self.record(step, t);
        self.check_tid(step, &package.transaction_id)?;

        // LoadBoundProfilePackage.
        let step = Step::LoadBoundProfilePackage;
        let t = Instant::now();
        let result = self
            .es10
            .load_bound_profile_package(&package.bound_profile_package.0)
            .map_err(|e| Failed::in_session(step, e))?;
        self.record(step, t);

        // The installation result goes to the SM-DP+, then off the eUICC.
        let t = Instant::now();
        let delivery = deliver(
            self.es9,
            &self.address,
            &result.raw,
            &request.notification_retry,
        )
        .await;
        self.record(Step::HandleNotification, t);
        let delivered = match delivery.result {
            Ok(()) => {
                let t = Instant::now();
                if let Err(e) = self.es10.remove_notification(result.metadata.seq_number) {
                    tracing::warn!(error = %e, "installation result acknowledged but not removed from the eUICC");
                }
                self.record(Step::RemoveNotification, t);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "installation result kept on the eUICC for later delivery");
                false
            }
        };
        match result.outcome {
            InstallationOutcome::Success { isdp_aid } => {
                tracing::info!(iccid = %metadata.iccid, "profile installed");
                Ok(DownloadOutcome {
                    iccid: result
                        .metadata
                        .iccid
                        .clone()
                        .unwrap_or_else(|| metadata.iccid.clone()),
                    isdp_aid,
                    transaction_id: self.transaction_id.clone(),
                    metadata,
                    result_delivered: delivered,
                    timings: std::mem::take(&mut self.timings),
                })
            }
            InstallationOutcome::Failure {
                bpp_command_id,
                error_reason,
            } => Err(Failed::reported(
                step,
                DownloadFailure::InstallationFailed {
                    bpp_command_id,
                    error_reason,
                    result_delivered: delivered,
                },
            )),
        }
    }

    /// The SM-DP+ must answer with the session's transaction id.
    fn check_tid(&self, step: Step, received: &str) -> Result<(), Failed> {
        match parse_transaction_id(received) {
            Ok(tid) if tid == self.transaction_id => Ok(()),
            _ => Err(Failed::in_session(
                step,
                DownloadFailure::InvalidSmdpAnswer(format!(
                    "transaction id `{received}` is not this session's"
                )),
            )),
        }
    }

    /// ES10b CancelSession, then ES9+ cancelSession with the signed answer.
    async fn cancel(&mut self, reason: CancelSessionReason) -> Cancellation {
        let t = Instant::now();
        let signed = self.es10.cancel_session(&self.transaction_id, reason);
        self.record(Step::CancelSessionEuicc, t);
        let signed = match signed {
            Ok(signed) => signed,
            Err(e) => {
                return Cancellation {
                    reason,
                    euicc_error: Some(e),
                    smdp_error: None,
                };
            }
        };
        let t = Instant::now();
        let told = self
            .es9
            .cancel_session(
                &self.address,
                &CancelSessionRequest {
                    transaction_id: self.tid_hex(),
                    cancel_session_response: Base64(signed),
                },
            )
            .await;
        self.record(Step::CancelSessionSmdp, t);
        Cancellation {
            reason,
            euicc_error: None,
            smdp_error: told.err(),
        }
    }
}

/// A transaction id as ES9+ carries it: 1 to 16 bytes in hex.
fn parse_transaction_id(text: &str) -> Result<Vec<u8>, DownloadFailure> {
    match hex::decode(text.trim()) {
        Ok(bytes) if (1..=16).contains(&bytes.len()) => Ok(bytes),
        _ => Err(DownloadFailure::InvalidSmdpAnswer(format!(
            "transaction id `{}` is not 1 to 16 bytes of hex",
            text.chars().take(40).collect::<String>()
        ))),
    }
}

/// `ccRequiredFlag` of smdpSigned2 (`30 { 80 tid, 01 flag, [5F49 otpk] }`).
fn cc_required_flag(smdp_signed2: &[u8]) -> Result<bool, DownloadFailure> {
    let bad =
        |e: &dyn std::fmt::Display| DownloadFailure::InvalidSmdpAnswer(format!("smdpSigned2: {e}"));
    let top = Tlv::parse_tagged(smdp_signed2, 0x30).map_err(|e| bad(&e))?;
    let flag = top.require(0x01).map_err(|e| bad(&e))?;
    match flag.value {
        [0x00] => Ok(false),
        [_] => Ok(true),
        _ => Err(bad(&"ccRequiredFlag is not a BOOLEAN")),
    }
}

/// The activation code's OID must be among the DPauth certificate's registered ids.
fn check_smdp_oid(expected: &str, certificate: &[u8]) -> Result<(), DownloadFailure> {
    let cert = ferrosim_pki::RspCertificate::from_der(certificate)
        .map_err(|e| DownloadFailure::InvalidSmdpAnswer(format!("serverCertificate: {e}")))?;
    let found: Vec<String> = cert
        .registered_ids()
        .iter()
        .map(ToString::to_string)
        .collect();
    if found.iter().any(|oid| oid == expected) {
        Ok(())
    } else {
        Err(DownloadFailure::SmdpOidMismatch {
            expected: expected.to_owned(),
            found: if found.is_empty() {
                "none".into()
            } else {
                found.join(", ")
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmation_code_hash() {
        // SHA256(SHA256("1234") || 01 02) computed independently.
        let inner = Sha256::digest(b"1234");
        let expected: [u8; 32] = Sha256::digest([inner.as_slice(), &[1, 2]].concat()).into();
        assert_eq!(hash_confirmation_code("1234", &[1, 2]), expected);
    }

    #[test]
    fn smdp_signed2_flag() {
        let mut s = ferrosim_asn1::tlv::tlv(0x80, &[1; 16]);
        s.extend(ferrosim_asn1::tlv::tlv(0x01, &[0xFF]));
        assert!(cc_required_flag(&ferrosim_asn1::tlv::tlv(0x30, &s)).unwrap());
        let mut s = ferrosim_asn1::tlv::tlv(0x80, &[1; 16]);
        s.extend(ferrosim_asn1::tlv::tlv(0x01, &[0x00]));
        assert!(!cc_required_flag(&ferrosim_asn1::tlv::tlv(0x30, &s)).unwrap());
        assert!(cc_required_flag(&[0x30, 0x00]).is_err());
        assert!(cc_required_flag(&[0x31]).is_err());
    }

    #[test]
    fn transaction_ids() {
        assert_eq!(parse_transaction_id("0A0b").unwrap(), vec![10, 11]);
        assert!(parse_transaction_id("").is_err());
        assert!(parse_transaction_id("zz").is_err());
        assert!(parse_transaction_id(&"00".repeat(17)).is_err());
    }
}
