//! Migration of older state files, on their JSON before it is decoded.
//!
//! Version 1 (files without a `version`) kept, per profile, the whole
//! package (`package`, hex), the StoreMetadata request (`metadata`, hex) and
//! decoded copies of its names, icon, notification addresses, owner and
//! service-specific data; and each OtherSignedNotification with the eUICC
//! and EUM certificates appended. Version 2 keeps the package's length and
//! SHA-256, the metadata only as received (`metadata_der`), and other
//! notifications as `tbsOtherNotification || signature`.
//!
//! Migration only rewrites what it recognises; anything else is left for
//! the decoder to accept or refuse with a typed error.

use ferrosim_asn1::tlv::Tlv;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Rewrites a version 1 state (JSON) as version 2.
pub(crate) fn v1_to_v2(state: &mut Value) {
    if let Some(profiles) = state.get_mut("profiles").and_then(Value::as_array_mut) {
        for profile in profiles.iter_mut().filter_map(Value::as_object_mut) {
            // Decoded copies of what the metadata (kept) holds.
            for field in [
                "service_provider_name",
                "profile_name",
                "icon",
                "notification_configuration",
                "profile_owner",
                "service_specific_data",
            ] {
                profile.remove(field);
            }
            if let Some(metadata) = profile.remove("metadata") {
                profile.insert("metadata_der".into(), metadata);
            }
            let package = profile
                .remove("package")
                .and_then(|p| p.as_str().and_then(|h| hex::decode(h.trim()).ok()))
                .unwrap_or_default();
            profile
                .entry("package_len")
                .or_insert_with(|| Value::from(package.len()));
            profile
                .entry("package_sha256")
                .or_insert_with(|| Value::from(hex::encode(Sha256::digest(&package))));
        }
    }
    if let Some(notifications) = state.get_mut("notifications").and_then(Value::as_array_mut) {
        for notification in notifications.iter_mut().filter_map(Value::as_object_mut) {
            let Some(signed) = notification.get_mut("signed") else {
                continue;
            };
            let compact = signed
                .as_str()
                .and_then(|h| hex::decode(h.trim()).ok())
                .and_then(|bytes| without_certificates(&bytes));
            if let Some(compact) = compact {
                *signed = Value::from(hex::encode(compact));
            }
        }
    }
}

/// `tbsOtherNotification || signature` of a whole OtherSignedNotification
/// (`30 { BF2F, 5F37, eUICC certificate, EUM certificate }`); `None` for
/// anything else (installation results stay whole).
pub(crate) fn without_certificates(signed: &[u8]) -> Option<Vec<u8>> {
    let outer = Tlv::parse_exact(signed).ok()?;
    if outer.tag != 0x30 {
        return None;
    }
    let children = outer.children().collect::<Result<Vec<_>, _>>().ok()?;
    match children.as_slice() {
        [tbs, signature, ..] if tbs.tag == 0xBF2F && signature.tag == 0x5F37 => {
            Some([tbs.raw, signature.raw].concat())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrosim_asn1::tlv::tlv;

    #[test]
    fn version_1_profiles_and_notifications() {
        let tbs = tlv(0xBF2F, &[0x80, 0x01, 0x07]);
        let sig = tlv(0x5F37, &[0xAA; 64]);
        let full = tlv(
            0x30,
            &[
                tbs.clone(),
                sig.clone(),
                tlv(0x30, &[1, 2]),
                tlv(0x30, &[3]),
            ]
            .concat(),
        );
        let pir = tlv(0xBF37, &[0x01]);
        let mut v = serde_json::json!({
            "profiles": [{"iccid": "1", "package": "0102", "metadata": "bf2500", "profile_name": "x"}, 7],
            "notifications": [
                {"signed": hex::encode(&full)},
                {"signed": hex::encode(&pir)},
                {"signed": "zz"},
                {"no_signed": true},
            ],
        });
        v1_to_v2(&mut v);
        let profile = &v["profiles"][0];
        assert_eq!(profile["package_len"], 2);
        assert_eq!(
            profile["package_sha256"],
            hex::encode(Sha256::digest([1u8, 2]))
        );
        assert!(profile.get("package").is_none() && profile.get("profile_name").is_none());
        assert_eq!(profile["metadata_der"], "bf2500");
        assert_eq!(v["profiles"][1], 7, "left for the decoder to refuse");
        assert_eq!(
            v["notifications"][0]["signed"],
            hex::encode([tbs, sig].concat())
        );
        assert_eq!(v["notifications"][1]["signed"], hex::encode(&pir));
        assert_eq!(v["notifications"][2]["signed"], "zz");
        // Anything that is not an object or array is left alone.
        let mut odd = serde_json::json!({"profiles": 3, "notifications": "x"});
        v1_to_v2(&mut odd);
        assert_eq!(odd["profiles"], 3);
    }
}
