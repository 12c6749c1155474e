//! Read-only listings for the SM-DP+'s administrators: orders (filtered by
//! state, operator, profile type and creation time, paged), the ES2+
//! callback outbox, and the notifications devices sent.
//!
//! The SM-DP+'s steps never need these, so they are queries of the SQL
//! store ([`SqlStore`] methods), not part of the store traits. Every listing
//! is ordered by a unique key and paged with a cursor (`after`): the last
//! key of the previous page, so a page never repeats or skips a row even
//! while new rows arrive.

use ferrosim_pki::Eid;
use ferrosim_saip::Iccid;
use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::order::{ProfileRecord, ProfileState};
use ferrosim_smdp::store::StoreError;
use ferrosim_smdp::time::Timestamp;
use sqlx::AssertSqlSafe;
use sqlx::any::AnyRow;
use thiserror::Error;

use crate::SqlStore;
use crate::profiles::{PROFILE_COLUMNS, profile_row};
use crate::rows::{backend_err, col, iccid, opt_eid, opt_iccid, u32_of};

/// The most rows one page may have.
pub const MAX_PAGE: u32 = 1000;

/// Why a listing could not be made.
#[derive(Debug, Error)]
pub enum ListError {
    /// The page size is 0 or above [`MAX_PAGE`].
    #[error("page size {0} out of range: 1..={MAX_PAGE}")]
    PageSize(u32),
    /// The `after` cursor names an ICCID that has no order.
    #[error("no order has ICCID {0}: a cursor must be an ICCID of an earlier page")]
    UnknownCursor(Iccid),
    /// The time range is empty (`since` is not before `until`).
    #[error("empty time range: since {since} is not before until {until}")]
    EmptyRange {
        /// Lower bound.
        since: Timestamp,
        /// Upper bound.
        until: Timestamp,
    },
    /// The database failed or holds something unreadable.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which orders [`SqlStore::list_orders`] returns: every filter given must
/// hold. Orders are listed oldest first (creation time, then ICCID).
#[derive(Debug, Clone)]
pub struct OrderQuery {
    /// Only orders whose profile is in this state.
    pub state: Option<ProfileState>,
    /// Only this operator's orders.
    pub operator: Option<OperatorId>,
    /// Only orders of this profile type.
    pub profile_type: Option<String>,
    /// Only orders created at or after this time.
    pub since: Option<Timestamp>,
    /// Only orders created before this time.
    pub until: Option<Timestamp>,
    /// The page after this order (the last ICCID of the previous page).
    pub after: Option<Iccid>,
    /// At most this many (1..=[`MAX_PAGE`]).
    pub limit: u32,
}

impl Default for OrderQuery {
    fn default() -> Self {
        Self {
            state: None,
            operator: None,
            profile_type: None,
            since: None,
            until: None,
            after: None,
            limit: 100,
        }
    }
}

/// Whether a callback was delivered yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackStatus {
    /// Not yet acknowledged by the operator (waiting or being retried).
    Pending,
    /// Acknowledged by the operator.
    Delivered,
}

impl CallbackStatus {
    /// Every status, as the CLI lists them.
    pub const ALL: [CallbackStatus; 2] = [CallbackStatus::Pending, CallbackStatus::Delivered];

    /// `pending` or `delivered`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackStatus::Pending => "pending",
            CallbackStatus::Delivered => "delivered",
        }
    }

    /// The status named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Which callbacks [`SqlStore::list_callbacks`] returns, oldest first (by id).
#[derive(Debug, Clone)]
pub struct CallbackQuery {
    /// Only pending or only delivered ones.
    pub status: Option<CallbackStatus>,
    /// Only this operator's.
    pub operator: Option<OperatorId>,
    /// Only this profile's.
    pub iccid: Option<Iccid>,
    /// The page after this id.
    pub after: Option<i64>,
    /// At most this many (1..=[`MAX_PAGE`]).
    pub limit: u32,
}

impl Default for CallbackQuery {
    fn default() -> Self {
        Self {
            status: None,
            operator: None,
            iccid: None,
            after: None,
            limit: 100,
        }
    }
}

/// One entry of the callback outbox as an administrator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackEntry {
    /// Queue id (also the callback's `functionCallIdentifier`).
    pub id: i64,
    /// The operator it goes to.
    pub operator: OperatorId,
    /// The profile.
    pub iccid: Iccid,
    /// The device, if known.
    pub eid: Option<Eid>,
    /// The ES2+ notification point (1 eligibility ... 4 installation).
    pub point: i64,
    /// The failure status (`subject/reason`), if the event was a failure.
    pub failure: Option<String>,
    /// When the event happened.
    pub event_at: Timestamp,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// When the next attempt is due (meaningless once delivered).
    pub next_attempt_at: Timestamp,
    /// When the operator acknowledged it.
    pub delivered_at: Option<Timestamp>,
    /// The last delivery error.
    pub last_error: Option<String>,
}

/// Which device notifications [`SqlStore::list_notifications`] returns,
/// oldest first (by id).
#[derive(Debug, Clone)]
pub struct NotificationQuery {
    /// Only this operation (`install`, `enable`, `disable`, `delete`).
    pub operation: Option<String>,
    /// Only about this profile.
    pub iccid: Option<Iccid>,
    /// Only from this device.
    pub eid: Option<Eid>,
    /// Only received at or after this time.
    pub since: Option<Timestamp>,
    /// Only received before this time.
    pub until: Option<Timestamp>,
    /// The page after this id.
    pub after: Option<i64>,
    /// At most this many (1..=[`MAX_PAGE`]).
    pub limit: u32,
}

impl Default for NotificationQuery {
    fn default() -> Self {
        Self {
            operation: None,
            iccid: None,
            eid: None,
            since: None,
            until: None,
            after: None,
            limit: 100,
        }
    }
}

/// A notification a device sent, as kept by the SM-DP+.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationEntry {
    /// Row id.
    pub id: i64,
    /// The eUICC's sequence number.
    pub seq_number: i64,
    /// The operation.
    pub operation: String,
    /// The profile, if named.
    pub iccid: Option<Iccid>,
    /// The device, if known.
    pub eid: Option<Eid>,
    /// The notification address in it.
    pub address: String,
    /// When it arrived.
    pub received_at: Timestamp,
    /// Size of the notification as received, in bytes.
    pub raw_len: usize,
}

fn check_page(limit: u32) -> Result<i64, ListError> {
    if limit == 0 || limit > MAX_PAGE {
        return Err(ListError::PageSize(limit));
    }
    Ok(i64::from(limit))
}

fn check_range(since: Option<Timestamp>, until: Option<Timestamp>) -> Result<(), ListError> {
    match (since, until) {
        (Some(since), Some(until)) if since >= until => Err(ListError::EmptyRange { since, until }),
        _ => Ok(()),
    }
}

impl SqlStore {
    /// Orders (profiles that have one) matching `q`, oldest first.
    pub async fn list_orders(&self, q: &OrderQuery) -> Result<Vec<ProfileRecord>, ListError> {
        let limit = check_page(q.limit)?;
        check_range(q.since, q.until)?;
        // The cursor is a position (creation time, ICCID) in the listing.
        let cursor = match &q.after {
            None => None,
            Some(after) => {
                let row = sqlx::query(
                    "SELECT order_created_at FROM profiles WHERE iccid = $1 AND has_order = 1",
                )
                .bind(after.as_str())
                .fetch_optional(self.reader())
                .await
                .map_err(backend_err)?;
                let row = row.ok_or_else(|| ListError::UnknownCursor(after.clone()))?;
                let at: Option<i64> = col(&row, "order_created_at")?;
                Some((at.unwrap_or(0), after.as_str().to_owned()))
            }
        };
        let sql = format!(
            "SELECT {PROFILE_COLUMNS} FROM profiles
             WHERE has_order = 1
               AND ($1 IS NULL OR state = $1) AND ($2 IS NULL OR operator = $2)
               AND ($3 IS NULL OR profile_type = $3)
               AND ($4 IS NULL OR order_created_at >= $4) AND ($5 IS NULL OR order_created_at < $5)
               AND ($6 IS NULL OR COALESCE(order_created_at, 0) > $6
                    OR (COALESCE(order_created_at, 0) = $6 AND iccid > $7))
             ORDER BY COALESCE(order_created_at, 0), iccid LIMIT $8"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(q.state.map(|s| s.as_str().to_owned()))
            .bind(q.operator.as_ref().map(|o| o.as_str().to_owned()))
            .bind(q.profile_type.clone())
            .bind(q.since.map(|t| t.millis()))
            .bind(q.until.map(|t| t.millis()))
            .bind(cursor.as_ref().map(|c| c.0))
            .bind(cursor.map(|c| c.1))
            .bind(limit)
            .fetch_all(self.reader())
            .await
            .map_err(backend_err)?;
        Ok(rows.iter().map(profile_row).collect::<Result<_, _>>()?)
    }

    /// Entries of the ES2+ callback outbox matching `q`, oldest first.
    pub async fn list_callbacks(&self, q: &CallbackQuery) -> Result<Vec<CallbackEntry>, ListError> {
        let limit = check_page(q.limit)?;
        let rows = sqlx::query(
            "SELECT id, operator, iccid, eid, point, failure_subject, failure_reason, event_at,
                    attempts, next_attempt_at, delivered_at, last_error
             FROM callbacks
             WHERE ($1 IS NULL OR ($1 = 'pending' AND delivered_at IS NULL)
                    OR ($1 = 'delivered' AND delivered_at IS NOT NULL))
               AND ($2 IS NULL OR operator = $2) AND ($3 IS NULL OR iccid = $3)
               AND ($4 IS NULL OR id > $4)
             ORDER BY id LIMIT $5",
        )
        .bind(q.status.map(|s| s.as_str().to_owned()))
        .bind(q.operator.as_ref().map(|o| o.as_str().to_owned()))
        .bind(q.iccid.as_ref().map(|i| i.as_str().to_owned()))
        .bind(q.after)
        .bind(limit)
        .fetch_all(self.reader())
        .await
        .map_err(backend_err)?;
        Ok(rows.iter().map(callback_entry).collect::<Result<_, _>>()?)
    }

    /// Notifications devices sent (kept by the SM-DP+) matching `q`, oldest first.
    pub async fn list_notifications(
        &self,
        q: &NotificationQuery,
    ) -> Result<Vec<NotificationEntry>, ListError> {
        let limit = check_page(q.limit)?;
        check_range(q.since, q.until)?;
        let rows = sqlx::query(
            "SELECT id, seq_number, operation, iccid, eid, address, received_at, raw
             FROM notifications
             WHERE ($1 IS NULL OR operation = $1) AND ($2 IS NULL OR iccid = $2)
               AND ($3 IS NULL OR eid = $3)
               AND ($4 IS NULL OR received_at >= $4) AND ($5 IS NULL OR received_at < $5)
               AND ($6 IS NULL OR id > $6)
             ORDER BY id LIMIT $7",
        )
        .bind(q.operation.clone())
        .bind(q.iccid.as_ref().map(|i| i.as_str().to_owned()))
        .bind(q.eid.as_ref().map(ToString::to_string))
        .bind(q.since.map(|t| t.millis()))
        .bind(q.until.map(|t| t.millis()))
        .bind(q.after)
        .bind(limit)
        .fetch_all(self.reader())
        .await
        .map_err(backend_err)?;
        Ok(rows
            .iter()
            .map(notification_entry)
            .collect::<Result<_, _>>()?)
    }
}

fn callback_entry(r: &AnyRow) -> Result<CallbackEntry, StoreError> {
    let subject: Option<String> = col(r, "failure_subject")?;
    let reason: Option<String> = col(r, "failure_reason")?;
    Ok(CallbackEntry {
        id: col(r, "id")?,
        operator: crate::rows::operator(col(r, "operator")?)?,
        iccid: iccid(&col::<String>(r, "iccid")?)?,
        eid: opt_eid(col(r, "eid")?)?,
        point: col(r, "point")?,
        failure: match (subject, reason) {
            (Some(s), Some(rc)) => Some(format!("{s}/{rc}")),
            _ => None,
        },
        event_at: Timestamp(col(r, "event_at")?),
        attempts: u32_of(col(r, "attempts")?, "attempts")?,
        next_attempt_at: Timestamp(col(r, "next_attempt_at")?),
        delivered_at: col::<Option<i64>>(r, "delivered_at")?.map(Timestamp),
        last_error: col(r, "last_error")?,
    })
}

fn notification_entry(r: &AnyRow) -> Result<NotificationEntry, StoreError> {
    Ok(NotificationEntry {
        id: col(r, "id")?,
        seq_number: col(r, "seq_number")?,
        operation: col(r, "operation")?,
        iccid: opt_iccid(col(r, "iccid")?)?,
        eid: opt_eid(col(r, "eid")?)?,
        address: col(r, "address")?,
        received_at: Timestamp(col(r, "received_at")?),
        raw_len: col::<Vec<u8>>(r, "raw")?.len(),
    })
}
