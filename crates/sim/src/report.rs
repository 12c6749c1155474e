//! What a run collected and the report made of it: a JSON summary (the
//! headline metrics computed by `ferrosim-telemetry` from the run's
//! events), time series as CSV, and one self-contained HTML page with SVG
//! charts.

use std::collections::BTreeMap;
use std::path::Path;

use ferrosim_telemetry::metrics::Percentiles;
use ferrosim_telemetry::{Dictionary, Event, MetricsQuery, MetricsReport, compute};
use maud::{DOCTYPE, PreEscaped, html};
use serde::Serialize;

use crate::cost::{EcBatchCounts, EcCosts, LowerBound, MeasuredCosts};
use crate::engine::T0;
use crate::error::SimError;
use crate::network::Network;
use crate::scenario::Scenario;

/// Fields of the summary that are measurements of the machine, not results
/// of the simulation: two runs with the same seed agree on everything else.
pub const MEASURED_FIELDS: &[&str] = &[
    "wall_s",
    "setup_s",
    "loop_s",
    "shards_s",
    "control_s",
    "metrics_s",
    "peak_rss_bytes",
    "ec_cost",
    "lower_bound",
    "ec_cost_fastest",
    "lower_bound_fastest",
    "ec_batches",
    "ec_cost_before_run",
    "lower_bound_before_run",
];

/// One time-series bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// Start (ms from the scenario's start).
    pub start: i64,
    /// Devices present without service at its end.
    pub without_service: u64,
    /// Devices attached per carrier at its end.
    pub attached: Vec<u64>,
    /// Registration attempts answered in it.
    pub registrations: u64,
    /// Of which rejected (congestion and other causes).
    pub rejected: u64,
    /// Of which without an answer (outage).
    pub no_response: u64,
    /// Attaches refused for a core's signalling limit, per carrier.
    pub congestion_refusals: Vec<u64>,
    /// Failovers decided.
    pub failovers: u64,
    /// Returns to the primary decided.
    pub returns: u64,
    /// Failovers completed (registered on the fallback).
    pub failovers_done: u64,
    /// Returns completed.
    pub returns_done: u64,
}

impl Bucket {
    /// An empty bucket from `start`.
    pub fn new(start: i64, carriers: usize) -> Self {
        Self {
            start,
            without_service: 0,
            attached: vec![0; carriers],
            registrations: 0,
            rejected: 0,
            no_response: 0,
            congestion_refusals: vec![0; carriers],
            failovers: 0,
            returns: 0,
            failovers_done: 0,
            returns_done: 0,
        }
    }
}

/// Everything a run collected.
#[derive(Debug)]
pub struct Collected {
    /// Scenario name.
    pub scenario: String,
    /// Devices.
    pub devices: u32,
    /// Seed.
    pub seed: u64,
    /// Shards.
    pub shards: usize,
    /// Threads.
    pub threads: usize,
    /// Carrier names.
    pub carriers: Vec<String>,
    /// Simulated time (ms).
    pub duration_ms: i64,
    /// The telemetry events of the run (platform and device side).
    pub events: Vec<Event>,
    /// The dictionary naming the events' dimensions.
    pub dictionary: Dictionary,
    /// Time series.
    pub buckets: Vec<Bucket>,
    /// Fleet decisions.
    pub decisions: u64,
    /// Fleet actions executed.
    pub actions: u64,
    /// Fleet actions by command.
    pub actions_by_command: BTreeMap<String, u64>,
    /// Failovers decided.
    pub failovers: u64,
    /// Returns decided.
    pub returns: u64,
    /// Rollbacks by the IPA.
    pub rollbacks: u64,
    /// Gate queries the fleet asked (rollouts).
    pub gate_queries: u64,
    /// Failover completion times (ms from the decision to the registration
    /// on the fallback).
    pub failover_completion_ms: Vec<i64>,
    /// Return completion times (ms).
    pub return_completion_ms: Vec<i64>,
    /// eUICCs made.
    pub cards_made: u64,
    /// Actions not served, by command.
    pub unserved: BTreeMap<String, u64>,
    /// Consumer downloads installed and enabled.
    pub downloads: u64,
    /// Consumer downloads failed, by cause.
    pub download_failures: BTreeMap<String, u64>,
    /// Consumer download times, from the QR code scanned to the profile
    /// enabled (ms).
    pub download_completion_ms: Vec<i64>,
    /// EC operations (signs, verifies, key generations, key agreements).
    pub ec: (u64, u64, u64, u64),
    /// Failovers completed: device index, how long it took and how much of
    /// that passed before the fleet issued the enable (ms), in completion
    /// order.
    pub failover_done: Vec<(u32, i64, i64)>,
    /// Returns completed: device index and time (ms).
    pub return_done: Vec<(u32, i64)>,
    /// Profiles provisioned for fleet devices: device index, when the ES2+
    /// order went out and when the profile was installed (ms).
    pub provisioned: Vec<(u32, i64, i64)>,
    /// Devices whose agent held an APN their carrier does not serve: device
    /// index and for how long (ms; one entry per stretch).
    pub bad_apn_exposure: Vec<(u32, i64)>,
    /// Devices still on such an APN at the end.
    pub bad_apn_at_end: Vec<u32>,
    /// The scenario's rollouts as they ended.
    pub rollouts: Vec<RolloutOutcome>,
    /// The scenario's comparisons, measured.
    pub comparisons: Vec<crate::compare::ComparisonReport>,
    /// Notifications the IoT devices' eUICCs signed (switches, enables,
    /// disables, deletes), of those handed on by their IPA once the device
    /// had service again, and still pending at the end.
    pub notifications: NotificationCounts,
    /// How long each notification handed on had waited on its eUICC (ms).
    pub notification_wait_ms: Vec<i64>,
    /// Setup wall time (s).
    pub setup_s: f64,
    /// Event-loop wall time (s).
    pub loop_s: f64,
    /// Of the event loop, the wall time of the shards' windows (s).
    pub shards_s: f64,
    /// Of the event loop, the control plane's wall time (fleet,
    /// telemetry, on one thread beside the shards' windows, so it overlaps
    /// `shards_s`) (s).
    pub control_s: f64,
    /// Wall time after the event loop until the metrics are computed (s):
    /// the shards' figures gathered, the comparisons measured and the
    /// headline metrics computed over the run's events.
    pub metrics_s: f64,
    /// The EC timing rounds taken between windows during the loop (every
    /// couple of seconds, [`ferrosim_crypto::ec_cost::sample_on`]), for the
    /// run's bound ([`crate::cost`]).
    pub ec_samples: ferrosim_crypto::ec_cost::Batches,
}

/// What became of the notifications the IoT devices' eUICCs signed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NotificationCounts {
    /// Signed by the eUICCs.
    pub signed: u64,
    /// Handed on by the IPA (and removed from the eUICC with
    /// NotificationSent) once the device was registered again.
    pub handed_on: u64,
    /// Still on the eUICC at the end: the device had no service since.
    pub pending_at_end: u64,
}

/// The notifications of the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notifications {
    /// The counts.
    #[serde(flatten)]
    pub counts: NotificationCounts,
    /// How long the ones handed on waited for the device to have service
    /// (s, the run's clock).
    pub wait_s: SecondsPercentiles,
}

impl Collected {
    /// An empty collection for a run.
    pub fn new(
        scenario: &Scenario,
        devices: u32,
        seed: u64,
        shards: usize,
        threads: usize,
        network: &Network,
    ) -> Self {
        Self {
            scenario: scenario.scenario.name.clone(),
            devices,
            seed,
            shards,
            threads,
            carriers: (0..network.carriers())
                .map(|c| network.carrier_name(c as u8).to_owned())
                .collect(),
            duration_ms: 0,
            events: Vec::new(),
            dictionary: Dictionary::new(),
            buckets: Vec::new(),
            decisions: 0,
            actions: 0,
            actions_by_command: BTreeMap::new(),
            failovers: 0,
            returns: 0,
            rollbacks: 0,
            gate_queries: 0,
            failover_completion_ms: Vec::new(),
            return_completion_ms: Vec::new(),
            cards_made: 0,
            unserved: BTreeMap::new(),
            downloads: 0,
            download_failures: BTreeMap::new(),
            download_completion_ms: Vec::new(),
            ec: (0, 0, 0, 0),
            failover_done: Vec::new(),
            return_done: Vec::new(),
            provisioned: Vec::new(),
            bad_apn_exposure: Vec::new(),
            bad_apn_at_end: Vec::new(),
            rollouts: Vec::new(),
            comparisons: Vec::new(),
            notifications: NotificationCounts::default(),
            notification_wait_ms: Vec::new(),
            setup_s: 0.0,
            loop_s: 0.0,
            shards_s: 0.0,
            control_s: 0.0,
            metrics_s: 0.0,
            ec_samples: ferrosim_crypto::ec_cost::Batches::default(),
        }
    }

    /// The headline metrics over the whole run, by `ferrosim-telemetry`.
    pub fn metrics(&self) -> MetricsReport {
        let mut q = MetricsQuery::window(
            ferrosim_telemetry::Timestamp(T0),
            ferrosim_telemetry::Timestamp(T0 + self.duration_ms + 1),
        );
        q.as_of = q.to;
        compute(&self.events, &q, &self.dictionary)
    }
}

/// A rollout as it ended (from the fleet's own record of it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutOutcome {
    /// Its name.
    pub name: String,
    /// Where it ended (`completed`, `halted`, ...).
    pub state: String,
    /// Its waves (cumulative percentages).
    pub waves: Vec<u8>,
    /// Waves started.
    pub waves_started: u64,
    /// Devices the rollout gave the change (every started wave's members).
    pub devices_changed: u64,
    /// Devices eligible for it.
    pub eligible: u64,
    /// The gates judged, in order.
    pub gates: Vec<GateOutcome>,
}

/// One judged gate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateOutcome {
    /// Verdict (`pass`, `fail`, `insufficient`).
    pub verdict: String,
    /// Registrations and data-path checks measured in the wave.
    pub registrations: u64,
    /// Data-path checks measured.
    pub data_path_checks: u64,
    /// The checks that failed: metric, the wave's value, the bound.
    pub failed: Vec<(String, Option<f64>, f64)>,
}

impl RolloutOutcome {
    /// From the fleet's rollout.
    pub fn of(name: &str, r: &ferrosim_fleet::rollout::Rollout) -> Self {
        let started = r.wave.map_or(0, |w| u64::from(w) + 1);
        Self {
            name: name.to_owned(),
            state: r.state.name().to_owned(),
            waves: r.spec.waves.clone(),
            waves_started: started,
            devices_changed: r.members.iter().map(|m| m.len() as u64).sum(),
            eligible: r.eligible,
            gates: r
                .gates
                .iter()
                .map(|g| GateOutcome {
                    verdict: match g.verdict {
                        ferrosim_fleet::gate::Verdict::Pass => "pass",
                        ferrosim_fleet::gate::Verdict::Fail => "fail",
                        ferrosim_fleet::gate::Verdict::Insufficient => "insufficient",
                    }
                    .to_owned(),
                    registrations: g.registrations,
                    data_path_checks: g.data_path_checks,
                    failed: g
                        .checks
                        .iter()
                        .filter(|c| !c.passed)
                        .map(|c| (c.metric.clone(), c.wave, c.bound))
                        .collect(),
                })
                .collect(),
        }
    }
}

/// Percentiles in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SecondsPercentiles {
    /// Sample size.
    pub count: u64,
    /// Median.
    pub p50: Option<f64>,
    /// 90th.
    pub p90: Option<f64>,
    /// 99th.
    pub p99: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
}

/// Percentiles of a sample of milliseconds, in seconds.
pub fn seconds(sample: &[i64]) -> SecondsPercentiles {
    let mut v: Vec<u64> = sample.iter().map(|&x| x.max(0) as u64).collect();
    let p = Percentiles::of(&mut v);
    let s = |x: Option<u64>| x.map(|ms| ms as f64 / 1000.0);
    SecondsPercentiles {
        count: p.count,
        p50: s(p.p50),
        p90: s(p.p90),
        p99: s(p.p99),
        max: s(p.max),
    }
}

/// The run's summary (`--json` prints it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Scenario.
    pub scenario: String,
    /// Devices.
    pub devices: u32,
    /// Seed.
    pub seed: u64,
    /// Shards.
    pub shards: usize,
    /// Simulated seconds.
    pub simulated_s: f64,
    /// Activation success within 60 s (telemetry).
    pub activation_success_within_60s: Option<f64>,
    /// MTTR of failed activations in seconds (telemetry).
    pub mttr_s: Option<f64>,
    /// Bytes per active profile (telemetry).
    pub bytes_per_active_profile: Option<f64>,
    /// Activations started / decided / within 60 s / late / not successful.
    pub activations: [u64; 5],
    /// Registration success rate (telemetry).
    pub registration_success_rate: Option<f64>,
    /// Failovers decided.
    pub failovers: u64,
    /// Returns decided.
    pub returns: u64,
    /// Rollbacks by the IPA.
    pub rollbacks: u64,
    /// Failover completion (s).
    pub failover_completion_s: SecondsPercentiles,
    /// Return completion (s).
    pub return_completion_s: SecondsPercentiles,
    /// Most devices without service at a bucket's end.
    pub peak_without_service: u64,
    /// Attaches refused for signalling limits.
    pub congestion_refusals: u64,
    /// Fleet decisions and actions.
    pub fleet_decisions: u64,
    /// Fleet actions executed.
    pub fleet_actions: u64,
    /// Fleet actions by command.
    pub fleet_actions_by_command: BTreeMap<String, u64>,
    /// Actions the simulator could not serve, by command.
    pub unserved_actions: BTreeMap<String, u64>,
    /// eUICCs made (devices the control plane reached through the eIM,
    /// consumer phones that scanned their QR code).
    pub euiccs: u64,
    /// Consumer downloads through the SM-DP+ installed and enabled.
    pub downloads: u64,
    /// Consumer downloads failed, by cause.
    pub download_failures: BTreeMap<String, u64>,
    /// Consumer download time, from the QR code scanned to the profile
    /// enabled (s).
    pub download_completion_s: SecondsPercentiles,
    /// Rollouts as they ended.
    pub rollouts: Vec<RolloutOutcome>,
    /// The scenario's comparisons of two arms of this run, measured.
    pub comparisons: Vec<crate::compare::ComparisonReport>,
    /// The IoT devices' eUICC notifications: signed, handed on once the
    /// device had service again, pending at the end, and how long they
    /// waited.
    pub notifications: Notifications,
    /// Telemetry events.
    pub telemetry_events: u64,
    /// EC operations: signatures, verifications, key generations, key
    /// agreements.
    pub ec_operations: [u64; 4],
    /// Measured: each operation's cost (µs, its median batch) on the
    /// threads that run the shards, over the timing before the run and the
    /// rounds taken during it ([`MeasuredCosts`]).
    pub ec_cost: EcCosts,
    /// Measured: the lower bound of the run's wall time set by its EC work
    /// at `ec_cost`.
    pub lower_bound: LowerBound,
    /// Measured: each operation's fastest batch of the same timings (µs),
    /// below what the operations usually cost. Not the bound.
    pub ec_cost_fastest: EcCosts,
    /// Measured: the same bound at `ec_cost_fastest`.
    pub lower_bound_fastest: LowerBound,
    /// Measured: the batches each operation's costs are taken from: before
    /// the run, and during it.
    pub ec_batches: EcBatchCounts,
    /// Measured: each operation's median batch of the timing before the run
    /// alone (µs): one moment of the machine's speed.
    pub ec_cost_before_run: EcCosts,
    /// Measured: the bound at `ec_cost_before_run`.
    pub lower_bound_before_run: LowerBound,
    /// Measured: wall time (s).
    pub wall_s: f64,
    /// Measured: setup (s).
    pub setup_s: f64,
    /// Measured: event loop (s).
    pub loop_s: f64,
    /// Measured: of the event loop, the shards' windows (s).
    pub shards_s: f64,
    /// Measured: of the event loop, the control plane (s): the fleet's
    /// decisions and the telemetry events, on one thread beside the
    /// shards' windows (so it overlaps `shards_s`).
    pub control_s: f64,
    /// Measured: after the event loop, gathering the run's figures and
    /// computing the metrics over its events (s).
    pub metrics_s: f64,
    /// Measured: peak resident memory (bytes; 0 where unknown).
    pub peak_rss_bytes: u64,
    /// A full-fidelity run's target and figures (absent in virtual time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_fidelity: Option<crate::live::FullFidelity>,
    /// A full-fidelity run of IoT devices: the target and figures (absent
    /// otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_fidelity_iot: Option<crate::live::iot::IotFullFidelity>,
}

impl Summary {
    /// The summary of `c` with its metrics, the measured costs and wall time.
    pub fn new(c: &Collected, metrics: &MetricsReport, costs: MeasuredCosts, wall_s: f64) -> Self {
        let m = &metrics.total;
        let lower_bound = LowerBound::of(c.ec, costs.median, c.threads, wall_s);
        let lower_bound_before_run = LowerBound::of(c.ec, costs.before_run, c.threads, wall_s);
        Self {
            scenario: c.scenario.clone(),
            devices: c.devices,
            seed: c.seed,
            shards: c.shards,
            simulated_s: c.duration_ms as f64 / 1000.0,
            activation_success_within_60s: m.activations.success_ratio,
            mttr_s: m.recovery.mttr_ms.map(|ms| ms / 1000.0),
            bytes_per_active_profile: m.bytes.bytes_per_active_profile,
            activations: [
                m.activations.started,
                m.activations.decided,
                m.activations.within_target,
                m.activations.late,
                m.activations.not_successful,
            ],
            registration_success_rate: m.connectivity.registration_success_rate,
            failovers: c.failovers,
            returns: c.returns,
            rollbacks: c.rollbacks,
            failover_completion_s: seconds(&c.failover_completion_ms),
            return_completion_s: seconds(&c.return_completion_ms),
            peak_without_service: c
                .buckets
                .iter()
                .map(|b| b.without_service)
                .max()
                .unwrap_or(0),
            congestion_refusals: c
                .buckets
                .iter()
                .flat_map(|b| b.congestion_refusals.iter())
                .sum(),
            fleet_decisions: c.decisions,
            fleet_actions: c.actions,
            fleet_actions_by_command: c.actions_by_command.clone(),
            unserved_actions: c.unserved.clone(),
            euiccs: c.cards_made,
            downloads: c.downloads,
            download_failures: c.download_failures.clone(),
            download_completion_s: seconds(&c.download_completion_ms),
            rollouts: c.rollouts.clone(),
            comparisons: c.comparisons.clone(),
            notifications: Notifications {
                counts: c.notifications,
                wait_s: seconds(&c.notification_wait_ms),
            },
            telemetry_events: c.events.len() as u64,
            ec_operations: [c.ec.0, c.ec.1, c.ec.2, c.ec.3],
            ec_cost: costs.median,
            lower_bound,
            ec_cost_fastest: costs.fastest,
            lower_bound_fastest: LowerBound::of(c.ec, costs.fastest, c.threads, wall_s),
            ec_batches: costs.batches,
            ec_cost_before_run: costs.before_run,
            lower_bound_before_run,
            wall_s,
            setup_s: c.setup_s,
            loop_s: c.loop_s,
            shards_s: c.shards_s,
            control_s: c.control_s,
            metrics_s: c.metrics_s,
            peak_rss_bytes: peak_rss_bytes(),
            full_fidelity: None,
            full_fidelity_iot: None,
        }
    }
}

/// The process's peak resident memory (`VmHWM`), 0 where unknown.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The time series as CSV, one row per bucket.
pub fn csv(c: &Collected) -> String {
    let mut out = String::from(
        "start_s,without_service,registrations,rejected,no_response,failovers,returns,failovers_done,returns_done",
    );
    for name in &c.carriers {
        out.push_str(&format!(",attached_{name},congestion_refusals_{name}"));
    }
    out.push('\n');
    for b in &c.buckets {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}",
            b.start / 1000,
            b.without_service,
            b.registrations,
            b.rejected,
            b.no_response,
            b.failovers,
            b.returns,
            b.failovers_done,
            b.returns_done
        ));
        for (a, r) in b.attached.iter().zip(&b.congestion_refusals) {
            out.push_str(&format!(",{a},{r}"));
        }
        out.push('\n');
    }
    out
}

/// The report as JSON: the summary, the telemetry metrics and the series.
pub fn json(summary: &Summary, metrics: &MetricsReport, c: &Collected) -> Result<String, SimError> {
    let value = serde_json::json!({
        "summary": summary,
        "metrics": metrics,
        "series": c.buckets,
        "carriers": c.carriers,
    });
    serde_json::to_string_pretty(&value).map_err(|e| SimError::Report(e.to_string()))
}

/// Writes `report.html`, `report.json` and `series.csv` into `dir`.
pub fn write(
    dir: &Path,
    summary: &Summary,
    metrics: &MetricsReport,
    c: &Collected,
) -> Result<(), SimError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| SimError::Report(format!("{}: {e}", dir.display())))?;
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| SimError::Report(format!("{}: {e}", path.display())))
    };
    write("report.json", json(summary, metrics, c)?)?;
    write("series.csv", csv(c))?;
    write("report.html", html(summary, metrics, c)?)?;
    Ok(())
}

/// The report as one self-contained HTML page (inline SVG, no script).
pub fn html(summary: &Summary, metrics: &MetricsReport, c: &Collected) -> Result<String, SimError> {
    let charts = crate::charts::all(c)?;
    let pct = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{:.2} %", v * 100.0));
    let num = |v: Option<f64>, unit: &str| v.map_or("–".to_owned(), |v| format!("{v:.1} {unit}"));
    let causes = &metrics.total.recovery.by_cause;
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "ferrosim simulate " (summary.scenario) }
                style { (PreEscaped(CSS)) }
            }
            body {
                @if let Some(ff) = &summary.full_fidelity {
                    h1 { "Scenario " (summary.scenario) ", full-fidelity against " (ff.target) }
                    p { (summary.devices) " phones, seed " (summary.seed) ", over real HTTPS to " (ff.target)
                        (if ff.loopback { " (loopback)" } else { " (remote)" }) "; arrivals on the scenario's clock at "
                        (format!("{:.1}", ff.time_scale)) "x, each phone's activation in real time; "
                        (format!("{:.0}", summary.simulated_s / 60.0)) " scenario minutes in "
                        (format!("{:.1}", summary.wall_s)) " s wall time." }
                    (PreEscaped(crate::live::html(ff)))
                } @else if let Some(ff) = &summary.full_fidelity_iot {
                    h1 { "Scenario " (summary.scenario) ", full-fidelity against " (ff.target) }
                    p { (ff.devices) " IoT devices, seed " (summary.seed) ", their IPAs and agents over real HTTPS to the eIM, fleet and SM-DP+ of "
                        (ff.target) (if ff.loopback { " (loopback)" } else { " (remote)" }) "; the event on the scenario's clock at "
                        (format!("{:.1}", ff.time_scale)) "x, the devices' software and the target in real time; "
                        (format!("{:.0}", summary.simulated_s / 60.0)) " scenario minutes in "
                        (format!("{:.1}", ff.event_s)) " s of event after " (format!("{:.1}", ff.converge_s)) " s of provisioning." }
                    (PreEscaped(crate::live::iot::html(ff)))
                } @else {
                    h1 { "Scenario " (summary.scenario) }
                    p { (summary.devices) " devices, seed " (summary.seed) ", " (summary.shards) " shards, "
                        (format!("{:.0}", summary.simulated_s / 60.0)) " simulated minutes in "
                        (format!("{:.1}", summary.wall_s)) " s wall time, peak memory "
                        (summary.peak_rss_bytes / 1_000_000) " MB." }
                }
                h2 { "Headline metrics (ferrosim-telemetry)" }
                table {
                    tr { th { "activation success within 60 s" } td { (pct(summary.activation_success_within_60s)) } }
                    tr { th { "MTTR of failed activations" } td { (num(summary.mttr_s, "s")) } }
                    tr { th { "bytes per active profile" } td { (num(summary.bytes_per_active_profile, "B")) } }
                    tr { th { "activations started / decided / within 60 s / late / not successful" }
                         td { (format!("{:?}", summary.activations)) } }
                    tr { th { "registration success rate" } td { (pct(summary.registration_success_rate)) } }
                }
                h2 { "Failovers" }
                table {
                    tr { th { "" } th { "decided" } th { "completed" } th { "p50" } th { "p90" } th { "p99" } th { "max" } }
                    tr { td { "failover" } td { (summary.failovers) } td { (summary.failover_completion_s.count) }
                         td { (num(summary.failover_completion_s.p50, "s")) } td { (num(summary.failover_completion_s.p90, "s")) }
                         td { (num(summary.failover_completion_s.p99, "s")) } td { (num(summary.failover_completion_s.max, "s")) } }
                    tr { td { "return" } td { (summary.returns) } td { (summary.return_completion_s.count) }
                         td { (num(summary.return_completion_s.p50, "s")) } td { (num(summary.return_completion_s.p90, "s")) }
                         td { (num(summary.return_completion_s.p99, "s")) } td { (num(summary.return_completion_s.max, "s")) } }
                }
                @let n = &summary.notifications;
                @if n.counts.signed > 0 {
                    p { "eUICC notifications: " (n.counts.signed) " signed, " (n.counts.handed_on)
                        " handed on by the IPA once the device had service again (waited p50 " (num(n.wait_s.p50, "s"))
                        ", max " (num(n.wait_s.max, "s")) "), " (n.counts.pending_at_end) " still pending on the eUICC at the end." }
                }
                @if summary.downloads > 0 || !summary.download_failures.is_empty() {
                    h2 { "Consumer downloads (SM-DP+, LPA, eUICC)" }
                    table {
                        tr { th { "" } th { "done" } th { "p50" } th { "p90" } th { "p99" } th { "max" } }
                        tr { td { "scan to profile enabled" } td { (summary.downloads) }
                             td { (num(summary.download_completion_s.p50, "s")) } td { (num(summary.download_completion_s.p90, "s")) }
                             td { (num(summary.download_completion_s.p99, "s")) } td { (num(summary.download_completion_s.max, "s")) } }
                    }
                    @for (cause, n) in &summary.download_failures {
                        p { "Failed: " (n) " × " (cause) }
                    }
                }
                p { "Rollbacks by the IPA: " (summary.rollbacks) ". Peak devices without service: "
                    (summary.peak_without_service) ". Attaches refused for signalling limits: " (summary.congestion_refusals) "." }
                @if !summary.rollouts.is_empty() {
                    h2 { "Rollouts (ferrosim-fleet)" }
                    table {
                        tr { th { "rollout" } th { "waves" } th { "state" } th { "waves started" } th { "devices changed / eligible" } th { "gates" } }
                        @for r in &summary.rollouts {
                            tr { td { (r.name) } td { (format!("{:?}", r.waves)) } td { (r.state) } td { (r.waves_started) }
                                 td { (r.devices_changed) " / " (r.eligible) }
                                 td { (crate::compare::gates_text(&r.gates)) } }
                        }
                    }
                }
                @for cmp in &summary.comparisons {
                    (PreEscaped(crate::compare::html(cmp)))
                }
                h2 { "Failed activations by cause (ferrosim-telemetry)" }
                table {
                    tr { th { "cause" } th { "failed" } th { "recovered" } th { "MTTR" } }
                    @for cause in causes {
                        tr { td { (cause.cause) } td { (cause.failed) } td { (cause.recovered) } td { (num(cause.mttr_ms.map(|m| m / 1000.0), "s")) } }
                    }
                }
                @for chart in &charts {
                    div class="chart" { (PreEscaped(chart)) }
                }
                @if summary.full_fidelity.is_none() && summary.full_fidelity_iot.is_none() {
                h2 { "Signature work" }
                p { (summary.ec_operations[0]) " signatures, " (summary.ec_operations[1]) " verifications, "
                    (summary.ec_operations[2]) " key generations, " (summary.ec_operations[3]) " key agreements; costs "
                    (summary.ec_cost.to_string())
                    " µs each (timed on the run's " (summary.lower_bound.threads) " threads before the run and every couple of seconds during it, each operation's median of "
                    (summary.ec_batches.total()) " batches); lower bound " (format!("{:.1}", summary.lower_bound.seconds)) " s on "
                    (summary.lower_bound.threads) " threads; the run took "
                    (format!("{:.2}", summary.lower_bound.ratio)) "x that. At each operation's fastest batch ("
                    (summary.ec_cost_fastest.to_string())
                    " µs, below what they usually cost) the bound would be " (format!("{:.1}", summary.lower_bound_fastest.seconds)) " s and the run "
                    (format!("{:.2}", summary.lower_bound_fastest.ratio)) "x that; at the timing before the run alone ("
                    (summary.ec_cost_before_run.to_string())
                    " µs) " (format!("{:.1}", summary.lower_bound_before_run.seconds)) " s, the run "
                    (format!("{:.2}", summary.lower_bound_before_run.ratio)) "x that." }
                }
            }
        }
    };
    Ok(page.into_string())
}

const CSS: &str = "body{font-family:sans-serif;margin:2em;max-width:72em}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}.chart{margin:1em 0}";
