//! The eIM's own reading of ESipa bodies: the relay's parse of indirect
//! download steps (transaction ids, the eUICC's answers cut from the
//! received bytes, notification addresses), the error answer chosen for an
//! unreadable message (always well-formed), and the ES9+ requests a parsed
//! step becomes.
#![no_main]

use ferrosim_asn1::esipa::read_eim_message;
use ferrosim_eim::EsipaReply;
use ferrosim_eim::relay::{Parsed, parse, step_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(Parsed::Step {
        function,
        transaction_id,
        euicc_answer,
    })) = parse(data)
    {
        let _ = step_request(function, transaction_id, euicc_answer);
    }
    if let Ok(ferrosim_eim::EsipaAnswer::Message { der, version }) =
        EsipaReply::error_for(data).into_asn1()
    {
        assert!(
            read_eim_message(&der, Some(version)).is_ok(),
            "an error answer is well-formed"
        );
    }
});
