//! The life of a profile and of the order using it, as a state machine.
//!
//! A [`ProfileRecord`] is one personalised profile owned by an operator. ES2+
//! puts an order on it (`downloadOrder`, `confirmOrder`, `releaseProfile`,
//! `cancelOrder`), ES9+ moves it through the download, and the installation
//! result ends it:
//!
//! ```text
//! Available -> Allocated -> (Linked) -> Confirmed -> Released -> Downloaded -> Installed
//!                                   \-> Released                           \-> Error
//! Downloaded -> Downloaded (download retry by the eUICC the package was issued to)
//! any open state -> Expired (order expiry) | Error (retry limits) | Available/Unavailable (cancelOrder)
//! ```
//!
//! Every transition is a method that checks the rules of SGP.22 and returns a
//! typed [`OrderError`] when they are broken; the caller (an SM-DP+ function
//! running inside one store transaction) persists the record and the
//! [`ProgressEvent`]s the transition produced. No I/O happens here.

use std::fmt;

use ferrosim_pki::Eid;
use ferrosim_saip::Iccid;
use sha2::{Digest, Sha256};
use thiserror::Error;

pub use device::{DeviceProfileState, DeviceReport};
pub use ferrosim_asn1::values::CancelSessionReason;

mod device;

use crate::ids::{MatchingId, OperatorId, TransactionId};
use crate::status::StatusCode;
use crate::time::Timestamp;

/// Where a profile is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProfileState {
    /// Personalised and free: no order uses it.
    Available,
    /// Reserved by `downloadOrder`, not bound to an EID.
    Allocated,
    /// Reserved by `downloadOrder` for one EID.
    Linked,
    /// `confirmOrder` done (matching id set), not yet released for download.
    Confirmed,
    /// Released: a device may download it.
    Released,
    /// The Bound Profile Package has been delivered to a device.
    Downloaded,
    /// The eUICC reported a successful installation. Final.
    Installed,
    /// The order failed (installation error, retry limits, cancelled session).
    Error,
    /// The order expired before the download completed.
    Expired,
    /// Withdrawn by `cancelOrder` with `Unavailable`: never offered again. Final.
    Unavailable,
}

impl ProfileState {
    /// All states, for listings and tests.
    pub const ALL: [ProfileState; 10] = [
        Self::Available,
        Self::Allocated,
        Self::Linked,
        Self::Confirmed,
        Self::Released,
        Self::Downloaded,
        Self::Installed,
        Self::Error,
        Self::Expired,
        Self::Unavailable,
    ];

    /// The lower-case name stored in the database and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Allocated => "allocated",
            Self::Linked => "linked",
            Self::Confirmed => "confirmed",
            Self::Released => "released",
            Self::Downloaded => "downloaded",
            Self::Installed => "installed",
            Self::Error => "error",
            Self::Expired => "expired",
            Self::Unavailable => "unavailable",
        }
    }

    /// Parses the name written by [`ProfileState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether an order is open (neither ended nor absent) in this state.
    pub fn has_open_order(self) -> bool {
        matches!(
            self,
            Self::Allocated | Self::Linked | Self::Confirmed | Self::Released | Self::Downloaded
        )
    }
}

impl fmt::Display for ProfileState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `finalProfileStatusIndicator` of ES2+ `cancelOrder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalProfileStatus {
    /// The profile goes back to the pool for another order.
    Available,
    /// The profile is withdrawn for good.
    Unavailable,
}

/// The confirmation code of an order, kept only as SHA-256(code).
///
/// SGP.22 has the eUICC send SHA-256(SHA-256(code) || transactionId), so the
/// SM-DP+ needs SHA-256(code) and never the code itself.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfirmationCode {
    /// SHA-256 of the code.
    pub hash: [u8; 32],
    /// Wrong codes received so far.
    pub failed_attempts: u32,
}

impl fmt::Debug for ConfirmationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfirmationCode")
            .field("failed_attempts", &self.failed_attempts)
            .finish_non_exhaustive()
    }
}

impl ConfirmationCode {
    /// Keeps the hash of `code` as given by the operator.
    pub fn from_code(code: &str) -> Self {
        Self {
            hash: Sha256::digest(code.as_bytes()).into(),
            failed_attempts: 0,
        }
    }

    /// The value the eUICC must send for this session.
    pub fn expected_for(&self, tid: &TransactionId) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.hash);
        h.update(tid.as_bytes());
        h.finalize().into()
    }
}

/// Why a download or an installation failed, as reported by the eUICC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureInfo {
    /// `bppCommandId` of the failed BPP command (ProfileInstallationResult).
    pub bpp_command_id: Option<i64>,
    /// `errorReason` of the failed command, or the CancelSession reason.
    pub error_reason: Option<i64>,
    /// A short text for operators and logs.
    pub message: String,
}

/// The order that currently uses (or last used) a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// EID the order is linked to, if any.
    pub eid: Option<Eid>,
    /// Matching id, set by `confirmOrder`.
    pub matching_id: Option<MatchingId>,
    /// Confirmation code, if the order requires one.
    pub confirmation: Option<ConfirmationCode>,
    /// SM-DS address given in `confirmOrder` (stored, events not sent yet).
    pub smds_address: Option<String>,
    /// When `downloadOrder` created the order.
    pub created_at: Timestamp,
    /// After this time the order can no longer be downloaded.
    pub expires_at: Timestamp,
    /// The download session currently bound to the order.
    pub session: Option<TransactionId>,
    /// Download sessions started for this order.
    pub download_attempts: u32,
    /// Why the order ended in `Error`, if it did.
    pub failure: Option<FailureInfo>,
    /// What the device last reported about the installed profile (enable,
    /// disable, delete notifications), if anything.
    pub device: Option<DeviceReport>,
    /// The version of the profile type the order was made with (its
    /// downloads get that version's package and metadata); `None` for an
    /// order from before profile types had versions (the latest is used).
    pub type_version: Option<u32>,
}

/// One personalised profile with its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileRecord {
    /// ICCID of the profile (primary key).
    pub iccid: Iccid,
    /// The operator that owns it.
    pub operator: OperatorId,
    /// The profile type it was made from.
    pub profile_type: String,
    /// Where it is in its life.
    pub state: ProfileState,
    /// The order using it; `None` only when `Available` and never ordered.
    pub order: Option<Order>,
    /// Last change.
    pub updated_at: Timestamp,
}

/// Limits that apply to every order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderPolicy {
    /// Wrong confirmation codes before the order is terminated.
    pub max_confirmation_attempts: u32,
    /// Download sessions allowed per order.
    pub max_download_attempts: u32,
    /// Default lifetime of an order, from `downloadOrder`.
    pub order_ttl: std::time::Duration,
}

impl Default for OrderPolicy {
    fn default() -> Self {
        Self {
            max_confirmation_attempts: 5,
            max_download_attempts: 10,
            order_ttl: std::time::Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// `notificationPointId` of ES2+ `handleDownloadProgressInfo` (SGP.22 5.3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationPoint {
    /// 1: eligibility and retry limit check (authenticateClient).
    EligibilityCheck = 1,
    /// 2: confirmation code failure.
    ConfirmationFailure = 2,
    /// 3: Bound Profile Package download (getBoundProfilePackage, cancelSession).
    BppDownload = 3,
    /// 4: Bound Profile Package installation (the installation result).
    BppInstallation = 4,
    /// 5: a notification from the device about the installed profile
    /// (enabled, disabled, deleted), received with ES9+ `handleNotification`;
    /// `resultData` carries it as the eUICC signed it.
    DeviceNotification = 5,
}

impl NotificationPoint {
    /// The numeric `notificationPointId`.
    pub fn id(self) -> i64 {
        self as i64
    }

    /// Parses a numeric `notificationPointId`.
    pub fn from_id(id: i64) -> Option<Self> {
        match id {
            1 => Some(Self::EligibilityCheck),
            2 => Some(Self::ConfirmationFailure),
            3 => Some(Self::BppDownload),
            4 => Some(Self::BppInstallation),
            5 => Some(Self::DeviceNotification),
            _ => None,
        }
    }
}

/// A step of a download worth telling the operator about.
///
/// Produced by transitions, stored in the same transaction as the record
/// change (an outbox) and delivered to the operator's callback URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressEvent {
    /// The operator to notify.
    pub operator: OperatorId,
    /// The profile concerned.
    pub iccid: Iccid,
    /// The device, when known.
    pub eid: Option<Eid>,
    /// Profile type of the profile.
    pub profile_type: String,
    /// Which step this is.
    pub point: NotificationPoint,
    /// `None` for success, the status code for a failure.
    pub failure: Option<StatusCode>,
    /// `resultData`: the signed installation result for point 4.
    pub result_data: Option<Vec<u8>>,
    /// When it happened.
    pub at: Timestamp,
}

/// A broken order rule. Each maps to one SGP.22 status code ([`OrderError::status`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OrderError {
    /// The profile is not in a state that allows this function.
    #[error("profile is {state}, which does not allow {action}")]
    WrongState {
        /// Current state.
        state: ProfileState,
        /// What was attempted.
        action: &'static str,
    },
    /// The order is linked to another EID.
    #[error("the order is linked to another EID")]
    EidMismatch,
    /// The matching id given does not belong to this order.
    #[error("the matching id does not belong to this order")]
    MatchingIdMismatch,
    /// The order is not (yet) released for download.
    #[error("the order is not released for download")]
    NotReleased,
    /// The order expired.
    #[error("the order expired")]
    Expired,
    /// Too many download sessions.
    #[error("maximum number of download attempts reached")]
    DownloadAttemptsExceeded,
    /// Another, newer session took over the order.
    #[error("the order is bound to another download session")]
    SessionSuperseded,
    /// The order needs a confirmation code and the eUICC sent none.
    #[error("confirmation code required but missing")]
    ConfirmationCodeMissing,
    /// Wrong confirmation code.
    #[error("confirmation code refused ({attempts} of {limit} attempts used)")]
    ConfirmationCodeRefused {
        /// Wrong codes so far.
        attempts: u32,
        /// Limit before the order is terminated.
        limit: u32,
    },
    /// Too many wrong confirmation codes: the order is terminated.
    #[error("confirmation code retries exceeded: order terminated")]
    ConfirmationCodeRetriesExceeded,
}

impl OrderError {
    /// The SGP.22 status code this failure is reported with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::WrongState { .. } => StatusCode::ICCID_NOT_ALLOWED,
            Self::EidMismatch => StatusCode::EID_REFUSED,
            Self::MatchingIdMismatch | Self::NotReleased => StatusCode::MATCHING_ID_REFUSED,
            Self::Expired => StatusCode::DOWNLOAD_ORDER_EXPIRED,
            Self::DownloadAttemptsExceeded => StatusCode::DOWNLOAD_RETRIES_EXCEEDED,
            Self::SessionSuperseded => StatusCode::PROFILE_UNAVAILABLE,
            Self::ConfirmationCodeMissing => StatusCode::CONFIRMATION_CODE_MISSING,
            Self::ConfirmationCodeRefused { .. } => StatusCode::CONFIRMATION_CODE_REFUSED,
            Self::ConfirmationCodeRetriesExceeded => StatusCode::CONFIRMATION_CODE_RETRIES_EXCEEDED,
        }
    }
}

/// What `confirmOrder` asks for.
#[derive(Debug, Clone)]
pub struct Confirmation {
    /// EID given by the operator, if any.
    pub eid: Option<Eid>,
    /// The matching id to use (the caller generates one when the operator sent none).
    pub matching_id: MatchingId,
    /// The confirmation code, if the order requires one.
    pub confirmation_code: Option<ConfirmationCode>,
    /// SM-DS address, if the operator wants an event registered.
    pub smds_address: Option<String>,
    /// `releaseFlag`: release at once.
    pub release: bool,
}

/// The outcome of a transition: events to deliver, or a broken rule. The
/// record may have changed even on error (a counted wrong code, a terminated
/// order), and the caller persists it either way.
pub type Transition<T = ()> = Result<T, OrderError>;

impl ProfileRecord {
    /// A new, never ordered profile.
    pub fn new_available(
        iccid: Iccid,
        operator: OperatorId,
        profile_type: String,
        now: Timestamp,
    ) -> Self {
        Self {
            iccid,
            operator,
            profile_type,
            state: ProfileState::Available,
            order: None,
            updated_at: now,
        }
    }

    /// ES2+ `downloadOrder`: reserve this profile, optionally for one EID.
    pub fn allocate(
        &mut self,
        eid: Option<Eid>,
        now: Timestamp,
        policy: &OrderPolicy,
    ) -> Transition {
        self.require(&[ProfileState::Available], "downloadOrder")?;
        self.state = if eid.is_some() {
            ProfileState::Linked
        } else {
            ProfileState::Allocated
        };
        self.order = Some(Order {
            eid,
            matching_id: None,
            confirmation: None,
            smds_address: None,
            created_at: now,
            expires_at: now.plus(policy.order_ttl),
            session: None,
            download_attempts: 0,
            failure: None,
            device: None,
            type_version: None,
        });
        self.updated_at = now;
        Ok(())
    }

    /// ES2+ `confirmOrder`: set the matching id (and code), confirm or release.
    pub fn confirm(&mut self, c: Confirmation, now: Timestamp) -> Transition {
        self.require(
            &[ProfileState::Allocated, ProfileState::Linked],
            "confirmOrder",
        )?;
        let order = self.order_mut("confirmOrder")?;
        match (&order.eid, c.eid) {
            (Some(linked), Some(given)) if *linked != given => return Err(OrderError::EidMismatch),
            (None, Some(given)) => order.eid = Some(given),
            _ => {}
        }
        order.matching_id = Some(c.matching_id);
        order.confirmation = c.confirmation_code;
        order.smds_address = c.smds_address;
        self.state = if c.release {
            ProfileState::Released
        } else {
            ProfileState::Confirmed
        };
        self.updated_at = now;
        Ok(())
    }

    /// ES2+ `releaseProfile`.
    pub fn release(&mut self, now: Timestamp) -> Transition {
        self.require(&[ProfileState::Confirmed], "releaseProfile")?;
        self.state = ProfileState::Released;
        self.updated_at = now;
        Ok(())
    }

    /// ES2+ `cancelOrder`. A profile whose package may have reached a device
    /// (`Downloaded`) can only be made `Unavailable`; an installed one cannot
    /// be cancelled at all.
    pub fn cancel(
        &mut self,
        final_status: FinalProfileStatus,
        eid: Option<&Eid>,
        matching_id: Option<&MatchingId>,
        now: Timestamp,
    ) -> Transition {
        use ProfileState::*;
        self.require(
            &[
                Allocated, Linked, Confirmed, Released, Downloaded, Error, Expired,
            ],
            "cancelOrder",
        )?;
        if self.state == Downloaded && final_status == FinalProfileStatus::Available {
            return Err(OrderError::WrongState {
                state: Downloaded,
                action: "cancelOrder to Available (the package may be on a device)",
            });
        }
        let order = self.order_mut("cancelOrder")?;
        if let (Some(given), Some(linked)) = (eid, order.eid.as_ref())
            && given != linked
        {
            return Err(OrderError::EidMismatch);
        }
        if let Some(given) = matching_id
            && order.matching_id.as_ref() != Some(given)
        {
            return Err(OrderError::MatchingIdMismatch);
        }
        order.session = None;
        match final_status {
            FinalProfileStatus::Available => {
                self.state = Available;
                self.order = None;
            }
            FinalProfileStatus::Unavailable => self.state = Unavailable,
        }
        self.updated_at = now;
        Ok(())
    }

    /// Ends an open order whose time is up. Returns the event to send, or
    /// `None` when the order is not open or not expired.
    pub fn expire_if_due(&mut self, now: Timestamp) -> Option<ProgressEvent> {
        use ProfileState::*;
        if !matches!(self.state, Allocated | Linked | Confirmed | Released) {
            return None;
        }
        let order = self.order.as_mut()?;
        if now <= order.expires_at {
            return None;
        }
        order.session = None;
        self.state = Expired;
        self.updated_at = now;
        Some(self.event(
            NotificationPoint::EligibilityCheck,
            Some(StatusCode::DOWNLOAD_ORDER_EXPIRED),
            now,
        ))
    }

    /// ES9+ `authenticateClient`: eligibility and retry checks, then bind the
    /// order to the download session `tid` of device `eid`. A newer session
    /// replaces an older one (the device retried). Returns whether a
    /// confirmation code is required.
    ///
    /// A `Downloaded` order may be bound again by the eUICC its package was
    /// issued to, and only by it (SGP.22 download retry): the package was
    /// handed out but never installed, typically because the answer to
    /// `getBoundProfilePackage` was lost (network, or the SM-DP+ died before
    /// answering). Without this, such an order could never complete. The
    /// retry counts against `max_download_attempts`; the new session gets a
    /// new package for the same eUICC, and the old session can no longer
    /// report an installation.
    pub fn bind_session(
        &mut self,
        tid: &TransactionId,
        eid: &Eid,
        now: Timestamp,
        policy: &OrderPolicy,
        events: &mut Vec<ProgressEvent>,
    ) -> Transition<bool> {
        if let Some(ev) = self.expire_if_due(now) {
            events.push(ev);
            return Err(OrderError::Expired);
        }
        let issued_to = self.order.as_ref().and_then(|o| o.eid.as_ref());
        match self.state {
            ProfileState::Released => {}
            ProfileState::Downloaded if issued_to == Some(eid) => {}
            ProfileState::Allocated | ProfileState::Linked | ProfileState::Confirmed => {
                return Err(OrderError::NotReleased);
            }
            ProfileState::Expired => return Err(OrderError::Expired),
            state => {
                return Err(OrderError::WrongState {
                    state,
                    action: "download",
                });
            }
        }
        let order = self.order_mut("download")?;
        if let Some(linked) = &order.eid
            && linked != eid
        {
            events.push(self.event_for(
                eid,
                NotificationPoint::EligibilityCheck,
                Some(StatusCode::EID_REFUSED),
                now,
            ));
            return Err(OrderError::EidMismatch);
        }
        if order.download_attempts >= policy.max_download_attempts {
            self.fail(
                FailureInfo {
                    bpp_command_id: None,
                    error_reason: None,
                    message: "maximum number of download attempts exceeded".into(),
                },
                now,
            );
            events.push(self.event_for(
                eid,
                NotificationPoint::EligibilityCheck,
                Some(StatusCode::DOWNLOAD_RETRIES_EXCEEDED),
                now,
            ));
            return Err(OrderError::DownloadAttemptsExceeded);
        }
        order.download_attempts += 1;
        order.session = Some(tid.clone());
        let cc_required = order.confirmation.is_some();
        self.updated_at = now;
        events.push(self.event_for(eid, NotificationPoint::EligibilityCheck, None, now));
        Ok(cc_required)
    }

    /// ES9+ `getBoundProfilePackage`, step 1: check the hashed confirmation
    /// code sent by the eUICC (if the order has one). A wrong code is counted;
    /// past the limit the order is terminated.
    pub fn check_confirmation_code(
        &mut self,
        tid: &TransactionId,
        eid: &Eid,
        hashed_cc: Option<&[u8]>,
        now: Timestamp,
        policy: &OrderPolicy,
        events: &mut Vec<ProgressEvent>,
    ) -> Transition {
        self.require_session(tid, &[ProfileState::Released, ProfileState::Downloaded])?;
        let order = self.order_mut("confirmation code check")?;
        let Some(cc) = order.confirmation.as_mut() else {
            return Ok(());
        };
        let Some(given) = hashed_cc else {
            return Err(OrderError::ConfirmationCodeMissing);
        };
        if given == cc.expected_for(tid).as_slice() {
            return Ok(());
        }
        cc.failed_attempts += 1;
        let attempts = cc.failed_attempts;
        self.updated_at = now;
        if attempts >= policy.max_confirmation_attempts {
            self.fail(
                FailureInfo {
                    bpp_command_id: None,
                    error_reason: None,
                    message: "confirmation code retries exceeded".into(),
                },
                now,
            );
            events.push(self.event_for(
                eid,
                NotificationPoint::ConfirmationFailure,
                Some(StatusCode::CONFIRMATION_CODE_RETRIES_EXCEEDED),
                now,
            ));
            return Err(OrderError::ConfirmationCodeRetriesExceeded);
        }
        events.push(self.event_for(
            eid,
            NotificationPoint::ConfirmationFailure,
            Some(StatusCode::CONFIRMATION_CODE_REFUSED),
            now,
        ));
        Err(OrderError::ConfirmationCodeRefused {
            attempts,
            limit: policy.max_confirmation_attempts,
        })
    }

    /// ES9+ `getBoundProfilePackage`, step 2: the package is handed out. A
    /// repeated call by the same session (a network retry) is allowed; any
    /// other session is refused, so a profile is issued to one session at a
    /// time. From here on the order belongs to `eid` (an order placed
    /// without an EID is bound to the eUICC that received the package), so
    /// only that eUICC can retry ([`ProfileRecord::bind_session`]).
    pub fn mark_downloaded(
        &mut self,
        tid: &TransactionId,
        eid: &Eid,
        now: Timestamp,
        events: &mut Vec<ProgressEvent>,
    ) -> Transition {
        self.require_session(tid, &[ProfileState::Released, ProfileState::Downloaded])?;
        if self.state == ProfileState::Released {
            if let Some(order) = self.order.as_mut()
                && order.eid.is_none()
            {
                order.eid = Some(*eid);
            }
            self.state = ProfileState::Downloaded;
            self.updated_at = now;
            events.push(self.event_for(eid, NotificationPoint::BppDownload, None, now));
        }
        Ok(())
    }

    /// ES9+ `handleNotification` with a ProfileInstallationResult of session
    /// `tid`. Repeated notifications of an already recorded result are
    /// accepted without effect.
    pub fn record_installation(
        &mut self,
        tid: &TransactionId,
        eid: &Eid,
        result: Result<(), FailureInfo>,
        pir: &[u8],
        now: Timestamp,
        events: &mut Vec<ProgressEvent>,
    ) -> Transition {
        let bound = self.order.as_ref().and_then(|o| o.session.as_ref()) == Some(tid);
        if bound && matches!(self.state, ProfileState::Installed | ProfileState::Error) {
            return Ok(());
        }
        self.require_session(tid, &[ProfileState::Downloaded])?;
        let mut ev = match result {
            Ok(()) => {
                self.state = ProfileState::Installed;
                self.event_for(eid, NotificationPoint::BppInstallation, None, now)
            }
            Err(info) => {
                self.fail(info, now);
                self.event_for(
                    eid,
                    NotificationPoint::BppInstallation,
                    Some(StatusCode::PROFILE_UNAVAILABLE),
                    now,
                )
            }
        };
        ev.result_data = Some(pir.to_vec());
        events.push(ev);
        self.updated_at = now;
        Ok(())
    }

    /// ES9+ `cancelSession` by session `tid`. Postponed or timed-out downloads
    /// (and undefined reasons, such as a lost connection) may be retried;
    /// other reasons end the order in `Error`. A retry stays possible after
    /// the package was issued (`Downloaded`): the eUICC signed the
    /// cancellation of this session, so the session's package can no longer
    /// be installed, and only the eUICC it was issued to may download again
    /// ([`ProfileRecord::bind_session`]).
    pub fn cancel_session(
        &mut self,
        tid: &TransactionId,
        eid: Option<&Eid>,
        reason: CancelSessionReason,
        now: Timestamp,
        events: &mut Vec<ProgressEvent>,
    ) -> Transition {
        self.require_session(tid, &[ProfileState::Released, ProfileState::Downloaded])?;
        let status = StatusCode::PROFILE_UNAVAILABLE;
        if reason.allows_retry() {
            if let Some(order) = self.order.as_mut() {
                order.session = None;
            }
        } else {
            self.fail(
                FailureInfo {
                    bpp_command_id: None,
                    error_reason: Some(reason.code()),
                    message: format!("download cancelled by the device: {reason:?}"),
                },
                now,
            );
        }
        self.updated_at = now;
        let mut ev = self.event(NotificationPoint::BppDownload, Some(status), now);
        ev.eid = eid.cloned().or(ev.eid);
        events.push(ev);
        Ok(())
    }

    /// The matching id of the order, if any.
    pub fn matching_id(&self) -> Option<&MatchingId> {
        self.order.as_ref().and_then(|o| o.matching_id.as_ref())
    }

    fn fail(&mut self, info: FailureInfo, now: Timestamp) {
        self.state = ProfileState::Error;
        if let Some(order) = self.order.as_mut() {
            order.failure = Some(info);
        }
        self.updated_at = now;
    }

    fn require(&self, allowed: &[ProfileState], action: &'static str) -> Transition {
        if allowed.contains(&self.state) {
            Ok(())
        } else {
            Err(OrderError::WrongState {
                state: self.state,
                action,
            })
        }
    }

    fn require_session(&self, tid: &TransactionId, allowed: &[ProfileState]) -> Transition {
        let bound = self.order.as_ref().and_then(|o| o.session.as_ref());
        if bound != Some(tid) {
            return Err(OrderError::SessionSuperseded);
        }
        self.require(allowed, "this download step")
    }

    fn order_mut(&mut self, action: &'static str) -> Result<&mut Order, OrderError> {
        let state = self.state;
        self.order
            .as_mut()
            .ok_or(OrderError::WrongState { state, action })
    }

    fn event(
        &self,
        point: NotificationPoint,
        failure: Option<StatusCode>,
        at: Timestamp,
    ) -> ProgressEvent {
        ProgressEvent {
            operator: self.operator.clone(),
            iccid: self.iccid.clone(),
            eid: self.order.as_ref().and_then(|o| o.eid),
            profile_type: self.profile_type.clone(),
            point,
            failure,
            result_data: None,
            at,
        }
    }

    fn event_for(
        &self,
        eid: &Eid,
        point: NotificationPoint,
        failure: Option<StatusCode>,
        at: Timestamp,
    ) -> ProgressEvent {
        let mut ev = self.event(point, failure, at);
        ev.eid = Some(*eid);
        ev
    }
}
