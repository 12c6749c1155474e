//! Profile metadata: what the end user sees before accepting a profile
//! (SGP.22 `StoreMetadataRequest`, tag BF25), per profile type, with
//! SGP.32's `fallbackAllowed` (`9F67`) where the profile owner allows an
//! IoT eUICC to give the profile the fallback attribute.

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
    /// SGP.32 `fallbackAllowed` (`9F67`): the profile owner allows the
    /// fallback attribute on these profiles. An IoT eUICC refuses
    /// setFallbackAttribute (fallbackNotAllowed) for a profile whose
    /// metadata does not carry it TRUE. Absent in metadata stored before
    /// the property existed, which reads as not allowed.
    #[serde(default)]
    pub fallback_allowed: bool,
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
    let der = ferrosim_asn1::encode_der(&request)?;
    if !m.fallback_allowed {
        return Ok(der);
    }
    // SGP.32 extends StoreMetadataRequest with fallbackAllowed (after
    // ecallIndication, before iotSpecificMetadata): the same SGP.22 fields
    // read as the SGP.32 type, which places and encodes it.
    let mut iot: ferrosim_asn1::sgp32::StoreMetadataRequest = ferrosim_asn1::decode_der(&der)?;
    iot.fallback_allowed = Some(true);
    Ok(ferrosim_asn1::encode_der(&iot)?)
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

    fn metadata(fallback_allowed: bool) -> ProfileTypeMetadata {
        ProfileTypeMetadata {
            service_provider_name: "Carrier B".into(),
            profile_name: "IoT fallback".into(),
            profile_class: ProfileClass::Operational,
            policy_rules: PolicyRules::default(),
            owner_mcc_mnc: Some("23415".into()),
            fallback_allowed,
        }
    }

    fn der(fallback_allowed: bool) -> Vec<u8> {
        let iccid = ferrosim_saip::Iccid::from_body("894410000000000001").unwrap();
        store_metadata_der(&iccid, &metadata(fallback_allowed), "smdp.example").unwrap()
    }

    /// The direct children (tag, value) of the BF25 TLV.
    fn children(der: &[u8]) -> Vec<(u32, Vec<u8>)> {
        let outer = ferrosim_asn1::tlv::Tlv::parse_exact(der).unwrap();
        assert_eq!(outer.tag, 0xBF25);
        let mut rest = outer.value;
        let mut out = Vec::new();
        while !rest.is_empty() {
            let (child, after) = ferrosim_asn1::tlv::Tlv::parse(rest).unwrap();
            out.push((child.tag, child.value.to_vec()));
            rest = after;
        }
        out
    }

    #[test]
    fn fallback_allowed_is_in_the_metadata_iff_the_type_allows_it() {
        let allowed = children(&der(true));
        let not = children(&der(false));
        let tags = |c: &[(u32, Vec<u8>)]| c.iter().map(|(t, _)| *t).collect::<Vec<_>>();
        // Exactly once, TRUE (DER: FF), and last: after every SGP.22 field.
        assert_eq!(allowed.last(), Some(&(0x9F67, vec![0xFF])));
        assert_eq!(tags(&allowed).iter().filter(|t| **t == 0x9F67).count(), 1);
        assert!(!tags(&not).contains(&0x9F67));
        // Everything else is the same.
        assert_eq!(allowed[..allowed.len() - 1], not[..]);
    }

    #[test]
    fn metadata_with_fallback_allowed_reads_as_both_versions() {
        let der = der(true);
        let iot: ferrosim_asn1::sgp32::StoreMetadataRequest =
            ferrosim_asn1::decode_der(&der).unwrap();
        assert_eq!(iot.fallback_allowed, Some(true));
        assert_eq!(iot.service_provider_name, "Carrier B");
        // The plain SGP.22 fields are unchanged for an SGP.22 reader that
        // skips the extension.
        let plain: ferrosim_asn1::sgp32::StoreMetadataRequest = ferrosim_asn1::decode_der(
            &super::store_metadata_der(
                &ferrosim_saip::Iccid::from_body("894410000000000001").unwrap(),
                &metadata(false),
                "smdp.example",
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(plain.fallback_allowed, None);
        assert_eq!(
            ferrosim_asn1::sgp32::StoreMetadataRequest {
                fallback_allowed: None,
                ..iot
            },
            plain
        );
    }

    #[test]
    fn metadata_stored_before_the_property_reads_as_not_allowed() {
        // Stored metadata is this struct's JSON; rows written before the
        // property existed lack the field.
        let mut v = serde_json::to_value(metadata(true)).unwrap();
        assert!(
            v.as_object_mut()
                .unwrap()
                .remove("fallback_allowed")
                .is_some()
        );
        let m: ProfileTypeMetadata = serde_json::from_value(v).unwrap();
        assert!(!m.fallback_allowed);
        assert!(
            !children(
                &store_metadata_der(
                    &ferrosim_saip::Iccid::from_body("894410000000000001").unwrap(),
                    &m,
                    "smdp.example"
                )
                .unwrap()
            )
            .iter()
            .any(|(t, _)| *t == 0x9F67)
        );
    }
}
