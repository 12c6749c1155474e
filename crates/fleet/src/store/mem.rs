//! [`MemFleetStore`]: the fleet store in memory, with the same rules as the
//! SQL stores (versions checked, inserts unique, commits all or nothing).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use ferrosim_ids::Eid;

use super::{
    DecisionQuery, EngineState, FleetChanges, FleetStore, StoreError, StoreResult, Version,
    Versioned, WebhookCursor, Write,
};
use crate::action::{Action, ActionId};
use crate::decision::Decision;
use crate::device::DeviceState;
use crate::rollout::Rollout;

/// The fleet store in memory. Share it behind an `Arc`.
#[derive(Debug, Default)]
pub struct MemFleetStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    devices: BTreeMap<Eid, (DeviceState, Version)>,
    rollouts: BTreeMap<u32, (Rollout, Version)>,
    engine: Option<(EngineState, Version)>,
    in_flight: BTreeMap<ActionId, Action>,
    decisions: Vec<Decision>,
    webhooks: BTreeMap<String, WebhookCursor>,
}

impl MemFleetStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A commit checks everything before it changes anything, so a
        // panic elsewhere never leaves the data half-written.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn check<K: Ord, T>(
    map: &BTreeMap<K, (T, Version)>,
    key: &K,
    write_expected: Option<Version>,
    what: &str,
) -> StoreResult<()> {
    match (map.get(key), write_expected) {
        (Some(_), None) => Err(StoreError::Conflict(format!("{what} exists"))),
        (None, Some(_)) => Err(StoreError::Stale),
        (Some((_, v)), Some(e)) if *v != e => Err(StoreError::Stale),
        _ => Ok(()),
    }
}

fn expected<T>(w: &Write<T>) -> Option<Version> {
    match w {
        Write::Insert(_) => None,
        Write::Update { expected, .. } => Some(*expected),
    }
}

fn record<T>(w: Write<T>) -> T {
    match w {
        Write::Insert(r) | Write::Update { record: r, .. } => r,
    }
}

impl FleetStore for MemFleetStore {
    async fn device(&self, eid: &Eid) -> StoreResult<Option<Versioned<DeviceState>>> {
        Ok(self.lock().devices.get(eid).map(|(d, v)| Versioned {
            record: *d,
            version: *v,
        }))
    }

    async fn devices(
        &self,
        after: Option<Eid>,
        limit: u32,
    ) -> StoreResult<Vec<Versioned<DeviceState>>> {
        let inner = self.lock();
        let range = match after {
            Some(a) => inner
                .devices
                .range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => inner.devices.range(..),
        };
        Ok(range
            .take(limit as usize)
            .map(|(_, (d, v))| Versioned {
                record: *d,
                version: *v,
            })
            .collect())
    }

    async fn rollout(&self, id: u32) -> StoreResult<Option<Versioned<Rollout>>> {
        Ok(self.lock().rollouts.get(&id).map(|(r, v)| Versioned {
            record: r.clone(),
            version: *v,
        }))
    }

    async fn rollouts(&self) -> StoreResult<Vec<Versioned<Rollout>>> {
        Ok(self
            .lock()
            .rollouts
            .values()
            .map(|(r, v)| Versioned {
                record: r.clone(),
                version: *v,
            })
            .collect())
    }

    async fn engine(&self) -> StoreResult<Option<Versioned<EngineState>>> {
        Ok(self.lock().engine.as_ref().map(|(e, v)| Versioned {
            record: e.clone(),
            version: *v,
        }))
    }

    async fn in_flight(&self) -> StoreResult<Vec<Action>> {
        Ok(self.lock().in_flight.values().cloned().collect())
    }

    async fn decisions(&self, q: &DecisionQuery) -> StoreResult<Vec<Decision>> {
        let inner = self.lock();
        let start = inner.decisions.partition_point(|d| d.seq <= q.after_seq);
        let limit = if q.limit == 0 {
            usize::MAX
        } else {
            q.limit as usize
        };
        Ok(inner.decisions[start..]
            .iter()
            .filter(|d| q.device.is_none_or(|e| d.device == Some(e)))
            .filter(|d| q.rollout.is_none_or(|r| d.rollout == Some(r)))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn commit(&self, changes: FleetChanges) -> StoreResult<()> {
        let mut inner = self.lock();
        // Check everything first.
        let mut seen = std::collections::BTreeSet::new();
        for w in &changes.devices {
            let eid = match w {
                Write::Insert(d) | Write::Update { record: d, .. } => d.eid,
            };
            if !seen.insert(eid) {
                return Err(StoreError::Conflict(format!(
                    "device {eid} twice in one commit"
                )));
            }
            check(&inner.devices, &eid, expected(w), "device")?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for w in &changes.rollouts {
            let id = match w {
                Write::Insert(r) | Write::Update { record: r, .. } => r.id,
            };
            if !seen.insert(id) {
                return Err(StoreError::Conflict(format!(
                    "rollout {id} twice in one commit"
                )));
            }
            check(&inner.rollouts, &id, expected(w), "rollout")?;
        }
        if let Some((exp, _)) = &changes.engine {
            match (&inner.engine, exp) {
                (Some(_), None) => return Err(StoreError::Conflict("engine state exists".into())),
                (None, Some(_)) => return Err(StoreError::Stale),
                (Some((_, v)), Some(e)) if v != e => return Err(StoreError::Stale),
                _ => {}
            }
        }
        for a in &changes.issued {
            if inner.in_flight.contains_key(&a.id) {
                return Err(StoreError::Conflict(format!(
                    "action {} already in flight",
                    a.id
                )));
            }
        }
        let mut last = inner.decisions.last().map_or(0, |d| d.seq);
        for d in &changes.decisions {
            if d.seq <= last {
                return Err(StoreError::Conflict(format!(
                    "decision {} is not new",
                    d.seq
                )));
            }
            last = d.seq;
        }
        // Then apply everything.
        for w in changes.devices {
            let v = expected(&w).map_or(Version::default(), Version::next);
            let d = record(w);
            inner.devices.insert(d.eid, (d, v));
        }
        for w in changes.rollouts {
            let v = expected(&w).map_or(Version::default(), Version::next);
            let r = record(w);
            inner.rollouts.insert(r.id, (r, v));
        }
        if let Some((exp, e)) = changes.engine {
            inner.engine = Some((e, exp.map_or(Version::default(), Version::next)));
        }
        for id in changes.answered {
            inner.in_flight.remove(&id);
        }
        for a in changes.issued {
            inner.in_flight.insert(a.id, a);
        }
        inner.decisions.extend(changes.decisions);
        Ok(())
    }

    async fn claim_webhook(
        &self,
        endpoint: &str,
        holder: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<Option<WebhookCursor>> {
        let mut inner = self.lock();
        let c = inner
            .webhooks
            .entry(endpoint.to_owned())
            .or_insert_with(|| WebhookCursor {
                endpoint: endpoint.to_owned(),
                delivered_seq: 0,
                failures: 0,
                next_attempt_ms: 0,
                holder: None,
                lease_until_ms: 0,
                last_error: None,
            });
        let free = c.holder.as_deref().is_none_or(|h| h == holder) || c.lease_until_ms < now_ms;
        if c.next_attempt_ms > now_ms || !free {
            return Ok(None);
        }
        c.holder = Some(holder.to_owned());
        c.lease_until_ms = now_ms.saturating_add(lease_ms);
        Ok(Some(c.clone()))
    }

    async fn webhook_delivered(
        &self,
        endpoint: &str,
        holder: &str,
        seq: u64,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<bool> {
        let mut inner = self.lock();
        match inner.webhooks.get_mut(endpoint) {
            Some(c) if c.holder.as_deref() == Some(holder) && c.delivered_seq < seq => {
                c.delivered_seq = seq;
                c.failures = 0;
                c.next_attempt_ms = 0;
                c.last_error = None;
                c.lease_until_ms = now_ms.saturating_add(lease_ms);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn webhook_failed(
        &self,
        endpoint: &str,
        holder: &str,
        next_attempt_ms: i64,
        error: &str,
    ) -> StoreResult<bool> {
        let mut inner = self.lock();
        match inner.webhooks.get_mut(endpoint) {
            Some(c) if c.holder.as_deref() == Some(holder) => {
                c.failures = c.failures.saturating_add(1);
                c.next_attempt_ms = next_attempt_ms;
                c.last_error = Some(error.to_owned());
                c.holder = None;
                c.lease_until_ms = 0;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_webhook(&self, endpoint: &str, holder: &str) -> StoreResult<()> {
        if let Some(c) = self.lock().webhooks.get_mut(endpoint)
            && c.holder.as_deref() == Some(holder)
        {
            c.holder = None;
            c.lease_until_ms = 0;
        }
        Ok(())
    }

    async fn webhook_cursors(&self) -> StoreResult<Vec<WebhookCursor>> {
        Ok(self.lock().webhooks.values().cloned().collect())
    }
}
