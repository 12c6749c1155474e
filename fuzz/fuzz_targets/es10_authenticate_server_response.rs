//! AuthenticateServerResponse (BF38) and its signed part.
#![no_main]

mod common;

use ferrosim_asn1::{rsp, signed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::decode_round_trip::<rsp::AuthenticateServerResponse>(data);
    if let Ok(part) = signed::euicc_signed1(data) {
        assert_eq!(part.signature.len(), signed::SIGNATURE_LEN);
    }
});
