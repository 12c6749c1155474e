//! Profile end of life in the database (table `profile_revocations`,
//! migration `202612050008_profile_end_of_life`): one row per revoked
//! profile with its ICCID's state, and each operator's reuse policy (table
//! `iccid_reuse_policies`). The decisions are
//! [`ferrosim_smdp::end_of_life`]'s; this module stores them.
//!
//! The SM-DP+ learns that the device deleted a revoked profile from the
//! signed delete notification it verified and recorded (table
//! `notifications`): [`EndOfLifeStore::settle_device_deletes`] moves each waiting
//! revocation whose delete notification has arrived to its policy's state.

use ferrosim_saip::Iccid;
use ferrosim_smdp::end_of_life::{EndOfLifeState, ReusePolicy, Revocation};
use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::order::ProfileState;
use ferrosim_smdp::store::{EndOfLifeStore, StoreError};
use ferrosim_smdp::time::Timestamp;
use sqlx::any::AnyRow;

use crate::SqlStore;
use crate::rows::{backend_err, col, corrupt, iccid, operator, opt_eid};

macro_rules! columns {
    () => {
        "iccid, operator, eid, previous_state, policy, quarantine_seconds, state, \
         reason, revoked_at, deleted_on_device_at"
    };
}

/// The columns [`revocation`] reads.
pub(crate) const REVOCATION_COLUMNS: &str = columns!();

/// A stored revocation row.
pub(crate) fn revocation(row: &AnyRow) -> Result<Revocation, StoreError> {
    let previous: String = col(row, "previous_state")?;
    let state: String = col(row, "state")?;
    let policy: String = col(row, "policy")?;
    let seconds: i64 = col(row, "quarantine_seconds")?;
    Ok(Revocation {
        iccid: iccid(&col::<String>(row, "iccid")?)?,
        operator: operator(col(row, "operator")?)?,
        eid: opt_eid(col(row, "eid")?)?,
        previous_state: ProfileState::parse(&previous)
            .ok_or_else(|| corrupt("profile state", &previous))?,
        policy: ReusePolicy::parse(&policy, seconds)
            .map_err(|_| corrupt("reuse policy", &policy))?,
        state: EndOfLifeState::parse(&state).ok_or_else(|| corrupt("end-of-life state", &state))?,
        reason: col(row, "reason")?,
        revoked_at: Timestamp::from_millis(col(row, "revoked_at")?),
        deleted_on_device_at: col::<Option<i64>>(row, "deleted_on_device_at")?
            .map(Timestamp::from_millis),
    })
}

impl EndOfLifeStore for SqlStore {
    /// The revocation of `iccid`, if it was revoked.
    async fn revocation(&self, iccid: &Iccid) -> Result<Option<Revocation>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM profile_revocations WHERE iccid = $1"
        );
        let row = sqlx::query(sql)
            .bind(iccid.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(backend_err)?;
        row.as_ref().map(revocation).transpose()
    }

    /// Stores a new revocation. A profile revoked already is a
    /// [`StoreError::Conflict`] and changes nothing.
    async fn insert_revocation(&self, r: &Revocation) -> Result<(), StoreError> {
        let sql = concat!(
            "INSERT INTO profile_revocations (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        );
        let done = sqlx::query(sql)
            .bind(r.iccid.as_str())
            .bind(r.operator.as_str())
            .bind(r.eid.as_ref().map(|e| e.to_string()))
            .bind(r.previous_state.as_str())
            .bind(r.policy.name())
            .bind(r.policy.quarantine_seconds())
            .bind(r.state.as_str())
            .bind(r.reason.as_str())
            .bind(r.revoked_at.millis())
            .bind(r.deleted_on_device_at.map(Timestamp::millis))
            .execute(self.pool())
            .await;
        match done {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict(
                format!("profile {} is revoked already", r.iccid.as_str()),
            )),
            Err(e) => Err(backend_err(e)),
        }
    }

    /// Revocations, oldest first; only those in `state` when given, only
    /// those of `operator` when given (at most 1,000).
    async fn revocations(
        &self,
        state: Option<EndOfLifeState>,
        operator: Option<&OperatorId>,
    ) -> Result<Vec<Revocation>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM profile_revocations
             WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR operator = $2)
             ORDER BY revoked_at, iccid LIMIT 1000"
        );
        let rows = sqlx::query(sql)
            .bind(state.map(EndOfLifeState::as_str))
            .bind(operator.map(OperatorId::as_str))
            .fetch_all(self.pool())
            .await
            .map_err(backend_err)?;
        rows.iter().map(revocation).collect()
    }

    /// Moves every revocation waiting for its device whose delete
    /// notification (same ICCID, same EID when known, received at or after
    /// the revocation) the SM-DP+ has recorded to its policy's state.
    /// Returns the revocations that moved.
    async fn settle_device_deletes(&self) -> Result<Vec<Revocation>, StoreError> {
        let waiting = self
            .revocations(Some(EndOfLifeState::AwaitingDeviceDelete), None)
            .await?;
        let mut moved = Vec::new();
        for mut r in waiting {
            let received: Option<i64> = sqlx::query_scalar(
                "SELECT MIN(received_at) FROM notifications
                 WHERE operation = 'delete' AND iccid = $1 AND received_at >= $2
                   AND ($3 IS NULL OR eid = $3)",
            )
            .bind(r.iccid.as_str())
            .bind(r.revoked_at.millis())
            .bind(r.eid.as_ref().map(|e| e.to_string()))
            .fetch_one(self.pool())
            .await
            .map_err(backend_err)?;
            let Some(at) = received else { continue };
            if r.device_deleted(Timestamp::from_millis(at))
                .map_err(|e| StoreError::Corrupt(e.to_string()))?
            {
                sqlx::query(
                    "UPDATE profile_revocations SET state = $1, deleted_on_device_at = $2
                     WHERE iccid = $3 AND state = 'awaiting-device-delete'",
                )
                .bind(r.state.as_str())
                .bind(at)
                .bind(r.iccid.as_str())
                .execute(self.pool())
                .await
                .map_err(backend_err)?;
                moved.push(r);
            }
        }
        Ok(moved)
    }

    /// The operator's reuse policy for revoked ICCIDs (retire when none was set).
    async fn reuse_policy(&self, op: &OperatorId) -> Result<ReusePolicy, StoreError> {
        let row = sqlx::query(
            "SELECT policy, quarantine_seconds FROM iccid_reuse_policies WHERE operator = $1",
        )
        .bind(op.as_str())
        .fetch_optional(self.pool())
        .await
        .map_err(backend_err)?;
        let Some(row) = row else {
            return Ok(ReusePolicy::Retire);
        };
        let name: String = col(&row, "policy")?;
        ReusePolicy::parse(&name, col(&row, "quarantine_seconds")?)
            .map_err(|_| corrupt("reuse policy", &name))
    }

    /// Sets the operator's reuse policy (for revocations from now on).
    async fn set_reuse_policy(
        &self,
        op: &OperatorId,
        policy: ReusePolicy,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO iccid_reuse_policies (operator, policy, quarantine_seconds)
             VALUES ($1, $2, $3)
             ON CONFLICT (operator) DO UPDATE SET policy = excluded.policy,
                 quarantine_seconds = excluded.quarantine_seconds",
        )
        .bind(op.as_str())
        .bind(policy.name())
        .bind(policy.quarantine_seconds())
        .execute(self.pool())
        .await
        .map_err(backend_err)?;
        Ok(())
    }
}
