//! API tokens of the REST APIs (table `api_tokens`): stored as the SHA-256
//! of their text with a scope name; the meaning of scopes and the checks
//! are in `ferrosim-server`'s `api::auth`.

use ferrosim_smdp::store::StoreError;

use crate::SqlStore;
use crate::rows::{backend_err, col, hash32};

/// One stored API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRow {
    /// Its id.
    pub id: String,
    /// What it is for.
    pub name: String,
    /// `read-only`, `operator` or `admin`.
    pub scope: String,
    /// SHA-256 of the token's text.
    pub hash: [u8; 32],
    /// Unix milliseconds.
    pub created_at: i64,
    /// When it was revoked (Unix milliseconds).
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "id, name, scope, token_hash, created_at, revoked_at";

fn row(r: &sqlx::any::AnyRow) -> Result<ApiTokenRow, StoreError> {
    Ok(ApiTokenRow {
        id: col(r, "id")?,
        name: col(r, "name")?,
        scope: col(r, "scope")?,
        hash: hash32(col(r, "token_hash")?, "token hash")?,
        created_at: col(r, "created_at")?,
        revoked_at: col(r, "revoked_at")?,
    })
}

impl SqlStore {
    /// Stores a new token (a duplicate id or hash is a conflict).
    pub async fn insert_api_token(&self, token: &ApiTokenRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, scope, token_hash, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token.id.clone())
        .bind(token.name.clone())
        .bind(token.scope.clone())
        .bind(token.hash.to_vec())
        .bind(token.created_at)
        .bind(token.revoked_at)
        .execute(self.pool())
        .await
        .map_err(backend_err)?;
        Ok(())
    }

    /// The token whose text hashes to `hash`.
    pub async fn api_token_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<ApiTokenRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = $1");
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(hash.to_vec())
            .fetch_optional(self.reader())
            .await
            .map_err(backend_err)?;
        r.as_ref().map(row).transpose()
    }

    /// Every token, oldest first.
    pub async fn api_tokens(&self) -> Result<Vec<ApiTokenRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_tokens ORDER BY created_at, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.reader())
            .await
            .map_err(backend_err)?;
        rows.iter().map(row).collect()
    }

    /// Revokes token `id` at `now`; `false` when there is no such token or
    /// it was revoked before.
    pub async fn revoke_api_token(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id.to_owned())
        .execute(self.pool())
        .await
        .map_err(backend_err)?;
        Ok(done.rows_affected() == 1)
    }
}
