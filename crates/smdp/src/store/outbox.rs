//! What leaves the SM-DP+ later or must not run twice: the outbox of ES2+
//! `handleDownloadProgressInfo` callbacks, the notifications devices sent,
//! and the idempotency slots of ES2+ calls.

use std::future::Future;

use ferrosim_pki::Eid;
use ferrosim_saip::Iccid;

use super::StoreResult;
use crate::ids::OperatorId;
use crate::order::ProgressEvent;
use crate::time::Timestamp;

/// A queued ES2+ `handleDownloadProgressInfo` callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRecord {
    /// Queue id, also sent as the callback's `functionCallIdentifier` so the
    /// operator can drop a repeat after a crash between send and acknowledge.
    pub id: i64,
    /// The event.
    pub event: ProgressEvent,
    /// Attempts so far.
    pub attempts: u32,
}

/// A notification received over ES9+ `handleNotification` other than an
/// installation result (enable, disable, delete), kept for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRecord {
    /// The eUICC's sequence number.
    pub seq_number: i64,
    /// The operation (`install`, `enable`, `disable`, `delete`).
    pub operation: String,
    /// The profile, if the notification names one.
    pub iccid: Option<Iccid>,
    /// The device, if known.
    pub eid: Option<Eid>,
    /// The notification address in it.
    pub address: String,
    /// The whole notification as received.
    pub raw: Vec<u8>,
    /// When it arrived.
    pub received_at: Timestamp,
}

/// The state of an ES2+ call identified by `functionCallIdentifier`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallSlot {
    /// First time: the caller must execute it and then call
    /// [`OutboxStore::finish_call`].
    Fresh,
    /// Executed before: the stored response JSON, to return as is.
    Replay(String),
    /// The same call is executing now (elsewhere).
    InProgress,
    /// The identifier was used for a different request.
    Mismatch,
}

/// The callback outbox and the ES2+ call slots. Events enter the outbox
/// with the commit of the change that produced them ([`super::Changes`]).
pub trait OutboxStore: Send + Sync + 'static {
    /// Leases up to `limit` due callbacks (oldest first) for `lease_ms` so
    /// that no other instance sends them meanwhile; counts an attempt.
    fn claim_callbacks(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<CallbackRecord>>> + Send;
    /// The operators acknowledged the callbacks `ids` (one statement for a batch).
    fn callbacks_delivered(
        &self,
        ids: &[i64],
        now: Timestamp,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Delivery of callback `id` failed; try again at `next_attempt`.
    fn callback_failed(
        &self,
        id: i64,
        next_attempt: Timestamp,
        error: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Callbacks not yet acknowledged.
    fn pending_callbacks(&self) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Opens (or finds) the idempotency slot of an ES2+ call. A slot left
    /// in progress for longer than `stale_ms` (its instance died) is taken over.
    fn begin_call(
        &self,
        operator: &OperatorId,
        call_id: &str,
        function: &str,
        request_hash: &[u8; 32],
        now: Timestamp,
        stale_ms: i64,
    ) -> impl Future<Output = StoreResult<CallSlot>> + Send;
    /// Stores the response of an ES2+ call for replays.
    fn finish_call(
        &self,
        operator: &OperatorId,
        call_id: &str,
        response_json: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Forgets an in-progress slot whose execution failed before any change,
    /// so that a retry executes again.
    fn abandon_call(
        &self,
        operator: &OperatorId,
        call_id: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}
