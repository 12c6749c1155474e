//! Comparisons inside one run: two arms of the same city, network and
//! seed, set side by side with numbers measured from the run.
//!
//! A scenario names its comparisons (`[[comparison]]`): `failover` arms
//! are two fleet groups whose devices fail over under the same outage
//! (say one with the rule's rate limit and one without, each onto its own
//! fallback carrier of equal capacity); `rollout` arms are two rollouts of
//! the same change to two groups (say in waves and all at once). Each
//! arm's numbers come from what the run recorded: the failover completion
//! times the engine measured, the registrations and data-path checks of
//! the arm's devices as `ferrosim-telemetry` computes them from the run's
//! events, the refused attaches in those events, the rollout's waves and
//! gates from the fleet's own record, and the time devices spent with an
//! APN their carrier does not serve.

use std::collections::BTreeSet;

use ferrosim_ids::Eid;
use ferrosim_telemetry::{Dictionary, EventKind, MetricsQuery, RegistrationOutcome, compute};
use serde::Serialize;

use crate::engine::T0;
use crate::network::CAUSE_CONGESTION;
use crate::population::Population;
use crate::report::{Collected, GateOutcome, RolloutOutcome, SecondsPercentiles, seconds};
use crate::scenario::{Comparison, ComparisonKind, Scenario};

/// One comparison, measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparisonReport {
    /// What is compared.
    pub name: String,
    /// Failover or rollout.
    pub kind: ComparisonKind,
    /// The first arm.
    pub a: Arm,
    /// The second arm.
    pub b: Arm,
}

/// One arm's numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Arm {
    /// The group (failover) or rollout name.
    pub name: String,
    /// Devices in it (the group's, or the rollout's selection).
    pub devices: u64,
    /// Registration attempts of its devices (telemetry).
    pub registrations: u64,
    /// Their success rate (telemetry).
    pub registration_success_rate: Option<f64>,
    /// Attaches of its devices refused for a core's signalling limit (EMM
    /// cause 22), from the run's registration events.
    pub attaches_refused_congestion: u64,
    /// Data-path checks of its devices (telemetry).
    pub data_path_checks: u64,
    /// Of which failed (no data at all).
    pub data_path_failures: u64,
    /// Failover arms: failovers completed and how long they took, from the
    /// switch decision to the registration on the fallback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failover: Option<FailoverArm>,
    /// Rollout arms: what the rollout did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutArm>,
}

/// A failover arm's own numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailoverArm {
    /// Failovers completed and their completion times (s).
    pub completion_s: SecondsPercentiles,
    /// Mean completion time (s).
    pub completion_mean_s: Option<f64>,
    /// Devices with a failover or return that completed and an attach
    /// refused for congestion during the run.
    pub completed_after_refusal: u64,
    /// Returns to the primary completed and their completion times (s).
    pub return_s: SecondsPercentiles,
    /// Profiles provisioned afresh for its devices: from the ES2+ order to
    /// the profile installed on the eUICC (s).
    pub provisioning_s: SecondsPercentiles,
    /// Mean provisioning time (s).
    pub provisioning_mean_s: Option<f64>,
    /// Mean time from a failover's switch to the fleet issuing the enable:
    /// the profile's provisioning and the control plane's reaction to it
    /// (about 0 for a staged fallback) (s).
    pub waiting_for_provisioning_mean_s: Option<f64>,
    /// Mean failover completion without that wait: from the enable to the
    /// registration (s).
    pub completion_without_provisioning_mean_s: Option<f64>,
    /// ES2+ and ES9+ calls of that provisioning (telemetry steps).
    pub provisioning_calls: u64,
    /// Their measured time in all (s): ES2+ answers and ES9+ round trips
    /// with the SM-DP+'s own time.
    pub provisioning_calls_s: f64,
}

/// A rollout arm's own numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutArm {
    /// The rollout as it ended.
    pub outcome: RolloutOutcome,
    /// Devices that used the carrier's unserved APN at some point.
    pub devices_with_bad_apn: u64,
    /// Device-minutes spent on it.
    pub bad_apn_device_minutes: f64,
    /// Devices still on it at the end of the run.
    pub devices_on_bad_apn_at_end: u64,
}

/// Measures the scenario's comparisons over a finished run.
pub fn measure(
    scenario: &Scenario,
    population: &Population,
    c: &Collected,
    dict: &Dictionary,
) -> Vec<ComparisonReport> {
    if scenario.comparisons.is_empty() {
        return Vec::new();
    }
    let groups: Vec<String> = (0..population.len() as u32)
        .map(|n| population.group(population.device(n).mix).to_owned())
        .collect();
    let eids: Vec<Eid> = (0..groups.len() as u32).map(Population::eid).collect();
    measure_devices(scenario, &groups, &eids, c, dict)
}

/// Measures the scenario's comparisons over a finished run whose device
/// `n` is in fleet group `groups[n]` and has EID `eids[n]` (a
/// full-fidelity run gives its devices fresh EIDs at the target).
pub fn measure_devices(
    scenario: &Scenario,
    groups: &[String],
    eids: &[Eid],
    c: &Collected,
    dict: &Dictionary,
) -> Vec<ComparisonReport> {
    scenario
        .comparisons
        .iter()
        .map(|cmp| ComparisonReport {
            name: cmp.name.clone(),
            kind: cmp.kind,
            a: arm(scenario, cmp, &cmp.a, groups, eids, c, dict),
            b: arm(scenario, cmp, &cmp.b, groups, eids, c, dict),
        })
        .collect()
}

fn arm(
    scenario: &Scenario,
    cmp: &Comparison,
    name: &str,
    groups: &[String],
    all_eids: &[Eid],
    c: &Collected,
    dict: &Dictionary,
) -> Arm {
    // The arm's groups: the group itself, or the rollout's selection.
    let selected: BTreeSet<&str> = match cmp.kind {
        ComparisonKind::Failover => [name].into_iter().collect(),
        ComparisonKind::Rollout => scenario
            .rollouts
            .iter()
            .find(|r| r.spec.name == name)
            .map(|r| r.spec.groups.iter().map(String::as_str).collect())
            .unwrap_or_default(),
    };
    let member: Vec<bool> = groups
        .iter()
        .map(|g| selected.is_empty() || selected.contains(g.as_str()))
        .collect();
    let is_member = |n: u32| member.get(n as usize).copied().unwrap_or(false);
    let eids: Vec<Eid> = (0..groups.len() as u32)
        .filter(|n| is_member(*n))
        .filter_map(|n| all_eids.get(n as usize).copied())
        .collect();
    let devices = eids.len() as u64;
    let eid_set: BTreeSet<Eid> = eids.iter().copied().collect();
    let query = MetricsQuery::for_devices(
        eids,
        ferrosim_telemetry::Timestamp(T0),
        ferrosim_telemetry::Timestamp(T0 + c.duration_ms + 1),
        ferrosim_telemetry::Timestamp(T0 + c.duration_ms + 1),
    );
    let metrics = compute(&c.events, &query, dict).total;
    let conn = &metrics.connectivity;
    let data_path_failures = conn.data_path_checks.saturating_sub(conn.data_path_ok);
    // Refused attaches per device, from the registration events.
    let mut refused_devices = BTreeSet::new();
    let mut refused = 0;
    for e in &c.events {
        if let EventKind::Registration {
            outcome: RegistrationOutcome::Rejected { cause },
            ..
        } = e.kind
            && cause == CAUSE_CONGESTION
            && eid_set.contains(&e.device)
        {
            refused += 1;
            refused_devices.insert(e.device);
        }
    }
    // The provisioning steps of the arm's devices (ES2+ and ES9+ calls).
    let (mut calls, mut calls_ms) = (0u64, 0u64);
    for e in &c.events {
        if let EventKind::Step {
            function,
            duration_ms,
            ..
        } = e.kind
            && matches!(
                function.interface(),
                ferrosim_telemetry::Interface::Es2Plus | ferrosim_telemetry::Interface::Es9Plus
            )
            && eid_set.contains(&e.device)
        {
            calls += 1;
            calls_ms += u64::from(duration_ms);
        }
    }
    let failover = (cmp.kind == ComparisonKind::Failover).then(|| {
        let done: Vec<(u32, i64)> = c
            .failover_done
            .iter()
            .filter(|(n, ..)| is_member(*n))
            .map(|(n, took, _)| (*n, *took))
            .collect();
        // How long each failover waited before the fleet could issue the
        // enable: the profile's provisioning, when it had to be provisioned.
        let waits: Vec<i64> = c
            .failover_done
            .iter()
            .filter(|(n, ..)| is_member(*n))
            .map(|(_, _, wait)| *wait)
            .collect();
        let returned: Vec<(u32, i64)> = c
            .return_done
            .iter()
            .copied()
            .filter(|(n, _)| is_member(*n))
            .collect();
        let provisioned: Vec<i64> = c
            .provisioned
            .iter()
            .filter(|(n, ..)| is_member(*n))
            .map(|(_, ordered, installed)| installed - ordered)
            .collect();
        let switched: BTreeSet<u32> = done.iter().chain(&returned).map(|(n, _)| *n).collect();
        let times: Vec<i64> = done.iter().map(|(_, ms)| *ms).collect();
        let mean = mean_s(&times);
        FailoverArm {
            completion_s: seconds(&times),
            completion_mean_s: mean,
            completed_after_refusal: switched
                .iter()
                .filter(|n| {
                    all_eids
                        .get(**n as usize)
                        .is_some_and(|e| refused_devices.contains(e))
                })
                .count() as u64,
            return_s: seconds(&returned.iter().map(|(_, ms)| *ms).collect::<Vec<_>>()),
            provisioning_s: seconds(&provisioned),
            provisioning_mean_s: mean_s(&provisioned),
            waiting_for_provisioning_mean_s: mean_s(&waits),
            completion_without_provisioning_mean_s: mean_s(
                &times
                    .iter()
                    .zip(&waits)
                    .map(|(t, w)| t - w)
                    .collect::<Vec<_>>(),
            ),
            provisioning_calls: calls,
            provisioning_calls_s: calls_ms as f64 / 1000.0,
        }
    });
    let rollout = (cmp.kind == ComparisonKind::Rollout).then(|| {
        let outcome = c
            .rollouts
            .iter()
            .find(|r| r.name == name)
            .cloned()
            .unwrap_or_else(|| RolloutOutcome {
                name: name.to_owned(),
                state: "not started".into(),
                waves: Vec::new(),
                waves_started: 0,
                devices_changed: 0,
                eligible: 0,
                gates: Vec::new(),
            });
        let exposed: Vec<&(u32, i64)> = c
            .bad_apn_exposure
            .iter()
            .filter(|(n, _)| is_member(*n))
            .collect();
        let distinct: BTreeSet<u32> = exposed.iter().map(|(n, _)| *n).collect();
        RolloutArm {
            outcome,
            devices_with_bad_apn: distinct.len() as u64,
            bad_apn_device_minutes: exposed.iter().map(|(_, ms)| *ms).sum::<i64>() as f64
                / 60_000.0,
            devices_on_bad_apn_at_end: c.bad_apn_at_end.iter().filter(|n| is_member(**n)).count()
                as u64,
        }
    });
    Arm {
        name: name.to_owned(),
        devices,
        registrations: conn.registration_attempts,
        registration_success_rate: conn.registration_success_rate,
        attaches_refused_congestion: refused,
        data_path_checks: conn.data_path_checks,
        data_path_failures,
        failover,
        rollout,
    }
}

/// The mean of a sample of milliseconds, in seconds.
fn mean_s(ms: &[i64]) -> Option<f64> {
    (!ms.is_empty()).then(|| ms.iter().sum::<i64>() as f64 / ms.len() as f64 / 1000.0)
}

/// A rollout's gates in a line: `wave 1 fail (data_path_success 0.000 <
/// 0.950)`.
pub fn gates_text(gates: &[GateOutcome]) -> String {
    if gates.is_empty() {
        return "none judged".into();
    }
    gates
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let failed: Vec<String> = g
                .failed
                .iter()
                .map(|(m, w, b)| match w {
                    Some(w) => format!("{m} {w:.3} < {b:.3}"),
                    None => format!("{m} (no data) < {b:.3}"),
                })
                .collect();
            if failed.is_empty() {
                format!("wave {} {}", i + 1, g.verdict)
            } else {
                format!("wave {} {} ({})", i + 1, g.verdict, failed.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The comparison as an HTML section (a table of both arms).
pub fn html(cmp: &ComparisonReport) -> String {
    let opt = |v: Option<f64>, unit: &str| v.map_or("–".to_owned(), |v| format!("{v:.1}{unit}"));
    let pct = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{:.2} %", v * 100.0));
    let mut rows: Vec<(String, String, String)> = vec![
        (
            "devices".into(),
            cmp.a.devices.to_string(),
            cmp.b.devices.to_string(),
        ),
        (
            "registration attempts".into(),
            cmp.a.registrations.to_string(),
            cmp.b.registrations.to_string(),
        ),
        (
            "registration success".into(),
            pct(cmp.a.registration_success_rate),
            pct(cmp.b.registration_success_rate),
        ),
        (
            "attaches refused (EMM cause 22)".into(),
            cmp.a.attaches_refused_congestion.to_string(),
            cmp.b.attaches_refused_congestion.to_string(),
        ),
        (
            "data-path checks / failed".into(),
            format!("{} / {}", cmp.a.data_path_checks, cmp.a.data_path_failures),
            format!("{} / {}", cmp.b.data_path_checks, cmp.b.data_path_failures),
        ),
    ];
    if let (Some(a), Some(b)) = (&cmp.a.failover, &cmp.b.failover) {
        let p = |s: &SecondsPercentiles| {
            format!(
                "{} done; p50 {} p90 {} p99 {} max {}",
                s.count,
                opt(s.p50, " s"),
                opt(s.p90, " s"),
                opt(s.p99, " s"),
                opt(s.max, " s")
            )
        };
        rows.push((
            "failovers completed".into(),
            p(&a.completion_s),
            p(&b.completion_s),
        ));
        rows.push(("returns completed".into(), p(&a.return_s), p(&b.return_s)));
        rows.push((
            "profiles provisioned (ES2+ order to installed)".into(),
            p(&a.provisioning_s),
            p(&b.provisioning_s),
        ));
        rows.push((
            "mean provisioning".into(),
            opt(a.provisioning_mean_s, " s"),
            opt(b.provisioning_mean_s, " s"),
        ));
        rows.push((
            "mean time from the switch to the enable".into(),
            opt(a.waiting_for_provisioning_mean_s, " s"),
            opt(b.waiting_for_provisioning_mean_s, " s"),
        ));
        rows.push((
            "mean time from the enable to the registration".into(),
            opt(a.completion_without_provisioning_mean_s, " s"),
            opt(b.completion_without_provisioning_mean_s, " s"),
        ));
        rows.push((
            "ES2+ and ES9+ calls (their time)".into(),
            format!("{} ({:.1} s)", a.provisioning_calls, a.provisioning_calls_s),
            format!("{} ({:.1} s)", b.provisioning_calls, b.provisioning_calls_s),
        ));
        rows.push((
            "mean failover completion".into(),
            opt(a.completion_mean_s, " s"),
            opt(b.completion_mean_s, " s"),
        ));
        rows.push((
            "devices switched that had an attach refused".into(),
            a.completed_after_refusal.to_string(),
            b.completed_after_refusal.to_string(),
        ));
    }
    if let (Some(a), Some(b)) = (&cmp.a.rollout, &cmp.b.rollout) {
        rows.push((
            "rollout state".into(),
            a.outcome.state.clone(),
            b.outcome.state.clone(),
        ));
        rows.push((
            "waves (started)".into(),
            format!("{:?} ({})", a.outcome.waves, a.outcome.waves_started),
            format!("{:?} ({})", b.outcome.waves, b.outcome.waves_started),
        ));
        rows.push((
            "devices changed".into(),
            a.outcome.devices_changed.to_string(),
            b.outcome.devices_changed.to_string(),
        ));
        rows.push((
            "gates".into(),
            gates_text(&a.outcome.gates),
            gates_text(&b.outcome.gates),
        ));
        rows.push((
            "devices that got the unserved APN".into(),
            a.devices_with_bad_apn.to_string(),
            b.devices_with_bad_apn.to_string(),
        ));
        rows.push((
            "device-minutes on it".into(),
            format!("{:.1}", a.bad_apn_device_minutes),
            format!("{:.1}", b.bad_apn_device_minutes),
        ));
        rows.push((
            "still on it at the end".into(),
            a.devices_on_bad_apn_at_end.to_string(),
            b.devices_on_bad_apn_at_end.to_string(),
        ));
    }
    maud::html! {
        h2 { "Comparison: " (cmp.name) }
        table {
            tr { th { "" } th { (cmp.a.name) } th { (cmp.b.name) } }
            @for (what, a, b) in &rows {
                tr { th { (what) } td { (a) } td { (b) } }
            }
        }
    }
    .into_string()
}
