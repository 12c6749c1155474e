//! ICCID reuse enforced at import: the ICCID of a revoked profile comes
//! back only when its operator's reuse policy allows it.
//!
//! A profile whose ICCID has a revocation (table `profile_revocations`) is
//! imported again only when [`ferrosim_smdp::end_of_life::check_reuse`]
//! allows it at the import time (the records' `updated_at`): by the
//! operator that revoked it, once its quarantine is over. The old profile row and its revocation are
//! then removed in the import's transaction, so the ICCID starts afresh (its
//! notifications and callbacks stay, as history). A retired ICCID, one still
//! waiting for the device's delete notification, one in quarantine, or one
//! another operator asks for is refused with [`StoreError::Conflict`]
//! naming the ICCID and why, and nothing of the batch is stored.

use std::collections::HashMap;

use ferrosim_smdp::end_of_life::{Revocation, check_reuse};
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
    check_reuse(r, &p.record.operator, p.record.updated_at).map_err(|e| StoreError::Conflict(e.0))
}
