//! The reconciler: a new device is provisioned step by step (ES2+ order,
//! confirm, eIM download trigger, enable, APN, fallback staged and marked);
//! the same result twice issues nothing twice; a restart re-issues what was
//! in flight with the same ids; failures back off with jitter.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{World, spec};
use ferrosim_fleet::action::Failure;
use ferrosim_fleet::decision::{Need, Reason, What};
use ferrosim_fleet::device::{Mode, flags};
use ferrosim_fleet::{ActionResult, Fleet, Outcome, Snapshot};
use ferrosim_telemetry::StatusCode;
use proptest::prelude::*;

#[test]
fn a_new_device_is_provisioned_in_order_and_converges() {
    let mut w = World::new(common::EXAMPLE, 1);
    w.add(spec(1, "meters", "north"));
    w.run_for(Duration::from_secs(60));
    let names: Vec<&str> = w.actions.iter().map(|(_, a)| a.command.name()).collect();
    assert_eq!(
        names,
        [
            "es2.downloadOrder",
            "es2.confirmOrder",
            "eim.profileDownloadTrigger",
            "eim.enable",
            "agent.apnConfig",
            "es2.downloadOrder",
            "es2.confirmOrder",
            "eim.profileDownloadTrigger",
            "eim.setFallbackAttribute",
        ]
    );
    let e = common::eid(1);
    let d = w.fleet.device(&e).unwrap();
    assert!(d.work.converged);
    assert_eq!(d.observed.len(), 2);
    let enabled = d.observed.enabled().unwrap();
    assert_eq!(enabled.profile_type, Some(d.desired.primary));
    assert!(enabled.has(flags::WORKS), "registered and passed data");
    let fb = d.observed.of_type(d.desired.fallback.unwrap()).unwrap();
    assert!(fb.has(flags::FALLBACK_ATTR));
    // The first enable had nothing to roll back to.
    assert!(matches!(
        w.actions[3].1.command,
        ferrosim_fleet::Command::EimEnable {
            rollback: false,
            ..
        }
    ));
    // Every action has a decision with its reason.
    let issued: Vec<_> = w
        .decisions
        .iter()
        .filter_map(|d| match (&d.what, &d.reason) {
            (What::Issue { .. }, Reason::Gap { need, .. }) => Some(*need),
            _ => None,
        })
        .collect();
    assert_eq!(issued.len(), w.actions.len());
    assert_eq!(issued[0], Need::Order);
    assert_eq!(issued[8], Need::SetFallbackAttribute);
    // Converged devices issue nothing more.
    let n = w.actions.len();
    w.run_for(Duration::from_secs(600));
    assert_eq!(w.actions.len(), n);
}

#[test]
fn a_refused_fallback_attribute_is_recorded_and_not_asked_again() {
    // The fallback's metadata lacks fallbackAllowed (an SM-DP+ that does
    // not write it): the eUICC answers setFallbackAttribute with
    // fallbackNotAllowed.
    let mut w = World::new(common::EXAMPLE, 7);
    w.add(spec(1, "meters", "north"));
    let e = common::eid(1);
    let fallback = w.fleet.device(&e).unwrap().desired.fallback.unwrap();
    w.no_fallback_allowed.insert(fallback);
    w.run_for(Duration::from_secs(600));
    let sets = w
        .actions
        .iter()
        .filter(|(_, a)| a.command.name() == "eim.setFallbackAttribute")
        .count();
    assert_eq!(sets, 1, "asked once, never again");
    let d = w.fleet.device(&e).unwrap();
    assert!(d.work.converged, "the device settles without the attribute");
    let fb = d.observed.of_type(fallback).unwrap();
    assert!(fb.has(flags::FALLBACK_REFUSED), "{fb:?}");
    assert!(!fb.has(flags::FALLBACK_ATTR));
    // Still staged: installed, disabled, on the eUICC.
    let dev = &w.devices[&e];
    assert!(
        dev.profiles
            .iter()
            .any(|p| w.iccid_types[&p.iccid] == fallback && !p.enabled && !p.fallback)
    );
    // The refusal is in the decision log with its reason.
    assert!(w.decisions.iter().any(|d| matches!(
        d.reason,
        Reason::ActionFailed {
            failure: Failure::Psmo {
                error: ferrosim_fleet::action::PsmoError::NotAllowed
            },
            ..
        }
    )));
    let n = w.actions.len();
    w.run_for(Duration::from_secs(600));
    assert_eq!(w.actions.len(), n, "nothing more once settled");
}

#[test]
fn the_same_result_twice_issues_nothing_twice() {
    let mut w = World::new(common::EXAMPLE, 2);
    w.hold_results = true;
    w.add(spec(1, "meters", "north"));
    w.poll();
    assert_eq!(w.held.len(), 1);
    let a = w.held.remove(0);
    let outcome = w.execute(&a);
    let result = ActionResult {
        id: a.id,
        device: a.device,
        outcome,
    };
    w.fleet.handle_result(&result, w.now, &mut w.rng).unwrap();
    w.poll();
    assert_eq!(w.held.len(), 1, "the confirm");
    // The same result again, and a result for an unknown action: ignored.
    w.fleet.handle_result(&result, w.now, &mut w.rng).unwrap();
    let stray = ActionResult {
        id: ferrosim_fleet::ActionId(999),
        ..result.clone()
    };
    w.fleet.handle_result(&stray, w.now, &mut w.rng).unwrap();
    w.poll();
    assert_eq!(w.held.len(), 1);
    assert_eq!(w.fleet.in_flight().count(), 1);
    // Polling again without input issues nothing.
    for _ in 0..5 {
        w.poll();
    }
    assert_eq!(w.held.len(), 1);
    // A result for a device the fleet does not know is an error.
    let unknown = ActionResult {
        device: common::eid(77),
        ..result
    };
    assert!(w.fleet.handle_result(&unknown, w.now, &mut w.rng).is_err());
}

#[test]
fn a_restart_reissues_in_flight_actions_with_their_ids() {
    let mut w = World::new(common::EXAMPLE, 3);
    for n in 0..5 {
        w.add(spec(n, "meters", "north"));
    }
    // Orders answered, confirms left in flight: the snapshot holds the
    // reserved ICCIDs and the actions out.
    w.hold_results = true;
    w.poll();
    for a in std::mem::take(&mut w.held) {
        let outcome = w.execute(&a);
        let r = ActionResult {
            id: a.id,
            device: a.device,
            outcome,
        };
        w.fleet.handle_result(&r, w.now, &mut w.rng).unwrap();
    }
    w.poll();
    let held: Vec<_> = std::mem::take(&mut w.held);
    assert!(held.iter().all(|a| a.command.name() == "es2.confirmOrder"));
    assert!(!held.is_empty());
    let json = serde_json::to_string(&w.fleet.snapshot(w.now)).unwrap();
    let snap: Snapshot = serde_json::from_str(&json).unwrap();
    w.fleet = Fleet::restore(snap, w.dict.clone(), w.now).unwrap();
    let mut again = Vec::new();
    while let Some(a) = w.fleet.poll_action() {
        again.push(a);
    }
    assert_eq!(again.len(), held.len());
    for (a, h) in again.iter().zip(&held) {
        assert_eq!((a.id, &a.command, a.device), (h.id, &h.command, h.device));
        assert!(a.reissue);
    }
    let restarts = std::iter::from_fn(|| w.fleet.poll_decision())
        .filter(|d| d.reason == Reason::Restart)
        .count();
    assert_eq!(restarts, held.len());
    // Answer them and everything converges.
    w.hold_results = false;
    for a in again {
        let outcome = w.execute(&a);
        let r = ActionResult {
            id: a.id,
            device: a.device,
            outcome,
        };
        w.fleet.handle_result(&r, w.now, &mut w.rng).unwrap();
    }
    w.run_for(Duration::from_secs(120));
    assert_eq!(w.converged(), 5);
    // Garbage snapshots are refused.
    assert!(serde_json::from_str::<Snapshot>("{\"taken_at\": 1}").is_err());
    let mut bad: Snapshot = serde_json::from_str(&json).unwrap();
    bad.devices[0].desired.primary = ferrosim_fleet::catalog::ProfileTypeId(999);
    assert!(Fleet::restore(bad, w.dict.clone(), w.now).is_err());
    let mut bad: Snapshot = serde_json::from_str(&json).unwrap();
    bad.es2_buckets.pop();
    assert!(Fleet::restore(bad, w.dict.clone(), w.now).is_err());
}

#[test]
fn failures_back_off_with_jitter_and_time_outs_reissue() {
    let mut w = World::new(common::EXAMPLE, 4);
    w.hold_results = true;
    for n in 0..20 {
        w.add(spec(n, "meters", "north"));
    }
    w.poll();
    let first: Vec<_> = std::mem::take(&mut w.held);
    assert_eq!(first.len(), 20);
    let busy = Outcome::Failed {
        failure: Failure::Es2 {
            code: "8.1/4.2".parse::<StatusCode>().unwrap(),
        },
        retryable: true,
    };
    for a in &first {
        let r = ActionResult {
            id: a.id,
            device: a.device,
            outcome: busy.clone(),
        };
        w.fleet.handle_result(&r, w.now, &mut w.rng).unwrap();
    }
    w.poll();
    let delays: Vec<u64> = w
        .decisions
        .iter()
        .filter_map(|d| match d.what {
            What::Retry { delay_ms, .. } => Some(delay_ms),
            _ => None,
        })
        .collect();
    assert_eq!(delays.len(), 20);
    assert!(
        delays.iter().all(|d| (2_500..=5_000).contains(d)),
        "{delays:?}"
    );
    let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
    assert!(distinct.len() > 10, "jittered: {delays:?}");
    assert!(w.held.is_empty(), "nothing before the backoff");
    w.run_for(Duration::from_secs(6));
    assert_eq!(w.held.len(), 20, "each retried once");
    // No answer for two minutes: the same actions again, same ids.
    let ids: Vec<_> = w.held.iter().map(|a| a.id).collect();
    w.held.clear();
    w.run_for(Duration::from_secs(121));
    let again: Vec<_> = w.held.iter().map(|a| a.id).collect();
    assert_eq!(again, ids);
    assert!(w.held.iter().all(|a| a.reissue));
    assert!(w.decisions.iter().any(|d| matches!(
        d.reason,
        Reason::Timeout {
            timeout_ms: 120_000
        }
    )));
    let _ = Mode::Primary;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever happens — lost and failed actions, carrier outages, a
    /// broken rollout rolled back — the reconciler never deletes the enabled
    /// profile, never deletes while the enabled profile does not work, and
    /// never leaves a device without a profile.
    #[test]
    fn never_deletes_the_last_working_profile(
        seed in 0u64..1000,
        fail_percent in 0u32..40,
        outages in proptest::collection::vec((0u64..1800, 60u64..900), 0..4),
    ) {
        let mut w = World::new(common::EXAMPLE, seed);
        w.fail_percent = fail_percent;
        w.step = Duration::from_secs(5);
        for n in 0..12 {
            w.add(spec(n, "meters", if n % 2 == 0 { "north" } else { "south" }));
        }
        w.run_for(Duration::from_secs(600));
        let to = ferrosim_fleet::config::ProfileRef { carrier: "carrier-a".into(), profile_type: "iot".into(), version: 2 };
        let spec = ferrosim_fleet::RolloutSpec {
            name: "broken".into(),
            groups: vec![],
            tags_any: vec![],
            change: ferrosim_fleet::rollout::ChangeSpec::ProfileType { to },
            waves: vec![50, 100],
            soak: ferrosim_fleet::Span::mins(10),
            max_wait: ferrosim_fleet::Span::mins(40),
            gate: Default::default(),
            compat: Default::default(),
            manual_approval: false,
            seed,
        };
        w.fleet.create_rollout(spec, w.now).unwrap();
        let a = w.carrier("carrier-a");
        for (wait, length) in outages {
            w.run_for(Duration::from_secs(wait));
            w.down.insert((a, "north".into()));
            w.run_for(Duration::from_secs(length));
            w.down.clear();
        }
        w.fail_percent = 0;
        w.run_for(Duration::from_secs(3600));
        // Not vacuous: the rolled-back canary's v2 profiles were removed.
        prop_assert!(!w.deletes.is_empty(), "no delete happened");
        for (e, works, left) in &w.deletes {
            prop_assert!(*works, "device {e}: a delete left it without a working or fallback profile");
            prop_assert!(*left >= 1, "device {e}: no profile left");
        }
        for (e, dev) in &w.devices {
            prop_assert!(dev.enabled().is_some(), "device {e} has no enabled profile");
        }
    }
}

/// The most events of `times` (sorted) in any window of one minute.
fn most_in_a_minute(times: &[i64]) -> usize {
    let mut most = 0;
    let mut start = 0;
    for (end, &t) in times.iter().enumerate() {
        while times[start] <= t - 60_000 {
            start += 1;
        }
        most = most.max(end + 1 - start);
    }
    most
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    /// ES2+ calls at each carrier and download triggers at each SM-DP+ —
    /// first issues and re-issues alike, through lost results (time-outs),
    /// failed calls and a restart with actions in flight — never exceed
    /// their limits: in any minute at most the bucket's burst plus its rate
    /// per minute.
    #[test]
    fn es2_calls_and_downloads_stay_within_the_rate_limits(
        seed in 0u64..1000,
        es2_rate in 1u32..=20,
        es2_burst in 1u32..=5,
        download_rate in 1u32..=20,
        download_burst in 1u32..=5,
        fail_percent in 0u32..30,
        lost_for in 0u64..600,
        restart_after in 0u64..1200,
    ) {
        let config = common::EXAMPLE
            .replace(
                "rate_limits = { es2_per_minute = 6000, es2_burst = 100 }",
                &format!("rate_limits = {{ es2_per_minute = {es2_rate}, es2_burst = {es2_burst} }}"),
            )
            .replace(
                "downloads_per_minute = 6000\nburst = 100",
                &format!("downloads_per_minute = {download_rate}\nburst = {download_burst}"),
            );
        let mut w = World::new(&config, seed);
        w.fail_percent = fail_percent;
        w.step = Duration::from_secs(5);
        for n in 0..24 {
            w.add(spec(n, "meters", if n % 2 == 0 { "north" } else { "south" }));
        }
        // Results lost for a while: the calls out time out and go again.
        w.hold_results = true;
        w.run_for(Duration::from_secs(lost_for));
        w.hold_results = false;
        w.held.clear();
        w.run_for(Duration::from_secs(restart_after));
        // A restart with whatever is in flight.
        let json = serde_json::to_string(&w.fleet.snapshot(w.now)).unwrap();
        let snap: Snapshot = serde_json::from_str(&json).unwrap();
        w.fleet = Fleet::restore(snap, w.dict.clone(), w.now).unwrap();
        w.run_for(Duration::from_secs(3600));

        let catalog = w.fleet.catalog();
        for (c, carrier) in catalog.carriers.iter().enumerate() {
            let mut times: Vec<i64> = w
                .actions
                .iter()
                .filter(|(_, a)| match &a.command {
                    ferrosim_fleet::Command::Es2DownloadOrder { carrier, .. }
                    | ferrosim_fleet::Command::Es2ConfirmOrder { carrier, .. } => carrier.index() == c,
                    _ => false,
                })
                .map(|(t, _)| t.millis())
                .collect();
            times.sort_unstable();
            let bound = (carrier.limits.es2_per_minute + carrier.limits.es2_burst) as usize;
            prop_assert!(
                most_in_a_minute(&times) <= bound,
                "carrier {}: {} ES2+ calls in a minute, limit {bound}",
                carrier.name, most_in_a_minute(&times)
            );
        }
        for (s, smdp) in catalog.smdps.iter().enumerate() {
            if smdp.downloads_per_minute == 0 {
                continue;
            }
            let mut times: Vec<i64> = w
                .actions
                .iter()
                .filter(|(_, a)| matches!(&a.command,
                    ferrosim_fleet::Command::EimDownloadTrigger { activation_code, .. }
                        if activation_code.smdp.index() == s))
                .map(|(t, _)| t.millis())
                .collect();
            times.sort_unstable();
            let bound = (smdp.downloads_per_minute + smdp.burst) as usize;
            prop_assert!(
                most_in_a_minute(&times) <= bound,
                "SM-DP+ {}: {} downloads in a minute, limit {bound}",
                smdp.address, most_in_a_minute(&times)
            );
        }
        // Not vacuous: carrier A had more to send than one minute allows.
        let a = w.carrier("carrier-a");
        let at_a = w
            .actions
            .iter()
            .filter(|(_, x)| matches!(&x.command,
                ferrosim_fleet::Command::Es2DownloadOrder { carrier, .. } if *carrier == a))
            .count();
        prop_assert!(at_a >= 24, "only {at_a} orders at carrier A");
    }
}

#[test]
fn a_revoked_profile_is_replaced_then_deleted_and_the_device_stays_connected() {
    let mut w = World::new(common::EXAMPLE, 3);
    w.add(spec(1, "meters", "north"));
    w.run_for(Duration::from_secs(60));
    let e = common::eid(1);
    let d = *w.fleet.device(&e).unwrap();
    assert!(d.work.converged);
    let primary = d.observed.enabled().unwrap().iccid.iccid().unwrap();
    let fallback = d
        .observed
        .of_type(d.desired.fallback.unwrap())
        .unwrap()
        .iccid
        .iccid()
        .unwrap();

    // Refusals change nothing.
    assert!(w.fleet.revoke_profile(&common::eid(9), &primary).is_err());
    let stranger = ferrosim_ids::Iccid::from_body("894400999999999999").unwrap();
    assert!(w.fleet.revoke_profile(&e, &stranger).is_err());

    // The staged fallback (with the fallback attribute) is revoked.
    let t = w.fleet.revoke_profile(&e, &fallback).unwrap();
    assert_eq!(Some(t), d.desired.fallback);
    assert!(
        w.fleet.revoke_profile(&e, &fallback).is_err(),
        "revoked twice"
    );
    let n = w.actions.len();
    w.run_for(Duration::from_secs(120));
    let names: Vec<&str> = w.actions[n..]
        .iter()
        .map(|(_, a)| a.command.name())
        .collect();
    assert_eq!(
        names,
        [
            "es2.downloadOrder",
            "es2.confirmOrder",
            "eim.profileDownloadTrigger",
            "eim.unsetFallbackAttribute",
            "eim.setFallbackAttribute",
            "eim.delete",
        ],
        "a fresh fallback first, the attribute moved, then the revoked one deleted"
    );
    let d = w.fleet.device(&e).unwrap();
    assert!(d.work.converged);
    assert!(
        d.observed
            .by_iccid(ferrosim_fleet::device::PackedIccid::new(&fallback))
            .is_none()
    );
    let new_fallback = d.observed.of_type(d.desired.fallback.unwrap()).unwrap();
    assert!(new_fallback.has(flags::FALLBACK_ATTR));
    assert!(!w.devices[&e].profiles.iter().any(|p| p.iccid == fallback));

    // The enabled primary is revoked: a fresh one is enabled (with
    // rollback) before the revoked one is deleted.
    w.fleet.revoke_profile(&e, &primary).unwrap();
    let n = w.actions.len();
    w.run_for(Duration::from_secs(300));
    let names: Vec<&str> = w.actions[n..]
        .iter()
        .map(|(_, a)| a.command.name())
        .collect();
    assert_eq!(
        names,
        [
            "es2.downloadOrder",
            "es2.confirmOrder",
            "eim.profileDownloadTrigger",
            "eim.enable",
            "agent.apnConfig",
            "eim.delete",
        ]
    );
    assert!(matches!(
        w.actions[n + 3].1.command,
        ferrosim_fleet::Command::EimEnable { rollback: true, .. }
    ));
    let d = w.fleet.device(&e).unwrap();
    assert!(d.work.converged);
    let enabled = d.observed.enabled().unwrap();
    assert_ne!(enabled.iccid.iccid().unwrap(), primary);
    assert_eq!(enabled.profile_type, Some(d.desired.primary));
    assert!(
        w.deletes.iter().all(|(_, connected, _)| *connected),
        "never deleted its way offline: {:?}",
        w.deletes
    );
}
