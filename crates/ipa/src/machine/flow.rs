//! The steps of a session: what comes after each answer.

use std::collections::VecDeque;

use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::signed::sgp32::euicc_package_request;
use ferrosim_asn1::tlv::Tlv;
use ferrosim_asn1::{decode_der, encode_der, rsp, sgp32};
use ferrosim_ids::Timestamp;
use ferrosim_lpa::{Es10Error, NotificationDelivery};
use rand::CryptoRng;

use super::{Action, EsipaCall, Ipa, ItemReport, PackageOutcome, SessionError, Stage, Waiting};
use crate::data::DataPlan;
use crate::es10::{self, Command};
use crate::esipa::{EimReply, EsipaError, EsipaRequest};
use crate::pending::ResultKind;

impl<R: CryptoRng> Ipa<R> {
    /// Decides the next step once nothing is outstanding.
    pub(super) fn next_step(&mut self, now: Timestamp) {
        let Some(s) = &mut self.session else {
            return;
        };
        s.stage = Stage::Idle;
        let Some(eid) = self.eid else {
            s.stage = Stage::ReadEid;
            self.send_es10(Command::GetEid.request(), now);
            return;
        };
        while let Some(id) = s.to_send.pop_front() {
            if let Some(result) = self.state.results.iter_mut().find(|r| r.id == id) {
                result.attempts = result.attempts.saturating_add(1);
                let element = result.element.clone();
                s.stage = Stage::Provide { id };
                s.report.results_sent += 1;
                self.send_esipa(EsipaRequest::ProvideEimPackageResult { eid, element });
                return;
            }
        }
        if !s.drained && s.items < self.config.max_items_per_session {
            s.stage = Stage::Poll;
            let request = EsipaRequest::GetEimPackage {
                eid,
                notify_state_change: self.state.notify_state_change,
                state_change_cause: self
                    .state
                    .state_change_cause
                    .filter(|_| self.state.notify_state_change),
                r_plmn: self.config.r_plmn,
            };
            self.send_esipa(request);
            return;
        }
        if !s.notified {
            s.notified = true;
            let machine =
                NotificationDelivery::new(self.link, None, self.config.notification_retry);
            s.stage = Stage::Notifications {
                machine: Box::new(machine),
            };
            s.waiting = Waiting::Sub;
            self.drive_sub(now);
            return;
        }
        self.finish(None, now);
    }

    fn send_esipa(&mut self, request: EsipaRequest) {
        self.next_call += 1;
        let id = self.next_call;
        if let Some(s) = &mut self.session {
            s.waiting = Waiting::Esipa(id);
        }
        self.outbox
            .push_back(Action::Esipa(EsipaCall { id, request }));
    }

    /// Sends one ES10 command of the IPA's own.
    pub(super) fn send_es10(&mut self, request: Vec<u8>, now: Timestamp) {
        match ferrosim_lpa::es10::Exchange::store_data(self.link, &request) {
            Ok((exchange, first)) => {
                if let Some(s) = &mut self.session {
                    s.waiting = Waiting::Apdu(Box::new(exchange));
                }
                self.outbox.push_back(Action::Transmit(first));
            }
            Err(e) => self.es10_done(Err(e), now),
        }
    }

    /// An ES10 command of the IPA's own ended.
    pub(super) fn es10_done(&mut self, result: Result<Vec<u8>, Es10Error>, now: Timestamp) {
        let Some(s) = &mut self.session else {
            return;
        };
        match std::mem::replace(&mut s.stage, Stage::Idle) {
            Stage::ReadEid => match result.and_then(|a| es10::eid_of(&a)) {
                Ok(eid) => {
                    tracing::info!(%eid, "EID read from the eUICC");
                    self.eid = Some(eid);
                    s.report.eid = Some(eid);
                    self.state.eid = Some(eid);
                    self.outbox.push_back(Action::Persist(self.state.clone()));
                    self.next_step(now);
                }
                Err(e) => self.finish(Some(SessionError::Euicc(e)), now),
            },
            Stage::LoadPackage { package } => self.package_done(&package, result, now),
            Stage::GatherData { mut plan, current } => {
                match result.and_then(|a| current.check(a)) {
                    Ok(answer) => plan.collect(current, Some(answer)),
                    Err(e @ Es10Error::Transport(_)) => {
                        return self.finish(Some(SessionError::Euicc(e)), now);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "eUICC data left out of IpaEuiccData");
                        plan.collect(current, None);
                    }
                }
                self.gather(plan, now);
            }
            Stage::RemoveAcked { seqs } => {
                match result {
                    Ok(_) => {}
                    Err(e @ Es10Error::Transport(_)) => {
                        return self.finish(Some(SessionError::Euicc(e)), now);
                    }
                    Err(e) => tracing::debug!(error = %e, "acknowledged result not removed"),
                }
                self.remove_acked(seqs, now);
            }
            Stage::Local { operation } => self.local_done(operation, result, now),
            other => {
                s.stage = other;
                tracing::warn!("an ES10 answer nobody waits for is dropped");
            }
        }
    }

    /// An answer of the eIM to GetEimPackage or ProvideEimPackageResult.
    pub(super) fn eim_replied(&mut self, reply: EimReply, now: Timestamp) {
        let Some(s) = &mut self.session else {
            return;
        };
        match std::mem::replace(&mut s.stage, Stage::Idle) {
            Stage::Poll => {
                if self.state.notify_state_change {
                    self.state.notify_state_change = false;
                    self.state.state_change_cause = None;
                    self.outbox.push_back(Action::Persist(self.state.clone()));
                }
                match reply {
                    EimReply::Package(package) => {
                        s.items += 1;
                        s.stage = Stage::LoadPackage {
                            package: package.clone(),
                        };
                        self.send_es10(package, now);
                    }
                    EimReply::DataRequest(request) => {
                        s.items += 1;
                        match DataPlan::new(&request) {
                            Ok(plan) => self.gather(Box::new(plan), now),
                            Err(reason) => {
                                tracing::warn!(%reason, "IpaEuiccDataRequest refused");
                                s.report
                                    .items
                                    .push(ItemReport::EuiccData { tags: Vec::new() });
                                match DataPlan::error_answer(None) {
                                    Ok(element) => {
                                        self.keep_result(ResultKind::EuiccData, element, None, now);
                                    }
                                    Err(e) => self.finish(Some(SessionError::Internal(e)), now),
                                }
                            }
                        }
                    }
                    EimReply::DownloadTrigger(bytes) => {
                        s.items += 1;
                        self.start_download(super::sub::Trigger::read(&bytes), now);
                    }
                    EimReply::NoPackage => {
                        s.drained = true;
                        self.next_step(now);
                    }
                    EimReply::PackageError(code) => {
                        self.finish(Some(SessionError::EimRefused(code)), now);
                    }
                    other => self.finish(Some(unexpected("getEimPackage", &other)), now),
                }
            }
            Stage::Provide { id } => self.provided(id, reply, now),
            other => {
                s.stage = other;
                tracing::warn!("an eIM answer nobody waits for is dropped");
            }
        }
    }

    /// The eIM answered the ProvideEimPackageResult of result `id`.
    fn provided(&mut self, id: u64, reply: EimReply, now: Timestamp) {
        let (acked, refused) = match reply {
            EimReply::Acknowledged(seqs) => (seqs, None),
            EimReply::Empty => (Vec::new(), None),
            EimReply::ProvideError(code) => {
                tracing::warn!(
                    code,
                    "the eIM refused a result (provideEimPackageResultError)"
                );
                (Vec::new(), Some(code))
            }
            other => {
                return self.finish(Some(unexpected("provideEimPackageResult", &other)), now);
            }
        };
        let max = self.config.max_result_attempts.max(1);
        let mut removed_seqs = VecDeque::new();
        let mut abandoned = Vec::new();
        let before = self.state.results.len();
        self.state.results.retain(|r| {
            let acknowledged = match r.seq_number {
                Some(seq) => acked.contains(&seq),
                // Results without a sequence number are done once the eIM
                // answered them without an error.
                None => r.id == id && refused.is_none(),
            };
            if acknowledged {
                removed_seqs.extend(r.seq_number);
                return false;
            }
            if r.id == id && r.attempts >= max {
                tracing::error!(
                    id = r.id,
                    attempts = r.attempts,
                    "result never acknowledged by the eIM: given up"
                );
                abandoned.push(r.clone());
                return false;
            }
            if r.id == id {
                tracing::warn!(id, seq = ?r.seq_number, "result not acknowledged: kept for the next session");
            }
            true
        });
        if let Some(s) = &mut self.session {
            s.report.acknowledged.extend(acked);
            s.report.abandoned.extend(abandoned);
        }
        if self.state.results.len() != before {
            self.outbox.push_back(Action::Persist(self.state.clone()));
        }
        if let Some(code) = refused {
            // The eIM did not store this result, so the package it answers is
            // still the head of the device's queue: polling now would only
            // fetch that package again for the eUICC to refuse as a replay.
            // End the session; the result goes first in the next one, after
            // the backoff.
            return self.finish(Some(SessionError::ResultRefused(code)), now);
        }
        self.remove_acked(removed_seqs, now);
    }

    /// Removes the next acknowledged result from the eUICC's list (SGP.32:
    /// the eUICC may drop a result once the eIM stored it).
    fn remove_acked(&mut self, mut seqs: VecDeque<i64>, now: Timestamp) {
        let Some(seq) = seqs.pop_front() else {
            return self.next_step(now);
        };
        if let Some(s) = &mut self.session {
            s.stage = Stage::RemoveAcked { seqs };
        }
        self.send_es10(es10::remove(seq), now);
    }

    /// The eUICC answered LoadEuiccPackage.
    fn package_done(&mut self, package: &[u8], result: Result<Vec<u8>, Es10Error>, now: Timestamp) {
        let (counter, transaction_id) = package_info(package);
        let (element, seq, outcome) = match result.and_then(|a| Command::LoadEuiccPackage.check(a))
        {
            Ok(answer) => {
                let (seq, outcome) = package_outcome(&answer);
                (answer, seq, outcome)
            }
            Err(Es10Error::Status { command, sw }) => {
                let reason = format!("{command} answered {sw}");
                tracing::warn!(%reason, "the eUICC could not read the package");
                let element = encode_der(&sgp32::EimPackageResult::eimPackageResultResponseError(
                    sgp32::EimPackageResultResponseError::new(
                        transaction_id,
                        sgp32::EimPackageResultErrorCode(Integer::from(1)),
                    ),
                ));
                match element {
                    Ok(e) => (e, None, PackageOutcome::Unreadable { reason }),
                    Err(e) => return self.finish(Some(SessionError::Internal(e.to_string())), now),
                }
            }
            Err(e) => return self.finish(Some(SessionError::Euicc(e)), now),
        };
        tracing::info!(?counter, ?outcome, "eUICC package run");
        if let Some(s) = &mut self.session {
            s.report
                .items
                .push(ItemReport::Package { counter, outcome });
        }
        self.keep_result(ResultKind::Package, element, seq, now);
    }

    /// Runs the next ES10 read of an IpaEuiccDataRequest, or answers it.
    fn gather(&mut self, mut plan: Box<DataPlan>, now: Timestamp) {
        if let Some(current) = plan.commands.pop_front() {
            if let Some(s) = &mut self.session {
                s.stage = Stage::GatherData { plan, current };
            }
            return self.send_es10(current.request(), now);
        }
        let package_results: Vec<Vec<u8>> = self
            .state
            .results
            .iter()
            .filter(|r| r.kind == ResultKind::Package)
            .map(|r| r.element.clone())
            .collect();
        if let Some(s) = &mut self.session {
            s.report.items.push(ItemReport::EuiccData {
                tags: plan.tags.clone(),
            });
        }
        match plan.answer(
            &package_results,
            &self.config.device_info,
            self.config.download_path,
        ) {
            Ok(element) => self.keep_result(ResultKind::EuiccData, element, None, now),
            Err(e) => self.finish(Some(SessionError::Internal(e)), now),
        }
    }

    /// Keeps a new result (persisted before it is sent) and goes on.
    pub(super) fn keep_result(
        &mut self,
        kind: ResultKind,
        element: Vec<u8>,
        seq: Option<i64>,
        now: Timestamp,
    ) {
        let id = self.state.push(kind, element, seq);
        self.outbox.push_back(Action::Persist(self.state.clone()));
        if let Some(s) = &mut self.session {
            s.to_send.push_back(id);
        }
        self.next_step(now);
    }

    /// Ends the session and schedules the next one.
    pub(super) fn finish(&mut self, error: Option<SessionError>, now: Timestamp) {
        let Some(session) = self.session.take() else {
            return;
        };
        let delay = if error.is_some() {
            self.state.failures = self.state.failures.saturating_add(1);
            let ceiling = self.config.backoff.ceiling(self.state.failures);
            self.jitter(ceiling, 500, 1000)
        } else {
            self.state.failures = 0;
            self.jitter(self.config.poll_interval, 900, 1100)
        };
        self.next_session = now.plus(delay);
        let mut report = session.report;
        if let Some(e) = &error {
            tracing::warn!(error = %e, failures = self.state.failures, retry_in = ?delay, "IPA session failed");
        }
        report.ended = now;
        report.error = error;
        report.pending = self.state.results.len();
        report.next_session = self.next_session;
        self.outbox.push_back(Action::Persist(self.state.clone()));
        self.outbox.push_back(Action::SessionDone(Box::new(report)));
    }
}

fn unexpected(function: &'static str, reply: &EimReply) -> SessionError {
    SessionError::Eim(EsipaError::BadAnswer {
        function,
        status: 200,
        reason: format!("unexpected answer {reply:?}"),
    })
}

/// The counter value and eimTransactionId of a package, when readable.
fn package_info(package: &[u8]) -> (Option<u64>, Option<rsp::TransactionId>) {
    euicc_package_request(package)
        .ok()
        .and_then(|part| decode_der::<sgp32::EuiccPackageSigned>(part.signed).ok())
        .map_or((None, None), |signed| {
            (
                u64::try_from(&signed.counter_value).ok(),
                signed.eim_transaction_id,
            )
        })
}

/// The sequence number and outcome of an EuiccPackageResult.
pub(super) fn package_outcome(result: &[u8]) -> (Option<i64>, PackageOutcome) {
    use sgp32::EuiccPackageResult as R;
    let small = |i: &Integer| i64::try_from(i.clone()).unwrap_or(-1);
    match decode_der::<R>(result) {
        Ok(R::euiccPackageResultSigned(s)) => {
            let data = &s.euicc_package_result_data_signed;
            let seq = small(&data.seq_number);
            let codes = data.euicc_result.iter().map(result_code).collect();
            (
                Some(seq),
                PackageOutcome::Executed {
                    seq_number: seq,
                    codes,
                },
            )
        }
        Ok(R::euiccPackageErrorSigned(e)) => (
            None,
            PackageOutcome::Refused {
                code: small(&e.euicc_package_error_data_signed.euicc_package_error_code.0),
            },
        ),
        Ok(R::euiccPackageErrorUnsigned(u)) => (
            None,
            PackageOutcome::RefusedUnsigned {
                code: u
                    .euicc_package_unsigned_error_code
                    .as_ref()
                    .map(|c| small(&c.0)),
            },
        ),
        Err(e) => (
            None,
            PackageOutcome::Unreadable {
                reason: format!("EuiccPackageResult: {e}"),
            },
        ),
    }
}

/// The result code of one operation: the INTEGER of a primitive result, -1
/// for a constructed one (a list).
fn result_code(result: &sgp32::EuiccResultData) -> i64 {
    let Ok(der) = encode_der(result) else {
        return -1;
    };
    match Tlv::parse_exact(&der) {
        Ok(t) if !t.is_constructed() && !t.value.is_empty() && t.value.len() <= 8 => {
            let mut n: i64 = if t.value[0] & 0x80 != 0 { -1 } else { 0 };
            for b in t.value {
                n = (n << 8) | i64::from(*b);
            }
            n
        }
        _ => -1,
    }
}
