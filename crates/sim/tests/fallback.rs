//! Staged fallback vs fresh provisioning on failover, in one run
//! (`fallback`): the same outage, rule and network for two halves of
//! carrier A's devices, one with a fallback profile staged on carrier B,
//! the other provisioned afresh on B when it must switch (ES2+ order and
//! confirm at the SM-DP+, download trigger, the IPA's download into the
//! eUICC through the SM-DP+'s ES9+ steps, then the enable). Both
//! directions, from measured quantities: the fresh half's failovers take
//! longer, by about the time they waited for the fleet to issue the enable
//! (the measured provisioning: two ES2+ and four ES9+ calls per device, the
//! download into the eUICC); from the enable on they are no slower than
//! the staged half's, so nothing else explains the difference.

#![allow(clippy::unwrap_used)]

use ferrosim_sim::compare::FailoverArm;
use ferrosim_sim::{RunOptions, Scenario, simulate};

#[test]
fn fresh_provisioning_is_slower_by_its_measured_provisioning() {
    let scenario = Scenario::builtin("fallback").unwrap();
    let options = RunOptions {
        devices: Some(600),
        seed: Some(6),
        shards: 2,
        threads: 2,
    };
    let (_, _, summary) = simulate(&scenario, &options, &mut |_| {}).unwrap();
    let cmp = &summary.comparisons[0];
    eprintln!("{}", serde_json::to_string_pretty(cmp).unwrap());
    assert!(
        summary.unserved_actions.is_empty(),
        "{:?}",
        summary.unserved_actions
    );
    let arm = |a: &ferrosim_sim::compare::Arm| -> FailoverArm { a.failover.clone().unwrap() };
    let (staged, fresh) = (arm(&cmp.a), arm(&cmp.b));
    assert!(staged.completion_s.count > 50 && fresh.completion_s.count > 50);
    // The staged half provisioned nothing and its enables went out at the
    // switch.
    assert_eq!(staged.provisioning_s.count, 0);
    assert_eq!(staged.provisioning_calls, 0);
    let staged_wait = staged.waiting_for_provisioning_mean_s.unwrap();
    assert!(staged_wait <= 1.0, "{staged_wait}");
    // Every fresh device that failed over had its profile ordered,
    // confirmed and downloaded: 2 ES2+ and 4 ES9+ calls each, measured.
    assert!(fresh.provisioning_s.count >= fresh.completion_s.count);
    assert_eq!(fresh.provisioning_calls, 6 * fresh.provisioning_s.count);
    assert!(fresh.provisioning_calls_s > 0.0);
    let fresh_wait = fresh.waiting_for_provisioning_mean_s.unwrap();
    assert!(fresh_wait > 1.0, "{fresh_wait}");
    // The claim: fresh provisioning makes failovers slower ...
    let (staged_mean, fresh_mean) = (
        staged.completion_mean_s.unwrap(),
        fresh.completion_mean_s.unwrap(),
    );
    assert!(
        fresh_mean > staged_mean + 1.0,
        "{fresh_mean} vs {staged_mean}"
    );
    // ... by about the wait for the provisioning ...
    let excess = fresh_mean - staged_mean;
    assert!(
        (excess - (fresh_wait - staged_wait)).abs() < 1.5,
        "excess {excess} vs wait {fresh_wait} - {staged_wait}"
    );
    // ... and without that wait the fresh half is no slower.
    let (staged_rest, fresh_rest) = (
        staged.completion_without_provisioning_mean_s.unwrap(),
        fresh.completion_without_provisioning_mean_s.unwrap(),
    );
    assert!(
        fresh_rest < staged_rest + 1.0,
        "{fresh_rest} vs {staged_rest}"
    );
}
