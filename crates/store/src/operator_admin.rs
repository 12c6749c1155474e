//! Administration of operators beyond what the SM-DP+ logic needs: listing
//! them and removing one that has nothing left.

use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::store::{Operator, StoreError};

use crate::SqlStore;
use crate::rows::{backend_err, col, hash32, operator};

impl SqlStore {
    /// Every operator, by id.
    pub async fn list_operators(&self) -> Result<Vec<Operator>, StoreError> {
        let rows =
            sqlx::query("SELECT id, name, token_hash, callback_url FROM operators ORDER BY id")
                .fetch_all(self.reader())
                .await
                .map_err(backend_err)?;
        rows.iter()
            .map(|r| {
                Ok(Operator {
                    id: operator(col(r, "id")?)?,
                    name: col(r, "name")?,
                    token_hash: hash32(col(r, "token_hash")?, "token hash")?,
                    callback_url: col(r, "callback_url")?,
                })
            })
            .collect()
    }

    /// The names of the operator's profile types.
    pub async fn operator_profile_types(&self, id: &OperatorId) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT name FROM profile_types WHERE operator = $1 ORDER BY name")
            .bind(id.as_str())
            .fetch_all(self.reader())
            .await
            .map_err(backend_err)?;
        rows.iter().map(|r| col(r, "name")).collect()
    }

    /// Removes an operator and its ES2+ call records, in one transaction.
    /// Refused ([`StoreError::Conflict`]) while it owns profile types (and
    /// so possibly profiles and orders). Returns whether it existed.
    pub async fn remove_operator(&self, id: &OperatorId) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let types: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM profile_types WHERE operator = $1")
                .bind(id.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(backend_err)?;
        if types > 0 {
            return Err(StoreError::Conflict(format!(
                "operator {id} owns {types} profile type(s); remove them first"
            )));
        }
        sqlx::query("DELETE FROM operator_tokens WHERE operator = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?;
        sqlx::query("DELETE FROM es2_calls WHERE operator = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?;
        let removed = sqlx::query("DELETE FROM operators WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?
            .rows_affected();
        tx.commit().await.map_err(backend_err)?;
        Ok(removed > 0)
    }
}
