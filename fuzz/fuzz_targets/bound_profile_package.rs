//! BoundProfilePackage (BF36) and the ES8+ commands inside it.
#![no_main]

mod common;

use ferrosim_asn1::rsp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::decode_round_trip::<rsp::BoundProfilePackage>(data);
    common::decode_round_trip::<rsp::StoreMetadataRequest>(data);
    common::decode_round_trip::<rsp::ReplaceSessionKeysRequest>(data);
});
