//! The `rollout` scenario at small scale: a bad APN rolled out in waves to
//! one group and all at once to the other, in the same run, through the
//! fleet's rollout engine with gates on telemetry. Both directions: with
//! the bad APN the staged rollout halts at its canary (its gate failing on
//! the data-path checks the run measured) and the big bang reaches every
//! device of its group before its gate; with the APN served (the same
//! scenario, the typos added to the carriers' APNs) both complete and no
//! device loses data, so what stops the staged rollout is the APN, not
//! the staging.

#![allow(clippy::unwrap_used)]

use ferrosim_sim::compare::{Arm, ComparisonReport};
use ferrosim_sim::{RunOptions, Scenario, simulate};

const DEVICES: u32 = 1200;

fn run(serve_the_new_apn: bool) -> ComparisonReport {
    let mut scenario = Scenario::builtin("rollout").unwrap();
    if serve_the_new_apn {
        for c in &mut scenario.carriers {
            if let Some(good) = c.apns.first().cloned() {
                c.apns.push(good.replace("example", "exmaple"));
            }
        }
    }
    let options = RunOptions {
        devices: Some(DEVICES),
        seed: Some(4),
        shards: 2,
        threads: 2,
    };
    let (_, _, summary) = simulate(&scenario, &options, &mut |_| {}).unwrap();
    assert_eq!(summary.comparisons.len(), 1);
    let cmp = summary.comparisons[0].clone();
    eprintln!("{}", serde_json::to_string_pretty(&cmp).unwrap());
    cmp
}

fn rollout(arm: &Arm) -> &ferrosim_sim::compare::RolloutArm {
    arm.rollout.as_ref().unwrap()
}

#[test]
fn the_staged_rollout_halts_at_its_canary_and_the_big_bang_reaches_everyone() {
    let cmp = run(false);
    let (staged, big) = (rollout(&cmp.a), rollout(&cmp.b));
    // The groups split the devices about evenly.
    assert_eq!(cmp.a.devices + cmp.b.devices, u64::from(DEVICES));
    // Staged: the canary (1 % of its group) got the change, its gate failed
    // on the data path the run measured, and it went no further.
    assert_eq!(staged.outcome.state, "halted");
    assert_eq!(staged.outcome.waves_started, 1);
    let canary = cmp.a.devices.div_ceil(100);
    assert_eq!(staged.outcome.devices_changed, canary);
    assert_eq!(staged.outcome.gates.len(), 1);
    let gate = &staged.outcome.gates[0];
    assert_eq!(gate.verdict, "fail");
    assert!(
        gate.failed
            .iter()
            .any(|(m, w, _)| m == "data_path_success" && *w == Some(0.0)),
        "{gate:?}"
    );
    assert!(gate.data_path_checks >= canary);
    assert_eq!(staged.devices_with_bad_apn, canary);
    // Big bang: every device of its group got the bad APN before its gate
    // failed on the same check.
    assert_eq!(big.outcome.state, "halted");
    assert_eq!(big.outcome.devices_changed, cmp.b.devices);
    assert_eq!(big.devices_with_bad_apn, cmp.b.devices);
    assert!(
        big.outcome.gates[0]
            .failed
            .iter()
            .any(|(m, ..)| m == "data_path_success")
    );
    // The claim: the big bang took data from far more devices, for far
    // more device-minutes, than the staged rollout.
    assert!(big.devices_with_bad_apn > 10 * staged.devices_with_bad_apn);
    assert!(big.bad_apn_device_minutes > 10.0 * staged.bad_apn_device_minutes);
    assert!(cmp.b.data_path_failures > cmp.a.data_path_failures);
    assert!(cmp.a.data_path_failures >= canary);
    // Both rolled back: no device is left on the bad APN.
    assert_eq!(staged.devices_on_bad_apn_at_end, 0);
    assert_eq!(big.devices_on_bad_apn_at_end, 0);
}

#[test]
fn with_the_apn_served_both_rollouts_complete_and_nobody_loses_data() {
    let cmp = run(true);
    let (staged, big) = (rollout(&cmp.a), rollout(&cmp.b));
    assert_eq!(staged.outcome.state, "completed");
    assert_eq!(staged.outcome.waves_started, 4);
    assert!(staged.outcome.gates.iter().all(|g| g.verdict == "pass"));
    assert_eq!(staged.outcome.devices_changed, cmp.a.devices);
    assert_eq!(big.outcome.state, "completed");
    assert_eq!(big.outcome.devices_changed, cmp.b.devices);
    assert_eq!(staged.devices_with_bad_apn + big.devices_with_bad_apn, 0);
    assert_eq!(
        cmp.a.data_path_failures + cmp.b.data_path_failures,
        0,
        "{cmp:?}"
    );
}
