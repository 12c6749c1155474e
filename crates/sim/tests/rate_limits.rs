//! Failover rate limits on (`outage`) vs off (`storm`), the same outage and
//! devices: without the limit every device on carrier A is switched at
//! once and their attaches on B run past B's attach rate (refused with EMM
//! cause 22 and retried); with it fewer attaches are refused. At 1,500
//! devices the attach budget is scaled down to keep the proportions.

#![allow(clippy::unwrap_used)]

use ferrosim_sim::{RunOptions, Scenario, simulate};

#[test]
fn the_storm_without_rate_limits_congests_the_fallback_carrier() {
    let run = |name: &str| {
        let mut scenario = Scenario::builtin(name).unwrap();
        // The city's attach budget scaled down with the device count (the
        // scenarios' 2,000/s is for a million devices).
        for c in &mut scenario.carriers {
            c.attach_per_second = 10;
        }
        let options = RunOptions {
            devices: Some(1500),
            seed: Some(5),
            shards: 2,
            threads: 2,
        };
        simulate(&scenario, &options, &mut |_| {}).unwrap().2
    };
    let limited = run("outage");
    let storm = run("storm");
    eprintln!(
        "outage: failovers {} refusals {} p50 {:?} p99 {:?}; storm: failovers {} refusals {} p50 {:?} p99 {:?}",
        limited.failovers,
        limited.congestion_refusals,
        limited.failover_completion_s.p50,
        limited.failover_completion_s.p99,
        storm.failovers,
        storm.congestion_refusals,
        storm.failover_completion_s.p50,
        storm.failover_completion_s.p99
    );
    assert_eq!(limited.devices, storm.devices);
    assert!(storm.failovers > 0 && limited.failovers > 0);
    assert!(
        storm.congestion_refusals > limited.congestion_refusals,
        "storm {} vs limited {}",
        storm.congestion_refusals,
        limited.congestion_refusals
    );
    // The refused attaches are retried: the storm's slowest failovers take
    // longer than the rate-limited ones.
    assert!(
        storm.failover_completion_s.p99.unwrap() > limited.failover_completion_s.p99.unwrap(),
        "p99 storm {:?} vs limited {:?}",
        storm.failover_completion_s.p99,
        limited.failover_completion_s.p99
    );
}
