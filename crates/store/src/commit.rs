//! The commit of a step's [`Changes`]: the writes of one transaction, each
//! rewrite a compare-and-set on the version the step read.
//!
//! No row is locked while the step runs (it ran before, with its EC work);
//! the transaction only writes, and a rewrite that finds its row at another
//! version fails the whole commit with [`StoreError::Stale`]. On SQLite the
//! writes join the writer's current commit group as one query; on PostgreSQL
//! a commit of just a new session is one autocommit statement.

use ferrosim_smdp::store::{Changes, SessionWrite, StoreError};

use crate::callbacks::event_writes;
use crate::calls::notification_write;
use crate::profile_update::update_profile;
use crate::sessions::{INSERT_SESSION, insert_session, update_session};
use crate::writes::{Writes, bind_all};
use crate::{Backend, SqlStore};

impl SqlStore {
    pub(crate) async fn commit_impl(&self, changes: Changes) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let backend = self.backend;
        if backend == Backend::Postgres
            && changes.profile.is_none()
            && changes.events.is_empty()
            && changes.notification.is_none()
            && let Some(SessionWrite::Insert(s)) = &changes.session
        {
            // One statement: an autocommit insert, without BEGIN and COMMIT
            // round trips (SQLite instead joins the next commit group).
            let vals = crate::sessions::session_vals(s);
            bind_all(sqlx::query(INSERT_SESSION), vals)
                .execute(self.pool())
                .await
                .map_err(crate::rows::backend_err)?;
            return Ok(());
        }
        self.commit_writes(writes_of(&changes)).await
    }
}

/// The statements of a commit: the session, the profile, then the outbox.
fn writes_of(changes: &Changes) -> Writes {
    let mut w = Writes::default();
    match &changes.session {
        Some(SessionWrite::Insert(s)) => insert_session(&mut w, s),
        Some(SessionWrite::Update { expected, record }) => {
            update_session(&mut w, record, *expected)
        }
        None => {}
    }
    if let Some(p) = &changes.profile {
        update_profile(&mut w, &p.previous, &p.record, p.expected);
    }
    event_writes(&mut w, &changes.events);
    if let Some(n) = &changes.notification {
        notification_write(&mut w, n);
    }
    w
}
