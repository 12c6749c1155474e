//! What the IPA reads from the network and from a modem: the eIM's answers
//! in both ESipa bindings, the relayed ES9+ answers of an indirect
//! download, IpaEuiccDataRequests, a modem's AT answers, and the state file.
//! None may panic; a package the ASN.1 reader hands out is exactly one
//! `BF51` element cut from the input.
#![no_main]

use ferrosim_ipa::esipa::{EimReply, reply_from_asn1, reply_from_json};
use ferrosim_ipa::modem::at::{AnswerReader, channel_of, response_of};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for function in ["getEimPackage", "provideEimPackageResult"] {
        if let Ok(EimReply::Package(p)) = reply_from_asn1(function, 200, data) {
            assert_eq!(&p[..2], &[0xBF, 0x51]);
            assert!(data.windows(p.len()).any(|w| w == p.as_slice()));
        }
        let _ = reply_from_json(function, 200, data);
    }
    let request = ferrosim_lpa::es9::Es9Request::CancelSession(
        ferrosim_asn1::json::es9::CancelSessionRequest {
            transaction_id: "01".into(),
            cancel_session_response: ferrosim_asn1::json::Base64(vec![0xBF, 0x41, 0x00]),
        },
    );
    let _ = ferrosim_ipa::relay::response_from_der(&request, 200, data);
    let _ = ferrosim_ipa::data::DataPlan::new(data);
    let _ = ferrosim_ipa::PendingState::from_json(data);
    for command in ["AT+CGLA=1,4,\"0000\"\r", "AT+CCHO=\"A0\"\r"] {
        if let Ok(Some(answer)) = AnswerReader::new().feed(command, data) {
            let _ = response_of(command, &answer);
            let _ = channel_of(command, &answer);
        }
    }
});
