//! ProvideEimPackageResult (and a result carried by HandleNotification):
//! the IPA returns what the device did with the head of its queue.
//!
//! Every eUICC package result is matched to the delivered package with its
//! counter value, checked (eIM id, eimTransactionId, the eUICC's signature
//! over the right input for its version) and only then stored, which ends
//! the package; a refused result changes nothing and is not acknowledged, so
//! the eUICC keeps it. The answer acknowledges the sequence numbers of the
//! results stored now or earlier (`EimAcknowledgements`): the eUICC drops a
//! result only once the eIM has stored it, because the driver sends the
//! answer only after the commit.

use ferrosim_asn1::esipa::{IpaMessage, ReceivedPackageResult, Sgp32Version};
use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::signed::sgp32::euicc_package_request;
use ferrosim_asn1::{encode_der, rsp, sgp32};
use ferrosim_pki::TrustStore;
use ferrosim_pki::crl::RevocationWarning;

use super::associate::update;
use super::{Step, certificates, profiles, verify};
use crate::error::{EimError, ResultRefused};
use crate::ids::Timestamp;
use crate::ids::{Counter, EimTransactionId};
use crate::record::{
    DeviceRecord, ItemKind, ItemOutcome, ItemState, NotificationRecord, ResultRecord,
    RollbackGrant, Trust,
};
use crate::store::Versioned;

/// `euiccPackageErrorCode` replayError: the eUICC saw this counter before.
pub const REPLAY_ERROR: i64 = 4;

/// What the eIM did with a ProvideEimPackageResult.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvideReport {
    /// The answer (`None` for a HandleNotification, which has none: its
    /// acknowledgements go with the next ProvideEimPackageResultResponse).
    pub response: Option<sgp32::ProvideEimPackageResultResponse>,
    /// The wire version of the IPA.
    pub version: Sgp32Version,
    /// Items that ended, by id.
    pub ended: Vec<u64>,
    /// Sequence numbers acknowledged.
    pub acknowledged: Vec<i64>,
    /// Package results refused, by their position in the message.
    pub refused: Vec<(usize, ResultRefused)>,
    /// Parts of the message that matched no open item (logged, not stored).
    pub unmatched: Vec<&'static str>,
    /// Reported eUICC certificates accepted although their revocation
    /// status is unknown (policy `warn`; logged).
    pub warnings: Vec<RevocationWarning>,
}

/// Handles a ProvideEimPackageResult of an associated device. `message`
/// must be a provideEimPackageResult or a handleNotificationEsipa carrying
/// one; `known` holds the stored results of the counters it names that are
/// no longer open (to recognise a result sent again). eUICC certificates
/// reported in IpaEuiccData are verified against `trust` (with its CRLs)
/// before they are stored: a chain that does not verify refuses the message.
pub fn provide(
    device: &Versioned<DeviceRecord>,
    message: &IpaMessage,
    known: &[ResultRecord],
    trust: &TrustStore,
    now: Timestamp,
) -> Result<Step<ProvideReport>, EimError> {
    let (provide, answered) = match &message.message {
        sgp32::EsipaMessageFromIpaToEim::provideEimPackageResult(p) => (p, true),
        sgp32::EsipaMessageFromIpaToEim::handleNotificationEsipa(
            sgp32::HandleNotificationEsipa::provideEimPackageResult(p),
        ) => (p, false),
        _ => return Err(EimError::UnexpectedMessage("not a ProvideEimPackageResult")),
    };
    let mut work = Work {
        trust,
        record: device.record.clone(),
        read_as: message.read_as,
        now,
        results: Vec::new(),
        notifications: Vec::new(),
        acks: Vec::new(),
        report: ProvideReport {
            response: None,
            version: message.read_as,
            ended: Vec::new(),
            acknowledged: Vec::new(),
            refused: Vec::new(),
            unmatched: Vec::new(),
            warnings: Vec::new(),
        },
    };
    for (index, received) in message.package_results.iter().enumerate() {
        if let Err(reason) = work.package_result(received, known) {
            work.report.refused.push((index, reason));
        }
    }
    match &provide.eim_package_result {
        sgp32::EimPackageResult::euiccPackageResult(_) => {}
        sgp32::EimPackageResult::ePRAndNotifications(both) => {
            for n in &both.notification_list.0 {
                work.notification(n);
            }
        }
        sgp32::EimPackageResult::ipaEuiccDataResponse(data) => work.data_response(data)?,
        sgp32::EimPackageResult::profileDownloadTriggerResult(t) => work.download_result(t)?,
        sgp32::EimPackageResult::eimPackageResultResponseError(e) => work.rejected(e),
    }
    Ok(work.finish(device, answered))
}

struct Work<'a> {
    trust: &'a TrustStore,
    record: DeviceRecord,
    read_as: Sgp32Version,
    now: Timestamp,
    results: Vec<ResultRecord>,
    notifications: Vec<NotificationRecord>,
    acks: Vec<i64>,
    report: ProvideReport,
}

impl Work<'_> {
    /// One eUICC package result.
    fn package_result(
        &mut self,
        received: &ReceivedPackageResult,
        known: &[ResultRecord],
    ) -> Result<(), ResultRefused> {
        use sgp32::EuiccPackageResult as R;
        let value = received
            .value()
            .map_err(|e| ResultRefused::Malformed(e.to_string()))?;
        let (eim_id, counter, tid, seq, outcome) = match &value {
            R::euiccPackageResultSigned(s) => {
                let d = &s.euicc_package_result_data_signed;
                let codes = d.euicc_result.iter().map(result_code).collect();
                (
                    &d.eim_id,
                    Some(&d.counter_value),
                    d.eim_transaction_id.as_ref(),
                    Some(&d.seq_number),
                    ItemOutcome::Executed(codes),
                )
            }
            R::euiccPackageErrorSigned(e) => {
                let d = &e.euicc_package_error_data_signed;
                (
                    &d.eim_id,
                    Some(&d.counter_value),
                    d.eim_transaction_id.as_ref(),
                    None,
                    ItemOutcome::PackageError(small(&d.euicc_package_error_code.0).unwrap_or(127)),
                )
            }
            R::euiccPackageErrorUnsigned(u) => {
                let code = u
                    .euicc_package_unsigned_error_code
                    .as_ref()
                    .and_then(|c| small(&c.0))
                    .unwrap_or(127);
                (
                    &u.eim_id,
                    None,
                    u.eim_transaction_id.as_ref(),
                    None,
                    ItemOutcome::PackageError(code),
                )
            }
        };
        if eim_id != self.record.association.eim_id.as_str() {
            return Err(ResultRefused::OtherEim(eim_id.clone()));
        }
        let seq = seq.and_then(small);
        let index = match counter {
            Some(counter) => {
                let counter =
                    Counter::from_integer(counter).map_err(|_| ResultRefused::CounterOutOfRange)?;
                match self
                    .record
                    .queue
                    .iter()
                    .position(|i| i.counter == Some(counter))
                {
                    Some(index) => index,
                    None => {
                        if let Some(rollback) = self.rollback(&value, counter, tid, received) {
                            return rollback;
                        }
                        return self.answered_before(known, counter, received);
                    }
                }
            }
            // An unsigned error names its package by transaction id only.
            None => {
                if !self.record.emulated {
                    return Err(ResultRefused::Unsigned);
                }
                self.unsigned_error_item(tid)
                    .ok_or(ResultRefused::Unmatched)?
            }
        };
        let item = &self.record.queue[index];
        if item.state == ItemState::Queued {
            return Err(ResultRefused::NotDelivered(
                item.counter.map_or(0, Counter::get),
            ));
        }
        if tid.is_some_and(|t| t.0.as_ref() != item.transaction_id.as_bytes()) {
            return Err(ResultRefused::TransactionMismatch);
        }
        let trust = match counter {
            Some(_) => verify::check(&self.record, &item.der, received)?,
            None => Trust::Unsigned,
        };
        if outcome == ItemOutcome::PackageError(REPLAY_ERROR) {
            // The eUICC already ran this counter: its result is still in the
            // eUICC; ask for it before ending the package.
            let item = &mut self.record.queue[index];
            if !matches!(item.state, ItemState::AwaitingResult { .. }) {
                item.state = ItemState::AwaitingResult { since: self.now };
                item.replay_error = Some(received.alternative().to_vec());
            }
            return Ok(());
        }
        if let R::euiccPackageResultSigned(s) = &value {
            let enabled = profiles::apply_results(
                &mut self.record.profiles,
                &item.der,
                &s.euicc_package_result_data_signed.euicc_result,
                self.now,
            );
            // The eUICC ran this package: a rollback is possible from its
            // enable with rollbackFlag, and no longer from an earlier one.
            self.record.rollback = match (enabled, item.counter) {
                (Some(enabled), Some(counter)) => Some(Box::new(RollbackGrant {
                    counter,
                    transaction_id: item.transaction_id,
                    eim_signature: euicc_package_request(&item.der)
                        .map(|p| p.signature_tlv.to_vec())
                        .unwrap_or_default(),
                    enabled: enabled.enabled,
                    previous: enabled.previous,
                    rolled_back: None,
                })),
                _ => None,
            };
        }
        let item = self.record.queue.remove(index);
        self.report.ended.push(item.id);
        self.acks.extend(seq);
        self.results.push(ResultRecord {
            eid: self.record.eid,
            item_id: item.id,
            kind: ItemKind::Package,
            counter: item.counter,
            seq_number: seq,
            trust: Some(trust),
            outcome,
            der: received.alternative().to_vec(),
            read_as: self.read_as,
            received_at: self.now,
        });
        Ok(())
    }

    /// A rollback result: the eUICC's signed `rollbackResult` after a
    /// ProfileRollback the IPA ran on its own, carrying the counter value
    /// of the package that enabled with rollbackFlag (ended earlier).
    /// `None` when `value` is not one or that package granted no rollback
    /// the eIM knows of (then it is a result for a closed counter).
    fn rollback(
        &mut self,
        value: &sgp32::EuiccPackageResult,
        counter: Counter,
        tid: Option<&rsp::TransactionId>,
        received: &ReceivedPackageResult,
    ) -> Option<Result<(), ResultRefused>> {
        let sgp32::EuiccPackageResult::euiccPackageResultSigned(s) = value else {
            return None;
        };
        let data = &s.euicc_package_result_data_signed;
        let [sgp32::EuiccResultData::rollbackResult(code)] = data.euicc_result.as_slice() else {
            return None;
        };
        let grant = self
            .record
            .rollback
            .clone()
            .filter(|g| g.counter == counter)?;
        Some(self.accept_rollback(
            *grant,
            small(&code.0),
            small(&data.seq_number),
            tid,
            received,
        ))
    }

    /// Checks and stores a rollback result for `grant` (see [`Self::rollback`]).
    fn accept_rollback(
        &mut self,
        grant: RollbackGrant,
        code: Option<i64>,
        seq: Option<i64>,
        tid: Option<&rsp::TransactionId>,
        received: &ReceivedPackageResult,
    ) -> Result<(), ResultRefused> {
        if tid.is_some_and(|t| t.0.as_ref() != grant.transaction_id.as_bytes()) {
            return Err(ResultRefused::TransactionMismatch);
        }
        let seq = seq.ok_or_else(|| {
            ResultRefused::Malformed("rollback result: sequence number out of range".into())
        })?;
        let trust = verify::check_with(&self.record, &grant.eim_signature, received)?;
        match grant.rolled_back {
            // The same result sent again (its acknowledgement got lost).
            Some(stored) if stored == seq => {
                self.acks.push(seq);
                return Ok(());
            }
            Some(_) => return Err(ResultRefused::AlreadyAnswered(grant.counter.get())),
            None => {}
        }
        if code == Some(0) {
            profiles::apply_rollback(
                &mut self.record.profiles,
                &grant.enabled,
                grant.previous.as_ref(),
                self.now,
            );
        }
        let item_id = self.record.next_item;
        self.record.next_item += 1;
        if let Some(g) = &mut self.record.rollback {
            g.rolled_back = Some(seq);
        }
        self.acks.push(seq);
        self.results.push(ResultRecord {
            eid: self.record.eid,
            item_id,
            kind: ItemKind::Rollback,
            counter: Some(grant.counter),
            seq_number: Some(seq),
            trust: Some(trust),
            outcome: ItemOutcome::Executed(vec![code]),
            der: received.alternative().to_vec(),
            read_as: self.read_as,
            received_at: self.now,
        });
        Ok(())
    }

    /// A result for a counter that is no longer open: the same result sent
    /// again is acknowledged again; anything else is refused.
    fn answered_before(
        &mut self,
        known: &[ResultRecord],
        counter: Counter,
        received: &ReceivedPackageResult,
    ) -> Result<(), ResultRefused> {
        match known
            .iter()
            .find(|r| r.eid == self.record.eid && r.counter == Some(counter))
        {
            Some(stored) if stored.der == received.alternative() => {
                self.acks.extend(stored.seq_number);
                Ok(())
            }
            Some(_) => Err(ResultRefused::AlreadyAnswered(counter.get())),
            None => Err(ResultRefused::UnknownCounter(counter.get())),
        }
    }

    /// The delivered package an unsigned error answers: by transaction id,
    /// else the head of the queue if it is a delivered package.
    fn unsigned_error_item(&self, tid: Option<&rsp::TransactionId>) -> Option<usize> {
        match tid {
            Some(t) => self.record.queue.iter().position(|i| {
                i.kind == ItemKind::Package && i.transaction_id.as_bytes() == t.0.as_ref()
            }),
            None => self
                .record
                .queue
                .first()
                .filter(|i| i.kind == ItemKind::Package && i.state != ItemState::Queued)
                .map(|_| 0),
        }
    }

    fn notification(&mut self, notification: &sgp32::PendingNotification) {
        let seq = profiles::apply_notification(&mut self.record.profiles, notification, self.now);
        // Kept as re-encoded from the decoded value: identical to the
        // received bytes for DER input, which is what eUICCs produce.
        if let (Some(seq_number), Ok(der)) = (seq, encode_der(notification)) {
            self.notifications.push(NotificationRecord {
                eid: self.record.eid,
                seq_number,
                der,
                received_at: self.now,
            });
        }
    }

    fn data_response(&mut self, response: &sgp32::IpaEuiccDataResponse) -> Result<(), EimError> {
        let (tid, code) = match response {
            sgp32::IpaEuiccDataResponse::ipaEuiccData(d) => {
                for n in d.notifications_list.iter().flat_map(|l| &l.0) {
                    self.notification(n);
                }
                self.euicc_data(d)?;
                (d.eim_transaction_id.as_ref(), None)
            }
            sgp32::IpaEuiccDataResponse::ipaEuiccDataResponseError(e) => (
                e.eim_transaction_id.as_ref(),
                Some(small(&e.ipa_euicc_data_error_code.0).unwrap_or(127)),
            ),
        };
        let index = match tid {
            // An id of another length than this eIM's names none of its items.
            Some(t) => EimTransactionId::from_slice(t.0.as_ref())
                .and_then(|t| self.record.item_with_transaction(&t))
                .map(|i| i.id),
            None => self
                .record
                .queue
                .first()
                .filter(|i| {
                    (i.kind == ItemKind::DataRequest && i.state != ItemState::Queued)
                        || matches!(i.state, ItemState::AwaitingResult { .. })
                })
                .map(|i| i.id),
        }
        .and_then(|id| self.record.queue.iter().position(|i| i.id == id));
        let Some(index) = index else {
            self.report.unmatched.push("ipaEuiccDataResponse");
            return Ok(());
        };
        let item = self.record.queue.remove(index);
        self.report.ended.push(item.id);
        let (outcome, trust, der) = match (item.kind, item.replay_error) {
            // The package whose result was asked for, and that was not among
            // the results the eUICC returned: it ends with its replayError.
            (ItemKind::Package, Some(evidence)) => (
                ItemOutcome::PackageError(REPLAY_ERROR),
                Some(if self.record.emulated {
                    Trust::Unsigned
                } else {
                    Trust::Verified
                }),
                evidence,
            ),
            _ => (ItemOutcome::DataReported(code), None, encode_der(response)?),
        };
        self.results.push(ResultRecord {
            eid: self.record.eid,
            item_id: item.id,
            kind: item.kind,
            counter: item.counter,
            seq_number: None,
            trust,
            outcome,
            der,
            read_as: self.read_as,
            received_at: self.now,
        });
        Ok(())
    }

    /// What IpaEuiccData says about the eUICC; the SGP.32 version in
    /// EUICCInfo2 becomes the association's (it decides signature inputs).
    fn euicc_data(&mut self, d: &sgp32::IpaEuiccData) -> Result<(), EimError> {
        let eum = d.eum_certificate.as_ref().map(encode_der).transpose()?;
        let euicc = d.euicc_certificate.as_ref().map(encode_der).transpose()?;
        let warnings = certificates::check_reported(
            &self.record,
            eum.as_deref(),
            euicc.as_deref(),
            self.trust,
            self.now,
        )?;
        self.report.warnings.extend(warnings);
        let e = &mut self.record.euicc;
        if let Some(v) = &d.euicc_info1 {
            e.info1 = Some(encode_der(v)?);
        }
        if let Some(v) = &d.euicc_info2 {
            e.info2 = Some(encode_der(v)?);
            let version = v.iot_specific_info.as_ref().and_then(|iot| {
                iot.iot_version
                    .iter()
                    .filter_map(|v| Sgp32Version::from_version_type(v.0.as_slice()))
                    .max()
            });
            if let Some(version) = version {
                self.record.association.euicc_version = version;
            }
        }
        if let Some(v) = &d.default_smdp_address {
            e.default_smdp_address = Some(v.clone());
        }
        if let Some(v) = &d.root_smds_address {
            e.root_smds_address = Some(v.clone());
        }
        if let Some(v) = eum {
            e.eum_certificate = Some(v);
        }
        if let Some(v) = euicc {
            e.euicc_certificate = Some(v);
        }
        if let Some(v) = &d.ipa_capabilities {
            e.ipa_capabilities = Some(encode_der(v)?);
        }
        if let Some(v) = &d.device_info {
            e.device_info = Some(encode_der(v)?);
        }
        e.reported_at = Some(self.now);
        Ok(())
    }

    fn download_result(
        &mut self,
        result: &sgp32::ProfileDownloadTriggerResult,
    ) -> Result<(), EimError> {
        use sgp32::ProfileDownloadTriggerResultProfileDownloadTriggerResultData as D;
        let Some(index) = self.item_for(
            result.eim_transaction_id.as_ref(),
            ItemKind::DownloadTrigger,
        ) else {
            self.report.unmatched.push("profileDownloadTriggerResult");
            return Ok(());
        };
        let outcome = match &result.profile_download_trigger_result_data {
            D::profileInstallationResult(pir) => {
                let data = &pir.profile_installation_result_data;
                let ok = matches!(
                    data.final_result,
                    rsp::ProfileInstallationResultDataFinalResult::successResult(_)
                );
                let iccid = data
                    .notification_metadata
                    .iccid
                    .as_ref()
                    .and_then(profiles::iccid);
                if let (true, Some(installed)) = (ok, &iccid) {
                    profiles::apply_install(&mut self.record.profiles, installed.clone(), self.now);
                }
                ItemOutcome::Installed { ok, iccid }
            }
            D::profileDownloadError(e) => {
                ItemOutcome::DownloadFailed(small(&e.profile_download_error_reason).unwrap_or(127))
            }
        };
        let item = self.record.queue.remove(index);
        self.report.ended.push(item.id);
        self.results.push(ResultRecord {
            eid: self.record.eid,
            item_id: item.id,
            kind: item.kind,
            counter: None,
            seq_number: None,
            trust: None,
            outcome,
            der: encode_der(result)?,
            read_as: self.read_as,
            received_at: self.now,
        });
        Ok(())
    }

    /// The IPA could not process the item (`eimPackageResultResponseError`).
    fn rejected(&mut self, error: &sgp32::EimPackageResultResponseError) {
        let tid = error.eim_transaction_id.as_ref();
        let index = match tid {
            Some(t) => self
                .record
                .queue
                .iter()
                .position(|i| i.transaction_id.as_bytes() == t.0.as_ref()),
            None => self
                .record
                .queue
                .first()
                .filter(|i| i.state != ItemState::Queued)
                .map(|_| 0),
        };
        let Some(index) = index else {
            self.report.unmatched.push("eimPackageResultResponseError");
            return;
        };
        let item = self.record.queue.remove(index);
        self.report.ended.push(item.id);
        self.results.push(ResultRecord {
            eid: self.record.eid,
            item_id: item.id,
            kind: item.kind,
            counter: item.counter,
            seq_number: None,
            trust: None,
            outcome: ItemOutcome::Rejected(
                small(&error.eim_package_result_error_code.0).unwrap_or(127),
            ),
            der: Vec::new(),
            read_as: self.read_as,
            received_at: self.now,
        });
    }

    /// The delivered item of `kind` with this transaction id, else the head
    /// of the queue if it is a delivered item of that kind.
    fn item_for(&self, tid: Option<&rsp::TransactionId>, kind: ItemKind) -> Option<usize> {
        let queue = &self.record.queue;
        match tid {
            Some(t) => queue
                .iter()
                .position(|i| i.kind == kind && i.transaction_id.as_bytes() == t.0.as_ref()),
            None => queue
                .first()
                .filter(|i| i.kind == kind && i.state != ItemState::Queued)
                .map(|_| 0),
        }
    }

    fn finish(mut self, device: &Versioned<DeviceRecord>, answered: bool) -> Step<ProvideReport> {
        let mut acks = self.acks;
        if answered {
            acks.append(&mut self.record.pending_acks);
            acks.sort_unstable();
            acks.dedup();
            self.report.response = Some(if acks.is_empty() {
                sgp32::ProvideEimPackageResultResponse::emptyResponse(
                    sgp32::ProvideEimPackageResultResponseEmptyResponse::new(),
                )
            } else {
                sgp32::ProvideEimPackageResultResponse::eimAcknowledgements(
                    sgp32::EimAcknowledgements(
                        acks.iter()
                            .map(|s| sgp32::SequenceNumber(Integer::from(*s)))
                            .collect(),
                    ),
                )
            });
            self.report.acknowledged = acks;
        } else {
            self.record.pending_acks.extend(acks);
            self.record.pending_acks.sort_unstable();
            self.record.pending_acks.dedup();
        }
        let mut changes = update(device, self.record);
        changes.results = self.results;
        changes.notifications = self.notifications;
        Step::new(changes, self.report)
    }
}

/// The result code of one operation (`None` for results without one).
fn result_code(result: &sgp32::EuiccResultData) -> Option<i64> {
    use sgp32::EuiccResultData as R;
    match result {
        R::enableResult(c) => small(&c.0),
        R::disableResult(c) => small(&c.0),
        R::deleteResult(c) => small(&c.0),
        R::listProfileInfoResult(sgp32::ProfileInfoListResponse::profileInfoListError(c)) => {
            small(&c.0)
        }
        R::configureImmediateEnableResult(c) => small(&c.0),
        R::addEimResult(sgp32::AddEimResult::addEimResultCode(c)) => small(c),
        R::deleteEimResult(c) => small(&c.0),
        R::updateEimResult(c) => small(&c.0),
        R::listEimResult(sgp32::ListEimResult::listEimError(c)) => small(c),
        R::rollbackResult(c) => small(&c.0),
        R::setFallbackAttributeResult(c) => small(&c.0),
        R::unsetFallbackAttributeResult(c) => small(&c.0),
        R::processingTerminated(c) => small(c),
        R::setDefaultDpAddressResult(r) => small(&r.set_default_dp_address_result),
        R::listProfileInfoResult(_)
        | R::getRATResult(_)
        | R::addEimResult(_)
        | R::listEimResult(_) => None,
    }
}

fn small(value: &Integer) -> Option<i64> {
    i64::try_from(value.clone()).ok()
}
