//! Failover end to end in the decision core, driven by hand-built reports:
//! devices on carrier A with a staged fallback on B; A fails and they
//! switch within the rule's bound, never faster onto B than its limit; A
//! recovers and they return after the dwell. Plus operator-declared
//! outages, device-local fallback, fresh provisioning without a staged
//! fallback, and the property that an oscillating carrier never makes a
//! device switch more often than its rule allows.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{World, spec};
use ferrosim_fleet::Command;
use ferrosim_fleet::decision::{Reason, What};
use ferrosim_fleet::device::Mode;
use ferrosim_fleet::report::SwitchCause;
use ferrosim_ids::Timestamp;
use proptest::prelude::*;

fn fleet_of(n: u32, group: &str, seed: u64) -> World {
    let mut w = World::new(common::EXAMPLE, seed);
    for i in 0..n {
        w.add(spec(i, group, "north"));
    }
    w.run_for(Duration::from_secs(120));
    assert_eq!(w.converged(), n as usize, "provisioned");
    w
}

/// Switch decisions onto `carrier`, as (time, device).
fn switches_onto(w: &World, carrier: ferrosim_fleet::catalog::CarrierId) -> Vec<Timestamp> {
    w.decisions
        .iter()
        .filter_map(|d| match d.what {
            What::Switch { to, .. } if w.fleet.catalog().carrier_of(to) == carrier => Some(d.at),
            _ => None,
        })
        .collect()
}

fn max_in_any_minute(times: &[Timestamp]) -> usize {
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| t.millis() < times[i].millis() + 60_000)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn carrier_a_fails_devices_switch_to_b_at_its_rate_and_return_after_the_dwell() {
    let mut w = fleet_of(40, "meters", 11);
    let (a, b, c) = (
        w.carrier("carrier-a"),
        w.carrier("carrier-b"),
        w.carrier("carrier-c"),
    );
    let rate = w.fleet.switch_rate(b, w.now) as usize;
    assert_eq!(rate, 4, "10 % of the 40 devices staged on B per minute");

    // A goes down in every region.
    let failed_at = w.now;
    w.down.insert((a, "*".into()));
    w.run_for(Duration::from_secs(15 * 60));
    let all = common::eid(0);
    let on_b = w
        .devices
        .keys()
        .filter(|e| w.enabled_carrier(e) == Some(b))
        .count();
    assert_eq!(on_b, 40, "every device on its fallback");
    // Detected from the failure rate in the first report round.
    let detected = w
        .decisions
        .iter()
        .find(|d| matches!(d.what, What::OutageStart { carrier, .. } if carrier == a))
        .unwrap();
    assert!(
        matches!(detected.reason, Reason::FailureRate { failures, attempts, threshold } if f64::from(failures) >= threshold * f64::from(attempts) && attempts >= 20),
        "{detected:?}"
    );
    // Within the rule's bound: three failed registrations (reports every
    // 30 s: at most 90 s), then 40 devices at 4 per minute, plus the jitter.
    let onto_b = switches_onto(&w, b);
    assert_eq!(onto_b.len(), 40);
    let last = onto_b.last().unwrap();
    let bound = Duration::from_secs(90 + 40 / 4 * 60 + 20);
    assert!(
        last.since(failed_at) <= bound,
        "last switch {:?} after the failure",
        last.since(failed_at)
    );
    assert!(
        max_in_any_minute(&onto_b) <= rate,
        "at most {rate} switches onto B in any minute"
    );
    // Every switch says why, with the inputs.
    for d in w
        .decisions
        .iter()
        .filter(|d| matches!(d.what, What::Switch { .. }))
    {
        let ok = match d.reason {
            Reason::CarrierOutage {
                carrier,
                declared: false,
            } => carrier == a,
            Reason::RegistrationFailures {
                failures,
                threshold,
                within_s,
                window_s,
            } => failures >= threshold && within_s <= window_s,
            _ => false,
        };
        assert!(ok, "{d:?}");
    }
    // A third carrier was staged for each: C pre-authorised for A.
    let d = w.fleet.device(&all).unwrap();
    assert_eq!(d.desired.mode, Mode::Fallback);
    assert_eq!(
        d.desired.spare.map(|s| w.fleet.catalog().carrier_of(s)),
        Some(c)
    );
    assert!(
        w.devices[&all]
            .profiles
            .iter()
            .any(|p| w.fleet.catalog().carrier_of(p.profile_type) == c && p.fallback)
    );

    // A recovers. Probes find it working, the outage ends, and after the
    // dwell (15 min) the devices return, at A's rate.
    let recovered_at = w.now;
    w.down.clear();
    w.run_for(Duration::from_secs(60 * 60));
    let end = w
        .decisions
        .iter()
        .find(|d| matches!(d.what, What::OutageEnd { carrier, .. } if carrier == a))
        .unwrap();
    let back: Vec<_> = w
        .decisions
        .iter()
        .filter(|d| {
            matches!(
                d.what,
                What::Switch {
                    failover: false,
                    ..
                }
            )
        })
        .collect();
    assert!(
        back.iter()
            .any(|d| matches!(d.reason, Reason::Probe { .. })),
        "probes first"
    );
    for d in back
        .iter()
        .filter(|d| !matches!(d.reason, Reason::Probe { .. }))
    {
        let Reason::PrimaryHealthy {
            healthy_for_s,
            dwell_s,
            on_fallback_s,
            min_on_fallback_s,
        } = d.reason
        else {
            panic!("{d:?}");
        };
        assert!(healthy_for_s >= dwell_s && on_fallback_s >= min_on_fallback_s);
        assert!(
            d.at.since(end.at) >= Duration::from_secs(15 * 60),
            "after the dwell"
        );
    }
    assert!(end.at > recovered_at);
    let on_a = w
        .devices
        .keys()
        .filter(|e| w.enabled_carrier(e) == Some(a))
        .count();
    assert_eq!(on_a, 40, "everyone back on A");
    assert!(max_in_any_minute(&switches_onto(&w, a)) <= w.fleet.switch_rate(a, w.now) as usize);
    // Back to the original shape: B staged with the attribute, C removed.
    w.run_for(Duration::from_secs(120));
    for dev in w.devices.values() {
        let carriers: Vec<_> = dev
            .profiles
            .iter()
            .map(|p| w.fleet.catalog().carrier_of(p.profile_type))
            .collect();
        assert_eq!(carriers.len(), 2, "{carriers:?}");
        assert!(
            dev.profiles
                .iter()
                .any(|p| p.fallback && w.fleet.catalog().carrier_of(p.profile_type) == b)
        );
    }
    assert_eq!(w.converged(), 40);
    // Nobody switched more than the rule allows in any hour.
    at_most_switches_an_hour(&w, 4).unwrap();
}

#[test]
fn a_declared_outage_switches_at_once_and_returns_after_the_operator_ends_it() {
    let mut w = fleet_of(10, "meters", 12);
    let (a, b) = (w.carrier("carrier-a"), w.carrier("carrier-b"));
    w.fleet
        .declare_outage("carrier-a", Some("north"), w.now)
        .unwrap();
    assert!(w.fleet.declare_outage("carrier-x", None, w.now).is_err());
    assert!(
        w.fleet
            .declare_outage("carrier-a", Some("west"), w.now)
            .is_err()
    );
    w.down.insert((a, "north".into()));
    // 10 devices at 10 % of 10 per minute: one a minute.
    w.run_for(Duration::from_secs(11 * 60));
    assert!(w.devices.keys().all(|e| w.enabled_carrier(e) == Some(b)));
    assert!(
        w.decisions
            .iter()
            .filter(|d| matches!(d.what, What::Switch { .. }))
            .all(|d| matches!(d.reason, Reason::CarrierOutage { declared: true, .. }))
    );
    // A works again but the operator has not said so: nobody returns.
    w.down.clear();
    w.run_for(Duration::from_secs(30 * 60));
    assert!(w.devices.keys().all(|e| w.enabled_carrier(e) == Some(b)));
    let ended = w.now;
    w.fleet
        .end_outage("carrier-a", Some("north"), w.now)
        .unwrap();
    w.run_for(Duration::from_secs(14 * 60));
    assert!(
        w.devices.keys().all(|e| w.enabled_carrier(e) == Some(b)),
        "dwell of 15 min"
    );
    w.run_for(Duration::from_secs(12 * 60));
    assert!(w.devices.keys().all(|e| w.enabled_carrier(e) == Some(a)));
    let first_back = w
        .decisions
        .iter()
        .find(|d| {
            matches!(
                d.what,
                What::Switch {
                    failover: false,
                    ..
                }
            )
        })
        .unwrap();
    assert!(first_back.at.since(ended) >= Duration::from_secs(15 * 60));
}

#[test]
fn registration_failures_of_one_device_switch_it_alone() {
    let mut w = fleet_of(5, "meters", 13);
    let one = common::eid(3);
    for _ in 0..3 {
        let report = ferrosim_fleet::DeviceReport {
            device: one,
            kind: ferrosim_fleet::report::ReportKind::Registration {
                outcome: ferrosim_fleet::report::Registration::Rejected { cause: 15 },
                plmn: None,
            },
        };
        w.fleet.handle_report(&report, w.now).unwrap();
        w.now = w.now.plus(Duration::from_secs(10));
    }
    w.poll();
    w.now = w.now.plus(Duration::from_secs(25));
    w.poll();
    let sw: Vec<_> = w
        .decisions
        .iter()
        .filter(|d| matches!(d.what, What::Switch { .. }))
        .collect();
    assert_eq!(sw.len(), 1);
    assert_eq!(sw[0].device, Some(one));
    assert!(
        matches!(sw[0].reason, Reason::RegistrationFailures { failures: 3, threshold: 3, within_s, window_s: 300 } if (20..=55).contains(&within_s)),
        "{:?}",
        sw[0].reason
    );
    assert_eq!(w.fleet.device(&one).unwrap().desired.mode, Mode::Fallback);
    // Bad reports are refused and change nothing.
    let bad = ferrosim_fleet::DeviceReport {
        device: one,
        kind: ferrosim_fleet::report::ReportKind::DataPath {
            latency_ms: 1,
            loss_permille: 1001,
        },
    };
    assert!(w.fleet.handle_report(&bad, w.now).is_err());
    let unknown = ferrosim_fleet::DeviceReport {
        device: common::eid(99),
        ..bad
    };
    assert!(w.fleet.handle_report(&unknown, w.now).is_err());
    assert!(
        serde_json::from_str::<ferrosim_fleet::DeviceReport>(
            r#"{"device":"1","kind":{"type":"x"}}"#
        )
        .is_err()
    );
}

#[test]
fn device_local_fallback_uses_the_mechanism_and_is_adopted_when_the_device_acts_alone() {
    let config = common::EXAMPLE.replacen(
        "name = \"meters\"\nrule = \"default\"",
        "name = \"meters\"\nrule = \"device-local\"",
        1,
    );
    let mut w = World::new(&config, 14);
    for i in 0..4 {
        w.add(spec(i, "meters", "south"));
    }
    w.run_for(Duration::from_secs(120));
    let a = w.carrier("carrier-a");
    w.fleet
        .declare_outage("carrier-a", Some("south"), w.now)
        .unwrap();
    w.down.insert((a, "south".into()));
    // The rule's default fraction (5 %) of 4 devices: one a minute.
    w.run_for(Duration::from_secs(5 * 60));
    let executes = w
        .actions
        .iter()
        .filter(|(_, a)| matches!(a.command, Command::AgentExecuteFallback { .. }))
        .count();
    assert_eq!(
        executes, 4,
        "ExecuteFallbackMechanism through the device agent"
    );
    w.fleet
        .end_outage("carrier-a", Some("south"), w.now)
        .unwrap();
    w.down.clear();
    w.run_for(Duration::from_secs(12 * 60));
    let returns = w
        .actions
        .iter()
        .filter(|(_, a)| matches!(a.command, Command::AgentReturnFromFallback { .. }))
        .count();
    assert_eq!(returns, 4, "ReturnFromFallback");
    // A device that falls back by itself is taken as it is.
    let e = common::eid(0);
    let fb = w.devices[&e]
        .profiles
        .iter()
        .find(|p| p.fallback)
        .unwrap()
        .iccid
        .clone();
    w.device_switch(e, &fb, SwitchCause::FallbackExecuted);
    w.poll();
    let adopt = w
        .decisions
        .iter()
        .rev()
        .find(|d| matches!(d.what, What::Adopt { .. }))
        .unwrap();
    assert!(
        matches!(&adopt.reason, Reason::DeviceReport { event } if event == "fallback_executed")
    );
    assert_eq!(w.fleet.device(&e).unwrap().desired.mode, Mode::Fallback);
}

#[test]
fn without_a_staged_fallback_one_is_provisioned_afresh() {
    let mut w = fleet_of(3, "unstaged", 15);
    assert!(w.devices.values().all(|d| d.profiles.len() == 1));
    let (a, b) = (w.carrier("carrier-a"), w.carrier("carrier-b"));
    w.fleet.declare_outage("carrier-a", None, w.now).unwrap();
    w.down.insert((a, "*".into()));
    w.run_for(Duration::from_secs(300));
    assert!(w.devices.keys().all(|e| w.enabled_carrier(e) == Some(b)));
    assert!(
        w.decisions
            .iter()
            .any(|d| d.reason == Reason::NoStagedFallback)
    );
    let e = common::eid(0);
    let names: Vec<_> = w
        .actions
        .iter()
        .filter(|(_, a)| a.device == e)
        .map(|(_, a)| a.command.name())
        .collect();
    let after = names.iter().position(|n| *n == "agent.apnConfig").unwrap();
    assert_eq!(
        &names[after + 1..after + 4],
        [
            "es2.downloadOrder",
            "es2.confirmOrder",
            "eim.profileDownloadTrigger"
        ],
        "fresh provisioning: order, confirm, download"
    );
    assert!(
        names[after + 4..].contains(&"eim.enable"),
        "then the switch: {names:?}"
    );
}

/// Takes carrier `a` down everywhere and up again in turn, for the given
/// gaps in seconds (down first), then leaves it up for half an hour.
fn toggle_then_settle(w: &mut World, a: ferrosim_fleet::catalog::CarrierId, toggles: &[u64]) {
    for (i, gap) in toggles.iter().enumerate() {
        if i % 2 == 0 {
            w.down.insert((a, "*".into()));
        } else {
            w.down.clear();
        }
        w.run_for(Duration::from_secs(*gap));
    }
    w.down.clear();
    w.run_for(Duration::from_secs(1800));
}

/// No device switched more than `max` times within any hour.
fn at_most_switches_an_hour(w: &World, max: usize) -> Result<(), TestCaseError> {
    for (e, list) in &w.switches {
        let times: Vec<_> = list.iter().map(|s| s.0).collect();
        for (i, t) in times.iter().enumerate() {
            let in_hour = times[i..]
                .iter()
                .take_while(|x| x.millis() < t.millis() + 3_600_000)
                .count();
            prop_assert!(
                in_hour <= max,
                "device {e} switched {in_hour} times in an hour: {times:?}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    /// An oscillating carrier: A goes down and up at random moments over
    /// three hours. No device switches more often than its rule allows in
    /// any hour, and every switch or hold carries a reason consistent with
    /// its inputs.
    #[test]
    fn an_oscillating_carrier_never_makes_a_device_flap(
        seed in 0u64..1000,
        toggles in proptest::collection::vec(30u64..1200, 4..24),
    ) {
        let mut w = fleet_of(8, "meters", seed);
        w.step = Duration::from_secs(5);
        let a = w.carrier("carrier-a");
        toggle_then_settle(&mut w, a, &toggles);
        // Not vacuous: a long enough outage made devices switch.
        if toggles.iter().step_by(2).any(|g| *g >= 240) {
            prop_assert!(!w.switches.is_empty(), "no switch despite a 4-minute outage");
        }
        at_most_switches_an_hour(&w, 4)?;
        for d in &w.decisions {
            match (&d.what, &d.reason) {
                (What::Switch { failover: true, .. }, Reason::CarrierOutage { .. }) => {}
                (What::Switch { failover: true, .. }, Reason::RegistrationFailures { failures, threshold, within_s, window_s }) => {
                    prop_assert!(failures >= threshold && within_s <= window_s);
                }
                (What::Switch { failover: true, .. }, Reason::NoDataPath { since_ok_s, bound_s }) => prop_assert!(since_ok_s >= bound_s),
                (What::Switch { failover: false, .. }, Reason::PrimaryHealthy { healthy_for_s, dwell_s, on_fallback_s, min_on_fallback_s }) => {
                    prop_assert!(healthy_for_s >= dwell_s && on_fallback_s >= min_on_fallback_s);
                }
                (What::Switch { failover: false, .. }, Reason::Probe { .. }) => {}
                (What::Switch { .. }, other) => prop_assert!(false, "switch with reason {other:?}"),
                (What::Hold, Reason::SwitchBudget { switches_last_hour, max }) => prop_assert!(switches_last_hour >= max),
                _ => {}
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    /// A carrier whose network comes and goes while its devices roam on
    /// an unknown network in between (a rule switching after 2 minutes of
    /// roaming): no device switches more often than its rule allows in
    /// any hour, every roaming switch names the network and waited the
    /// rule's time, and the roaming never counts as the carrier's health.
    #[test]
    fn roaming_on_and_off_never_makes_a_device_flap(
        seed in 0u64..1000,
        toggles in proptest::collection::vec(30u64..1200, 4..24),
    ) {
        let config = common::EXAMPLE.replacen(
            "no_data_path = \"10m\"\n",
            "no_data_path = \"10m\"\nroaming = \"2m\"\n",
            1,
        );
        let mut w = World::new(&config, seed);
        for i in 0..8 {
            w.add(spec(i, "meters", "north"));
        }
        w.run_for(Duration::from_secs(120));
        prop_assert_eq!(w.converged(), 8);
        w.step = Duration::from_secs(5);
        let a = w.carrier("carrier-a");
        w.roam.insert(a, network("001-01"));
        toggle_then_settle(&mut w, a, &toggles);
        if toggles.iter().step_by(2).any(|g| *g >= 240) {
            prop_assert!(!w.switches.is_empty(), "no switch despite 4 minutes of roaming");
        }
        at_most_switches_an_hour(&w, 4)?;
        for d in &w.decisions {
            match (&d.what, &d.reason) {
                (What::Switch { failover: true, .. }, Reason::Roaming { plmn, network_carrier, carrier, for_s, bound_s }) => {
                    prop_assert_eq!((*plmn, *network_carrier, *carrier), (network("001-01"), None, a));
                    prop_assert!(for_s >= bound_s && *bound_s == 120, "{d:?}");
                }
                (What::Switch { failover: false, .. }, Reason::PrimaryHealthy { healthy_for_s, dwell_s, on_fallback_s, min_on_fallback_s }) => {
                    prop_assert!(healthy_for_s >= dwell_s && on_fallback_s >= min_on_fallback_s);
                }
                (What::Switch { .. }, Reason::CarrierOutage { .. } | Reason::Probe { .. }) => {
                    prop_assert!(false, "roaming devices made an outage of A: {d:?}");
                }
                (What::Switch { failover: true, .. }, Reason::RegistrationFailures { .. } | Reason::NoDataPath { .. }) => {}
                (What::Switch { .. }, other) => prop_assert!(false, "switch with reason {other:?}"),
                (What::Hold, Reason::SwitchBudget { switches_last_hour, max }) => prop_assert!(switches_last_hour >= max),
                _ => {}
            }
        }
    }
}

#[test]
fn latency_and_a_dead_data_path_trigger_their_rules() {
    let mut w = fleet_of(2, "meters", 16);
    let (slow, dead) = (common::eid(0), common::eid(1));
    let report = |device, latency_ms, loss_permille| ferrosim_fleet::DeviceReport {
        device,
        kind: ferrosim_fleet::report::ReportKind::DataPath {
            latency_ms,
            loss_permille,
        },
    };
    // Latency above 3000 ms three times in a row (the rule's bound).
    for latency in [3500, 4000] {
        w.fleet
            .handle_report(&report(slow, latency, 0), w.now)
            .unwrap();
    }
    w.fleet.handle_report(&report(slow, 100, 0), w.now).unwrap();
    for latency in [3500, 4000, 5000] {
        w.fleet
            .handle_report(&report(slow, latency, 0), w.now)
            .unwrap();
    }
    // No working data path: failing checks for 10 minutes.
    for _ in 0..=10 {
        w.fleet
            .handle_report(&report(dead, 40, 1000), w.now)
            .unwrap();
        w.now = w.now.plus(Duration::from_secs(60));
        w.poll();
    }
    w.now = w.now.plus(Duration::from_secs(120));
    w.poll();
    let reasons: Vec<_> = w
        .decisions
        .iter()
        .filter(|d| matches!(d.what, What::Switch { .. }))
        .map(|d| (d.device, d.reason.clone()))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons.iter().any(|(d, r)| *d == Some(slow)
        && matches!(
            r,
            Reason::Latency {
                latency_ms: 5000,
                bound_ms: 3000,
                streak: 3
            }
        )));
    assert!(reasons.iter().any(|(d, r)| *d == Some(dead)
        && matches!(r, Reason::NoDataPath { since_ok_s, bound_s: 600 } if *since_ok_s >= 600)));
}

fn network(text: &str) -> ferrosim_fleet::catalog::MccMnc {
    ferrosim_fleet::catalog::MccMnc::parse(text).unwrap()
}

fn registration(
    device: ferrosim_ids::Eid,
    outcome: ferrosim_fleet::report::Registration,
    plmn: Option<&str>,
) -> ferrosim_fleet::DeviceReport {
    ferrosim_fleet::DeviceReport {
        device,
        kind: ferrosim_fleet::report::ReportKind::Registration {
            outcome,
            plmn: plmn.map(network),
        },
    }
}

#[test]
fn registrations_on_other_networks_neither_hide_nor_end_an_outage_of_the_home_network() {
    use ferrosim_fleet::report::Registration;
    let mut w = fleet_of(40, "meters", 5);
    let (a, b) = (w.carrier("carrier-a"), w.carrier("carrier-b"));
    let north = w.fleet.catalog().region_id("north");
    // Past the window of the registrations while they were provisioned,
    // 20 devices find no network of A: an outage of A in the north.
    w.now = w.now.plus(Duration::from_secs(6 * 60));
    for i in 0..20 {
        let r = registration(common::eid(i), Registration::NoResponse, None);
        w.fleet.handle_report(&r, w.now).unwrap();
    }
    let h = *w.fleet.region_health(a, north).unwrap();
    assert!(h.in_outage() && h.totals() == (0, 20), "{h:?}");
    // Every device then registers on a network that is not A's (an
    // unknown one), five times: none of it is a sample of A's network.
    // Counted as A's successes, as they were before the fleet looked at
    // the network, they would have ended the outage (20 failures in 200
    // is the recover rate of 0.1).
    for _ in 0..5 {
        for i in 0..40 {
            let r = registration(common::eid(i), Registration::Registered, Some("001-01"));
            w.fleet.handle_report(&r, w.now).unwrap();
        }
    }
    // B's network refuses some of them (roaming not allowed): that is
    // policy, not a sample of B's health either.
    for i in 0..20 {
        let r = registration(
            common::eid(i),
            Registration::Rejected { cause: 11 },
            Some("234-15"),
        );
        w.fleet.handle_report(&r, w.now).unwrap();
    }
    let h = *w.fleet.region_health(a, north).unwrap();
    assert!(h.in_outage() && h.totals() == (0, 20), "{h:?}");
    assert!(
        w.fleet.region_health(b, north).is_none(),
        "B's health measured from roaming refusals"
    );
    let d = w.fleet.device(&common::eid(1)).unwrap();
    assert_eq!(d.health.registered_plmn.get(), Some(network("001-01")));
    assert!(!d.health.roaming_since.is_never());
    // Registrations on A's own networks (both of them) end it, on the
    // failure rate.
    for i in 0..200u32 {
        let plmn = if i % 2 == 0 { "310-410" } else { "310150" };
        let r = registration(common::eid(i % 40), Registration::Registered, Some(plmn));
        w.fleet.handle_report(&r, w.now).unwrap();
    }
    let h = *w.fleet.region_health(a, north).unwrap();
    assert!(!h.in_outage() && h.totals() == (200, 20), "{h:?}");
    assert!(
        w.fleet
            .device(&common::eid(1))
            .unwrap()
            .health
            .roaming_since
            .is_never(),
        "back at home"
    );
    w.poll();
    let ends: Vec<_> = w
        .decisions
        .iter()
        .filter(|d| matches!(d.what, What::OutageEnd { carrier, .. } if carrier == a))
        .collect();
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert!(
        matches!(
            ends[0].reason,
            Reason::FailureRate {
                failures: 20,
                attempts: 200,
                ..
            }
        ),
        "{:?}",
        ends[0]
    );
}

#[test]
fn a_device_roaming_away_from_its_carrier_switches_after_the_rules_time() {
    let config = common::EXAMPLE.replacen(
        "no_data_path = \"10m\"\n",
        "no_data_path = \"10m\"\nroaming = \"10m\"\n",
        1,
    );
    let mut w = World::new(&config, 8);
    for i in 0..8 {
        let region = if i < 4 { "north" } else { "south" };
        w.add(spec(i, "meters", region));
    }
    w.run_for(Duration::from_secs(120));
    assert_eq!(w.converged(), 8, "provisioned");
    let (a, b) = (w.carrier("carrier-a"), w.carrier("carrier-b"));
    // A's network is gone in the north; its devices there register on a
    // network the catalog does not know, with a working data path, and
    // report no failure at all.
    w.down.insert((a, "north".into()));
    w.roam.insert(a, network("001-01"));
    let roaming_from = w.now;
    w.run_for(Duration::from_secs(20 * 60));
    let switches: Vec<_> = w
        .decisions
        .iter()
        .filter(|d| matches!(d.what, What::Switch { failover: true, .. }))
        .collect();
    assert_eq!(switches.len(), 4, "{switches:?}");
    for d in &switches {
        let n = (0..4).find(|&i| d.device == Some(common::eid(i)));
        assert!(n.is_some(), "only the north's devices: {d:?}");
        match d.reason {
            Reason::Roaming {
                plmn,
                network_carrier: None,
                carrier,
                for_s,
                bound_s: 600,
            } => {
                assert_eq!((plmn, carrier), (network("001-01"), a), "{d:?}");
                assert!(for_s >= 600, "{d:?}");
                assert!(
                    d.at.since(roaming_from) >= Duration::from_secs(600),
                    "{d:?}"
                );
            }
            ref other => panic!("switched for {other:?}"),
        }
    }
    for i in 0..4 {
        assert_eq!(w.enabled_carrier(&common::eid(i)), Some(b), "device {i}");
    }
    for i in 4..8 {
        assert_eq!(w.enabled_carrier(&common::eid(i)), Some(a), "device {i}");
    }
    // Its carrier's health was never measured from the roaming devices.
    let north = w.fleet.catalog().region_id("north");
    assert!(
        w.fleet
            .region_health(a, north)
            .is_none_or(|h| !h.in_outage() && h.totals().1 == 0),
        "{:?}",
        w.fleet.region_health(a, north)
    );
}

#[test]
fn dims_at_a_position_are_the_dims_of_the_device_registered_there() {
    let mut w = fleet_of(6, "meters", 3);
    let a = w.carrier("carrier-a");
    w.down.insert((a, "*".into()));
    w.run_for(Duration::from_secs(15 * 60));
    let b = w.carrier("carrier-b");
    let eids: Vec<_> = w.fleet.devices().map(|d| d.eid).collect();
    assert!(eids.iter().any(|e| w.enabled_carrier(e) == Some(b)));
    for (i, eid) in eids.iter().enumerate() {
        let at = w.fleet.dims_at(i as u32);
        assert!(at.is_some());
        assert_eq!(at, w.fleet.dims(eid), "device {i}");
    }
    assert_eq!(w.fleet.dims_at(6), None);
    assert_eq!(w.fleet.dims_at(u32::MAX), None);
}
