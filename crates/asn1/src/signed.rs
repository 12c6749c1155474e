//! The signed parts of received RSP messages, cut out without re-encoding.
//!
//! SGP.22 signatures cover DER bytes as the signer produced them. A receiver
//! that decodes a message and encodes it again may produce different bytes
//! (an unknown extension dropped, a non-minimal length normalised), and the
//! signature would then fail or, worse, cover something else. These functions
//! walk the received bytes with [`crate::tlv`] and return the exact sub-slices
//! that were signed, together with the raw 64-byte `r || s` signature value
//! (the `5F37` wrapper removed).
//!
//! What each signature covers (the caller appends the extra parts it needs,
//! for example `smdpSigned2 || 5F37 40 euiccSignature1`) is described in
//! SGP.22 section 5; this module only finds the bytes.
//!
//! Two sides receive these messages:
//! - the eUICC (ES10b): [`server_signed1`] in AuthenticateServerRequest and
//!   [`smdp_signed2`] in PrepareDownloadRequest;
//! - the SM-DP+ (ES9+, as base64 of the DER in JSON): [`euicc_signed1`] in
//!   AuthenticateServerResponse, [`euicc_signed2`] in PrepareDownloadResponse,
//!   [`profile_installation_result`] in ProfileInstallationResult. The
//!   [`crate::json`] bodies carry these as base64 bytes (or use
//!   [`decode_base64`] on a raw field); pass the bytes to the function.
//!
//! On ES9+ the LPA also receives `serverSigned1`/`serverSignature1` and
//! `smdpSigned2`/`smdpSignature2` as separate JSON fields; [`from_parts`]
//! checks such a pair and returns it in the same form.
//!
//! SGP.32 eUICC packages and their results are in [`sgp32`].
//!
//! This module does not verify signatures: that is `ferrosim-crypto`'s job.

use crate::Error;
use crate::tlv::{Tlv, TlvError};

pub mod sgp32;

/// Tag of a universal SEQUENCE (`30`).
pub const TAG_SEQUENCE: u32 = 0x30;
/// Tag of the signature wrapper `[APPLICATION 55]` (`5F37`).
pub const TAG_SIGNATURE: u32 = 0x5F37;
/// Length of a raw ECDSA P-256 / brainpoolP256r1 signature `r || s`.
pub const SIGNATURE_LEN: usize = 64;

/// AuthenticateServerRequest / AuthenticateServerResponse (`BF38`).
pub const TAG_AUTHENTICATE_SERVER: u32 = 0xBF38;
/// PrepareDownloadRequest / PrepareDownloadResponse (`BF21`).
pub const TAG_PREPARE_DOWNLOAD: u32 = 0xBF21;
/// ProfileInstallationResult (`BF37`).
pub const TAG_PROFILE_INSTALLATION_RESULT: u32 = 0xBF37;
/// ProfileInstallationResultData (`BF27`).
pub const TAG_PROFILE_INSTALLATION_RESULT_DATA: u32 = 0xBF27;
/// NotificationMetadata as signed in an OtherSignedNotification (`BF2F`).
pub const TAG_TBS_OTHER_NOTIFICATION: u32 = 0xBF2F;
/// First CHOICE alternative (`[0]` constructed, `A0`): the success case of
/// AuthenticateServerResponse and PrepareDownloadResponse.
const TAG_CHOICE_OK: u32 = 0xA0;

/// A signed byte range and the signature over it, both borrowed from the
/// received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedPart<'a> {
    /// The complete signed element (tag, length and value) as received.
    pub signed: &'a [u8],
    /// The raw signature value `r || s` (64 bytes), without its `5F37` header.
    pub signature: &'a [u8],
    /// The complete signature element (`5F37 40 ...`), for the signatures
    /// that cover a previous signature with its header.
    pub signature_tlv: &'a [u8],
}

/// `euiccSigned1` and `euiccSignature1` of an AuthenticateServerResponse
/// (`BF38 { A0 authenticateResponseOk { 30 euiccSigned1, 5F37 .. } }`).
pub fn euicc_signed1(message: &[u8]) -> Result<SignedPart<'_>, Error> {
    signed_in_choice(
        message,
        TAG_AUTHENTICATE_SERVER,
        "AuthenticateServerResponse",
    )
}

/// `euiccSigned2` and `euiccSignature2` of a PrepareDownloadResponse
/// (`BF21 { A0 downloadResponseOk { 30 euiccSigned2, 5F37 .. } }`).
pub fn euicc_signed2(message: &[u8]) -> Result<SignedPart<'_>, Error> {
    signed_in_choice(message, TAG_PREPARE_DOWNLOAD, "PrepareDownloadResponse")
}

/// `serverSigned1` and `serverSignature1` of an AuthenticateServerRequest as
/// sent to the eUICC (`BF38 { 30 serverSigned1, 5F37 .., .. }`).
pub fn server_signed1(message: &[u8]) -> Result<SignedPart<'_>, Error> {
    let outer = Tlv::parse_tagged(message, TAG_AUTHENTICATE_SERVER)?;
    signed_then_signature(&outer, TAG_SEQUENCE)
}

/// `smdpSigned2` and `smdpSignature2` of a PrepareDownloadRequest as sent to
/// the eUICC (`BF21 { 30 smdpSigned2, 5F37 .., .. }`).
pub fn smdp_signed2(message: &[u8]) -> Result<SignedPart<'_>, Error> {
    let outer = Tlv::parse_tagged(message, TAG_PREPARE_DOWNLOAD)?;
    signed_then_signature(&outer, TAG_SEQUENCE)
}

/// `profileInstallationResultData` (`BF27`) and `euiccSignPIR` of a
/// ProfileInstallationResult (`BF37 { BF27 .., 5F37 .. }`).
pub fn profile_installation_result(message: &[u8]) -> Result<SignedPart<'_>, Error> {
    let outer = Tlv::parse_tagged(message, TAG_PROFILE_INSTALLATION_RESULT)?;
    signed_then_signature(&outer, TAG_PROFILE_INSTALLATION_RESULT_DATA)
}

/// `tbsOtherNotification` (`BF2F`) and `euiccNotificationSignature` of an
/// OtherSignedNotification (`30 { BF2F .., 5F37 .., .. }`): the enable,
/// disable and delete notifications.
pub fn other_signed_notification(message: &[u8]) -> Result<SignedPart<'_>, Error> {
    let outer = Tlv::parse_tagged(message, TAG_SEQUENCE)?;
    signed_then_signature(&outer, TAG_TBS_OTHER_NOTIFICATION)
}

/// Checks a signed element and its signature received as two separate values
/// (ES9+ `serverSigned1` + `serverSignature1`, `smdpSigned2` +
/// `smdpSignature2`): `signed` must be exactly one SEQUENCE, `signature_tlv`
/// exactly one `5F37` element of 64 bytes.
pub fn from_parts<'a>(signed: &'a [u8], signature_tlv: &'a [u8]) -> Result<SignedPart<'a>, Error> {
    let signed = Tlv::parse_tagged(signed, TAG_SEQUENCE)?;
    check_constructed(&signed)?;
    let signature = Tlv::parse_tagged(signature_tlv, TAG_SIGNATURE)?;
    signature_part(signed, signature)
}

/// Decodes a base64 field of the ES9+ JSON binding, with the same rules as
/// [`crate::json::Base64`] (standard alphabet, padding optional). Callers that
/// already hold a deserialised `json` message use its bytes directly.
pub fn decode_base64(field: &'static str, value: &str) -> Result<Vec<u8>, Error> {
    crate::json::Base64::decode(value)
        .map(|b| b.0)
        .ok_or(Error::Base64 { field })
}

/// `outer { A0 { <30 signed>, <5F37 signature>, .. } }`: the success
/// alternative of a tagged CHOICE whose first two components are the signed
/// part and its signature.
fn signed_in_choice<'a>(
    message: &'a [u8],
    outer_tag: u32,
    name: &'static str,
) -> Result<SignedPart<'a>, Error> {
    let outer = Tlv::parse_tagged(message, outer_tag)?;
    let alternative = Tlv::parse_exact(outer.value)?;
    if alternative.tag != TAG_CHOICE_OK {
        return Err(Error::ErrorAlternative {
            message: name,
            tag: alternative.tag,
        });
    }
    signed_then_signature(&alternative, TAG_SEQUENCE)
}

/// The first two children of `parent`: the signed element (`signed_tag`) and
/// the `5F37` signature. All children must be well-formed.
fn signed_then_signature<'a>(parent: &Tlv<'a>, signed_tag: u32) -> Result<SignedPart<'a>, Error> {
    let children = parent.children().collect::<Result<Vec<_>, TlvError>>()?;
    let signed = *children.first().ok_or(TlvError::Missing(signed_tag))?;
    signed.expect_tag(signed_tag)?;
    check_constructed(&signed)?;
    let signature = *children.get(1).ok_or(TlvError::Missing(TAG_SIGNATURE))?;
    signature.expect_tag(TAG_SIGNATURE)?;
    signature_part(signed, signature)
}

fn signature_part<'a>(signed: Tlv<'a>, signature: Tlv<'a>) -> Result<SignedPart<'a>, Error> {
    if signature.value.len() != SIGNATURE_LEN {
        return Err(Error::SignatureLength {
            tag: signature.tag,
            len: signature.value.len(),
        });
    }
    Ok(SignedPart {
        signed: signed.raw,
        signature: signature.value,
        signature_tlv: signature.raw,
    })
}

/// The signed element's own content must be well-formed TLVs, so a truncated
/// or padded signed part is refused before any signature check.
fn check_constructed(tlv: &Tlv<'_>) -> Result<(), Error> {
    for child in tlv.children() {
        child?;
    }
    Ok(())
}
