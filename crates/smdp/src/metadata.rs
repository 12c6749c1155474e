//! Profile metadata: what the end user sees before accepting a profile
//! (SGP.22 `StoreMetadataRequest`, tag BF25), per profile type.

use serde::{Deserialize, Serialize};

pub use ferrosim_asn1::values::{PolicyRules, ProfileClass};

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
    pub policy_rules: PolicyRules,
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

/// The DER of the StoreMetadataRequest (BF25) for one profile: the type's
/// metadata, the profile's ICCID, and notifications for install, enable,
/// disable and delete addressed to this SM-DP+.
pub fn store_metadata_der(
    iccid: &ferrosim_saip::Iccid,
    m: &ProfileTypeMetadata,
    smdp_address: &str,
) -> Result<Vec<u8>, MetadataError> {
    use ferrosim_asn1::rasn::types::{FixedOctetString, OctetString};
    use ferrosim_asn1::rsp;
    use ferrosim_asn1::values::NotificationOperation;

    let notifications = NotificationOperation::ALL
        .iter()
        .map(|op| {
            rsp::NotificationConfigurationInformation::new(op.event(), smdp_address.to_owned())
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
    let request = rsp::StoreMetadataRequest::new(
        rsp::Iccid(FixedOctetString::new(iccid.to_bcd())),
        m.service_provider_name.clone(),
        m.profile_name.clone(),
        None,
        None,
        m.profile_class.to_asn1(),
        Some(notifications),
        owner,
        (m.policy_rules.mask() != 0).then(|| m.policy_rules.to_asn1()),
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
}
