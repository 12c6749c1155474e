//! ESipa JSON binding request bodies: each function's body becomes an ASN.1
//! message or a typed error, and the message is read like an ASN.1-binding
//! body.
#![no_main]

use ferrosim_asn1::esipa::read_ipa_message;
use ferrosim_asn1::json::esipa::{Function, request_to_der};
use libfuzzer_sys::fuzz_target;

const FUNCTIONS: [Function; 7] = [
    Function::InitiateAuthentication,
    Function::AuthenticateClient,
    Function::GetBoundProfilePackage,
    Function::CancelSession,
    Function::HandleNotification,
    Function::GetEimPackage,
    Function::ProvideEimPackageResult,
];

fuzz_target!(|data: &[u8]| {
    for function in FUNCTIONS {
        if let Ok(der) = request_to_der(function, data) {
            let _ = read_ipa_message(&der, None);
        }
    }
});
