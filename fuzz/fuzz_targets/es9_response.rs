//! ES9+ responses as the LPA receives them (RemoteProfileProvisioningResponse).
#![no_main]

mod common;

use ferrosim_asn1::rsp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::decode_round_trip::<rsp::RemoteProfileProvisioningResponse>(data);
    common::decode_round_trip::<rsp::InitiateAuthenticationResponse>(data);
    common::decode_round_trip::<rsp::AuthenticateClientResponseEs9>(data);
    common::decode_round_trip::<rsp::GetBoundProfilePackageResponse>(data);
});
