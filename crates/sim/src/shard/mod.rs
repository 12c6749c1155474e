//! A shard: a slice of the devices with its own event queue and random
//! generator, advanced one window at a time.
//!
//! Within a window a shard reads only what does not change during it (the
//! network model, the city's load at the window's start, the actions the
//! control plane sent at the window's start) and its own devices; it talks
//! to the eIM only about its own devices. What it produces (reports to the
//! fleet, results of actions, telemetry) is stamped with simulated time and
//! merged by the engine in (time, device) order. So the shards can run on
//! several cores and the run stays the same for the same seed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use ferrosim_fleet::report::{Registration, ReportKind, SwitchCause};
use ferrosim_fleet::{Action, ActionResult, Outcome};
use ferrosim_ids::{Iccid, Timestamp};
use ferrosim_telemetry::{EventKind, ProfileKey, RegistrationOutcome};
use rand::RngExt;
use rand::rngs::StdRng;

use crate::error::SimError;
use crate::iot::{Factory, IotCard};
use crate::network::{ATTACH_TIMEOUT_MS, Attach, AttachBudget, CarrierIx, Load, Network};
use crate::population::{DeviceSeed, Population};

mod actions;
mod phone;
mod provision;

pub use phone::{DownloadEnd, DownloadJob};

/// Attempts on a newly enabled profile before the IPA rolls back.
const ROLLBACK_AFTER: u8 = 3;

/// What a shard hands the control plane, stamped with simulated time.
#[derive(Debug, Clone)]
pub struct Out {
    /// When (ms from the start).
    pub t: i64,
    /// The device (global index).
    pub dev: u32,
    /// What.
    pub kind: OutKind,
}

/// The kinds of output.
#[derive(Debug, Clone)]
pub enum OutKind {
    /// A connectivity report for the fleet (and telemetry).
    Report(ReportKind, Option<u64>),
    /// The result of an action.
    Result(ActionResult),
    /// A telemetry event only.
    Event(EventKind, Option<u64>),
}

/// Read-only context of a window.
pub struct Ctx<'a> {
    /// The networks.
    pub network: &'a Network,
    /// The city's load at the window's start.
    pub load: &'a Load,
    /// The population parameters.
    pub population: &'a Population,
    /// The eIM and the eUICC factory.
    pub factory: &'a Factory,
    /// The SM-DP+ of consumer phones, when the scenario has some.
    pub downloads: Option<&'a crate::consumer::Downloads>,
    /// The scenario's epoch.
    pub t0: i64,
    /// Per APN setting of the fleet catalog (by its index): whether its
    /// carrier's core serves that APN.
    pub apn_served: &'a [bool],
    /// Per profile type of the fleet catalog (by its index): its carrier's
    /// network.
    pub type_carrier: &'a [Option<CarrierIx>],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// The device arrives (switches on).
    Arrive,
    /// The device checks its network (and attempts to register if needed),
    /// on the profile of this generation.
    Check(u16),
    /// The network answers an attempt made on the profile of this generation.
    Attached(AttachKey, u16),
    /// A data-path check completes.
    DataCheck,
    /// The IPA polls the eIM.
    Poll,
    /// A consumer scans the QR code: the LPA downloads the profile.
    Download,
    /// The device leaves (its `stay` is over).
    Leave,
    /// The device agent re-attaches with new APN settings (the default
    /// bearer's APN is set at attach).
    Reattach,
}

/// A queued event: when (ms), its sequence number, the device (local
/// index), what.
type Item = (i64, u64, u32, Ev);

/// [`Attach`] in a form that orders (for the heap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum AttachKey {
    Registered,
    Rejected(u16),
    NoResponse,
}

struct Pending {
    action: Action,
    /// The profile enabled before an enable, and the rollback flag, once
    /// the enable ran: the device is trying the new profile.
    trying: Option<(u8, bool, u8)>,
}

struct Device {
    seed: DeviceSeed,
    /// Its profiles: ICCID and carrier.
    profiles: Vec<(Iccid, CarrierIx)>,
    enabled: u8,
    present: bool,
    /// It left (after its `stay`): no more events.
    left: bool,
    /// The APN setting (catalog index) its agent last took, for which
    /// profile (index into `profiles`).
    apn: Option<(u8, u16)>,
    registered: bool,
    /// Registration attempts since the last success.
    attempts: u16,
    /// A check is queued.
    check_queued: bool,
    /// Grows at every profile switch: events about an earlier profile are
    /// stale.
    generation: u16,
    card: Option<Box<IotCard>>,
    pending: Option<Box<Pending>>,
    /// A consumer phone's activation (download, then registration) under
    /// way: its telemetry correlation id.
    activation: Option<u64>,
    /// Its download is queued to run with the window's others: its events
    /// wait until the download's end is applied.
    downloading: bool,
}

/// One shard.
pub struct Shard {
    index: usize,
    devices: Vec<Device>,
    /// Devices present (kept as they arrive and leave).
    present_count: u64,
    /// Events before `horizon`, in (time, sequence) order.
    heap: BinaryHeap<Reverse<Item>>,
    /// Events at or after `horizon`, by window (their time over the
    /// window's length), moved to the heap when their window comes: the
    /// heap stays the size of a window's events, not the run's. As the
    /// order of the heap is total (each event has its own sequence
    /// number), the events are handled in the same order as from one heap.
    calendar: std::collections::BTreeMap<i64, Vec<Item>>,
    /// The time before which every queued event is in the heap.
    horizon: i64,
    /// The windows' length (ms), the calendar's slot.
    window_ms: i64,
    /// Events of devices whose download is queued, back to the heap when
    /// the downloads' ends are applied.
    waiting: Vec<Item>,
    /// Downloads started in this window and not yet run.
    downloads_due: Vec<DownloadJob>,
    seq: u64,
    rng: StdRng,
    /// Attach budget of this window.
    pub budget: AttachBudget,
    /// This window's changes of attached devices.
    pub load_delta: Load,
    /// Output of this window.
    pub out: Vec<Out>,
    inbox: Vec<(u32, Action)>,
    shards: usize,
    /// Devices whose eUICC was made (materialised) so far.
    pub cards_made: u64,
    /// Actions the simulator cannot serve (ES2+ and downloads need an
    /// SM-DP+, device-agent commands a device agent), by command name.
    pub unserved: Vec<(&'static str, u64)>,
    /// Consumer downloads ended: installed and enabled, failed (by cause).
    pub downloads_done: u64,
    /// Failed downloads by cause.
    pub download_failures: Vec<(String, u64)>,
    /// Virtual time of each completed download, from the scan to the
    /// profile enabled (ms).
    pub download_ms: Vec<i64>,
    /// Devices whose device agent holds an APN their carrier does not
    /// serve for a profile: the profile and since when.
    bad_apn: std::collections::HashMap<u32, (Iccid, i64)>,
    /// Devices that used such an APN on their enabled profile: global
    /// index, and the time it spent so (ms).
    pub bad_apn_exposure: Vec<(u32, i64)>,
    /// ES9+ calls of the IoT devices' downloads.
    pub fleet_download_steps: u64,
    /// How long each notification the IPAs handed on had waited on its
    /// eUICC for the device to have service again (ms).
    pub notification_wait_ms: Vec<i64>,
}

impl Shard {
    /// Shard `index` of `shards`, holding devices `index`, `index +
    /// shards`, ... of the population (as `seeds`, every device's by
    /// device number, have them), with its generator seeded from the run's
    /// seed.
    pub fn new(
        index: usize,
        shards: usize,
        population: &Population,
        seeds: &[DeviceSeed],
        network: &Network,
        window_ms: u64,
        seed: u64,
    ) -> Self {
        let mut devices = Vec::with_capacity(seeds.len().div_ceil(shards.max(1)));
        let mut queued: Vec<Item> = Vec::with_capacity(devices.capacity());
        let mut load_delta = Load::new(network.carriers(), network.areas());
        let mut seq = 0;
        let mut present_count = 0;
        for seed_ in seeds.iter().skip(index).step_by(shards.max(1)) {
            let seed_ = seed_.clone();
            // A consumer phone arrives (and scans) even when there from the start.
            let present = seed_.arrival_ms == 0 && !seed_.consumer;
            let profiles = seed_.profiles.clone();
            if present {
                present_count += 1;
                load_delta.add(profiles[0].1, seed_.area, 1);
                if population.stay_ms > 0 {
                    queued.push((population.stay_ms, seq, devices.len() as u32, Ev::Leave));
                    seq += 1;
                }
            } else {
                queued.push((seed_.arrival_ms, seq, devices.len() as u32, Ev::Arrive));
                seq += 1;
            }
            devices.push(Device {
                seed: seed_,
                profiles,
                enabled: 0,
                present,
                left: false,
                apn: None,
                registered: present,
                attempts: 0,
                check_queued: false,
                generation: 0,
                card: None,
                pending: None,
                activation: None,
                downloading: false,
            });
        }
        let slot_ms = i64::try_from(window_ms).unwrap_or(i64::MAX).max(1);
        let mut shard = Self {
            index,
            devices,
            present_count,
            heap: BinaryHeap::new(),
            calendar: std::collections::BTreeMap::new(),
            horizon: 0,
            window_ms: slot_ms,
            waiting: Vec::new(),
            downloads_due: Vec::new(),
            seq,
            rng: <StdRng as rand::SeedableRng>::seed_from_u64(
                seed ^ (0x5348_4152_4400_0000 + index as u64),
            ),
            budget: network.budget(window_ms, shards),
            load_delta,
            out: Vec::new(),
            inbox: Vec::new(),
            shards,
            cards_made: 0,
            unserved: Vec::new(),
            downloads_done: 0,
            download_failures: Vec::new(),
            download_ms: Vec::new(),
            bad_apn: std::collections::HashMap::new(),
            bad_apn_exposure: Vec::new(),
            fleet_download_steps: 0,
            notification_wait_ms: Vec::new(),
        };
        for item in queued {
            shard.queue(item);
        }
        shard
    }

    /// Devices in this shard.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Notifications the eUICCs of this shard signed, and of those the
    /// ones still pending (not handed on: the device had no service since).
    pub fn notifications(&self) -> (u64, u64) {
        self.devices
            .iter()
            .filter_map(|d| d.card.as_deref())
            .fold((0, 0), |(s, p), c| {
                (s + c.notifications_signed(), p + c.pending_notifications())
            })
    }

    /// Whether it has no device.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Devices present and not registered.
    pub fn without_service(&self) -> u64 {
        self.devices
            .iter()
            .filter(|d| d.present && !d.registered)
            .count() as u64
    }

    /// Devices present (arrived).
    pub fn present(&self) -> u64 {
        self.present_count
    }

    /// Whether anything is due before `end` (an action, a queued event).
    pub fn has_work_before(&self, end: i64) -> bool {
        !self.inbox.is_empty()
            || self.heap.peek().is_some_and(|Reverse((t, ..))| *t < end)
            || self
                .calendar
                .range(..end.div_euclid(self.window_ms) + 1)
                .any(|(_, items)| items.iter().any(|i| i.0 < end))
    }

    /// Puts this window's output in (time, device) order (a stable sort;
    /// nothing to do when it is in order), so that the control plane only
    /// merges the shards' lists.
    pub fn sort_out(&mut self) {
        crate::engine::sort_outs(&mut self.out);
    }

    /// Hands the shard an action for one of its devices (delivered at the
    /// next window's start).
    pub fn deliver(&mut self, global: u32, action: Action) {
        self.inbox.push((global, action));
    }

    fn local(&self, global: u32) -> usize {
        global as usize / self.shards
    }

    fn global(&self, local: usize) -> u32 {
        (local * self.shards + self.index) as u32
    }

    fn push(&mut self, t: i64, local: usize, ev: Ev) {
        self.queue((t, self.seq, local as u32, ev));
        self.seq += 1;
    }

    /// Queues an event: in the heap when before the horizon, else in its
    /// window's calendar slot.
    fn queue(&mut self, item: Item) {
        if item.0 < self.horizon {
            self.heap.push(Reverse(item));
        } else {
            self.calendar
                .entry(item.0.div_euclid(self.window_ms))
                .or_default()
                .push(item);
        }
    }

    /// Moves the events of the windows that start before `end` from the
    /// calendar to the heap.
    fn advance(&mut self, end: i64) {
        let slots = end.div_euclid(self.window_ms) + i64::from(end % self.window_ms != 0);
        while let Some(slot) = self.calendar.first_entry() {
            if *slot.key() >= slots {
                break;
            }
            self.heap.extend(slot.remove().into_iter().map(Reverse));
        }
        self.horizon = self.horizon.max(slots.saturating_mul(self.window_ms));
    }

    fn emit(&mut self, t: i64, local: usize, kind: OutKind) {
        let dev = self.global(local);
        self.out.push(Out { t, dev, kind });
    }

    /// Runs the window `[start, end)`: network changes, the actions
    /// delivered, then every queued event before `end` ([`Shard::run_events`]).
    pub fn run_window(&mut self, start: i64, end: i64, ctx: &Ctx<'_>) -> Result<(), SimError> {
        self.out.clear();
        self.load_delta.clear();
        self.budget.refill();
        self.advance(end);
        for (t, carrier, areas) in ctx.network.changes() {
            if t >= start && t < end {
                self.network_change(t, carrier, &areas, ctx);
            }
        }
        for (global, action) in std::mem::take(&mut self.inbox) {
            self.start_action(start, global, action, ctx)?;
        }
        self.run_events(end, ctx)
    }

    /// Handles every queued event before `end`, in time order; the events
    /// of a phone whose download is queued ([`Shard::take_downloads`]) wait
    /// for its end. Called again after the downloads' ends are applied
    /// when events before `end` remain.
    pub fn run_events(&mut self, end: i64, ctx: &Ctx<'_>) -> Result<(), SimError> {
        while self.heap.peek().is_some_and(|Reverse((t, ..))| *t < end) {
            let Some(Reverse(item)) = self.heap.pop() else {
                break;
            };
            let (t, _, local, ev) = item;
            if self.devices[local as usize].downloading {
                self.waiting.push(item);
                continue;
            }
            self.handle(t, local as usize, ev, ctx)?;
        }
        Ok(())
    }

    /// Devices on `carrier` in the areas hit notice the change within
    /// `detect_within`.
    fn network_change(&mut self, t: i64, carrier: CarrierIx, areas: &[bool], ctx: &Ctx<'_>) {
        let within = ctx.population.detect_within_ms().max(1);
        for local in 0..self.devices.len() {
            let d = &self.devices[local];
            if !d.present || d.check_queued || !areas[usize::from(d.seed.area)] || !d.installed() {
                continue;
            }
            if d.profiles[usize::from(d.enabled)].1 != carrier {
                continue;
            }
            let at = t + self.rng.random_range(0..within);
            self.devices[local].check_queued = true;
            let generation = self.devices[local].generation;
            self.push(at, local, Ev::Check(generation));
        }
    }

    fn handle(&mut self, t: i64, local: usize, ev: Ev, ctx: &Ctx<'_>) -> Result<(), SimError> {
        if self.devices[local].left {
            return Ok(());
        }
        match ev {
            Ev::Reattach => {
                if self.devices[local].present {
                    self.switch_to(local, self.devices[local].enabled);
                    self.attempt(t, local, ctx);
                }
            }
            Ev::Leave => {
                self.deregister(local);
                let d = &mut self.devices[local];
                if d.present {
                    self.present_count -= 1;
                }
                d.present = false;
                d.left = true;
                d.check_queued = false;
                d.generation = d.generation.wrapping_add(1);
            }
            Ev::Arrive => {
                if !self.devices[local].present {
                    self.present_count += 1;
                }
                self.devices[local].present = true;
                self.devices[local].registered = false;
                let stay = ctx.population.stay_ms;
                if stay > 0 {
                    self.push(t + stay, local, Ev::Leave);
                }
                if self.devices[local].seed.consumer {
                    let at = t + ctx.population.scan_delay_ms(&mut self.rng);
                    self.push(at, local, Ev::Download);
                } else {
                    self.attempt(t, local, ctx);
                }
            }
            Ev::Download => self.download(t, local, ctx)?,
            Ev::Check(generation) => {
                if generation != self.devices[local].generation {
                    return Ok(());
                }
                self.devices[local].check_queued = false;
                let d = &self.devices[local];
                let carrier = d.profiles[usize::from(d.enabled)].1;
                if d.registered {
                    let outage = ctx.network.outage(carrier, d.seed.area, t);
                    if outage > 0.0 && self.rng.random::<f64>() < outage {
                        self.deregister(local);
                        self.attempt(t, local, ctx);
                    }
                } else {
                    self.attempt(t, local, ctx);
                }
            }
            Ev::Attached(answer, generation) => {
                if generation == self.devices[local].generation {
                    self.attached(t, local, answer, ctx)?;
                }
            }
            Ev::DataCheck => {
                let d = &self.devices[local];
                if d.registered {
                    let carrier = d.profiles[usize::from(d.enabled)].1;
                    let (latency_ms, mut loss_permille) =
                        ctx.network
                            .data_path(carrier, d.seed.area, t, ctx.load, &mut self.rng);
                    if self.on_bad_apn(local) {
                        // The core refuses the PDN connection: no data at all.
                        loss_permille = 1000;
                    }
                    let activation = d.pending.as_ref().and_then(|p| p.action.activation);
                    let kind = if d.seed.consumer {
                        // Not a fleet device: telemetry only.
                        OutKind::Event(
                            EventKind::DataPath {
                                latency_ms,
                                loss_permille,
                            },
                            activation,
                        )
                    } else {
                        OutKind::Report(
                            ReportKind::DataPath {
                                latency_ms,
                                loss_permille,
                            },
                            activation,
                        )
                    };
                    self.emit(t, local, kind);
                }
            }
            Ev::Poll => self.poll(t, local, ctx)?,
        }
        Ok(())
    }

    /// Whether the device's enabled profile has an APN its carrier does not
    /// serve.
    fn on_bad_apn(&self, local: usize) -> bool {
        let d = &self.devices[local];
        self.bad_apn
            .get(&(local as u32))
            .is_some_and(|(iccid, _)| *iccid == d.profiles[usize::from(d.enabled)].0)
    }

    /// The device agent now uses an APN for `iccid` that the carrier
    /// serves or not; whether that changed anything.
    pub(super) fn set_apn(&mut self, t: i64, local: usize, iccid: &Iccid, served: bool) -> bool {
        let key = local as u32;
        match (served, self.bad_apn.get(&key)) {
            (false, Some((held, _))) if held == iccid => false,
            (false, _) => {
                self.end_bad_apn(t, local);
                self.bad_apn.insert(key, (iccid.clone(), t));
                true
            }
            (true, Some((held, _))) if held == iccid => {
                self.end_bad_apn(t, local);
                true
            }
            (true, _) => false,
        }
    }

    fn end_bad_apn(&mut self, t: i64, local: usize) {
        if let Some((_, since)) = self.bad_apn.remove(&(local as u32)) {
            let global = self.global(local);
            self.bad_apn_exposure.push((global, t - since));
        }
    }

    /// Closes the exposures still open at the end of the run; the devices
    /// they belong to (global indices).
    pub fn close_bad_apns(&mut self, end: i64) -> Vec<u32> {
        let mut open: Vec<u32> = self.bad_apn.keys().copied().collect();
        open.sort_unstable();
        let globals = open.iter().map(|l| self.global(*l as usize)).collect();
        for local in open {
            self.end_bad_apn(end, local as usize);
        }
        globals
    }

    /// Enables profile `idx` on the device's side: off the old network,
    /// earlier attempts stale.
    fn switch_to(&mut self, local: usize, idx: u8) {
        self.deregister(local);
        let d = &mut self.devices[local];
        d.enabled = idx;
        d.attempts = 0;
        d.generation = d.generation.wrapping_add(1);
        d.check_queued = false;
    }

    fn deregister(&mut self, local: usize) {
        let d = &mut self.devices[local];
        if d.registered {
            d.registered = false;
            let carrier = d.profiles[usize::from(d.enabled)].1;
            self.load_delta.add(carrier, d.seed.area, -1);
        }
    }

    /// A registration attempt on the enabled profile's network.
    fn attempt(&mut self, t: i64, local: usize, ctx: &Ctx<'_>) {
        let d = &self.devices[local];
        let carrier = d.profiles[usize::from(d.enabled)].1;
        let modem = ctx.population.vendor(d.seed.vendor).modem_failure;
        let answer = ctx.network.register(
            carrier,
            d.seed.area,
            t,
            ctx.load,
            &mut self.budget,
            modem,
            &mut self.rng,
        );
        let (at, key) = match answer {
            Attach::Registered { latency_ms } => (t + i64::from(latency_ms), AttachKey::Registered),
            Attach::Rejected { cause, latency_ms } => {
                (t + i64::from(latency_ms), AttachKey::Rejected(cause))
            }
            Attach::NoResponse => (t + i64::from(ATTACH_TIMEOUT_MS), AttachKey::NoResponse),
        };
        self.devices[local].check_queued = true;
        let generation = self.devices[local].generation;
        self.push(at, local, Ev::Attached(key, generation));
    }

    fn attached(
        &mut self,
        t: i64,
        local: usize,
        answer: AttachKey,
        ctx: &Ctx<'_>,
    ) -> Result<(), SimError> {
        self.devices[local].check_queued = false;
        let activation = self.devices[local]
            .pending
            .as_ref()
            .and_then(|p| p.action.activation)
            .or(self.devices[local].activation);
        let outcome = match answer {
            AttachKey::Registered => Registration::Registered,
            AttachKey::Rejected(cause) => Registration::Rejected { cause },
            AttachKey::NoResponse => Registration::NoResponse,
        };
        let profile = {
            let d = &self.devices[local];
            ProfileKey::from_digits(d.profiles[usize::from(d.enabled)].0.as_str())
        };
        self.emit(
            t,
            local,
            OutKind::Event(
                EventKind::Registration {
                    profile,
                    outcome: telemetry_outcome(outcome),
                },
                activation,
            ),
        );
        if !self.devices[local].seed.consumer {
            self.emit(
                t,
                local,
                OutKind::Report(
                    ReportKind::Registration {
                        outcome,
                        plmn: None,
                    },
                    activation,
                ),
            );
        }
        if outcome == Registration::Registered {
            let d = &mut self.devices[local];
            d.activation = None;
            d.registered = true;
            d.attempts = 0;
            let carrier = d.profiles[usize::from(d.enabled)].1;
            self.load_delta.add(carrier, d.seed.area, 1);
            let latency = self.rng.random_range(50..500);
            self.push(t + latency, local, Ev::DataCheck);
            // With service again, the IPA hands on what its eUICC signed
            // meanwhile (a switch's disable and enable notifications).
            if let Some(card) = self.devices[local].card.as_mut()
                && card.pending_notifications() > 0
            {
                let waited = card.hand_on_notifications(Timestamp(ctx.t0 + t), &mut self.rng)?;
                self.notification_wait_ms.extend(waited);
            }
            // A profile being tried now works: the enable is done.
            if let Some(p) = self.devices[local].pending.take_if(|p| p.trying.is_some()) {
                self.emit(
                    t,
                    local,
                    OutKind::Result(ActionResult {
                        id: p.action.id,
                        device: p.action.device,
                        outcome: Outcome::Done,
                    }),
                );
            }
            return Ok(());
        }
        let d = &mut self.devices[local];
        d.attempts = d.attempts.saturating_add(1);
        let attempts = d.attempts;
        // Trying a new profile with rollback: go back after a few failures.
        if let Some(p) = d.pending.as_mut()
            && let Some((previous, rollback, tries)) = p.trying.as_mut()
        {
            *tries += 1;
            if *rollback && *tries >= ROLLBACK_AFTER {
                let previous = *previous;
                let p = self.devices[local].pending.take().expect("checked above");
                self.rollback(t, local, previous, &p.action, ctx)?;
                return Ok(());
            }
        }
        let give_up = ctx.population.give_up_after();
        if give_up > 0 && u32::from(attempts) >= give_up {
            return Ok(());
        }
        let delay = ctx.population.retry_delay_ms(attempts, &mut self.rng);
        self.devices[local].check_queued = true;
        let generation = self.devices[local].generation;
        self.push(t + delay, local, Ev::Check(generation));
        Ok(())
    }

    /// The IPA goes back to `previous` (ProfileRollback) and reports it.
    fn rollback(
        &mut self,
        t: i64,
        local: usize,
        previous: u8,
        action: &Action,
        ctx: &Ctx<'_>,
    ) -> Result<(), SimError> {
        let now = Timestamp(ctx.t0 + t);
        let iccid = self.devices[local].profiles[usize::from(previous)]
            .0
            .clone();
        if let Some(card) = self.devices[local].card.as_mut() {
            card.enable_local(&iccid, now, &mut self.rng, &ctx.factory.ec)?;
        }
        self.switch_to(local, previous);
        self.emit(
            t,
            local,
            OutKind::Report(
                ReportKind::ProfileSwitch {
                    enabled: iccid,
                    cause: SwitchCause::RolledBack,
                },
                action.activation,
            ),
        );
        self.emit(
            t,
            local,
            OutKind::Result(ActionResult {
                id: action.id,
                device: action.device,
                outcome: Outcome::RolledBack,
            }),
        );
        self.attempt(t, local, ctx);
        Ok(())
    }
}

impl Device {
    /// Whether it holds its profile (a consumer phone only once downloaded).
    fn installed(&self) -> bool {
        !self.seed.consumer || self.generation > 0
    }
}

fn telemetry_outcome(r: Registration) -> RegistrationOutcome {
    match r {
        Registration::Registered => RegistrationOutcome::Registered,
        Registration::Rejected { cause } => RegistrationOutcome::Rejected { cause },
        Registration::NoResponse => RegistrationOutcome::NoResponse,
    }
}
