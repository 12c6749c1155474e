//! ES9+ download sessions. They are created and changed through
//! [`super::CommitStore`]; this trait reads and purges them.

use std::future::Future;

use super::{StoreResult, Versioned};
use crate::ids::TransactionId;
use crate::session::SessionRecord;
use crate::time::Timestamp;

/// ES9+ download sessions.
pub trait SessionStore: Send + Sync + 'static {
    /// One session, with its version.
    fn session(
        &self,
        tid: &TransactionId,
    ) -> impl Future<Output = StoreResult<Option<Versioned<SessionRecord>>>> + Send;
    /// Deletes sessions that expired before `before`; returns how many.
    fn purge_sessions(&self, before: Timestamp) -> impl Future<Output = StoreResult<u64>> + Send;
}
