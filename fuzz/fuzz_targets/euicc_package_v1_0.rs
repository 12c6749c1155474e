//! The v1.0 `EuiccPackageRequest` (what a v1.0 eIM sends a v1.0 IPA), in
//! the typed v1.0 and v1.2 decoders, and the signed-part cutter the eUICC
//! and the IPA use on it.
#![no_main]

mod common;

use ferrosim_asn1::signed::sgp32::euicc_package_request;
use ferrosim_asn1::{sgp32, sgp32_v1_0};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::decode_round_trip::<sgp32_v1_0::EuiccPackageRequest>(data);
    common::decode_round_trip::<sgp32_v1_0::EuiccPackageSigned>(data);
    common::decode_round_trip::<sgp32::EuiccPackageRequest>(data);
    if let Ok(part) = euicc_package_request(data) {
        // The cut parts lie inside the input.
        assert!(part.signed.len() + part.signature.len() <= data.len());
    }
});
