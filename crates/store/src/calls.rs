//! Idempotency of ES2+ calls by `functionCallIdentifier`, and the record of
//! device notifications.

use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::store::{CallSlot, NotificationRecord, StoreError};
use ferrosim_smdp::time::Timestamp;

use crate::SqlStore;
use crate::rows::{backend_err, col};
use crate::writes::Writes;

impl SqlStore {
    pub(crate) async fn begin_call_impl(
        &self,
        op: &OperatorId,
        call_id: &str,
        function: &str,
        request_hash: &[u8; 32],
        now: Timestamp,
        stale_ms: i64,
    ) -> Result<CallSlot, StoreError> {
        let lock = self.lock_clause(false);
        let (op, call_id, function, request_hash) = (
            op.as_str().to_owned(),
            call_id.to_owned(),
            function.to_owned(),
            *request_hash,
        );
        self.write(move |conn| {
            Box::pin(async move {
                let inserted = sqlx::query(
                    "INSERT INTO es2_calls (operator, call_id, function, request_hash, started_at)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (operator, call_id) DO NOTHING",
                )
                .bind(op.as_str())
                .bind(call_id.as_str())
                .bind(function.as_str())
                .bind(request_hash.to_vec())
                .bind(now.millis())
                .execute(&mut *conn)
                .await
                .map_err(backend_err)?
                .rows_affected();
                if inserted == 1 {
                    return Ok(CallSlot::Fresh);
                }
                let sql = format!(
                    "SELECT function, request_hash, response, started_at FROM es2_calls
                     WHERE operator = $1 AND call_id = $2{lock}"
                );
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(op.as_str())
                    .bind(call_id.as_str())
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(backend_err)?;
                let stored_fn: String = col(&row, "function")?;
                let stored_hash: Vec<u8> = col(&row, "request_hash")?;
                let response: Option<String> = col(&row, "response")?;
                let started: i64 = col(&row, "started_at")?;
                if stored_fn != function || stored_hash.as_slice() != request_hash {
                    return Ok(CallSlot::Mismatch);
                }
                if let Some(resp) = response {
                    return Ok(CallSlot::Replay(resp));
                }
                if started >= now.millis().saturating_sub(stale_ms) {
                    return Ok(CallSlot::InProgress);
                }
                sqlx::query(
                    "UPDATE es2_calls SET started_at = $3 WHERE operator = $1 AND call_id = $2",
                )
                .bind(op.as_str())
                .bind(call_id.as_str())
                .bind(now.millis())
                .execute(&mut *conn)
                .await
                .map_err(backend_err)?;
                Ok(CallSlot::Fresh)
            })
        })
        .await
    }

    pub(crate) async fn finish_call_impl(
        &self,
        op: &OperatorId,
        call_id: &str,
        response: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE es2_calls SET response = $3 WHERE operator = $1 AND call_id = $2")
            .bind(op.as_str())
            .bind(call_id)
            .bind(response)
            .execute(&self.pool)
            .await
            .map_err(backend_err)?;
        Ok(())
    }

    pub(crate) async fn abandon_call_impl(
        &self,
        op: &OperatorId,
        call_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM es2_calls WHERE operator = $1 AND call_id = $2 AND response IS NULL",
        )
        .bind(op.as_str())
        .bind(call_id)
        .execute(&self.pool)
        .await
        .map_err(backend_err)?;
        Ok(())
    }
}

/// Keeps a device notification.
const INSERT_NOTIFICATION: &str = "INSERT INTO notifications (seq_number, operation, iccid, eid, \
     address, raw, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Queues the insert of a device notification with a commit's other writes.
pub(crate) fn notification_write(w: &mut Writes, n: &NotificationRecord) {
    w.push(
        INSERT_NOTIFICATION,
        vec![
            n.seq_number.into(),
            n.operation.as_str().into(),
            n.iccid.as_ref().map(|i| i.as_str().to_owned()).into(),
            n.eid.as_ref().map(|e| e.to_string()).into(),
            n.address.as_str().into(),
            n.raw.clone().into(),
            n.received_at.millis().into(),
        ],
    );
}
