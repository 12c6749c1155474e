//! An installed profile: the metadata the SM-DP+ stored with it (kept as
//! received, decoded when asked, as a card keeps it) and what the package
//! provisions, decoded (ICCID, IMSI, K, OPc, PINs, PUKs, SPN, APN).
//!
//! The ISD-R builds an [`InstalledProfile`] from the StoreMetadata request
//! and the profile package of a successful installation, and turns it back
//! into the SGP.22 `ProfileInfo` the LPA lists. It keeps what the card needs
//! to operate the profile and answer about it, not the ~12 KB package it
//! received: of the package only its length (the memory it occupies on the
//! card) and its SHA-256 (which package this is, for audits and tests)
//! remain. The class and policy rules, checked on every profile operation,
//! are kept decoded beside the metadata. A device with two profiles so stays
//! within a few kilobytes, which is what lets a simulation hold a million.

use std::fmt;

use ferrosim_asn1::rasn::types::{FixedOctetString, Integer, OctetString};
use ferrosim_asn1::{decode_der, rsp};
use ferrosim_ids::{Iccid, Timestamp};
use ferrosim_saip::{ProfilePackage, ProfileSummary, bcd};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::state::{hex_bytes, unix_seconds};

pub use ferrosim_asn1::values::{NotificationOperation, PolicyRules, ProfileClass, ProfileState};

/// A PIN or PUK of the profile.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct CodeValue {
    /// Key reference (`01` PIN1/PUK1, `81` PIN2/PUK2, `0A` ADM1, ...).
    pub key_reference: u8,
    /// The 8-byte value (ASCII digits padded with `FF` for PINs and PUKs).
    #[serde(with = "hex_bytes::fixed")]
    pub value: [u8; 8],
}

impl CodeValue {
    /// The value as digits, when it is ASCII digits padded with `FF`.
    pub fn digits(&self) -> Option<String> {
        ferrosim_saip::decode_code_digits(&self.value)
    }
}

impl fmt::Debug for CodeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CodeValue({:#04X}, <redacted>)", self.key_reference)
    }
}

/// A profile installed on the eUICC.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct InstalledProfile {
    /// The profile's ICCID.
    pub iccid: Iccid,
    /// AID of the ISD-P holding the profile.
    #[serde(with = "hex_bytes::fixed")]
    pub isdp_aid: [u8; 16],
    /// Enabled or disabled.
    pub state: ProfileState,
    /// The end user's nickname for it.
    pub nickname: Option<String>,
    /// `profileClass` of the metadata.
    pub profile_class: ProfileClass,
    /// `profilePolicyRules` of the metadata.
    pub policy_rules: PolicyRules,
    /// The StoreMetadata request (`BF25`) as received: names, icon,
    /// notification addresses, owner, service-specific data
    /// ([`InstalledProfile::metadata`] decodes it).
    #[serde(with = "hex_bytes::boxed")]
    pub metadata_der: Box<[u8]>,
    /// `dpProprietaryData.dpOid` of ConfigureISDP, dotted.
    pub dp_oid: Option<String>,
    /// The SM-DP+ that installed it (address as signed in serverSigned1).
    pub smdp_address: String,
    /// The SM-DP+ OID (from its certificates), dotted.
    pub smdp_oid: String,
    /// IMSI of the first USIM, if the package sets one.
    pub imsi: Option<String>,
    /// The AKA algorithm of the first NAA (`milenage`, `tuak`, ...).
    pub aka_algorithm: Option<String>,
    /// K of the first NAA.
    #[serde(with = "hex_bytes::option", default)]
    pub k: Option<Vec<u8>>,
    /// OPc (TOPc) of the first NAA.
    #[serde(with = "hex_bytes::option", default)]
    pub opc: Option<Vec<u8>>,
    /// Every PIN and ADM key of the package.
    pub pins: Vec<CodeValue>,
    /// Every PUK of the package.
    pub puks: Vec<CodeValue>,
    /// The service provider name of EF.SPN, if set.
    pub spn: Option<String>,
    /// The first APN of the USIM's APN control list, if the package has one.
    pub apn: Option<String>,
    /// Length of the profile package installed (unprotected SAIP DER): the
    /// memory the profile takes on the card.
    pub package_len: u32,
    /// SHA-256 of the profile package installed: which package this is,
    /// without keeping it.
    #[serde(with = "hex_bytes::fixed")]
    pub package_sha256: [u8; 32],
    /// Installation time, to the second. State files keep it as seconds
    /// since the Unix epoch (an integer), as they always have.
    #[serde(with = "unix_seconds")]
    pub installed_at: Timestamp,
}

/// What a successful installation hands to [`InstalledProfile::new`].
pub(crate) struct InstallInput<'a> {
    pub iccid: Iccid,
    pub metadata_der: &'a [u8],
    pub metadata: &'a rsp::StoreMetadataRequest,
    pub package: &'a ProfilePackage,
    pub summary: &'a ProfileSummary,
    pub isdp_aid: [u8; 16],
    pub dp_oid: Option<String>,
    pub smdp_address: &'a str,
    pub smdp_oid: &'a str,
    pub installed_at: Timestamp,
}

impl InstalledProfile {
    /// A disabled profile from the metadata and package of an installation.
    pub(crate) fn new(input: InstallInput<'_>) -> Self {
        let m = input.metadata;
        let s = input.summary;
        InstalledProfile {
            iccid: input.iccid,
            isdp_aid: input.isdp_aid,
            state: ProfileState::Disabled,
            nickname: None,
            profile_class: class_of(m).unwrap_or(ProfileClass::Operational),
            policy_rules: policy_rules_of(m),
            metadata_der: input.metadata_der.into(),
            dp_oid: input.dp_oid,
            smdp_address: input.smdp_address.to_owned(),
            smdp_oid: input.smdp_oid.to_owned(),
            imsi: s.imsi.as_ref().map(|i| i.as_str().to_owned()),
            aka_algorithm: s.algorithm().map(|a| a.to_string()),
            k: s.k().map(<[u8]>::to_vec),
            opc: s.opc().map(<[u8]>::to_vec),
            pins: s
                .pins
                .iter()
                .map(|p| CodeValue {
                    key_reference: p.key_reference,
                    value: p.value,
                })
                .collect(),
            puks: s
                .puks
                .iter()
                .map(|p| CodeValue {
                    key_reference: p.key_reference,
                    value: p.value,
                })
                .collect(),
            spn: s.spn.clone(),
            apn: s.apns.first().cloned(),
            package_len: u32::try_from(input.package.as_bytes().len()).unwrap_or(u32::MAX),
            package_sha256: package_digest(input.package.as_bytes()),
            installed_at: unix_seconds::whole_seconds(input.installed_at),
        }
    }

    /// The StoreMetadata request, decoded. `None` only for a state file
    /// edited by hand: installation and loading check that it decodes.
    /// The SGP.32 data objects (`fallbackAllowed` `9F67`,
    /// `iotSpecificMetadata` `BF64`) are left out: the SGP.22 type has
    /// none of them.
    pub fn metadata(&self) -> Option<rsp::StoreMetadataRequest> {
        decode_der(&self.metadata_der)
            .ok()
            .or_else(|| decode_der(&sgp22_metadata(&self.metadata_der)?).ok())
    }

    /// `serviceProviderName` of the metadata.
    pub fn service_provider_name(&self) -> String {
        self.metadata()
            .map(|m| m.service_provider_name)
            .unwrap_or_default()
    }

    /// `profileName` of the metadata.
    pub fn profile_name(&self) -> String {
        self.metadata().map(|m| m.profile_name).unwrap_or_default()
    }

    /// The notification address configured for `op`, if any.
    ///
    /// Read from the metadata's `notificationConfigurationInfo` (`B6`)
    /// alone, without decoding the rest of it: every profile operation
    /// asks, and the whole StoreMetadata decoded cost more than the
    /// operation itself. Installation and loading check that the metadata
    /// decodes, so this finds what [`InstalledProfile::metadata`] would.
    pub fn notification_address(&self, op: NotificationOperation) -> Option<String> {
        op.address_in_metadata(&self.metadata_der)
    }

    /// Checks what a state file may have changed: the metadata decodes and
    /// names this profile's ICCID, the AID is one of an ISD-P.
    pub(crate) fn check(&self) -> Result<(), String> {
        let m = self
            .metadata()
            .ok_or_else(|| format!("profile {}: the metadata does not decode", self.iccid))?;
        let coded = m.iccid.0.as_ref();
        let names_it = |d: Result<String, _>| d.is_ok_and(|d| self.iccid == d);
        if !names_it(bcd::swapped_digits(coded)) && !names_it(bcd::in_order_digits(coded)) {
            return Err(format!(
                "profile {}: the metadata names another ICCID",
                self.iccid
            ));
        }
        Ok(())
    }

    /// The ICCID as the 10 bytes of EF.ICCID (nibble-swapped BCD, `F` padded).
    pub fn iccid_bytes(&self) -> [u8; 10] {
        self.iccid.to_bcd()
    }

    /// The PIN (or ADM key) with this key reference.
    pub fn pin(&self, key_reference: u8) -> Option<&CodeValue> {
        self.pins.iter().find(|p| p.key_reference == key_reference)
    }

    /// The PUK with this key reference.
    pub fn puk(&self, key_reference: u8) -> Option<&CodeValue> {
        self.puks.iter().find(|p| p.key_reference == key_reference)
    }
}

impl fmt::Debug for InstalledProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstalledProfile")
            .field("iccid", &self.iccid)
            .field("isdp_aid", &hex::encode(self.isdp_aid))
            .field("state", &self.state)
            .field("nickname", &self.nickname)
            .field("profile_name", &self.profile_name())
            .field("profile_class", &self.profile_class)
            .field("policy_rules", &self.policy_rules)
            .field("imsi", &self.imsi)
            .field("aka_algorithm", &self.aka_algorithm)
            .field("spn", &self.spn)
            .field("apn", &self.apn)
            .field("package_len", &self.package_len)
            .finish_non_exhaustive()
    }
}

/// The SHA-256 of a profile package, as [`InstalledProfile::package_sha256`]
/// keeps it: to check which package a profile was installed from.
pub fn package_digest(package: &[u8]) -> [u8; 32] {
    Sha256::digest(package).into()
}

/// The policy rules of a StoreMetadata request (none when absent).
fn policy_rules_of(m: &rsp::StoreMetadataRequest) -> PolicyRules {
    m.profile_policy_rules
        .as_ref()
        .map(|ppr| PolicyRules::from_bits(&ppr.0))
        .unwrap_or_default()
}

/// The profile class of a StoreMetadata request, if it is a known one.
pub(crate) fn class_of(m: &rsp::StoreMetadataRequest) -> Option<ProfileClass> {
    ProfileClass::from_asn1(&m.profile_class)
}

/// Tags a `ProfileInfoListRequest` tag list may name.
pub(crate) mod info_tags {
    pub const ICCID: u32 = 0x5A;
    pub const ISDP_AID: u32 = 0x4F;
    pub const STATE: u32 = 0x9F70;
    pub const NICKNAME: u32 = 0x90;
    pub const SERVICE_PROVIDER: u32 = 0x91;
    pub const NAME: u32 = 0x92;
    pub const ICON_TYPE: u32 = 0x93;
    pub const ICON: u32 = 0x94;
    pub const CLASS: u32 = 0x95;
    pub const NOTIFICATIONS: u32 = 0xB6;
    pub const OWNER: u32 = 0xB7;
    pub const DP_PROPRIETARY: u32 = 0xB8;
    pub const PPR: u32 = 0x99;
    pub const SERVICE_SPECIFIC: u32 = 0xBF22;
}

/// The `ProfileInfo` of a profile with the data objects `wanted` selects.
pub(crate) fn profile_info(p: &InstalledProfile, wanted: impl Fn(u32) -> bool) -> rsp::ProfileInfo {
    use info_tags as t;
    let want = |tag| wanted(tag);
    let m = p.metadata();
    let m = m.as_ref();
    let icon = m.and_then(|m| m.icon.as_ref());
    rsp::ProfileInfo::new(
        want(t::ICCID).then(|| rsp::Iccid(FixedOctetString::new(p.iccid_bytes()))),
        want(t::ISDP_AID).then(|| rsp::OctetTo16(OctetString::from(p.isdp_aid.to_vec()))),
        want(t::STATE).then(|| p.state.to_asn1()),
        if want(t::NICKNAME) {
            p.nickname.clone()
        } else {
            None
        },
        m.filter(|_| want(t::SERVICE_PROVIDER))
            .map(|m| m.service_provider_name.clone()),
        m.filter(|_| want(t::NAME)).map(|m| m.profile_name.clone()),
        icon.filter(|_| want(t::ICON_TYPE)).map(|_| {
            m.and_then(|m| m.icon_type.clone())
                .unwrap_or(rsp::IconType(Integer::from(0)))
        }),
        icon.filter(|_| want(t::ICON)).cloned(),
        want(t::CLASS).then(|| p.profile_class.to_asn1()),
        m.filter(|_| want(t::NOTIFICATIONS))
            .and_then(|m| m.notification_configuration_info.clone())
            .filter(|list| !list.is_empty()),
        m.filter(|_| want(t::OWNER))
            .and_then(|m| m.profile_owner.clone()),
        p.dp_oid
            .as_deref()
            .filter(|_| want(t::DP_PROPRIETARY))
            .and_then(dotted_to_oid)
            .map(rsp::DpProprietaryData::new),
        want(t::PPR).then(|| p.policy_rules.to_asn1()),
        m.filter(|_| want(t::SERVICE_SPECIFIC))
            .and_then(|m| m.service_specific_data_stored_in_euicc.clone()),
    )
}

/// A rasn OBJECT IDENTIFIER from dotted text.
pub(crate) fn dotted_to_oid(dotted: &str) -> Option<ferrosim_asn1::rasn::types::ObjectIdentifier> {
    let arcs = dotted
        .split('.')
        .map(|a| a.parse::<u32>().ok())
        .collect::<Option<Vec<u32>>>()?;
    ferrosim_asn1::rasn::types::ObjectIdentifier::new(arcs)
}

/// Dotted text of a rasn OBJECT IDENTIFIER.
pub(crate) fn oid_to_dotted(oid: &ferrosim_asn1::rasn::types::ObjectIdentifier) -> String {
    oid.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
}

/// StoreMetadata (`BF25`) without its SGP.32-only top-level data objects.
pub(crate) fn sgp22_metadata(der: &[u8]) -> Option<Vec<u8>> {
    use ferrosim_asn1::tlv::{Tlv, tlv};
    let outer = Tlv::parse_exact(der).ok()?;
    let mut value = Vec::with_capacity(outer.value.len());
    for child in outer.children() {
        let child = child.ok()?;
        if !matches!(child.tag, 0x9F67 | 0xBF64) {
            value.extend_from_slice(child.raw);
        }
    }
    Some(tlv(outer.tag, &value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids() {
        let oid = dotted_to_oid("2.999.10").unwrap();
        assert_eq!(oid_to_dotted(&oid), "2.999.10");
        assert!(dotted_to_oid("2.x").is_none());
    }

    /// The address as the whole metadata decoded gives it.
    fn decoded_address(der: &[u8], op: NotificationOperation) -> Option<String> {
        let m: rsp::StoreMetadataRequest = decode_der(der)
            .ok()
            .or_else(|| decode_der(&sgp22_metadata(der)?).ok())?;
        m.notification_configuration_info?
            .into_iter()
            .find(|n| op.is_in(&n.profile_management_operation))
            .map(|n| n.notification_address)
    }

    #[test]
    fn notification_addresses_read_as_the_decoded_metadata_gives_them() {
        use ferrosim_asn1::{encode_der, named_bits};
        let info = |bits: &[usize], address: &str| {
            rsp::NotificationConfigurationInformation::new(
                rsp::NotificationEvent(named_bits(bits)),
                address.to_owned(),
            )
        };
        let configurations = [
            None,
            Some(vec![]),
            Some(vec![info(&[0, 1, 2, 3], "all.example")]),
            Some(vec![
                info(&[1], "enable.example"),
                info(&[2, 3], "disable-delete.example"),
                info(&[1, 2], "second.example"),
            ]),
            Some(vec![
                info(&[], "none.example"),
                info(&[3], "délété.example"),
            ]),
        ];
        for configuration in configurations {
            let metadata = rsp::StoreMetadataRequest::new(
                rsp::Iccid(FixedOctetString::new([
                    0x98, 0x10, 0, 0, 0, 0, 0, 0, 0, 0xF1,
                ])),
                "SP".into(),
                "name".into(),
                None,
                None,
                ProfileClass::Operational.to_asn1(),
                configuration,
                None,
                None,
                None,
                None,
            );
            let der = encode_der(&metadata).unwrap();
            // The SGP.32 form, with fallbackAllowed after the SGP.22 fields.
            let outer = ferrosim_asn1::tlv::Tlv::parse_exact(&der).unwrap();
            let sgp32 = ferrosim_asn1::tlv::tlv(
                outer.tag,
                &[outer.value, &[0x9F, 0x67, 0x01, 0xFF]].concat(),
            );
            for der in [der.clone(), sgp32] {
                for op in NotificationOperation::ALL {
                    assert_eq!(
                        op.address_in_metadata(&der),
                        decoded_address(&der, op),
                        "{op:?}"
                    );
                }
            }
        }
        assert_eq!(
            NotificationOperation::Enable.address_in_metadata(&[0xBF, 0x25, 0x01]),
            None
        );
    }
}
