//! GetEimPackage: the IPA polls; the eIM hands out the head of the device's
//! queue, or `noEimPackageAvailable`.
//!
//! The head item is handed out until it ends: a delivered package whose
//! result got lost is delivered again with the same bytes (the eUICC
//! refuses to run it twice: replayError), a package the eUICC answered with
//! replayError is followed up by an IpaEuiccDataRequest for the results the
//! eUICC still holds.

use ferrosim_asn1::esipa::Sgp32Version;
use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::{decode_der, sgp32};

use super::Step;
use super::associate::update;
use super::enqueue::{DataItem, data_request};
use crate::error::EimError;
use crate::ids::Timestamp;
use crate::record::{DeviceRecord, ItemKind, ItemState, PollInfo};
use crate::store::{EimChanges, Versioned};

/// `eimPackageError` values of GetEimPackageResponse.
pub mod package_error {
    /// Nothing queued.
    pub const NO_EIM_PACKAGE_AVAILABLE: i64 = 1;
    /// The EID has no association (v1.2).
    pub const EID_NOT_FOUND: i64 = 2;
    /// The EID is not valid (v1.2).
    pub const INVALID_EID: i64 = 3;
    /// No EID in the request (v1.2).
    pub const MISSING_EID: i64 = 4;
    /// Anything else.
    pub const UNDEFINED_ERROR: i64 = 127;
}

/// The answer to a GetEimPackage.
#[derive(Debug, Clone, PartialEq)]
pub struct PollAnswer {
    /// What to send (encode it in [`Self::version`]).
    pub response: sgp32::GetEimPackageResponse,
    /// The wire version of the IPA.
    pub version: Sgp32Version,
    /// The item handed out, if any.
    pub delivered: Option<u64>,
}

impl PollAnswer {
    /// An `eimPackageError` answer.
    pub fn error(code: i64, version: Sgp32Version) -> Self {
        Self {
            response: sgp32::GetEimPackageResponse::eimPackageError(Integer::from(code)),
            version,
            delivered: None,
        }
    }
}

/// Answers one GetEimPackage of an associated device (`request` read as
/// `read_as`). An unknown device is answered by the driver with
/// [`package_error::EID_NOT_FOUND`] without a step.
pub fn poll(
    device: &Versioned<DeviceRecord>,
    request: &sgp32::GetEimPackageRequest,
    read_as: Sgp32Version,
    now: Timestamp,
) -> Result<Step<PollAnswer>, EimError> {
    let mut record = device.record.clone();
    record.ipa_version = read_as;
    record.last_poll = Some(PollInfo {
        at: now,
        r_plmn: request.r_plmn.as_ref().map(|p| p.to_vec()),
        state_change_cause: request
            .state_change_cause
            .as_ref()
            .and_then(|c| i64::try_from(c.0.clone()).ok()),
        read_as,
    });
    if request.notify_state_change.is_some() {
        record.profiles.stale = true;
    }
    let Some(head) = record.queue.first_mut() else {
        let answer = PollAnswer::error(package_error::NO_EIM_PACKAGE_AVAILABLE, read_as);
        return Ok(Step::new(update(device, record), answer));
    };
    let delivered = head.id;
    let response = match (head.kind, head.state) {
        (ItemKind::Package, ItemState::AwaitingResult { .. }) => {
            // Ask for the result the eUICC kept, with the same transaction id.
            let request = data_request(&[DataItem::PackageResults], read_as, head.transaction_id);
            sgp32::GetEimPackageResponse::ipaEuiccDataRequest(request)
        }
        (ItemKind::Package, _) => {
            sgp32::GetEimPackageResponse::euiccPackageRequest(decode_der(&head.der)?)
        }
        (ItemKind::DownloadTrigger, _) => {
            sgp32::GetEimPackageResponse::profileDownloadTriggerRequest(decode_der(&head.der)?)
        }
        (ItemKind::DataRequest, _) => {
            sgp32::GetEimPackageResponse::ipaEuiccDataRequest(decode_der(&head.der)?)
        }
        // Only the kind of a stored result, never queued.
        (ItemKind::Rollback, _) => {
            return Err(EimError::InvalidRequest(
                "a rollback result is not a queue item",
            ));
        }
    };
    head.state = match head.state {
        ItemState::Queued => ItemState::Delivered {
            first: now,
            times: 1,
        },
        ItemState::Delivered { first, times } => ItemState::Delivered {
            first,
            times: times.saturating_add(1),
        },
        awaiting @ ItemState::AwaitingResult { .. } => awaiting,
    };
    let answer = PollAnswer {
        response,
        version: read_as,
        delivered: Some(delivered),
    };
    Ok(Step::new(update(device, record), answer))
}

/// No changes: for answers given without a device record.
pub fn nothing<A>(answer: A) -> Step<A> {
    Step::new(EimChanges::default(), answer)
}
