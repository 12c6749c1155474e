//! Every RSP message type survives DER encode -> decode -> encode, and its
//! decoder refuses truncated input and never panics on damaged input.
//!
//! Values come from `support` (random values of every generated type, with
//! SIZE and value constraints honoured).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use ferrosim_asn1::{decode_der, encode_der, rsp, sgp32, sgp32_v1_0};
use proptest::prelude::*;
use support::{Gen, Rng, TypeVisitor, strategy};

/// Checks the round trip of one value and the refusal of all its strict
/// prefixes; returns the encoding.
fn check_round_trip<T>(value: &T) -> Result<Vec<u8>, TestCaseError>
where
    T: rasn::Encode + rasn::Decode + PartialEq + std::fmt::Debug,
{
    let der = encode_der(value).map_err(|e| TestCaseError::fail(format!("encode: {e}")))?;
    let back: T = decode_der(&der)
        .map_err(|e| TestCaseError::fail(format!("decode of {}: {e}", hex::encode(&der))))?;
    prop_assert_eq!(&back, value);
    prop_assert_eq!(encode_der(&back).unwrap(), der.clone());
    for len in 0..der.len() {
        prop_assert!(
            decode_der::<T>(&der[..len]).is_err(),
            "prefix of {} bytes of {} decoded",
            len,
            hex::encode(&der)
        );
    }
    Ok(der)
}

/// Damaged encodings (one byte changed, or bytes appended) decode to an error
/// or to some value, but never panic; appended bytes are always refused.
fn check_damaged<T>(der: &[u8], at: usize, byte: u8) -> Result<(), TestCaseError>
where
    T: rasn::Encode + rasn::Decode + PartialEq + std::fmt::Debug,
{
    if !der.is_empty() {
        let mut flipped = der.to_vec();
        let i = at % flipped.len();
        flipped[i] ^= byte | 1;
        if let Ok(v) = decode_der::<T>(&flipped) {
            // Whatever decoded must encode again.
            let _ = encode_der(&v);
        }
    }
    let mut longer = der.to_vec();
    longer.push(byte);
    prop_assert!(decode_der::<T>(&longer).is_err());
    Ok(())
}

macro_rules! message_round_trips {
    ($($name:ident: $ty:ty),* $(,)?) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(48))]
            $(
                #[test]
                fn $name(value in strategy::<$ty>(), at in any::<usize>(), byte in any::<u8>(),
                         noise in proptest::collection::vec(any::<u8>(), 0..64)) {
                    let der = check_round_trip(&value)?;
                    check_damaged::<$ty>(&der, at, byte)?;
                    // Random bytes, raw and behind the type's own first byte.
                    let _ = decode_der::<$ty>(&noise);
                    let mut tagged = der[..der.len().min(3)].to_vec();
                    tagged.extend_from_slice(&noise);
                    let _ = decode_der::<$ty>(&tagged);
                }
            )*
        }
    };
}

// ES9+ (LPA <-> SM-DP+) and ES11 (LPA <-> SM-DS), with their CHOICE wrappers.
message_round_trips! {
    es9_remote_profile_provisioning_request: rsp::RemoteProfileProvisioningRequest,
    es9_remote_profile_provisioning_response: rsp::RemoteProfileProvisioningResponse,
    es9_initiate_authentication_request: rsp::InitiateAuthenticationRequest,
    es9_initiate_authentication_response: rsp::InitiateAuthenticationResponse,
    es9_authenticate_client_request: rsp::AuthenticateClientRequest,
    es9_authenticate_client_response: rsp::AuthenticateClientResponseEs9,
    es11_authenticate_client_response: rsp::AuthenticateClientResponseEs11,
    es9_get_bound_profile_package_request: rsp::GetBoundProfilePackageRequest,
    es9_get_bound_profile_package_response: rsp::GetBoundProfilePackageResponse,
    es9_handle_notification: rsp::HandleNotification,
    es9_cancel_session_request: rsp::CancelSessionRequestEs9,
    es9_cancel_session_response: rsp::CancelSessionResponseEs9,
}

// ES8+ (SM-DP+ -> eUICC, inside the BPP).
message_round_trips! {
    es8_bound_profile_package: rsp::BoundProfilePackage,
    es8_initialise_secure_channel: rsp::InitialiseSecureChannelRequest,
    es8_configure_isdp: rsp::ConfigureISDPRequest,
    es8_store_metadata: rsp::StoreMetadataRequest,
    es8_update_metadata: rsp::UpdateMetadataRequest,
    es8_replace_session_keys: rsp::ReplaceSessionKeysRequest,
    es8_profile_installation_result: rsp::ProfileInstallationResult,
}

// ES10a/b/c (LPA -> eUICC).
message_round_trips! {
    es10a_get_euicc_configured_addresses: rsp::EuiccConfiguredAddressesRequest,
    es10a_euicc_configured_addresses: rsp::EuiccConfiguredAddressesResponse,
    es10a_set_default_dp_address_request: rsp::SetDefaultDpAddressRequest,
    es10a_set_default_dp_address_response: rsp::SetDefaultDpAddressResponse,
    es10b_prepare_download_request: rsp::PrepareDownloadRequest,
    es10b_prepare_download_response: rsp::PrepareDownloadResponse,
    es10b_get_euicc_challenge_request: rsp::GetEuiccChallengeRequest,
    es10b_get_euicc_challenge_response: rsp::GetEuiccChallengeResponse,
    es10b_get_euicc_info1_request: rsp::GetEuiccInfo1Request,
    es10b_euicc_info1: rsp::EUICCInfo1,
    es10b_get_euicc_info2_request: rsp::GetEuiccInfo2Request,
    es10b_euicc_info2: rsp::EUICCInfo2,
    es10b_list_notification_request: rsp::ListNotificationRequest,
    es10b_list_notification_response: rsp::ListNotificationResponse,
    es10b_retrieve_notifications_request: rsp::RetrieveNotificationsListRequest,
    es10b_retrieve_notifications_response: rsp::RetrieveNotificationsListResponse,
    es10b_notification_sent_request: rsp::NotificationSentRequest,
    es10b_notification_sent_response: rsp::NotificationSentResponse,
    es10b_load_crl_request: rsp::LoadCRLRequest,
    es10b_load_crl_response: rsp::LoadCRLResponse,
    es10b_authenticate_server_request: rsp::AuthenticateServerRequest,
    es10b_authenticate_server_response: rsp::AuthenticateServerResponse,
    es10b_cancel_session_request: rsp::CancelSessionRequest,
    es10b_cancel_session_response: rsp::CancelSessionResponse,
    es10b_get_rat_request: rsp::GetRatRequest,
    es10b_get_rat_response: rsp::GetRatResponse,
    es10b_lpae_activation_request: rsp::LpaeActivationRequest,
    es10b_lpae_activation_response: rsp::LpaeActivationResponse,
    es10c_profile_info_list_request: rsp::ProfileInfoListRequest,
    es10c_profile_info_list_response: rsp::ProfileInfoListResponse,
    es10c_enable_profile_request: rsp::EnableProfileRequest,
    es10c_enable_profile_response: rsp::EnableProfileResponse,
    es10c_disable_profile_request: rsp::DisableProfileRequest,
    es10c_disable_profile_response: rsp::DisableProfileResponse,
    es10c_delete_profile_request: rsp::DeleteProfileRequest,
    es10c_delete_profile_response: rsp::DeleteProfileResponse,
    es10c_euicc_memory_reset_request: rsp::EuiccMemoryResetRequest,
    es10c_euicc_memory_reset_response: rsp::EuiccMemoryResetResponse,
    es10c_get_euicc_data_request: rsp::GetEuiccDataRequest,
    es10c_get_euicc_data_response: rsp::GetEuiccDataResponse,
    es10c_set_nickname_request: rsp::SetNicknameRequest,
    es10c_set_nickname_response: rsp::SetNicknameResponse,
    pending_notification: rsp::PendingNotification,
}

// SGP.32 v1.2: every ESipa message (both CHOICEs and each alternative's
// type), every eUICC package type (PSMOs, eCOs, results), and the IoT ES10
// functions.
message_round_trips! {
    esipa_message_from_ipa_to_eim: sgp32::EsipaMessageFromIpaToEim,
    esipa_message_from_eim_to_ipa: sgp32::EsipaMessageFromEimToIpa,
    esipa_initiate_authentication_request: sgp32::InitiateAuthenticationRequestEsipa,
    esipa_initiate_authentication_response: sgp32::InitiateAuthenticationResponseEsipa,
    esipa_authenticate_client_request: sgp32::AuthenticateClientRequestEsipa,
    esipa_authenticate_client_response: sgp32::AuthenticateClientResponseEsipa,
    esipa_get_bound_profile_package_request: sgp32::GetBoundProfilePackageRequestEsipa,
    esipa_get_bound_profile_package_response: sgp32::GetBoundProfilePackageResponseEsipa,
    esipa_handle_notification: sgp32::HandleNotificationEsipa,
    esipa_cancel_session_request: sgp32::CancelSessionRequestEsipa,
    esipa_cancel_session_response: sgp32::CancelSessionResponseEsipa,
    esipa_get_eim_package_request: sgp32::GetEimPackageRequest,
    esipa_get_eim_package_response: sgp32::GetEimPackageResponse,
    esipa_provide_eim_package_result: sgp32::ProvideEimPackageResult,
    esipa_eim_package_result: sgp32::EimPackageResult,
    esipa_provide_eim_package_result_response: sgp32::ProvideEimPackageResultResponse,
    esipa_transfer_eim_package_request: sgp32::TransferEimPackageRequest,
    esipa_transfer_eim_package_response: sgp32::TransferEimPackageResponse,
    euicc_package_request: sgp32::EuiccPackageRequest,
    euicc_package_signed: sgp32::EuiccPackageSigned,
    euicc_package: sgp32::EuiccPackage,
    psmo: sgp32::Psmo,
    psmo_enable: sgp32::PsmoEnable,
    psmo_disable: sgp32::PsmoDisable,
    psmo_delete: sgp32::PsmoDelete,
    psmo_get_rat: sgp32::PsmoGetRAT,
    psmo_configure_immediate_enable: sgp32::PsmoConfigureImmediateEnable,
    psmo_set_fallback_attribute: sgp32::PsmoSetFallbackAttribute,
    psmo_unset_fallback_attribute: sgp32::PsmoUnsetFallbackAttribute,
    psmo_set_default_dp_address: sgp32::SetDefaultDpAddressRequest,
    eco: sgp32::Eco,
    eco_delete_eim: sgp32::EcoDeleteEim,
    eco_list_eim: sgp32::EcoListEim,
    eim_configuration_data: sgp32::EimConfigurationData,
    euicc_package_result: sgp32::EuiccPackageResult,
    euicc_package_result_signed: sgp32::EuiccPackageResultSigned,
    euicc_package_result_data_signed: sgp32::EuiccPackageResultDataSigned,
    euicc_result_data: sgp32::EuiccResultData,
    euicc_package_error_signed: sgp32::EuiccPackageErrorSigned,
    euicc_package_error_data_signed: sgp32::EuiccPackageErrorDataSigned,
    euicc_package_error_unsigned: sgp32::EuiccPackageErrorUnsigned,
    euicc_package_result_list: sgp32::EuiccPackageResultList,
    add_eim_result: sgp32::AddEimResult,
    list_eim_result: sgp32::ListEimResult,
    profile_info_list_response: sgp32::ProfileInfoListResponse,
    ipa_euicc_data_request: sgp32::IpaEuiccDataRequest,
    ipa_euicc_data_response: sgp32::IpaEuiccDataResponse,
    profile_download_trigger_request: sgp32::ProfileDownloadTriggerRequest,
    profile_download_trigger_result: sgp32::ProfileDownloadTriggerResult,
    eim_acknowledgements: sgp32::EimAcknowledgements,
    add_initial_eim_request: sgp32::AddInitialEimRequest,
    add_initial_eim_response: sgp32::AddInitialEimResponse,
    get_eim_configuration_data_request: sgp32::GetEimConfigurationDataRequest,
    get_eim_configuration_data_response: sgp32::GetEimConfigurationDataResponse,
    get_certs_request: sgp32::GetCertsRequest,
    get_certs_response: sgp32::GetCertsResponse,
    immediate_enable_request: sgp32::ImmediateEnableRequest,
    immediate_enable_response: sgp32::ImmediateEnableResponse,
    configure_immediate_enabling_request: sgp32::ConfigureImmediateProfileEnablingRequest,
    configure_immediate_enabling_response: sgp32::ConfigureImmediateProfileEnablingResponse,
    profile_rollback_request: sgp32::ProfileRollbackRequest,
    profile_rollback_response: sgp32::ProfileRollbackResponse,
    execute_fallback_request: sgp32::ExecuteFallbackMechanismRequest,
    execute_fallback_response: sgp32::ExecuteFallbackMechanismResponse,
    return_from_fallback_request: sgp32::ReturnFromFallbackRequest,
    return_from_fallback_response: sgp32::ReturnFromFallbackResponse,
    euicc_memory_reset_request: sgp32::EuiccMemoryResetRequest,
    euicc_memory_reset_response: sgp32::EuiccMemoryResetResponse,
    sgp32_euicc_info2: sgp32::EUICCInfo2,
    sgp32_profile_info: sgp32::ProfileInfo,
    sgp32_pending_notification: sgp32::PendingNotification,
    sgp32_retrieve_notifications_request: sgp32::RetrieveNotificationsListRequest,
    sgp32_retrieve_notifications_response: sgp32::RetrieveNotificationsListResponse,
}

// SGP.32 v1.0: the same messages as v1.0 peers put them on the wire.
message_round_trips! {
    v1_0_esipa_message_from_ipa_to_eim: sgp32_v1_0::EsipaMessageFromIpaToEim,
    v1_0_esipa_message_from_eim_to_ipa: sgp32_v1_0::EsipaMessageFromEimToIpa,
    v1_0_esipa_get_eim_package_request: sgp32_v1_0::GetEimPackageRequest,
    v1_0_esipa_get_eim_package_response: sgp32_v1_0::GetEimPackageResponse,
    v1_0_esipa_provide_eim_package_result: sgp32_v1_0::ProvideEimPackageResult,
    v1_0_esipa_provide_eim_package_result_response: sgp32_v1_0::ProvideEimPackageResultResponse,
    v1_0_esipa_handle_notification: sgp32_v1_0::HandleNotificationEsipa,
    v1_0_esipa_transfer_eim_package_request: sgp32_v1_0::TransferEimPackageRequest,
    v1_0_esipa_transfer_eim_package_response: sgp32_v1_0::TransferEimPackageResponse,
    v1_0_euicc_package_request: sgp32_v1_0::EuiccPackageRequest,
    v1_0_euicc_package_result: sgp32_v1_0::EuiccPackageResult,
    v1_0_euicc_package_signed: sgp32_v1_0::EuiccPackageSigned,
    v1_0_ipa_euicc_data_request: sgp32_v1_0::IpaEuiccDataRequest,
    v1_0_ipa_euicc_data_response: sgp32_v1_0::IpaEuiccDataResponse,
    v1_0_profile_download_trigger_result: sgp32_v1_0::ProfileDownloadTriggerResult,
    v1_0_add_initial_eim_request: sgp32_v1_0::AddInitialEimRequest,
    v1_0_configure_auto_profile_enabling_request: sgp32_v1_0::ConfigureAutoProfileEnablingRequest,
    v1_0_enable_using_dd_request: sgp32_v1_0::EnableUsingDDRequest,
    v1_0_sgp32_euicc_info2: sgp32_v1_0::SGP32EUICCInfo2,
    v1_0_retrieve_notifications_response: sgp32_v1_0::SGP32RetrieveNotificationsListResponse,
}

/// Every generated type (PKIX, SAIP, SGP.22, SGP.32, including the inner and
/// anonymous ones), a few seeds each.
#[test]
fn every_generated_type_round_trips() {
    struct RoundTrip {
        seeds: u64,
        checked: usize,
        failures: Vec<String>,
    }
    impl TypeVisitor for RoundTrip {
        fn visit<T>(&mut self, name: &str)
        where
            T: Gen + rasn::Encode + rasn::Decode + PartialEq + std::fmt::Debug,
        {
            for seed in 0..self.seeds {
                let value = T::generate(&mut Rng::new(seed), 0);
                if let Err(e) = check_round_trip(&value) {
                    self.failures.push(format!("{name} (seed {seed}): {e}"));
                    return;
                }
            }
            self.checked += 1;
        }
    }
    let mut v = RoundTrip {
        seeds: 12,
        checked: 0,
        failures: Vec::new(),
    };
    support::visit_all_types(&mut v);
    assert!(v.failures.is_empty(), "{}", v.failures.join("\n"));
    assert!(v.checked > 400, "only {} types checked", v.checked);
}
