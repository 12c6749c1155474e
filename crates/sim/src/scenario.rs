//! Scenario files: the city, its carriers' networks, the devices and the
//! fleet rules of one simulated event, in TOML.
//!
//! Every number has a default (the `default_*` functions below, each with
//! where its value comes from); a scenario file only states what differs.
//! Unknown fields are refused, every reference (area, carrier, group) is
//! checked, and each error names the item and the field. The scenarios
//! shipped with ferrosim are in `crates/sim/scenarios/` and built into the
//! binary ([`Scenario::builtin`]); `docs/SIMULATOR.md` documents the fields.

use std::collections::BTreeSet;

use ferrosim_fleet::{RolloutSpec, Span};
use serde::Deserialize;

use crate::error::SimError;

/// The scenarios shipped with ferrosim, by name.
pub const BUILTIN: &[(&str, &str)] = &[
    ("outage", include_str!("../scenarios/outage.toml")),
    ("storm", include_str!("../scenarios/storm.toml")),
    ("festival", include_str!("../scenarios/festival.toml")),
    ("airport", include_str!("../scenarios/airport.toml")),
    ("rollout", include_str!("../scenarios/rollout.toml")),
    ("fallback", include_str!("../scenarios/fallback.toml")),
];

/// One scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name, length, default size and seed.
    pub scenario: Meta,
    /// The city's areas (cells are counted per area).
    #[serde(rename = "area")]
    pub areas: Vec<Area>,
    /// The carriers' networks.
    #[serde(rename = "carrier")]
    pub carriers: Vec<CarrierNetwork>,
    /// Outages: a carrier failing in some areas for a while.
    #[serde(default, rename = "outage")]
    pub outages: Vec<Outage>,
    /// The devices.
    pub population: Population,
    /// The fleet catalog (`ferrosim-fleet` TOML: carriers with their
    /// profile types and APNs, groups, failover rules), inline.
    pub fleet: toml::Table,
    /// Staged rollouts an operator starts during the run.
    #[serde(default, rename = "rollout")]
    pub rollouts: Vec<RolloutAt>,
    /// Comparisons of two arms of the same run, measured in the report.
    #[serde(default, rename = "comparison")]
    pub comparisons: Vec<Comparison>,
}

/// A staged rollout (`ferrosim-fleet`'s [`RolloutSpec`]) created at `start`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutAt {
    /// When the operator creates it (simulated time from the start).
    pub start: Span,
    /// The rollout as the fleet API takes it.
    pub spec: RolloutSpec,
}

/// Two arms of one run set side by side in the report.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    /// What is compared (`staged rollout vs big bang`).
    pub name: String,
    /// `failover`: two fleet groups whose devices fail over (arms are group
    /// names); `rollout`: two rollouts (arms are rollout names).
    pub kind: ComparisonKind,
    /// The first arm (the one expected to do better).
    pub a: String,
    /// The second arm.
    pub b: String,
}

/// Kinds of comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComparisonKind {
    /// Failover of two groups.
    Failover,
    /// Two rollouts.
    Rollout,
}

/// Name, length and defaults of a run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// Name (`outage`).
    pub name: String,
    /// One paragraph on what it shows.
    #[serde(default)]
    pub description: String,
    /// Simulated time covered.
    pub duration: Span,
    /// Devices when `--devices` is not given.
    pub devices: u32,
    /// Seed when `--seed` is not given.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Lockstep window of the shards and the control plane's step: inputs
    /// reach the fleet at the end of the window they happen in, the fleet
    /// decides at the start of the next and its actions reach devices at
    /// the start of the one after.
    #[serde(default = "default_window")]
    pub window: Span,
    /// Width of a time-series bucket in the report.
    #[serde(default = "default_bucket")]
    pub bucket: Span,
}

/// An area of the city (a district, a venue).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Area {
    /// Name; also the fleet's region of the devices in it.
    pub name: String,
    /// Share of the devices placed in it (relative weight).
    pub weight: f64,
}

/// One carrier's radio and core network in the city.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierNetwork {
    /// Name, as in the fleet catalog.
    pub name: String,
    /// Cells (sectors) per area.
    #[serde(default = "default_cells_per_area")]
    pub cells_per_area: u32,
    /// Devices a cell serves before it congests.
    #[serde(default = "default_capacity_per_cell")]
    pub capacity_per_cell: u32,
    /// Registration success on an unloaded network.
    #[serde(default = "default_registration_success")]
    pub registration_success: f64,
    /// Registration (attach) latency on an unloaded network.
    #[serde(default = "default_registration_latency")]
    pub registration_latency: Span,
    /// Attach requests per second the core (MME/AMF) accepts; past it,
    /// attaches are rejected with EMM cause 22 (congestion) and retried.
    #[serde(default = "default_attach_per_second")]
    pub attach_per_second: u32,
    /// Data-path round trip on an unloaded network (ms).
    #[serde(default = "default_data_latency_ms")]
    pub data_latency_ms: u32,
    /// Data-path loss on an unloaded network (‰).
    #[serde(default = "default_data_loss_permille")]
    pub data_loss_permille: u16,
    /// Cell load (attached / capacity) above which registration success
    /// falls and latency grows.
    #[serde(default = "default_congestion_knee")]
    pub congestion_knee: f64,
    /// The APNs (3GPP TS 23.003 names) the carrier's core serves: a device
    /// using another one registers but gets no data session. Empty (the
    /// default): every APN.
    #[serde(default)]
    pub apns: Vec<String>,
}

/// A carrier failing in some areas from `start` to `end` (simulated time
/// from the scenario's start).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    /// The carrier.
    pub carrier: String,
    /// Areas hit; every area when empty.
    #[serde(default)]
    pub areas: Vec<String>,
    /// When it starts.
    pub start: Span,
    /// When it ends.
    pub end: Span,
    /// Share of registrations that get no answer (1.0: full outage).
    #[serde(default = "one")]
    pub severity: f64,
    /// The carrier's operations centre declares the outage to the fleet
    /// this long after it starts (not at all when absent: the fleet must
    /// detect it from registration failures).
    #[serde(default)]
    pub declare_after: Option<Span>,
    /// ... and declares it over this long after it ends.
    #[serde(default)]
    pub declare_end_after: Option<Span>,
}

/// The devices.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Population {
    /// Device kinds and their shares.
    #[serde(rename = "mix")]
    pub mixes: Vec<Mix>,
    /// Vendors and their shares and failure rates.
    #[serde(rename = "vendor")]
    pub vendors: Vec<Vendor>,
    /// How devices arrive: all present at the start when empty, else a
    /// piecewise-linear arrival rate over time, `[[offset, weight], ...]`.
    #[serde(default)]
    pub arrival: Vec<(Span, f64)>,
    /// Time from a network change to the device noticing it (uniform up
    /// to this: the next paging or periodic tracking-area update).
    #[serde(default = "default_detect_within")]
    pub detect_within: Span,
    /// Registration retries: first delay, doubling, at most `retry_max`.
    #[serde(default = "default_retry_base")]
    pub retry_base: Span,
    /// Longest delay between registration retries.
    #[serde(default = "default_retry_max")]
    pub retry_max: Span,
    /// Registration attempts before a device gives up (0: never).
    #[serde(default)]
    pub give_up_after: u32,
    /// Delay from the eIM queueing a package to the IPA fetching it
    /// (uniform from 1 s to this): the device's poll after a wake-up.
    #[serde(default = "default_poll_within")]
    pub poll_within: Span,
    /// The IPA reaches the eIM without service on its enabled profile (a
    /// second bearer: the meter's mesh or LPWAN backhaul, Wi-Fi). When
    /// false a device without service fetches nothing until it has service.
    #[serde(default = "yes")]
    pub poll_without_service: bool,
    /// Consumer phones: from arriving to scanning the QR code of their
    /// eSIM (uniform up to this).
    #[serde(default = "default_scan_within")]
    pub scan_within: Span,
    /// Consumer phones: one APDU exchange between the LPA and the eUICC
    /// (the modem's logical channel), in virtual time.
    #[serde(default = "default_apdu_ms")]
    pub apdu_ms: u32,
    /// Consumer phones: the SM-DP+'s own time per ES9+ call, added to the
    /// data path's round trips.
    #[serde(default = "default_es9_server_ms")]
    pub es9_server_ms: u32,
    /// How long a device stays after arriving before it leaves the
    /// simulated area (switches off or moves away: off the cells, no more
    /// events); `0s` (the default) keeps every device to the end.
    #[serde(default = "default_stay")]
    pub stay: Span,
}

/// A kind of device and its share.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    /// `iot`: an IPA, an active and (per the group) a staged fallback profile.
    pub kind: DeviceKind,
    /// Relative share.
    pub share: f64,
    /// The fleet group it belongs to.
    pub group: String,
}

/// Device kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// An IoT device with an IPA (SGP.32).
    Iot,
    /// A consumer phone with an LPA (SGP.22): it arrives, scans the QR
    /// code of a profile its operator ordered (ES2+) and downloads it
    /// from the SM-DP+ (ES9+), then registers with it.
    Consumer,
}

/// A device vendor (model and firmware) and how often its devices fail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vendor {
    /// Vendor name.
    pub name: String,
    /// Model.
    #[serde(default = "default_model")]
    pub model: String,
    /// Firmware version text.
    #[serde(default = "default_firmware")]
    pub firmware: String,
    /// Relative share.
    pub share: f64,
    /// Share of eUICC packages its IPA loses (no result: the fleet's
    /// time-out issues the action again).
    #[serde(default)]
    pub package_loss: f64,
    /// Share of registrations that fail in the modem whatever the network.
    #[serde(default)]
    pub modem_failure: f64,
}

fn default_seed() -> u64 {
    1
}
fn default_window() -> Span {
    Span::secs(1)
}
fn default_bucket() -> Span {
    Span::mins(1)
}
/// Urban macro sites run three sectors; a dense downtown area of ~1 km²
/// has 10-20 sites per carrier (ITU-R M.2412 dense urban: 200 m inter-site
/// distance): 40 sectors.
fn default_cells_per_area() -> u32 {
    40
}
/// LTE-M / NB-IoT cells are dimensioned for tens of thousands of devices
/// (3GPP TR 45.820 assumes ~52,500 devices per cell for NB-IoT); a shared
/// macro sector serving phones too takes a few thousand IoT attaches
/// before its signalling congests: 5,000.
fn default_capacity_per_cell() -> u32 {
    5_000
}
/// Attach success of a healthy network: ~99.5 % (operators' KPI targets,
/// e.g. GSMA IR.42's attach success rate above 99 %).
fn default_registration_success() -> f64 {
    0.995
}
/// An LTE attach takes ~0.5-2 s end to end (3GPP TR 36.912 control-plane
/// latency budget, field measurements ~1 s): 1 s.
fn default_registration_latency() -> Span {
    Span::secs(1)
}
/// An MME/AMF handles a few thousand attaches per second (vendor data
/// sheets quote 1,000-10,000/s per node); a city's share: 2,000/s.
fn default_attach_per_second() -> u32 {
    2_000
}
/// LTE-M round trip ~50-100 ms (GSMA LTE-M deployment guide): 80 ms.
fn default_data_latency_ms() -> u32 {
    80
}
/// 0.5 % packet loss on a healthy path.
fn default_data_loss_permille() -> u16 {
    5
}
/// Cells congest from ~80 % load (a common planning threshold).
fn default_congestion_knee() -> f64 {
    0.8
}
/// Periodic TAU / paging cycles of IoT devices: within 2 minutes.
fn default_detect_within() -> Span {
    Span::mins(2)
}
/// 3GPP TS 24.301 attach retry timer T3411 is 10 s; devices back off
/// further after repeated failures (T3402, 12 min): 10 s doubling to 12 min.
fn default_retry_base() -> Span {
    Span::secs(10)
}
fn default_retry_max() -> Span {
    Span::mins(12)
}
/// An IPA polls within seconds of a wake-up: up to 10 s.
fn default_poll_within() -> Span {
    Span::secs(10)
}
/// People scan the QR code of their event eSIM within a few minutes of
/// arriving (entering the venue, leaving the plane): up to 3 minutes.
fn default_scan_within() -> Span {
    Span::mins(3)
}
/// An APDU through the phone's modem to the eUICC and back takes ~10-40 ms
/// (ISO 7816 T=1 at the UICC clock, plus the modem's AT/QMI path): 25 ms.
fn default_apdu_ms() -> u32 {
    25
}
/// The SM-DP+'s own time per call (signing, database), as ferrosim serve
/// answers over HTTPS at moderate load (BENCHMARKS.md): 30 ms.
fn default_es9_server_ms() -> u32 {
    30
}
/// Devices stay to the end of the run unless the scenario says otherwise.
fn default_stay() -> Span {
    Span::secs(0)
}
fn default_model() -> String {
    "m1".into()
}
fn default_firmware() -> String {
    "1.0.0".into()
}
fn yes() -> bool {
    true
}
fn one() -> f64 {
    1.0
}

impl Scenario {
    /// Reads and checks a scenario file's text.
    pub fn from_toml(text: &str) -> Result<Self, SimError> {
        let scenario: Self =
            toml::from_str(text).map_err(|e| SimError::Scenario(e.message().to_owned()))?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// A scenario shipped with ferrosim, by name.
    pub fn builtin(name: &str) -> Result<Self, SimError> {
        let text = BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .ok_or_else(|| SimError::UnknownScenario {
                name: name.to_owned(),
                known: BUILTIN
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        Self::from_toml(text)
    }

    /// The fleet catalog's TOML text.
    pub fn fleet_toml(&self) -> String {
        // A table always serialises.
        toml::to_string(&self.fleet).unwrap_or_default()
    }

    fn validate(&self) -> Result<(), SimError> {
        let bad = |what: String| Err(SimError::Scenario(what));
        if self.scenario.duration.millis() == 0 {
            return bad("scenario.duration must be above 0".into());
        }
        if self.scenario.window.millis() == 0 || self.scenario.window.millis() > 60_000 {
            return bad("scenario.window must be between 1ms and 1m".into());
        }
        if self.scenario.bucket.millis() < self.scenario.window.millis() {
            return bad("scenario.bucket must be at least scenario.window".into());
        }
        if self.areas.is_empty() {
            return bad("at least one [[area]] is needed".into());
        }
        let mut areas = BTreeSet::new();
        for a in &self.areas {
            if !areas.insert(a.name.as_str()) {
                return bad(format!("area {:?} is declared twice", a.name));
            }
            if !(a.weight.is_finite() && a.weight > 0.0) {
                return bad(format!("area {:?}: weight must be above 0", a.name));
            }
        }
        if self.areas.len() > usize::from(u16::MAX) {
            return bad("too many areas".into());
        }
        let mut carriers = BTreeSet::new();
        for c in &self.carriers {
            if !carriers.insert(c.name.as_str()) {
                return bad(format!("carrier {:?} is declared twice", c.name));
            }
            let field = |f: &str| format!("carrier {:?}: {f}", c.name);
            if c.cells_per_area == 0 || c.capacity_per_cell == 0 {
                return bad(field(
                    "cells_per_area and capacity_per_cell must be above 0",
                ));
            }
            if !(0.0..=1.0).contains(&c.registration_success) {
                return bad(field("registration_success must be within 0..=1"));
            }
            if c.attach_per_second == 0 {
                return bad(field("attach_per_second must be above 0"));
            }
            if c.data_loss_permille > 1000 {
                return bad(field("data_loss_permille must be at most 1000"));
            }
            if !(c.congestion_knee > 0.0 && c.congestion_knee <= 1.0) {
                return bad(field("congestion_knee must be within (0, 1]"));
            }
        }
        if self.carriers.len() > 250 {
            return bad("at most 250 carriers".into());
        }
        for (i, o) in self.outages.iter().enumerate() {
            let field = |f: &str| format!("outage {} ({}): {f}", i + 1, o.carrier);
            if !carriers.contains(o.carrier.as_str()) {
                return bad(field("no such [[carrier]]"));
            }
            if o.end <= o.start {
                return bad(field("end must be after start"));
            }
            if !(0.0..=1.0).contains(&o.severity) {
                return bad(field("severity must be within 0..=1"));
            }
            if let Some(a) = o.areas.iter().find(|a| !areas.contains(a.as_str())) {
                return bad(field(&format!("no such area {a:?}")));
            }
        }
        let p = &self.population;
        if p.mixes.is_empty() || p.vendors.is_empty() {
            return bad(
                "population needs at least one [[population.mix]] and [[population.vendor]]".into(),
            );
        }
        for m in &p.mixes {
            if !(m.share.is_finite() && m.share > 0.0) {
                return bad(format!(
                    "population.mix {:?}: share must be above 0",
                    m.group
                ));
            }
        }
        for v in &p.vendors {
            let field = |f: &str| format!("population.vendor {:?}: {f}", v.name);
            if !(v.share.is_finite() && v.share > 0.0) {
                return bad(field("share must be above 0"));
            }
            if !(0.0..=1.0).contains(&v.package_loss) || !(0.0..=1.0).contains(&v.modem_failure) {
                return bad(field("package_loss and modem_failure must be within 0..=1"));
            }
        }
        if p.vendors.len() > 250 || p.mixes.len() > 250 {
            return bad("at most 250 vendors and 250 mixes".into());
        }
        for (t, w) in &p.arrival {
            if !(w.is_finite() && *w >= 0.0) || *t > self.scenario.duration {
                return bad(format!(
                    "population.arrival: point at {t} must lie within the duration and have a weight of at least 0"
                ));
            }
        }
        if !p.arrival.is_empty() && p.arrival.iter().all(|(_, w)| *w == 0.0) {
            return bad("population.arrival: every weight is 0".into());
        }
        if p.retry_base.millis() == 0 || p.retry_max < p.retry_base {
            return bad("population.retry_base must be above 0 and at most retry_max".into());
        }
        if p.apdu_ms > 10_000 || p.es9_server_ms > 60_000 {
            return bad(
                "population.apdu_ms must be at most 10000 and es9_server_ms at most 60000".into(),
            );
        }
        if p.poll_within.millis() < 1000 {
            return bad("population.poll_within must be at least 1s".into());
        }
        let mut rollouts = BTreeSet::new();
        for r in &self.rollouts {
            let field = |f: &str| format!("rollout {:?}: {f}", r.spec.name);
            if !rollouts.insert(r.spec.name.as_str()) {
                return bad(field("declared twice"));
            }
            if r.start >= self.scenario.duration {
                return bad(field("start must lie within the duration"));
            }
            ferrosim_fleet::rollout::Rollout::validate(&r.spec)
                .map_err(|e| SimError::Scenario(field(&e)))?;
        }
        let groups: BTreeSet<&str> = p.mixes.iter().map(|m| m.group.as_str()).collect();
        for c in &self.comparisons {
            let field = |f: &str| format!("comparison {:?}: {f}", c.name);
            if c.a == c.b {
                return bad(field("a and b must differ"));
            }
            for arm in [&c.a, &c.b] {
                let known = match c.kind {
                    ComparisonKind::Failover => groups.contains(arm.as_str()),
                    ComparisonKind::Rollout => rollouts.contains(arm.as_str()),
                };
                if !known {
                    return bad(field(&format!(
                        "no such {} {arm:?}",
                        match c.kind {
                            ComparisonKind::Failover => "population.mix group",
                            ComparisonKind::Rollout => "[[rollout]]",
                        }
                    )));
                }
            }
        }
        Ok(())
    }
}
