//! SGP.32 ESipa messages in both directions and eUICC packages.
#![no_main]

mod common;

use ferrosim_asn1::sgp32;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::decode_round_trip::<sgp32::EsipaMessageFromIpaToEim>(data);
    common::decode_round_trip::<sgp32::EsipaMessageFromEimToIpa>(data);
    common::decode_round_trip::<sgp32::EuiccPackageRequest>(data);
    common::decode_round_trip::<sgp32::EuiccPackageResult>(data);
});
