//! The sub-machines of a session: a download trigger carried out with the
//! LPA's [`Download`] (the ES9+ calls going straight to the SM-DP+ or
//! through the eIM), and the delivery of the eUICC's notifications with
//! [`ferrosim_lpa::NotificationDelivery`].

use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::{decode_der, encode_der, rsp, sgp32};
use ferrosim_ids::{Iccid, Timestamp};
use ferrosim_lpa::download::{Action as DownloadAction, Consent, DownloadError, DownloadOutcome};
use ferrosim_lpa::notifications::NotificationAction;
use ferrosim_lpa::{ActivationCode, Download, DownloadRequest};
use rand::CryptoRng;

use super::{Action, Ipa, ItemReport, NotificationSummary, SessionError, Stage, Waiting};
use crate::pending::ResultKind;

/// A ProfileDownloadTriggerRequest as read.
#[derive(Debug)]
pub(super) struct Trigger {
    /// The activation code, or why there is none to use.
    code: Result<ActivationCode, String>,
    /// What the trigger asked for, as text (for the report).
    text: String,
    transaction_id: Option<rsp::TransactionId>,
}

impl Trigger {
    pub(super) fn read(bytes: &[u8]) -> Self {
        let request = match decode_der::<sgp32::ProfileDownloadTriggerRequest>(bytes) {
            Ok(r) => r,
            Err(e) => {
                return Self {
                    code: Err(format!("unreadable ProfileDownloadTriggerRequest: {e}")),
                    text: "(unreadable)".into(),
                    transaction_id: None,
                };
            }
        };
        let (code, text) = match &request.profile_download_data {
            Some(sgp32::ProfileDownloadData::activationCode(text)) => (
                ActivationCode::parse(text).map_err(|e| format!("activation code: {e}")),
                text.clone(),
            ),
            Some(sgp32::ProfileDownloadData::contactDefaultSmdp(())) => (
                Err("contacting the default SM-DP+ is not supported by this IPA".into()),
                "contactDefaultSmdp".into(),
            ),
            Some(sgp32::ProfileDownloadData::contactSmds(_)) => (
                Err("contacting an SM-DS is not supported by this IPA".into()),
                "contactSmds".into(),
            ),
            None => (
                Err("the trigger carries no profile download data".into()),
                "(none)".into(),
            ),
        };
        Self {
            code,
            text,
            transaction_id: request.eim_transaction_id,
        }
    }

    /// The `profileDownloadTriggerResult` element.
    fn result(
        &self,
        outcome: Result<&DownloadOutcome, &str>,
    ) -> Result<(Vec<u8>, Result<Iccid, String>), String> {
        use sgp32::ProfileDownloadTriggerResultProfileDownloadTriggerResultData as D;
        let (data, summary) = match outcome {
            Ok(done) => match decode_der(&done.installation_result) {
                Ok(pir) => (D::profileInstallationResult(pir), Ok(done.iccid.clone())),
                Err(e) => return Err(format!("ProfileInstallationResult: {e}")),
            },
            Err(reason) => (
                D::profileDownloadError(
                    sgp32::ProfileDownloadTriggerResultProfileDownloadTriggerResultDataProfileDownloadError::new(
                        Integer::from(127),
                        None,
                    ),
                ),
                Err(reason.to_owned()),
            ),
        };
        let element = encode_der(&sgp32::EimPackageResult::profileDownloadTriggerResult(
            sgp32::ProfileDownloadTriggerResult::new(self.transaction_id.clone(), data),
        ))
        .map_err(|e| format!("ProfileDownloadTriggerResult: {e}"))?;
        Ok((element, summary))
    }
}

impl<R: CryptoRng> Ipa<R> {
    pub(super) fn start_download(&mut self, trigger: Trigger, now: Timestamp) {
        let code = match &trigger.code {
            Ok(code) => code.clone(),
            Err(reason) => {
                let reason = reason.clone();
                tracing::warn!(%reason, "download trigger not carried out");
                return self.download_done(trigger, Err(reason), now);
            }
        };
        tracing::info!(code = %trigger.text, path = ?self.config.download_path, "profile download triggered");
        let mut request = DownloadRequest::new(&code, None);
        request.device_info = self.config.device_info.clone();
        request.notification_retry = self.config.notification_retry;
        let machine = Download::new(&request, self.link, now);
        if let Some(s) = &mut self.session {
            s.stage = Stage::Download {
                machine: Box::new(machine),
                trigger: Box::new(trigger),
            };
            s.waiting = Waiting::Sub;
        }
        self.drive_sub(now);
    }

    fn download_done(
        &mut self,
        trigger: Trigger,
        outcome: Result<DownloadOutcome, String>,
        now: Timestamp,
    ) {
        let made = match &outcome {
            Ok(done) => trigger.result(Ok(done)),
            Err(reason) => trigger.result(Err(reason)),
        };
        match made {
            Ok((element, summary)) => {
                if let Some(s) = &mut self.session {
                    s.report.items.push(ItemReport::Download {
                        activation_code: trigger.text.clone(),
                        outcome: summary,
                    });
                }
                self.keep_result(ResultKind::Download, element, None, now);
            }
            Err(e) => self.finish(Some(SessionError::Internal(e)), now),
        }
    }

    /// Moves a sub-machine (download, notifications) as far as it goes.
    pub(super) fn drive_sub(&mut self, now: Timestamp) {
        loop {
            let Some(s) = &mut self.session else {
                return;
            };
            match &mut s.stage {
                Stage::Download { machine, .. } => match machine.poll() {
                    Some(DownloadAction::Transmit(apdu)) => {
                        self.outbox.push_back(Action::Transmit(apdu));
                        return;
                    }
                    Some(DownloadAction::Es9(call)) => {
                        let route = self.config.download_path;
                        self.outbox.push_back(Action::Es9 { route, call });
                        return;
                    }
                    // No end user: the eIM's trigger is the consent; a
                    // confirmation code cannot be asked for (postponed).
                    Some(DownloadAction::Confirm(_)) => {
                        machine.handle_consent(Consent::Accept, now)
                    }
                    Some(DownloadAction::ConfirmationCode(_)) => {
                        machine.handle_confirmation_code(None, now);
                    }
                    Some(DownloadAction::WaitUntil(_)) | None => return,
                    Some(DownloadAction::Done(result)) => {
                        let Stage::Download { trigger, .. } =
                            std::mem::replace(&mut s.stage, Stage::Idle)
                        else {
                            return;
                        };
                        s.waiting = Waiting::Nothing;
                        let outcome = (*result).map_err(|e: DownloadError| e.to_string());
                        return self.download_done(*trigger, outcome, now);
                    }
                },
                Stage::Notifications { machine } => match machine.poll() {
                    Some(NotificationAction::Transmit(apdu)) => {
                        self.outbox.push_back(Action::Transmit(apdu));
                        return;
                    }
                    Some(NotificationAction::Es9(call)) => {
                        let route = self.config.download_path;
                        self.outbox.push_back(Action::Es9 { route, call });
                        return;
                    }
                    Some(NotificationAction::WaitUntil(_)) | None => return,
                    Some(NotificationAction::Done(result)) => {
                        s.stage = Stage::Idle;
                        s.waiting = Waiting::Nothing;
                        s.report.notifications = Some(match result {
                            Ok(report) => NotificationSummary {
                                delivered: report.delivered.len(),
                                undelivered: report
                                    .undelivered
                                    .iter()
                                    .map(|u| {
                                        format!(
                                            "seq {} to {}: {}",
                                            u.metadata.seq_number, u.metadata.address, u.failure
                                        )
                                    })
                                    .collect(),
                            },
                            Err(e) => NotificationSummary {
                                delivered: 0,
                                undelivered: vec![format!("cannot list notifications: {e}")],
                            },
                        });
                        return self.next_step(now);
                    }
                },
                _ => return,
            }
        }
    }
}
