//! ES9+ download sessions. They are created and changed through
//! [`super::CommitStore`]; this trait reads and purges them.

use std::future::Future;

use ferrosim_pki::Eid;
use ferrosim_saip::Iccid;

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
    /// The eUICC and profile each of `tids` is bound to, for those that
    /// are (authenticated once; unknown and never-bound sessions are left
    /// out), in any order. Telemetry ties a batch of calls to devices with
    /// one such read instead of one [`SessionStore::session`] per session;
    /// stores that can should answer it in one query (this default asks
    /// session by session).
    fn session_bindings(
        &self,
        tids: &[TransactionId],
    ) -> impl Future<Output = StoreResult<Vec<(TransactionId, Eid, Iccid)>>> + Send {
        async move {
            let mut out = Vec::with_capacity(tids.len());
            for tid in tids {
                if let Some(s) = self.session(tid).await?
                    && let Some(b) = s.record.binding()
                {
                    out.push((tid.clone(), b.eid, b.iccid.clone()));
                }
            }
            Ok(out)
        }
    }
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
