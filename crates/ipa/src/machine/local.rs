//! Operations the IPA starts on its own, without the eIM (SGP.32 3.x): the
//! ProfileRollback after an enable with rollbackFlag whose profile does not
//! connect, the Fallback Mechanism when the device loses connectivity, and
//! the return from it. Each is one ES10b command; its outcome is told to the
//! eIM in the next session: the eUICC's signed package result of a rollback
//! is kept with the other results, and `notifyStateChange` (cause
//! `fallback` for the Fallback Mechanism) goes with the next GetEimPackage.

use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::{decode_der, encode_der, sgp32};
use ferrosim_ids::Timestamp;
use ferrosim_lpa::Es10Error;
use rand::CryptoRng;

use super::{Action, Ipa, ItemReport, Session, SessionError, SessionReport, Stage, Waiting};
use crate::pending::ResultKind;

/// `StateChangeCause` fallback(1).
const CAUSE_FALLBACK: i64 = 1;

/// An operation the IPA starts itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalOperation {
    /// ES10b ProfileRollback (`BF58`): back to the profile enabled before
    /// the last enable with rollbackFlag.
    ProfileRollback,
    /// ES10b ExecuteFallbackMechanism (`BF5D`): enable the profile with the
    /// fallback attribute.
    ExecuteFallback,
    /// ES10b ReturnFromFallback (`BF5E`): back to the profile enabled before
    /// the fallback.
    ReturnFromFallback,
}

impl LocalOperation {
    /// The function's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ProfileRollback => "ProfileRollback",
            Self::ExecuteFallback => "ExecuteFallbackMechanism",
            Self::ReturnFromFallback => "ReturnFromFallback",
        }
    }

    fn request(self, refresh: bool) -> Result<Vec<u8>, String> {
        match self {
            Self::ProfileRollback => encode_der(&sgp32::ProfileRollbackRequest::new(refresh)),
            Self::ExecuteFallback => {
                encode_der(&sgp32::ExecuteFallbackMechanismRequest::new(refresh))
            }
            Self::ReturnFromFallback => encode_der(&sgp32::ReturnFromFallbackRequest::new(refresh)),
        }
        .map_err(|e| format!("{}: {e}", self.name()))
    }

    /// The result code and, for a rollback, the eUICC's package result.
    fn read(self, answer: &[u8]) -> Result<(i64, Option<Vec<u8>>), String> {
        let small = |i: &Integer| i64::try_from(i.clone()).unwrap_or(-1);
        let bad = |e: &dyn std::fmt::Display| format!("malformed {} answer: {e}", self.name());
        match self {
            Self::ProfileRollback => {
                let r: sgp32::ProfileRollbackResponse = decode_der(answer).map_err(|e| bad(&e))?;
                let result = r
                    .e_uiccpackage_result
                    .as_ref()
                    .map(encode_der)
                    .transpose()
                    .map_err(|e| bad(&e))?;
                Ok((small(&r.cmd_result), result))
            }
            Self::ExecuteFallback => {
                let r: sgp32::ExecuteFallbackMechanismResponse =
                    decode_der(answer).map_err(|e| bad(&e))?;
                Ok((small(&r.execute_fallback_mechanism_result), None))
            }
            Self::ReturnFromFallback => {
                let r: sgp32::ReturnFromFallbackResponse =
                    decode_der(answer).map_err(|e| bad(&e))?;
                Ok((small(&r.return_from_fallback_result), None))
            }
        }
    }
}

impl<R: CryptoRng> Ipa<R> {
    /// Runs `operation` on the eUICC now, without the eIM (does nothing
    /// while a session is in progress). It ends with
    /// [`Action::SessionDone`], whose report holds an
    /// [`ItemReport::Local`]; what the eIM must learn goes with the next
    /// session.
    pub fn start_local(&mut self, operation: LocalOperation, refresh: bool, now: Timestamp) {
        if self.session.is_some() {
            return;
        }
        self.session = Some(Session {
            stage: Stage::Local { operation },
            waiting: Waiting::Nothing,
            to_send: Default::default(),
            items: 0,
            drained: true,
            notified: true,
            report: SessionReport::new(now, self.eid),
        });
        match operation.request(refresh) {
            Ok(request) => self.send_es10(request, now),
            Err(e) => self.finish_local(Some(SessionError::Internal(e)), now),
        }
    }

    /// The eUICC answered a local operation.
    pub(super) fn local_done(
        &mut self,
        operation: LocalOperation,
        result: Result<Vec<u8>, Es10Error>,
        now: Timestamp,
    ) {
        let answer = match result {
            Ok(a) => a,
            Err(e) => return self.finish_local(Some(SessionError::Euicc(e)), now),
        };
        let (code, package_result) = match operation.read(&answer) {
            Ok(read) => read,
            Err(e) => {
                return self.finish_local(
                    Some(SessionError::Euicc(Es10Error::BadResponse {
                        function: operation.name(),
                        reason: e,
                    })),
                    now,
                );
            }
        };
        tracing::info!(operation = operation.name(), code, "local operation run");
        if let Some(element) = package_result {
            let seq = super::flow::package_outcome(&element).0;
            self.state.push(ResultKind::Package, element, seq);
        }
        if code == 0 {
            self.state.notify_state_change = true;
            self.state.state_change_cause =
                (operation != LocalOperation::ProfileRollback).then_some(CAUSE_FALLBACK);
        }
        if let Some(s) = &mut self.session {
            s.report.items.push(ItemReport::Local {
                operation: operation.name(),
                code,
            });
        }
        self.finish_local(None, now);
    }

    /// Ends a local session: the schedule of eIM sessions is left as it was.
    fn finish_local(&mut self, error: Option<SessionError>, now: Timestamp) {
        let Some(session) = self.session.take() else {
            return;
        };
        let mut report = session.report;
        report.ended = now;
        report.error = error;
        report.pending = self.state.results.len();
        report.next_session = self.next_session;
        self.outbox.push_back(Action::Persist(self.state.clone()));
        self.outbox.push_back(Action::SessionDone(Box::new(report)));
    }
}
