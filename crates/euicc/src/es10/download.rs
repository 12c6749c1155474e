//! PrepareDownload (SGP.22 5.7.5) and CancelSession (5.7.14).
//!
//! PrepareDownload verifies CERT.DPpb (a trusted CI, the same CI and SM-DP+
//! OID as CERT.DPauth), smdpSignature2 over `smdpSigned2 || euiccSignature1`
//! and the transaction id, then makes the one-time key pair and signs
//! euiccSigned2 over `euiccSigned2 || smdpSignature2`.

use ferrosim_ids::Timestamp;
use std::sync::Arc;

use ferrosim_asn1::rasn::types::{FixedOctetString, Integer, OctetString};
use ferrosim_asn1::signed;
use ferrosim_asn1::tlv::{Tlv, tlv};
use ferrosim_asn1::{decode_der, encode_der, rsp};
use ferrosim_crypto::ecka::OneTimeKeyPair;
use ferrosim_pki::{CertRole, VerifiedDp};
use rand::CryptoRng;
use tracing::info;
use zeroize::Zeroizing;

use super::{DownloadSession, Es10Reply, Isdr, decode, reply};
use crate::apdu::StatusWord;
use crate::codes::DownloadErrorCode;
use crate::profile::dotted_to_oid;

impl Isdr {
    /// ES10b.PrepareDownload.
    pub(super) fn prepare_download(
        &mut self,
        cmd: &Tlv<'_>,
        now: Timestamp,
        rng: &mut dyn CryptoRng,
    ) -> Es10Reply {
        reply(self.try_prepare_download(cmd, now, rng))
    }

    fn try_prepare_download(
        &mut self,
        cmd: &Tlv<'_>,
        now: Timestamp,
        rng: &mut dyn CryptoRng,
    ) -> Result<Es10Reply, Es10Reply> {
        let malformed = || Es10Reply::Status(StatusWord::WRONG_DATA);
        let parts = signed::smdp_signed2(cmd.raw).map_err(|_| malformed())?;
        let children = cmd
            .children()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| malformed())?;
        // smdpSigned2, smdpSignature2, hashCc (optional), smdpCertificate.
        let (hash_cc, certificate) = match children.as_slice() {
            [_, _, cert] if cert.tag == 0x30 => (None, cert),
            [_, _, hash, cert]
                if hash.tag == 0x04 && hash.value.len() == 32 && cert.tag == 0x30 =>
            {
                (Some(hash.value), cert)
            }
            _ => return Err(malformed()),
        };
        let smdp_signed2: rsp::SmdpSigned2 = decode_der(parts.signed).map_err(|_| malformed())?;
        let tid = smdp_signed2.transaction_id.0.to_vec();

        let dppb = match self.check_binding(&smdp_signed2, &parts, hash_cc, certificate.raw, now) {
            Ok(key) => key,
            Err(code) => {
                info!(?code, "PrepareDownload refused");
                if code != DownloadErrorCode::NoSessionContext {
                    self.session = None;
                }
                return Ok(download_error(&tid, code));
            }
        };

        // Reuse the key pair a package may already be bound to; else a new one.
        let one_time_key = match (&smdp_signed2.bpp_euicc_otpk, &self.retained_key) {
            (Some(bound), Some(kept)) if kept.public_sec1().as_slice() == bound.as_ref() => {
                Arc::clone(kept)
            }
            _ => match one_time_key_from(rng) {
                Some(k) => Arc::new(k),
                None => return Ok(download_error(&tid, DownloadErrorCode::UndefinedError)),
            },
        };
        let euicc_signed2 = rsp::EUICCSigned2::new(
            smdp_signed2.transaction_id.clone(),
            OctetString::from(one_time_key.public_sec1().to_vec()),
            hash_cc
                .filter(|_| smdp_signed2.cc_required_flag)
                .and_then(|h| <[u8; 32]>::try_from(h).ok())
                .map(|h| rsp::Octet32(FixedOctetString::new(h))),
        );
        let Ok(euicc_signed2) = encode_der(&euicc_signed2) else {
            return Ok(download_error(&tid, DownloadErrorCode::UndefinedError));
        };
        let signature = self
            .identity
            .sign_5f37(&[euicc_signed2.as_slice(), parts.signature_tlv].concat())
            .ok();
        let Some(signature) = signature else {
            return Ok(download_error(&tid, DownloadErrorCode::UndefinedError));
        };
        self.retained_key = Some(Arc::clone(&one_time_key));
        if let Some(session) = self.session.as_mut() {
            session.download = Some(DownloadSession { dppb, one_time_key });
            session.loader = None;
        }
        let ok = tlv(0xA0, &[euicc_signed2, signature].concat());
        Ok(Es10Reply::Data(tlv(0xBF21, &ok)))
    }

    /// The verifications of SGP.22 5.7.5; returns the DPpb key.
    fn check_binding(
        &self,
        smdp_signed2: &rsp::SmdpSigned2,
        parts: &signed::SignedPart<'_>,
        hash_cc: Option<&[u8]>,
        certificate: &[u8],
        now: Timestamp,
    ) -> Result<Arc<VerifiedDp>, DownloadErrorCode> {
        use DownloadErrorCode as E;
        let server = self
            .session
            .as_ref()
            .and_then(|s| s.server.as_ref())
            .ok_or(E::NoSessionContext)?;
        let verified = self
            .identity
            .shared()
            .verify_dp(certificate, CertRole::DpPb, now.to_system_time())
            .map_err(|e| match e {
                ferrosim_pki::Error::UnsupportedPublicKey(_)
                | ferrosim_pki::Error::UnsupportedSignatureAlgorithm(_) => E::UnsupportedCurve,
                _ => E::InvalidCertificate,
            })?;
        // CERT.DPpb must come from the CI and the SM-DP+ of CERT.DPauth.
        if verified.ci_key_id != server.ci_key_id
            || verified.smdp_oid.to_string() != server.smdp_oid
        {
            return Err(E::InvalidCertificate);
        }
        verified
            .certificate
            .verifying_key()
            .verify_raw(
                &[parts.signed, server.euicc_signature1.as_slice()].concat(),
                parts.signature,
            )
            .map_err(|_| E::InvalidSignature)?;
        if smdp_signed2.transaction_id.0.as_ref() != server.transaction_id.as_bytes() {
            return Err(E::InvalidTransactionId);
        }
        if smdp_signed2.cc_required_flag && hash_cc.is_none() {
            return Err(E::UndefinedError);
        }
        Ok(verified)
    }

    /// ES10b.CancelSession: signs the cancellation for the SM-DP+ and ends
    /// the session (a download in progress is discarded).
    pub(super) fn cancel_session(&mut self, cmd: &Tlv<'_>) -> Es10Reply {
        let request: rsp::CancelSessionRequest = match decode(cmd) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let invalid = || {
            Es10Reply::encode(&rsp::CancelSessionResponse::cancelSessionResponseError(
                Integer::from(5),
            ))
        };
        let Some(server) = self.session.as_ref().and_then(|s| s.server.clone()) else {
            return invalid();
        };
        if request.transaction_id.0.as_ref() != server.transaction_id.as_bytes() {
            return invalid();
        }
        let Some(smdp_oid) = dotted_to_oid(&server.smdp_oid) else {
            return undefined_cancel_error();
        };
        let signed = rsp::EuiccCancelSessionSigned::new(
            request.transaction_id.clone(),
            smdp_oid,
            request.reason.clone(),
        );
        let Ok(signed) = encode_der(&signed) else {
            return undefined_cancel_error();
        };
        let Some(signature) = self.identity.sign_5f37(&signed).ok() else {
            return undefined_cancel_error();
        };
        self.session = None;
        info!(reason = ?request.reason.0, "RSP session cancelled");
        Es10Reply::Data(tlv(0xBF41, &tlv(0xA0, &[signed, signature].concat())))
    }
}

/// A one-time key pair (otSK/otPK.EUICC.ECKA) whose private scalar comes
/// from `rng`, so a seeded generator gives the same key again. A draw
/// outside `[1, n-1]` (probability about 2^-32) is drawn again.
fn one_time_key_from(rng: &mut dyn CryptoRng) -> Option<OneTimeKeyPair> {
    let mut scalar = Zeroizing::new([0u8; 32]);
    for _ in 0..8 {
        rng.fill_bytes(scalar.as_mut_slice());
        if let Ok(key) = OneTimeKeyPair::from_scalar(scalar.as_slice()) {
            return Some(key);
        }
    }
    None
}

/// `downloadResponseError` with the request's transaction id.
fn download_error(tid: &[u8], code: DownloadErrorCode) -> Es10Reply {
    Es10Reply::encode(&rsp::PrepareDownloadResponse::downloadResponseError(
        rsp::PrepareDownloadResponseError::new(
            rsp::TransactionId(OctetString::from(tid.to_vec())),
            rsp::DownloadErrorCode(Integer::from(code.code())),
        ),
    ))
}

fn undefined_cancel_error() -> Es10Reply {
    Es10Reply::encode(&rsp::CancelSessionResponse::cancelSessionResponseError(
        Integer::from(127),
    ))
}
