//! The history of one profile's orders, from what is already stored: the
//! audit trail (ES2+ calls and admin commands naming the ICCID), the
//! callback outbox (every download step the SM-DP+ reported, with its
//! delivery to the operator) and the notifications the device sent
//! (enable, disable, delete). Read-only; `ferrosim order history` prints it.
//!
//! Nothing is recorded twice for this: each source is read by ICCID (indexed
//! by migration `202612042330_order_history`) and the entries are merged by
//! time, oldest first.

use ferrosim_audit::AuditEntry;
use ferrosim_saip::Iccid;
use ferrosim_smdp::time::Timestamp;

use crate::admin_lists::{
    CallbackEntry, CallbackQuery, ListError, NotificationEntry, NotificationQuery,
};
use crate::rows::{backend_err, col};
use crate::{MAX_PAGE, SqlStore};

/// One thing that happened to a profile's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderEvent {
    /// An ES2+ call or an admin command on the profile, from the audit trail.
    Audited(AuditEntry),
    /// A download step, queued as an ES2+ `handleDownloadProgressInfo`
    /// callback (delivered or not).
    Progress(CallbackEntry),
    /// A notification the device sent about the profile.
    Notification(NotificationEntry),
}

impl OrderEvent {
    /// When it happened.
    pub fn at(&self) -> Timestamp {
        match self {
            Self::Audited(e) => Timestamp(e.at),
            Self::Progress(c) => c.event_at,
            Self::Notification(n) => n.received_at,
        }
    }
}

/// A profile's history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderHistory {
    /// The events, by time (ties keep the order audit, progress, notification).
    pub events: Vec<OrderEvent>,
    /// Whether a source had more than the limit: the oldest `limit` of each
    /// were taken, so later events are missing.
    pub truncated: bool,
}

impl SqlStore {
    /// Up to `limit` (1..=[`MAX_PAGE`]) events of each source about the
    /// profile `iccid`, merged by time.
    pub async fn order_history(
        &self,
        iccid: &Iccid,
        limit: u32,
    ) -> Result<OrderHistory, ListError> {
        if limit == 0 || limit > MAX_PAGE {
            return Err(ListError::PageSize(limit));
        }
        let audited = self.audit_about(iccid.as_str(), limit).await?;
        let progress = self
            .list_callbacks(&CallbackQuery {
                iccid: Some(iccid.clone()),
                limit,
                ..CallbackQuery::default()
            })
            .await?;
        let notifications = self
            .list_notifications(&NotificationQuery {
                iccid: Some(iccid.clone()),
                limit,
                ..NotificationQuery::default()
            })
            .await?;
        let full = |n: usize| n >= limit as usize;
        let truncated = full(audited.len()) || full(progress.len()) || full(notifications.len());
        let mut events: Vec<OrderEvent> = audited
            .into_iter()
            .map(OrderEvent::Audited)
            .chain(progress.into_iter().map(OrderEvent::Progress))
            .chain(notifications.into_iter().map(OrderEvent::Notification))
            .collect();
        // Stable: equal times keep the source order above.
        events.sort_by_key(OrderEvent::at);
        Ok(OrderHistory { events, truncated })
    }

    /// The oldest `limit` audit entries whose subject is `subject`.
    async fn audit_about(&self, subject: &str, limit: u32) -> Result<Vec<AuditEntry>, ListError> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, action, subject, details, prev_hash, entry_hash
             FROM audit_log WHERE subject = $1 ORDER BY seq LIMIT $2",
        )
        .bind(subject)
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await
        .map_err(backend_err)?;
        let hash = |v: Vec<u8>| -> Result<[u8; 32], ListError> {
            v.try_into().map_err(|_| {
                ListError::Store(ferrosim_smdp::store::StoreError::Corrupt(
                    "audit hash is not 32 bytes".into(),
                ))
            })
        };
        rows.iter()
            .map(|r| {
                let seq: i64 = col(r, "seq")?;
                Ok(AuditEntry {
                    seq: u64::try_from(seq).unwrap_or(0),
                    at: col(r, "at")?,
                    actor: col(r, "actor")?,
                    action: col(r, "action")?,
                    subject: col(r, "subject")?,
                    details: col(r, "details")?,
                    prev_hash: hash(col(r, "prev_hash")?)?,
                    hash: hash(col(r, "entry_hash")?)?,
                })
            })
            .collect()
    }
}
