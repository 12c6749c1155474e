//! The outbox of ES2+ `handleDownloadProgressInfo` callbacks.
//!
//! Events are inserted in the same transaction as the change that produced
//! them, so none is lost. Delivery workers on any instance lease due rows
//! (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the single writer on SQLite), so
//! each event is sent by one instance at a time; a row is done once the
//! operator acknowledged it.

use ferrosim_smdp::order::{NotificationPoint, ProgressEvent};
use ferrosim_smdp::status::StatusCode;
use ferrosim_smdp::store::{CallbackRecord, StoreError};
use ferrosim_smdp::time::Timestamp;
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Transaction};

use crate::SqlStore;
use crate::rows::{backend_err, col, corrupt, iccid, operator, opt_eid, u32_of};

/// Appends events to the outbox inside the caller's transaction.
pub(crate) async fn insert_events(
    tx: &mut Transaction<'static, Any>,
    events: &[ProgressEvent],
) -> Result<(), StoreError> {
    for e in events {
        sqlx::query(
            "INSERT INTO callbacks (operator, iccid, eid, profile_type, point, failure_subject,
             failure_reason, result_data, event_at, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(e.operator.as_str())
        .bind(e.iccid.as_str())
        .bind(e.eid.as_ref().map(|x| x.to_string()))
        .bind(&e.profile_type)
        .bind(e.point.id())
        .bind(e.failure.map(|f| f.subject.to_owned()))
        .bind(e.failure.map(|f| f.reason.to_owned()))
        .bind(e.result_data.clone())
        .bind(e.at.millis())
        .bind(e.at.millis())
        .execute(&mut **tx)
        .await
        .map_err(backend_err)?;
    }
    Ok(())
}

const CALLBACK_COLUMNS: &str = "id, operator, iccid, eid, profile_type, point, failure_subject, \
     failure_reason, result_data, event_at, attempts";

impl SqlStore {
    pub(crate) async fn claim_callbacks_impl(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<CallbackRecord>, StoreError> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "UPDATE callbacks SET lease_until = $1, attempts = attempts + 1 WHERE id IN (
               SELECT id FROM callbacks WHERE delivered_at IS NULL AND next_attempt_at <= $2
               AND (lease_until IS NULL OR lease_until < $2) ORDER BY id LIMIT $3{})
             RETURNING {CALLBACK_COLUMNS}",
            self.lock_clause(true)
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(now.millis().saturating_add(lease_ms))
            .bind(now.millis())
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)?;
        let mut out = rows
            .iter()
            .map(callback_row)
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|c| c.id);
        Ok(out)
    }

    pub(crate) async fn callback_delivered_impl(
        &self,
        id: i64,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE callbacks SET delivered_at = $2, lease_until = NULL, last_error = NULL WHERE id = $1")
            .bind(id)
            .bind(now.millis())
            .execute(&self.pool)
            .await
            .map_err(backend_err)?;
        Ok(())
    }

    pub(crate) async fn callback_failed_impl(
        &self,
        id: i64,
        next_attempt: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE callbacks SET next_attempt_at = $2, lease_until = NULL, last_error = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(next_attempt.millis())
        .bind(error)
        .execute(&self.pool)
        .await
        .map_err(backend_err)?;
        Ok(())
    }

    pub(crate) async fn pending_callbacks_impl(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM callbacks WHERE delivered_at IS NULL")
            .fetch_one(self.reader())
            .await
            .map_err(backend_err)?;
        Ok(u64::try_from(col::<i64>(&row, "n")?).unwrap_or(0))
    }
}

fn callback_row(r: &AnyRow) -> Result<CallbackRecord, StoreError> {
    let point: i64 = col(r, "point")?;
    let subject: Option<String> = col(r, "failure_subject")?;
    let reason: Option<String> = col(r, "failure_reason")?;
    let failure = match (subject, reason) {
        (Some(s), Some(rc)) => Some(
            StatusCode::lookup(&s, &rc)
                .ok_or_else(|| corrupt("status code", format!("{s}/{rc}")))?,
        ),
        _ => None,
    };
    Ok(CallbackRecord {
        id: col(r, "id")?,
        attempts: u32_of(col(r, "attempts")?, "attempts")?,
        event: ProgressEvent {
            operator: operator(col(r, "operator")?)?,
            iccid: iccid(&col::<String>(r, "iccid")?)?,
            eid: opt_eid(col(r, "eid")?)?,
            profile_type: col(r, "profile_type")?,
            point: NotificationPoint::from_id(point)
                .ok_or_else(|| corrupt("notification point", point))?,
            failure,
            result_data: col(r, "result_data")?,
            at: Timestamp(col(r, "event_at")?),
        },
    })
}
