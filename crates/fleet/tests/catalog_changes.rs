//! Operators' changes of the catalog on a running fleet: carriers, groups
//! and rules created, changed and deleted; a reordered configuration keeps
//! every device's state by name; deletes that would strand devices, a
//! rollout or another item are refused and change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{World, spec};
use ferrosim_fleet::FleetError;
use ferrosim_fleet::config::{CarrierConfig, FleetConfig};
use ferrosim_fleet::device::flags;
use rand::SeedableRng;

/// A device's desired primary and fallback, and its observed profiles
/// (type, enabled), by label.
type Labels = (String, Option<String>, Vec<(Option<String>, bool)>);

/// The labels of a device's desired and observed profile types.
fn labels(w: &World, n: u32) -> Labels {
    let cat = w.fleet.catalog();
    let d = w.fleet.device(&common::eid(n)).unwrap();
    (
        cat.profile_label(d.desired.primary),
        d.desired.fallback.map(|t| cat.profile_label(t)),
        d.observed
            .iter()
            .map(|p| {
                (
                    p.profile_type.map(|t| cat.profile_label(t)),
                    p.has(flags::ENABLED),
                )
            })
            .collect(),
    )
}

fn converged_world() -> World {
    let mut w = World::new(common::EXAMPLE, 7);
    for n in 0..4 {
        w.add(spec(n, "meters", "north"));
    }
    w.run_for(Duration::from_secs(120));
    assert_eq!(w.converged(), 4);
    w
}

fn carrier(w: &World, name: &str) -> CarrierConfig {
    w.fleet
        .catalog()
        .config()
        .carriers
        .iter()
        .find(|c| c.name == name)
        .unwrap()
        .clone()
}

#[test]
fn a_reordered_configuration_keeps_every_device_by_name() {
    let mut w = converged_world();
    let before: Vec<_> = (0..4).map(|n| labels(&w, n)).collect();
    let mut config: FleetConfig = w.fleet.catalog().config().clone();
    config.carriers.reverse();
    config.groups.reverse();
    config.rules.reverse();
    let old_a = w.carrier("carrier-a");
    w.fleet.reconfigure(config, w.now).unwrap();
    assert_ne!(w.carrier("carrier-a"), old_a, "the ids moved");
    let after: Vec<_> = (0..4).map(|n| labels(&w, n)).collect();
    assert_eq!(before, after);
    for n in 0..4 {
        let d = w.fleet.device(&common::eid(n)).unwrap();
        assert_eq!(w.fleet.catalog().group(d.group).name, "meters");
    }
    // Nothing to do for converged devices under the same (reordered)
    // catalog: no action issued.
    w.fleet
        .poll(w.now, &mut rand::rngs::StdRng::from_seed([3; 32]));
    assert!(w.fleet.poll_action().is_none());
}

#[test]
fn carriers_are_created_changed_and_deleted_unless_in_use() {
    let mut w = converged_world();
    // A new carrier, then a change of it (its networks and rate limits).
    let mut d = carrier(&w, "carrier-c");
    d.name = "carrier-d".into();
    d.mcc_mnc = vec!["262-01".into()];
    d.fallback_carriers = vec!["carrier-a".into()];
    assert!(w.fleet.put_carrier(d.clone(), w.now).unwrap());
    d.rate_limits.es2_per_minute = 5;
    assert!(!w.fleet.put_carrier(d.clone(), w.now).unwrap());
    assert_eq!(carrier(&w, "carrier-d").rate_limits.es2_per_minute, 5);
    // An invalid change (a fallback carrier that does not exist) changes
    // nothing.
    let mut bad = d.clone();
    bad.fallback_carriers = vec!["nobody".into()];
    assert!(matches!(
        w.fleet.put_carrier(bad, w.now),
        Err(FleetError::InvalidConfig(_))
    ));
    assert_eq!(carrier(&w, "carrier-d"), d);
    // In use: a group's primary, another carrier's fallback.
    let before = w.fleet.catalog().config().clone();
    for name in ["carrier-a", "carrier-b", "carrier-c"] {
        match w.fleet.delete_carrier(name, w.now) {
            Err(FleetError::InUse(m)) => assert!(m.contains(name), "{m}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!(w.fleet.catalog().config(), &before);
    assert!(matches!(
        w.fleet.delete_carrier("nobody", w.now),
        Err(FleetError::UnknownItem { .. })
    ));
    let labels_before: Vec<_> = (0..4).map(|n| labels(&w, n)).collect();
    w.fleet.delete_carrier("carrier-d", w.now).unwrap();
    assert!(w.fleet.catalog().carrier_id("carrier-d").is_none());
    assert_eq!(
        labels_before,
        (0..4).map(|n| labels(&w, n)).collect::<Vec<_>>()
    );
}

#[test]
fn groups_and_rules_in_use_are_not_deleted() {
    let mut w = converged_world();
    match w.fleet.delete_group("meters", w.now) {
        Err(FleetError::InUse(m)) => assert!(m.contains("4 device"), "{m}"),
        other => panic!("{other:?}"),
    }
    match w.fleet.delete_rule("default", w.now) {
        Err(FleetError::InUse(m)) => assert!(m.contains("group"), "{m}"),
        other => panic!("{other:?}"),
    }
    // A group without devices goes; then a rule no group names.
    w.fleet.delete_group("unstaged", w.now).unwrap();
    let mut rule = w.fleet.catalog().config().rules[0].clone();
    rule.name = "spare-rule".into();
    rule.max_switches_per_hour = 1;
    assert!(w.fleet.put_rule(rule.clone(), w.now).unwrap());
    rule.max_switches_per_hour = 2;
    assert!(!w.fleet.put_rule(rule, w.now).unwrap());
    w.fleet.delete_rule("spare-rule", w.now).unwrap();
    // A group changed to another rule: its devices follow it at once.
    let mut g = w.fleet.catalog().config().groups[0].clone();
    g.rule = "device-local".into();
    assert!(!w.fleet.put_group(g, w.now).unwrap());
    let meters = w.fleet.catalog().group_id("meters").unwrap();
    assert_eq!(
        w.fleet
            .catalog()
            .rule(w.fleet.catalog().group(meters).rule)
            .name,
        "device-local"
    );
    // The devices still converge under the changed catalog.
    w.run_for(Duration::from_secs(120));
    assert_eq!(w.converged(), 4);
}
