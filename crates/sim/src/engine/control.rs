//! The control plane between the shards' windows: the fleet (its
//! decisions and actions, the reports and results it is handed) and the
//! run's telemetry log and time series, on one thread.
//!
//! It runs beside the shards, one window behind them: while the shards run
//! window `k`, the control plane applies window `k-1`'s outputs
//! ([`Control::apply`]: put in (time, device) order, each to the fleet and
//! the telemetry log), closes
//! the time series' bucket and calls the progress bar
//! ([`Control::end_window`]), starts the window's rollouts and outage
//! declarations ([`Control::begin_window`]) and lets the fleet decide at
//! window `k`'s start ([`Control::decide`]). When the shards are done,
//! [`Control::collect`] takes their outputs (each shard's list sorted on
//! its own thread, the lists merged later, beside the next window, so the
//! shards do not wait for it) and [`Control::deliver`] hands them the actions decided, which they carry
//! out from window `k+1`'s start: an action reaches its device one window
//! after the fleet decided it.

use ferrosim_fleet::action::Failure;
use ferrosim_fleet::report::ReportKind;
use ferrosim_fleet::{Action, ActionResult, Command, DeviceReport, Fleet, Outcome, What};
use ferrosim_ids::Timestamp;
use ferrosim_telemetry::{
    ActivationKind, CorrelationId, Dictionary, Dims, Event, EventKind, Function, ProfileChange,
    ProfileKey, RegistrationOutcome, Source, StatusCode, StepStatus, compute,
};
use rand::rngs::StdRng;

use crate::consumer::Downloads;
use crate::error::SimError;
use crate::network::Load;
use crate::population::Population;
use crate::report::{Bucket, Collected};
use crate::scenario::Scenario;
use crate::shard::{Out, OutKind, Shard};

use super::{Eids, Progress, T0, fleet_dims};

/// Telemetry events reserved per device at the start ([`Control::new`]).
const EVENTS_PER_DEVICE: usize = 4;
/// At most this many events reserved at the start.
const MAX_EVENTS_RESERVED: usize = 16_000_000;

/// An outage's start or end as the fleet is told it: when (ms), whether
/// it starts, the carrier and the region (`None`: everywhere).
type Declaration = (i64, bool, String, Option<String>);

/// A window's outputs as the shards left them (one list per shard), and
/// the window's end.
pub(super) struct Window {
    outs: Vec<Vec<Out>>,
    end: i64,
}

/// The control plane's state during the loop.
pub(super) struct Control<'a> {
    pub scenario: &'a Scenario,
    pub fleet: Fleet,
    /// Each device's position in the fleet, by device number.
    pub positions: Vec<u32>,
    pub eids: Eids,
    pub fleet_rng: StdRng,
    /// The dictionary naming the events' dimensions.
    pub dict: Dictionary,
    /// What the run collects (events, counts, the time series).
    pub c: Collected,
    /// The city's load: devices attached per carrier and area, at the
    /// start of the next window.
    pub load: Load,
    /// The fleet's ES2+ calls at the scenario's SM-DP+.
    pub es2: Es2<'a>,
    /// Carriers of the network (columns of the time series).
    carriers: usize,
    /// The time series' bucket (ms).
    bucket_ms: i64,
    /// The time series' bucket being filled.
    bucket: Bucket,
    /// When the progress bar was last called (ms).
    last_progress: i64,
    /// Outage declarations to the fleet, by time.
    declarations: Vec<Declaration>,
    /// Rollouts by name, once created: their fleet id.
    pub rollout_ids: Vec<(String, u32)>,
    /// Per activation id (the fleet numbers them 1, 2, ...): when its
    /// switch was decided and whether it is a failover (else a return).
    activation_start: Vec<Option<(i64, bool)>>,
    /// Per device number: the kind of the last switch decided for it.
    last_switch: Vec<Option<bool>>,
    /// Outputs stamped past the window they were made in.
    later: Vec<Out>,
    /// A window's outputs in order (kept for its buffer).
    merged: Vec<Out>,
    /// Emptied output lists, handed back to the shards.
    spare: Vec<Vec<Out>>,
    /// Per device number: when its provisioning (ES2+ order) started.
    provision_start: Vec<Option<i64>>,
    /// Per device number: when the fleet last issued an enable to it.
    enable_issued: Vec<Option<i64>>,
    /// Actions sent to devices, by command name (few names).
    pub actions_by_command: Vec<(&'static str, u64)>,
    /// Actions decided for devices, to be delivered to their shards for
    /// the next window, by device number.
    outbox: Vec<(u32, Action)>,
}

impl<'a> Control<'a> {
    /// The control plane at the run's start: `load` as the shards start
    /// it, `devices` devices.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        scenario: &'a Scenario,
        fleet: Fleet,
        positions: Vec<u32>,
        eids: Eids,
        fleet_rng: StdRng,
        dict: Dictionary,
        c: Collected,
        load: Load,
        es2: Es2<'a>,
        carriers: usize,
        devices: u32,
    ) -> Self {
        let bucket_ms = scenario.scenario.bucket.millis_i64();
        let mut c = c;
        // Room for a few events per device up front (the log of a 1M-device
        // outage holds about three million): grown by doubling, the log was
        // copied whole at every step on this thread. Pages not written stay
        // unbacked, and a run with more events grows it as before.
        c.events.reserve(
            (devices as usize)
                .saturating_mul(EVENTS_PER_DEVICE)
                .min(MAX_EVENTS_RESERVED),
        );
        Self {
            scenario,
            fleet,
            positions,
            eids,
            fleet_rng,
            dict,
            c,
            load,
            es2,
            carriers,
            bucket_ms,
            bucket: Bucket::new(0, carriers),
            last_progress: -60_000,
            declarations: declarations(scenario),
            rollout_ids: Vec::new(),
            activation_start: Vec::new(),
            last_switch: vec![None; devices as usize],
            later: Vec::new(),
            merged: Vec::new(),
            spare: Vec::new(),
            provision_start: vec![None; devices as usize],
            enable_issued: vec![None; devices as usize],
            actions_by_command: Vec::new(),
            outbox: Vec::new(),
        }
    }

    /// The window `[t, end)` begins: the scenario's rollouts that start in
    /// it are created and its outage declarations made, at `t`.
    pub fn begin_window(&mut self, t: i64, end: i64) -> Result<(), SimError> {
        let now = Timestamp(T0 + t);
        for r in self
            .scenario
            .rollouts
            .iter()
            .filter(|r| r.start.millis_i64() >= t && r.start.millis_i64() < end)
        {
            let id = self
                .fleet
                .create_rollout(r.spec.clone(), now)
                .map_err(|e| SimError::Fleet(format!("rollout {:?}: {e}", r.spec.name)))?;
            self.rollout_ids.push((r.spec.name.clone(), id));
        }
        for (_, start, carrier, region) in
            self.declarations.iter().filter(|d| d.0 >= t && d.0 < end)
        {
            let r = if *start {
                self.fleet.declare_outage(carrier, region.as_deref(), now)
            } else {
                self.fleet.end_outage(carrier, region.as_deref(), now)
            };
            r.map_err(|e| SimError::Fleet(format!("declaring an outage of {carrier}: {e}")))?;
        }
        Ok(())
    }

    /// The fleet polls at `t`: its decisions are counted, its events
    /// logged, its rollout gates answered from the events so far, and its
    /// actions kept for the shards of their devices ([`Control::deliver`];
    /// ES2+ calls are made here, at the SM-DP+, their answers stamped when
    /// they arrive).
    pub fn decide(&mut self, t: i64) -> Result<(), SimError> {
        self.fleet.poll(Timestamp(T0 + t), &mut self.fleet_rng);
        self.count_decisions();
        self.log_fleet_events(t);
        self.answer_gates(t)?;
        self.send_actions(t);
        Ok(())
    }

    /// The actions decided so far to the shards of their devices, which
    /// start them at their next window's start.
    pub fn deliver(&mut self, shards: &mut [Shard]) {
        for (n, a) in self.outbox.drain(..) {
            let shard = n as usize % shards.len();
            shards[shard].deliver(n, a);
        }
    }

    /// The fleet's decisions: switches counted per kind and remembered per
    /// device (to tell a failover's activation from a return's).
    fn count_decisions(&mut self) {
        while let Some(d) = self.fleet.poll_decision() {
            self.c.decisions += 1;
            if let What::Switch { failover, .. } = d.what {
                if failover {
                    self.bucket.failovers += 1;
                    self.c.failovers += 1;
                } else {
                    self.bucket.returns += 1;
                    self.c.returns += 1;
                }
                if let Some(n) = d.device.and_then(|eid| self.eids.index_of(&eid)) {
                    self.last_switch[n as usize] = Some(failover);
                }
            }
        }
    }

    /// The fleet's telemetry events to the log; a failover activation's
    /// start is kept to measure its completion.
    fn log_fleet_events(&mut self, t: i64) {
        while let Some(e) = self.fleet.poll_event() {
            if let (
                EventKind::ActivationStarted {
                    kind: ActivationKind::Failover,
                    ..
                },
                Some(a),
            ) = (e.kind, e.activation)
            {
                let failover = self
                    .eids
                    .index_of(&e.device)
                    .and_then(|n| self.last_switch[n as usize])
                    .unwrap_or(true);
                let slot = usize::try_from(a.get()).unwrap_or(usize::MAX);
                if slot >= self.activation_start.len() {
                    self.activation_start.resize(slot.saturating_add(1), None);
                }
                self.activation_start[slot] = Some((t, failover));
            }
            self.c.events.push(e);
        }
    }

    /// The rollout gates' numbers, from ferrosim-telemetry over the events
    /// so far, as a deployment's driver computes them.
    fn answer_gates(&mut self, t: i64) -> Result<(), SimError> {
        while let Some(q) = self.fleet.poll_gate_query() {
            self.c.gate_queries += 1;
            let wave = compute(&self.c.events, &q.wave_query, &self.dict).total;
            let control = compute(&self.c.events, &q.control_query, &self.dict).total;
            self.fleet
                .handle_gate_metrics(q.rollout, q.wave, &wave, &control, Timestamp(T0 + t))
                .map_err(|e| SimError::Fleet(format!("gate of rollout {}: {e}", q.rollout)))?;
        }
        Ok(())
    }

    /// The fleet's actions: ES2+ calls made now at the SM-DP+ (in action
    /// order: deterministic), the others kept for their device's shard.
    fn send_actions(&mut self, t: i64) {
        while let Some(a) = self.fleet.poll_action() {
            let Some(n) = self.eids.index_of(&a.device) else {
                continue;
            };
            self.c.actions += 1;
            let name = a.command.name();
            match self.actions_by_command.iter_mut().find(|(n, _)| *n == name) {
                Some((_, count)) => *count += 1,
                None => self.actions_by_command.push((name, 1)),
            }
            if matches!(
                a.command,
                Command::EimEnable { .. } | Command::AgentExecuteFallback { .. }
            ) {
                self.enable_issued[n as usize] = Some(t);
            }
            if a.command.is_es2() {
                if matches!(a.command, Command::Es2DownloadOrder { .. }) {
                    self.provision_start[n as usize].get_or_insert(t);
                }
                let dims = fleet_dims(&self.fleet, &self.positions, n);
                let answers = self.es2.call(t, n, &a, &mut self.c.events, dims);
                self.later.extend(answers);
                continue;
            }
            self.outbox.push((n, a));
        }
    }

    /// Takes the shards' outputs of the window ending at `end` (to be put
    /// in order by [`Control::apply`], beside the next window), giving
    /// each shard an emptied list of an earlier window for its next one,
    /// and adds up their load changes and congestion refusals.
    pub fn collect(&mut self, shards: &mut [Shard], end: i64) -> Window {
        let outs = shards
            .iter_mut()
            .map(|s| std::mem::replace(&mut s.out, self.spare.pop().unwrap_or_default()))
            .collect();
        for s in shards.iter() {
            self.load.merge(&s.load_delta);
            for (i, r) in s.budget.refused.iter().enumerate() {
                self.bucket.congestion_refusals[i] += *r;
            }
        }
        Window { outs, end }
    }

    /// A window's outputs and those kept from earlier windows, in (time,
    /// device) order, into `self.merged`; what lies beyond the window (a
    /// download's end, an ES2+ answer) is kept for its window. The order
    /// is that of a stable sort of the kept outputs followed by each
    /// shard's: the shards sort their own lists on their threads
    /// ([`Shard::sort_out`]), so here the lists are only merged, equal keys
    /// taken from the earlier list first. (Sorting the outputs before the
    /// window's end apart gives the same order: those come first.)
    fn merge(&mut self, window: Window) {
        let Window { outs: shards, end } = window;
        let mut outs = std::mem::take(&mut self.merged);
        outs.clear();
        let mut lists = Vec::with_capacity(shards.len() + 1);
        lists.push(std::mem::take(&mut self.later));
        lists.extend(shards);
        for list in &mut lists {
            sort_outs(list);
        }
        outs.reserve(lists.iter().map(Vec::len).sum());
        merge_sorted(&mut lists, &mut outs);
        let mut emptied = lists.into_iter();
        self.later = emptied.next().unwrap_or_default();
        self.spare.extend(emptied);
        let cut = outs.partition_point(|o| o.t < end);
        self.later.extend(outs.drain(cut..));
        self.merged = outs;
    }

    /// Puts a window's outputs in order ([`Control::merge`]) and hands
    /// each, in order, to the fleet (reports, action results) and to the
    /// telemetry log, and counts registrations and completed failovers and
    /// returns.
    pub fn apply(&mut self, window: Window) -> Result<(), SimError> {
        self.merge(window);
        let mut outs = std::mem::take(&mut self.merged);
        let result = outs.drain(..).try_for_each(|o| self.apply_one(o));
        self.merged = outs;
        result
    }

    /// One output (see [`Control::apply`]).
    fn apply_one(&mut self, o: Out) -> Result<(), SimError> {
        let eid = self.eids.get(o.dev);
        let at = Timestamp(T0 + o.t);
        // The device's dimensions as the fleet has them now (before the
        // output changes its state), read only for an event.
        let (fleet, positions) = (&self.fleet, &self.positions);
        let event = |kind, activation: Option<u64>| Event {
            at,
            activation: activation.and_then(CorrelationId::new),
            device: eid,
            source: Source::Device,
            dims: fleet_dims(fleet, positions, o.dev),
            kind,
        };
        match o.kind {
            OutKind::Report(kind, activation) => {
                match &kind {
                    ReportKind::DataPath {
                        latency_ms,
                        loss_permille,
                    } => self.c.events.push(event(
                        EventKind::DataPath {
                            latency_ms: *latency_ms,
                            loss_permille: *loss_permille,
                        },
                        activation,
                    )),
                    ReportKind::ProfileSwitch { enabled, .. } => {
                        self.c.rollbacks += 1;
                        if let Some(profile) = ProfileKey::from_digits(enabled.as_str()) {
                            self.c.events.push(event(
                                EventKind::Profile {
                                    profile,
                                    change: ProfileChange::Enabled,
                                },
                                activation,
                            ));
                        }
                    }
                    _ => {}
                }
                self.fleet
                    .handle_report(&DeviceReport { device: eid, kind }, at)
                    .map_err(|e| SimError::Device(format!("fleet report: {e}")))?;
            }
            OutKind::Result(result) => {
                if let Outcome::Installed { .. } = result.outcome
                    && let Some(start) = self.provision_start[o.dev as usize].take()
                {
                    self.c.provisioned.push((o.dev, start, o.t));
                }
                self.fleet
                    .handle_result(&result, at, &mut self.fleet_rng)
                    .map_err(|e| SimError::Device(format!("fleet result: {e}")))?;
            }
            OutKind::Event(kind, activation) => {
                let e = event(kind, activation);
                if let EventKind::Registration { outcome, .. } = kind {
                    self.count_registration(&o, outcome, activation);
                }
                self.c.events.push(e);
            }
        }
        Ok(())
    }

    /// A registration in the time series; a registered one completes the
    /// failover or return it belongs to (its time measured from the
    /// decision).
    fn count_registration(
        &mut self,
        o: &Out,
        outcome: RegistrationOutcome,
        activation: Option<u64>,
    ) {
        self.bucket.registrations += 1;
        match outcome {
            RegistrationOutcome::Registered => {
                if let Some(a) = activation
                    && let Some((start, failover)) = usize::try_from(a)
                        .ok()
                        .and_then(|a| self.activation_start.get_mut(a))
                        .and_then(Option::take)
                {
                    let took = o.t - start;
                    if failover {
                        self.c.failover_completion_ms.push(took);
                        let wait = self.enable_issued[o.dev as usize]
                            .map_or(0, |at| (at - start).clamp(0, took));
                        self.c.failover_done.push((o.dev, took, wait));
                        self.bucket.failovers_done += 1;
                    } else {
                        self.c.return_completion_ms.push(took);
                        self.c.return_done.push((o.dev, took));
                        self.bucket.returns_done += 1;
                    }
                }
            }
            RegistrationOutcome::Rejected { .. } => self.bucket.rejected += 1,
            RegistrationOutcome::NoResponse => self.bucket.no_response += 1,
        }
    }

    /// The window ended at `t` (`duration` the run's) with `present`
    /// devices present: the time series' bucket is closed when full
    /// (devices attached counted from the load), and the progress bar
    /// called about every simulated minute.
    pub fn end_window(
        &mut self,
        t: i64,
        duration: i64,
        present: u64,
        progress: &mut dyn FnMut(&Progress),
    ) {
        if t - self.bucket.start >= self.bucket_ms || t >= duration {
            let attached: i64 = (0..self.carriers)
                .map(|k| self.load.attached_to(k as u8))
                .sum();
            self.bucket.without_service = present.saturating_sub(attached.max(0) as u64);
            self.bucket.attached = (0..self.carriers)
                .map(|k| self.load.attached_to(k as u8).max(0) as u64)
                .collect();
            let next = Bucket::new(t, self.carriers);
            self.c
                .buckets
                .push(std::mem::replace(&mut self.bucket, next));
        }
        if t - self.last_progress >= 60_000 || t >= duration {
            self.last_progress = t;
            let without_service = self.c.buckets.last().map_or(0, |b| b.without_service);
            progress(&Progress {
                sim_ms: t,
                duration_ms: duration,
                without_service,
                switches: self.c.failovers + self.c.returns,
            });
        }
    }
}

/// Sorts `outs` by (time, device), stably, unless they are in that order.
pub(crate) fn sort_outs(outs: &mut [Out]) {
    if !outs.is_sorted_by_key(|o| (o.t, o.dev)) {
        outs.sort_by_key(|o| (o.t, o.dev));
    }
}

/// Moves the outputs of `lists` (each in (time, device) order) into
/// `into` in (time, device) order, an output of an earlier list before an
/// equal one of a later list: the order of a stable sort of the lists one
/// after the other. The lists are left empty (with their buffers).
fn merge_sorted(lists: &mut [Vec<Out>], into: &mut Vec<Out>) {
    let mut heads: Vec<_> = lists.iter_mut().map(|l| l.drain(..).peekable()).collect();
    loop {
        let mut best: Option<(usize, (i64, u32))> = None;
        let mut open = 0;
        for (i, head) in heads.iter_mut().enumerate() {
            if let Some(o) = head.peek() {
                open += 1;
                let key = (o.t, o.dev);
                if best.is_none_or(|(_, b)| key < b) {
                    best = Some((i, key));
                }
            }
        }
        match best {
            None => break,
            // One list left: the rest of it as it is.
            Some((i, _)) if open == 1 => {
                into.extend(heads[i].by_ref());
                break;
            }
            Some((i, _)) => into.extend(heads[i].next()),
        }
    }
}

/// The scenario's outage declarations to the fleet (start and end, per
/// declared area), by time.
fn declarations(scenario: &Scenario) -> Vec<Declaration> {
    let mut declarations = Vec::new();
    for o in &scenario.outages {
        let regions: Vec<Option<String>> = if o.areas.is_empty() {
            vec![None]
        } else {
            o.areas.iter().cloned().map(Some).collect()
        };
        for r in regions {
            if let Some(after) = o.declare_after {
                declarations.push((
                    o.start.millis_i64() + after.millis_i64(),
                    true,
                    o.carrier.clone(),
                    r.clone(),
                ));
                let end_after = o.declare_end_after.map_or(0, |s| s.millis_i64());
                declarations.push((o.end.millis_i64() + end_after, false, o.carrier.clone(), r));
            }
        }
    }
    declarations.sort_by_key(|d| d.0);
    declarations
}

/// An ES2+ call's round trip between the fleet and an SM-DP+ (HTTPS
/// between two data centres), besides the SM-DP+'s own time.
pub(super) const ES2_ROUND_TRIP_MS: i64 = 100;

/// The fleet's ES2+ calls at the scenario's SM-DP+.
pub(super) struct Es2<'a> {
    pub downloads: Option<&'a Downloads>,
    pub carriers: Vec<String>,
    /// Each catalog profile type: its carrier's name, the SM-DP+'s name
    /// for it, and the carrier's network.
    pub profile_types: Vec<(String, String, Option<u8>)>,
    pub took_ms: i64,
}

impl<'a> Es2<'a> {
    /// The ES2+ side of a run over `population` (its SM-DP+'s time).
    pub fn new(
        downloads: Option<&'a Downloads>,
        carriers: Vec<String>,
        profile_types: Vec<(String, String, Option<u8>)>,
        population: &Population,
    ) -> Self {
        Self {
            downloads,
            carriers,
            profile_types,
            took_ms: ES2_ROUND_TRIP_MS + population.es9_server_ms,
        }
    }

    /// Carries out `a` (downloadOrder or confirmOrder) at `t`: its result
    /// and the ES2+ step for telemetry, stamped when the answer arrives.
    fn call(&self, t: i64, n: u32, a: &Action, events: &mut Vec<Event>, dims: Dims) -> Vec<Out> {
        let now = Timestamp(T0 + t);
        let call = format!("fleet-{}", a.id.0);
        let (function, outcome) = match (&a.command, self.downloads) {
            (_, None) => (Function::Es2DownloadOrder, Err("no SM-DP+".to_owned())),
            (Command::Es2DownloadOrder { profile_type, .. }, Some(d)) => {
                let (carrier, name, _) = &self.profile_types[profile_type.index()];
                (
                    Function::Es2DownloadOrder,
                    d.fleet_order(carrier, name, &call, now)
                        .map(|iccid| Outcome::OrderReserved { iccid }),
                )
            }
            (Command::Es2ConfirmOrder { carrier, iccid, .. }, Some(d)) => (
                Function::Es2ConfirmOrder,
                d.fleet_confirm(&self.carriers[carrier.index()], iccid, &call, now)
                    .and_then(|m| {
                        ferrosim_ids::MatchingId::new(&m)
                            .map(|matching_id| Outcome::OrderConfirmed { matching_id })
                            .map_err(|e| e.to_string())
                    }),
            ),
            _ => (Function::Es2DownloadOrder, Err("not ES2+".to_owned())),
        };
        let at = t + self.took_ms;
        let status = match &outcome {
            Ok(_) => StepStatus::Ok,
            Err(code) => code
                .parse::<StatusCode>()
                .map_or(StepStatus::Unreachable, StepStatus::Failed),
        };
        events.push(Event {
            at: ferrosim_telemetry::Timestamp(T0 + at),
            activation: a.correlation(),
            device: a.device,
            source: Source::Smdp,
            dims,
            kind: EventKind::Step {
                function,
                status,
                duration_ms: u32::try_from(self.took_ms).unwrap_or(u32::MAX),
                signalling_bytes: 0,
                bpp_bytes: 0,
            },
        });
        let outcome = outcome.unwrap_or_else(|code| Outcome::Failed {
            failure: match code.parse::<StatusCode>() {
                Ok(code) => Failure::Es2 { code },
                Err(()) => Failure::Unreachable,
            },
            retryable: true,
        });
        vec![Out {
            t: at,
            dev: n,
            kind: OutKind::Result(ActionResult {
                id: a.id,
                device: a.device,
                outcome,
            }),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output at `t` of device `dev`, told apart by `tag`.
    fn out(t: i64, dev: u32, tag: u32) -> Out {
        Out {
            t,
            dev,
            kind: OutKind::Event(
                EventKind::DataPath {
                    latency_ms: tag,
                    loss_permille: 0,
                },
                None,
            ),
        }
    }

    fn tags(outs: &[Out]) -> Vec<(i64, u32, u32)> {
        outs.iter()
            .map(|o| match o.kind {
                OutKind::Event(EventKind::DataPath { latency_ms, .. }, _) => {
                    (o.t, o.dev, latency_ms)
                }
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn merging_sorted_lists_is_a_stable_sort_of_them_one_after_the_other() {
        // Equal keys within a list and across lists, an empty list, lists
        // out of order before their sort.
        let lists = vec![
            vec![out(5, 1, 0), out(3, 2, 1), out(5, 1, 2)],
            vec![],
            vec![out(5, 1, 3), out(1, 0, 4), out(3, 2, 5), out(9, 9, 6)],
            vec![out(3, 1, 7), out(5, 1, 8), out(0, 4, 9)],
        ];
        let mut expected: Vec<Out> = lists.iter().flatten().cloned().collect();
        expected.sort_by_key(|o| (o.t, o.dev));
        let mut lists = lists;
        for list in &mut lists {
            sort_outs(list);
        }
        let mut merged = Vec::new();
        merge_sorted(&mut lists, &mut merged);
        assert_eq!(tags(&merged), tags(&expected));
        assert!(lists.iter().all(Vec::is_empty));
    }
}
