//! The transitions of [`Download`]: what each ES10 and ES9+ answer leads
//! to, stage by stage.

use ferrosim_asn1::json::Base64;
use ferrosim_asn1::json::es9::{
    AuthenticateClientRequest, CancelSessionRequest, GetBoundProfilePackageRequest,
    HandleNotificationRequest, InitiateAuthenticationRequest,
};
use ferrosim_ids::{Iccid, Timestamp};

use super::{Action, Download, Failed, Stage, Waiting, piece_ranges};
use crate::download::outcome::{
    Cancellation, DownloadFailure, DownloadOutcome, ProfileMetadata, Step,
};
use crate::download::{cc_required_flag, check_smdp_oid};
use crate::es9::{Es9Request, Es9Response};
use crate::es10::Es10Error;
use crate::es10::commands::{AuthenticateServerInput, PrepareDownloadInput, ctx_params1};
use crate::es10::function::{
    CancelSession, Es10Function, GetEuiccChallenge, GetEuiccInfo1, LoadBoundProfilePackagePiece,
    RemoveNotificationFromList,
};
use crate::es10::types::{InstallationOutcome, InstallationResult};
use crate::notifications::Attempts;

impl Download {
    /// An ES10 exchange ended.
    pub(super) fn es10_done(&mut self, data: Result<Vec<u8>, Es10Error>, now: Timestamp) {
        let stage = std::mem::replace(&mut self.stage, Stage::Finished);
        match stage {
            Stage::Challenge => {
                let step = Step::GetEuiccChallenge;
                match data.and_then(GetEuiccChallenge::decode) {
                    Ok(challenge) => {
                        self.record(now);
                        self.stage = Stage::Info1 { challenge };
                        if let Err(e) = self.start_es10(Step::GetEuiccInfo1, &GetEuiccInfo1, now) {
                            self.fail(Failed::early(Step::GetEuiccInfo1, e), now);
                        }
                    }
                    Err(e) => self.fail(Failed::early(step, e), now),
                }
            }
            Stage::Info1 { challenge } => match data.and_then(GetEuiccInfo1::decode) {
                Ok(info1) => {
                    self.record(now);
                    self.stage = Stage::Initiate;
                    let request = InitiateAuthenticationRequest {
                        euicc_challenge: Base64(challenge.to_vec()),
                        euicc_info1: Base64(info1.raw),
                        smdp_address: self.address.to_string(),
                    };
                    self.start_es9(
                        Step::InitiateAuthentication,
                        Es9Request::InitiateAuthentication(request),
                        now,
                    );
                }
                Err(e) => self.fail(Failed::early(Step::GetEuiccInfo1, e), now),
            },
            Stage::AuthenticateServer { initiated } => {
                let step = Step::AuthenticateServer;
                let answer = match data.and_then(AuthenticateServerInput::decode) {
                    Ok(answer) => answer,
                    Err(e) => return self.fail(Failed::in_session(step, e), now),
                };
                self.record(now);
                let request = AuthenticateClientRequest {
                    transaction_id: initiated.transaction_id.clone(),
                    authenticate_server_response: Base64(answer.raw),
                };
                if let Some(code) = answer.error {
                    // The SM-DP+ learns of the refusal from the error response itself.
                    self.stage = Stage::ReportAuthenticateError { code };
                    return self.start_es9_untimed(Es9Request::AuthenticateClient(request), now);
                }
                if let Some(expected) = self.code.smdp_oid()
                    && let Err(e) = check_smdp_oid(expected, &initiated.server_certificate.0)
                {
                    return self.fail(Failed::in_session(step, e), now);
                }
                self.stage = Stage::AuthenticateClient;
                self.start_es9(
                    Step::AuthenticateClient,
                    Es9Request::AuthenticateClient(request),
                    now,
                );
            }
            Stage::PrepareDownload {
                metadata,
                transaction_id,
            } => {
                let step = Step::PrepareDownload;
                let answer = match data.and_then(PrepareDownloadInput::decode) {
                    Ok(answer) => answer,
                    Err(e) => return self.fail(Failed::in_session(step, e), now),
                };
                self.record(now);
                let request = GetBoundProfilePackageRequest {
                    transaction_id,
                    prepare_download_response: Base64(answer.raw),
                };
                if let Some(code) = answer.error {
                    self.stage = Stage::ReportPrepareError { code };
                    return self
                        .start_es9_untimed(Es9Request::GetBoundProfilePackage(request), now);
                }
                self.stage = Stage::GetBoundProfilePackage { metadata };
                self.start_es9(
                    Step::GetBoundProfilePackage,
                    Es9Request::GetBoundProfilePackage(request),
                    now,
                );
            }
            Stage::LoadBoundProfilePackage {
                metadata,
                bpp,
                pieces,
                next,
            } => {
                let step = Step::LoadBoundProfilePackage;
                match data.and_then(LoadBoundProfilePackagePiece::decode) {
                    Ok(Some(result)) => {
                        if next < pieces.len() {
                            tracing::warn!(
                                piece = next - 1,
                                "the eUICC ended the installation early"
                            );
                        }
                        self.record(now);
                        self.stage = Stage::Notify {
                            metadata,
                            result,
                            attempts: Attempts::new(&self.retry),
                        };
                        self.current = Some((Step::HandleNotification, now));
                        self.notify(now);
                    }
                    Ok(None) if next < pieces.len() => {
                        let piece = pieces[next].clone();
                        let sent = self.send_es10(&LoadBoundProfilePackagePiece(&bpp[piece]));
                        self.stage = Stage::LoadBoundProfilePackage {
                            metadata,
                            bpp,
                            pieces,
                            next: next + 1,
                        };
                        if let Err(e) = sent {
                            self.fail(Failed::in_session(step, e), now);
                        }
                    }
                    Ok(None) => self.fail(
                        Failed::in_session(
                            step,
                            Es10Error::bad(
                                LoadBoundProfilePackagePiece::NAME,
                                "the eUICC returned no ProfileInstallationResult",
                            ),
                        ),
                        now,
                    ),
                    Err(e) => self.fail(Failed::in_session(step, e), now),
                }
            }
            Stage::Remove { metadata, result } => {
                if let Err(e) = data.and_then(RemoveNotificationFromList::decode) {
                    tracing::warn!(error = %e, "installation result acknowledged but not removed from the eUICC");
                }
                self.record(now);
                self.finish_installation(metadata, result, true, now);
            }
            Stage::CancelEuicc {
                failed,
                reason,
                transaction_id,
            } => match data.and_then(CancelSession::decode) {
                Ok(signed) => {
                    self.record(now);
                    let request = CancelSessionRequest {
                        transaction_id,
                        cancel_session_response: Base64(signed),
                    };
                    self.stage = Stage::CancelSmdp { failed, reason };
                    self.start_es9(
                        Step::CancelSessionSmdp,
                        Es9Request::CancelSession(request),
                        now,
                    );
                }
                Err(e) => self.end_failed(
                    failed,
                    Some(Cancellation {
                        reason,
                        euicc_error: Some(e),
                        smdp_error: None,
                    }),
                ),
            },
            other => {
                tracing::warn!(stage = ?std::mem::discriminant(&other), "ES10 answer in a stage without one");
                self.stage = other;
            }
        }
    }

    /// An ES9+ call ended.
    pub(super) fn es9_done(&mut self, response: Es9Response, now: Timestamp) {
        let stage = std::mem::replace(&mut self.stage, Stage::Finished);
        match (stage, response) {
            (Stage::Initiate, Es9Response::InitiateAuthentication(r)) => {
                let step = Step::InitiateAuthentication;
                let initiated = match r {
                    Ok(i) => i,
                    Err(e) => return self.fail(Failed::early(step, e), now),
                };
                self.record(now);
                self.transaction_id = Some(initiated.transaction_id.clone());
                tracing::info!(transaction_id = %initiated.transaction_id, address = %self.address, "download session started");
                let step = Step::AuthenticateServer;
                let ctx = match ctx_params1(self.code.matching_id(), &self.device_info) {
                    Ok(ctx) => ctx,
                    Err(e) => return self.fail(Failed::in_session(step, e), now),
                };
                let input = AuthenticateServerInput {
                    server_signed1: &initiated.server_signed1.0,
                    server_signature1: &initiated.server_signature1.0,
                    euicc_ci_pkid_to_be_used: &initiated.euicc_ci_pkid_to_be_used.0,
                    server_certificate: &initiated.server_certificate.0,
                    ctx_params1: &ctx,
                };
                let started = self.start_es10(step, &input, now);
                self.stage = Stage::AuthenticateServer {
                    initiated: Box::new(initiated),
                };
                if let Err(e) = started {
                    self.fail(Failed::in_session(step, e), now);
                }
            }
            (Stage::ReportAuthenticateError { code }, _) => self.fail(
                Failed::reported(
                    Step::AuthenticateServer,
                    DownloadFailure::ServerNotAuthenticated { code },
                ),
                now,
            ),
            (Stage::AuthenticateClient, Es9Response::AuthenticateClient(r)) => {
                let step = Step::AuthenticateClient;
                let authenticated = match r {
                    Ok(a) => a,
                    Err(e) => return self.fail(Failed::in_session(step, e), now),
                };
                self.record(now);
                if let Err(f) = self.check_tid(step, &authenticated.transaction_id) {
                    return self.fail(f, now);
                }
                let step = Step::ConfirmProfile;
                self.current = Some((step, now));
                let metadata =
                    match ProfileMetadata::decode(authenticated.profile_metadata.0.clone()) {
                        Ok(m) => m,
                        Err(e) => {
                            return self.fail(
                                Failed::in_session(
                                    step,
                                    DownloadFailure::MetadataMismatch(e.to_string()),
                                ),
                                now,
                            );
                        }
                    };
                let cc_required = match cc_required_flag(&authenticated.smdp_signed2.0) {
                    Ok(flag) => flag,
                    Err(e) => return self.fail(Failed::in_session(step, e), now),
                };
                self.outbox = Some(Action::Confirm(metadata.clone()));
                self.waiting = Waiting::Consent;
                self.stage = Stage::Confirm {
                    authenticated: Box::new(authenticated),
                    metadata,
                    cc_required,
                };
            }
            (Stage::ReportPrepareError { code }, _) => self.fail(
                Failed::reported(
                    Step::PrepareDownload,
                    DownloadFailure::DownloadNotPrepared { code },
                ),
                now,
            ),
            (
                Stage::GetBoundProfilePackage { metadata },
                Es9Response::GetBoundProfilePackage(r),
            ) => {
                let step = Step::GetBoundProfilePackage;
                let package = match r {
                    Ok(p) => p,
                    Err(e) => return self.fail(Failed::in_session(step, e), now),
                };
                self.record(now);
                if let Err(f) = self.check_tid(step, &package.transaction_id) {
                    return self.fail(f, now);
                }
                let step = Step::LoadBoundProfilePackage;
                let bpp = package.bound_profile_package.0;
                let pieces = match piece_ranges(&bpp) {
                    Ok(p) => p,
                    Err(e) => return self.fail(Failed::in_session(step, e), now),
                };
                self.current = Some((step, now));
                let first = pieces[0].clone();
                let sent = self.send_es10(&LoadBoundProfilePackagePiece(&bpp[first]));
                self.stage = Stage::LoadBoundProfilePackage {
                    metadata,
                    bpp,
                    pieces,
                    next: 1,
                };
                if let Err(e) = sent {
                    self.fail(Failed::in_session(step, e), now);
                }
            }
            (
                Stage::Notify {
                    metadata,
                    result,
                    mut attempts,
                },
                Es9Response::HandleNotification(r),
            ) => match r {
                Ok(()) => {
                    self.record(now);
                    let seq_number = result.metadata.seq_number;
                    self.stage = Stage::Remove { metadata, result };
                    let remove = RemoveNotificationFromList { seq_number };
                    if let Err(e) = self.start_es10(Step::RemoveNotification, &remove, now) {
                        self.es10_done(Err(e), now);
                    }
                }
                Err(e) => match attempts.retry_after(&self.retry, &e) {
                    Some(wait) => {
                        tracing::info!(address = %self.address, attempt = attempts.made(), error = %e, "installation result not delivered, retrying");
                        self.stage = Stage::Notify {
                            metadata,
                            result,
                            attempts,
                        };
                        if wait.is_zero() {
                            self.notify(now);
                        } else {
                            self.waiting = Waiting::Until(now.plus(wait));
                        }
                    }
                    None => {
                        tracing::warn!(error = %e, "installation result kept on the eUICC for later delivery");
                        self.record(now);
                        self.finish_installation(metadata, result, false, now);
                    }
                },
            },
            (Stage::CancelSmdp { failed, reason }, Es9Response::CancelSession(r)) => {
                self.record(now);
                self.end_failed(
                    failed,
                    Some(Cancellation {
                        reason,
                        euicc_error: None,
                        smdp_error: r.err(),
                    }),
                );
            }
            (stage, response) => {
                tracing::warn!(
                    function = response.name(),
                    "ES9+ answer of another function dropped"
                );
                self.stage = stage;
            }
        }
    }

    /// Sends (again) the installation result with handleNotification.
    pub(super) fn notify(&mut self, now: Timestamp) {
        let Stage::Notify {
            result, attempts, ..
        } = &mut self.stage
        else {
            return;
        };
        attempts.start();
        let request = HandleNotificationRequest {
            pending_notification: Base64(result.raw.clone()),
        };
        self.start_es9_call(Es9Request::HandleNotification(request), now);
    }

    /// The installation ended with its result delivered or not.
    pub(super) fn finish_installation(
        &mut self,
        metadata: ProfileMetadata,
        result: InstallationResult,
        delivered: bool,
        now: Timestamp,
    ) {
        match result.outcome {
            InstallationOutcome::Success { isdp_aid } => {
                tracing::info!(iccid = %metadata.iccid, "profile installed");
                let outcome = DownloadOutcome {
                    iccid: result
                        .metadata
                        .iccid
                        .as_deref()
                        .and_then(|digits| Iccid::new(digits).ok())
                        .unwrap_or_else(|| metadata.iccid.clone()),
                    isdp_aid,
                    transaction_id: self
                        .transaction_id
                        .clone()
                        .unwrap_or_else(|| result.transaction_id.clone()),
                    metadata,
                    result_delivered: delivered,
                    installation_result: result.raw.clone(),
                    timings: std::mem::take(&mut self.timings),
                };
                self.stage = Stage::Finished;
                self.outbox = Some(Action::Done(Box::new(Ok(outcome))));
            }
            InstallationOutcome::Failure {
                bpp_command_id,
                error_reason,
            } => self.fail(
                Failed::reported(
                    Step::LoadBoundProfilePackage,
                    DownloadFailure::InstallationFailed {
                        bpp_command_id,
                        error_reason,
                        result_delivered: delivered,
                    },
                ),
                now,
            ),
        }
    }
}
