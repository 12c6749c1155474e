//! Read-only lookups for administration messages (which of these ICCIDs
//! are taken?), outside the SM-DP+'s own store trait.

use ferrosim_saip::Iccid;
use ferrosim_smdp::ids::MatchingId;
use ferrosim_smdp::store::StoreError;

use crate::SqlStore;
use crate::rows::{backend_err, col, iccid};

/// ICCIDs per query in [`SqlStore::existing_iccids`].
const CHUNK: usize = 500;

impl SqlStore {
    /// Those of `iccids` that already have a profile, in the order given.
    pub async fn existing_iccids(&self, iccids: &[Iccid]) -> Result<Vec<Iccid>, StoreError> {
        let mut found = std::collections::HashSet::new();
        for chunk in iccids.chunks(CHUNK) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT iccid FROM profiles WHERE iccid IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for i in chunk {
                query = query.bind(i.as_str().to_owned());
            }
            for row in query.fetch_all(self.reader()).await.map_err(backend_err)? {
                let s: String = col(&row, "iccid")?;
                found.insert(iccid(&s)?);
            }
        }
        Ok(iccids
            .iter()
            .filter(|i| found.contains(*i))
            .cloned()
            .collect())
    }

    /// The ICCID of the profile whose order uses `matching_id`, if any.
    pub async fn matching_id_owner(
        &self,
        matching_id: &MatchingId,
    ) -> Result<Option<Iccid>, StoreError> {
        let row = sqlx::query("SELECT iccid FROM profiles WHERE matching_id = $1")
            .bind(matching_id.as_str())
            .fetch_optional(self.reader())
            .await
            .map_err(backend_err)?;
        row.map(|r| col::<String>(&r, "iccid").and_then(|s| iccid(&s)))
            .transpose()
    }
}
