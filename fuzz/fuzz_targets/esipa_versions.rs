//! The version-aware ESipa readers the eIM and the IPA use
//! (`ferrosim_asn1::esipa`), the package results they find, the signed-part
//! cutters, and the writers of answers for either version: any bytes give a
//! value or an error, never a panic; whatever is read can be answered in.
#![no_main]

use ferrosim_asn1::esipa::{
    Sgp32Version, encode_eim_message, encode_ipa_message, read_eim_message, read_ipa_message,
};
use ferrosim_asn1::signed::sgp32::{euicc_package_request, euicc_package_result};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for expected in [None, Some(Sgp32Version::V1_0), Some(Sgp32Version::V1_2)] {
        if let Ok(read) = read_ipa_message(data, expected) {
            for result in &read.package_results {
                let _ = result.value();
                let _ = result.signature();
            }
            let _ = encode_ipa_message(&read.message, Sgp32Version::V1_0);
            let _ = encode_ipa_message(&read.message, Sgp32Version::V1_2);
        }
        if let Ok(read) = read_eim_message(data, expected) {
            let _ = encode_eim_message(&read.message, Sgp32Version::V1_0);
            let again = encode_eim_message(&read.message, Sgp32Version::V1_2)
                .expect("a v1.2 value read from the wire encodes as v1.2");
            let back = read_eim_message(&again, Some(Sgp32Version::V1_2))
                .expect("its encoding reads again");
            assert_eq!(back.message, read.message);
        }
    }
    let _ = euicc_package_request(data);
    let _ = euicc_package_result(data);
});
