//! The carriers' networks: cells per area with a capacity, registration
//! success and latency as a function of load, outages by area with a start
//! and an end, and the attach rate a core takes (signalling limit).
//!
//! The model is read by the shards while a window runs and changed only
//! between windows: the load each shard sees is the city's load at the end
//! of the previous window ([`Load`]), and each shard gets an equal share of
//! every core's attach budget for the window ([`AttachBudget`]). So a run
//! does not depend on how the shards interleave.

use std::collections::HashMap;

use rand::RngExt;
use rand::rngs::StdRng;

use crate::scenario::{CarrierNetwork, Scenario};

/// EMM cause 22: congestion (3GPP TS 24.301 Annex A), what a core answers
/// past its attach rate or when its cells are overloaded.
pub const CAUSE_CONGESTION: u16 = 22;
/// How long a device waits for an attach answer before counting it lost
/// (T3410, 15 s).
pub const ATTACH_TIMEOUT_MS: u32 = 15_000;

/// A carrier index (order of the scenario's `[[carrier]]`).
pub type CarrierIx = u8;
/// An area index (order of the scenario's `[[area]]`).
pub type AreaIx = u16;

/// The answer of the network to one registration attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// Registered after this many ms.
    Registered {
        /// Latency (ms).
        latency_ms: u32,
    },
    /// Rejected with a cause after this many ms.
    Rejected {
        /// EMM cause.
        cause: u16,
        /// Latency (ms).
        latency_ms: u32,
    },
    /// No answer (the device gives up after [`ATTACH_TIMEOUT_MS`]).
    NoResponse,
}

#[derive(Debug, Clone)]
struct OutageSpan {
    carrier: CarrierIx,
    /// Per area: hit or not.
    areas: Vec<bool>,
    start: i64,
    end: i64,
    severity: f64,
}

/// The networks of one scenario.
#[derive(Debug, Clone)]
pub struct Network {
    carriers: Vec<CarrierNetwork>,
    by_name: HashMap<String, CarrierIx>,
    areas: usize,
    outages: Vec<OutageSpan>,
}

/// Devices attached per carrier and area at the end of the last window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Load {
    areas: usize,
    attached: Vec<i64>,
}

impl Load {
    /// Zero load for `carriers` × `areas`.
    pub fn new(carriers: usize, areas: usize) -> Self {
        Self {
            areas,
            attached: vec![0; carriers * areas],
        }
    }

    /// Devices attached to `carrier` in `area`.
    pub fn attached(&self, carrier: CarrierIx, area: AreaIx) -> i64 {
        self.attached[usize::from(carrier) * self.areas + usize::from(area)]
    }

    /// Devices attached to `carrier` in every area.
    pub fn attached_to(&self, carrier: CarrierIx) -> i64 {
        let c = usize::from(carrier) * self.areas;
        self.attached[c..c + self.areas].iter().sum()
    }

    /// Adds `delta` devices to `carrier` in `area` (a shard's changes of
    /// one window, merged between windows).
    pub fn add(&mut self, carrier: CarrierIx, area: AreaIx, delta: i64) {
        self.attached[usize::from(carrier) * self.areas + usize::from(area)] += delta;
    }

    /// Adds another shard's changes.
    pub fn merge(&mut self, other: &Load) {
        for (a, b) in self.attached.iter_mut().zip(&other.attached) {
            *a += b;
        }
    }

    /// Resets to zero (a shard's change counter after a merge).
    pub fn clear(&mut self) {
        self.attached.iter_mut().for_each(|a| *a = 0);
    }
}

/// The attaches one shard may still send to each core in this window.
#[derive(Debug, Clone)]
pub struct AttachBudget {
    left: Vec<u32>,
    per_window: Vec<u32>,
    /// Attempts refused for the budget, per carrier (for the report).
    pub refused: Vec<u64>,
    /// Attempts made, per carrier.
    pub attempts: Vec<u64>,
}

impl AttachBudget {
    /// Starts a new window.
    pub fn refill(&mut self) {
        self.left.copy_from_slice(&self.per_window);
        self.refused.iter_mut().for_each(|r| *r = 0);
        self.attempts.iter_mut().for_each(|r| *r = 0);
    }
}

impl Network {
    /// The networks of `scenario` (already validated).
    pub fn new(scenario: &Scenario) -> Self {
        let by_name: HashMap<String, CarrierIx> = scenario
            .carriers
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i as CarrierIx))
            .collect();
        let area_ix: HashMap<&str, usize> = scenario
            .areas
            .iter()
            .enumerate()
            .map(|(i, a)| (a.name.as_str(), i))
            .collect();
        let outages = scenario
            .outages
            .iter()
            .filter_map(|o| {
                let carrier = *by_name.get(&o.carrier)?;
                let mut areas = vec![o.areas.is_empty(); scenario.areas.len()];
                for a in &o.areas {
                    if let Some(&i) = area_ix.get(a.as_str()) {
                        areas[i] = true;
                    }
                }
                Some(OutageSpan {
                    carrier,
                    areas,
                    start: o.start.millis_i64(),
                    end: o.end.millis_i64(),
                    severity: o.severity,
                })
            })
            .collect();
        Self {
            carriers: scenario.carriers.clone(),
            by_name,
            areas: scenario.areas.len(),
            outages,
        }
    }

    /// Number of carriers.
    pub fn carriers(&self) -> usize {
        self.carriers.len()
    }

    /// Number of areas.
    pub fn areas(&self) -> usize {
        self.areas
    }

    /// A carrier's index by name.
    pub fn carrier(&self, name: &str) -> Option<CarrierIx> {
        self.by_name.get(name).copied()
    }

    /// A carrier's name.
    pub fn carrier_name(&self, c: CarrierIx) -> &str {
        &self.carriers[usize::from(c)].name
    }

    /// Devices one area of a carrier serves before congesting.
    pub fn capacity(&self, c: CarrierIx) -> i64 {
        let n = &self.carriers[usize::from(c)];
        i64::from(n.cells_per_area) * i64::from(n.capacity_per_cell)
    }

    /// The share of registrations lost to outages of `carrier` in `area`
    /// at `t` (ms from the start).
    pub fn outage(&self, c: CarrierIx, area: AreaIx, t: i64) -> f64 {
        self.outages
            .iter()
            .filter(|o| o.carrier == c && o.areas[usize::from(area)] && o.start <= t && t < o.end)
            .map(|o| o.severity)
            .fold(0.0, f64::max)
    }

    /// The instants (ms from the start) where some outage starts or ends,
    /// with its carrier and areas: when devices re-check their network.
    pub fn changes(&self) -> Vec<(i64, CarrierIx, Vec<bool>)> {
        let mut v: Vec<_> = self
            .outages
            .iter()
            .flat_map(|o| {
                [
                    (o.start, o.carrier, o.areas.clone()),
                    (o.end, o.carrier, o.areas.clone()),
                ]
            })
            .collect();
        v.sort_by_key(|(t, c, _)| (*t, *c));
        v
    }

    /// A shard's attach budget per window: an equal share of each core's
    /// rate over the window (at least one attach).
    pub fn budget(&self, window_ms: u64, shards: usize) -> AttachBudget {
        let per_window: Vec<u32> = self
            .carriers
            .iter()
            .map(|c| {
                let per = u64::from(c.attach_per_second) * window_ms / 1000 / shards as u64;
                u32::try_from(per.max(1)).unwrap_or(u32::MAX)
            })
            .collect();
        AttachBudget {
            left: per_window.clone(),
            refused: vec![0; per_window.len()],
            attempts: vec![0; per_window.len()],
            per_window,
        }
    }

    /// One registration attempt of a device of a vendor whose modem fails
    /// `modem_failure` of the time.
    #[allow(clippy::too_many_arguments)]
    pub fn register(
        &self,
        c: CarrierIx,
        area: AreaIx,
        t: i64,
        load: &Load,
        budget: &mut AttachBudget,
        modem_failure: f64,
        rng: &mut StdRng,
    ) -> Attach {
        let n = &self.carriers[usize::from(c)];
        let ci = usize::from(c);
        budget.attempts[ci] += 1;
        let outage = self.outage(c, area, t);
        if outage > 0.0 && rng.random::<f64>() < outage {
            return Attach::NoResponse;
        }
        if modem_failure > 0.0 && rng.random::<f64>() < modem_failure {
            return Attach::NoResponse;
        }
        let base = n.registration_latency.millis() as f64;
        let jitter = 0.5 + rng.random::<f64>();
        if budget.left[ci] == 0 {
            budget.refused[ci] += 1;
            return Attach::Rejected {
                cause: CAUSE_CONGESTION,
                latency_ms: (base * jitter) as u32,
            };
        }
        budget.left[ci] -= 1;
        let over = self.overload(c, area, load);
        let success = n.registration_success * (1.0 - over.min(1.0) * 0.9);
        let latency_ms = (base * jitter * (1.0 + 4.0 * over)) as u32;
        if rng.random::<f64>() < success {
            Attach::Registered { latency_ms }
        } else {
            Attach::Rejected {
                cause: CAUSE_CONGESTION,
                latency_ms,
            }
        }
    }

    /// A data-path check through `carrier` in `area`: (latency ms, loss ‰).
    pub fn data_path(
        &self,
        c: CarrierIx,
        area: AreaIx,
        t: i64,
        load: &Load,
        rng: &mut StdRng,
    ) -> (u32, u16) {
        let n = &self.carriers[usize::from(c)];
        if self.outage(c, area, t) >= 1.0 {
            return (0, 1000);
        }
        let over = self.overload(c, area, load);
        let latency =
            f64::from(n.data_latency_ms) * (0.7 + 0.6 * rng.random::<f64>()) * (1.0 + 3.0 * over);
        let loss = (f64::from(n.data_loss_permille) * (1.0 + 10.0 * over)).min(1000.0);
        (latency as u32, loss as u16)
    }

    /// How far past its congestion knee the area's cells are, 0 when below
    /// (1.0 at full capacity, more beyond).
    fn overload(&self, c: CarrierIx, area: AreaIx, load: &Load) -> f64 {
        let n = &self.carriers[usize::from(c)];
        let u = load.attached(c, area) as f64 / self.capacity(c) as f64;
        if u <= n.congestion_knee {
            0.0
        } else {
            (u - n.congestion_knee) / (1.0 - n.congestion_knee).max(0.01)
        }
    }
}
