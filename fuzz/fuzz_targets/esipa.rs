//! SGP.32 ESipa messages in both directions and eUICC packages, as the typed
//! decoders of both versions read them.
#![no_main]

mod common;

use ferrosim_asn1::{sgp32, sgp32_v1_0};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::decode_round_trip::<sgp32::EsipaMessageFromIpaToEim>(data);
    common::decode_round_trip::<sgp32::EsipaMessageFromEimToIpa>(data);
    common::decode_round_trip::<sgp32::EuiccPackageRequest>(data);
    common::decode_round_trip::<sgp32::EuiccPackageResult>(data);
    common::decode_round_trip::<sgp32_v1_0::EsipaMessageFromIpaToEim>(data);
    common::decode_round_trip::<sgp32_v1_0::EsipaMessageFromEimToIpa>(data);
    common::decode_round_trip::<sgp32_v1_0::EuiccPackageResult>(data);
});
