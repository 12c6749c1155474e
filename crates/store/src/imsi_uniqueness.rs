//! One IMSI, one profile: an import that would give an IMSI to a second
//! profile (in the same batch or already in the database) is refused whole,
//! naming the IMSI and the ICCID that has it.
//!
//! The IMSI is kept in its own column (`profiles.imsi`, beside the
//! personalisation) under a unique index, so two imports racing on two
//! instances cannot both take one IMSI either: the second one's write fails
//! on the index and its transaction is rolled back.

use std::collections::HashMap;

use ferrosim_smdp::store::{NewProfile, StoreError};
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::Backend;
use crate::rows::{backend_err, col};
use crate::writes::Writes;

/// IMSIs looked up (and rows updated) per statement.
const CHUNK: usize = 200;

/// Checks that no IMSI of `profiles` is used twice in the batch or by a
/// profile already stored, then records each profile's IMSI. Runs inside
/// the import's transaction, after its rows were inserted: on an error the
/// caller drops the transaction and nothing of the batch is stored.
pub(crate) async fn claim_imsis(
    conn: &mut AnyConnection,
    backend: Backend,
    profiles: &[NewProfile],
) -> Result<(), StoreError> {
    let mut owners: HashMap<&str, &str> = HashMap::new();
    let mut claims: Vec<(&str, &str)> = Vec::new();
    for p in profiles {
        let Some(imsi) = p.personalisation.imsi.as_ref() else {
            continue;
        };
        let (imsi, iccid) = (imsi.as_str(), p.record.iccid.as_str());
        if let Some(first) = owners.insert(imsi, iccid) {
            return Err(StoreError::Conflict(format!(
                "IMSI {imsi} is given to two profiles of the batch: ICCID {first} and ICCID {iccid}"
            )));
        }
        claims.push((imsi, iccid));
    }
    for chunk in claims.chunks(CHUNK) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT imsi, iccid FROM profiles WHERE imsi IN ({}) ORDER BY iccid LIMIT 1",
            placeholders.join(", ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (imsi, _) in chunk {
            q = q.bind(*imsi);
        }
        if let Some(row) = q.fetch_optional(&mut *conn).await.map_err(backend_err)? {
            let imsi: String = col(&row, "imsi")?;
            let holder: String = col(&row, "iccid")?;
            return Err(StoreError::Conflict(format!(
                "IMSI {imsi} is already used by ICCID {holder}"
            )));
        }
        let mut writes = Writes::default();
        for (imsi, iccid) in chunk {
            writes.push(
                "UPDATE profiles SET imsi = $1 WHERE iccid = $2",
                vec![(*imsi).into(), (*iccid).into()],
            );
        }
        writes.execute(conn, backend).await?;
    }
    Ok(())
}
