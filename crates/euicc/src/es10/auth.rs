//! Common mutual authentication, eUICC side (SGP.22 3.1.2, 5.7.8, 5.7.9,
//! 5.7.13): the challenge, EUICCInfo1/2, and AuthenticateServer, which
//! verifies the SM-DP+ (CERT.DPauth chain to a trusted CI, serverSignature1
//! over serverSigned1 as received, our challenge) and signs euiccSigned1.
//!
//! The server address: SGP.22 v2 gives the eUICC no address of its own to
//! compare serverSigned1's with (the LPA compares it with the address it
//! contacted, and ctxParams1 carries none). The eUICC signs back exactly the
//! address DPauth signed, so an SM-DP+ reads in euiccSigned1 the address it
//! signed and refuses one naming another server; an address changed on the
//! way breaks serverSignature1; an empty or malformed one is refused here
//! with `undefinedError`.

use ferrosim_ids::Timestamp;

use ferrosim_asn1::pe::UICCCapability;
use ferrosim_asn1::pkix::{KeyIdentifier, SubjectKeyIdentifier};
use ferrosim_asn1::rasn::types::{FixedOctetString, Integer, OctetString};
use ferrosim_asn1::signed::{self, SignedPart};
use ferrosim_asn1::tlv::{Tlv, tlv};
use ferrosim_asn1::{decode_der, encode_der, named_bits, rsp, sgp32};
use std::sync::Arc;

use ferrosim_ids::TransactionId;
use ferrosim_pki::{CertRole, KeyId, VerifiedDp};
use rand::CryptoRng;
use tracing::info;

use super::{Es10Reply, Isdr, ServerSession, Session, expect_empty, reply};
use crate::apdu::StatusWord;
use crate::codes::AuthenticateErrorCode;

/// SGP.22 version this eUICC implements (SVN), v2.2.2.
pub(crate) const SVN: [u8; 3] = [2, 2, 2];
/// SGP.32 version of the IoT functions (v1.2.0), in `iotVersion`.
const SGP32_VERSION: [u8; 3] = [1, 2, 0];
/// `IpaMode` ipad(0): the IPA runs in the device.
const IPA_MODE_IPAD: i64 = 0;
/// SAIP profile package version supported (v2.3.1).
const PROFILE_VERSION: [u8; 3] = [2, 3, 1];
/// ETSI TS 102 241 version (v9.2.0).
const TS102241_VERSION: [u8; 3] = [9, 2, 0];
/// GlobalPlatform card specification version (v2.3.0).
const GLOBALPLATFORM_VERSION: [u8; 3] = [2, 3, 0];
/// Protection profile version (v1.0.0).
const PP_VERSION: [u8; 3] = [1, 0, 0];
/// What the eUICC states for `sasAcreditationNumber`: it has none.
const SAS_ACCREDITATION: &str = "ferrosim-virtual-euicc";
/// Memory available to profiles (the sum of installed package sizes).
pub(crate) const PROFILE_MEMORY_BYTES: usize = 1024 * 1024;

/// UICCCapability bits: USIM, ISIM, Milenage, TUAK-128/256, the USIM test
/// algorithm, several USIMs/ISIMs, BER-TLV files, DF links, GET IDENTITY,
/// SUCI profiles A and B.
const UICC_CAPABILITIES: [usize; 13] = [1, 2, 4, 6, 7, 8, 16, 17, 19, 20, 22, 23, 24];
/// RspCapability bits: additionalProfile, testProfileSupport,
/// deviceInfoExtensibilitySupport (ctxParams1 is signed as received).
const RSP_CAPABILITIES: [usize; 3] = [0, 3, 4];

impl Isdr {
    /// ES10b.GetEUICCChallenge: a fresh challenge starts a new RSP session
    /// (any previous one, and a download in progress, ends).
    pub(super) fn get_euicc_challenge(
        &mut self,
        cmd: &Tlv<'_>,
        rng: &mut dyn CryptoRng,
    ) -> Es10Reply {
        if let Err(e) = expect_empty(cmd) {
            return e;
        }
        let mut challenge = [0u8; 16];
        rng.fill_bytes(&mut challenge);
        self.session = Some(Box::new(Session {
            challenge,
            server: None,
            download: None,
            loader: None,
        }));
        Es10Reply::encode(&rsp::GetEuiccChallengeResponse::new(rsp::Octet16(
            FixedOctetString::new(challenge),
        )))
    }

    /// ES10b.GetEUICCInfo with `BF20`: SVN and the CI key ids.
    pub(super) fn get_euicc_info1(&self, cmd: &Tlv<'_>) -> Es10Reply {
        if let Err(e) = expect_empty(cmd) {
            return e;
        }
        Es10Reply::encode(&rsp::EUICCInfo1::new(
            rsp::VersionType(FixedOctetString::new(SVN)),
            key_ids(&self.identity.ci_key_ids_for_verification()),
            key_ids(&self.identity.ci_key_ids_for_signing()),
        ))
    }

    /// ES10b.GetEUICCInfo with `BF22`: the full eUICC information.
    pub(super) fn get_euicc_info2(&self, cmd: &Tlv<'_>) -> Es10Reply {
        if let Err(e) = expect_empty(cmd) {
            return e;
        }
        match self.euicc_info2_der() {
            Some(der) => Es10Reply::Data(der),
            None => Es10Reply::Status(StatusWord(0x6F00)),
        }
    }

    /// EUICCInfo2 as sent: the SGP.22 fields, then the SGP.32 ones
    /// (`ipaMode` ipad: the IPA runs in the device; `iotSpecificInfo`: the
    /// SGP.32 version and fallbackSupported), as GetEUICCInfo2 answers it
    /// (ferrosim's LPA reads it by tag; AuthenticateServer signs the
    /// SGP.22 form).
    pub(super) fn euicc_info2_der(&self) -> Option<Vec<u8>> {
        let sgp22 = encode_der(&self.euicc_info2()).ok()?;
        let mut info: sgp32::EUICCInfo2 = decode_der(&sgp22).ok()?;
        info.ipa_mode = Some(sgp32::IpaMode(Integer::from(IPA_MODE_IPAD)));
        info.iot_specific_info = Some(sgp32::IoTSpecificInfo::new(
            vec![decode_der(&tlv(0x04, &SGP32_VERSION)).ok()?],
            None,
            Some(()),
            None,
        ));
        encode_der(&info).ok()
    }

    /// EUICCInfo2 as this eUICC describes itself now (free memory changes).
    /// RspCapability bits: [`RSP_CAPABILITIES`], plus crlSupport (1) when
    /// the eUICC supports CRLs.
    fn rsp_capabilities(&self) -> Vec<usize> {
        let mut bits = RSP_CAPABILITIES.to_vec();
        if self.identity.shared().supports_crls() {
            bits.push(1);
            bits.sort_unstable();
        }
        bits
    }

    pub(super) fn euicc_info2(&self) -> rsp::EUICCInfo2 {
        let used: usize = self
            .state
            .profiles
            .iter()
            .map(|p| p.package_len as usize)
            .sum();
        let free = u32::try_from(PROFILE_MEMORY_BYTES.saturating_sub(used)).unwrap_or(u32::MAX);
        let apps = u8::try_from(self.state.profiles.len()).unwrap_or(u8::MAX);
        // ETSI TS 102 226 extended card resource information.
        let resources = [
            tlv(0x81, &[apps]),
            tlv(0x82, &free.to_be_bytes()),
            tlv(0x83, &16_384u32.to_be_bytes()),
        ]
        .concat();
        rsp::EUICCInfo2::new(
            version(PROFILE_VERSION),
            version(SVN),
            version(firmware_version()),
            OctetString::from(resources),
            UICCCapability(named_bits(&UICC_CAPABILITIES)),
            Some(version(TS102241_VERSION)),
            Some(version(GLOBALPLATFORM_VERSION)),
            rsp::RspCapability(named_bits(&self.rsp_capabilities())),
            key_ids(&self.identity.ci_key_ids_for_verification()),
            key_ids(&self.identity.ci_key_ids_for_signing()),
            None,
            None,
            version(PP_VERSION),
            SAS_ACCREDITATION.to_owned(),
            None,
            None,
            None,
            None,
        )
    }

    /// ES10b.AuthenticateServer (SGP.22 5.7.13).
    pub(super) fn authenticate_server(&mut self, cmd: &Tlv<'_>, now: Timestamp) -> Es10Reply {
        reply(self.try_authenticate_server(cmd, now))
    }

    fn try_authenticate_server(
        &mut self,
        cmd: &Tlv<'_>,
        now: Timestamp,
    ) -> Result<Es10Reply, Es10Reply> {
        let malformed = || Es10Reply::Status(StatusWord::WRONG_DATA);
        let parts = signed::server_signed1(cmd.raw).map_err(|_| malformed())?;
        let children = cmd
            .children()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| malformed())?;
        let [_, _, ci_id, certificate, ctx_params1] = children.as_slice() else {
            return Err(malformed());
        };
        if ci_id.tag != 0x04 || certificate.tag != 0x30 || ctx_params1.tag != 0xA0 {
            return Err(malformed());
        }
        let server_signed1: rsp::ServerSigned1 =
            decode_der(parts.signed).map_err(|_| malformed())?;
        let tid = server_signed1.transaction_id.0.to_vec();

        let verified =
            match self.check_server(&server_signed1, &parts, ci_id.value, certificate.raw, now) {
                Ok(v) => v,
                Err(code) => {
                    info!(?code, "AuthenticateServer refused");
                    if code != AuthenticateErrorCode::NoSessionContext {
                        self.session = None;
                    }
                    return Ok(auth_error(&tid, code));
                }
            };

        // euiccSigned1: the server's transactionId, serverAddress and
        // serverChallenge as it signed them, our EUICCInfo2, and ctxParams1
        // as the LPA sent it.
        let signed1 = Tlv::parse_exact(parts.signed).map_err(|_| malformed())?;
        let field = |tag| signed1.require(tag).map(|t| t.raw).map_err(|_| malformed());
        // The SGP.22 EUICCInfo2 here: SM-DP+s of SGP.22 v2 decode
        // euiccSigned1 whole and have no SGP.32 fields.
        let info2 = encode_der(&self.euicc_info2()).map_err(|_| malformed())?;
        let euicc_signed1 = tlv(
            0x30,
            &[
                field(0x80)?,
                field(0x83)?,
                field(0x84)?,
                &info2,
                ctx_params1.raw,
            ]
            .concat(),
        );
        let signature = self.identity.sign_5f37(&euicc_signed1).ok();
        let Some(signature) = signature else {
            self.session = None;
            return Ok(auth_error(&tid, AuthenticateErrorCode::UndefinedError));
        };
        let ok = [
            euicc_signed1.as_slice(),
            &signature,
            self.identity.euicc_certificate_der(),
            self.identity.eum_certificate().der(),
        ]
        .concat();
        // The ASN.1 type bounds it to 1 to 16 octets, as TransactionId does.
        let Ok(transaction_id) = TransactionId::from_bytes(&tid) else {
            self.session = None;
            return Ok(auth_error(&tid, AuthenticateErrorCode::UndefinedError));
        };
        if let Some(session) = self.session.as_mut() {
            session.server = Some(ServerSession {
                transaction_id,
                server_address: server_signed1.server_address.clone(),
                smdp_oid: verified.smdp_oid.to_string(),
                ci_key_id: verified.ci_key_id.clone(),
                euicc_signature1: signature,
            });
            session.download = None;
            session.loader = None;
        }
        info!(server = %server_signed1.server_address, "SM-DP+ authenticated");
        Ok(Es10Reply::Data(tlv(0xBF38, &tlv(0xA0, &ok))))
    }

    /// The verifications of SGP.22 5.7.13, in order.
    fn check_server(
        &self,
        server_signed1: &rsp::ServerSigned1,
        parts: &SignedPart<'_>,
        ci_id: &[u8],
        certificate: &[u8],
        now: Timestamp,
    ) -> Result<Arc<VerifiedDp>, AuthenticateErrorCode> {
        use AuthenticateErrorCode as E;
        let ci_id = KeyId::from_bytes(ci_id).map_err(|_| E::CiPkUnknown)?;
        if self.identity.trust_store().ci(&ci_id).is_none() {
            return Err(E::CiPkUnknown);
        }
        let verified = self
            .identity
            .shared()
            .verify_dp(certificate, CertRole::DpAuth, now.to_system_time())
            .map_err(|e| certificate_error(&e))?;
        if verified.ci_key_id != ci_id {
            return Err(E::InvalidCertificate);
        }
        verified
            .certificate
            .verifying_key()
            .verify_raw(parts.signed, parts.signature)
            .map_err(|_| E::InvalidSignature)?;
        let session = self.session.as_ref().ok_or(E::NoSessionContext)?;
        if server_signed1.euicc_challenge.0.as_ref() != session.challenge.as_slice() {
            return Err(E::EuiccChallengeMismatch);
        }
        if !is_plausible_address(&server_signed1.server_address) {
            return Err(E::UndefinedError);
        }
        Ok(verified)
    }
}

/// The AuthenticateErrorCode for a server certificate that does not verify.
fn certificate_error(e: &ferrosim_pki::Error) -> AuthenticateErrorCode {
    use ferrosim_pki::Error as P;
    match e {
        P::WrongPolicy { .. } | P::MissingSmdpOid { .. } | P::NotSmdpRole(_) => {
            AuthenticateErrorCode::InvalidOid
        }
        P::UnsupportedPublicKey(_) | P::UnsupportedSignatureAlgorithm(_) => {
            AuthenticateErrorCode::UnsupportedCurve
        }
        _ => AuthenticateErrorCode::InvalidCertificate,
    }
}

/// `authenticateResponseError` with the server's transaction id.
fn auth_error(tid: &[u8], code: AuthenticateErrorCode) -> Es10Reply {
    Es10Reply::encode(&rsp::AuthenticateServerResponse::authenticateResponseError(
        rsp::AuthenticateResponseError::new(
            rsp::TransactionId(OctetString::from(tid.to_vec())),
            rsp::AuthenticateErrorCode(Integer::from(code.code())),
        ),
    ))
}

/// An SM-DP+ address as SGP.22 carries it: an FQDN with an optional port,
/// without spaces or control characters, at most 255 bytes.
fn is_plausible_address(address: &str) -> bool {
    !address.is_empty()
        && address.len() <= 255
        && !address.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn key_ids(ids: &[KeyId]) -> Vec<SubjectKeyIdentifier> {
    ids.iter()
        .map(|k| SubjectKeyIdentifier(KeyIdentifier(OctetString::from(k.as_bytes().to_vec()))))
        .collect()
}

fn version(v: [u8; 3]) -> rsp::VersionType {
    rsp::VersionType(FixedOctetString::new(v))
}

/// This crate's version as the eUICC firmware version.
fn firmware_version() -> [u8; 3] {
    let part = |s: &str| s.parse::<u8>().unwrap_or(0);
    [
        part(env!("CARGO_PKG_VERSION_MAJOR")),
        part(env!("CARGO_PKG_VERSION_MINOR")),
        part(env!("CARGO_PKG_VERSION_PATCH")),
    ]
}
