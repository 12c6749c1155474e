//! [`MemTelemetryStore`]: events in one time-ordered vector.
//!
//! For tests and the simulator. Appending an event in time order is a push;
//! a late event (reported out of order) is inserted at its place. Queries
//! binary-search the range start and scan. Memory is the vector's capacity
//! times `size_of::<Event>()` (96 bytes or less), see
//! [`MemTelemetryStore::memory_bytes`].

use std::sync::Mutex;

use crate::dims::Dictionary;
use crate::event::Event;
use crate::store::{EventQuery, StoreError, TelemetryStore};
use crate::time::Timestamp;

/// An in-memory [`TelemetryStore`]. Share it behind an `Arc`.
#[derive(Debug, Default)]
pub struct MemTelemetryStore {
    dict: Dictionary,
    events: Mutex<Vec<Event>>,
}

impl MemTelemetryStore {
    /// An empty store with a new dictionary.
    pub fn new() -> Self {
        Self::with_dictionary(Dictionary::new())
    }

    /// An empty store naming symbols with `dict` (shared with producers).
    pub fn with_dictionary(dict: Dictionary) -> Self {
        Self {
            dict,
            events: Mutex::new(Vec::new()),
        }
    }

    /// Reserves room for `n` more events (avoids regrowth in a simulation).
    pub fn reserve(&self, n: usize) {
        self.lock().reserve(n);
    }

    /// Records one event, synchronously (no allocation unless the vector
    /// grows).
    pub fn record(&self, event: Event) {
        insert(&mut self.lock(), event);
    }

    /// Records events, synchronously.
    pub fn record_all(&self, events: &[Event]) {
        let mut v = self.lock();
        v.reserve(events.len());
        for e in events {
            insert(&mut v, *e);
        }
    }

    /// Events matching `query`, synchronously.
    pub fn select(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError> {
        query.validate()?;
        let v = self.lock();
        let start = v.partition_point(|e| e.at < query.from);
        let limit = query.limit.unwrap_or(usize::MAX);
        Ok(v[start..]
            .iter()
            .take_while(|e| e.at < query.to)
            .filter(|e| query.filter.matches(e))
            .take(limit)
            .copied()
            .collect())
    }

    /// Calls `f` with every event of `[from, to)` in time order, without
    /// copying them (metrics over a large simulation).
    pub fn for_each_between(&self, from: Timestamp, to: Timestamp, mut f: impl FnMut(&Event)) {
        let v = self.lock();
        let start = v.partition_point(|e| e.at < from);
        for e in v[start..].iter().take_while(|e| e.at < to) {
            f(e);
        }
    }

    /// Removes events before `cutoff`, synchronously.
    pub fn purge(&self, cutoff: Timestamp) -> u64 {
        let mut v = self.lock();
        let n = v.partition_point(|e| e.at < cutoff);
        v.drain(..n);
        n as u64
    }

    /// Number of events held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no event is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of memory the events occupy (capacity, not just length).
    pub fn memory_bytes(&self) -> usize {
        self.lock().capacity() * std::mem::size_of::<Event>()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Event>> {
        // Nothing here can leave the vector half-changed, so a poisoned
        // lock (a panic elsewhere while holding it) is still consistent.
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn insert(v: &mut Vec<Event>, event: Event) {
    match v.last() {
        Some(last) if last.at > event.at => {
            // After every event of the same instant: arrival order is kept.
            let at = v.partition_point(|e| e.at <= event.at);
            v.insert(at, event);
        }
        _ => v.push(event),
    }
}

impl TelemetryStore for MemTelemetryStore {
    fn dictionary(&self) -> &Dictionary {
        &self.dict
    }

    async fn append(&self, events: &[Event]) -> Result<(), StoreError> {
        self.record_all(events);
        Ok(())
    }

    async fn query(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError> {
        self.select(query)
    }

    async fn purge_before(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        Ok(self.purge(cutoff))
    }
}
