//! An operator's ES2+ bearer tokens (table `operator_tokens`): several per
//! operator, each with a name, each accepted until it is revoked. Rotating
//! without downtime is: add a token, move the clients to it, revoke the old
//! one. The token `ferrosim operator add` / `rotate-token` issue is named
//! [`DEFAULT_TOKEN`] and written with the operator
//! ([`ferrosim_smdp::store::CatalogStore::put_operator`]); the others are
//! managed here. Only SHA-256 hashes are stored; a revoked token keeps its
//! row (name, creation and revocation times).

use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::store::StoreError;
use ferrosim_smdp::time::Timestamp;

use crate::SqlStore;
use crate::rows::{backend_err, col};

/// The name of the token an operator is created (or rotated) with.
pub const DEFAULT_TOKEN: &str = "default";

/// One of an operator's tokens, as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorToken {
    /// Its name, unique per operator.
    pub name: String,
    /// When it was issued.
    pub created_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

impl SqlStore {
    /// Adds a token named `name` to an existing operator. A name the
    /// operator used before (even revoked), a hash another token has, or an
    /// unknown operator is a [`StoreError::Conflict`].
    pub async fn add_operator_token(
        &self,
        op: &OperatorId,
        name: &str,
        token_hash: &[u8; 32],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM operators WHERE id = $1")
            .bind(op.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(backend_err)?;
        if exists == 0 {
            return Err(StoreError::Conflict(format!("no operator {op}")));
        }
        let used: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM operator_tokens WHERE operator = $1 AND name = $2",
        )
        .bind(op.as_str())
        .bind(name)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend_err)?;
        if used > 0 {
            return Err(StoreError::Conflict(format!(
                "operator {op} already has a token named {name} (names are not reused, even after revocation)"
            )));
        }
        sqlx::query(
            "INSERT INTO operator_tokens (operator, name, token_hash, created_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(op.as_str())
        .bind(name)
        .bind(token_hash.to_vec())
        .bind(now.millis())
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)?;
        Ok(())
    }

    /// The operator's tokens, by name.
    pub async fn operator_tokens(&self, op: &OperatorId) -> Result<Vec<OperatorToken>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, created_at, revoked_at FROM operator_tokens
             WHERE operator = $1 ORDER BY name",
        )
        .bind(op.as_str())
        .fetch_all(self.reader())
        .await
        .map_err(backend_err)?;
        rows.iter()
            .map(|r| {
                Ok(OperatorToken {
                    name: col(r, "name")?,
                    created_at: Timestamp(col(r, "created_at")?),
                    revoked_at: col::<Option<i64>>(r, "revoked_at")?.map(Timestamp),
                })
            })
            .collect()
    }

    /// Revokes the operator's token `name`: from now on it is refused.
    /// Returns whether an active token of that name existed. Revoking the
    /// operator's last active token is a [`StoreError::Conflict`] (it would
    /// lock the operator out: add another first).
    pub async fn revoke_operator_token(
        &self,
        op: &OperatorId,
        name: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let active: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM operator_tokens WHERE operator = $1 AND revoked_at IS NULL",
        )
        .bind(op.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(backend_err)?;
        if !active.iter().any(|n| n == name) {
            return Ok(false);
        }
        if active.len() == 1 {
            return Err(StoreError::Conflict(format!(
                "{name} is the last active token of operator {op}: revoking it would lock the \
                 operator out; add another token first"
            )));
        }
        sqlx::query(
            "UPDATE operator_tokens SET revoked_at = $3
             WHERE operator = $1 AND name = $2 AND revoked_at IS NULL",
        )
        .bind(op.as_str())
        .bind(name)
        .bind(now.millis())
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)?;
        Ok(true)
    }
}
