//! An installed profile, kept decoded: what the metadata announced (names,
//! class, notification addresses, policy rules), what the package provisions
//! (ICCID, IMSI, K, OPc, PINs, PUKs, SPN, APN) and the package bytes
//! themselves.
//!
//! The ISD-R builds an [`InstalledProfile`] from the StoreMetadata request
//! and the profile package of a successful installation, and turns it back
//! into the SGP.22 `ProfileInfo` the LPA lists.

use std::fmt;

use ferrosim_asn1::rasn::types::{FixedOctetString, Integer, OctetString};
use ferrosim_asn1::{decode_der, named_bits, rsp};
use ferrosim_saip::{ProfilePackage, ProfileSummary, bcd};
use serde::{Deserialize, Serialize};

use crate::state::hex_bytes;

pub use ferrosim_asn1::values::{NotificationOperation, PolicyRules, ProfileClass, ProfileState};

/// Where the notifications of some operations go (`NotificationConfigurationInformation`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NotificationConfiguration {
    /// The operations (`profileManagementOperation` bits).
    pub operations: Vec<NotificationOperation>,
    /// The FQDN the notifications go to.
    pub address: String,
}

/// The profile owner (`OperatorId`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ProfileOwner {
    /// MCC and MNC, 3 bytes as in 3GPP TS 24.008.
    #[serde(with = "hex_bytes")]
    pub mcc_mnc: Vec<u8>,
    /// EF GID1 content, if given.
    #[serde(with = "hex_bytes::option", default)]
    pub gid1: Option<Vec<u8>>,
    /// EF GID2 content, if given.
    #[serde(with = "hex_bytes::option", default)]
    pub gid2: Option<Vec<u8>>,
}

/// The icon shown for a profile.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Icon {
    /// `iconType`: 0 JPG, 1 PNG.
    pub icon_type: i64,
    /// The image.
    #[serde(with = "hex_bytes")]
    pub data: Vec<u8>,
}

/// A PIN or PUK of the profile.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct CodeValue {
    /// Key reference (`01` PIN1/PUK1, `81` PIN2/PUK2, `0A` ADM1, ...).
    pub key_reference: u8,
    /// The 8-byte value (ASCII digits padded with `FF` for PINs and PUKs).
    #[serde(with = "hex_bytes")]
    pub value: Vec<u8>,
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
    /// ICCID digits.
    pub iccid: String,
    /// AID of the ISD-P holding the profile.
    #[serde(with = "hex_bytes")]
    pub isdp_aid: Vec<u8>,
    /// Enabled or disabled.
    pub state: ProfileState,
    /// The end user's nickname for it.
    pub nickname: Option<String>,
    /// `serviceProviderName` of the metadata.
    pub service_provider_name: String,
    /// `profileName` of the metadata.
    pub profile_name: String,
    /// `profileClass` of the metadata.
    pub profile_class: ProfileClass,
    /// The icon, if the metadata has one.
    pub icon: Option<Icon>,
    /// Where enable, disable and delete notifications go.
    pub notification_configuration: Vec<NotificationConfiguration>,
    /// `profileOwner` of the metadata.
    pub profile_owner: Option<ProfileOwner>,
    /// `profilePolicyRules` of the metadata.
    pub policy_rules: PolicyRules,
    /// `dpProprietaryData.dpOid` of ConfigureISDP, dotted.
    pub dp_oid: Option<String>,
    /// `serviceSpecificDataStoredInEuicc` of the metadata (DER), if any.
    #[serde(with = "hex_bytes::option", default)]
    pub service_specific_data: Option<Vec<u8>>,
    /// The SM-DP+ that installed it (address as signed in serverSigned1).
    pub smdp_address: String,
    /// The SM-DP+ OID (from its certificates), dotted.
    pub smdp_oid: String,
    /// The StoreMetadata request (`BF25`) exactly as received.
    #[serde(with = "hex_bytes")]
    pub metadata: Vec<u8>,
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
    /// The profile package as installed (unprotected SAIP DER).
    #[serde(with = "hex_bytes")]
    pub package: Vec<u8>,
    /// Installation time, seconds since the Unix epoch.
    pub installed_at: u64,
}

/// What a successful installation hands to [`InstalledProfile::new`].
pub(crate) struct InstallInput<'a> {
    pub iccid: String,
    pub metadata_der: &'a [u8],
    pub metadata: &'a rsp::StoreMetadataRequest,
    pub package: &'a ProfilePackage,
    pub summary: &'a ProfileSummary,
    pub isdp_aid: Vec<u8>,
    pub dp_oid: Option<String>,
    pub smdp_address: &'a str,
    pub smdp_oid: &'a str,
    pub installed_at: u64,
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
            service_provider_name: m.service_provider_name.clone(),
            profile_name: m.profile_name.clone(),
            profile_class: class_of(m).unwrap_or(ProfileClass::Operational),
            icon: m.icon.as_ref().map(|data| Icon {
                icon_type: m
                    .icon_type
                    .as_ref()
                    .and_then(|t| i64::try_from(&t.0).ok())
                    .unwrap_or(0),
                data: data.to_vec(),
            }),
            notification_configuration: m
                .notification_configuration_info
                .iter()
                .flatten()
                .map(|n| NotificationConfiguration {
                    operations: NotificationOperation::ALL
                        .into_iter()
                        .filter(|op| op.is_in(&n.profile_management_operation))
                        .collect(),
                    address: n.notification_address.clone(),
                })
                .collect(),
            profile_owner: m.profile_owner.as_ref().map(|o| ProfileOwner {
                mcc_mnc: o.mcc_mnc.to_vec(),
                gid1: o.gid1.as_ref().map(|g| g.to_vec()),
                gid2: o.gid2.as_ref().map(|g| g.to_vec()),
            }),
            policy_rules: m
                .profile_policy_rules
                .as_ref()
                .map(|ppr| PolicyRules::from_bits(&ppr.0))
                .unwrap_or_default(),
            dp_oid: input.dp_oid,
            service_specific_data: m
                .service_specific_data_stored_in_euicc
                .as_ref()
                .and_then(|v| ferrosim_asn1::encode_der(v).ok()),
            smdp_address: input.smdp_address.to_owned(),
            smdp_oid: input.smdp_oid.to_owned(),
            metadata: input.metadata_der.to_vec(),
            imsi: s.imsi.as_ref().map(|i| i.as_str().to_owned()),
            aka_algorithm: s.algorithm().map(|a| a.to_string()),
            k: s.k().map(<[u8]>::to_vec),
            opc: s.opc().map(<[u8]>::to_vec),
            pins: s
                .pins
                .iter()
                .map(|p| CodeValue {
                    key_reference: p.key_reference,
                    value: p.value.to_vec(),
                })
                .collect(),
            puks: s
                .puks
                .iter()
                .map(|p| CodeValue {
                    key_reference: p.key_reference,
                    value: p.value.to_vec(),
                })
                .collect(),
            spn: s.spn.clone(),
            apn: s.apns.first().cloned(),
            package: input.package.as_bytes().to_vec(),
            installed_at: input.installed_at,
        }
    }

    /// The ICCID as the 10 bytes of EF.ICCID (nibble-swapped BCD, `F` padded).
    pub fn iccid_bytes(&self) -> [u8; 10] {
        bcd::swapped_bytes(&self.iccid)
    }

    /// The notification address configured for `op`, if any.
    pub fn notification_address(&self, op: NotificationOperation) -> Option<&str> {
        self.notification_configuration
            .iter()
            .find(|n| n.operations.contains(&op))
            .map(|n| n.address.as_str())
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
            .field("isdp_aid", &hex::encode(&self.isdp_aid))
            .field("state", &self.state)
            .field("nickname", &self.nickname)
            .field("service_provider_name", &self.service_provider_name)
            .field("profile_name", &self.profile_name)
            .field("profile_class", &self.profile_class)
            .field("policy_rules", &self.policy_rules)
            .field("imsi", &self.imsi)
            .field("aka_algorithm", &self.aka_algorithm)
            .field("spn", &self.spn)
            .field("apn", &self.apn)
            .field("package_len", &self.package.len())
            .finish_non_exhaustive()
    }
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
    rsp::ProfileInfo::new(
        want(t::ICCID).then(|| rsp::Iccid(FixedOctetString::new(p.iccid_bytes()))),
        want(t::ISDP_AID).then(|| rsp::OctetTo16(OctetString::from(p.isdp_aid.clone()))),
        want(t::STATE).then(|| p.state.to_asn1()),
        if want(t::NICKNAME) {
            p.nickname.clone()
        } else {
            None
        },
        want(t::SERVICE_PROVIDER).then(|| p.service_provider_name.clone()),
        want(t::NAME).then(|| p.profile_name.clone()),
        p.icon
            .as_ref()
            .filter(|_| want(t::ICON_TYPE))
            .map(|i| rsp::IconType(Integer::from(i.icon_type))),
        p.icon
            .as_ref()
            .filter(|_| want(t::ICON))
            .map(|i| OctetString::from(i.data.clone())),
        want(t::CLASS).then(|| p.profile_class.to_asn1()),
        (want(t::NOTIFICATIONS) && !p.notification_configuration.is_empty()).then(|| {
            p.notification_configuration
                .iter()
                .map(|n| {
                    let bits: Vec<usize> = n.operations.iter().map(|o| o.bit()).collect();
                    rsp::NotificationConfigurationInformation::new(
                        rsp::NotificationEvent(named_bits(&bits)),
                        n.address.clone(),
                    )
                })
                .collect()
        }),
        p.profile_owner
            .as_ref()
            .filter(|_| want(t::OWNER))
            .map(|o| {
                rsp::OperatorId::new(
                    OctetString::from(o.mcc_mnc.clone()),
                    o.gid1.clone().map(OctetString::from),
                    o.gid2.clone().map(OctetString::from),
                )
            }),
        p.dp_oid
            .as_deref()
            .filter(|_| want(t::DP_PROPRIETARY))
            .and_then(dotted_to_oid)
            .map(rsp::DpProprietaryData::new),
        want(t::PPR).then(|| p.policy_rules.to_asn1()),
        p.service_specific_data
            .as_deref()
            .filter(|_| want(t::SERVICE_SPECIFIC))
            .and_then(|der| decode_der::<rsp::VendorSpecificExtension>(der).ok()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids() {
        let oid = dotted_to_oid("2.999.10").unwrap();
        assert_eq!(oid_to_dotted(&oid), "2.999.10");
        assert!(dotted_to_oid("2.x").is_none());
    }
}
