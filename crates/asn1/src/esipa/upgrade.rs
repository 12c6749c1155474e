//! SGP.32 v1.0 values → v1.2 values.
//!
//! Types whose wire form did not change are converted by encoding the v1.0
//! value and decoding the bytes as the v1.2 type ([`recode`]); the others
//! field by field. Every v1.0 value has a v1.2 form (the v1.2 limit of
//! `eimId` to 1..128 characters is not enforced by the generated types, as
//! rasn-compiler drops SIZE constraints on UTF8String; the eIM compares the
//! eimId with its own anyway).

use crate::rasn::types::Integer;
use crate::{Error, sgp32 as new, sgp32_v1_0 as old};

use super::recode;

/// `EsipaMessageFromIpaToEim`.
pub(super) fn ipa_message(
    message: old::EsipaMessageFromIpaToEim,
) -> Result<new::EsipaMessageFromIpaToEim, Error> {
    use new::EsipaMessageFromIpaToEim as N;
    use old::EsipaMessageFromIpaToEim as O;
    Ok(match message {
        O::initiateAuthenticationRequestEsipa(x) => {
            N::initiateAuthenticationRequestEsipa(recode(&x)?)
        }
        O::authenticateClientRequestEsipa(x) => N::authenticateClientRequestEsipa(recode(&x)?),
        O::getBoundProfilePackageRequestEsipa(x) => {
            N::getBoundProfilePackageRequestEsipa(recode(&x)?)
        }
        O::cancelSessionRequestEsipa(x) => N::cancelSessionRequestEsipa(recode(&x)?),
        O::handleNotificationEsipa(x) => N::handleNotificationEsipa(match x {
            old::HandleNotificationEsipa::pendingNotification(p) => {
                new::HandleNotificationEsipa::pendingNotification(recode(&p)?)
            }
            old::HandleNotificationEsipa::provideEimPackageResult(p) => {
                new::HandleNotificationEsipa::provideEimPackageResult(provide_result(p)?)
            }
        }),
        O::transferEimPackageResponse(x) => N::transferEimPackageResponse(transfer_response(x)?),
        O::getEimPackageRequest(x) => N::getEimPackageRequest(new::GetEimPackageRequest::new(
            x.eid_value,
            x.notify_state_change,
            None,
            x.r_plmn,
        )),
        O::provideEimPackageResult(x) => N::provideEimPackageResult(provide_result(x)?),
    })
}

/// `EsipaMessageFromEimToIpa`.
pub(super) fn eim_message(
    message: old::EsipaMessageFromEimToIpa,
) -> Result<new::EsipaMessageFromEimToIpa, Error> {
    use new::EsipaMessageFromEimToIpa as N;
    use old::EsipaMessageFromEimToIpa as O;
    Ok(match message {
        O::initiateAuthenticationResponseEsipa(x) => {
            N::initiateAuthenticationResponseEsipa(recode(&x)?)
        }
        O::authenticateClientResponseEsipa(x) => N::authenticateClientResponseEsipa(recode(&x)?),
        O::getBoundProfilePackageResponseEsipa(x) => {
            N::getBoundProfilePackageResponseEsipa(recode(&x)?)
        }
        O::cancelSessionResponseEsipa(x) => N::cancelSessionResponseEsipa(recode(&x)?),
        O::transferEimPackageRequest(x) => N::transferEimPackageRequest(match x {
            old::TransferEimPackageRequest::euiccPackageRequest(r) => {
                new::TransferEimPackageRequest::euiccPackageRequest(recode(&r)?)
            }
            old::TransferEimPackageRequest::ipaEuiccDataRequest(r) => {
                new::TransferEimPackageRequest::ipaEuiccDataRequest(data_request(r))
            }
            old::TransferEimPackageRequest::eimAcknowledgements(a) => {
                new::TransferEimPackageRequest::eimAcknowledgements(recode(&a)?)
            }
            old::TransferEimPackageRequest::profileDownloadTriggerRequest(t) => {
                new::TransferEimPackageRequest::profileDownloadTriggerRequest(recode(&t)?)
            }
        }),
        O::getEimPackageResponse(x) => N::getEimPackageResponse(match x {
            old::GetEimPackageResponse::euiccPackageRequest(r) => {
                new::GetEimPackageResponse::euiccPackageRequest(recode(&r)?)
            }
            old::GetEimPackageResponse::ipaEuiccDataRequest(r) => {
                new::GetEimPackageResponse::ipaEuiccDataRequest(data_request(r))
            }
            old::GetEimPackageResponse::profileDownloadTriggerRequest(t) => {
                new::GetEimPackageResponse::profileDownloadTriggerRequest(recode(&t)?)
            }
            old::GetEimPackageResponse::eimPackageError(code) => {
                new::GetEimPackageResponse::eimPackageError(code)
            }
        }),
        O::provideEimPackageResultResponse(x) => {
            N::provideEimPackageResultResponse(match x.eim_acknowledgements {
                Some(acks) => {
                    new::ProvideEimPackageResultResponse::eimAcknowledgements(recode(&acks)?)
                }
                None => new::ProvideEimPackageResultResponse::emptyResponse(
                    new::ProvideEimPackageResultResponseEmptyResponse::new(),
                ),
            })
        }
    })
}

/// One eUICC package result (v1.0 `EuiccPackageResult` → v1.2).
pub(super) fn package_result(
    result: old::EuiccPackageResult,
) -> Result<new::EuiccPackageResult, Error> {
    Ok(match result {
        old::EuiccPackageResult::euiccPackageResultSigned(signed) => {
            let data = signed.euicc_package_result_data_signed;
            let results = data
                .euicc_result
                .into_iter()
                .map(result_data)
                .collect::<Result<Vec<_>, Error>>()?;
            new::EuiccPackageResult::euiccPackageResultSigned(new::EuiccPackageResultSigned::new(
                new::EuiccPackageResultDataSigned::new(
                    data.eim_id,
                    data.counter_value,
                    data.transaction_id,
                    data.seq_number,
                    results,
                ),
                signed.euicc_sign_epr,
            ))
        }
        old::EuiccPackageResult::euiccPackageErrorSigned(error) => {
            new::EuiccPackageResult::euiccPackageErrorSigned(recode(&error)?)
        }
        old::EuiccPackageResult::euiccPackageErrorUnsigned(error) => {
            new::EuiccPackageResult::euiccPackageErrorUnsigned(new::EuiccPackageErrorUnsigned::new(
                error.eim_id,
                None,
                error.association_token,
                None,
            ))
        }
    })
}

/// `ProvideEimPackageResult`: a CHOICE in v1.0, a SEQUENCE (optional EID and
/// an `EimPackageResult` CHOICE) in v1.2.
fn provide_result(
    result: old::ProvideEimPackageResult,
) -> Result<new::ProvideEimPackageResult, Error> {
    use new::EimPackageResult as N;
    use old::ProvideEimPackageResult as O;
    let result = match result {
        O::euiccPackageResult(r) => N::euiccPackageResult(package_result(r)?),
        O::ePRAndNotifications(e) => {
            N::ePRAndNotifications(new::EimPackageResultEPRAndNotifications::new(
                package_result(e.euicc_package_result)?,
                notifications(&e.notification_list)?
                    .unwrap_or_else(|| new::PendingNotificationList(vec![])),
            ))
        }
        O::ipaEuiccDataResponse(d) => N::ipaEuiccDataResponse(ipa_euicc_data_response(d)?),
        O::profileDownloadTriggerResult(t) => N::profileDownloadTriggerResult(download_result(t)?),
        O::eimPackageError(code) => N::eimPackageResultResponseError(
            new::EimPackageResultResponseError::new(None, new::EimPackageResultErrorCode(code)),
        ),
    };
    Ok(new::ProvideEimPackageResult::new(None, result))
}

fn transfer_response(
    response: old::TransferEimPackageResponse,
) -> Result<new::TransferEimPackageResponse, Error> {
    use new::TransferEimPackageResponse as N;
    use old::TransferEimPackageResponse as O;
    Ok(match response {
        O::euiccPackageResult(r) => N::euiccPackageResult(package_result(r)?),
        O::ePRAndNotifications(e) => {
            N::ePRAndNotifications(new::TransferEimPackageResponseEPRAndNotifications::new(
                package_result(e.euicc_package_result)?,
                notifications(&e.notification_list)?
                    .unwrap_or_else(|| new::PendingNotificationList(vec![])),
            ))
        }
        O::ipaEuiccDataResponse(d) => N::ipaEuiccDataResponse(ipa_euicc_data_response(d)?),
        O::eimPackageReceived(()) => N::eimPackageReceived(()),
        O::eimPackageError(code) => N::eimPackageError(code),
    })
}

/// `EimIdInfo.eimIdType` moved from `[4]` to `[2]`; the rest recodes.
fn result_data(data: old::EuiccResultData) -> Result<new::EuiccResultData, Error> {
    match data {
        old::EuiccResultData::listEimResult(old::ListEimResult::eimIdList(list)) => {
            let list = list
                .into_iter()
                .map(|info| {
                    Ok(new::EimIdInfo::new(
                        info.eim_id,
                        info.eim_id_type.map(|t| new::EimIdType(t.0)),
                    ))
                })
                .collect::<Result<Vec<_>, Error>>()?;
            Ok(new::EuiccResultData::listEimResult(
                new::ListEimResult::eimIdList(list),
            ))
        }
        other => recode(&other),
    }
}

/// The notifications of a v1.0 `SGP32-RetrieveNotificationsListResponse`
/// (`None` when it carries none, only results or an error).
fn notifications(
    list: &old::SGP32RetrieveNotificationsListResponse,
) -> Result<Option<new::PendingNotificationList>, Error> {
    use old::SGP32RetrieveNotificationsListResponse as L;
    let pending = match list {
        L::notificationList(n) => n,
        L::notificationAndEprList(both) => &both.notification_list,
        L::notificationsListResultError(_) | L::euiccPackageResultList(_) => return Ok(None),
    };
    let converted = pending
        .iter()
        .map(recode)
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(Some(new::PendingNotificationList(converted)))
}

/// The package results of a v1.0 `SGP32-RetrieveNotificationsListResponse`.
fn results_in(
    list: &old::SGP32RetrieveNotificationsListResponse,
) -> Result<Vec<new::EuiccPackageResult>, Error> {
    use old::SGP32RetrieveNotificationsListResponse as L;
    let results = match list {
        L::euiccPackageResultList(r) => r,
        L::notificationAndEprList(both) => &both.euicc_package_result_list,
        L::notificationList(_) | L::notificationsListResultError(_) => return Ok(Vec::new()),
    };
    results.iter().cloned().map(package_result).collect()
}

fn ipa_euicc_data_response(
    response: old::IpaEuiccDataResponse,
) -> Result<new::IpaEuiccDataResponse, Error> {
    Ok(match response {
        old::IpaEuiccDataResponse::ipaEuiccData(d) => {
            let (pending, results) = match &d.notifications_list {
                Some(list) => (notifications(list)?, results_in(list)?),
                None => (None, Vec::new()),
            };
            let results = (!results.is_empty()).then_some(new::EuiccPackageResultList(results));
            new::IpaEuiccDataResponse::ipaEuiccData(new::IpaEuiccData::new(
                pending,
                d.default_smdp_address,
                results,
                d.euicc_info1,
                d.euicc_info2.as_ref().map(recode).transpose()?,
                d.root_smds_address,
                d.association_token,
                d.eum_certificate,
                d.euicc_certificate,
                None,
                d.ipa_capabilities.as_ref().map(recode).transpose()?,
                d.device_info,
            ))
        }
        old::IpaEuiccDataResponse::ipaEuiccDataError(code) => {
            new::IpaEuiccDataResponse::ipaEuiccDataResponseError(
                new::IpaEuiccDataResponseError::new(None, new::IpaEuiccDataErrorCode(code)),
            )
        }
    })
}

/// v1.0 has no error reason: it becomes `undefinedError(127)`.
fn download_result(
    result: old::ProfileDownloadTriggerResult,
) -> Result<new::ProfileDownloadTriggerResult, Error> {
    use new::ProfileDownloadTriggerResultProfileDownloadTriggerResultData as N;
    use old::ProfileDownloadTriggerResultProfileDownloadTriggerResultData as O;
    let data = match result.profile_download_trigger_result_data {
        O::profileInstallationResult(r) => N::profileInstallationResult(recode(&r)?),
        O::profileDownloadError(e) => N::profileDownloadError(
            new::ProfileDownloadTriggerResultProfileDownloadTriggerResultDataProfileDownloadError::new(
                Integer::from(127),
                e.error_response,
            ),
        ),
    };
    Ok(new::ProfileDownloadTriggerResult::new(
        result.eim_transaction_id,
        data,
    ))
}

/// `IpaEuiccDataRequest`: v1.0's single `searchCriteria` becomes the
/// notification criteria; "all package results" needs no criteria in v1.2.
fn data_request(request: old::IpaEuiccDataRequest) -> new::IpaEuiccDataRequest {
    use new::IpaEuiccDataRequestSearchCriteriaNotification as N;
    use old::IpaEuiccDataRequestSearchCriteria as O;
    let notification = match request.search_criteria {
        Some(O::seqNumber(n)) => Some(N::seqNumber(n)),
        Some(O::profileManagementOperation(event)) => Some(N::profileManagementOperation(event)),
        Some(O::euiccPackageResults(())) | None => None,
    };
    new::IpaEuiccDataRequest::new(
        request.tag_list,
        request.euicc_ci_pkid.map(|k| k.0.0),
        notification,
        None,
        None,
    )
}
