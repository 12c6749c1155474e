//! Administration of profile types beyond what the SM-DP+ logic needs:
//! listing them with their inventory, and removing one that has none.

use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::metadata::ProfileTypeMetadata;
use ferrosim_smdp::order::ProfileState;
use ferrosim_smdp::store::StoreError;
use ferrosim_smdp::time::Timestamp;

use sha2::{Digest, Sha256};

use crate::SqlStore;
use crate::rows::{backend_err, col, corrupt, operator};

/// A profile type as `ferrosim profile-type list|show` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileTypeSummary {
    /// Owner.
    pub operator: OperatorId,
    /// Name used in ES2+ `profileType`.
    pub name: String,
    /// Size of its package in bytes.
    pub package_len: u64,
    /// Its metadata.
    pub metadata: ProfileTypeMetadata,
    /// When it was first imported.
    pub created_at: Timestamp,
    /// Its latest version (orders made from now on use it).
    pub version: u32,
    /// Its profiles per state (ordered by the state's name).
    pub profiles: Vec<(ProfileState, u64)>,
}

/// One version of a profile type, as `ferrosim profile-type show` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileTypeVersion {
    /// 1, 2, ...
    pub version: u32,
    /// When it was imported.
    pub created_at: Timestamp,
    /// Size of its package in bytes.
    pub package_len: u64,
    /// SHA-256 of its package, to tell versions apart.
    pub package_sha256: [u8; 32],
    /// Orders made with it (current orders of the type's profiles).
    pub orders: u64,
}

impl SqlStore {
    /// Profile types (of one operator, or all), by operator and name, with
    /// their profiles per state.
    pub async fn list_profile_types(
        &self,
        op: Option<&OperatorId>,
    ) -> Result<Vec<ProfileTypeSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT operator, name, LENGTH(package) AS package_len, metadata, created_at, version
             FROM profile_types WHERE ($1 IS NULL OR operator = $1) ORDER BY operator, name",
        )
        .bind(op.map(|o| o.as_str().to_owned()))
        .fetch_all(self.reader())
        .await
        .map_err(backend_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let metadata: String = col(r, "metadata")?;
            let metadata: ProfileTypeMetadata = serde_json::from_str(&metadata)
                .map_err(|e| StoreError::Corrupt(format!("profile type metadata: {e}")))?;
            let operator = operator(col(r, "operator")?)?;
            let name: String = col(r, "name")?;
            let profiles = self.profile_type_counts(&operator, &name).await?;
            out.push(ProfileTypeSummary {
                operator,
                name,
                package_len: u64::try_from(col::<i64>(r, "package_len")?).unwrap_or(0),
                metadata,
                created_at: Timestamp(col(r, "created_at")?),
                version: u32::try_from(col::<i64>(r, "version")?).unwrap_or(0),
                profiles,
            });
        }
        Ok(out)
    }

    /// Profiles of one type per state (ordered by the state's name).
    pub async fn profile_type_counts(
        &self,
        op: &OperatorId,
        name: &str,
    ) -> Result<Vec<(ProfileState, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM profiles WHERE operator = $1 AND profile_type = $2
             GROUP BY state ORDER BY state",
        )
        .bind(op.as_str())
        .bind(name)
        .fetch_all(self.reader())
        .await
        .map_err(backend_err)?;
        rows.iter()
            .map(|r| {
                let s: String = col(r, "state")?;
                let n: i64 = col(r, "n")?;
                let state = ProfileState::parse(&s).ok_or_else(|| corrupt("state", &s))?;
                Ok((state, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }

    /// Every version of a profile type, oldest first, with the number of
    /// orders made with each (profiles whose current order pinned it).
    pub async fn profile_type_versions(
        &self,
        op: &OperatorId,
        name: &str,
    ) -> Result<Vec<ProfileTypeVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT v.version, v.created_at, LENGTH(v.package) AS package_len, v.package,
                    (SELECT COUNT(*) FROM profiles p WHERE p.operator = v.operator
                       AND p.profile_type = v.name AND p.has_order = 1
                       AND p.type_version = v.version) AS orders
             FROM profile_type_versions v WHERE v.operator = $1 AND v.name = $2
             ORDER BY v.version",
        )
        .bind(op.as_str())
        .bind(name)
        .fetch_all(self.reader())
        .await
        .map_err(backend_err)?;
        rows.iter()
            .map(|r| {
                let package: Vec<u8> = col(r, "package")?;
                Ok(ProfileTypeVersion {
                    version: u32::try_from(col::<i64>(r, "version")?).unwrap_or(0),
                    created_at: Timestamp(col(r, "created_at")?),
                    package_len: u64::try_from(col::<i64>(r, "package_len")?).unwrap_or(0),
                    package_sha256: Sha256::digest(&package).into(),
                    orders: u64::try_from(col::<i64>(r, "orders")?).unwrap_or(0),
                })
            })
            .collect()
    }

    /// Removes a profile type, in one transaction. Refused
    /// ([`StoreError::Conflict`]) while profiles of the type exist (their
    /// packages are built from it). Returns whether it existed.
    pub async fn remove_profile_type(
        &self,
        op: &OperatorId,
        name: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let profiles: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM profiles WHERE operator = $1 AND profile_type = $2",
        )
        .bind(op.as_str())
        .bind(name)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend_err)?;
        if profiles > 0 {
            return Err(StoreError::Conflict(format!(
                "profile type {name} of {op} has {profiles} profile(s); their packages are built from it"
            )));
        }
        sqlx::query("DELETE FROM profile_type_versions WHERE operator = $1 AND name = $2")
            .bind(op.as_str())
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?;
        let removed = sqlx::query("DELETE FROM profile_types WHERE operator = $1 AND name = $2")
            .bind(op.as_str())
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?
            .rows_affected();
        tx.commit().await.map_err(backend_err)?;
        Ok(removed > 0)
    }
}
