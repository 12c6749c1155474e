//! The outbox of ES2+ `handleDownloadProgressInfo` callbacks.
//!
//! Events are inserted in the same transaction as the change that produced
//! them, so none is lost. Delivery workers on any instance lease due rows
//! (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the single writer on SQLite), so
//! each event is sent by one instance at a time; a row is done once the
//! operator acknowledged it. One order's events are delivered in the order
//! they happened (notification-point order): only the oldest undelivered
//! event of a profile can be leased, so a later one waits while an earlier
//! one is retried.

use crate::group_commit::WriteBody;
use crate::lite_writer::lite_err;
use crate::readers::{HotRow, LiteRow, bind_numbered};
use crate::writes::{Val, Writes};
use ferrosim_smdp::order::{NotificationPoint, ProgressEvent};
use ferrosim_smdp::status::StatusCode;
use ferrosim_smdp::store::{CallbackRecord, StoreError};
use ferrosim_smdp::time::Timestamp;
use sqlx::AssertSqlSafe;

use crate::SqlStore;
use crate::rows::{StoreRow, backend_err, col, corrupt, get, iccid, operator, opt_eid, u32_of};

/// Appends an event to the outbox.
const INSERT_EVENT: &str = "INSERT INTO callbacks (operator, iccid, eid, profile_type, point, failure_subject, \
     failure_reason, result_data, event_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// Queues the outbox rows of `events` with the caller's other writes.
pub(crate) fn event_writes(w: &mut Writes, events: &[ProgressEvent]) {
    for e in events {
        w.push(
            INSERT_EVENT,
            vec![
                e.operator.as_str().into(),
                e.iccid.as_str().into(),
                e.eid.as_ref().map(|x| x.to_string()).into(),
                e.profile_type.as_str().into(),
                e.point.id().into(),
                e.failure.map(|f| f.subject.to_owned()).into(),
                e.failure.map(|f| f.reason.to_owned()).into(),
                e.result_data.clone().into(),
                e.at.millis().into(),
                e.at.millis().into(),
            ],
        );
    }
}

/// The lease of up to `limit` due callbacks, oldest due first, at most one
/// per order (the oldest undelivered one of its profile).
///
/// Due callbacks are found through the partial index `callbacks_due`
/// (`next_attempt_at` of undelivered rows), in its order: ordered by `id`,
/// SQLite instead walked the whole table in `id` order, delivered rows
/// included, at every lease (with no callback URL the worker leases again
/// as soon as a round delivered anything, so the outbox of a busy SM-DP+
/// was scanned hundreds of times per second, a scan that grows with every
/// download ever made). Order across profiles is not promised; within
/// one profile the `NOT EXISTS` keeps events in the order they happened.
///
/// The limit is in the text rather than bound: SQLite plans a bound `LIMIT`
/// with its value and compiles the statement again at every bind (see
/// `pending_sessions_impl`); the batch size is a setting.
fn lease_sql(limit: u32, lock_clause: &str) -> String {
    format!(
        "UPDATE callbacks SET lease_until = $1, attempts = attempts + 1 WHERE id IN (
           SELECT c.id FROM callbacks c WHERE c.delivered_at IS NULL AND c.next_attempt_at <= $2
           AND (c.lease_until IS NULL OR c.lease_until < $2)
           AND NOT EXISTS (SELECT 1 FROM callbacks e WHERE e.iccid = c.iccid
                           AND e.delivered_at IS NULL AND e.id < c.id)
           ORDER BY c.next_attempt_at, c.id LIMIT {limit}{lock_clause})
         RETURNING {CALLBACK_COLUMNS}"
    )
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
        // One statement, atomic on its own: no transaction of its own needed
        // (on SQLite it runs inside a commit group, see `outbox_write`).
        let sql = lease_sql(limit, self.lock_clause(true));
        let (until, now) = (now.millis().saturating_add(lease_ms), now.millis());
        let lite_sql = sql.clone();
        let lite = move |conn: &rusqlite::Connection| {
            let mut stmt = conn.prepare_cached(&lite_sql).map_err(lite_err)?;
            let shape = bind_numbered(&mut stmt, &lite_sql, &[until.into(), now.into()])?;
            let mut rows = stmt.raw_query();
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(lite_err)? {
                out.push(callback_row(&HotRow::Lite(LiteRow::new(row, &shape)))?);
            }
            Ok(out)
        };
        let mut out = self
            .outbox_write(lite, move |conn| {
                Box::pin(async move {
                    let rows = sqlx::query(AssertSqlSafe(sql))
                        .bind(until)
                        .bind(now)
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(backend_err)?;
                    rows.iter().map(callback_row).collect::<Result<Vec<_>, _>>()
                })
            })
            .await?;
        out.sort_by_key(|c| c.id);
        Ok(out)
    }

    pub(crate) async fn callbacks_delivered_impl(
        &self,
        ids: &[i64],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "UPDATE callbacks SET delivered_at = $1, lease_until = NULL, last_error = NULL WHERE id IN ({})",
            placeholders.join(", ")
        );
        let (ids, now) = (ids.to_vec(), now.millis());
        let lite_sql = sql.clone();
        let mut vals: Vec<Val> = vec![now.into()];
        vals.extend(ids.iter().map(|&id| Val::from(id)));
        let lite = move |conn: &rusqlite::Connection| {
            let mut stmt = conn.prepare_cached(&lite_sql).map_err(lite_err)?;
            bind_numbered(&mut stmt, &lite_sql, &vals)?;
            stmt.raw_execute().map_err(lite_err)?;
            Ok(())
        };
        self.outbox_write(lite, move |conn| {
            Box::pin(async move {
                let mut q = sqlx::query(AssertSqlSafe(sql)).bind(now);
                for id in ids {
                    q = q.bind(id);
                }
                q.execute(&mut *conn).await.map_err(backend_err)?;
                Ok(())
            })
        })
        .await
    }

    pub(crate) async fn callback_failed_impl(
        &self,
        id: i64,
        next_attempt: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        const FAILED: &str = "UPDATE callbacks SET next_attempt_at = $2, lease_until = NULL, last_error = $3 WHERE id = $1";
        let (next, error) = (next_attempt.millis(), error.to_owned());
        let vals: Vec<Val> = vec![id.into(), next.into(), error.clone().into()];
        let lite = move |conn: &rusqlite::Connection| {
            let mut stmt = conn.prepare_cached(FAILED).map_err(lite_err)?;
            bind_numbered(&mut stmt, FAILED, &vals)?;
            stmt.raw_execute().map_err(lite_err)?;
            Ok(())
        };
        self.outbox_write(lite, move |conn| {
            Box::pin(async move {
                sqlx::query(FAILED)
                    .bind(id)
                    .bind(next)
                    .bind(error)
                    .execute(&mut *conn)
                    .await
                    .map_err(backend_err)?;
                Ok(())
            })
        })
        .await
    }

    pub(crate) async fn pending_callbacks_impl(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM callbacks WHERE delivered_at IS NULL")
            .fetch_one(self.reader())
            .await
            .map_err(backend_err)?;
        Ok(u64::try_from(col::<i64>(&row, "n")?).unwrap_or(0))
    }
}

impl SqlStore {
    /// Runs one statement of the delivery worker: on SQLite inside the
    /// writer's next commit group (see [`crate::group_commit`]), so that it
    /// neither takes the single writer connection away from the groups nor
    /// pays a commit and an fsync of its own: `lite` on a SQLite file (in
    /// the groups of the step commits, see [`crate::lite_writer`]), else
    /// `body`; elsewhere `body` as an autocommit statement on the pool (on
    /// PostgreSQL `FOR UPDATE SKIP LOCKED` needs no more).
    async fn outbox_write<R: Send + 'static>(
        &self,
        lite: impl Fn(&rusqlite::Connection) -> Result<R, StoreError> + Send + 'static,
        body: impl WriteBody<R>,
    ) -> Result<R, StoreError> {
        if let Some(queue) = &self.writer {
            if let Some(out) = queue.write_lite(lite).await {
                return out;
            }
            return self.write(body).await;
        }
        let mut conn = self.pool.acquire().await.map_err(backend_err)?;
        body(&mut conn).await
    }
}

fn callback_row<R: StoreRow + ?Sized>(r: &R) -> Result<CallbackRecord, StoreError> {
    let point: i64 = get(r, "point")?;
    let subject: Option<String> = get(r, "failure_subject")?;
    let reason: Option<String> = get(r, "failure_reason")?;
    let failure = match (subject, reason) {
        (Some(s), Some(rc)) => Some(
            StatusCode::lookup(&s, &rc)
                .ok_or_else(|| corrupt("status code", format!("{s}/{rc}")))?,
        ),
        _ => None,
    };
    Ok(CallbackRecord {
        id: get(r, "id")?,
        attempts: u32_of(get(r, "attempts")?, "attempts")?,
        event: ProgressEvent {
            operator: operator(get(r, "operator")?)?,
            iccid: iccid(&get::<_, String>(r, "iccid")?)?,
            eid: opt_eid(get(r, "eid")?)?,
            profile_type: get(r, "profile_type")?,
            point: NotificationPoint::from_id(point)
                .ok_or_else(|| corrupt("notification point", point))?,
            failure,
            result_data: get(r, "result_data")?,
            at: Timestamp(get(r, "event_at")?),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lease finds due callbacks through `callbacks_due` on SQLite,
    /// never by walking the whole outbox (delivered rows included).
    #[test]
    fn the_lease_reads_only_due_callbacks() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for m in crate::connect::SQLITE_MIGRATIONS.iter() {
            conn.execute_batch(m.sql.as_str()).unwrap();
        }
        let sql = lease_sql(64, "");
        let mut plan = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let steps: Vec<String> = plan
            .query_map([0i64, 0i64], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            steps
                .iter()
                .any(|s| s.contains("USING INDEX callbacks_due")),
            "{steps:?}"
        );
        assert!(!steps.iter().any(|s| s.starts_with("SCAN")), "{steps:?}");
        assert!(
            !steps.iter().any(|s| s.contains("TEMP B-TREE")),
            "no sort: {steps:?}"
        );
    }
}
