//! ICCID reuse enforced at import: the ICCID of a revoked profile comes
//! back only when its operator's reuse policy allows it.
//!
//! A profile whose ICCID has a revocation (table `profile_revocations`) is
//! imported again only by the operator that revoked it and only once
//! [`Revocation::reusable_at`] the import time (the records' `updated_at`):
//! a quarantine that is over. The old profile row and its revocation are
//! then removed in the import's transaction, so the ICCID starts afresh (its
//! notifications and callbacks stay, as history). A retired ICCID, one still
//! waiting for the device's delete notification, one in quarantine, or one
//! another operator asks for is refused with [`StoreError::Conflict`]
//! naming the ICCID and why, and nothing of the batch is stored.

use std::collections::HashMap;

use ferrosim_smdp::end_of_life::{EndOfLifeState, Revocation};
use ferrosim_smdp::store::{NewProfile, StoreError};
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::revocations::{REVOCATION_COLUMNS, revocation};
use crate::rows::backend_err;

/// ICCIDs looked up per statement.
const CHUNK: usize = 200;

/// Checks every ICCID of `profiles` against the stored revocations and
/// frees the reusable ones (old profile row and revocation deleted). Runs
/// first in the import's transaction: on an error the caller drops the
/// transaction and nothing changed. Returns how many ICCIDs were freed.
pub(crate) async fn release_reusable_iccids(
    conn: &mut AnyConnection,
    profiles: &[NewProfile],
) -> Result<u64, StoreError> {
    let by_iccid: HashMap<&str, &NewProfile> = profiles
        .iter()
        .map(|p| (p.record.iccid.as_str(), p))
        .collect();
    let mut freed = 0;
    for chunk in profiles.chunks(CHUNK) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {REVOCATION_COLUMNS} FROM profile_revocations WHERE iccid IN ({}) ORDER BY iccid",
            placeholders.join(", ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for p in chunk {
            q = q.bind(p.record.iccid.as_str());
        }
        let rows = q.fetch_all(&mut *conn).await.map_err(backend_err)?;
        for row in &rows {
            let r = revocation(row)?;
            let Some(p) = by_iccid.get(r.iccid.as_str()) else {
                continue;
            };
            check_reusable(&r, p)?;
            for sql in [
                "DELETE FROM profiles WHERE iccid = $1",
                "DELETE FROM profile_revocations WHERE iccid = $1",
            ] {
                sqlx::query(sql)
                    .bind(r.iccid.as_str())
                    .execute(&mut *conn)
                    .await
                    .map_err(backend_err)?;
            }
            freed += 1;
        }
    }
    Ok(freed)
}

/// Why the revoked ICCID of `p` may not be imported now, if it may not.
fn check_reusable(r: &Revocation, p: &NewProfile) -> Result<(), StoreError> {
    let iccid = r.iccid.as_str();
    let refuse = |why: String| Err(StoreError::Conflict(format!("ICCID {iccid} {why}")));
    if p.record.operator != r.operator {
        return refuse(format!(
            "belongs to a profile revoked by operator {}: another operator may not reuse it",
            r.operator
        ));
    }
    let now = p.record.updated_at;
    if r.reusable_at(now) {
        return Ok(());
    }
    match (r.state, r.reusable_from()) {
        (EndOfLifeState::AwaitingDeviceDelete, _) => refuse(format!(
            "is revoked and its profile may still be on device {}: not reusable before the device's delete notification",
            r.eid
                .map(|e| e.to_string())
                .unwrap_or_else(|| "(unknown)".into())
        )),
        (EndOfLifeState::Quarantined, Some(from)) => refuse(format!(
            "is quarantined until {from} (revoked {})",
            r.revoked_at
        )),
        _ => refuse(format!(
            "is retired (revoked {}): the operator's policy never reuses it",
            r.revoked_at
        )),
    }
}
