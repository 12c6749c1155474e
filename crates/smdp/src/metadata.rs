//! Profile metadata: what the end user sees before accepting a profile
//! (SGP.22 `StoreMetadataRequest`, tag BF25), per profile type.

use serde::{Deserialize, Serialize};

/// `ProfileClass` of SGP.22.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileClass {
    /// 0: a test profile.
    Test,
    /// 1: a provisioning profile (bootstrap connectivity).
    Provisioning,
    /// 2: an operational profile (the default).
    Operational,
}

impl ProfileClass {
    /// The ASN.1 integer.
    pub fn code(self) -> i64 {
        match self {
            Self::Test => 0,
            Self::Provisioning => 1,
            Self::Operational => 2,
        }
    }

    /// From the ASN.1 integer.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Self::Test),
            1 => Some(Self::Provisioning),
            2 => Some(Self::Operational),
            _ => None,
        }
    }

    /// Parses `test`, `provisioning` or `operational`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "test" => Some(Self::Test),
            "provisioning" => Some(Self::Provisioning),
            "operational" => Some(Self::Operational),
            _ => None,
        }
    }
}

/// Profile policy rules of SGP.22 (`PprIds` bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct ProfilePolicyRules {
    /// PPR1: the profile may not be disabled once enabled.
    pub disable_not_allowed: bool,
    /// PPR2: the profile may not be deleted.
    pub delete_not_allowed: bool,
}

impl ProfilePolicyRules {
    /// Bit mask as stored: bit 1 = PPR1, bit 2 = PPR2 (the `PprIds` bit numbers).
    pub fn bits(self) -> i64 {
        (i64::from(self.disable_not_allowed) << 1) | (i64::from(self.delete_not_allowed) << 2)
    }

    /// From the stored bit mask.
    pub fn from_bits(bits: i64) -> Self {
        Self {
            disable_not_allowed: bits & 0b010 != 0,
            delete_not_allowed: bits & 0b100 != 0,
        }
    }

    /// Whether any rule is set.
    pub fn any(self) -> bool {
        self.disable_not_allowed || self.delete_not_allowed
    }
}

/// The metadata of a profile type, applied to each of its profiles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileTypeMetadata {
    /// `serviceProviderName`, e.g. the operator's brand.
    pub service_provider_name: String,
    /// `profileName` shown to the end user.
    pub profile_name: String,
    /// `profileClass`.
    pub profile_class: ProfileClass,
    /// `profilePolicyRules`.
    pub policy_rules: ProfilePolicyRules,
    /// `profileOwner` MCC+MNC digits (5 or 6), if given.
    pub owner_mcc_mnc: Option<String>,
}

/// Why metadata could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// `owner_mcc_mnc` is not 5 or 6 digits.
    #[error("profile owner MCC+MNC must be 5 or 6 digits, not `{0}`")]
    BadMccMnc(String),
    /// The ASN.1 encoder failed.
    #[error(transparent)]
    Encode(#[from] ferrosim_asn1::Error),
}

/// `NotificationEvent` bits of SGP.22 (install, enable, disable, delete).
const NOTIFICATION_EVENTS: [usize; 4] = [0, 1, 2, 3];

/// The DER of the StoreMetadataRequest (BF25) for one profile: the type's
/// metadata, the profile's ICCID, and notifications for install, enable,
/// disable and delete addressed to this SM-DP+.
pub fn store_metadata_der(
    iccid: &ferrosim_saip::Iccid,
    m: &ProfileTypeMetadata,
    smdp_address: &str,
) -> Result<Vec<u8>, MetadataError> {
    use ferrosim_asn1::rasn::types::{BitString, FixedOctetString, Integer, OctetString};
    use ferrosim_asn1::rsp;

    let bits = |set: &[usize]| -> BitString {
        let len = set.iter().max().map_or(0, |m| m + 1);
        let mut b = BitString::repeat(false, len);
        for &i in set {
            b.set(i, true);
        }
        b
    };
    let notifications = NOTIFICATION_EVENTS
        .iter()
        .map(|&bit| {
            rsp::NotificationConfigurationInformation::new(
                rsp::NotificationEvent(bits(&[bit])),
                smdp_address.to_owned(),
            )
        })
        .collect();
    let owner = m
        .owner_mcc_mnc
        .as_deref()
        .map(|s| -> Result<rsp::OperatorId, MetadataError> {
            Ok(rsp::OperatorId::new(
                OctetString::from_slice(&mcc_mnc_bytes(s)?),
                None,
                None,
            ))
        })
        .transpose()?;
    let mut ppr = Vec::new();
    if m.policy_rules.disable_not_allowed {
        ppr.push(1);
    }
    if m.policy_rules.delete_not_allowed {
        ppr.push(2);
    }
    let request = rsp::StoreMetadataRequest::new(
        rsp::Iccid(FixedOctetString::new(iccid.to_bcd())),
        m.service_provider_name.clone(),
        m.profile_name.clone(),
        None,
        None,
        rsp::ProfileClass(Integer::from(m.profile_class.code())),
        Some(notifications),
        owner,
        (!ppr.is_empty()).then(|| rsp::PprIds(bits(&ppr))),
        None,
        None,
    );
    Ok(ferrosim_asn1::encode_der(&request)?)
}

/// MCC+MNC digits as the 3 bytes of 3GPP TS 24.008 (MNC digit 3 = F when absent).
fn mcc_mnc_bytes(s: &str) -> Result<[u8; 3], MetadataError> {
    let d: Vec<u8> = s.bytes().map(|b| b.wrapping_sub(b'0')).collect();
    if !(d.len() == 5 || d.len() == 6) || d.iter().any(|&x| x > 9) {
        return Err(MetadataError::BadMccMnc(s.to_owned()));
    }
    let mnc3 = if d.len() == 6 { d[5] } else { 0xF };
    Ok([(d[1] << 4) | d[0], (mnc3 << 4) | d[2], (d[4] << 4) | d[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcc_mnc_coding() {
        assert_eq!(mcc_mnc_bytes("00101").unwrap(), [0x00, 0xF1, 0x10]);
        assert_eq!(mcc_mnc_bytes("310410").unwrap(), [0x13, 0x00, 0x14]);
        assert!(mcc_mnc_bytes("0010").is_err());
        assert!(mcc_mnc_bytes("00a01").is_err());
    }

    #[test]
    fn ppr_bits_round_trip() {
        let p = ProfilePolicyRules {
            disable_not_allowed: true,
            delete_not_allowed: false,
        };
        assert_eq!(ProfilePolicyRules::from_bits(p.bits()), p);
    }
}
