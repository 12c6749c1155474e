//! The profile download (SGP.22 section 3.1.3): common mutual
//! authentication, the end user's confirmation, the bound profile package
//! and its installation.
//!
//! The logic is [`Download`], a sans-IO state machine ([`machine`]): APDU
//! responses, ES9+ answers, the end user's consent and the time go in,
//! actions come out. [`download_profile`] (feature `tokio`) is its driver
//! over a blocking [`crate::Transport`] (through an [`crate::Es10`]
//! session) and an async [`crate::Es9Client`]; a simulator drives the same
//! machine with virtual time and in-process peers.
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
//! user refuses, `postponed` when the user puts it off or no confirmation
//! code can be had (the order stays open), `timeout`,
//! `metadataMismatch`, `loadBppExecutionError` when loading the package
//! breaks down, `undefinedReason` otherwise), then ES9+ cancelSession with the
//! eUICC's signed answer. When the eUICC itself refuses (AuthenticateServer
//! or PrepareDownload error), its answer goes to the SM-DP+ in the next ES9+
//! call instead, as SGP.22 prescribes. An installation failure reported in
//! the ProfileInstallationResult is delivered like a success: it *is* the
//! end of the session.

pub mod machine;
mod outcome;

use std::time::Duration;

use ferrosim_asn1::tlv::Tlv;
use ferrosim_ids::TransactionId;
use sha2::{Digest, Sha256};

pub use machine::{Action, DEFAULT_ES9_TIMEOUT, Download};
pub use outcome::{
    Cancellation, Consent, DownloadError, DownloadFailure, DownloadOutcome, ProfileMetadata, Step,
    StepTiming,
};

use crate::activation_code::ActivationCode;
use crate::es10::types::DeviceInfo;
use crate::notifications::RetryPolicy;

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
    /// How long an ES9+ call may take before the session is cancelled
    /// (reason `timeout`); [`DEFAULT_ES9_TIMEOUT`] by default.
    pub es9_timeout: Duration,
}

impl<'a> DownloadRequest<'a> {
    /// A request with the default device info, retry policy and timeout.
    pub fn new(activation_code: &'a ActivationCode, confirmation_code: Option<&'a str>) -> Self {
        Self {
            activation_code,
            confirmation_code,
            device_info: DeviceInfo::default(),
            notification_retry: RetryPolicy::default(),
            es9_timeout: DEFAULT_ES9_TIMEOUT,
        }
    }
}

/// SHA-256(SHA-256(confirmation code) || transactionId), the `hashCc` of PrepareDownload.
pub fn hash_confirmation_code(code: &str, transaction_id: &TransactionId) -> [u8; 32] {
    let inner = Sha256::digest(code.as_bytes());
    let mut outer = Sha256::new();
    outer.update(inner);
    outer.update(transaction_id.as_bytes());
    outer.finalize().into()
}

#[cfg(feature = "tokio")]
mod driver;
#[cfg(feature = "tokio")]
pub use driver::{download_profile, download_profile_asking};

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
        let tid = TransactionId::from_bytes(&[1, 2]).unwrap();
        assert_eq!(hash_confirmation_code("1234", &tid), expected);
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

    /// An SM-DP+ answer's transaction id is read while the answer is: 1 to
    /// 16 bytes in hex, or the answer is malformed.
    #[test]
    fn transaction_ids() {
        use ferrosim_asn1::json::es9::CancelSessionResponse;
        use ferrosim_asn1::json::{Answer, read_answer};
        let answer = |tid: &str| {
            read_answer::<CancelSessionResponse>(
                format!(
                    r#"{{"header":{{"functionExecutionStatus":{{"status":"Executed-Success"}}}},"transactionId":"{tid}"}}"#
                )
                .as_bytes(),
            )
        };
        match answer("0A0b") {
            Answer::Executed(r) => {
                assert_eq!(r.transaction_id.unwrap().as_bytes(), [10, 11]);
            }
            other => panic!("{other:?}"),
        }
        for bad in ["", "zz", &"00".repeat(17)] {
            assert!(matches!(answer(bad), Answer::Malformed(_)), "{bad:?}");
        }
    }
}
