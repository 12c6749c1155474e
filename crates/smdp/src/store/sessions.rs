//! ES9+ download sessions. They are created and changed through
//! [`super::CommitStore`]; this trait reads and purges them.

use std::future::Future;

use super::{StoreResult, Versioned};
use crate::ids::TransactionId;
use crate::session::SessionRecord;
#[allow(unused_imports)] // linked from the docs
use crate::session::SessionState;
use crate::time::Timestamp;

/// ES9+ download sessions.
pub trait SessionStore: Send + Sync + 'static {
    /// One session, with its version.
    fn session(
        &self,
        tid: &TransactionId,
    ) -> impl Future<Output = StoreResult<Option<Versioned<SessionRecord>>>> + Send;
    /// Deletes at most `limit` sessions that serve no more: those never
    /// authenticated (still [`SessionState::Initiated`]) that expired before
    /// `now`, and the others that expired before `ended_before` (kept
    /// longer so that late installation results still verify). Returns how
    /// many it deleted; fewer than `limit` means none is left. Each call is
    /// one short transaction.
    fn purge_sessions(
        &self,
        now: Timestamp,
        ended_before: Timestamp,
        limit: u32,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
    /// How many sessions wait for `authenticateClient` (state
    /// [`SessionState::Initiated`], not expired at `now`), counting at most
    /// `up_to`.
    fn pending_sessions(
        &self,
        now: Timestamp,
        up_to: u64,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
}
