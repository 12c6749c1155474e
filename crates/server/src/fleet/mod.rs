//! The fleet control plane in `ferrosim serve`: a driver around the
//! sans-IO [`ferrosim_fleet::Fleet`].
//!
//! Every change goes through [`FleetDriver::transact`]: under one lock the
//! input is applied, the engine polled at `now`, gate measurements computed
//! and handed back, and the resulting state committed to the
//! [`FleetStore`] with the versions this instance read (see `persist`).
//! Only after the commit succeeded are the actions carried out (`execute`):
//! ES2+ orders at the carrier's SM-DP+ with the ES2+ client, eUICC packages
//! and download triggers queued at the eIM, commands for the device agent
//! kept for it to fetch. A commit refused because another instance wrote
//! first reloads the fleet and applies the input again, so two instances on
//! one database never both decide for the same device, and a decision is
//! never acted on before it is stored.
//!
//! A background task ([`FleetDriver::spawn`]) polls at the engine's next
//! wake-up (or every `tick`) and collects the eIM's results of queued items.

mod capabilities;
mod events;
mod execute;
pub(crate) mod persist;
pub mod webhooks;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use ferrosim_eim::{Eim, EimStore};
use ferrosim_fleet::action::{Action, ActionId, ActionResult};
use ferrosim_fleet::decision::Decision;
use ferrosim_fleet::store::FleetStore;
use ferrosim_fleet::{Catalog, Fleet, FleetConfig, FleetError};
use ferrosim_ids::{Clock, Eid, Timestamp};
use ferrosim_telemetry::{Dictionary, Event};
use rand::SeedableRng;
use rand::rngs::StdRng;
use thiserror::Error;
use tokio::sync::{Mutex, Notify, watch};
use tracing::{debug, info, warn};

use crate::es2_client::Es2Client;
pub use events::{FleetEvents, GATE_LOOKBACK};
pub use webhooks::{WebhookEndpoint, WebhookEvent, Webhooks};

/// Why a fleet operation failed.
#[derive(Debug, Error)]
pub enum DriverError {
    /// The fleet refused the input (unknown device, bad rollout...).
    #[error("{0}")]
    Refused(#[from] FleetError),
    /// The store failed, or what it holds is unusable.
    #[error("fleet store: {0}")]
    Store(String),
    /// Other instances kept writing first; try again.
    #[error("the fleet state kept changing under this instance; try again")]
    Busy,
}

/// How the driver runs.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Longest wait between two polls of the engine and of the eIM's
    /// results.
    pub tick: Duration,
    /// ES2+ clients per carrier name (the carrier's SM-DP+ and credentials),
    /// used when there is no [`FleetOptions::es2_resolver`].
    pub es2: HashMap<String, Es2Client>,
    /// Makes the ES2+ client of a carrier from its configuration (its
    /// SM-DP+ address and credentials reference), for carriers created or
    /// changed over the REST API too; asked again when either changes.
    pub es2_resolver: Option<Es2Resolver>,
    /// Where the fleet's telemetry events are kept and its rollout gates
    /// read them from (see [`FleetEvents`]); `None`: in memory only, lost
    /// on a restart and unseen by other instances.
    pub events: Option<FleetEvents>,
    /// Telemetry events kept in memory for rollout gates without
    /// [`FleetOptions::events`] (and, with it, events waiting to be written
    /// after a failed append).
    pub events_kept: usize,
    /// Where the fleet's decisions about devices, carriers and rollouts
    /// are recorded (the instance's audit trail; disabled by default).
    pub audit: crate::audit::Auditor,
}

impl Default for FleetOptions {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(1),
            es2: HashMap::new(),
            es2_resolver: None,
            events: None,
            events_kept: 200_000,
            audit: crate::audit::Auditor::disabled(),
        }
    }
}

/// Makes a carrier's ES2+ client from its configuration (see
/// [`FleetOptions::es2_resolver`]); an error says why there is none.
#[derive(Clone)]
pub struct Es2Resolver(pub Arc<Es2ResolverFn>);

/// What an [`Es2Resolver`] calls.
pub type Es2ResolverFn =
    dyn Fn(&ferrosim_fleet::config::CarrierConfig) -> Result<Es2Client, String> + Send + Sync;

impl std::fmt::Debug for Es2Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Es2Resolver")
    }
}

/// A resolved ES2+ client with what it was made from.
struct ResolvedEs2 {
    smdp_address: String,
    credentials: String,
    client: Option<Es2Client>,
}

/// How long after a failed append of telemetry events the next is tried.
const APPEND_RETRY_MS: i64 = 5_000;

/// One change applied inside [`FleetDriver::transact`].
pub struct Tx<'a> {
    /// The fleet.
    pub fleet: &'a mut Fleet,
    /// The time of the change.
    pub now: Timestamp,
    rng: &'a mut StdRng,
    events: &'a mut Vec<Event>,
}

impl Tx<'_> {
    /// An action's result.
    pub fn handle_result(&mut self, result: &ActionResult) -> Result<(), FleetError> {
        self.fleet.handle_result(result, self.now, &mut *self.rng)
    }

    /// Keeps a telemetry event (for rollout gates) once the change commits.
    pub fn record(&mut self, event: Event) {
        self.events.push(event);
    }
}

pub(crate) struct State {
    pub(crate) fleet: Fleet,
    written: persist::Written,
    rng: StdRng,
    /// eIM items queued for actions: action -> (device, item id, action).
    pub(crate) eim_items: HashMap<ActionId, (Eid, u64, Action)>,
    /// eIM items of in-flight actions read from the store (queued before a
    /// restart, or by another instance), adopted when the action is issued
    /// again instead of queuing a second item.
    recovered: HashMap<ActionId, u64>,
    /// ES2+ calls running.
    es2_running: HashSet<ActionId>,
    /// Commands waiting for each device agent.
    pub(crate) agent: BTreeMap<Eid, Vec<Action>>,
    /// Agent commands whose result came through this instance, until the
    /// fleet took it (they are still in flight until then).
    agent_done: HashSet<ActionId>,
    /// Results waiting to be fed to the fleet by the background task.
    answered: Vec<ActionResult>,
    /// Committed events: the recent ones without an event store, the ones
    /// not yet written with one.
    events: VecDeque<Event>,
    /// When events past retention were last purged.
    purged: Option<Timestamp>,
    /// When an append of events last failed: the next try waits a few
    /// seconds (the events wait in memory, and gates still see them).
    append_failed: Option<Timestamp>,
    /// Per device, when the IpaEuiccData the fleet last took its
    /// capabilities from was reported (see `capabilities::sweep`).
    caps_seen: HashMap<Eid, ferrosim_eim::Timestamp>,
    /// Where the next capabilities sweep goes on (a device's place in the
    /// fleet's registration order).
    caps_cursor: usize,
    /// When the last round of the sweep ran (rounds are a second apart at
    /// least).
    caps_swept: Option<std::time::Instant>,
}

pub(crate) struct Inner<F, E> {
    pub(crate) store: F,
    pub(crate) eim: Option<Eim<E>>,
    /// Clients made by the resolver, by carrier name.
    resolved: std::sync::Mutex<HashMap<String, ResolvedEs2>>,
    dict: Dictionary,
    clock: Arc<dyn Clock>,
    pub(crate) state: Mutex<State>,
    wake: Notify,
    options: FleetOptions,
    hooks: Option<Webhooks>,
}

/// The fleet driver; cheap to clone.
pub struct FleetDriver<F, E> {
    pub(crate) inner: Arc<Inner<F, E>>,
}

impl<F, E> Clone for FleetDriver<F, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

/// Records the decisions that change what a device uses, a carrier's state
/// or a rollout in the audit trail (as `fleet.<decision>` by `system`, on
/// the device's EID, `rollout/<id>` or `fleet`, the decision as details).
/// The mechanics of carrying actions out (issue, reissue, retry) stay in the
/// fleet's own decision log.
async fn audit_decisions(audit: &crate::audit::Auditor, decisions: &[Decision]) {
    if !audit.is_enabled() {
        return;
    }
    for d in decisions {
        let Ok(details) = serde_json::to_value(d) else {
            continue;
        };
        let name = details["what"]["decision"].as_str().unwrap_or("decision");
        if matches!(name, "issue" | "reissue" | "retry") {
            continue;
        }
        let subject = match (d.device, d.rollout) {
            (Some(eid), _) => eid.to_string(),
            (None, Some(r)) => format!("rollout/{r}"),
            (None, None) => "fleet".to_owned(),
        };
        let record = ferrosim_audit::AuditRecord::new(
            d.at,
            ferrosim_audit::Actor::system(),
            &format!("fleet.{name}"),
            &subject,
        )
        .with_details(details);
        audit.record(record).await;
    }
}

/// The eIM items of in-flight actions this instance knows: the ones it
/// queued and the ones read from the store.
fn eim_items(st: &State) -> Vec<(ActionId, u64)> {
    let mut items: Vec<(ActionId, u64)> = st
        .eim_items
        .iter()
        .map(|(id, (_, item, _))| (*id, *item))
        .chain(st.recovered.iter().map(|(id, item)| (*id, *item)))
        .collect();
    items.sort_unstable();
    items
}

impl<F: FleetStore, E: EimStore> FleetDriver<F, E> {
    /// Opens the fleet stored in `store`, or starts one from `config` when
    /// nothing is stored. A stored fleet keeps the configuration it was
    /// made with (its ids refer to it); a different `config` is reported.
    pub async fn open(
        store: F,
        eim: Option<Eim<E>>,
        config: FleetConfig,
        dict: Dictionary,
        clock: Arc<dyn Clock>,
        options: FleetOptions,
        hooks: Option<Webhooks>,
    ) -> Result<Self, DriverError> {
        // The fleet names its events' dimensions with the store's
        // dictionary.
        let dict = options
            .events
            .as_ref()
            .map_or(dict, |e| e.dictionary().clone());
        let now = clock.now();
        let (fleet, written) = match persist::load(&store, dict.clone(), now)
            .await
            .map_err(DriverError::Store)?
        {
            Some((fleet, written)) => {
                if fleet.catalog().config() != &config {
                    warn!(
                        "fleet: the stored fleet was made with another configuration; it is kept \
                         (changes to carriers, groups and rules go through rollouts)"
                    );
                }
                info!(devices = fleet.len(), "fleet: state loaded");
                (fleet, written)
            }
            None => {
                let catalog = Catalog::from_config(config, dict.clone())
                    .map_err(|e| DriverError::Refused(FleetError::Snapshot(e.to_string())))?;
                (Fleet::new(catalog, now), persist::Written::default())
            }
        };
        for name in options.es2.keys() {
            if fleet.catalog().carrier_id(name).is_none() {
                warn!(carrier = %name, "fleet: ES2+ credentials for an unknown carrier");
            }
        }
        let recovered = persist::stored_eim_items(&written).into_iter().collect();
        let state = State {
            fleet,
            written,
            rng: StdRng::from_rng(&mut rand::rng()),
            eim_items: HashMap::new(),
            recovered,
            es2_running: HashSet::new(),
            agent: BTreeMap::new(),
            agent_done: HashSet::new(),
            answered: Vec::new(),
            events: VecDeque::new(),
            purged: None,
            append_failed: None,
            caps_seen: HashMap::new(),
            caps_cursor: 0,
            caps_swept: None,
        };
        let driver = Self {
            inner: Arc::new(Inner {
                store,
                eim,
                resolved: std::sync::Mutex::new(HashMap::new()),
                dict,
                clock,
                state: Mutex::new(state),
                wake: Notify::new(),
                options,
                hooks,
            }),
        };
        // First commit: the engine record (and the actions a restore issued
        // again) are written, then carried out.
        driver.transact(|_| Ok(())).await?;
        Ok(driver)
    }

    /// The current time on the driver's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// The ES2+ client of a carrier of `catalog`, when its credentials are
    /// configured (by name: a carrier keeps its client when the catalog
    /// changes; one whose SM-DP+ or credentials changed gets a new one).
    pub fn es2_client(
        &self,
        catalog: &Catalog,
        carrier: ferrosim_fleet::catalog::CarrierId,
    ) -> Option<Es2Client> {
        let c = catalog.config().carriers.get(carrier.index())?;
        let Some(resolver) = &self.inner.options.es2_resolver else {
            return self.inner.options.es2.get(&c.name).cloned();
        };
        let mut resolved = self
            .inner
            .resolved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = resolved.get(&c.name)
            && r.smdp_address == c.smdp_address
            && r.credentials == c.es2_credentials
        {
            return r.client.clone();
        }
        let client = match (resolver.0)(c) {
            Ok(client) => Some(client),
            Err(e) => {
                warn!(carrier = %c.name, error = %e, "fleet: no ES2+ client for the carrier");
                None
            }
        };
        resolved.insert(
            c.name.clone(),
            ResolvedEs2 {
                smdp_address: c.smdp_address.clone(),
                credentials: c.es2_credentials.clone(),
                client: client.clone(),
            },
        );
        client
    }

    /// The store.
    pub fn store(&self) -> &F {
        &self.inner.store
    }

    /// The webhooks, if configured.
    pub fn webhooks(&self) -> Option<&Webhooks> {
        self.inner.hooks.as_ref()
    }

    /// Reads the in-memory fleet and the commands waiting for device agents.
    pub async fn read<R>(&self, f: impl FnOnce(&Fleet, &BTreeMap<Eid, Vec<Action>>) -> R) -> R {
        let st = self.inner.state.lock().await;
        f(&st.fleet, &st.agent)
    }

    /// Applies `f`, decides, commits, then carries the actions out (see the
    /// module documentation). `f` runs again on a reloaded fleet when
    /// another instance wrote first; on an error nothing is kept.
    pub async fn transact<R>(
        &self,
        mut f: impl FnMut(&mut Tx<'_>) -> Result<R, FleetError>,
    ) -> Result<R, DriverError> {
        let inner = &self.inner;
        for _ in 0..8 {
            let mut guard = inner.state.lock().await;
            let st = &mut *guard;
            let now = inner.clock.now();
            let mut events = Vec::new();
            let applied = {
                let mut tx = Tx {
                    fleet: &mut st.fleet,
                    now,
                    rng: &mut st.rng,
                    events: &mut events,
                };
                f(&mut tx)
            };
            let r = match applied {
                Ok(r) => r,
                Err(e) => {
                    // Whatever `f` changed before failing is dropped.
                    self.reload(st, now).await?;
                    return Err(DriverError::Refused(e));
                }
            };
            let (actions, decisions) = self.decide(st, now, &mut events).await;
            let kept = decisions.clone();
            let items = eim_items(st);
            let Some(pending) = persist::diff(&st.fleet, &st.written, decisions, &items, now)
            else {
                self.keep_events(st, events, now).await;
                self.dispatch(st, actions, now).await;
                self.keep_eim_items(st, now).await;
                return Ok(r);
            };
            match persist::commit(&inner.store, &mut st.written, pending).await {
                Ok(()) => {
                    // The events of a change are kept once it is stored
                    // (a change refused as stale is applied again, and
                    // records them again).
                    self.keep_events(st, events, now).await;
                    self.dispatch(st, actions, now).await;
                    self.keep_eim_items(st, now).await;
                    if let Some(h) = &inner.hooks {
                        h.decisions(&kept);
                    }
                    audit_decisions(&inner.options.audit, &kept).await;
                    return Ok(r);
                }
                Err(e) if persist::is_stale(&e) => {
                    self.reload(st, now).await?;
                }
                Err(e) => {
                    self.reload(st, now).await?;
                    return Err(DriverError::Store(e.to_string()));
                }
            }
        }
        Err(DriverError::Busy)
    }

    /// Catches up with what other instances stored: reloads the fleet when
    /// the stored engine record moved since this instance read or wrote it
    /// (one small read otherwise). For inputs naming what this instance
    /// may not know yet (a device another instance registered).
    pub async fn refresh(&self) -> Result<(), DriverError> {
        let mut guard = self.inner.state.lock().await;
        let st = &mut *guard;
        if persist::moved(&self.inner.store, &st.written)
            .await
            .map_err(DriverError::Store)?
        {
            let now = self.inner.clock.now();
            self.reload(st, now).await?;
        }
        Ok(())
    }

    /// Replaces the in-memory fleet with the stored one. What a restore
    /// issues again is dropped: those actions are out with whichever
    /// instance issued them (and are issued again at their time-out).
    async fn reload(&self, st: &mut State, now: Timestamp) -> Result<(), DriverError> {
        let loaded = persist::load(&self.inner.store, self.inner.dict.clone(), now)
            .await
            .map_err(DriverError::Store)?;
        let (mut fleet, written) = match loaded {
            Some(x) => x,
            None => {
                let catalog = Catalog::from_config(
                    st.fleet.catalog().config().clone(),
                    self.inner.dict.clone(),
                )
                .map_err(|e| DriverError::Refused(FleetError::Snapshot(e.to_string())))?;
                (Fleet::new(catalog, now), persist::Written::default())
            }
        };
        while fleet.poll_action().is_some() {}
        while fleet.poll_decision().is_some() {}
        while fleet.poll_event().is_some() {}
        for (id, item) in persist::stored_eim_items(&written) {
            if !st.eim_items.contains_key(&id) {
                st.recovered.insert(id, item);
            }
        }
        st.fleet = fleet;
        st.written = written;
        // Agent commands no longer in flight (answered through another
        // instance) are dropped.
        let in_flight: HashSet<ActionId> = st.fleet.in_flight().map(|a| a.id).collect();
        st.agent.retain(|_, list| {
            list.retain(|a| in_flight.contains(&a.id));
            !list.is_empty()
        });
        st.agent_done.retain(|id| in_flight.contains(id));
        Ok(())
    }

    /// Writes the eIM items just queued for actions to the store at once
    /// (in the engine record), so that a crash right after queuing them
    /// does not queue them twice. A refused write is left to the next
    /// commit (which always carries the items).
    async fn keep_eim_items(&self, st: &mut State, now: Timestamp) {
        let items = eim_items(st);
        if items == persist::stored_eim_items(&st.written) {
            return;
        }
        if let Some(pending) = persist::diff(&st.fleet, &st.written, Vec::new(), &items, now)
            && let Err(e) = persist::commit(&self.inner.store, &mut st.written, pending).await
        {
            debug!(error = %e, "fleet: eIM items not written yet");
        }
    }

    /// Polls the engine and answers its gate queries until it is settled.
    /// `events` are the change's telemetry events (not kept yet); the
    /// fleet's own are added to them.
    async fn decide(
        &self,
        st: &mut State,
        now: Timestamp,
        events: &mut Vec<Event>,
    ) -> (Vec<Action>, Vec<Decision>) {
        st.fleet.poll(now, &mut st.rng);
        for _ in 0..16 {
            while let Some(e) = st.fleet.poll_event() {
                events.push(e);
            }
            let mut asked = false;
            while let Some(q) = st.fleet.poll_gate_query() {
                asked = true;
                let wave = self.gate_metrics(st, &q.wave_query, events).await;
                let control = self.gate_metrics(st, &q.control_query, events).await;
                if let Err(e) = st
                    .fleet
                    .handle_gate_metrics(q.rollout, q.wave, &wave, &control, now)
                {
                    warn!(error = %e, "fleet: gate metrics refused");
                }
            }
            if !asked {
                break;
            }
            st.fleet.poll(now, &mut st.rng);
        }
        let mut actions = Vec::new();
        while let Some(a) = st.fleet.poll_action() {
            actions.push(a);
        }
        let mut decisions = Vec::new();
        while let Some(d) = st.fleet.poll_decision() {
            decisions.push(d);
        }
        while let Some(e) = st.fleet.poll_event() {
            events.push(e);
        }
        (actions, decisions)
    }

    /// The metrics of one side of a gate: over the event store's events
    /// (when there is one), the committed events not written yet, and the
    /// current change's. A store that cannot be read gives no samples: the
    /// gate waits (and fails at its rollout's `max_wait`), never passes on
    /// a part of the data.
    async fn gate_metrics(
        &self,
        st: &State,
        query: &ferrosim_telemetry::metrics::MetricsQuery,
        current: &[Event],
    ) -> ferrosim_telemetry::Metrics {
        let dict = &self.inner.dict;
        let stored = match &self.inner.options.events {
            Some(store) => match store.for_gate(query).await {
                Ok(events) => events,
                Err(e) => {
                    warn!(error = %e, "fleet: events for a rollout gate unreadable");
                    return ferrosim_telemetry::Metrics::default();
                }
            },
            None => Vec::new(),
        };
        let all = stored.iter().chain(st.events.iter()).chain(current.iter());
        ferrosim_telemetry::metrics::compute(all, query, dict).total
    }

    /// Keeps a committed change's events: appended to the event store (with
    /// any an earlier append failed to write), or kept in memory.
    async fn keep_events(&self, st: &mut State, events: Vec<Event>, now: Timestamp) {
        st.events.extend(events);
        let retry_at = st
            .append_failed
            .map(|at| at.millis().saturating_add(APPEND_RETRY_MS));
        if let Some(store) = &self.inner.options.events
            && !st.events.is_empty()
            && retry_at.is_none_or(|at| now.millis() >= at)
        {
            let batch = st.events.make_contiguous();
            match store.append(batch).await {
                Ok(()) => {
                    st.events.clear();
                    st.append_failed = None;
                }
                Err(e) => {
                    warn!(error = %e, waiting = batch.len(),
                        "fleet: telemetry events not written yet");
                    st.append_failed = Some(now);
                }
            }
        }
        let keep = self.inner.options.events_kept;
        while st.events.len() > keep {
            st.events.pop_front();
        }
    }

    /// Purges the event store's events past its retention, at most hourly
    /// (only for a store the driver looks after, see
    /// [`FleetEvents::purging`]).
    async fn purge_events(&self, now: Timestamp) {
        let Some(store) = &self.inner.options.events else {
            return;
        };
        let Some(keep) = store.retention() else {
            return;
        };
        {
            let mut st = self.inner.state.lock().await;
            if st
                .purged
                .is_some_and(|at| now.millis() < at.millis().saturating_add(3_600_000))
            {
                return;
            }
            st.purged = Some(now);
        }
        let keep = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        let cutoff = ferrosim_telemetry::Timestamp(now.millis().saturating_sub(keep));
        match store.purge_before(cutoff).await {
            Ok(n) if n > 0 => debug!(purged = n, "fleet: telemetry events past retention"),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "fleet: telemetry events not purged"),
        }
    }

    /// Runs the driver's background work until `stop` turns true: polls at
    /// the engine's wake-up (at most `tick` apart) and collects the eIM's
    /// results.
    pub fn spawn(&self, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let driver = self.clone();
        tokio::spawn(async move {
            loop {
                if *stop.borrow() {
                    break;
                }
                let mut results = driver.collect_eim_results().await;
                let facts = {
                    let mut st = driver.inner.state.lock().await;
                    results.append(&mut st.answered);
                    results
                        .iter()
                        .map(|r| {
                            let command = st.eim_items.get(&r.id).map(|(_, _, a)| &a.command);
                            execute::result_fact(command, &r.outcome)
                        })
                        .collect::<Vec<_>>()
                };
                let outcome = driver
                    .transact(|tx| {
                        for (r, fact) in results.iter().zip(&facts) {
                            // What the eUICC did, for the gates of the
                            // activation it belongs to (recorded before
                            // the result may end that activation).
                            if let Some(event) = fact
                                .as_ref()
                                .and_then(|f| execute::fact_event(tx.fleet, r, f, tx.now))
                            {
                                tx.record(event);
                            }
                            // A result the fleet cannot use (its device was
                            // removed) is logged, not retried.
                            if let Err(e) = tx.fleet.handle_result(r, tx.now, &mut *tx.rng) {
                                warn!(error = %e, action = %r.id, "fleet: result not taken");
                            }
                        }
                        Ok(())
                    })
                    .await;
                match outcome {
                    Ok(()) => {
                        let mut st = driver.inner.state.lock().await;
                        for r in &results {
                            st.eim_items.remove(&r.id);
                            st.agent_done.remove(&r.id);
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "fleet: poll failed");
                        // Kept for the next round (eIM results are read
                        // again from the eIM).
                        let mut st = driver.inner.state.lock().await;
                        let st = &mut *st;
                        let again: Vec<ActionResult> = results
                            .into_iter()
                            .filter(|r| !st.eim_items.contains_key(&r.id))
                            .collect();
                        st.answered.extend(again);
                    }
                }
                driver.purge_events(driver.now()).await;
                driver.sweep_capabilities().await;
                let wait = driver.until_next(driver.inner.options.tick).await;
                tokio::select! {
                    _ = stop.changed() => {}
                    () = tokio::time::sleep(wait) => {}
                    () = driver.inner.wake.notified() => {}
                }
            }
        })
    }

    /// Time until the engine wants a poll, at most `max`.
    async fn until_next(&self, max: Duration) -> Duration {
        let st = self.inner.state.lock().await;
        let now = self.inner.clock.now();
        match st.fleet.next_wakeup() {
            Some(at) if at <= now => Duration::ZERO,
            Some(at) => Duration::from_millis(
                u64::try_from(at.millis().saturating_sub(now.millis())).unwrap_or(u64::MAX),
            )
            .min(max),
            None => max,
        }
    }

    /// Asks the background task to poll now.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }
}
