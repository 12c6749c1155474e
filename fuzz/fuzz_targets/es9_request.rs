//! ES9+ requests as the SM-DP+ receives them (RemoteProfileProvisioningRequest).
#![no_main]

mod common;

use ferrosim_asn1::rsp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::decode_round_trip::<rsp::RemoteProfileProvisioningRequest>(data);
    common::decode_round_trip::<rsp::AuthenticateClientRequest>(data);
    common::decode_round_trip::<rsp::GetBoundProfilePackageRequest>(data);
    common::decode_round_trip::<rsp::HandleNotification>(data);
    common::decode_round_trip::<rsp::PendingNotification>(data);
});
