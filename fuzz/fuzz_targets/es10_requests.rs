//! ES10b requests as the eUICC receives them, and their signed parts.
#![no_main]

mod common;

use ferrosim_asn1::{rsp, signed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::decode_round_trip::<rsp::AuthenticateServerRequest>(data);
    common::decode_round_trip::<rsp::PrepareDownloadRequest>(data);
    common::decode_round_trip::<rsp::ProfileInfoListRequest>(data);
    common::decode_round_trip::<rsp::CancelSessionRequest>(data);
    let _ = signed::server_signed1(data);
    let _ = signed::smdp_signed2(data);
});
