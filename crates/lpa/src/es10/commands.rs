//! The ES10a/b/c functions as typed methods of [`Es10`].
//!
//! Each method builds the request TLV, sends it with
//! [`Es10::transmit_es10`], checks that the answer has the function's tag,
//! and turns result codes other than `ok` into [`Es10Error::Refused`]. The
//! mutual-authentication functions (AuthenticateServer, PrepareDownload,
//! CancelSession) return the signed answer as received, since it goes on to
//! the SM-DP+ unchanged; LoadBoundProfilePackage lives in [`super::bpp`].

use ferrosim_asn1::rasn::types::{FixedOctetString, Integer};
use ferrosim_asn1::tlv::{Tlv, tlv};
use ferrosim_asn1::{encode_der, rsp};
use ferrosim_pki::Eid;
use ferrosim_saip::Iccid;

use super::decode::{children, integer, optional, outer, required, utf8};
use super::function::{
    CancelSession, GetEuiccChallenge, GetEuiccInfo1, ListNotification, RemoveNotificationFromList,
    RetrieveNotificationsList,
};
use super::types::{
    CancelSessionReason, ConfiguredAddresses, DeviceInfo, EuiccInfo1, EuiccInfo2,
    MemoryResetOptions, NotificationMetadata, PendingNotification, ProfileId, ProfileInfo,
};
use super::{Es10, Es10Error};
use crate::transport::Transport;
use ferrosim_ids::TransactionId;

/// The answer of AuthenticateServer or PrepareDownload: forwarded to the
/// SM-DP+ as received, whether it is the signed success or the error
/// alternative (the SM-DP+ must learn about both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedAnswer {
    /// The whole response TLV (`BF38` or `BF21`).
    pub raw: Vec<u8>,
    /// The eUICC's error code when it answered with the error alternative.
    pub error: Option<i64>,
}

/// The parts of an ES9+ initiateAuthentication answer that AuthenticateServer needs,
/// each the DER as received from the SM-DP+.
#[derive(Debug, Clone, Copy)]
pub struct AuthenticateServerInput<'a> {
    /// `serverSigned1` (SEQUENCE).
    pub server_signed1: &'a [u8],
    /// `serverSignature1` (`5F37`).
    pub server_signature1: &'a [u8],
    /// `euiccCiPKIdToBeUsed` (`04 14 ...`).
    pub euicc_ci_pkid_to_be_used: &'a [u8],
    /// `serverCertificate` (CERT.DPauth.SIG).
    pub server_certificate: &'a [u8],
    /// `ctxParams1` DER (see [`ctx_params1`]).
    pub ctx_params1: &'a [u8],
}

/// The parts of an ES9+ authenticateClient answer that PrepareDownload needs,
/// each the DER as received from the SM-DP+.
#[derive(Debug, Clone, Copy)]
pub struct PrepareDownloadInput<'a> {
    /// `smdpSigned2` (SEQUENCE).
    pub smdp_signed2: &'a [u8],
    /// `smdpSignature2` (`5F37`).
    pub smdp_signature2: &'a [u8],
    /// SHA-256(SHA-256(confirmation code) || transactionId), when required.
    pub hash_cc: Option<[u8; 32]>,
    /// `smdpCertificate` (CERT.DPpb.SIG).
    pub smdp_certificate: &'a [u8],
}

impl<T: Transport> Es10<T> {
    /// ES10b GetEUICCChallenge (`BF2E`): a fresh 16-byte challenge.
    pub fn get_euicc_challenge(&mut self) -> Result<[u8; 16], Es10Error> {
        self.call(&GetEuiccChallenge)
    }

    /// ES10b GetEUICCInfo for EUICCInfo1 (`BF20`).
    pub fn get_euicc_info1(&mut self) -> Result<EuiccInfo1, Es10Error> {
        self.call(&GetEuiccInfo1)
    }

    /// ES10b GetEUICCInfo for EUICCInfo2 (`BF22`).
    pub fn get_euicc_info2(&mut self) -> Result<EuiccInfo2, Es10Error> {
        EuiccInfo2::decode(self.transmit_es10(&tlv(0xBF22, &[]))?)
    }

    /// ES10c GetEID (`BF3E` with tag list `5A`).
    pub fn get_eid(&mut self) -> Result<Eid, Es10Error> {
        const F: &str = "GetEID";
        let raw = self.transmit_es10(&tlv(0xBF3E, &tlv(0x5C, &[0x5A])))?;
        let top = outer(F, &raw, 0xBF3E)?;
        let items = children(F, &top)?;
        let eid = required(F, &items, 0x5A, "eidValue")?;
        Eid::from_bcd(eid.value).map_err(|e| Es10Error::bad(F, e))
    }

    /// ES10b AuthenticateServer (`BF38`).
    pub fn authenticate_server(
        &mut self,
        input: &AuthenticateServerInput<'_>,
    ) -> Result<SignedAnswer, Es10Error> {
        self.call(input)
    }

    /// ES10b PrepareDownload (`BF21`).
    pub fn prepare_download(
        &mut self,
        input: &PrepareDownloadInput<'_>,
    ) -> Result<SignedAnswer, Es10Error> {
        self.call(input)
    }

    /// ES10b CancelSession (`BF41`): the signed cancellation, as received,
    /// for ES9+ cancelSession.
    pub fn cancel_session(
        &mut self,
        transaction_id: &TransactionId,
        reason: CancelSessionReason,
    ) -> Result<Vec<u8>, Es10Error> {
        self.call(&CancelSession {
            transaction_id: transaction_id.clone(),
            reason,
        })
    }

    /// ES10b ListNotification (`BF28`): the headers of pending notifications.
    pub fn list_notifications(&mut self) -> Result<Vec<NotificationMetadata>, Es10Error> {
        self.call(&ListNotification)
    }

    /// ES10b RetrieveNotificationsList (`BF2B`): the signed notifications,
    /// all of them or the one with `seq_number`.
    pub fn retrieve_notifications(
        &mut self,
        seq_number: Option<i64>,
    ) -> Result<Vec<PendingNotification>, Es10Error> {
        self.call(&RetrieveNotificationsList { seq_number })
    }

    /// ES10b RemoveNotificationFromList (`BF30`): drops a delivered notification.
    pub fn remove_notification(&mut self, seq_number: i64) -> Result<(), Es10Error> {
        self.call(&RemoveNotificationFromList { seq_number })
    }

    /// ES10c GetProfilesInfo (`BF2D`), of every profile or of one.
    pub fn get_profiles_info(
        &mut self,
        only: Option<&ProfileId>,
    ) -> Result<Vec<ProfileInfo>, Es10Error> {
        const F: &str = "GetProfilesInfo";
        let criteria = only
            .map(|id| profile_id_tlv(F, id).map(|t| tlv(0xA0, &t)))
            .transpose()?
            .unwrap_or_default();
        let raw = self.transmit_es10(&tlv(0xBF2D, &criteria))?;
        let list = list_or_error(F, &raw, 0xBF2D)?;
        children(F, &list)?
            .iter()
            .filter(|t| t.tag == 0xE3)
            .map(|t| ProfileInfo::decode(F, t))
            .collect()
    }

    /// ES10c EnableProfile (`BF31`).
    pub fn enable_profile(&mut self, profile: &ProfileId, refresh: bool) -> Result<(), Es10Error> {
        self.profile_operation("EnableProfile", 0xBF31, profile, refresh)
    }

    /// ES10c DisableProfile (`BF32`).
    pub fn disable_profile(&mut self, profile: &ProfileId, refresh: bool) -> Result<(), Es10Error> {
        self.profile_operation("DisableProfile", 0xBF32, profile, refresh)
    }

    /// ES10c DeleteProfile (`BF33`).
    pub fn delete_profile(&mut self, profile: &ProfileId) -> Result<(), Es10Error> {
        const F: &str = "DeleteProfile";
        let raw = self.transmit_es10(&tlv(0xBF33, &profile_id_tlv(F, profile)?))?;
        result_code(F, &raw, 0xBF33)
    }

    /// ES10c eUICCMemoryReset (`BF34`).
    pub fn memory_reset(&mut self, options: MemoryResetOptions) -> Result<(), Es10Error> {
        const F: &str = "EuiccMemoryReset";
        let mut bits = 0u8;
        for (set, mask) in [
            (options.operational_profiles, 0x80),
            (options.test_profiles, 0x40),
            (options.default_smdp_address, 0x20),
        ] {
            if set {
                bits |= mask;
            }
        }
        let raw = self.transmit_es10(&tlv(0xBF34, &tlv(0x82, &[0x05, bits])))?;
        result_code(F, &raw, 0xBF34)
    }

    /// ES10c SetNickname (`BF29`).
    pub fn set_nickname(&mut self, iccid: &Iccid, nickname: &str) -> Result<(), Es10Error> {
        const F: &str = "SetNickname";
        if nickname.len() > 64 {
            return Err(Es10Error::InvalidRequest {
                function: F,
                reason: "a nickname has at most 64 bytes".into(),
            });
        }
        let body = [tlv(0x5A, &iccid.to_bcd()), tlv(0x90, nickname.as_bytes())].concat();
        let raw = self.transmit_es10(&tlv(0xBF29, &body))?;
        result_code(F, &raw, 0xBF29)
    }

    /// ES10a GetEuiccConfiguredAddresses (`BF3C`).
    pub fn configured_addresses(&mut self) -> Result<ConfiguredAddresses, Es10Error> {
        const F: &str = "GetEuiccConfiguredAddresses";
        let raw = self.transmit_es10(&tlv(0xBF3C, &[]))?;
        let top = outer(F, &raw, 0xBF3C)?;
        let items = children(F, &top)?;
        Ok(ConfiguredAddresses {
            default_dp_address: optional(&items, 0x80)
                .map(|t| utf8(F, t.value))
                .transpose()?,
            root_ds_address: utf8(F, required(F, &items, 0x81, "rootDsAddress")?.value)?,
        })
    }

    /// ES10a SetDefaultDpAddress (`BF3F`); an empty address clears it.
    pub fn set_default_dp_address(&mut self, address: &str) -> Result<(), Es10Error> {
        const F: &str = "SetDefaultDpAddress";
        let raw = self.transmit_es10(&tlv(0xBF3F, &tlv(0x80, address.as_bytes())))?;
        result_code(F, &raw, 0xBF3F)
    }

    /// ES10b GetRAT (`BF43`): the rules authorisation table, as received.
    pub fn get_rat(&mut self) -> Result<Vec<u8>, Es10Error> {
        const F: &str = "GetRAT";
        let raw = self.transmit_es10(&tlv(0xBF43, &[]))?;
        outer(F, &raw, 0xBF43)?;
        Ok(raw)
    }

    /// ES10b LoadCRL (`BF35`) with a DER CertificateList.
    pub fn load_crl(&mut self, crl_der: &[u8]) -> Result<(), Es10Error> {
        const F: &str = "LoadCRL";
        let crl = Tlv::parse_tagged(crl_der, 0x30).map_err(|e| Es10Error::InvalidRequest {
            function: F,
            reason: format!("not a DER CertificateList: {e}"),
        })?;
        // `crl [0] CertificateList`: the SEQUENCE tag implicitly replaced by A0.
        let raw = self.transmit_es10(&tlv(0xBF35, &tlv(0xA0, crl.value)))?;
        let top = outer(F, &raw, 0xBF35)?;
        let items = children(F, &top)?;
        match items.first() {
            Some(ok) if ok.tag == 0xA0 => Ok(()),
            Some(err) if err.tag == 0x81 => Err(Es10Error::Refused {
                function: F,
                code: integer(F, err.value)?,
            }),
            _ => Err(Es10Error::bad(F, "neither loadCRLResponseOk nor an error")),
        }
    }

    fn profile_operation(
        &mut self,
        function: &'static str,
        tag: u32,
        profile: &ProfileId,
        refresh: bool,
    ) -> Result<(), Es10Error> {
        let body = [
            tlv(0xA0, &profile_id_tlv(function, profile)?),
            tlv(0x81, &[if refresh { 0xFF } else { 0x00 }]),
        ]
        .concat();
        let raw = self.transmit_es10(&tlv(tag, &body))?;
        result_code(function, &raw, tag)
    }
}

/// The `ctxParams1` DER for AuthenticateServer: matching id (when any) and device info.
pub fn ctx_params1(matching_id: Option<&str>, device: &DeviceInfo) -> Result<Vec<u8>, Es10Error> {
    let params = rsp::CtxParams1::ctxParamsForCommonAuthentication(
        rsp::CtxParamsForCommonAuthentication::new(
            matching_id.map(str::to_owned),
            device.to_asn1(),
        ),
    );
    encode_der(&params).map_err(|e| Es10Error::InvalidRequest {
        function: "AuthenticateServer",
        reason: e.to_string(),
    })
}

/// A profile identifier element: `5A` ICCID or `4F` ISD-P AID.
fn profile_id_tlv(function: &'static str, id: &ProfileId) -> Result<Vec<u8>, Es10Error> {
    match id {
        ProfileId::Iccid(iccid) => {
            let bcd = rsp::Iccid(FixedOctetString::new(iccid.to_bcd()));
            Ok(tlv(0x5A, bcd.0.as_ref()))
        }
        ProfileId::IsdpAid(aid) if (5..=16).contains(&aid.len()) => Ok(tlv(0x4F, aid)),
        ProfileId::IsdpAid(aid) => Err(Es10Error::InvalidRequest {
            function,
            reason: format!("an AID has 5 to 16 bytes, not {}", aid.len()),
        }),
    }
}

/// Minimal two's complement bytes of a non-negative or negative integer.
pub(crate) fn integer_bytes(value: i64) -> Vec<u8> {
    let der = encode_der(&Integer::from(value)).unwrap_or_default();
    // Skip the universal INTEGER tag and the one-byte length.
    der.get(2..).map(<[u8]>::to_vec).unwrap_or_else(|| vec![0])
}

/// A response `tag { 80 result }`; anything but 0 is a refusal.
pub(crate) fn result_code(function: &'static str, raw: &[u8], tag: u32) -> Result<(), Es10Error> {
    let top = outer(function, raw, tag)?;
    let items = children(function, &top)?;
    let code = integer(function, required(function, &items, 0x80, "result")?.value)?;
    match code {
        0 => Ok(()),
        code => Err(Es10Error::Refused { function, code }),
    }
}

/// A response `tag { A0 list }` or `tag { 81 error }`: the list element.
pub(crate) fn list_or_error<'a>(
    function: &'static str,
    raw: &'a [u8],
    tag: u32,
) -> Result<Tlv<'a>, Es10Error> {
    let top = outer(function, raw, tag)?;
    let items = children(function, &top)?;
    match items.first() {
        Some(list) if list.tag == 0xA0 => Ok(*list),
        Some(err) if err.tag == 0x81 => Err(Es10Error::Refused {
            function,
            code: integer(function, err.value)?,
        }),
        _ => Err(Es10Error::bad(function, "neither a list nor an error code")),
    }
}

/// A signed response `tag { A0 ok }` or `tag { <error_tag> ... }`, kept raw.
pub(crate) fn signed_answer(
    function: &'static str,
    raw: Vec<u8>,
    tag: u32,
    error_tag: u32,
) -> Result<SignedAnswer, Es10Error> {
    let error = {
        let top = outer(function, &raw, tag)?;
        let items = children(function, &top)?;
        match items.first() {
            Some(ok) if ok.tag == 0xA0 => None,
            Some(err) if err.tag == error_tag => Some(error_code(function, err)?),
            _ => {
                return Err(Es10Error::bad(
                    function,
                    "neither the signed answer nor an error",
                ));
            }
        }
    };
    Ok(SignedAnswer { raw, error })
}

/// The error code of an error alternative: an INTEGER (`81`), or a
/// SEQUENCE holding one as its last INTEGER child (`A1 { 80 tid, 02 code }`).
fn error_code(function: &'static str, err: &Tlv<'_>) -> Result<i64, Es10Error> {
    if !err.is_constructed() {
        return integer(function, err.value);
    }
    let parts = children(function, err)?;
    parts
        .iter()
        .rev()
        .find(|t| t.tag == 0x02 || (t.tag != 0x80 && !t.is_constructed()))
        .map(|t| integer(function, t.value))
        .unwrap_or_else(|| Err(Es10Error::bad(function, "error without a code")))
}
