//! Profiles and their orders: import, the loads of a step, listings, and
//! the compare-and-set rewrite a commit makes.

use ferrosim_saip::{Iccid, Personalisation};
use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::order::{
    ConfirmationCode, DeviceProfileState, DeviceReport, FailureInfo, Order, ProfileRecord,
    ProfileState,
};
use ferrosim_smdp::store::{NewProfile, ProfileFilter, ProfileSelector, StoreError, Versioned};
use ferrosim_smdp::time::Timestamp;
use sqlx::AssertSqlSafe;

use crate::SqlStore;
use crate::rows::{
    StoreRow, backend_err, col, corrupt, get, hash32, iccid, operator, opt_eid, opt_matching_id,
    opt_tid, u32_of, version,
};
use crate::writes::{Val, Writes};

/// The columns of a profile row that make up a [`ProfileRecord`].
pub(crate) const PROFILE_COLUMNS: &str = "iccid, operator, profile_type, state, has_order, eid, \
     matching_id, cc_hash, cc_failed_attempts, smds_address, order_created_at, order_expires_at, \
     session_tid, download_attempts, failure_bpp_command_id, failure_error_reason, \
     failure_message, updated_at, device_state, device_seq, device_at, type_version, version";

impl SqlStore {
    pub(crate) async fn insert_profiles_impl(
        &self,
        profiles: &[NewProfile],
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        crate::iccid_reuse::release_reusable_iccids(&mut tx, profiles).await?;
        for p in profiles {
            if p.personalisation.iccid != p.record.iccid {
                return Err(StoreError::Conflict(format!(
                    "personalisation ICCID differs from the record's ({})",
                    p.record.iccid.as_str()
                )));
            }
            // The row and its order columns in one round trip.
            let mut writes = Writes::default();
            writes.push(
                INSERT_PROFILE,
                vec![
                    p.record.iccid.as_str().into(),
                    p.record.operator.as_str().into(),
                    p.record.profile_type.as_str().into(),
                    p.record.state.as_str().into(),
                    self.personalisation_text(&p.personalisation)?.into(),
                    p.record.updated_at.millis().into(),
                ],
            );
            writes.push(FILL_PROFILE, profile_vals(&p.record));
            writes.execute(&mut tx, self.backend).await?;
        }
        crate::imsi_uniqueness::claim_imsis(&mut tx, self.backend, profiles).await?;
        tx.commit().await.map_err(backend_err)?;
        Ok(profiles.len() as u64)
    }

    pub(crate) async fn profile_impl(
        &self,
        iccid: &Iccid,
    ) -> Result<Option<ProfileRecord>, StoreError> {
        let sql = format!("SELECT {PROFILE_COLUMNS} FROM profiles WHERE iccid = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(iccid.as_str())
            .fetch_optional(self.reader())
            .await
            .map_err(backend_err)?;
        row.map(|r| profile_row(&r)).transpose()
    }

    pub(crate) async fn personalisation_impl(
        &self,
        iccid: &Iccid,
    ) -> Result<Option<Personalisation>, StoreError> {
        let text: Option<String> = self
            .hot_first(
                "SELECT personalisation FROM profiles WHERE iccid = $1".to_owned(),
                vec![iccid.as_str().into()],
                |r| get(r, "personalisation"),
            )
            .await?;
        match text {
            Some(text) => self.open_personalisation_text(iccid, &text).await.map(Some),
            None => Ok(None),
        }
    }

    pub(crate) async fn list_profiles_impl(
        &self,
        filter: &ProfileFilter,
    ) -> Result<Vec<ProfileRecord>, StoreError> {
        let sql = format!(
            "SELECT {PROFILE_COLUMNS} FROM profiles
             WHERE ($1 IS NULL OR operator = $1) AND ($2 IS NULL OR profile_type = $2)
               AND ($3 IS NULL OR state = $3)
             ORDER BY updated_at DESC, iccid LIMIT $4"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(filter.operator.as_ref().map(|o| o.as_str().to_owned()))
            .bind(filter.profile_type.clone())
            .bind(filter.state.map(|s| s.as_str().to_owned()))
            .bind(i64::from(if filter.limit == 0 {
                1000
            } else {
                filter.limit
            }))
            .fetch_all(self.reader())
            .await
            .map_err(backend_err)?;
        rows.iter().map(profile_row).collect()
    }

    pub(crate) async fn count_profiles_impl(
        &self,
        op: Option<&OperatorId>,
    ) -> Result<Vec<(ProfileState, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM profiles WHERE ($1 IS NULL OR operator = $1)
             GROUP BY state ORDER BY state",
        )
        .bind(op.map(|o| o.as_str().to_owned()))
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

    pub(crate) async fn find_profile_impl(
        &self,
        selector: &ProfileSelector,
    ) -> Result<Option<Versioned<ProfileRecord>>, StoreError> {
        let (sql, vals) = select_profile(selector, 1);
        self.hot_first(sql, vals, |r| versioned_profile_row(r))
            .await
    }

    pub(crate) async fn available_profiles_impl(
        &self,
        operator: &OperatorId,
        profile_type: &str,
        limit: u32,
    ) -> Result<Vec<Versioned<ProfileRecord>>, StoreError> {
        let sql = format!(
            "SELECT {PROFILE_COLUMNS} FROM profiles
             WHERE operator = $1 AND profile_type = $2 AND state = 'available'
             ORDER BY iccid LIMIT $3"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(operator.as_str())
            .bind(profile_type)
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await
            .map_err(backend_err)?;
        rows.iter().map(versioned_profile_row).collect()
    }

    pub(crate) async fn due_expiries_impl(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Iccid>, StoreError> {
        let rows = sqlx::query(
            "SELECT iccid FROM profiles WHERE has_order = 1 AND order_expires_at < $1
             AND state IN ('allocated', 'linked', 'confirmed', 'released') LIMIT $2",
        )
        .bind(now.millis())
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await
        .map_err(backend_err)?;
        rows.iter()
            .map(|r| iccid(&col::<String>(r, "iccid")?))
            .collect()
    }
}

/// The `SELECT` of the profile `selector` names, its placeholders
/// numbered from `$first`, and their values.
pub(crate) fn select_profile(selector: &ProfileSelector, first: usize) -> (String, Vec<Val>) {
    let p = first;
    match selector {
        ProfileSelector::Iccid(iccid, op) => (
            format!(
                "SELECT {PROFILE_COLUMNS} FROM profiles WHERE iccid = ${p} \
                 AND (${q} IS NULL OR operator = ${q})",
                q = p + 1
            ),
            vec![
                iccid.as_str().into(),
                op.as_ref().map(|o| o.as_str().to_owned()).into(),
            ],
        ),
        ProfileSelector::MatchingId(m) => (
            format!("SELECT {PROFILE_COLUMNS} FROM profiles WHERE matching_id = ${p}"),
            vec![m.as_str().into()],
        ),
        ProfileSelector::ReleasedForEid(eid) => (
            format!(
                "SELECT {PROFILE_COLUMNS} FROM profiles WHERE eid = ${p} AND state = 'released' \
                 ORDER BY order_created_at, iccid LIMIT 1"
            ),
            vec![eid.to_string().into()],
        ),
    }
}

/// A new profile row (its order columns follow with [`profile_write`]).
const INSERT_PROFILE: &str = "INSERT INTO profiles (iccid, operator, profile_type, state, personalisation, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6)";

/// Sets every mutable column of a profile just inserted.
const FILL_PROFILE: &str = "UPDATE profiles SET state = $2, has_order = $3, eid = $4, matching_id = $5, \
     cc_hash = $6, cc_failed_attempts = $7, smds_address = $8, order_created_at = $9, order_expires_at = $10, \
     session_tid = $11, download_attempts = $12, failure_bpp_command_id = $13, failure_error_reason = $14, \
     failure_message = $15, updated_at = $16, device_state = $17, device_seq = $18, device_at = $19, \
     type_version = $20 WHERE iccid = $1";

/// The values `$1..$20` of a profile's mutable columns.
pub(crate) fn profile_vals(r: &ProfileRecord) -> Vec<Val> {
    let o = r.order.as_ref();
    let failure = o.and_then(|o| o.failure.as_ref());
    let device = o.and_then(|o| o.device);
    vec![
        r.iccid.as_str().into(),
        r.state.as_str().into(),
        i64::from(o.is_some()).into(),
        o.and_then(|o| o.eid.as_ref()).map(|e| e.to_string()).into(),
        o.and_then(|o| o.matching_id.as_ref())
            .map(|m| m.as_str().to_owned())
            .into(),
        o.and_then(|o| o.confirmation.as_ref())
            .map(|c| c.hash.to_vec())
            .into(),
        i64::from(
            o.and_then(|o| o.confirmation.as_ref())
                .map_or(0, |c| c.failed_attempts),
        )
        .into(),
        o.and_then(|o| o.smds_address.clone()).into(),
        o.map(|o| o.created_at.millis()).into(),
        o.map(|o| o.expires_at.millis()).into(),
        o.and_then(|o| o.session.as_ref())
            .map(|t| t.as_bytes().to_vec())
            .into(),
        i64::from(o.map_or(0, |o| o.download_attempts)).into(),
        failure.and_then(|f| f.bpp_command_id).into(),
        failure.and_then(|f| f.error_reason).into(),
        failure.map(|f| f.message.clone()).into(),
        r.updated_at.millis().into(),
        device.map(|d| d.state.as_str().to_owned()).into(),
        device.map(|d| d.seq_number).into(),
        device.map(|d| d.at.millis()).into(),
        o.and_then(|o| o.type_version).map(i64::from).into(),
    ]
}

/// Reads a [`ProfileRecord`] and its version from a row selected with [`PROFILE_COLUMNS`].
pub(crate) fn versioned_profile_row<R: StoreRow + ?Sized>(
    r: &R,
) -> Result<Versioned<ProfileRecord>, StoreError> {
    Ok(Versioned::new(
        profile_row(r)?,
        version(get(r, "version")?)?,
    ))
}

/// Reads a [`ProfileRecord`] from a row selected with [`PROFILE_COLUMNS`].
pub(crate) fn profile_row<R: StoreRow + ?Sized>(r: &R) -> Result<ProfileRecord, StoreError> {
    let state: String = get(r, "state")?;
    let state = ProfileState::parse(&state).ok_or_else(|| corrupt("profile state", &state))?;
    let has_order: i64 = get(r, "has_order")?;
    let order = if has_order != 0 {
        let cc_hash: Option<Vec<u8>> = get(r, "cc_hash")?;
        let confirmation = cc_hash
            .map(|h| -> Result<ConfirmationCode, StoreError> {
                Ok(ConfirmationCode {
                    hash: hash32(h, "confirmation code hash")?,
                    failed_attempts: u32_of(get(r, "cc_failed_attempts")?, "attempts")?,
                })
            })
            .transpose()?;
        let failure_message: Option<String> = get(r, "failure_message")?;
        let failure = failure_message
            .map(|message| -> Result<FailureInfo, StoreError> {
                Ok(FailureInfo {
                    bpp_command_id: get(r, "failure_bpp_command_id")?,
                    error_reason: get(r, "failure_error_reason")?,
                    message,
                })
            })
            .transpose()?;
        let device_state: Option<String> = get(r, "device_state")?;
        let device = device_state
            .map(|s| -> Result<DeviceReport, StoreError> {
                Ok(DeviceReport {
                    state: DeviceProfileState::parse(&s)
                        .ok_or_else(|| corrupt("device state", &s))?,
                    seq_number: get::<_, Option<i64>>(r, "device_seq")?.unwrap_or(-1),
                    at: Timestamp(get::<_, Option<i64>>(r, "device_at")?.unwrap_or(0)),
                })
            })
            .transpose()?;
        let created: Option<i64> = get(r, "order_created_at")?;
        let expires: Option<i64> = get(r, "order_expires_at")?;
        Some(Order {
            eid: opt_eid(get(r, "eid")?)?,
            matching_id: opt_matching_id(get(r, "matching_id")?)?,
            confirmation,
            smds_address: get(r, "smds_address")?,
            created_at: Timestamp(created.unwrap_or_default()),
            expires_at: Timestamp(expires.unwrap_or_default()),
            session: opt_tid(get(r, "session_tid")?)?,
            download_attempts: u32_of(get(r, "download_attempts")?, "download attempts")?,
            failure,
            device,
            type_version: get::<_, Option<i64>>(r, "type_version")?
                .map(|v| u32::try_from(v).map_err(|_| corrupt("type version", v)))
                .transpose()?,
        })
    } else {
        None
    };
    Ok(ProfileRecord {
        iccid: iccid(&get::<_, String>(r, "iccid")?)?,
        operator: operator(get(r, "operator")?)?,
        profile_type: get(r, "profile_type")?,
        state,
        order,
        updated_at: Timestamp(get(r, "updated_at")?),
    })
}
