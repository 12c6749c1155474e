//! ESipa messages (IPA ↔ eIM, SGP.32 section 6) as peers of either version
//! put them on the wire.
//!
//! ferrosim speaks SGP.32 v1.2 ([`crate::sgp32`]), the version accredited IoT
//! eUICCs implement, and accepts v1.0 peers ([`crate::sgp32_v1_0`]) where the
//! wire differs: `ProvideEimPackageResult` (a CHOICE in v1.0, a SEQUENCE with
//! an optional EID in v1.2), its answer, the position of `rPLMN` in
//! `GetEimPackageRequest`, the `IpaEuiccData` layout, `EimIdInfo.eimIdType`,
//! the way `HandleNotificationEsipa` carries a result, and the signature input
//! of eUICC package results (see [`crate::signed::sgp32`]). Renamed fields
//! with the same tags (`transactionId` → `eimTransactionId`,
//! `configureAutoEnable` → `configureImmediateEnable`) need nothing.
//!
//! Reading: [`read_ipa_message`] (at the eIM) and [`read_eim_message`] (at the
//! IPA) accept either version and hand out v1.2 values, together with the
//! version the message was read as ([`Sgp32Version`], to log and to answer in)
//! and, for results, the eUICC package results exactly as received
//! ([`ReceivedPackageResult`]): their signatures cover received bytes, which a
//! v1.0 → v1.2 conversion does not keep.
//!
//! Writing: [`encode_eim_message`] encodes an eIM answer in the version of the
//! IPA it goes to; values v1.0 cannot express are refused with
//! [`crate::Error::Unrepresentable`] rather than silently changed (except
//! where v1.0 has a defined nearest answer, documented there).
//!
//! Where a message decodes under both versions with different meanings (a
//! v1.0 `profileDownloadError` whose `errorResponse` happens to be a valid
//! INTEGER), the caller's `expected` version decides; without one, v1.2 wins.
//! A `GetEimPackageRequest` whose `[1]` holds three bytes and that has no
//! `[2]` is a v1.0 rPLMN (a v1.2 `stateChangeCause` never needs three bytes).

mod downgrade;
mod results;
mod upgrade;

use std::fmt;

use crate::tlv::Tlv;
use crate::{Error, decode_der, encode_der, sgp32, sgp32_v1_0};

pub use results::ReceivedPackageResult;

/// An SGP.32 version whose wire form ferrosim reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sgp32Version {
    /// SGP.32 v1.0 (lab IPAs and eIMs).
    V1_0,
    /// SGP.32 v1.2 (v1.1 has the same wire form for everything read here).
    V1_2,
}

impl Sgp32Version {
    /// `"v1.0"` or `"v1.2"`, as logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1_0 => "v1.0",
            Self::V1_2 => "v1.2",
        }
    }

    /// The version of an SGP.32 `VersionType` (major, minor, revision) as
    /// found in `IoTSpecificInfo.iotVersion`: 1.0.x is v1.0, anything from
    /// 1.1 on is read and written as v1.2.
    pub fn from_version_type(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [1, 0, _] => Some(Self::V1_0),
            [1, minor, _] if *minor >= 1 => Some(Self::V1_2),
            [major, _, _] if *major > 1 => Some(Self::V1_2),
            _ => None,
        }
    }
}

impl fmt::Display for Sgp32Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `EsipaMessageFromIpaToEim` as read by the eIM.
#[derive(Debug, Clone, PartialEq)]
pub struct IpaMessage {
    /// The message as v1.2 values (converted when it was read as v1.0).
    pub message: sgp32::EsipaMessageFromIpaToEim,
    /// The version the message was read as.
    pub read_as: Sgp32Version,
    /// Every eUICC package result the message carries, in the order they
    /// appear, as received: verify signatures on these, not on `message`.
    pub package_results: Vec<ReceivedPackageResult>,
}

/// An `EsipaMessageFromEimToIpa` as read by an IPA.
#[derive(Debug, Clone, PartialEq)]
pub struct EimMessage {
    /// The message as v1.2 values (converted when it was read as v1.0).
    pub message: sgp32::EsipaMessageFromEimToIpa,
    /// The version the message was read as.
    pub read_as: Sgp32Version,
}

/// Reads one DER `EsipaMessageFromIpaToEim` sent by an IPA of either version
/// (ASN.1 binding body, or rebuilt from the JSON binding). `expected` is the
/// version the eIM knows the device speaks, if any.
pub fn read_ipa_message(der: &[u8], expected: Option<Sgp32Version>) -> Result<IpaMessage, Error> {
    let order = if v1_0_get_eim_package(der) {
        [Sgp32Version::V1_0, Sgp32Version::V1_2]
    } else {
        preference(expected)
    };
    first_success(order, |version| read_ipa_as(der, version))
}

/// Reads one DER `EsipaMessageFromEimToIpa` sent by an eIM of either version.
pub fn read_eim_message(der: &[u8], expected: Option<Sgp32Version>) -> Result<EimMessage, Error> {
    first_success(preference(expected), |version| {
        let message = match version {
            Sgp32Version::V1_2 => decode_der::<sgp32::EsipaMessageFromEimToIpa>(der)?,
            Sgp32Version::V1_0 => {
                let old: sgp32_v1_0::EsipaMessageFromEimToIpa = decode_der(der)?;
                upgrade::eim_message(old)?
            }
        };
        Ok(EimMessage {
            message,
            read_as: version,
        })
    })
}

/// Encodes an eIM message for an IPA speaking `version`.
///
/// For v1.0: an `eimPackageError` other than `noEimPackageAvailable` becomes
/// `undefinedError` (v1.0 has no EID errors), and a
/// `provideEimPackageResultError` or `emptyResponse` becomes the empty
/// `ProvideEimPackageResultResponse` (v1.0 has no error there). A package
/// with v1.2-only PSMOs (fallback attribute, setDefaultDpAddress) or an
/// `IpaEuiccDataRequest` v1.0 cannot express is refused.
pub fn encode_eim_message(
    message: &sgp32::EsipaMessageFromEimToIpa,
    version: Sgp32Version,
) -> Result<Vec<u8>, Error> {
    match version {
        Sgp32Version::V1_2 => encode_der(message),
        Sgp32Version::V1_0 => encode_der(&downgrade::eim_message(message)?),
    }
}

/// Encodes an IPA message for an eIM speaking `version` (the IPA side of
/// [`read_ipa_message`]); v1.0 is written for the messages whose wire form
/// is shared, and refused for the ones that differ (see [`encode_eim_message`]
/// for the eIM side, which is complete).
pub fn encode_ipa_message(
    message: &sgp32::EsipaMessageFromIpaToEim,
    version: Sgp32Version,
) -> Result<Vec<u8>, Error> {
    match version {
        Sgp32Version::V1_2 => encode_der(message),
        Sgp32Version::V1_0 => encode_der(&downgrade::ipa_message(message)?),
    }
}

fn read_ipa_as(der: &[u8], version: Sgp32Version) -> Result<IpaMessage, Error> {
    let message = match version {
        Sgp32Version::V1_2 => decode_der::<sgp32::EsipaMessageFromIpaToEim>(der)?,
        Sgp32Version::V1_0 => {
            let old: sgp32_v1_0::EsipaMessageFromIpaToEim = decode_der(der)?;
            upgrade::ipa_message(old)?
        }
    };
    let package_results = results::locate(der, version)?;
    Ok(IpaMessage {
        message,
        read_as: version,
        package_results,
    })
}

fn preference(expected: Option<Sgp32Version>) -> [Sgp32Version; 2] {
    match expected {
        Some(Sgp32Version::V1_0) => [Sgp32Version::V1_0, Sgp32Version::V1_2],
        _ => [Sgp32Version::V1_2, Sgp32Version::V1_0],
    }
}

/// Tries each version in order; the error reported is the first one's.
fn first_success<T>(
    order: [Sgp32Version; 2],
    mut read: impl FnMut(Sgp32Version) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut first_error = None;
    for version in order {
        match read(version) {
            Ok(value) => return Ok(value),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or(Error::Unrepresentable {
        what: "ESipa message",
        version: "any",
    }))
}

/// `BF4F { .., 81 03 xx xx xx }` without `82`: a v1.0 rPLMN.
fn v1_0_get_eim_package(der: &[u8]) -> bool {
    let Ok(outer) = Tlv::parse_tagged(der, TAG_GET_EIM_PACKAGE) else {
        return false;
    };
    let mut three_byte_1 = false;
    for child in outer.children() {
        match child {
            Ok(c) if c.tag == 0x81 => three_byte_1 = c.value.len() == 3,
            Ok(c) if c.tag == 0x82 => return false,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    three_byte_1
}

/// Converts a value between the two versions' types of the same wire form:
/// encoded as one, decoded as the other.
fn recode<A: rasn::Encode, B: rasn::Decode>(value: &A) -> Result<B, Error> {
    decode_der(&encode_der(value)?)
}

/// GetEimPackageRequest / GetEimPackageResponse (`BF4F`).
pub const TAG_GET_EIM_PACKAGE: u32 = 0xBF4F;
/// ProvideEimPackageResult / its response (`BF50`).
pub const TAG_PROVIDE_EIM_PACKAGE_RESULT: u32 = 0xBF50;
pub use crate::signed::sgp32::TAG_EUICC_PACKAGE;
/// IpaEuiccDataRequest / IpaEuiccDataResponse (`BF52`).
pub const TAG_IPA_EUICC_DATA: u32 = 0xBF52;
/// EimAcknowledgements (`BF53`).
pub const TAG_EIM_ACKNOWLEDGEMENTS: u32 = 0xBF53;
/// ProfileDownloadTriggerRequest / its result (`BF54`).
pub const TAG_PROFILE_DOWNLOAD_TRIGGER: u32 = 0xBF54;
/// HandleNotificationEsipa (`BF3D`).
pub const TAG_HANDLE_NOTIFICATION: u32 = 0xBF3D;
/// TransferEimPackageRequest / its response (`BF4E`).
pub const TAG_TRANSFER_EIM_PACKAGE: u32 = 0xBF4E;
