//! SGP.32 v1.2 values → v1.0 values, for peers that speak v1.0.
//!
//! What v1.0 cannot express is refused ([`Error::Unrepresentable`]); the few
//! nearest answers chosen instead are documented on
//! [`super::encode_eim_message`] and on the functions below.

use crate::pkix::{KeyIdentifier, SubjectKeyIdentifier};
use crate::rasn::types::Integer;
use crate::{Error, sgp32 as new, sgp32_v1_0 as old};

use super::recode;

const V1_0: &str = "v1.0";

/// `EsipaMessageFromEimToIpa`.
pub(super) fn eim_message(
    message: &new::EsipaMessageFromEimToIpa,
) -> Result<old::EsipaMessageFromEimToIpa, Error> {
    use new::EsipaMessageFromEimToIpa as N;
    use old::EsipaMessageFromEimToIpa as O;
    Ok(match message {
        N::initiateAuthenticationResponseEsipa(x) => O::initiateAuthenticationResponseEsipa(
            shared(x, "initiateAuthenticationResponseEsipa")?,
        ),
        N::authenticateClientResponseEsipa(x) => {
            O::authenticateClientResponseEsipa(shared(x, "authenticateClientResponseEsipa")?)
        }
        N::getBoundProfilePackageResponseEsipa(x) => O::getBoundProfilePackageResponseEsipa(
            shared(x, "getBoundProfilePackageResponseEsipa")?,
        ),
        N::cancelSessionResponseEsipa(x) => {
            O::cancelSessionResponseEsipa(shared(x, "cancelSessionResponseEsipa")?)
        }
        N::transferEimPackageRequest(x) => O::transferEimPackageRequest(match x {
            new::TransferEimPackageRequest::euiccPackageRequest(r) => {
                old::TransferEimPackageRequest::euiccPackageRequest(package_request(r)?)
            }
            new::TransferEimPackageRequest::ipaEuiccDataRequest(r) => {
                old::TransferEimPackageRequest::ipaEuiccDataRequest(data_request(r)?)
            }
            new::TransferEimPackageRequest::eimAcknowledgements(a) => {
                old::TransferEimPackageRequest::eimAcknowledgements(recode(a)?)
            }
            new::TransferEimPackageRequest::profileDownloadTriggerRequest(t) => {
                old::TransferEimPackageRequest::profileDownloadTriggerRequest(recode(t)?)
            }
        }),
        N::getEimPackageResponse(x) => O::getEimPackageResponse(match x {
            new::GetEimPackageResponse::euiccPackageRequest(r) => {
                old::GetEimPackageResponse::euiccPackageRequest(package_request(r)?)
            }
            new::GetEimPackageResponse::ipaEuiccDataRequest(r) => {
                old::GetEimPackageResponse::ipaEuiccDataRequest(data_request(r)?)
            }
            new::GetEimPackageResponse::profileDownloadTriggerRequest(t) => {
                old::GetEimPackageResponse::profileDownloadTriggerRequest(recode(t)?)
            }
            // v1.0 knows noEimPackageAvailable(1) and undefinedError(127).
            new::GetEimPackageResponse::eimPackageError(code) => {
                let code = if *code == Integer::from(1) {
                    code.clone()
                } else {
                    Integer::from(127)
                };
                old::GetEimPackageResponse::eimPackageError(code)
            }
        }),
        // v1.0 answers with optional acknowledgements and has no error.
        N::provideEimPackageResultResponse(x) => {
            let acks = match x {
                new::ProvideEimPackageResultResponse::eimAcknowledgements(a) => Some(recode(a)?),
                _ => None,
            };
            O::provideEimPackageResultResponse(old::ProvideEimPackageResultResponse::new(acks))
        }
    })
}

/// `EsipaMessageFromIpaToEim`.
pub(super) fn ipa_message(
    message: &new::EsipaMessageFromIpaToEim,
) -> Result<old::EsipaMessageFromIpaToEim, Error> {
    use new::EsipaMessageFromIpaToEim as N;
    use old::EsipaMessageFromIpaToEim as O;
    Ok(match message {
        N::initiateAuthenticationRequestEsipa(x) => {
            O::initiateAuthenticationRequestEsipa(shared(x, "initiateAuthenticationRequestEsipa")?)
        }
        N::authenticateClientRequestEsipa(x) => {
            O::authenticateClientRequestEsipa(shared(x, "authenticateClientRequestEsipa")?)
        }
        N::getBoundProfilePackageRequestEsipa(x) => {
            O::getBoundProfilePackageRequestEsipa(shared(x, "getBoundProfilePackageRequestEsipa")?)
        }
        N::cancelSessionRequestEsipa(x) => {
            O::cancelSessionRequestEsipa(shared(x, "cancelSessionRequestEsipa")?)
        }
        N::handleNotificationEsipa(x) => O::handleNotificationEsipa(match x {
            new::HandleNotificationEsipa::pendingNotification(p) => {
                old::HandleNotificationEsipa::pendingNotification(shared(p, "pendingNotification")?)
            }
            new::HandleNotificationEsipa::provideEimPackageResult(p) => {
                old::HandleNotificationEsipa::provideEimPackageResult(provide_result(p)?)
            }
        }),
        N::transferEimPackageResponse(x) => O::transferEimPackageResponse(transfer_response(x)?),
        // The stateChangeCause has no v1.0 field.
        N::getEimPackageRequest(x) => O::getEimPackageRequest(old::GetEimPackageRequest::new(
            x.eid_value.clone(),
            x.notify_state_change,
            x.r_plmn.clone(),
        )),
        N::provideEimPackageResult(x) => O::provideEimPackageResult(provide_result(x)?),
    })
}

/// The EID of a v1.2 `ProvideEimPackageResult` has no v1.0 field (the eIM
/// knows the device from the session).
fn provide_result(
    result: &new::ProvideEimPackageResult,
) -> Result<old::ProvideEimPackageResult, Error> {
    use new::EimPackageResult as N;
    use old::ProvideEimPackageResult as O;
    Ok(match &result.eim_package_result {
        N::euiccPackageResult(r) => O::euiccPackageResult(package_result(r)?),
        N::ePRAndNotifications(e) => {
            O::ePRAndNotifications(old::ProvideEimPackageResultEPRAndNotifications::new(
                package_result(&e.euicc_package_result)?,
                old::SGP32RetrieveNotificationsListResponse::notificationList(notifications(
                    &e.notification_list,
                )?),
            ))
        }
        N::ipaEuiccDataResponse(d) => O::ipaEuiccDataResponse(ipa_euicc_data_response(d)?),
        N::profileDownloadTriggerResult(t) => O::profileDownloadTriggerResult(download_result(t)?),
        N::eimPackageResultResponseError(e) => {
            O::eimPackageError(e.eim_package_result_error_code.0.clone())
        }
    })
}

/// The correlation ids of v1.2 have no v1.0 field: `eimPackageReceivedWithCid`
/// becomes `eimPackageReceived`, `eimPackageErrorWithCid` `eimPackageError`.
fn transfer_response(
    response: &new::TransferEimPackageResponse,
) -> Result<old::TransferEimPackageResponse, Error> {
    use new::TransferEimPackageResponse as N;
    use old::TransferEimPackageResponse as O;
    Ok(match response {
        N::euiccPackageResult(r) => O::euiccPackageResult(package_result(r)?),
        N::ePRAndNotifications(e) => {
            O::ePRAndNotifications(old::TransferEimPackageResponseEPRAndNotifications::new(
                package_result(&e.euicc_package_result)?,
                old::SGP32RetrieveNotificationsListResponse::notificationList(notifications(
                    &e.notification_list,
                )?),
            ))
        }
        N::ipaEuiccDataResponse(d) => O::ipaEuiccDataResponse(ipa_euicc_data_response(d)?),
        N::eimPackageReceived(()) | N::eimPackageReceivedWithCid(_) => O::eimPackageReceived(()),
        N::eimPackageError(code) => O::eimPackageError(code.clone()),
        N::eimPackageErrorWithCid(e) => O::eimPackageError(e.eim_package_error.0.clone()),
    })
}

/// A signed package keeps its bytes when its content exists in v1.0 (the
/// DER of both versions is then identical, and so is what was signed).
fn package_request(request: &new::EuiccPackageRequest) -> Result<old::EuiccPackageRequest, Error> {
    if let new::EuiccPackage::psmoList(list) = &request.euicc_package_signed.euicc_package {
        let v1_2_only = list.iter().any(|psmo| {
            matches!(
                psmo,
                new::Psmo::setFallbackAttribute(_)
                    | new::Psmo::unsetFallbackAttribute(_)
                    | new::Psmo::setDefaultDpAddress(_)
            )
        });
        if v1_2_only {
            return Err(Error::Unrepresentable {
                what: "a fallback attribute or setDefaultDpAddress PSMO",
                version: V1_0,
            });
        }
    }
    shared(request, "this eUICC package")
}

pub(super) fn package_result(
    result: &new::EuiccPackageResult,
) -> Result<old::EuiccPackageResult, Error> {
    Ok(match result {
        new::EuiccPackageResult::euiccPackageResultSigned(signed) => {
            let data = &signed.euicc_package_result_data_signed;
            let results = data
                .euicc_result
                .iter()
                .map(result_data)
                .collect::<Result<Vec<_>, Error>>()?;
            old::EuiccPackageResult::euiccPackageResultSigned(old::EuiccPackageResultSigned::new(
                old::EuiccPackageResultDataSigned::new(
                    data.eim_id.clone(),
                    data.counter_value.clone(),
                    data.eim_transaction_id.clone(),
                    data.seq_number.clone(),
                    results,
                ),
                signed.euicc_sign_epr.clone(),
            ))
        }
        new::EuiccPackageResult::euiccPackageErrorSigned(error) => {
            old::EuiccPackageResult::euiccPackageErrorSigned(recode(error)?)
        }
        new::EuiccPackageResult::euiccPackageErrorUnsigned(error) => {
            old::EuiccPackageResult::euiccPackageErrorUnsigned(old::EuiccPackageErrorUnsigned::new(
                error.eim_id.clone(),
                error.association_token.clone(),
            ))
        }
    })
}

fn result_data(data: &new::EuiccResultData) -> Result<old::EuiccResultData, Error> {
    match data {
        new::EuiccResultData::listEimResult(new::ListEimResult::eimIdList(list)) => {
            let list = list
                .iter()
                .map(|info| {
                    old::EimIdInfo::new(
                        info.eim_id.clone(),
                        info.eim_id_type
                            .as_ref()
                            .map(|t| old::EimIdType(t.0.clone())),
                    )
                })
                .collect();
            Ok(old::EuiccResultData::listEimResult(
                old::ListEimResult::eimIdList(list),
            ))
        }
        new::EuiccResultData::setFallbackAttributeResult(_)
        | new::EuiccResultData::unsetFallbackAttributeResult(_)
        | new::EuiccResultData::setDefaultDpAddressResult(_) => Err(Error::Unrepresentable {
            what: "a fallback attribute or setDefaultDpAddress result",
            version: V1_0,
        }),
        other => shared(other, "this eUICC result"),
    }
}

fn notifications(
    list: &new::PendingNotificationList,
) -> Result<Vec<old::SGP32PendingNotification>, Error> {
    list.0
        .iter()
        .map(|n| shared(n, "this notification"))
        .collect()
}

fn ipa_euicc_data_response(
    response: &new::IpaEuiccDataResponse,
) -> Result<old::IpaEuiccDataResponse, Error> {
    use old::SGP32RetrieveNotificationsListResponse as L;
    Ok(match response {
        new::IpaEuiccDataResponse::ipaEuiccData(d) => {
            let pending = d
                .notifications_list
                .as_ref()
                .map(notifications)
                .transpose()?;
            let results = d
                .euicc_package_result_list
                .as_ref()
                .map(|r| {
                    r.0.iter()
                        .map(package_result)
                        .collect::<Result<Vec<_>, Error>>()
                })
                .transpose()?;
            let list = match (pending, results) {
                (Some(n), Some(r)) => Some(L::notificationAndEprList(
                    old::SGP32RetrieveNotificationsListResponseNotificationAndEprList::new(n, r),
                )),
                (Some(n), None) => Some(L::notificationList(n)),
                (None, Some(r)) => Some(L::euiccPackageResultList(r)),
                (None, None) => None,
            };
            old::IpaEuiccDataResponse::ipaEuiccData(old::IpaEuiccData::new(
                d.default_smdp_address.clone(),
                d.euicc_info1.clone(),
                d.euicc_info2
                    .as_ref()
                    .map(|i| shared(i, "this EUICCInfo2"))
                    .transpose()?,
                d.root_smds_address.clone(),
                d.association_token.clone(),
                d.eum_certificate.clone(),
                d.euicc_certificate.clone(),
                d.ipa_capabilities
                    .as_ref()
                    .map(|c| shared(c, "these IPA capabilities"))
                    .transpose()?,
                d.device_info.clone(),
                list,
            ))
        }
        new::IpaEuiccDataResponse::ipaEuiccDataResponseError(e) => {
            old::IpaEuiccDataResponse::ipaEuiccDataError(e.ipa_euicc_data_error_code.0.clone())
        }
    })
}

/// v1.0 has no error reason: only `errorResponse` is kept.
fn download_result(
    result: &new::ProfileDownloadTriggerResult,
) -> Result<old::ProfileDownloadTriggerResult, Error> {
    use new::ProfileDownloadTriggerResultProfileDownloadTriggerResultData as N;
    use old::ProfileDownloadTriggerResultProfileDownloadTriggerResultData as O;
    let data = match &result.profile_download_trigger_result_data {
        N::profileInstallationResult(r) => O::profileInstallationResult(recode(r)?),
        N::profileDownloadError(e) => O::profileDownloadError(
            old::ProfileDownloadTriggerResultProfileDownloadTriggerResultDataProfileDownloadError::new(
                e.error_response.clone(),
            ),
        ),
    };
    Ok(old::ProfileDownloadTriggerResult::new(
        result.eim_transaction_id.clone(),
        data,
    ))
}

/// v1.0 has one search criterion: two are refused; a package-result
/// criterion becomes "all package results" (a superset the eIM deduplicates).
/// The eimTransactionId has no v1.0 field.
fn data_request(request: &new::IpaEuiccDataRequest) -> Result<old::IpaEuiccDataRequest, Error> {
    use new::IpaEuiccDataRequestSearchCriteriaNotification as N;
    use old::IpaEuiccDataRequestSearchCriteria as O;
    let criteria = match (
        &request.search_criteria_notification,
        &request.search_criteria_euicc_package_result,
    ) {
        (Some(_), Some(_)) => {
            return Err(Error::Unrepresentable {
                what: "an IpaEuiccDataRequest with two search criteria",
                version: V1_0,
            });
        }
        (Some(N::seqNumber(n)), None) => Some(O::seqNumber(n.clone())),
        (Some(N::profileManagementOperation(e)), None) => {
            Some(O::profileManagementOperation(e.clone()))
        }
        (None, Some(_)) => Some(O::euiccPackageResults(())),
        (None, None) => None,
    };
    Ok(old::IpaEuiccDataRequest::new(
        request.tag_list.clone(),
        request
            .euicc_ci_pkidentifier_to_be_used
            .clone()
            .map(|id| SubjectKeyIdentifier(KeyIdentifier(id))),
        criteria,
    ))
}

/// A type whose wire form both versions share, as long as the value uses
/// nothing v1.2 added: recoded, or refused as `what`.
fn shared<A, B>(value: &A, what: &'static str) -> Result<B, Error>
where
    A: rasn::Encode,
    B: rasn::Decode,
{
    recode(value).map_err(|_| Error::Unrepresentable {
        what,
        version: V1_0,
    })
}
