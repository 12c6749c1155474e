//! Capabilities read through the IPA: a device registered without them is
//! asked first (EUICCInfo2, IpaCapabilities), what its IPA reports wins over
//! what the operator typed, and rollout compatibility filters use it.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{World, caps, spec};
use ferrosim_fleet::config::ProfileRef;
use ferrosim_fleet::decision::{Need, Reason, What};
use ferrosim_fleet::device::{Capabilities, Version};
use ferrosim_fleet::rollout::{ChangeSpec, Compat};
use ferrosim_fleet::{RolloutSpec, Span};

fn old_euicc() -> Capabilities {
    Capabilities {
        sgp32_version: Version([1, 0, 0]),
        fallback_supported: false,
        rollback_supported: true,
        ipa_features: 0b1,
        ipa_protocols: 0b1,
    }
}

fn needing(compat: Compat) -> RolloutSpec {
    RolloutSpec {
        name: "iot-v2".into(),
        groups: vec!["meters".into()],
        tags_any: vec![],
        change: ChangeSpec::ProfileType {
            to: ProfileRef {
                carrier: "carrier-a".into(),
                profile_type: "iot".into(),
                version: 2,
            },
        },
        waves: vec![100],
        soak: Span::mins(10),
        max_wait: Span::mins(30),
        gate: Default::default(),
        compat,
        manual_approval: false,
        seed: 7,
    }
}

/// A world of one device in `meters` registered without capabilities (so
/// the fleet asks its IPA for them), seeded with `seed`; and its EID.
fn one_device_without_declared_capabilities(seed: u64) -> (World, ferrosim_ids::Eid) {
    let mut w = World::new(common::EXAMPLE, seed);
    let mut s = spec(1, "meters", "north");
    s.capabilities = None;
    w.add(s);
    (w, common::eid(1))
}

#[test]
fn a_device_registered_without_capabilities_is_asked_for_them_first() {
    let (mut w, e) = one_device_without_declared_capabilities(31);
    assert!(w.fleet.device(&e).unwrap().work.read_caps);
    w.run_for(Duration::from_secs(60));
    assert_eq!(w.actions[0].1.command.name(), "eim.readCapabilities");
    assert!(matches!(
        w.decisions
            .iter()
            .find(|d| matches!(d.what, What::Issue { .. }))
            .unwrap()
            .reason,
        Reason::Gap {
            need: Need::Capabilities,
            ..
        }
    ));
    let d = w.fleet.device(&e).unwrap();
    assert_eq!(d.caps, caps(true));
    assert!(d.work.caps_from_ipa && !d.work.read_caps);
    assert!(d.work.converged, "then provisioned as usual");
    let asked = w
        .actions
        .iter()
        .filter(|(_, a)| a.command.name() == "eim.readCapabilities")
        .count();
    assert_eq!(asked, 1, "asked once");
    // Its fallback is staged with the attribute: the IPA said it can.
    assert!(
        w.actions
            .iter()
            .any(|(_, a)| a.command.name() == "eim.setFallbackAttribute")
    );
}

#[test]
fn what_the_ipa_reports_wins_over_what_was_typed() {
    let (mut w, e) = one_device_without_declared_capabilities(32);
    w.devices.get_mut(&e).unwrap().ipa_caps = Some(old_euicc());
    w.run_for(Duration::from_secs(60));
    let d = w.fleet.device(&e).unwrap();
    assert_eq!(d.caps.sgp32_version, Version([1, 0, 0]));
    assert!(d.work.converged);
    // No fallback mechanism on this eUICC: no fallback attribute is set.
    assert!(
        !w.actions
            .iter()
            .any(|(_, a)| a.command.name() == "eim.setFallbackAttribute")
    );
    // Rollout filters read the reported values.
    let id = w
        .fleet
        .create_rollout(
            needing(Compat {
                min_sgp32: Some("1.2".into()),
                ..Compat::default()
            }),
            w.now,
        )
        .unwrap();
    w.poll();
    let r = w.fleet.rollout(id).unwrap();
    assert_eq!((r.eligible, r.skipped), (0, 1));
    assert!(w.decisions.iter().any(|d| matches!(
        &d.reason,
        Reason::Incompatible { filter } if filter == "SGP.32 1.0.0 < 1.2.0"
    )));
}

#[test]
fn an_ipa_without_an_answer_leaves_the_registered_capabilities_in_use() {
    let (mut w, e) = one_device_without_declared_capabilities(33);
    w.devices.get_mut(&e).unwrap().ipa_caps = None;
    w.run_for(Duration::from_secs(120));
    let d = w.fleet.device(&e).unwrap();
    assert!(!d.work.caps_from_ipa);
    assert_eq!(d.caps.sgp32_version, Version([0, 0, 0]), "the defaults");
    assert!(!d.work.read_caps, "not asked again and again");
    assert!(d.work.converged);
    // Filters needing capabilities skip it, saying so, until it is known...
    let mut unknown = World::new(common::EXAMPLE, 34);
    let mut s = spec(2, "meters", "north");
    s.capabilities = None;
    unknown.add(s);
    let id = unknown
        .fleet
        .create_rollout(
            needing(Compat {
                requires_fallback_support: true,
                ..Compat::default()
            }),
            unknown.now,
        )
        .unwrap();
    unknown.poll();
    assert_eq!(unknown.fleet.rollout(id).unwrap().skipped, 1);
    assert!(unknown.decisions.iter().any(|d| matches!(
        &d.reason,
        Reason::Incompatible { filter } if filter.contains("not read through the IPA")
    )));
}

#[test]
fn typed_capabilities_are_used_without_asking() {
    let mut w = World::new(common::EXAMPLE, 35);
    w.add(spec(1, "meters", "north"));
    w.run_for(Duration::from_secs(60));
    assert!(
        !w.actions
            .iter()
            .any(|(_, a)| a.command.name() == "eim.readCapabilities")
    );
    let d = w.fleet.device(&common::eid(1)).unwrap();
    assert!(!d.work.caps_from_ipa);
    assert_eq!(d.caps, caps(true));
}

#[test]
fn capabilities_the_ipa_reports_later_replace_the_old_ones_everywhere() {
    // An old eUICC: SGP.32 1.0.0, no fallback mechanism; the rollout
    // needing 1.2 skips it and no fallback attribute is set.
    let (mut w, e) = one_device_without_declared_capabilities(36);
    w.devices.get_mut(&e).unwrap().ipa_caps = Some(old_euicc());
    w.run_for(Duration::from_secs(60));
    assert!(w.fleet.device(&e).unwrap().work.converged);
    let v12 = || Compat {
        min_sgp32: Some("1.2".into()),
        requires_fallback_support: true,
        ..Compat::default()
    };
    let first = w.fleet.create_rollout(needing(v12()), w.now).unwrap();
    w.poll();
    assert_eq!(w.fleet.rollout(first).unwrap().skipped, 1);
    let set_attribute = |w: &World| {
        w.actions
            .iter()
            .filter(|(_, a)| a.command.name() == "eim.setFallbackAttribute")
            .count()
    };
    assert_eq!(set_attribute(&w), 0);
    // A firmware update: the IPA reports SGP.32 1.2.0 with the fallback
    // mechanism (to a data request the operator queued at the eIM).
    let new = caps(true);
    w.devices.get_mut(&e).unwrap().ipa_caps = Some(new);
    assert!(w.fleet.refresh_capabilities(&e, &new, w.now).unwrap());
    w.run_for(Duration::from_secs(60));
    let d = w.fleet.device(&e).unwrap();
    assert_eq!(d.caps, new);
    assert!(d.work.caps_from_ipa && d.work.converged);
    // Logged, with the new values and why.
    let logged = w
        .decisions
        .iter()
        .filter(|d| matches!(d.what, What::Capabilities { .. }))
        .collect::<Vec<_>>();
    assert_eq!(
        logged.len(),
        2,
        "the first answer and the update: {logged:?}"
    );
    assert!(
        matches!(
            (&logged[1].what, &logged[1].reason),
            (What::Capabilities { capabilities }, Reason::DeviceReport { event })
                if *capabilities == new && event == "ipa_euicc_data"
        ),
        "{:?}",
        logged[1]
    );
    // Used at once: the staged fallback gets the attribute now...
    assert_eq!(set_attribute(&w), 1);
    // ...and a rollout needing 1.2 with the fallback mechanism takes it.
    let second = w.fleet.create_rollout(needing(v12()), w.now).unwrap();
    w.poll();
    let r = w.fleet.rollout(second).unwrap();
    assert_eq!((r.eligible, r.skipped), (1, 0));
    // The same report again changes nothing and logs nothing.
    assert!(!w.fleet.refresh_capabilities(&e, &new, w.now).unwrap());
    let unknown = common::eid(99);
    assert!(w.fleet.refresh_capabilities(&unknown, &new, w.now).is_err());
}
