//! [`Eim`]: the drivers of the eIM's steps over an [`EimStore`].
//!
//! Each method loads the records a step needs, runs the step, commits its
//! changes and returns its answer; a commit that finds the device record
//! changed ([`StoreError::Stale`]) wrote nothing, and the step runs again on
//! the fresh record (at most [`ATTEMPTS`] times). The methods take `now` and
//! a `CryptoRng`; the eIM key is a `ferrosim_crypto` [`KeySource`] (a key
//! file or a PKCS#11 token, as for DPauth).
//!
//! [`Eim::handle_asn1`] serves the ESipa ASN.1 binding: one DER
//! `EsipaMessageFromIpaToEim` in, one DER `EsipaMessageFromEimToIpa` (in
//! the version of the IPA) out.

use std::sync::Arc;

use ferrosim_asn1::esipa::{IpaMessage, Sgp32Version, encode_eim_message, read_ipa_message};
use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::sgp32;
use ferrosim_crypto::KeySource;
use ferrosim_pki::TrustStore;
use rand::CryptoRng;
use tracing::{info, warn};

use crate::error::EimError;
use crate::ids::Timestamp;
use crate::ids::{Counter, Eid, EimId, EimTransactionId};
use crate::package::PackageContent;
use crate::record::{DeviceRecord, ResultRecord};
use crate::relay::{self, Es9Relay, NoRelay};
use crate::steps::Step;
use crate::steps::associate::{AssociationRequest, associate_parsed, reassociate, set_emulated};
use crate::steps::certificates::check_device;
use crate::steps::enqueue::{
    DataItem, DownloadTrigger, Queued, enqueue_data_request, enqueue_download, enqueue_package,
    withdraw,
};
use crate::steps::poll::{PollAnswer, package_error, poll};
use crate::steps::provide::{ProvideReport, provide};
use crate::steps::sanitize::{self, Release, SanitizeOptions, SanitizeReport};
use crate::store::{EimStore, StoreError, Versioned};

mod relayed;
mod reply;

pub use reply::EsipaReply;

/// How often a driver runs a step whose commit lost a race.
pub const ATTEMPTS: usize = 4;

/// The eIM's identity and trust.
#[derive(Clone)]
pub struct EimConfig {
    /// The eIM id new associations are made under.
    pub eim_id: EimId,
    /// The key that signs eUICC packages.
    pub key: Arc<dyn KeySource>,
    /// The CIs eUICC certificates must chain to.
    pub trust: TrustStore,
}

impl std::fmt::Debug for EimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EimConfig")
            .field("eim_id", &self.eim_id)
            .finish_non_exhaustive()
    }
}

/// The answer to one ESipa message of the ASN.1 binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EsipaAnswer {
    /// A DER `EsipaMessageFromEimToIpa`.
    Message {
        /// The bytes.
        der: Vec<u8>,
        /// The version it is written in.
        version: Sgp32Version,
    },
    /// No body (a HandleNotification).
    NoContent,
}

/// The eIM over a store.
#[derive(Debug, Clone)]
pub struct Eim<S> {
    store: S,
    config: EimConfig,
}

impl<S: EimStore> Eim<S> {
    /// An eIM on `store`.
    pub fn new(store: S, config: EimConfig) -> Self {
        Self { store, config }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &EimConfig {
        &self.config
    }

    /// Associates a device (see [`crate::steps::associate`]).
    pub async fn associate(
        &self,
        request: AssociationRequest,
        now: Timestamp,
    ) -> Result<(), EimError> {
        self.associate_parsed(request, None, now).await
    }

    /// [`Eim::associate`] with the eUICC certificate its caller already
    /// parsed (see [`crate::steps::associate::associate_parsed`]: the same
    /// checks, without parsing the certificate again).
    pub async fn associate_parsed(
        &self,
        request: AssociationRequest,
        parsed: Option<ferrosim_pki::RspCertificate>,
        now: Timestamp,
    ) -> Result<(), EimError> {
        let existing = self.store.device(&request.eid).await?;
        let eid = request.eid;
        let step = match &existing {
            Some(device) if device.record.release_ordered() => {
                let results = self.store.results(&eid).await?;
                let released = sanitize::report(&device.record, &results)
                    .is_some_and(|r| r.verdict == sanitize::Verdict::Released);
                reassociate(
                    device,
                    released,
                    request,
                    parsed,
                    &self.config.eim_id,
                    &self.config.trust,
                    now,
                )?
            }
            _ => associate_parsed(
                existing.as_ref(),
                request,
                parsed,
                &self.config.eim_id,
                &self.config.trust,
                now,
            )?,
        };
        match self.store.commit(step.changes).await {
            Err(StoreError::Conflict(_)) => Err(EimError::AlreadyAssociated(eid)),
            other => Ok(other?),
        }
    }

    /// Marks or unmarks a device as emulating the IoT functions on a consumer eUICC.
    pub async fn set_emulated(&self, eid: &Eid, emulated: bool) -> Result<(), EimError> {
        self.on_device(eid, |device| Ok(set_emulated(device, emulated)))
            .await
    }

    /// Signs and queues a package (the next counter value).
    pub async fn enqueue_package(
        &self,
        eid: &Eid,
        content: &PackageContent,
        rng: &mut impl CryptoRng,
        now: Timestamp,
    ) -> Result<Queued, EimError> {
        let key = self.config.key.clone();
        self.on_device(eid, |device| {
            enqueue_package(device, content, key.as_ref(), &mut *rng, now)
        })
        .await
    }

    /// Queues a profile download trigger.
    pub async fn enqueue_download(
        &self,
        eid: &Eid,
        trigger: &DownloadTrigger,
        rng: &mut impl CryptoRng,
        now: Timestamp,
    ) -> Result<Queued, EimError> {
        self.on_device(eid, |device| {
            enqueue_download(device, trigger, &mut *rng, now)
        })
        .await
    }

    /// Queues a request for eUICC data.
    pub async fn enqueue_data_request(
        &self,
        eid: &Eid,
        items: &[DataItem],
        rng: &mut impl CryptoRng,
        now: Timestamp,
    ) -> Result<Queued, EimError> {
        self.on_device(eid, |device| {
            enqueue_data_request(device, items, &mut *rng, now)
        })
        .await
    }

    /// Withdraws an undelivered item.
    pub async fn withdraw(&self, eid: &Eid, item_id: u64) -> Result<(), EimError> {
        self.on_device(eid, |device| withdraw(device, item_id))
            .await
    }

    /// Starts a sanitization of a device (see [`crate::steps::sanitize`]):
    /// withdraws what was not delivered, queues the signed wipe package and
    /// the listEim; answers the sanitization as ordered.
    pub async fn sanitize(
        &self,
        eid: &Eid,
        options: SanitizeOptions,
        rng: &mut impl CryptoRng,
        now: Timestamp,
    ) -> Result<crate::record::Sanitization, EimError> {
        let key = self.config.key.clone();
        self.on_device(eid, |device| {
            sanitize::start(device, options, key.as_ref(), &mut *rng, now)
        })
        .await
    }

    /// The report of a device's last sanitization, from the eUICC's stored
    /// results ([`EimError::NotSanitized`] if it never had one).
    pub async fn sanitize_report(&self, eid: &Eid) -> Result<SanitizeReport, EimError> {
        let device = self.load(eid).await?;
        let results = self.store.results(eid).await?;
        sanitize::report(&device.record, &results).ok_or(EimError::NotSanitized(*eid))
    }

    /// Orders the release of a device whose sanitization is clean: the
    /// signed eCO deleteEim of this eIM.
    pub async fn release(
        &self,
        eid: &Eid,
        rng: &mut impl CryptoRng,
        now: Timestamp,
    ) -> Result<Release, EimError> {
        let key = self.config.key.clone();
        for _ in 0..ATTEMPTS {
            let device = self.load(eid).await?;
            let results = self.store.results(eid).await?;
            let step = sanitize::release(&device, &results, key.as_ref(), &mut *rng, now)?;
            if self.settle(step.changes).await? {
                return Ok(step.answer);
            }
        }
        Err(StoreError::Stale.into())
    }

    /// One device's record.
    pub async fn device(&self, eid: &Eid) -> Result<DeviceRecord, EimError> {
        Ok(self.load(eid).await?.record)
    }

    /// Serves one ESipa message of the ASN.1 binding without a relay:
    /// relayed ES9+ steps (indirect download) are answered with their
    /// `undefinedError`. Drivers with a relay use [`Eim::handle`].
    pub async fn handle_asn1(&self, der: &[u8], now: Timestamp) -> Result<EsipaAnswer, EimError> {
        self.handle(der, &NoRelay, now).await?.into_asn1()
    }

    /// Serves one `EsipaMessageFromIpaToEim` (DER, as the ASN.1 binding
    /// carries it or as rebuilt from the JSON binding), relaying ES9+ steps
    /// through `relay`.
    pub async fn handle(
        &self,
        der: &[u8],
        relay: &impl Es9Relay,
        now: Timestamp,
    ) -> Result<EsipaReply, EimError> {
        let first = read_ipa_message(der, None)?;
        let version = first.read_as;
        match &first.message {
            sgp32::EsipaMessageFromIpaToEim::getEimPackageRequest(request) => {
                let answer = self.get_eim_package(der, version, request, now).await?;
                Ok(EsipaReply::Message {
                    message: Box::new(sgp32::EsipaMessageFromEimToIpa::getEimPackageResponse(
                        answer.response,
                    )),
                    version: answer.version,
                })
            }
            sgp32::EsipaMessageFromIpaToEim::provideEimPackageResult(_)
            | sgp32::EsipaMessageFromIpaToEim::handleNotificationEsipa(
                sgp32::HandleNotificationEsipa::provideEimPackageResult(_),
            ) => {
                let report = self.provide_result(der, first, now).await?;
                Ok(match report.response {
                    Some(response) => EsipaReply::Message {
                        message: Box::new(
                            sgp32::EsipaMessageFromEimToIpa::provideEimPackageResultResponse(
                                response,
                            ),
                        ),
                        version: report.version,
                    },
                    None => EsipaReply::NoContent,
                })
            }
            sgp32::EsipaMessageFromIpaToEim::transferEimPackageResponse(_) => {
                Err(EimError::UnexpectedMessage(
                    "a TransferEimPackageResponse (this eIM does not push packages)",
                ))
            }
            _ => {
                let parsed = relay::parse(der)?.ok_or(EimError::UnexpectedMessage(
                    "an ESipa message this eIM does not serve",
                ))?;
                self.relay_step(parsed, version, relay, now).await
            }
        }
    }

    /// GetEimPackage: the head of the device's queue.
    pub async fn get_eim_package(
        &self,
        der: &[u8],
        read_as: Sgp32Version,
        request: &sgp32::GetEimPackageRequest,
        now: Timestamp,
    ) -> Result<PollAnswer, EimError> {
        let Ok(eid) = Eid::from_bcd(request.eid_value.0.as_slice()) else {
            return Ok(PollAnswer::error(package_error::INVALID_EID, read_as));
        };
        for _ in 0..ATTEMPTS {
            let Some(device) = self.store.device(&eid).await? else {
                info!(eid = %short(&eid), %read_as, "GetEimPackage from an unknown EID");
                return Ok(PollAnswer::error(package_error::EID_NOT_FOUND, read_as));
            };
            if !self.certificates_good(&device.record, "GetEimPackage", now) {
                return Ok(PollAnswer::error(package_error::UNDEFINED_ERROR, read_as));
            }
            let (request, read_as) = reread_poll(der, &device.record, request, read_as);
            let step = poll(&device, &request, read_as, now)?;
            if self.settle(step.changes).await? {
                info!(eid = %short(&eid), %read_as, delivered = ?step.answer.delivered, "GetEimPackage");
                return Ok(step.answer);
            }
        }
        Err(StoreError::Stale.into())
    }

    /// ProvideEimPackageResult (or a HandleNotification carrying one).
    pub async fn provide_result(
        &self,
        der: &[u8],
        first: IpaMessage,
        now: Timestamp,
    ) -> Result<ProvideReport, EimError> {
        let eid = self.eid_of(&first).await?;
        let Some(eid) = eid else {
            info!(read_as = %first.read_as, "ProvideEimPackageResult for no known device");
            return Ok(unknown_device(first.read_as));
        };
        for _ in 0..ATTEMPTS {
            let device = self.load(&eid).await?;
            if !self.certificates_good(&device.record, "ProvideEimPackageResult", now) {
                return Ok(refused_device(&first));
            }
            let message = reread(der, &device.record, &first);
            let known = self.known_results(&device.record, &message).await?;
            let step = provide(&device, &message, &known, &self.config.trust, now)?;
            if self.settle(step.changes).await? {
                let report = step.answer;
                info!(
                    eid = %short(&eid),
                    read_as = %message.read_as,
                    ended = ?report.ended,
                    acknowledged = ?report.acknowledged,
                    refused = report.refused.len(),
                    "ProvideEimPackageResult"
                );
                for (index, reason) in &report.refused {
                    warn!(eid = %short(&eid), index, %reason, "package result refused");
                }
                for warning in &report.warnings {
                    warn!(eid = %short(&eid), %warning, "reported eUICC certificates accepted per the stale-CRL policy");
                }
                return Ok(report);
            }
        }
        Err(StoreError::Stale.into())
    }

    /// Whether the association's eUICC and EUM certificates may still be
    /// relied on (see [`crate::steps::certificates`]): `false` (logged) when
    /// one is revoked, or its revocation status is unknown under the
    /// `refuse` policy; accepted with a logged warning under `warn`.
    pub(crate) fn certificates_good(
        &self,
        record: &DeviceRecord,
        function: &'static str,
        now: Timestamp,
    ) -> bool {
        match check_device(record, &self.config.trust, now) {
            Ok(warnings) => {
                for warning in warnings {
                    warn!(eid = %short(&record.eid), function, %warning, "eUICC certificates accepted per the stale-CRL policy");
                }
                true
            }
            Err(error) => {
                warn!(eid = %short(&record.eid), function, %error, "refused: the device's eUICC certificates are refused by revocation checking");
                false
            }
        }
    }

    /// The device a result names: its EID, or the device of an open item
    /// with one of the eIM transaction ids it carries.
    async fn eid_of(&self, message: &IpaMessage) -> Result<Option<Eid>, EimError> {
        let provide = match &message.message {
            sgp32::EsipaMessageFromIpaToEim::provideEimPackageResult(p)
            | sgp32::EsipaMessageFromIpaToEim::handleNotificationEsipa(
                sgp32::HandleNotificationEsipa::provideEimPackageResult(p),
            ) => p,
            _ => return Err(EimError::UnexpectedMessage("not a ProvideEimPackageResult")),
        };
        if let Some(eid) = &provide.eid_value {
            return Ok(Eid::from_bcd(eid.0.as_slice()).ok());
        }
        for tid in transaction_ids(message) {
            // Only ids of this eIM's length can be in its index.
            let Some(tid) = EimTransactionId::from_slice(&tid) else {
                continue;
            };
            if let Some(eid) = self.store.device_by_transaction(&tid).await? {
                return Ok(Some(eid));
            }
        }
        Ok(None)
    }

    /// The stored results of the counters a message names that are no
    /// longer open (a result sent again).
    async fn known_results(
        &self,
        record: &DeviceRecord,
        message: &IpaMessage,
    ) -> Result<Vec<ResultRecord>, EimError> {
        let mut known = Vec::new();
        for received in &message.package_results {
            let Some(counter) = received.value().ok().and_then(|v| counter_of(&v)) else {
                continue;
            };
            if record.item_with_counter(counter).is_none()
                && let Some(result) = self.store.package_result(&record.eid, counter).await?
            {
                known.push(result);
            }
        }
        Ok(known)
    }

    async fn load(&self, eid: &Eid) -> Result<Versioned<DeviceRecord>, EimError> {
        self.store
            .device(eid)
            .await?
            .ok_or(EimError::UnknownDevice(*eid))
    }

    /// Loads the device, runs `step`, commits; again on a lost race.
    async fn on_device<A>(
        &self,
        eid: &Eid,
        mut step: impl FnMut(&Versioned<DeviceRecord>) -> Result<Step<A>, EimError>,
    ) -> Result<A, EimError> {
        for _ in 0..ATTEMPTS {
            let device = self.load(eid).await?;
            let step = step(&device)?;
            if self.settle(step.changes).await? {
                return Ok(step.answer);
            }
        }
        Err(StoreError::Stale.into())
    }

    /// Commits; `false` when a record changed since it was read.
    async fn settle(&self, changes: crate::store::EimChanges) -> Result<bool, EimError> {
        match self.store.commit(changes).await {
            Ok(()) => Ok(true),
            Err(StoreError::Stale) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// A message read without knowing the device may be read differently in the
/// version the device is known to speak: read it again in that version.
fn reread(der: &[u8], record: &DeviceRecord, first: &IpaMessage) -> IpaMessage {
    if first.read_as == record.ipa_version {
        return first.clone();
    }
    read_ipa_message(der, Some(record.ipa_version)).unwrap_or_else(|_| first.clone())
}

fn reread_poll(
    der: &[u8],
    record: &DeviceRecord,
    request: &sgp32::GetEimPackageRequest,
    read_as: Sgp32Version,
) -> (sgp32::GetEimPackageRequest, Sgp32Version) {
    if read_as != record.ipa_version
        && let Ok(again) = read_ipa_message(der, Some(record.ipa_version))
        && let sgp32::EsipaMessageFromIpaToEim::getEimPackageRequest(request) = again.message
    {
        return (request, again.read_as);
    }
    (request.clone(), read_as)
}

/// The eIM transaction ids a result message carries.
fn transaction_ids(message: &IpaMessage) -> Vec<Vec<u8>> {
    use sgp32::EuiccPackageResult as R;
    let mut ids: Vec<Vec<u8>> = message
        .package_results
        .iter()
        .filter_map(|r| r.value().ok())
        .filter_map(|v| match v {
            R::euiccPackageResultSigned(s) => s.euicc_package_result_data_signed.eim_transaction_id,
            R::euiccPackageErrorSigned(e) => e.euicc_package_error_data_signed.eim_transaction_id,
            R::euiccPackageErrorUnsigned(u) => u.eim_transaction_id,
        })
        .map(|t| t.0.to_vec())
        .collect();
    if let sgp32::EsipaMessageFromIpaToEim::provideEimPackageResult(p)
    | sgp32::EsipaMessageFromIpaToEim::handleNotificationEsipa(
        sgp32::HandleNotificationEsipa::provideEimPackageResult(p),
    ) = &message.message
    {
        let other = match &p.eim_package_result {
            sgp32::EimPackageResult::ipaEuiccDataResponse(
                sgp32::IpaEuiccDataResponse::ipaEuiccData(d),
            ) => d.eim_transaction_id.clone(),
            sgp32::EimPackageResult::ipaEuiccDataResponse(
                sgp32::IpaEuiccDataResponse::ipaEuiccDataResponseError(e),
            ) => e.eim_transaction_id.clone(),
            sgp32::EimPackageResult::profileDownloadTriggerResult(t) => {
                t.eim_transaction_id.clone()
            }
            sgp32::EimPackageResult::eimPackageResultResponseError(e) => {
                e.eim_transaction_id.clone()
            }
            _ => None,
        };
        ids.extend(other.map(|t| t.0.to_vec()));
    }
    ids
}

fn counter_of(result: &sgp32::EuiccPackageResult) -> Option<Counter> {
    let value = match result {
        sgp32::EuiccPackageResult::euiccPackageResultSigned(s) => {
            &s.euicc_package_result_data_signed.counter_value
        }
        sgp32::EuiccPackageResult::euiccPackageErrorSigned(e) => {
            &e.euicc_package_error_data_signed.counter_value
        }
        sgp32::EuiccPackageResult::euiccPackageErrorUnsigned(_) => return None,
    };
    Counter::from_integer(value).ok()
}

/// The answer to the results of a device whose certificates are refused:
/// nothing is stored or acknowledged; `provideEimPackageResultError
/// undefinedError(127)` (SGP.32 has no code for a revoked certificate on
/// ESipa), no answer for a HandleNotification.
fn refused_device(first: &IpaMessage) -> ProvideReport {
    let answered = matches!(
        first.message,
        sgp32::EsipaMessageFromIpaToEim::provideEimPackageResult(_)
    );
    let mut report = unknown_device(first.read_as);
    report.response = answered.then(|| {
        sgp32::ProvideEimPackageResultResponse::provideEimPackageResultError(Integer::from(
            package_error::UNDEFINED_ERROR,
        ))
    });
    report
}

/// `provideEimPackageResultError eidNotFound(2)`.
fn unknown_device(version: Sgp32Version) -> ProvideReport {
    ProvideReport {
        response: Some(
            sgp32::ProvideEimPackageResultResponse::provideEimPackageResultError(Integer::from(2)),
        ),
        version,
        ended: Vec::new(),
        acknowledged: Vec::new(),
        refused: Vec::new(),
        unmatched: Vec::new(),
        warnings: Vec::new(),
    }
}

pub(crate) fn encoded(
    message: &sgp32::EsipaMessageFromEimToIpa,
    version: Sgp32Version,
) -> Result<EsipaAnswer, EimError> {
    Ok(EsipaAnswer::Message {
        der: encode_eim_message(message, version)?,
        version,
    })
}

/// The EID as logged: its first 8 and last 4 digits.
pub(crate) fn short(eid: &Eid) -> String {
    let digits = eid.digits();
    format!("{}..{}", &digits[..8], &digits[digits.len() - 4..])
}
