//! The telemetry writer task and the maintenance task beside it.
//!
//! The writer drains the queue the request path fills, a batch at a time
//! (everything queued and what arrives within `options.gather`, up to
//! `options.batch`): it reads the bindings of the
//! batch's sessions in one lookup, attributes calls and progress events
//! ([`super::attribute`]), counts the events in the
//! Prometheus families, drives the [`ActivationTracker`] (activation time and
//! outcomes), and appends events to the store in batches (at most
//! `options.batch` events, at most `options.flush_interval` late). Once a
//! second it sets the outbox backlog and times out activations.
//!
//! The maintenance task purges events past retention and recomputes the
//! profiles-in-use gauge from the store, so its longer queries never hold up
//! the queue.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::time::Duration;

use ferrosim_smdp::Smdp;
use ferrosim_smdp::store::Store;
use ferrosim_telemetry::prom::ReasonLabels;
use ferrosim_telemetry::{
    ActivationTracker, CorrelationId, Dimension, Event, EventKind, EventQuery, MetricsQuery,
    Timestamp, compute,
};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior, interval, interval_at};
use tracing::{debug, warn};

use super::attribute::{Attributor, Named, named};
use super::lookup::StoreLookup;
use super::{Input, Telemetry};

/// Finished activations remembered, so that their late events (an
/// acknowledgement after the installation result) do not open them again.
const MAX_FINISHED: usize = 100_000;

/// Ids of activations that ended, oldest forgotten first.
#[derive(Default)]
struct Finished {
    set: HashSet<CorrelationId>,
    order: VecDeque<CorrelationId>,
}

impl Finished {
    fn insert(&mut self, id: CorrelationId) {
        if self.set.insert(id) {
            self.order.push_back(id);
            if self.order.len() > MAX_FINISHED
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }

    fn contains(&self, id: CorrelationId) -> bool {
        self.set.contains(&id)
    }
}

struct Writer<S: Store + Clone> {
    telemetry: Telemetry,
    smdp: Smdp<S>,
    attributor: Attributor<StoreLookup<S>>,
    tracker: ActivationTracker,
    finished: Finished,
    batch: Vec<Event>,
    fresh: Vec<Event>,
    unattributed_reported: u64,
}

/// Resolves when `stop` says stop (or its sender is gone), holding no borrow
/// of it afterwards.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Runs the writer until `stop`, then appends what it still holds.
pub(crate) async fn run<S: Store + Clone>(
    telemetry: Telemetry,
    smdp: Smdp<S>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(mut rx) = telemetry.take_receiver().await else {
        debug!("telemetry writer already running for this telemetry");
        return;
    };
    let options = telemetry.inner.options.clone();
    let horizon = u64::try_from(options.horizon.as_millis()).unwrap_or(u64::MAX);
    let mut w = Writer {
        attributor: Attributor::new(
            StoreLookup(smdp.store().clone()),
            telemetry.inner.dict.clone(),
            &smdp.config().address,
        ),
        telemetry,
        smdp,
        tracker: ActivationTracker::new(horizon),
        finished: Finished::default(),
        batch: Vec::with_capacity(options.batch),
        fresh: Vec::new(),
        unattributed_reported: 0,
    };
    let mut flush = interval(options.flush_interval.max(Duration::from_millis(10)));
    flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut tick = interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            input = rx.recv() => match input {
                Some(input) => {
                    // What is queued, and what arrives within `gather`
                    // (unless a flush waits), joins this batch: its
                    // sessions are read in one lookup.
                    let mut inputs = vec![input];
                    let limit = options.batch.max(1);
                    drain(&mut rx, &mut inputs, limit);
                    let deadline = Instant::now() + options.gather;
                    // A flush waiting ends the gathering at once.
                    while inputs.len() < limit
                        && !inputs.iter().any(|i| matches!(i, Input::Flush(_)))
                    {
                        tokio::select! {
                            biased;
                            () = stopped(&mut stop) => break,
                            next = tokio::time::timeout_at(deadline, rx.recv()) => match next {
                                Ok(Some(input)) => {
                                    inputs.push(input);
                                    drain(&mut rx, &mut inputs, limit);
                                }
                                Ok(None) | Err(_) => break,
                            },
                        }
                    }
                    w.handle_batch(inputs).await;
                }
                None => break,
            },
            _ = flush.tick() => w.append().await,
            _ = tick.tick() => {
                ticks += 1;
                w.tick(ticks.is_multiple_of(30)).await;
            }
        }
        if w.batch.len() >= options.batch {
            w.append().await;
        }
    }
    let mut rest = Vec::new();
    while let Ok(input) = rx.try_recv() {
        rest.push(input);
    }
    w.handle_batch(rest).await;
    w.append().await;
}

/// Moves what is queued into `inputs`, up to `limit` in all.
fn drain(rx: &mut tokio::sync::mpsc::Receiver<Input>, inputs: &mut Vec<Input>, limit: usize) {
    while inputs.len() < limit {
        match rx.try_recv() {
            Ok(input) => inputs.push(input),
            Err(_) => break,
        }
    }
}

impl<S: Store + Clone> Writer<S> {
    /// Handles a batch of inputs in their order, after reading the
    /// bindings of every session they need in one lookup.
    async fn handle_batch(&mut self, inputs: Vec<Input>) {
        let prepared: Vec<(Input, Option<Named>)> = inputs
            .into_iter()
            .map(|input| match input {
                Input::Call(call) => {
                    let n = named(&call);
                    (Input::Call(call), Some(n))
                }
                other => (other, None),
            })
            .collect();
        let asked = self
            .attributor
            .prefetch(prepared.iter().filter_map(|(input, n)| match (input, n) {
                (Input::Call(call), Some(n)) => Some((call.function, n)),
                _ => None,
            }))
            .await;
        if asked > 0 {
            self.telemetry
                .inner
                .counters
                .lookups
                .fetch_add(1, Ordering::Relaxed);
        }
        for (input, n) in prepared {
            self.handle(input, n).await;
        }
    }

    async fn handle(&mut self, input: Input, named: Option<Named>) {
        match input {
            Input::Call(call) => {
                let named = named.unwrap_or_else(|| super::attribute::named(&call));
                self.attributor
                    .attribute(call, named, &mut self.fresh)
                    .await;
            }
            Input::Progress(ev) => self.attributor.progress(&ev, &mut self.fresh).await,
            Input::Flush(reply) => {
                self.append().await;
                let _ = reply.send(());
                return;
            }
        }
        let fresh = std::mem::take(&mut self.fresh);
        for e in &fresh {
            self.observe(e);
        }
        self.batch.extend_from_slice(&fresh);
        self.fresh = fresh;
        self.fresh.clear();
        if self.batch.len() >= self.telemetry.inner.options.batch {
            self.append().await;
        }
    }

    fn observe(&mut self, e: &Event) {
        let prom = &self.telemetry.inner.prom;
        match e.kind {
            // The call itself was counted by the HTTP layer.
            EventKind::Step { .. } => prom.count_event(e),
            _ => prom.observe_event(e),
        }
        if e.activation.is_some_and(|id| self.finished.contains(id)) {
            return;
        }
        if let Some(outcome) = self.tracker.handle_event(e) {
            prom.observe_outcome(&outcome);
            self.finished.insert(outcome.id);
        }
    }

    async fn tick(&mut self, expire: bool) {
        let now = Timestamp::now();
        let inner = &self.telemetry.inner;
        while let Some(outcome) = self.tracker.poll_timeout(now) {
            inner.prom.observe_outcome(&outcome);
            self.finished.insert(outcome.id);
        }
        if expire {
            self.attributor.expire(now);
        }
        let unattributed = self.attributor.unattributed;
        if unattributed > self.unattributed_reported {
            inner
                .prom
                .events_dropped
                .get_or_create(&ReasonLabels {
                    reason: "unattributed",
                })
                .inc_by(unattributed - self.unattributed_reported);
            inner
                .counters
                .unattributed
                .store(unattributed, Ordering::Relaxed);
            self.unattributed_reported = unattributed;
        }
        match self.smdp.store().pending_callbacks().await {
            Ok(n) => {
                inner
                    .prom
                    .outbox_backlog
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            Err(e) => warn!(error = %e, "telemetry: cannot count the callback outbox"),
        }
    }

    async fn append(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let inner = &self.telemetry.inner;
        let started = Instant::now();
        let result = inner.store.append(&self.batch).await;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        inner.counters.appends.fetch_add(1, Ordering::Relaxed);
        inner
            .counters
            .append_micros
            .fetch_add(micros, Ordering::Relaxed);
        inner
            .counters
            .append_max_micros
            .fetch_max(micros, Ordering::Relaxed);
        match result {
            Ok(()) => {
                inner
                    .counters
                    .written
                    .fetch_add(self.batch.len() as u64, Ordering::Relaxed);
                inner.appended.send_modify(|n| *n += 1);
            }
            Err(e) => {
                inner.prom.store_failures.inc();
                warn!(error = %e, events = self.batch.len(), "telemetry: events lost, the store refused them");
            }
        }
        self.batch.clear();
    }
}

/// Purges events past retention and recomputes `ferrosim_profiles_active`,
/// until `stop`.
pub(crate) async fn maintain(telemetry: Telemetry, mut stop: watch::Receiver<bool>) {
    let options = telemetry.inner.options.clone();
    let start = Instant::now();
    let mut purge = interval_at(start + Duration::from_secs(5), options.purge_interval);
    purge.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut profiles = interval_at(start + Duration::from_secs(2), options.profiles_interval);
    profiles.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut carriers_set = HashSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut stop) => return,
            _ = purge.tick() => {
                let cutoff = options.retention.cutoff(Timestamp::now());
                match telemetry.inner.store.purge_before(cutoff).await {
                    Ok(0) => {}
                    Ok(n) => debug!(events = n, "telemetry: purged events past retention"),
                    Err(e) => warn!(error = %e, "telemetry: cannot purge old events"),
                }
            }
            _ = profiles.tick() => {
                if let Err(e) = profiles_active(&telemetry, &mut carriers_set).await {
                    warn!(error = %e, "telemetry: cannot compute profiles in use");
                }
            }
        }
    }
}

/// Sets `ferrosim_profiles_active` per carrier from the events of the
/// profiles window; carriers that had a value and have none now go to 0.
async fn profiles_active(
    telemetry: &Telemetry,
    carriers_set: &mut HashSet<Option<ferrosim_telemetry::Sym>>,
) -> Result<(), ferrosim_telemetry::StoreError> {
    let inner = &telemetry.inner;
    let now = Timestamp::now();
    let from = now.minus(inner.options.profiles_window);
    let events = inner
        .store
        .query(&EventQuery::between(
            from,
            now.plus(Duration::from_millis(1)),
        ))
        .await?;
    let mut q = MetricsQuery::window(from, now.plus(Duration::from_millis(1)));
    q.group_by = Some(Dimension::Carrier);
    let report = compute(events.iter(), &q, &inner.dict);
    let mut seen = HashSet::new();
    for g in &report.groups {
        let n = i64::try_from(g.metrics.bytes.active_profiles).unwrap_or(i64::MAX);
        inner.prom.set_profiles_active(g.key.first, n);
        seen.insert(g.key.first);
    }
    for gone in carriers_set.difference(&seen) {
        inner.prom.set_profiles_active(*gone, 0);
    }
    *carriers_set = seen;
    Ok(())
}
