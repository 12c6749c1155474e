//! eUICC package results as received, found in the raw bytes of an ESipa
//! message: their signatures cover received bytes, so they are cut out of the
//! message rather than re-encoded from the decoded values.
//!
//! Where results sit, per version (`alt` is the `EuiccPackageResult` CHOICE
//! alternative `A0` signed result, `A1` signed error, `A2` unsigned error):
//!
//! | message | v1.2 | v1.0 |
//! |---|---|---|
//! | `BF50` provideEimPackageResult | `BF50 { 5A?, BF51 {alt} }`, `30 { BF51 {alt}, A0 }`, `BF52 { A0 { .. A2 { BF51 {alt}.. } } }` | `BF50 { BF51 {alt} }`, `30 { BF51 {alt}, BF2B {list} }`, `BF52 { A0 { .. BF2B {list} } }` |
//! | `BF3D` handleNotificationEsipa | `BF3D { BF50 {..} }` | `BF3D { A1 { <provide alternative> } }` |
//! | `BF4E` transferEimPackageResponse | `BF4E { <as in BF50> }` | `BF4E { <as in BF50> }` |
//!
//! A v1.0 notifications `list` (`SGP32-RetrieveNotificationsListResponse`)
//! carries results as bare alternatives in `A2 { alt.. }` or
//! `A3 { A0 {..}, A1 { alt.. } }`.

use crate::signed::sgp32::{PackageResultSignature, euicc_package_result};
use crate::tlv::{Tlv, TlvError, tlv};
use crate::{Error, decode_der, sgp32, sgp32_v1_0};

use super::{
    Sgp32Version, TAG_EUICC_PACKAGE, TAG_HANDLE_NOTIFICATION, TAG_IPA_EUICC_DATA,
    TAG_PROVIDE_EIM_PACKAGE_RESULT, TAG_TRANSFER_EIM_PACKAGE, upgrade,
};

const TAG_SEQUENCE: u32 = 0x30;
const TAG_EID: u32 = 0x5A;
const TAG_V1_0_NOTIFICATIONS: u32 = 0xBF2B;

/// One eUICC package result exactly as the eUICC produced it, and the
/// version of the message it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedPackageResult {
    alternative: Vec<u8>,
    version: Sgp32Version,
}

impl ReceivedPackageResult {
    /// A result from its bytes: the `EuiccPackageResult` as `BF51 { alt }` or
    /// its bare CHOICE alternative (`A0`, `A1` or `A2`, as in v1.0 lists).
    pub fn new(element: &[u8], version: Sgp32Version) -> Result<Self, Error> {
        let tlv = Tlv::parse_exact(element)?;
        let alternative = if tlv.tag == TAG_EUICC_PACKAGE {
            Tlv::parse_exact(tlv.value)?
        } else {
            tlv
        };
        if !matches!(alternative.tag, 0xA0..=0xA2) {
            return Err(TlvError::UnexpectedTag {
                expected: 0xA0,
                found: alternative.tag,
            }
            .into());
        }
        Ok(Self {
            alternative: alternative.raw.to_vec(),
            version,
        })
    }

    /// The CHOICE alternative as received (`A0`, `A1` or `A2` element).
    pub fn alternative(&self) -> &[u8] {
        &self.alternative
    }

    /// The version of the message the result came in: it decides the input
    /// of `euiccSignEPR` / `euiccSignEPE`.
    pub fn version(&self) -> Sgp32Version {
        self.version
    }

    /// The decoded result, as v1.2 values.
    pub fn value(&self) -> Result<sgp32::EuiccPackageResult, Error> {
        match self.version {
            Sgp32Version::V1_2 => decode_der(&tlv(TAG_EUICC_PACKAGE, &self.alternative)),
            Sgp32Version::V1_0 => upgrade::package_result(decode_der::<
                sgp32_v1_0::EuiccPackageResult,
            >(&self.alternative)?),
        }
    }

    /// The signed data and signature, borrowed from the received bytes.
    pub fn signature(&self) -> Result<PackageResultSignature<'_>, Error> {
        euicc_package_result(&self.alternative)
    }
}

/// Every package result in an IPA message read as `version`, in order.
pub(super) fn locate(
    der: &[u8],
    version: Sgp32Version,
) -> Result<Vec<ReceivedPackageResult>, Error> {
    let outer = Tlv::parse_exact(der)?;
    let mut found = Finder {
        version,
        results: Vec::new(),
    };
    match outer.tag {
        TAG_PROVIDE_EIM_PACKAGE_RESULT => found.provide(&outer)?,
        TAG_HANDLE_NOTIFICATION => {
            let inner = single_child(&outer)?;
            match (version, inner.tag) {
                (Sgp32Version::V1_2, TAG_PROVIDE_EIM_PACKAGE_RESULT) => found.provide(&inner)?,
                (Sgp32Version::V1_0, 0xA1) => found.alternative(&single_child(&inner)?)?,
                _ => {}
            }
        }
        TAG_TRANSFER_EIM_PACKAGE => found.alternative(&single_child(&outer)?)?,
        _ => {}
    }
    Ok(found.results)
}

struct Finder {
    version: Sgp32Version,
    results: Vec<ReceivedPackageResult>,
}

impl Finder {
    /// `BF50`: v1.2 `{ 5A?, alternative }`, v1.0 `{ alternative }`.
    fn provide(&mut self, provide: &Tlv<'_>) -> Result<(), Error> {
        for child in provide.children() {
            let child = child?;
            if child.tag != TAG_EID {
                self.alternative(&child)?;
            }
        }
        Ok(())
    }

    /// One alternative of `EimPackageResult` / v1.0 `ProvideEimPackageResult`
    /// / `TransferEimPackageResponse`.
    fn alternative(&mut self, alt: &Tlv<'_>) -> Result<(), Error> {
        match alt.tag {
            TAG_EUICC_PACKAGE => self.push(alt.raw),
            TAG_SEQUENCE => {
                for child in alt.children() {
                    let child = child?;
                    match child.tag {
                        TAG_EUICC_PACKAGE => self.push(child.raw)?,
                        TAG_V1_0_NOTIFICATIONS if self.version == Sgp32Version::V1_0 => {
                            self.v1_0_list(&single_child(&child)?)?;
                        }
                        _ => {}
                    }
                }
                Ok(())
            }
            TAG_IPA_EUICC_DATA => {
                let response = single_child(alt)?;
                if response.tag != 0xA0 {
                    return Ok(());
                }
                match self.version {
                    Sgp32Version::V1_2 => {
                        if let Some(list) = response.find(0xA2)? {
                            for element in list.children() {
                                self.push(element?.raw)?;
                            }
                        }
                    }
                    Sgp32Version::V1_0 => {
                        if let Some(list) = response.find(TAG_V1_0_NOTIFICATIONS)? {
                            self.v1_0_list(&single_child(&list)?)?;
                        }
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The alternative of a v1.0 `SGP32-RetrieveNotificationsListResponse`.
    fn v1_0_list(&mut self, list: &Tlv<'_>) -> Result<(), Error> {
        let results = match list.tag {
            0xA2 => Some(*list),
            0xA3 => list.find(0xA1)?,
            _ => None,
        };
        if let Some(results) = results {
            for element in results.children() {
                self.push(element?.raw)?;
            }
        }
        Ok(())
    }

    fn push(&mut self, element: &[u8]) -> Result<(), Error> {
        self.results
            .push(ReceivedPackageResult::new(element, self.version)?);
        Ok(())
    }
}

fn single_child<'a>(parent: &Tlv<'a>) -> Result<Tlv<'a>, Error> {
    Ok(Tlv::parse_exact(parent.value)?)
}
