//! Properties of the SM-DP+ instance stored with its data (table
//! `instance_settings`): named text values such as the SM-DP+ address,
//! shared by every instance on the same database.

use ferrosim_smdp::store::StoreError;

use crate::SqlStore;
use crate::rows::{backend_err, col};

impl SqlStore {
    /// The stored value of setting `name`, if any.
    pub async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM instance_settings WHERE name = $1")
            .bind(name)
            .fetch_optional(self.reader())
            .await
            .map_err(backend_err)?;
        row.map(|r| col(&r, "value")).transpose()
    }

    /// Stores `value` as setting `name` (replacing an earlier value).
    pub async fn set_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO instance_settings (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(backend_err)?;
        Ok(())
    }
}
