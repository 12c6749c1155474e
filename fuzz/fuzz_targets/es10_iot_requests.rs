//! The SGP.32 IoT ES10b requests the virtual eUICC decodes (AddInitialEim
//! `BF57`, GetEimConfigurationData `BF55`, GetCerts `BF56`, ProfileRollback
//! `BF58`, ImmediateEnable `BF5A`, ExecuteFallbackMechanism `BF5D`,
//! ReturnFromFallback `BF5E`, the IoT EuiccMemoryReset `BF64`) in both
//! versions' types, and the v1.0 requests a v1.0 IPA sends.
#![no_main]

mod common;

use ferrosim_asn1::{sgp32, sgp32_v1_0};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::decode_round_trip::<sgp32::AddInitialEimRequest>(data);
    common::decode_round_trip::<sgp32::GetEimConfigurationDataRequest>(data);
    common::decode_round_trip::<sgp32::GetCertsRequest>(data);
    common::decode_round_trip::<sgp32::ProfileRollbackRequest>(data);
    common::decode_round_trip::<sgp32::ImmediateEnableRequest>(data);
    common::decode_round_trip::<sgp32::ExecuteFallbackMechanismRequest>(data);
    common::decode_round_trip::<sgp32::ReturnFromFallbackRequest>(data);
    common::decode_round_trip::<sgp32::EuiccMemoryResetRequest>(data);
    common::decode_round_trip::<sgp32_v1_0::AddInitialEimRequest>(data);
    common::decode_round_trip::<sgp32_v1_0::GetEimConfigurationDataRequest>(data);
    common::decode_round_trip::<sgp32_v1_0::GetCertsRequest>(data);
    common::decode_round_trip::<sgp32_v1_0::ProfileRollbackRequest>(data);
});
