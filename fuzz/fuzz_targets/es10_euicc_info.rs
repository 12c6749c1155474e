//! EUICCInfo1 (BF20) and EUICCInfo2 (BF22, SGP.22 and SGP.32 forms).
#![no_main]

mod common;

use ferrosim_asn1::{rsp, sgp32};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::decode_round_trip::<rsp::EUICCInfo1>(data);
    common::decode_round_trip::<rsp::EUICCInfo2>(data);
    common::decode_round_trip::<sgp32::EUICCInfo2>(data);
});
