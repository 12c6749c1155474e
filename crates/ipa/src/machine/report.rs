//! What a session did: [`SessionReport`].

use ferrosim_ids::{Eid, Iccid, Timestamp};
use ferrosim_lpa::Es10Error;
use thiserror::Error;

use crate::esipa::EsipaError;
use crate::pending::PendingResult;

/// Why a session ended early.
#[derive(Debug, Error)]
pub enum SessionError {
    /// The eIM could not be reached or answered garbage.
    #[error("eIM: {0}")]
    Eim(#[from] EsipaError),
    /// The eIM refused GetEimPackage (`eimPackageError`: 2 eidNotFound, 3
    /// invalidEid, 4 missingEid, 127 undefinedError).
    #[error("the eIM refused GetEimPackage with eimPackageError {0}{name}", name = package_error_name(*.0))]
    EimRefused(i64),
    /// The eIM refused a result (`provideEimPackageResultError`, e.g. 127
    /// undefinedError when it could not store it): the result is kept and
    /// sent first in the next session, after the backoff; no new work is
    /// fetched meanwhile.
    #[error(
        "the eIM refused a result with provideEimPackageResultError {0}; it is kept and sent again"
    )]
    ResultRefused(i64),
    /// The eUICC could not be reached or answered garbage.
    #[error("eUICC: {0}")]
    Euicc(#[from] Es10Error),
    /// A value could not be encoded (an internal fault, reported rather
    /// than panicking).
    #[error("internal: {0}")]
    Internal(String),
}

fn package_error_name(code: i64) -> &'static str {
    match code {
        2 => " (eidNotFound: this eUICC is not associated with the eIM)",
        3 => " (invalidEid)",
        4 => " (missingEid)",
        127 => " (undefinedError)",
        _ => "",
    }
}

/// What happened to an eUICC package on the eUICC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageOutcome {
    /// Executed: the signed result with its sequence number and one result
    /// per operation (0 is ok for most).
    Executed {
        /// The result's sequence number.
        seq_number: i64,
        /// The operations' result codes, in order (the first INTEGER of
        /// each result; -1 for results that are lists).
        codes: Vec<i64>,
    },
    /// Refused with a signed error (3 invalidEid, 4 replayError, 6
    /// counterValueOutOfRange, ...).
    Refused {
        /// The EuiccPackageErrorCode.
        code: i64,
    },
    /// Refused without a signature (unknown eIM, bad eIM signature).
    RefusedUnsigned {
        /// The error code, if given.
        code: Option<i64>,
    },
    /// The eUICC could not read the package (a status word instead of a
    /// result): reported to the eIM as invalidPackageFormat.
    Unreadable {
        /// The status word or decoding failure, as text.
        reason: String,
    },
}

/// One eIM item run in a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemReport {
    /// An eUICC package.
    Package {
        /// Its counter value, when readable.
        counter: Option<u64>,
        /// What the eUICC did.
        outcome: PackageOutcome,
    },
    /// An IpaEuiccDataRequest.
    EuiccData {
        /// The tags asked for.
        tags: Vec<u32>,
    },
    /// An operation the IPA started itself (ProfileRollback, the Fallback
    /// Mechanism, the return from it).
    Local {
        /// The ES10b function.
        operation: &'static str,
        /// Its result code (0 ok).
        code: i64,
    },
    /// A profile download trigger.
    Download {
        /// The activation code (or what the trigger asked for instead).
        activation_code: String,
        /// The ICCID installed, or why not.
        outcome: Result<Iccid, String>,
    },
}

/// The notifications delivered at the end of a session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationSummary {
    /// Acknowledged by their receivers and removed from the eUICC.
    pub delivered: usize,
    /// Still on the eUICC, with why.
    pub undelivered: Vec<String>,
}

/// What a session did.
#[derive(Debug)]
pub struct SessionReport {
    /// When it started.
    pub started: Timestamp,
    /// When it ended.
    pub ended: Timestamp,
    /// The eUICC.
    pub eid: Option<Eid>,
    /// The eIM items run, in order.
    pub items: Vec<ItemReport>,
    /// Results sent to the eIM (pending ones included).
    pub results_sent: usize,
    /// Sequence numbers the eIM acknowledged.
    pub acknowledged: Vec<i64>,
    /// Results given up after too many unacknowledged attempts.
    pub abandoned: Vec<PendingResult>,
    /// Results still waiting for the eIM at the end.
    pub pending: usize,
    /// Notification delivery, when it ran.
    pub notifications: Option<NotificationSummary>,
    /// Why the session ended early, if it did.
    pub error: Option<SessionError>,
    /// When the next session is due.
    pub next_session: Timestamp,
}

impl SessionReport {
    pub(super) fn new(started: Timestamp, eid: Option<Eid>) -> Self {
        Self {
            started,
            ended: started,
            eid,
            items: Vec::new(),
            results_sent: 0,
            acknowledged: Vec::new(),
            abandoned: Vec::new(),
            pending: 0,
            notifications: None,
            error: None,
            next_session: started,
        }
    }

    /// Whether the session ran to its end.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}
