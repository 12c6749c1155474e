//! The store's side of secrets at rest: with a key-encryption key given
//! ([`SqlStore::with_kek`]) every personalisation written is sealed
//! (module [`crate::sealed_personalisation`]), every one read is opened, and
//! the data keys live wrapped in table `data_keys`.
//!
//! Rotation ([`SqlStore::add_data_key`] then [`SqlStore::reseal_chunk`])
//! re-seals rows in place, a chunk per short transaction, each row
//! compared-and-set against the text it read: the old data keys keep
//! opening rows until the last chunk, a crash loses nothing (a rerun finds
//! the rows not yet under the newest key), and serving goes on meanwhile.
//! The same chunks seal the clear rows of a database made before sealing
//! (in-place migration).

use std::sync::{Arc, RwLock};

use ferrosim_saip::{Iccid, Personalisation};
use ferrosim_secrets::{Kek, Keyring, SecretError};
use ferrosim_smdp::store::StoreError;

use crate::SqlStore;
use crate::rows::{backend_err, col};
use crate::sealed_personalisation::{
    SEALED_PREFIX, SealError, open_personalisation, seal_personalisation,
};

/// The key-encryption key and the data keys it unwrapped.
pub(crate) struct AtRest {
    pub(crate) kek: Kek,
    pub(crate) ring: RwLock<Keyring>,
}

impl std::fmt::Debug for AtRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AtRest({:?})", self.kek)
    }
}

/// What one chunk of re-sealing did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// Rows sealed under the newest data key by this chunk.
    pub resealed: u64,
    /// Rows changed by someone else meanwhile (looked at again next pass).
    pub skipped: u64,
    /// The last ICCID looked at: where the next chunk of this pass starts
    /// (`None` when the pass is over).
    pub next_after: Option<String>,
}

pub(crate) fn secret_err(e: SecretError) -> StoreError {
    SealError::from(e).into()
}

impl SqlStore {
    /// This store with profile secrets sealed under data keys wrapped by
    /// `kek`: loads the stored data keys (all must be wrapped by `kek`), or
    /// makes the first one.
    pub async fn with_kek(mut self, kek: Kek) -> Result<Self, StoreError> {
        let ring = self.load_keyring(&kek).await?;
        let ring = match ring {
            Some(r) => r,
            None => {
                let mut r = Keyring::unwrap_all(&kek, []).map_err(secret_err)?;
                let (id, wrapped) = r.add_data_key(&kek, &mut rand::rng()).map_err(secret_err)?;
                // Two instances starting at once: the second insert loses
                // and takes the winner's key.
                match self.store_data_key(id, &wrapped).await {
                    Ok(()) => r,
                    Err(StoreError::Conflict(_)) => self
                        .load_keyring(&kek)
                        .await?
                        .ok_or_else(|| StoreError::Corrupt("data_keys: vanished".into()))?,
                    Err(e) => return Err(e),
                }
            }
        };
        self.at_rest = Some(Arc::new(AtRest {
            kek,
            ring: RwLock::new(ring),
        }));
        Ok(self)
    }

    /// Whether profile secrets are sealed by this store.
    pub fn seals_secrets(&self) -> bool {
        self.at_rest.is_some()
    }

    pub(crate) async fn load_keyring(&self, kek: &Kek) -> Result<Option<Keyring>, StoreError> {
        let rows = sqlx::query("SELECT id, wrapped FROM data_keys ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(backend_err)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut wrapped = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = col(r, "id")?;
            let id = u32::try_from(id)
                .map_err(|_| StoreError::Corrupt(format!("data_keys: id {id}")))?;
            let w = hex::decode(col::<String>(r, "wrapped")?)
                .map_err(|_| StoreError::Corrupt(format!("data_keys: key {id} is not hex")))?;
            wrapped.push((id, w));
        }
        Keyring::unwrap_all(kek, wrapped)
            .map(Some)
            .map_err(secret_err)
    }

    async fn store_data_key(&self, id: u32, wrapped: &[u8]) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO data_keys (id, wrapped, created_at) VALUES ($1, $2, $3)")
            .bind(i64::from(id))
            .bind(hex::encode(wrapped))
            .bind(now_millis())
            .execute(&self.pool)
            .await
            .map_err(backend_err)?;
        Ok(())
    }

    /// The text to store for `p`: sealed when this store seals, else clear.
    pub(crate) fn personalisation_text(&self, p: &Personalisation) -> Result<String, StoreError> {
        match &self.at_rest {
            Some(a) => {
                let ring = a.ring.read().map_err(|_| poisoned())?;
                Ok(seal_personalisation(&ring, p, &mut rand::rng())?)
            }
            None => Ok(crate::personalisation::encode_personalisation(p)),
        }
    }

    /// Opens the stored text of row `iccid`. A data key made by another
    /// instance since this one loaded its keyring is fetched once.
    pub(crate) async fn open_personalisation_text(
        &self,
        iccid: &Iccid,
        text: &str,
    ) -> Result<Personalisation, StoreError> {
        let Some(a) = &self.at_rest else {
            return open_personalisation(None, iccid, text);
        };
        let first = {
            let ring = a.ring.read().map_err(|_| poisoned())?;
            open_personalisation(Some(&ring), iccid, text)
        };
        let unknown_key = matches!(
            crate::sealed_personalisation::stored_form(text),
            Ok(crate::sealed_personalisation::StoredForm::Sealed { data_key })
                if !a.ring.read().map_err(|_| poisoned())?.has_data_key(data_key)
        );
        if first.is_ok() || !unknown_key {
            return first;
        }
        self.reload_keyring().await?;
        let ring = a.ring.read().map_err(|_| poisoned())?;
        open_personalisation(Some(&ring), iccid, text)
    }

    /// Reads the data keys again (another instance may have added one).
    pub async fn reload_keyring(&self) -> Result<(), StoreError> {
        let Some(a) = &self.at_rest else {
            return Ok(());
        };
        if let Some(ring) = self.load_keyring(&a.kek).await? {
            *a.ring.write().map_err(|_| poisoned())? = ring;
        }
        Ok(())
    }

    /// Makes a new data key, stores it wrapped, and seals with it from now
    /// on (the first step of a rotation). Returns its id.
    pub async fn add_data_key(&self) -> Result<u32, StoreError> {
        let a = self.at_rest.as_ref().ok_or(SealError::NoKeyring)?;
        self.reload_keyring().await?;
        let (id, wrapped, ring) = {
            let mut ring = a.ring.read().map_err(|_| poisoned())?.clone_keys();
            let (id, wrapped) = ring
                .add_data_key(&a.kek, &mut rand::rng())
                .map_err(secret_err)?;
            (id, wrapped, ring)
        };
        self.store_data_key(id, &wrapped).await?;
        *a.ring.write().map_err(|_| poisoned())? = ring;
        Ok(id)
    }

    /// The newest data key (the one new values are sealed under).
    pub fn newest_data_key(&self) -> Option<u32> {
        let a = self.at_rest.as_ref()?;
        a.ring.read().ok()?.newest_data_key()
    }

    /// How many rows are not (yet) sealed under the newest data key.
    pub async fn rows_to_reseal(&self) -> Result<u64, StoreError> {
        let newest = self.newest_data_key().ok_or(SealError::NoKeyring)?;
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM profiles WHERE personalisation NOT LIKE $1")
                .bind(newest_pattern(newest))
                .fetch_one(&self.pool)
                .await
                .map_err(backend_err)?;
        Ok(u64::try_from(col::<i64>(&row, "n")?).unwrap_or(0))
    }

    /// Re-seals up to `limit` rows not yet under the newest data key (clear
    /// rows included), the ICCIDs after `after` in order, in one short
    /// transaction. A pass goes from `None` until
    /// [`ResealReport::next_after`] is `None`; [`SqlStore::rows_to_reseal`]
    /// then says whether rows written meanwhile by an instance that had not
    /// yet seen the new key need another pass.
    pub async fn reseal_chunk(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<ResealReport, StoreError> {
        let a = self.at_rest.as_ref().ok_or(SealError::NoKeyring)?;
        let newest = self.newest_data_key().ok_or(SealError::NoKeyring)?;
        let rows = sqlx::query(
            "SELECT iccid, personalisation FROM profiles
             WHERE iccid > $1 AND personalisation NOT LIKE $2
             ORDER BY iccid LIMIT $3",
        )
        .bind(after.unwrap_or(""))
        .bind(newest_pattern(newest))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend_err)?;
        let mut report = ResealReport::default();
        if rows.is_empty() {
            return Ok(report);
        }
        if rows.len() == limit as usize {
            report.next_after = Some(col(&rows[rows.len() - 1], "iccid")?);
        }
        let mut updates = Vec::with_capacity(rows.len());
        for r in &rows {
            let iccid_text: String = col(r, "iccid")?;
            let old: String = col(r, "personalisation")?;
            let iccid = Iccid::new(&iccid_text)
                .map_err(|_| StoreError::Corrupt(format!("profiles: ICCID {iccid_text}")))?;
            let p = self.open_personalisation_text(&iccid, &old).await?;
            let new = {
                let ring = a.ring.read().map_err(|_| poisoned())?;
                seal_personalisation(&ring, &p, &mut rand::rng())?
            };
            updates.push((iccid_text, old, new));
        }
        let mut tx = self.begin_write().await?;
        for (iccid, old, new) in updates {
            let done = sqlx::query(
                "UPDATE profiles SET personalisation = $1 WHERE iccid = $2 AND personalisation = $3",
            )
            .bind(new)
            .bind(iccid)
            .bind(old)
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?
            .rows_affected();
            if done == 1 {
                report.resealed += 1;
            } else {
                report.skipped += 1;
            }
        }
        tx.commit().await.map_err(backend_err)?;
        Ok(report)
    }
}

impl SqlStore {
    /// Drops what the database keeps of rows it no longer uses: on SQLite
    /// the free pages and the WAL still hold the clear text of rows sealed
    /// by a migration, so the file is rebuilt (`VACUUM`) and the WAL
    /// truncated. On PostgreSQL the old row versions stay in the table's
    /// free space until reused or `VACUUM FULL` (and in WAL archives): see
    /// docs/SECURITY.md.
    pub async fn scrub_free_space(&self) -> Result<(), StoreError> {
        if self.backend == crate::Backend::Sqlite {
            for sql in ["VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"] {
                sqlx::query(sql)
                    .execute(&self.pool)
                    .await
                    .map_err(backend_err)?;
            }
        }
        Ok(())
    }
}

/// `LIKE` pattern of the values sealed under data key `id`.
fn newest_pattern(id: u32) -> String {
    format!("{SEALED_PREFIX}01{}%", hex::encode(id.to_be_bytes()))
}

pub(crate) fn poisoned() -> StoreError {
    StoreError::Backend("keyring lock poisoned".into())
}

pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
