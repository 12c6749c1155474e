//! What an operator needs to manage the keys of secrets at rest: the data
//! keys stored (and which key-encryption key wraps each), how the profile
//! rows are stored (clear, or sealed under which data key), and re-wrapping
//! every data key under a new key-encryption key (KEK rotation: one short
//! transaction, no profile row touched).

use std::collections::BTreeMap;

use ferrosim_secrets::Kek;
use ferrosim_smdp::store::StoreError;
use ferrosim_smdp::time::Timestamp;

use crate::SqlStore;
use crate::rows::{backend_err, col};
use crate::sealed_personalisation::{SEALED_PREFIX, SealError};
use crate::secrets_at_rest::{poisoned, secret_err};

/// A stored data key, as `ferrosim keys status` shows it (nothing secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyInfo {
    /// Its id (named beside every value it sealed).
    pub id: u32,
    /// The id (hex) of the key-encryption key that wraps it.
    pub kek_id: String,
    /// When it was made.
    pub created_at: Timestamp,
}

/// How the profile rows are stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretsCensus {
    /// Rows in clear (made without a KEK, not migrated yet).
    pub clear: u64,
    /// Rows sealed, by data key.
    pub sealed: BTreeMap<u32, u64>,
    /// Rows whose secrets were purged after installation.
    pub purged: u64,
}

/// Characters of `sealed1:` + version (2 hex) + data key id (8 hex).
const SEALED_HEAD: usize = SEALED_PREFIX.len() + 2 + 8;

impl SqlStore {
    /// The stored data keys, oldest first.
    pub async fn data_keys(&self) -> Result<Vec<DataKeyInfo>, StoreError> {
        let rows = sqlx::query("SELECT id, wrapped, created_at FROM data_keys ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(backend_err)?;
        rows.iter()
            .map(|r| {
                let id: i64 = col(r, "id")?;
                let id = u32::try_from(id)
                    .map_err(|_| StoreError::Corrupt(format!("data_keys: id {id}")))?;
                let wrapped: String = col(r, "wrapped")?;
                // Version (2 hex digits), then the KEK id (16).
                let kek_id = wrapped
                    .get(2..18)
                    .ok_or_else(|| StoreError::Corrupt(format!("data_keys: key {id} truncated")))?
                    .to_owned();
                Ok(DataKeyInfo {
                    id,
                    kek_id,
                    created_at: Timestamp(col(r, "created_at")?),
                })
            })
            .collect()
    }

    /// Counts the profile rows by how they are stored.
    pub async fn secrets_census(&self) -> Result<SecretsCensus, StoreError> {
        let rows = sqlx::query(
            "SELECT CASE WHEN personalisation LIKE 'sealed1:%'
                         THEN substr(personalisation, 1, 18) ELSE 'clear' END AS form,
                    COUNT(*) AS n
             FROM profiles GROUP BY form",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend_err)?;
        let mut census = SecretsCensus::default();
        for r in &rows {
            let form: String = col(r, "form")?;
            let n = u64::try_from(col::<i64>(r, "n")?).unwrap_or(0);
            if form == "clear" {
                census.clear = n;
                continue;
            }
            let id = form
                .get(SEALED_PREFIX.len() + 2..SEALED_HEAD)
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .ok_or_else(|| StoreError::Corrupt("profiles: malformed sealed value".into()))?;
            *census.sealed.entry(id).or_insert(0) += n;
        }
        let purged =
            sqlx::query("SELECT COUNT(*) AS n FROM profiles WHERE secrets_purged_at IS NOT NULL")
                .fetch_one(&self.pool)
                .await
                .map_err(backend_err)?;
        census.purged = u64::try_from(col::<i64>(&purged, "n")?).unwrap_or(0);
        Ok(census)
    }

    /// The id (hex) of the key-encryption key this store was opened with.
    pub fn kek_id(&self) -> Option<String> {
        self.at_rest.as_ref().map(|a| a.kek.id_hex())
    }

    /// KEK rotation: every stored data key re-wrapped by `new_kek`, in one
    /// transaction, each compared-and-set against the wrapped text read (a
    /// data key added meanwhile, or a concurrent rotation, makes it a
    /// [`StoreError::Conflict`] and changes nothing). No profile row is
    /// touched. Instances running keep serving with the data keys they
    /// hold; each must be given the new KEK before it next starts. This
    /// store keeps the old KEK: open the database again with the new one.
    /// Returns the ids of the data keys re-wrapped.
    pub async fn rewrap_data_keys(&self, new_kek: &Kek) -> Result<Vec<u32>, StoreError> {
        let a = self.at_rest.as_ref().ok_or(SealError::NoKeyring)?;
        self.reload_keyring().await?;
        let stored = sqlx::query("SELECT id, wrapped FROM data_keys ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(backend_err)?;
        let mut old = BTreeMap::new();
        for r in &stored {
            old.insert(col::<i64>(r, "id")?, col::<String>(r, "wrapped")?);
        }
        let rewrapped = {
            let ring = a.ring.read().map_err(|_| poisoned())?;
            ring.rewrap(new_kek, &mut rand::rng()).map_err(secret_err)?
        };
        if rewrapped.len() != old.len() {
            return Err(StoreError::Conflict(
                "a data key was added meanwhile: run the rotation again".into(),
            ));
        }
        let mut tx = self.begin_write().await?;
        let mut ids = Vec::with_capacity(rewrapped.len());
        for (id, wrapped) in rewrapped {
            let before = old.get(&i64::from(id)).ok_or_else(|| {
                StoreError::Conflict(format!(
                    "data key {id} is not stored: run the rotation again"
                ))
            })?;
            let done =
                sqlx::query("UPDATE data_keys SET wrapped = $1 WHERE id = $2 AND wrapped = $3")
                    .bind(hex::encode(&wrapped))
                    .bind(i64::from(id))
                    .bind(before)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend_err)?
                    .rows_affected();
            if done != 1 {
                return Err(StoreError::Conflict(format!(
                    "data key {id} changed meanwhile: run the rotation again"
                )));
            }
            ids.push(id);
        }
        tx.commit().await.map_err(backend_err)?;
        Ok(ids)
    }
}
