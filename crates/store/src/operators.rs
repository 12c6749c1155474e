//! Operators and profile types.

use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::metadata::ProfileTypeMetadata;
use ferrosim_smdp::store::{Operator, ProfileTypeRecord, StoreError};
use ferrosim_smdp::time::Timestamp;
use sqlx::any::AnyRow;

use crate::SqlStore;
use crate::rows::{backend_err, col, corrupt, hash32, operator};

impl SqlStore {
    /// Writes the operator and its `default` token (see
    /// [`crate::operator_tokens`]) in one transaction. The same token hash
    /// as before leaves the token as it was (revoked stays revoked); a new
    /// one replaces it, active.
    pub(crate) async fn put_operator_impl(&self, op: &Operator) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO operators (id, name, token_hash, callback_url) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, token_hash = excluded.token_hash,
             callback_url = excluded.callback_url",
        )
        .bind(op.id.as_str())
        .bind(&op.name)
        .bind(op.token_hash.to_vec())
        .bind(op.callback_url.clone())
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        sqlx::query(
            "INSERT INTO operator_tokens (operator, name, token_hash, created_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (operator, name) DO UPDATE SET
               revoked_at = CASE WHEN operator_tokens.token_hash = excluded.token_hash
                            THEN operator_tokens.revoked_at ELSE NULL END,
               created_at = CASE WHEN operator_tokens.token_hash = excluded.token_hash
                            THEN operator_tokens.created_at ELSE excluded.created_at END,
               token_hash = excluded.token_hash",
        )
        .bind(op.id.as_str())
        .bind(crate::operator_tokens::DEFAULT_TOKEN)
        .bind(op.token_hash.to_vec())
        .bind(Timestamp::now().millis())
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)?;
        Ok(())
    }

    /// The operator of an active (not revoked) token, any of its names.
    pub(crate) async fn operator_by_token_impl(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<Operator>, StoreError> {
        let row = sqlx::query(
            "SELECT o.id, o.name, t.token_hash, o.callback_url
             FROM operator_tokens t JOIN operators o ON o.id = t.operator
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
        )
        .bind(token_hash.to_vec())
        .fetch_optional(self.reader())
        .await
        .map_err(backend_err)?;
        row.map(|r| operator_row(&r)).transpose()
    }

    pub(crate) async fn operator_impl(
        &self,
        id: &OperatorId,
    ) -> Result<Option<Operator>, StoreError> {
        let row =
            sqlx::query("SELECT id, name, token_hash, callback_url FROM operators WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(self.reader())
                .await
                .map_err(backend_err)?;
        row.map(|r| operator_row(&r)).transpose()
    }

    /// Stores version `t.version` of a profile type, in one transaction:
    /// it must be the latest + 1 (1 for a new name), else a
    /// [`StoreError::Conflict`] (two imports racing: the second one loses).
    pub(crate) async fn put_profile_type_impl(
        &self,
        t: &ProfileTypeRecord,
    ) -> Result<(), StoreError> {
        let metadata =
            serde_json::to_string(&t.metadata).map_err(|e| StoreError::Backend(e.to_string()))?;
        let mut tx = self.begin_write().await?;
        let latest: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM profile_types WHERE operator = $1 AND name = $2",
        )
        .bind(t.operator.as_str())
        .bind(&t.name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend_err)?;
        let latest = latest.unwrap_or(0);
        if i64::from(t.version) != latest + 1 {
            return Err(StoreError::Conflict(format!(
                "profile type {} is at version {latest}; the next version is {}, not {}",
                t.name,
                latest + 1,
                t.version
            )));
        }
        if latest == 0 {
            sqlx::query(
                "INSERT INTO profile_types (operator, name, package, metadata, created_at, version)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(t.operator.as_str())
            .bind(&t.name)
            .bind(t.package.clone())
            .bind(metadata.clone())
            .bind(t.created_at.millis())
            .bind(i64::from(t.version))
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?;
        } else {
            sqlx::query(
                "UPDATE profile_types SET package = $3, metadata = $4, version = $5
                 WHERE operator = $1 AND name = $2",
            )
            .bind(t.operator.as_str())
            .bind(&t.name)
            .bind(t.package.clone())
            .bind(metadata.clone())
            .bind(i64::from(t.version))
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?;
        }
        sqlx::query(
            "INSERT INTO profile_type_versions (operator, name, version, package, metadata, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(t.operator.as_str())
        .bind(&t.name)
        .bind(i64::from(t.version))
        .bind(t.package.clone())
        .bind(metadata)
        .bind(t.created_at.millis())
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)?;
        Ok(())
    }

    /// One version of a profile type, or (`None`) its latest.
    pub(crate) async fn profile_type_impl(
        &self,
        op: &OperatorId,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<ProfileTypeRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT v.operator, v.name, v.version, v.package, v.metadata, v.created_at
             FROM profile_type_versions v JOIN profile_types t
               ON t.operator = v.operator AND t.name = v.name
             WHERE v.operator = $1 AND v.name = $2 AND v.version = COALESCE($3, t.version)",
        )
        .bind(op.as_str())
        .bind(name)
        .bind(version.map(i64::from))
        .fetch_optional(self.reader())
        .await
        .map_err(backend_err)?;
        let Some(r) = row else { return Ok(None) };
        let metadata: String = col(&r, "metadata")?;
        let metadata: ProfileTypeMetadata = serde_json::from_str(&metadata)
            .map_err(|e| StoreError::Corrupt(format!("profile type metadata: {e}")))?;
        let version: i64 = col(&r, "version")?;
        Ok(Some(ProfileTypeRecord {
            operator: operator(col(&r, "operator")?)?,
            name: col(&r, "name")?,
            package: col(&r, "package")?,
            metadata,
            created_at: Timestamp(col(&r, "created_at")?),
            version: u32::try_from(version)
                .map_err(|_| corrupt("profile type version", version))?,
        }))
    }
}

fn operator_row(r: &AnyRow) -> Result<Operator, StoreError> {
    Ok(Operator {
        id: operator(col(r, "id")?)?,
        name: col(r, "name")?,
        token_hash: hash32(col(r, "token_hash")?, "token hash")?,
        callback_url: col(r, "callback_url")?,
    })
}
