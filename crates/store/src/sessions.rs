//! ES9+ download sessions: one row per session, its phase's data in columns
//! that other phases leave empty, and a version for compare-and-set.

use ferrosim_ids::{CiKeyId, Eid, Iccid};
use ferrosim_smdp::ids::TransactionId;
use ferrosim_smdp::session::{Binding, SessionPhase, SessionRecord, SessionState};
use ferrosim_smdp::store::{StoreError, Version, Versioned};
use ferrosim_smdp::time::Timestamp;
use sqlx::AssertSqlSafe;

use crate::SqlStore;
use crate::rows::{StoreRow, backend_err, col, corrupt, get, opt_eid, opt_iccid, version};
use crate::writes::{Val, Writes};

/// Transaction ids per `SELECT` of [`SqlStore::session_bindings_impl`].
const BINDINGS_PER_SELECT: usize = 256;

pub(crate) const SESSION_COLUMNS: &str = "transaction_id, version, state, created_at, expires_at, \
     updated_at, euicc_challenge, server_challenge, ci_key_id, eid, euicc_public_key, iccid, \
     cc_required, smdp_signature2, euicc_otpk";

impl SqlStore {
    pub(crate) async fn session_impl(
        &self,
        tid: &TransactionId,
    ) -> Result<Option<Versioned<SessionRecord>>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE transaction_id = $1");
        self.hot_first(sql, vec![tid.as_bytes().to_vec().into()], |r| {
            session_row(r)
        })
        .await
    }

    /// The bindings of `tids` in one `SELECT` of three columns (in chunks
    /// of [`BINDINGS_PER_SELECT`]): what telemetry asks for a batch of calls.
    pub(crate) async fn session_bindings_impl(
        &self,
        tids: &[TransactionId],
    ) -> Result<Vec<(TransactionId, Eid, Iccid)>, StoreError> {
        let mut out = Vec::with_capacity(tids.len());
        for chunk in tids.chunks(BINDINGS_PER_SELECT) {
            let mut sql = String::from(
                "SELECT transaction_id, eid, iccid FROM sessions \
                 WHERE eid IS NOT NULL AND iccid IS NOT NULL AND transaction_id IN (",
            );
            for i in 1..=chunk.len() {
                if i > 1 {
                    sql.push_str(", ");
                }
                sql.push('$');
                sql.push_str(&i.to_string());
            }
            sql.push(')');
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for tid in chunk {
                q = q.bind(tid.as_bytes().to_vec());
            }
            let rows = q.fetch_all(self.reader()).await.map_err(backend_err)?;
            for r in &rows {
                let tid: Vec<u8> = col(r, "transaction_id")?;
                let tid = TransactionId::from_bytes(&tid)
                    .map_err(|_| corrupt("transaction id", hex::encode(&tid)))?;
                let eid: String = col(r, "eid")?;
                let iccid: String = col(r, "iccid")?;
                out.push((tid, crate::rows::eid(&eid)?, crate::rows::iccid(&iccid)?));
            }
        }
        Ok(out)
    }

    /// One bounded `DELETE` (its own short transaction, so the purge of a
    /// large backlog never holds the writer for long).
    pub(crate) async fn purge_sessions_impl(
        &self,
        now: Timestamp,
        ended_before: Timestamp,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "DELETE FROM sessions WHERE transaction_id IN (
                 SELECT transaction_id FROM sessions
                 WHERE state = 'initiated' AND expires_at < $1
                 UNION ALL
                 SELECT transaction_id FROM sessions
                 WHERE state <> 'initiated' AND expires_at < $2
                 LIMIT $3)",
        )
        .bind(now.millis())
        .bind(ended_before.millis())
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await
        .map_err(backend_err)?;
        Ok(r.rows_affected())
    }

    pub(crate) async fn pending_sessions_impl(
        &self,
        now: Timestamp,
        up_to: u64,
    ) -> Result<u64, StoreError> {
        // The bound is part of the SQL text, not a bind value: SQLite
        // (with STAT4, as built here) plans a bound `LIMIT` with its value
        // and so compiles the statement again every time the value is
        // bound. The cap is a setting, so the text stays the same and the
        // prepared statement is reused.
        let limit = i64::try_from(up_to).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT COUNT(*) AS n FROM (SELECT 1 AS one FROM sessions
             WHERE state = 'initiated' AND expires_at >= $1 LIMIT {limit}) pending"
        );
        let n: i64 = self
            .hot_first(sql, vec![now.millis().into()], |r| get(r, "n"))
            .await?
            .ok_or_else(|| StoreError::Backend("COUNT gave no row".into()))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// Inserts a session with every column, at the initial version.
pub(crate) const INSERT_SESSION: &str = "INSERT INTO sessions (transaction_id, state, \
     created_at, expires_at, updated_at, euicc_challenge, server_challenge, ci_key_id, eid, \
     euicc_public_key, iccid, cc_required, smdp_signature2, euicc_otpk) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

/// Rewrites every column of a session still at version `$15`.
const UPDATE_SESSION: &str = "UPDATE sessions SET version = version + 1, state = $2, \
     created_at = $3, expires_at = $4, updated_at = $5, euicc_challenge = $6, \
     server_challenge = $7, ci_key_id = $8, eid = $9, euicc_public_key = $10, iccid = $11, \
     cc_required = $12, smdp_signature2 = $13, euicc_otpk = $14 \
     WHERE transaction_id = $1 AND version = $15";

/// Queues the insert of a new session.
pub(crate) fn insert_session(w: &mut Writes, s: &SessionRecord) {
    w.push(INSERT_SESSION, session_vals(s));
}

/// Queues the compare-and-set rewrite of a session read at `expected`.
pub(crate) fn update_session(w: &mut Writes, s: &SessionRecord, expected: Version) {
    let mut vals = session_vals(s);
    vals.push(version_val(expected));
    w.push_checked(UPDATE_SESSION, vals);
}

/// A version as stored (a signed 64-bit integer).
pub(crate) fn version_val(v: Version) -> Val {
    i64::try_from(v.get()).unwrap_or(i64::MAX).into()
}

/// The values `$1..$14` of a session.
pub(crate) fn session_vals(s: &SessionRecord) -> Vec<Val> {
    let (challenges, binding) = match &s.phase {
        SessionPhase::Initiated {
            euicc_challenge,
            server_challenge,
            ci_key_id,
        } => (Some((euicc_challenge, server_challenge, ci_key_id)), None),
        _ => (None, s.binding()),
    };
    vec![
        s.transaction_id.as_bytes().to_vec().into(),
        s.state().as_str().into(),
        s.created_at.millis().into(),
        s.expires_at.millis().into(),
        s.updated_at.millis().into(),
        challenges.map(|c| c.0.to_vec()).into(),
        challenges.map(|c| c.1.to_vec()).into(),
        challenges.map(|c| c.2.as_bytes().to_vec()).into(),
        binding.map(|b| b.eid.to_string()).into(),
        binding
            .map(|b| b.euicc_public_key.as_bytes().to_vec())
            .into(),
        binding.map(|b| b.iccid.as_str().to_owned()).into(),
        i64::from(binding.is_some_and(|b| b.cc_required)).into(),
        binding.map(|b| b.smdp_signature2.clone()).into(),
        binding.and_then(|b| b.euicc_otpk.clone()).into(),
    ]
}

pub(crate) fn session_row<R: StoreRow + ?Sized>(
    r: &R,
) -> Result<Versioned<SessionRecord>, StoreError> {
    let tid: Vec<u8> = get(r, "transaction_id")?;
    let transaction_id = TransactionId::from_bytes(&tid)
        .map_err(|_| corrupt("transaction id", hex::encode(&tid)))?;
    let state: String = get(r, "state")?;
    let state = SessionState::parse(&state).ok_or_else(|| corrupt("session state", &state))?;
    let phase = match state {
        SessionState::Initiated => {
            let challenge = |name: &str| -> Result<[u8; 16], StoreError> {
                let v: Option<Vec<u8>> = get(r, name)?;
                v.as_deref()
                    .and_then(|v| <[u8; 16]>::try_from(v).ok())
                    .ok_or_else(|| corrupt(name, hex::encode(v.unwrap_or_default())))
            };
            let ci_key_id: Option<Vec<u8>> = get(r, "ci_key_id")?;
            let ci_key_id = ci_key_id.unwrap_or_default();
            SessionPhase::Initiated {
                euicc_challenge: challenge("euicc_challenge")?,
                server_challenge: challenge("server_challenge")?,
                ci_key_id: CiKeyId::from_bytes(&ci_key_id)
                    .map_err(|_| corrupt("ci_key_id", hex::encode(&ci_key_id)))?,
            }
        }
        SessionState::Authenticated => SessionPhase::Authenticated(binding(r, state)?),
        SessionState::PackageIssued => SessionPhase::PackageIssued(binding(r, state)?),
        SessionState::Completed => SessionPhase::Completed(binding(r, state)?),
        SessionState::Cancelled => SessionPhase::Cancelled(optional_binding(r)?),
    };
    Ok(Versioned::new(
        SessionRecord {
            transaction_id,
            created_at: Timestamp(get(r, "created_at")?),
            expires_at: Timestamp(get(r, "expires_at")?),
            updated_at: Timestamp(get(r, "updated_at")?),
            phase,
        },
        version(get(r, "version")?)?,
    ))
}

fn binding<R: StoreRow + ?Sized>(r: &R, state: SessionState) -> Result<Binding, StoreError> {
    optional_binding(r)?.ok_or_else(|| corrupt("binding of a session", state.as_str()))
}

/// The binding columns, `None` when the session was never authenticated.
fn optional_binding<R: StoreRow + ?Sized>(r: &R) -> Result<Option<Binding>, StoreError> {
    let eid = opt_eid(get(r, "eid")?)?;
    let key: Option<Vec<u8>> = get(r, "euicc_public_key")?;
    let iccid = opt_iccid(get(r, "iccid")?)?;
    let signature: Option<Vec<u8>> = get(r, "smdp_signature2")?;
    Ok(match (eid, key, iccid, signature) {
        (Some(eid), Some(euicc_public_key), Some(iccid), Some(smdp_signature2)) => Some(Binding {
            eid,
            euicc_public_key: euicc_public_key.into(),
            iccid,
            cc_required: get::<_, i64>(r, "cc_required")? != 0,
            smdp_signature2,
            euicc_otpk: get(r, "euicc_otpk")?,
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::{INSERT_SESSION, SESSION_COLUMNS};

    #[test]
    fn insert_names_every_session_column_but_the_version() {
        let without_version = SESSION_COLUMNS.replace("version, ", "");
        assert!(INSERT_SESSION.contains(&without_version));
    }
}
