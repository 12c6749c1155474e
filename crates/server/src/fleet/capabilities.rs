//! A device's capabilities as its IPA reported them to the eIM
//! (IpaEuiccData: EUICCInfo2 `iotSpecificInfo`, IpaCapabilities), in the
//! fleet's terms.

use ferrosim_asn1::codec::decode_der;
use ferrosim_asn1::generated::sgp32;
use ferrosim_eim::record::EuiccData;
use ferrosim_fleet::device::{Capabilities, Version};

/// The capabilities in `data`, or `None` when it holds no readable
/// EUICCInfo2 with an SGP.32 version (IpaCapabilities alone do not say
/// what the eUICC can do). Rollback support is not reported by the IPA:
/// it is left `true` (the fleet keeps the registered value).
pub(super) fn read(data: &EuiccData) -> Option<Capabilities> {
    let info2: sgp32::EUICCInfo2 = decode_der(data.info2.as_deref()?).ok()?;
    let iot = info2.iot_specific_info?;
    let sgp32_version = iot
        .iot_version
        .iter()
        .filter_map(|v| version(v.0.as_slice()))
        .max()?;
    let (ipa_features, ipa_protocols) = data
        .ipa_capabilities
        .as_deref()
        .and_then(|der| decode_der::<sgp32::IpaCapabilities>(der).ok())
        .map(|c| {
            (
                first_bits(c.ipa_features.iter()),
                c.ipa_supported_protocols
                    .as_ref()
                    .map_or(0, |p| first_bits(p.iter())),
            )
        })
        .unwrap_or((0, 0));
    Some(Capabilities {
        sgp32_version,
        fallback_supported: iot.fallback_supported.is_some(),
        rollback_supported: true,
        ipa_features,
        ipa_protocols,
    })
}

/// A VersionType (three octets: major, minor, revision).
fn version(bytes: &[u8]) -> Option<Version> {
    match bytes {
        [a, b, c] => Some(Version([u16::from(*a), u16::from(*b), u16::from(*c)])),
        _ => None,
    }
}

/// The first eight bits of a named-bit BIT STRING, bit `i` as `1 << i`.
fn first_bits<B: std::ops::Deref<Target = bool>>(bits: impl Iterator<Item = B>) -> u8 {
    bits.take(8)
        .enumerate()
        .filter(|(_, b)| **b)
        .fold(0, |acc, (i, _)| acc | (1 << i))
}
