//! Staged rollouts gated on telemetry: a profile type with a wrong APN
//! (devices register, the data path fails) halts at the canary and rolls
//! every canary device back, touching no other device; a healthy rollout
//! completes all waves; a restart mid-rollout resumes where it was;
//! incompatible devices are skipped and say why; operator commands.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{World, spec};
use ferrosim_fleet::config::ProfileRef;
use ferrosim_fleet::decision::{Reason, What};
use ferrosim_fleet::device::MarkState;
use ferrosim_fleet::gate::Verdict;
use ferrosim_fleet::rollout::{ChangeSpec, Compat};
use ferrosim_fleet::{Fleet, FleetError, RolloutSpec, RolloutState, Snapshot, Span};
use ferrosim_ids::Eid;

const DEVICES: u32 = 200;

fn fleet(seed: u64) -> World {
    let mut w = World::new(common::EXAMPLE, seed);
    for i in 0..DEVICES {
        let mut s = spec(i, "meters", if i % 2 == 0 { "north" } else { "south" });
        if i % 50 == 49 {
            s.firmware = "1.4.0".into();
        }
        w.add(s);
    }
    w.run_for(Duration::from_secs(120));
    assert_eq!(w.converged(), DEVICES as usize);
    w
}

fn to_version(version: u16) -> RolloutSpec {
    RolloutSpec {
        name: format!("iot-v{version}"),
        groups: vec!["meters".into()],
        tags_any: vec![],
        change: ChangeSpec::ProfileType {
            to: ProfileRef {
                carrier: "carrier-a".into(),
                profile_type: "iot".into(),
                version,
            },
        },
        waves: vec![1, 10, 50, 100],
        soak: Span::mins(10),
        max_wait: Span::mins(30),
        gate: Default::default(),
        compat: Compat {
            min_firmware: Some("2.0".into()),
            ..Compat::default()
        },
        manual_approval: false,
        seed: 7,
    }
}

fn version_of(w: &World, e: &Eid) -> u16 {
    let t = w.enabled_type(e).unwrap();
    w.fleet.catalog().profile_type(t).version
}

#[test]
fn a_broken_profile_type_halts_at_the_canary_and_rolls_it_back() {
    let mut w = fleet(21);
    let before = w.actions.len();
    let id = w.fleet.create_rollout(to_version(2), w.now).unwrap();
    w.run_for(Duration::from_secs(25 * 60));
    let r = w.fleet.rollout(id).unwrap();
    assert_eq!(r.state, RolloutState::Halted);
    assert_eq!(r.skipped, 4, "firmware 1.4.0 devices");
    assert_eq!(r.eligible, 196);
    assert_eq!(r.members.len(), 1, "only the canary wave ran");
    let canary: BTreeSet<Eid> = r.members[0].iter().copied().collect();
    assert_eq!(canary.len(), 2, "1 % of 196, rounded up");
    // The gate failed on the data path, with the numbers.
    let gate = &r.gates[0];
    assert_eq!(gate.verdict, Verdict::Fail);
    let dp = gate
        .checks
        .iter()
        .find(|c| c.metric == "data_path_success")
        .unwrap();
    // (One check in the window came before the switch to v2.)
    assert!(dp.wave.unwrap() < 0.1, "{dp:?}");
    assert!(dp.control.unwrap() > 0.99 && !dp.passed);
    let reg = gate
        .checks
        .iter()
        .find(|c| c.metric == "registration_success")
        .unwrap();
    assert!(reg.passed, "they do register");
    assert!(
        w.decisions
            .iter()
            .any(|d| matches!(d.what, What::GateFail { wave: 0 })
                && matches!(d.reason, Reason::Gate { .. }))
    );
    // Every canary device is back on v1 and v2 is gone from it.
    for e in &canary {
        assert_eq!(version_of(&w, e), 1, "{e} rolled back");
        assert!(w.data_ok(e));
        let versions: Vec<u16> = w.devices[e]
            .profiles
            .iter()
            .map(|p| w.fleet.catalog().profile_type(p.profile_type).version)
            .collect();
        assert!(!versions.contains(&2), "{versions:?}");
        assert_eq!(
            w.fleet.device(e).unwrap().rollout.unwrap().state,
            MarkState::RolledBack
        );
    }
    assert_eq!(
        w.decisions
            .iter()
            .filter(|d| matches!(d.what, What::RollBack))
            .count(),
        2
    );
    // The broken canary devices were not failed over (the rollback is the remedy).
    assert!(
        !w.decisions
            .iter()
            .any(|d| matches!(d.what, What::Switch { .. }))
    );
    // No device outside the canary was touched.
    let touched: BTreeSet<Eid> = w.actions[before..].iter().map(|(_, a)| a.device).collect();
    assert_eq!(touched, canary);
    // Skipped devices say why.
    let skips: Vec<_> = w
        .decisions
        .iter()
        .filter(|d| matches!(d.what, What::Skip))
        .collect();
    assert_eq!(skips.len(), 4);
    assert!(
        matches!(&skips[0].reason, Reason::Incompatible { filter } if filter == "firmware 1.4.0 < 2.0.0")
    );
    // A halted rollout takes no more commands but abort-like ones are refused clearly.
    assert!(matches!(
        w.fleet.resume_rollout(id, w.now),
        Err(FleetError::RolloutState { .. })
    ));
    assert!(matches!(
        w.fleet.approve_rollout(99, w.now),
        Err(FleetError::UnknownRollout(99))
    ));
}

#[test]
fn a_healthy_rollout_completes_every_wave() {
    let mut w = fleet(22);
    let id = w.fleet.create_rollout(to_version(3), w.now).unwrap();
    w.run_for(Duration::from_secs(50 * 60));
    let r = w.fleet.rollout(id).unwrap();
    assert_eq!(r.state, RolloutState::Completed, "{:?}", r.gates);
    let sizes: Vec<usize> = r.members.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 18, 78, 98], "1 %, 10 %, 50 %, 100 % of 196");
    assert!(r.gates.iter().all(|g| g.verdict == Verdict::Pass));
    w.run_for(Duration::from_secs(120));
    for (e, dev) in &w.devices {
        let v = version_of(&w, e);
        if w.fleet.device(e).unwrap().firmware_version.0[0] < 2 {
            assert_eq!(v, 1, "skipped devices keep v1");
            continue;
        }
        assert_eq!(v, 3);
        assert!(w.data_ok(e));
        assert_eq!(
            dev.profiles.len(),
            2,
            "v1 removed once v3 passed: {:?}",
            dev.profiles
        );
    }
    assert_eq!(w.converged(), DEVICES as usize);
}

#[test]
fn a_restart_mid_rollout_resumes_where_it_was() {
    let mut w = fleet(23);
    let id = w.fleet.create_rollout(to_version(3), w.now).unwrap();
    w.run_for(Duration::from_secs(15 * 60));
    let before = w.fleet.rollout(id).unwrap().clone();
    assert_eq!(before.wave, Some(1), "second wave soaking");
    // Serialise, drop, reload.
    let json = serde_json::to_string(&w.fleet.snapshot(w.now)).unwrap();
    let snap: Snapshot = serde_json::from_str(&json).unwrap();
    w.fleet = Fleet::restore(snap, w.dict.clone(), w.now).unwrap();
    let after = w.fleet.rollout(id).unwrap();
    assert_eq!(after.wave, before.wave);
    assert_eq!(after.members, before.members);
    assert_eq!(after.wave_started, before.wave_started);
    w.run_for(Duration::from_secs(40 * 60));
    let r = w.fleet.rollout(id).unwrap();
    assert_eq!(r.state, RolloutState::Completed);
    let all: Vec<Eid> = r.members.concat();
    let unique: BTreeSet<Eid> = all.iter().copied().collect();
    assert_eq!(all.len(), unique.len(), "no device in two waves");
    assert_eq!(unique.len(), 196);
}

#[test]
fn operators_approve_pause_resume_and_abort() {
    let mut w = fleet(24);
    let mut s = to_version(3);
    s.manual_approval = true;
    s.name = "manual".into();
    let id = w.fleet.create_rollout(s, w.now).unwrap();
    w.run_for(Duration::from_secs(12 * 60));
    assert_eq!(
        w.fleet.rollout(id).unwrap().state,
        RolloutState::AwaitingApproval
    );
    assert!(
        w.fleet.pause_rollout(id, w.now).is_err(),
        "only a running rollout pauses"
    );
    w.fleet.approve_rollout(id, w.now).unwrap();
    w.run_for(Duration::from_secs(60));
    assert_eq!(w.fleet.rollout(id).unwrap().members.len(), 2);
    w.fleet.pause_rollout(id, w.now).unwrap();
    w.run_for(Duration::from_secs(20 * 60));
    let r = w.fleet.rollout(id).unwrap();
    assert_eq!(r.state, RolloutState::Paused);
    assert_eq!(r.gates.len(), 1, "no verdict while paused");
    w.fleet.resume_rollout(id, w.now).unwrap();
    w.run_for(Duration::from_secs(60));
    assert_eq!(
        w.fleet.rollout(id).unwrap().state,
        RolloutState::AwaitingApproval
    );
    // Abort: every device the rollout changed goes back to v1.
    w.fleet.abort_rollout(id, w.now).unwrap();
    w.run_for(Duration::from_secs(5 * 60));
    assert_eq!(w.fleet.rollout(id).unwrap().state, RolloutState::Aborted);
    for e in w.fleet.rollout(id).unwrap().members.concat() {
        assert_eq!(version_of(&w, &e), 1);
    }
    assert!(w.fleet.abort_rollout(id, w.now).is_err());
    // Bad definitions are refused.
    let mut bad = to_version(3);
    bad.waves = vec![10, 5, 100];
    assert!(matches!(
        w.fleet.create_rollout(bad, w.now),
        Err(FleetError::InvalidRollout(_))
    ));
    let mut bad = to_version(9);
    bad.name = "x".into();
    assert!(w.fleet.create_rollout(bad, w.now).is_err());
    let mut bad = to_version(3);
    bad.groups = vec!["nope".into()];
    assert!(w.fleet.create_rollout(bad, w.now).is_err());
    assert!(
        serde_json::from_str::<RolloutSpec>(r#"{"name":"x","change":{"kind":"teleport"}}"#)
            .is_err()
    );
}

#[test]
fn a_wave_is_not_passed_before_its_devices_carry_the_change() {
    let mut w = fleet(31);
    // Not gated on activations (whose events a restart may have lost).
    let mut spec = to_version(3);
    spec.gate.min_activation_success = 0.0;
    let id = w.fleet.create_rollout(spec, w.now).unwrap();
    // The canary's steps never come back (its device is unreachable); its
    // good reports on the old profile must not pass the gate.
    w.hold_results = true;
    w.run_for(Duration::from_secs(20 * 60));
    let r = w.fleet.rollout(id).unwrap();
    assert_eq!((r.state, r.wave), (RolloutState::Running, Some(0)));
    assert!(
        !w.decisions
            .iter()
            .any(|d| matches!(d.what, What::GatePass { .. })),
        "passed without the change in place"
    );
    // By max_wait (30 min) the gate fails on it.
    w.run_for(Duration::from_secs(15 * 60));
    let r = w.fleet.rollout(id).unwrap();
    assert_eq!(r.state, RolloutState::Halted);
    let check = r.gates[0]
        .checks
        .iter()
        .find(|c| c.metric == "devices_with_the_change")
        .unwrap();
    assert!(!check.passed && check.wave == Some(0.0), "{check:?}");
}

fn restage_on_c(waves: Vec<u8>) -> RolloutSpec {
    RolloutSpec {
        name: "fallbacks to C".into(),
        groups: vec!["meters".into()],
        tags_any: vec![],
        change: ChangeSpec::RestageFallback {
            to: ProfileRef {
                carrier: "carrier-c".into(),
                profile_type: "fallback".into(),
                version: 1,
            },
        },
        waves,
        soak: Span::mins(10),
        max_wait: Span::mins(30),
        gate: Default::default(),
        compat: Compat::default(),
        manual_approval: false,
        seed: 3,
    }
}

/// Per device: the carriers of its profiles with the fallback attribute,
/// and of the others that are not enabled.
fn staged(w: &World, e: &Eid) -> (Vec<String>, Vec<String>) {
    let cat = w.fleet.catalog();
    let name = |t| cat.carrier(cat.carrier_of(t)).name.clone();
    let dev = &w.devices[e];
    let with: Vec<String> = dev
        .profiles
        .iter()
        .filter(|p| p.fallback)
        .map(|p| name(p.profile_type))
        .collect();
    let without: Vec<String> = dev
        .profiles
        .iter()
        .filter(|p| !p.fallback && !p.enabled)
        .map(|p| name(p.profile_type))
        .collect();
    (with, without)
}

#[test]
fn fallbacks_restaged_on_another_carrier_in_waves_and_an_abort_puts_the_old_ones_back() {
    let mut w = World::new(common::EXAMPLE, 41);
    for i in 0..20 {
        w.add(spec(i, "meters", "north"));
    }
    w.run_for(Duration::from_secs(120));
    assert_eq!(w.converged(), 20);
    let c = w.carrier("carrier-c");
    let id = w
        .fleet
        .create_rollout(restage_on_c(vec![10, 100]), w.now)
        .unwrap();
    w.run_for(Duration::from_secs(40 * 60));
    let r = w.fleet.rollout(id).unwrap();
    assert_eq!(r.state, RolloutState::Completed, "{r:?}");
    assert_eq!(r.members.iter().map(Vec::len).collect::<Vec<_>>(), [2, 18]);
    for i in 0..20 {
        let e = common::eid(i);
        // Still on its primary; the fallback on C carries the attribute,
        // the one on B is gone.
        assert_eq!(w.enabled_carrier(&e), Some(w.carrier("carrier-a")), "{i}");
        assert_eq!(staged(&w, &e), (vec!["carrier-c".into()], vec![]), "{i}");
        let d = w.fleet.device(&e).unwrap();
        assert_eq!(
            d.desired.fallback.map(|t| w.fleet.catalog().carrier_of(t)),
            Some(c)
        );
    }
    assert!(w.switches.is_empty(), "no device switched");
    let ordered_at_c = w
        .actions
        .iter()
        .filter(|(_, a)| {
            matches!(&a.command, ferrosim_fleet::Command::Es2DownloadOrder { profile_type, .. }
                if w.fleet.catalog().carrier_of(*profile_type) == c)
        })
        .count();
    assert_eq!(ordered_at_c, 20, "one order per device at C");

    // Aborted during its canary's soak: the canary's fallback goes back to
    // B (with the attribute), C's is removed, nobody else was touched.
    let mut w = World::new(common::EXAMPLE, 42);
    for i in 0..20 {
        w.add(spec(i, "meters", "north"));
    }
    w.run_for(Duration::from_secs(120));
    let id = w
        .fleet
        .create_rollout(restage_on_c(vec![10, 100]), w.now)
        .unwrap();
    w.run_for(Duration::from_secs(5 * 60));
    let canary: Vec<Eid> = w.fleet.rollout(id).unwrap().members[0].clone();
    assert_eq!(canary.len(), 2);
    for e in &canary {
        assert_eq!(
            staged(&w, e).0,
            vec!["carrier-c".to_owned()],
            "restaged before the abort"
        );
    }
    w.fleet.abort_rollout(id, w.now).unwrap();
    w.run_for(Duration::from_secs(10 * 60));
    assert_eq!(w.fleet.rollout(id).unwrap().state, RolloutState::Aborted);
    for i in 0..20 {
        let e = common::eid(i);
        assert_eq!(staged(&w, &e), (vec!["carrier-b".into()], vec![]), "{i}");
    }
    assert!(w.decisions.iter().any(|d| d.what == What::RollBack));
    assert!(w.switches.is_empty(), "no device switched");
}
