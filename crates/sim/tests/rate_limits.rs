//! Failover rate limits on vs off in one run (`storm`): carrier A's devices
//! in two equal groups, one failing over to carrier B under the rule's rate
//! limit and jitter, the other to carrier D (a network like B) with both
//! off. Both directions, from measured quantities: with D's core at its
//! attach limit the unlimited group's attaches are refused (EMM cause 22)
//! and its slowest failovers take longer, the refused attaches measured on
//! the very devices that were slow; with the attach limit lifted on D (the
//! same run otherwise) nothing is refused and the unlimited group is no
//! slower than the limited one, so the refusals, not the rule itself, make
//! the difference. At 1,500 devices the attach budget is scaled down to
//! keep the proportions of a million devices at 2,000/s.

#![allow(clippy::unwrap_used)]

use ferrosim_sim::compare::{ComparisonReport, FailoverArm};
use ferrosim_sim::{RunOptions, Scenario, simulate};

fn run(lift_the_limit: bool) -> ComparisonReport {
    let mut scenario = Scenario::builtin("storm").unwrap();
    for c in &mut scenario.carriers {
        c.attach_per_second = if lift_the_limit && (c.name == "carrier-d" || c.name == "carrier-e")
        {
            1_000_000
        } else {
            4
        };
    }
    let options = RunOptions {
        devices: Some(1500),
        seed: Some(5),
        shards: 2,
        threads: 2,
    };
    let (_, _, summary) = simulate(&scenario, &options, &mut |_| {}).unwrap();
    let cmp = summary.comparisons[0].clone();
    eprintln!("{}", serde_json::to_string_pretty(&cmp).unwrap());
    cmp
}

fn failover(arm: &ferrosim_sim::compare::Arm) -> &FailoverArm {
    arm.failover.as_ref().unwrap()
}

#[test]
fn without_rate_limits_the_fallback_core_refuses_attaches_and_failovers_take_longer() {
    let cmp = run(false);
    let (limited, storm) = (failover(&cmp.a), failover(&cmp.b));
    assert!(limited.completion_s.count > 50 && storm.completion_s.count > 50);
    // The storm's attaches ran past D's limit; the limited group's stayed
    // (nearly) within B's.
    assert!(
        cmp.b.attaches_refused_congestion > 3 * cmp.a.attaches_refused_congestion.max(1),
        "storm {} vs limited {}",
        cmp.b.attaches_refused_congestion,
        cmp.a.attaches_refused_congestion
    );
    assert!(storm.completed_after_refusal > 0);
    // ... and its slowest failovers took longer.
    assert!(
        storm.completion_s.p99.unwrap() > limited.completion_s.p99.unwrap(),
        "p99 storm {:?} vs limited {:?}",
        storm.completion_s.p99,
        limited.completion_s.p99
    );
}

#[test]
fn with_the_attach_limit_lifted_the_unlimited_group_is_not_slower() {
    let cmp = run(true);
    let (limited, storm) = (failover(&cmp.a), failover(&cmp.b));
    assert!(limited.completion_s.count > 50 && storm.completion_s.count > 50);
    // Only the network's ordinary rejections (its 99.5 % attach success
    // answers the rest with cause 22 too) and the limited group's own: no
    // more than the limited group sees.
    assert!(
        cmp.b.attaches_refused_congestion <= cmp.a.attaches_refused_congestion,
        "storm {} vs limited {}",
        cmp.b.attaches_refused_congestion,
        cmp.a.attaches_refused_congestion
    );
    assert!(
        storm.completion_s.p99.unwrap() <= limited.completion_s.p99.unwrap(),
        "p99 storm {:?} vs limited {:?}",
        storm.completion_s.p99,
        limited.completion_s.p99
    );
}
