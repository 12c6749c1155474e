//! ES9+ download sessions.

use ferrosim_smdp::ids::TransactionId;
use ferrosim_smdp::order::{ProfileRecord, ProgressEvent};
use ferrosim_smdp::session::{SessionRecord, SessionState};
use ferrosim_smdp::store::{ProfileSelector, StoreError};
use ferrosim_smdp::time::Timestamp;
use sqlx::AssertSqlSafe;
use sqlx::any::AnyRow;

use crate::Backend;
use crate::SqlStore;
use crate::callbacks::event_writes;
use crate::profiles::{profile_change_writes, select_profile};
use crate::rows::{backend_err, col, corrupt, opt_eid, opt_iccid};
use crate::writes::{Val, Writes, bind_all};

const SESSION_COLUMNS: &str = "transaction_id, state, created_at, expires_at, updated_at, \
     euicc_challenge, server_challenge, ci_key_id, eid, euicc_public_key, iccid, cc_required, \
     smdp_signature2, euicc_otpk";

impl SqlStore {
    pub(crate) async fn insert_session_impl(&self, s: &SessionRecord) -> Result<(), StoreError> {
        let backend = self.backend;
        let vals = session_vals(s);
        if backend == Backend::Postgres {
            // One statement: an autocommit insert, without BEGIN and COMMIT
            // round trips (SQLite instead joins the next commit group).
            bind_all(sqlx::query(INSERT_SESSION), vals)
                .execute(self.pool())
                .await
                .map_err(backend_err)?;
            return Ok(());
        }
        self.write(move |conn| {
            Box::pin(async move {
                let mut writes = Writes::default();
                writes.push(INSERT_SESSION, vals);
                writes.execute(conn, backend).await
            })
        })
        .await
    }

    pub(crate) async fn session_impl(
        &self,
        tid: &TransactionId,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE transaction_id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(tid.as_bytes().to_vec())
            .fetch_optional(self.reader())
            .await
            .map_err(backend_err)?;
        row.map(|r| session_row(&r)).transpose()
    }

    pub(crate) async fn update_session_impl<T, F>(
        &self,
        tid: &TransactionId,
        profile: Option<&ProfileSelector>,
        f: F,
    ) -> Result<Option<T>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut SessionRecord, Option<&mut ProfileRecord>, &mut Vec<ProgressEvent>) -> T
            + Send
            + 'static,
    {
        let backend = self.backend;
        let tid = tid.as_bytes().to_vec();
        let profile = profile.cloned();
        self.write(move |conn| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE transaction_id = $1{}",
                    backend.lock_clause(false)
                );
                let row = sqlx::query(AssertSqlSafe(sql))
                    .bind(tid)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(backend_err)?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let mut session = session_row(&row)?;
                let mut profile_rec = match &profile {
                    Some(sel) => select_profile(conn, backend, sel).await?,
                    None => None,
                };
                let session_before = session.clone();
                let profile_before = profile_rec.clone();
                let mut events = Vec::new();
                let out = f(&mut session, profile_rec.as_mut(), &mut events);
                if session.transaction_id != session_before.transaction_id {
                    return Err(StoreError::Corrupt(
                        "a step tried to change a session's id".into(),
                    ));
                }
                let mut writes = Writes::default();
                if session != session_before {
                    writes.push(UPDATE_SESSION, session_vals(&session));
                }
                match (&profile_rec, &profile_before) {
                    (Some(after), Some(before)) => {
                        profile_change_writes(&mut writes, before, after, &events)?
                    }
                    _ => event_writes(&mut writes, &events),
                }
                writes.execute(conn, backend).await?;
                Ok(Some(out))
            })
        })
        .await
    }

    pub(crate) async fn purge_sessions_impl(&self, before: Timestamp) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(before.millis())
            .execute(&self.pool)
            .await
            .map_err(backend_err)?;
        Ok(r.rows_affected())
    }
}

/// Inserts a session with every column.
const INSERT_SESSION: &str = "INSERT INTO sessions (transaction_id, state, created_at, expires_at, updated_at, \
     euicc_challenge, server_challenge, ci_key_id, eid, euicc_public_key, iccid, cc_required, \
     smdp_signature2, euicc_otpk) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

/// Updates every column of a session.
const UPDATE_SESSION: &str = "UPDATE sessions SET state = $2, created_at = $3, expires_at = $4, updated_at = $5, \
     euicc_challenge = $6, server_challenge = $7, ci_key_id = $8, eid = $9, euicc_public_key = $10, iccid = $11, \
     cc_required = $12, smdp_signature2 = $13, euicc_otpk = $14 WHERE transaction_id = $1";

/// The values of a session in [`SESSION_COLUMNS`] order.
fn session_vals(s: &SessionRecord) -> Vec<Val> {
    vec![
        s.transaction_id.as_bytes().to_vec().into(),
        s.state.as_str().into(),
        s.created_at.millis().into(),
        s.expires_at.millis().into(),
        s.updated_at.millis().into(),
        s.euicc_challenge.clone().into(),
        s.server_challenge.clone().into(),
        s.ci_key_id.clone().into(),
        s.eid.as_ref().map(|e| e.to_string()).into(),
        s.euicc_public_key.clone().into(),
        s.iccid.as_ref().map(|i| i.as_str().to_owned()).into(),
        i64::from(s.cc_required).into(),
        s.smdp_signature2.clone().into(),
        s.euicc_otpk.clone().into(),
    ]
}

fn session_row(r: &AnyRow) -> Result<SessionRecord, StoreError> {
    let tid: Vec<u8> = col(r, "transaction_id")?;
    let state: String = col(r, "state")?;
    Ok(SessionRecord {
        transaction_id: TransactionId::from_bytes(&tid)
            .map_err(|_| corrupt("transaction id", hex::encode(&tid)))?,
        state: SessionState::parse(&state).ok_or_else(|| corrupt("session state", &state))?,
        created_at: Timestamp(col(r, "created_at")?),
        expires_at: Timestamp(col(r, "expires_at")?),
        updated_at: Timestamp(col(r, "updated_at")?),
        euicc_challenge: col(r, "euicc_challenge")?,
        server_challenge: col(r, "server_challenge")?,
        ci_key_id: col(r, "ci_key_id")?,
        eid: opt_eid(col(r, "eid")?)?,
        euicc_public_key: col(r, "euicc_public_key")?,
        iccid: opt_iccid(col(r, "iccid")?)?,
        cc_required: col::<i64>(r, "cc_required")? != 0,
        smdp_signature2: col(r, "smdp_signature2")?,
        euicc_otpk: col(r, "euicc_otpk")?,
    })
}

#[cfg(test)]
mod tests {
    use super::{INSERT_SESSION, SESSION_COLUMNS};

    #[test]
    fn insert_names_every_session_column() {
        assert!(INSERT_SESSION.contains(SESSION_COLUMNS));
    }
}
