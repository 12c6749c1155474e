//! The one write path of the SM-DP+'s versioned records: a step's
//! [`Changes`], committed atomically if nothing it read changed meanwhile.

use std::future::Future;

use super::{NotificationRecord, StoreResult, Version, Versioned};
use crate::order::{ProfileRecord, ProgressEvent};
use crate::session::SessionRecord;

/// A session a step creates or rewrites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionWrite {
    /// A new session ([`super::StoreError::Conflict`] if its id exists).
    Insert(SessionRecord),
    /// The session as it must be now, if it is still at `expected`.
    Update {
        /// The version the step read.
        expected: Version,
        /// The new record (same transaction id).
        record: SessionRecord,
    },
}

/// A profile a step rewrites, if it is still at `expected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileWrite {
    /// The version the step read.
    pub expected: Version,
    /// The record as the step read it at `expected`. A store may write only
    /// what differs from it: SQLite rewrites the index entries of every
    /// indexed column an UPDATE names, changed or not, and each rewritten
    /// entry costs a page in the write-ahead log.
    pub previous: ProfileRecord,
    /// The new record (same ICCID; its state, order and change time are written).
    pub record: ProfileRecord,
}

impl ProfileWrite {
    /// The rewrite of `read` into `record`.
    pub fn new(read: Versioned<ProfileRecord>, record: ProfileRecord) -> Self {
        Self {
            expected: read.version,
            previous: read.record,
            record,
        }
    }
}

/// Everything one step writes, all or nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The session created or changed.
    pub session: Option<SessionWrite>,
    /// The profile changed.
    pub profile: Option<ProfileWrite>,
    /// Events for the operator, appended to the callback outbox.
    pub events: Vec<ProgressEvent>,
    /// A device notification to keep.
    pub notification: Option<NotificationRecord>,
}

impl Changes {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.session.is_none()
            && self.profile.is_none()
            && self.events.is_empty()
            && self.notification.is_none()
    }
}

/// Commits [`Changes`].
pub trait CommitStore: Send + Sync + 'static {
    /// Writes `changes` in one transaction: each rewritten record must still
    /// be at its expected version (then it moves to the next one), each new
    /// session must not exist, every uniqueness rule must hold (a matching id
    /// belongs to one order). Otherwise nothing is written:
    /// [`super::StoreError::Stale`] for a changed record,
    /// [`super::StoreError::Conflict`] for a uniqueness rule. Empty changes
    /// succeed without touching the database.
    fn commit(&self, changes: Changes) -> impl Future<Output = StoreResult<()>> + Send;
}
