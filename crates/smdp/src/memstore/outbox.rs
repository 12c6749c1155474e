//! The callback outbox, device notifications and ES2+ call slots in memory.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::MemStore;
use crate::ids::OperatorId;
use crate::order::ProgressEvent;
use crate::store::{CallSlot, CallbackRecord, NotificationRecord, OutboxStore, StoreResult};
use crate::time::Timestamp;

#[derive(Default)]
pub(super) struct Outbox {
    last_callback_id: i64,
    /// Callbacks not yet delivered, by id (their order of creation).
    callbacks: BTreeMap<i64, Queued>,
    notifications: Vec<NotificationRecord>,
    calls: HashMap<OperatorId, HashMap<String, CallRow>>,
}

struct Queued {
    event: ProgressEvent,
    attempts: u32,
    next_attempt_at: Timestamp,
    lease_until: Option<Timestamp>,
}

struct CallRow {
    function: String,
    request_hash: [u8; 32],
    response: Option<String>,
    started_at: Timestamp,
}

impl Outbox {
    /// Queues events for delivery, due at once.
    pub(super) fn push_events(&mut self, events: Vec<ProgressEvent>) {
        for event in events {
            self.last_callback_id += 1;
            let next_attempt_at = event.at;
            self.callbacks.insert(
                self.last_callback_id,
                Queued {
                    event,
                    attempts: 0,
                    next_attempt_at,
                    lease_until: None,
                },
            );
        }
    }

    /// When the first delete notification for `iccid` (from `eid` when
    /// given) received at or after `since` arrived.
    pub(super) fn first_delete(
        &self,
        iccid: &ferrosim_saip::Iccid,
        eid: Option<&ferrosim_pki::Eid>,
        since: Timestamp,
    ) -> Option<Timestamp> {
        self.notifications
            .iter()
            .filter(|n| {
                n.operation == "delete"
                    && n.iccid.as_ref() == Some(iccid)
                    && n.received_at >= since
                    && eid.is_none_or(|e| n.eid.as_ref() == Some(e))
            })
            .map(|n| n.received_at)
            .min()
    }

    /// Keeps a device notification.
    pub(super) fn push_notification(&mut self, n: NotificationRecord) {
        self.notifications.push(n);
    }
}

impl MemStore {
    /// The device notifications kept so far, oldest first.
    pub fn notifications(&self) -> Vec<NotificationRecord> {
        self.outbox().notifications.clone()
    }

    /// Every callback not yet delivered, oldest first, leased or not (what
    /// an operator's outbox listing shows; `claim_callbacks` hands out only
    /// the oldest of each order).
    pub fn queued_callbacks(&self) -> Vec<CallbackRecord> {
        self.outbox()
            .callbacks
            .iter()
            .map(|(id, q)| CallbackRecord {
                id: *id,
                event: q.event.clone(),
                attempts: q.attempts,
            })
            .collect()
    }
}

impl OutboxStore for MemStore {
    async fn claim_callbacks(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<CallbackRecord>> {
        let lease_until = Timestamp(now.millis().saturating_add(lease_ms));
        let mut out = self.outbox();
        // One order's callbacks leave in the order they happened: only the
        // oldest undelivered event of a profile may be leased.
        let mut seen = HashSet::new();
        Ok(out
            .callbacks
            .iter_mut()
            .filter(|(_, q)| seen.insert(q.event.iccid.clone()))
            .filter(|(_, q)| q.next_attempt_at <= now && q.lease_until.is_none_or(|l| l < now))
            .take(limit as usize)
            .map(|(id, q)| {
                q.lease_until = Some(lease_until);
                q.attempts += 1;
                CallbackRecord {
                    id: *id,
                    event: q.event.clone(),
                    attempts: q.attempts,
                }
            })
            .collect())
    }

    async fn callbacks_delivered(&self, ids: &[i64], _now: Timestamp) -> StoreResult<()> {
        let mut out = self.outbox();
        for id in ids {
            out.callbacks.remove(id);
        }
        Ok(())
    }

    async fn callback_failed(
        &self,
        id: i64,
        next_attempt: Timestamp,
        _error: &str,
    ) -> StoreResult<()> {
        if let Some(q) = self.outbox().callbacks.get_mut(&id) {
            q.next_attempt_at = next_attempt;
            q.lease_until = None;
        }
        Ok(())
    }

    async fn pending_callbacks(&self) -> StoreResult<u64> {
        Ok(self.outbox().callbacks.len() as u64)
    }

    async fn begin_call(
        &self,
        operator: &OperatorId,
        call_id: &str,
        function: &str,
        request_hash: &[u8; 32],
        now: Timestamp,
        stale_ms: i64,
    ) -> StoreResult<CallSlot> {
        let mut out = self.outbox();
        let calls = out.calls.entry(operator.clone()).or_default();
        let Some(row) = calls.get_mut(call_id) else {
            calls.insert(
                call_id.to_owned(),
                CallRow {
                    function: function.to_owned(),
                    request_hash: *request_hash,
                    response: None,
                    started_at: now,
                },
            );
            return Ok(CallSlot::Fresh);
        };
        if row.function != function || row.request_hash != *request_hash {
            return Ok(CallSlot::Mismatch);
        }
        if let Some(response) = &row.response {
            return Ok(CallSlot::Replay(response.clone()));
        }
        if row.started_at.millis() >= now.millis().saturating_sub(stale_ms) {
            return Ok(CallSlot::InProgress);
        }
        row.started_at = now;
        Ok(CallSlot::Fresh)
    }

    async fn finish_call(
        &self,
        operator: &OperatorId,
        call_id: &str,
        response_json: &str,
    ) -> StoreResult<()> {
        if let Some(row) = self
            .outbox()
            .calls
            .get_mut(operator)
            .and_then(|calls| calls.get_mut(call_id))
        {
            row.response = Some(response_json.to_owned());
        }
        Ok(())
    }

    async fn abandon_call(&self, operator: &OperatorId, call_id: &str) -> StoreResult<()> {
        if let Some(calls) = self.outbox().calls.get_mut(operator)
            && calls.get(call_id).is_some_and(|r| r.response.is_none())
        {
            calls.remove(call_id);
        }
        Ok(())
    }
}
