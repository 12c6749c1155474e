//! What the SM-DP+ needs from persistence, as a trait.
//!
//! The logic in this crate never talks to a database: it calls a [`Store`].
//! `ferrosim-store` implements it with sqlx on SQLite (the embedded default)
//! and PostgreSQL (several stateless instances). Every method that changes
//! state is one transaction: the `update_*` methods lock the rows they
//! select, run the given pure function on them, write back what changed and
//! append the [`ProgressEvent`]s it produced to the callback outbox, then
//! commit. Rules live in the functions (see [`crate::order`]); atomicity
//! lives in the store.
//!
//! The functions given to `update_*` own what they use (`'static`): a store
//! may run them on a task of its own (the SQLite store runs every write
//! transaction in its writer task and commits concurrent ones together), and
//! a caller is answered only once its change is committed.

use std::future::Future;

use ferrosim_pki::Eid;
use ferrosim_saip::{Iccid, Personalisation};
use thiserror::Error;

use crate::ids::{MatchingId, OperatorId, TransactionId};
use crate::metadata::ProfileTypeMetadata;
use crate::order::{ProfileRecord, ProfileState, ProgressEvent};
use crate::session::SessionRecord;
use crate::time::Timestamp;

/// A persistence failure.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A uniqueness rule was violated (duplicate ICCID, matching id in use...).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Stored data could not be read back (corruption or a newer schema).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Backend(String),
}

/// An operator allowed to use ES2+.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// Its `functionRequesterIdentifier`.
    pub id: OperatorId,
    /// Display name.
    pub name: String,
    /// SHA-256 of its API token (the token itself is never stored).
    pub token_hash: [u8; 32],
    /// Where `handleDownloadProgressInfo` callbacks go, if anywhere.
    pub callback_url: Option<String>,
}

/// A profile type: an unprotected profile package used as the template of
/// every profile of the type, and the metadata shown to the end user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileTypeRecord {
    /// Owner.
    pub operator: OperatorId,
    /// Name used in ES2+ `profileType`.
    pub name: String,
    /// The unprotected profile package (SAIP DER) personalised per profile.
    pub package: Vec<u8>,
    /// Metadata (service provider, name, class, PPRs).
    pub metadata: ProfileTypeMetadata,
    /// When it was imported.
    pub created_at: Timestamp,
}

/// Which profile row a transaction works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileSelector {
    /// The profile with this ICCID, if it belongs to the operator (when given).
    Iccid(Iccid, Option<OperatorId>),
    /// The profile whose order has this matching id.
    MatchingId(MatchingId),
    /// Any available profile of the operator's type (skipping rows locked by
    /// concurrent transactions).
    FirstAvailable {
        /// Owner.
        operator: OperatorId,
        /// Profile type name.
        profile_type: String,
    },
    /// The oldest released order linked to this EID (default SM-DP+ address
    /// or SM-DS: the device has no matching id).
    ReleasedForEid(Eid),
}

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
    /// [`Store::finish_call`].
    Fresh,
    /// Executed before: the stored response JSON, to return as is.
    Replay(String),
    /// The same call is executing now (elsewhere).
    InProgress,
    /// The identifier was used for a different request.
    Mismatch,
}

/// A filter for listing profiles.
#[derive(Debug, Clone, Default)]
pub struct ProfileFilter {
    /// Only this operator's profiles.
    pub operator: Option<OperatorId>,
    /// Only this type.
    pub profile_type: Option<String>,
    /// Only this state.
    pub state: Option<ProfileState>,
    /// At most this many (newest changes first).
    pub limit: u32,
}

/// A profile to import, with the values its package is personalised with.
#[derive(Debug, Clone)]
pub struct NewProfile {
    /// The record (normally `Available`).
    pub record: ProfileRecord,
    /// ICCID, IMSI, keys and codes for the package.
    pub personalisation: Personalisation,
}

/// Result alias of store methods.
pub type StoreResult<T> = Result<T, StoreError>;

/// Persistence of the SM-DP+ (see the module documentation for the rules).
pub trait Store: Send + Sync + 'static {
    /// Creates or replaces an operator.
    fn put_operator(&self, operator: &Operator) -> impl Future<Output = StoreResult<()>> + Send;
    /// The operator whose token hashes to `token_hash`.
    fn operator_by_token(
        &self,
        token_hash: &[u8; 32],
    ) -> impl Future<Output = StoreResult<Option<Operator>>> + Send;
    /// The operator with this id.
    fn operator(
        &self,
        id: &OperatorId,
    ) -> impl Future<Output = StoreResult<Option<Operator>>> + Send;

    /// Creates or replaces a profile type.
    fn put_profile_type(
        &self,
        t: &ProfileTypeRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// One profile type of an operator.
    fn profile_type(
        &self,
        operator: &OperatorId,
        name: &str,
    ) -> impl Future<Output = StoreResult<Option<ProfileTypeRecord>>> + Send;

    /// Imports profiles in one transaction; a duplicate ICCID fails the whole batch.
    fn insert_profiles(
        &self,
        profiles: &[NewProfile],
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    /// One profile.
    fn profile(
        &self,
        iccid: &Iccid,
    ) -> impl Future<Output = StoreResult<Option<ProfileRecord>>> + Send;
    /// The personalisation values of a profile.
    fn personalisation(
        &self,
        iccid: &Iccid,
    ) -> impl Future<Output = StoreResult<Option<Personalisation>>> + Send;
    /// Profiles matching a filter.
    fn list_profiles(
        &self,
        filter: &ProfileFilter,
    ) -> impl Future<Output = StoreResult<Vec<ProfileRecord>>> + Send;
    /// Number of profiles per state, optionally for one operator.
    fn count_profiles(
        &self,
        operator: Option<&OperatorId>,
    ) -> impl Future<Output = StoreResult<Vec<(ProfileState, u64)>>> + Send;

    /// Runs `f` on the selected profile inside one transaction (see module
    /// docs). `None` when no row matches.
    fn update_profile<T, F>(
        &self,
        selector: &ProfileSelector,
        now: Timestamp,
        f: F,
    ) -> impl Future<Output = StoreResult<Option<T>>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&mut ProfileRecord, &mut Vec<ProgressEvent>) -> T + Send + 'static;

    /// Stores a new session.
    fn insert_session(
        &self,
        session: &SessionRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// One session.
    fn session(
        &self,
        tid: &TransactionId,
    ) -> impl Future<Output = StoreResult<Option<SessionRecord>>> + Send;
    /// Runs `f` on a session and (when `profile` is given and found) on a
    /// profile, in one transaction. `None` when the session does not exist.
    fn update_session<T, F>(
        &self,
        tid: &TransactionId,
        profile: Option<&ProfileSelector>,
        now: Timestamp,
        f: F,
    ) -> impl Future<Output = StoreResult<Option<T>>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&mut SessionRecord, Option<&mut ProfileRecord>, &mut Vec<ProgressEvent>) -> T
            + Send
            + 'static;
    /// Deletes sessions that expired before `before`; returns how many.
    fn purge_sessions(&self, before: Timestamp) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Records a non-installation notification.
    fn record_notification(
        &self,
        n: &NotificationRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Leases up to `limit` due callbacks for `lease_ms` so that no other
    /// instance sends them meanwhile.
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

    /// ICCIDs of open orders whose expiry passed (at most `limit`).
    fn due_expiries(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<Iccid>>> + Send;
}
