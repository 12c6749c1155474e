//! From what the phones of a full-fidelity run did to the report's input:
//! the telemetry events (each phone's stamped on the scenario's clock at
//! its scan, plus the real time since), the time series and the
//! full-fidelity figures.

use std::collections::BTreeMap;

use ferrosim_telemetry::metrics::DEFAULT_TARGET_MS;
use ferrosim_telemetry::{
    CorrelationId, Dictionary, Dims, Event, EventKind, RegistrationOutcome, Source, Sym,
};

use super::phone::{Plan, Record, Stage};
use super::{CallStats, FullFidelity, Target};
use crate::engine::T0;
use crate::error::SimError;
use crate::network::Network;
use crate::population::Population;
use crate::report::{Bucket, Collected, seconds};
use crate::scenario::Scenario;

/// Telemetry correlation ids of the phones' activations: this bit set, the
/// device index below it (as in the virtual mode).
const CONSUMER_ACTIVATION: u64 = 1 << 62;

/// The failure cause of a phone the run's bound cut off.
pub const CUT_OFF: &str = "cut off at --max-duration";

/// The telemetry dimensions of the phones.
pub(crate) struct Dimensions {
    /// The dictionary naming them.
    pub dictionary: Dictionary,
    vendors: Vec<[Option<Sym>; 3]>,
    carriers: Vec<Option<Sym>>,
    groups: Vec<Option<Sym>>,
    smdp: Option<Sym>,
}

impl Dimensions {
    /// Vendors, models and firmware, carriers, groups and the SM-DP+.
    pub fn new(
        scenario: &Scenario,
        population: &Population,
        network: &Network,
        smdp: &str,
    ) -> Result<Self, SimError> {
        let dictionary = Dictionary::new();
        let sym = |name: &str| {
            dictionary
                .intern(name)
                .map(Some)
                .map_err(|e| SimError::Setup(format!("telemetry dimension {name:?}: {e}")))
        };
        let mut vendors = Vec::new();
        for v in 0..scenario.population.vendors.len() {
            let v = population.vendor(v as u8);
            vendors.push([sym(&v.name)?, sym(&v.model)?, sym(&v.firmware)?]);
        }
        let mut carriers = Vec::new();
        for c in 0..network.carriers() {
            carriers.push(sym(network.carrier_name(c as u8))?);
        }
        let mut groups = Vec::new();
        for m in 0..scenario.population.mixes.len() {
            groups.push(sym(population.group(m as u8))?);
        }
        let smdp = sym(smdp)?;
        Ok(Self {
            dictionary,
            vendors,
            carriers,
            groups,
            smdp,
        })
    }

    /// A phone's dimensions.
    pub fn of(&self, plan: &Plan) -> Dims {
        let [vendor, model, firmware] = self
            .vendors
            .get(usize::from(plan.vendor))
            .copied()
            .unwrap_or_default();
        Dims {
            carrier: self
                .carriers
                .get(usize::from(plan.carrier))
                .copied()
                .flatten(),
            smdp: self.smdp,
            vendor,
            model,
            firmware,
            group: self.groups.get(usize::from(plan.mix)).copied().flatten(),
            rollout: None,
            wave: None,
        }
    }
}

/// The run as the report's input.
#[allow(clippy::too_many_arguments)]
pub(crate) fn collect(
    scenario: &Scenario,
    devices: u32,
    seed: u64,
    network: &Network,
    dims: &Dimensions,
    records: &[Record],
    reached_ms: i64,
    stay_ms: i64,
) -> Collected {
    let mut c = Collected::new(scenario, devices, seed, 1, 1, network);
    c.dictionary = dims.dictionary.clone();
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    for r in records {
        let base = r.plan.scan_ms;
        // A phone the run's bound cut off before its activation's target
        // time (60 s) passed is undecided, not failed: its events stay
        // (their steps and bytes happened) outside any activation.
        let undecided = r.cut_at_ms.is_some_and(|t| t < DEFAULT_TARGET_MS as i64);
        let activation = (!undecided)
            .then(|| CorrelationId::new(CONSUMER_ACTIVATION | u64::from(r.plan.n)))
            .flatten();
        let event = |t: i64, kind| Event {
            at: ferrosim_telemetry::Timestamp(T0 + base + t),
            activation,
            device: r.plan.eid,
            source: Source::Device,
            dims: r.dims,
            kind,
        };
        for (t, kind) in &r.events {
            c.events.push(event(*t, *kind));
        }
        for call in &r.calls {
            c.events.push(event(
                call.end_ms,
                EventKind::Step {
                    function: call.function,
                    status: call.status,
                    duration_ms: call.duration_ms,
                    signalling_bytes: call.request_bytes,
                    bpp_bytes: 0,
                },
            ));
        }
        // A phone that started made its eUICC.
        if r.start_delay_ms.is_some() {
            c.cards_made += 1;
        }
        match (&r.outcome, r.stage) {
            (Some(Ok(_)), _) => {
                c.downloads += 1;
                c.download_completion_ms.push(r.enabled_ms.unwrap_or(0));
            }
            (Some(Err(why)), _) => {
                *failures.entry(why.chars().take(120).collect()).or_default() += 1;
            }
            (None, Stage::CutOff) => *failures.entry(CUT_OFF.to_owned()).or_default() += 1,
            (None, _) => {}
        }
    }
    c.download_failures = failures;
    c.events.sort_by_key(|e| (e.at, e.device));
    let last = c.events.last().map_or(0, |e| e.at.0 - T0);
    c.duration_ms = reached_ms.max(last + 1);
    c.buckets = buckets(scenario, network, records, c.duration_ms, stay_ms);
    c
}

/// The time series on the scenario's clock.
fn buckets(
    scenario: &Scenario,
    network: &Network,
    records: &[Record],
    duration_ms: i64,
    stay_ms: i64,
) -> Vec<Bucket> {
    let width = scenario.scenario.bucket.millis_i64().max(1);
    let count = (duration_ms + width - 1) / width;
    let carriers = network.carriers();
    let mut out: Vec<Bucket> = (0..count)
        .map(|i| Bucket::new(i * width, carriers))
        .collect();
    for r in records {
        let base = r.plan.scan_ms;
        for (t, outcome, refused) in &r.registrations {
            let Some(b) = out.get_mut(usize::try_from((base + t) / width).unwrap_or(usize::MAX))
            else {
                continue;
            };
            b.registrations += 1;
            match outcome {
                RegistrationOutcome::Registered => {}
                RegistrationOutcome::Rejected { .. } => b.rejected += 1,
                RegistrationOutcome::NoResponse => b.no_response += 1,
            }
            if *refused {
                b.congestion_refusals[usize::from(r.plan.carrier)] += 1;
            }
        }
        let left = (stay_ms > 0).then(|| r.plan.arrival_ms + stay_ms);
        let registered = r.registered_ms.map(|t| base + t);
        for b in &mut out {
            let end = b.start + width;
            if r.plan.arrival_ms > end || left.is_some_and(|l| l <= end) {
                continue;
            }
            if registered.is_some_and(|t| t <= end) {
                b.attached[usize::from(r.plan.carrier)] += 1;
            } else {
                b.without_service += 1;
            }
        }
    }
    out
}

/// What the full-fidelity figures are made from besides the records.
pub(crate) struct Settings<'a> {
    pub target: &'a Target,
    pub time_scale: f64,
    pub max_duration_s: f64,
    pub concurrency: usize,
    pub profile_type: String,
    pub orders_failed: BTreeMap<String, u64>,
    pub orders_throttled: u64,
    pub orders_s: f64,
    pub scheduled: u64,
    pub iot_not_run: u64,
    pub loop_s: f64,
}

/// The full-fidelity figures of the run.
pub(crate) fn figures(records: &[Record], s: Settings<'_>) -> FullFidelity {
    let ordered = records
        .iter()
        .filter(|r| !matches!(&r.outcome, Some(Err(why)) if why.starts_with("ES2+ order")))
        .count() as u64;
    let mut by_function: BTreeMap<String, (u64, u64, Vec<i64>)> = BTreeMap::new();
    let mut injected_ms = 0u64;
    for call in records.iter().flat_map(|r| &r.calls) {
        let entry = by_function.entry(call.function.to_string()).or_default();
        entry.0 += 1;
        if call.status != ferrosim_telemetry::StepStatus::Ok {
            entry.1 += 1;
        }
        entry.2.push(i64::from(call.duration_ms));
        injected_ms += u64::from(call.injected_ms);
    }
    let delays: Vec<i64> = records.iter().filter_map(|r| r.start_delay_ms).collect();
    let downloads = records
        .iter()
        .filter(|r| matches!(r.outcome, Some(Ok(_))))
        .count() as f64;
    FullFidelity {
        target: s.target.base_url.clone(),
        loopback: s.target.loopback,
        time_scale: s.time_scale,
        max_duration_s: s.max_duration_s,
        concurrency: s.concurrency,
        profile_type: s.profile_type,
        orders: ordered,
        orders_failed: s.orders_failed,
        orders_throttled: s.orders_throttled,
        orders_s: s.orders_s,
        scheduled: s.scheduled,
        iot_not_run: s.iot_not_run,
        started: delays.len() as u64,
        not_started: records
            .iter()
            .filter(|r| r.stage == Stage::NotStarted && r.outcome.is_none())
            .count() as u64,
        cut_off: records.iter().filter(|r| r.stage == Stage::CutOff).count() as u64,
        registered: records.iter().filter(|r| r.registered_ms.is_some()).count() as u64,
        download_retries: records
            .iter()
            .map(|r| u64::from(r.attempts.saturating_sub(1)))
            .sum(),
        notifications_undelivered: records.iter().map(|r| r.undelivered).sum(),
        start_delay_s: seconds(&delays),
        es9_calls: by_function
            .into_iter()
            .map(|(name, (calls, failed, durations))| {
                (
                    name,
                    CallStats {
                        calls,
                        failed,
                        duration_s: seconds(&durations),
                    },
                )
            })
            .collect(),
        injected_delay_s: injected_ms as f64 / 1000.0,
        downloads_per_s: downloads / s.loop_s.max(1e-9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::link::Call;
    use ferrosim_telemetry::{Function, StepStatus};

    const MIN: i64 = 60_000;

    fn record(n: u32, arrival_ms: i64, scan_ms: i64, stage: Stage) -> Record {
        Record {
            plan: Plan {
                n,
                eid: Population::eid(n),
                area: 0,
                vendor: 0,
                mix: 0,
                carrier: 0,
                arrival_ms,
                scan_ms,
                rng_seed: 0,
            },
            dims: Dims::default(),
            stage,
            start_delay_ms: (stage != Stage::NotStarted).then_some(3),
            events: Vec::new(),
            calls: Vec::new(),
            outcome: None,
            enabled_ms: None,
            registered_ms: None,
            registrations: Vec::new(),
            undelivered: 0,
            attempts: u32::from(stage != Stage::NotStarted),
            cut_at_ms: None,
        }
    }

    /// A phone registered, one whose download failed, one that never
    /// started and one cut off after a refused attach.
    fn records() -> Vec<Record> {
        let mut ok = record(0, 0, 1000, Stage::Ended);
        ok.outcome = Some(Ok("8944000000000000019".into()));
        ok.enabled_ms = Some(4000);
        ok.registered_ms = Some(5000);
        ok.registrations = vec![(5000, RegistrationOutcome::Registered, false)];
        ok.events = vec![(
            0,
            EventKind::ActivationStarted {
                kind: ferrosim_telemetry::ActivationKind::OrderDownload,
                iot: true,
            },
        )];
        ok.calls = vec![Call {
            function: Function::Es9InitiateAuthentication,
            status: StepStatus::Ok,
            end_ms: 300,
            duration_ms: 300,
            injected_ms: 240,
            request_bytes: 100,
        }];
        let mut failed = record(1, 0, 2000, Stage::Ended);
        failed.outcome = Some(Err("authenticateClient: refused".into()));
        failed.attempts = 3;
        let never = record(2, 11 * MIN, 12 * MIN, Stage::NotStarted);
        let mut cut = record(3, 0, 3000, Stage::CutOff);
        cut.registrations = vec![(500, RegistrationOutcome::Rejected { cause: 22 }, true)];
        cut.events = vec![(
            500,
            EventKind::Registration {
                profile: None,
                outcome: RegistrationOutcome::Rejected { cause: 22 },
            },
        )];
        cut.cut_at_ms = Some(700);
        vec![ok, failed, never, cut]
    }

    #[test]
    fn the_series_counts_who_is_attached_and_who_is_without_service() {
        let scenario = Scenario::builtin("festival").expect("festival");
        let network = Network::new(&scenario);
        let b = buckets(&scenario, &network, &records(), 15 * MIN, 0);
        assert_eq!(b.len(), 3, "5-minute buckets");
        assert_eq!(
            (
                b[0].registrations,
                b[0].rejected,
                b[0].congestion_refusals[0]
            ),
            (2, 1, 1)
        );
        assert_eq!((b[0].attached[0], b[0].without_service), (1, 2));
        assert_eq!(
            (b[1].registrations, b[1].attached[0], b[1].without_service),
            (0, 1, 2)
        );
        // The late arrival is there from 11 minutes on, without service.
        assert_eq!((b[2].attached[0], b[2].without_service), (1, 3));
        // Staying 7 minutes: the first three have left by the second
        // bucket's end; the late arrival stays past the last one's.
        let b = buckets(&scenario, &network, &records(), 15 * MIN, 7 * MIN);
        assert_eq!((b[0].attached[0], b[0].without_service), (1, 2));
        assert_eq!((b[1].attached[0], b[1].without_service), (0, 0));
        assert_eq!((b[2].attached[0], b[2].without_service), (0, 1));
    }

    #[test]
    fn the_collection_and_figures_count_each_phone_once() {
        let scenario = Scenario::builtin("festival").expect("festival");
        let network = Network::new(&scenario);
        let fleet =
            ferrosim_fleet::config::FleetConfig::from_toml(&scenario.fleet_toml()).expect("fleet");
        let population = Population::new(&scenario, &fleet, &network, 4, 1).expect("population");
        let dims = Dimensions::new(&scenario, &population, &network, "localhost:1").expect("dims");
        let records = records();
        let c = collect(&scenario, 4, 1, &network, &dims, &records, 12 * MIN, 0);
        assert_eq!(c.downloads, 1);
        assert_eq!(c.download_completion_ms, vec![4000]);
        assert_eq!(c.cards_made, 3);
        assert_eq!(
            c.download_failures,
            BTreeMap::from([
                ("authenticateClient: refused".to_owned(), 1),
                (CUT_OFF.to_owned(), 1)
            ])
        );
        // The events the phones made, stamped at the scan plus the real
        // time since: the first phone's start and step, the cut-off
        // phone's refused attach.
        assert_eq!(c.events.len(), 3);
        assert_eq!(c.events[0].at.0, T0 + 1000);
        assert_eq!(c.events[1].at.0, T0 + 1300);
        assert!(c.events[..2].iter().all(|e| e.activation.is_some()));
        // Cut off 0.7 s after its scan: undecided, outside any activation.
        assert_eq!(c.events[2].at.0, T0 + 3500);
        assert_eq!(c.events[2].activation, None);
        assert_eq!(c.duration_ms, 12 * MIN);
        let target = Target::parse_with("https://localhost:1", false, &|_| {
            Ok(vec!["127.0.0.1:1".parse().expect("addr")])
        })
        .expect("target");
        let ff = figures(
            &records,
            Settings {
                target: &target,
                time_scale: 100.0,
                max_duration_s: 60.0,
                concurrency: 8,
                profile_type: "festival".into(),
                orders_failed: BTreeMap::new(),
                orders_throttled: 0,
                orders_s: 0.5,
                scheduled: 4,
                iot_not_run: 0,
                loop_s: 2.0,
            },
        );
        assert_eq!(
            (ff.orders, ff.started, ff.not_started, ff.cut_off),
            (4, 3, 1, 1)
        );
        assert_eq!(ff.registered, 1);
        assert_eq!(ff.download_retries, 2);
        assert_eq!(ff.es9_calls["es9plus.initiateAuthentication"].calls, 1);
        assert!((ff.injected_delay_s - 0.24).abs() < 1e-9);
        assert!((ff.downloads_per_s - 0.5).abs() < 1e-9);
    }
}
