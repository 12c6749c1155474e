//! The signed parts of SGP.32 eUICC packages and their results, cut out of
//! the received bytes; the exact signature inputs; and the two signed
//! structures assembled from their parts without re-encoding.
//!
//! What is signed (ECDSA P-256 / SHA-256, raw `r || s` in `5F37`):
//! - `eimSignature` (eIM key) covers the DER of `EuiccPackageSigned` followed
//!   by the association token as a TLV with tag `84`
//!   ([`eim_signature_input`]);
//! - `euiccSignEPR` / `euiccSignEPE` (eUICC key) cover the result data
//!   (`EuiccPackageResultDataSigned` / `EuiccPackageErrorDataSigned`)
//!   followed, from v1.1 on, by the same association-token TLV, and in v1.0 by
//!   the package's `eimSignature` as its whole `5F37` element
//!   ([`result_signature_input`]).
//!
//! When no association token was agreed (`EimConfigurationData` without
//! `associationToken`), nothing is appended for it.
//!
//! Both sides use these: the eIM signs packages and verifies results, the
//! eUICC verifies packages and signs results. Signing and verifying is
//! `ferrosim-crypto`'s job (`KeySource::sign_raw`, `VerifyingKey::verify_raw`
//! over the inputs built here).

use rasn::types::Integer;

use super::{SIGNATURE_LEN, SignedPart, TAG_SEQUENCE, TAG_SIGNATURE, signed_then_signature};
use crate::esipa::Sgp32Version;
use crate::tlv::{Tlv, TlvError, write_length, write_tag};
use crate::{Error, encode_der};

/// EuiccPackageRequest / EuiccPackageResult (`BF51`).
pub const TAG_EUICC_PACKAGE: u32 = 0xBF51;
/// The association token appended to signature inputs (`84`, its tag in
/// `EimConfigurationData` and `IpaEuiccData`).
pub const TAG_ASSOCIATION_TOKEN: u32 = 0x84;
/// `euiccPackageResultSigned` alternative of `EuiccPackageResult` (`A0`).
pub const TAG_RESULT_SIGNED: u32 = 0xA0;
/// `euiccPackageErrorSigned` alternative (`A1`).
pub const TAG_ERROR_SIGNED: u32 = 0xA1;
/// `euiccPackageErrorUnsigned` alternative (`A2`).
pub const TAG_ERROR_UNSIGNED: u32 = 0xA2;

/// `euiccPackageSigned` and `eimSignature` of an EuiccPackageRequest
/// (`BF51 { 30 euiccPackageSigned, 5F37 eimSignature }`).
pub fn euicc_package_request(message: &[u8]) -> Result<SignedPart<'_>, Error> {
    let outer = Tlv::parse_tagged(message, TAG_EUICC_PACKAGE)?;
    let part = signed_then_signature(&outer, TAG_SEQUENCE)?;
    if outer.children().count() != 2 {
        return Err(TlvError::TrailingBytes(outer.value.len()).into());
    }
    Ok(part)
}

/// What an `EuiccPackageResult` carries, borrowed from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageResultSignature<'a> {
    /// `euiccPackageResultSigned`: the result data and `euiccSignEPR`.
    Result(SignedPart<'a>),
    /// `euiccPackageErrorSigned`: the error data and `euiccSignEPE`.
    Error(SignedPart<'a>),
    /// `euiccPackageErrorUnsigned`: nothing is signed.
    Unsigned,
}

/// The signed part of an `EuiccPackageResult`, given as `BF51 { alt }` or as
/// its bare CHOICE alternative (`A0` / `A1` / `A2`, as v1.0 lists carry it).
pub fn euicc_package_result(element: &[u8]) -> Result<PackageResultSignature<'_>, Error> {
    let tlv = Tlv::parse_exact(element)?;
    let alternative = if tlv.tag == TAG_EUICC_PACKAGE {
        Tlv::parse_exact(tlv.value)?
    } else {
        tlv
    };
    match alternative.tag {
        TAG_RESULT_SIGNED => Ok(PackageResultSignature::Result(signed_then_signature(
            &alternative,
            TAG_SEQUENCE,
        )?)),
        TAG_ERROR_SIGNED => Ok(PackageResultSignature::Error(signed_then_signature(
            &alternative,
            TAG_SEQUENCE,
        )?)),
        TAG_ERROR_UNSIGNED => Ok(PackageResultSignature::Unsigned),
        found => Err(TlvError::UnexpectedTag {
            expected: TAG_RESULT_SIGNED,
            found,
        }
        .into()),
    }
}

/// The association token as the TLV appended to signature inputs:
/// `84 <len> <DER INTEGER content>` (token 1 is `84 01 01`).
pub fn association_token_tlv(token: &Integer) -> Result<Vec<u8>, Error> {
    let mut der = encode_der(token)?;
    // `02 <len> <content>` with a one-byte tag: swap the universal INTEGER
    // tag for [4].
    if let Some(tag) = der.first_mut() {
        *tag = 0x84;
    }
    Ok(der)
}

/// What `eimSignature` covers: the DER of `EuiccPackageSigned` (as signed or
/// as received) followed by the association-token TLV.
pub fn eim_signature_input(
    euicc_package_signed: &[u8],
    association_token: Option<&Integer>,
) -> Result<Vec<u8>, Error> {
    let mut input = euicc_package_signed.to_vec();
    if let Some(token) = association_token {
        input.extend_from_slice(&association_token_tlv(token)?);
    }
    Ok(input)
}

/// What `euiccSignEPR` / `euiccSignEPE` cover for a peer of `version`: the
/// result data followed by the association-token TLV (v1.1 and later), or by
/// the package's whole `eimSignature` element `5F37 40 ..` (v1.0).
pub fn result_signature_input(
    result_data: &[u8],
    version: Sgp32Version,
    association_token: Option<&Integer>,
    eim_signature_tlv: &[u8],
) -> Result<Vec<u8>, Error> {
    let mut input = result_data.to_vec();
    match version {
        Sgp32Version::V1_2 => {
            if let Some(token) = association_token {
                input.extend_from_slice(&association_token_tlv(token)?);
            }
        }
        Sgp32Version::V1_0 => input.extend_from_slice(eim_signature_tlv),
    }
    Ok(input)
}

/// `BF51 { euiccPackageSigned, 5F37 40 eimSignature }` from the signed DER
/// and the raw signature.
pub fn euicc_package_request_from_parts(
    euicc_package_signed: &[u8],
    eim_signature: &[u8; SIGNATURE_LEN],
) -> Vec<u8> {
    let body = [euicc_package_signed, &signature_tlv(eim_signature)].concat();
    wrap(TAG_EUICC_PACKAGE, &body)
}

/// `BF51 { A0|A1 { data, 5F37 40 signature } }`: a signed result (`A0`) or
/// signed error (`A1`) from its data DER and the raw signature.
pub fn package_result_from_parts(
    error: bool,
    data: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> Vec<u8> {
    let tag = if error {
        TAG_ERROR_SIGNED
    } else {
        TAG_RESULT_SIGNED
    };
    let alternative = wrap(tag, &[data, &signature_tlv(signature)].concat());
    wrap(TAG_EUICC_PACKAGE, &alternative)
}

/// `5F37 40 <r || s>`.
pub fn signature_tlv(signature: &[u8; SIGNATURE_LEN]) -> Vec<u8> {
    wrap(TAG_SIGNATURE, signature)
}

fn wrap(tag: u32, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 6);
    write_tag(&mut out, tag);
    write_length(&mut out, value.len());
    out.extend_from_slice(value);
    out
}
