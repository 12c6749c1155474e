//! Profile secrets are not kept longer than needed: once a profile is
//! installed (plus the retention the operator configured) its K, OPc, PIN,
//! PUK and ADM values are purged from the personalisation; the ICCID and
//! IMSI stay (lists, IMSI uniqueness). An installed profile is never built
//! again, so nothing needs them; the operator's systems keep their copy.

use ferrosim_saip::{Iccid, Personalisation};
use ferrosim_smdp::store::StoreError;
use ferrosim_smdp::time::Timestamp;

use crate::SqlStore;
use crate::rows::{backend_err, col};

impl SqlStore {
    /// Purges the secrets of up to `limit` profiles installed (last
    /// changed) before `installed_before`, in one short transaction each
    /// row compared-and-set against what was read. Returns how many were
    /// purged; run again until it answers 0.
    pub async fn purge_installed_secrets(
        &self,
        installed_before: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let rows = sqlx::query(
            "SELECT iccid, personalisation FROM profiles
             WHERE state = 'installed' AND secrets_purged_at IS NULL AND updated_at < $1
             ORDER BY updated_at LIMIT $2",
        )
        .bind(installed_before.millis())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend_err)?;
        let mut updates = Vec::with_capacity(rows.len());
        for r in &rows {
            let iccid_text: String = col(r, "iccid")?;
            let old: String = col(r, "personalisation")?;
            let iccid = Iccid::new(&iccid_text)
                .map_err(|_| StoreError::Corrupt(format!("profiles: ICCID {iccid_text}")))?;
            let full = self.open_personalisation_text(&iccid, &old).await?;
            let mut kept = Personalisation::new(full.iccid.clone());
            kept.imsi = full.imsi.clone();
            updates.push((iccid_text, old, self.personalisation_text(&kept)?));
        }
        if updates.is_empty() {
            return Ok(0);
        }
        let mut purged = 0;
        let mut tx = self.begin_write().await?;
        for (iccid, old, new) in updates {
            purged += sqlx::query(
                "UPDATE profiles SET personalisation = $1, secrets_purged_at = $2
                 WHERE iccid = $3 AND personalisation = $4 AND state = 'installed'",
            )
            .bind(new)
            .bind(now.millis())
            .bind(iccid)
            .bind(old)
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?
            .rows_affected();
        }
        tx.commit().await.map_err(backend_err)?;
        Ok(purged)
    }
}
