//! ES9+ and ES2+ JSON bodies (with ferrosim's `revokeProfile`) as the SM-DP+ (and the LPA, for answers) parse
//! them: any bytes must give a value or an error, never a panic, and a parsed
//! value must serialise again.
#![no_main]

use ferrosim_asn1::json::{HeaderOnly, es2, es9};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;

fn body<T: DeserializeOwned + serde::Serialize>(data: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<T>(data) {
        let _ = serde_json::to_vec(&v).expect("a parsed body serialises");
    }
}

fuzz_target!(|data: &[u8]| {
    body::<es9::InitiateAuthenticationRequest>(data);
    body::<es9::AuthenticateClientRequest>(data);
    body::<es9::GetBoundProfilePackageRequest>(data);
    body::<es9::HandleNotificationRequest>(data);
    body::<es9::CancelSessionRequest>(data);
    body::<es9::InitiateAuthenticationResponse>(data);
    body::<es9::AuthenticateClientResponse>(data);
    body::<es9::GetBoundProfilePackageResponse>(data);
    body::<es2::DownloadOrderRequest>(data);
    body::<es2::ConfirmOrderRequest>(data);
    body::<es2::CancelOrderRequest>(data);
    body::<es2::ReleaseProfileRequest>(data);
    body::<es2::HandleDownloadProgressInfoRequest>(data);
    body::<ferrosim_smdp::end_of_life::RevokeProfileRequest>(data);
    body::<ferrosim_smdp::end_of_life::RevokeProfileResponse>(data);
    body::<HeaderOnly>(data);
});
