//! ProfileInstallationResult (BF37) and its signed BF27 part.
#![no_main]

mod common;

use ferrosim_asn1::{rsp, signed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::decode_round_trip::<rsp::ProfileInstallationResult>(data);
    if let Ok(part) = signed::profile_installation_result(data) {
        assert_eq!(part.signature.len(), signed::SIGNATURE_LEN);
    }
});
