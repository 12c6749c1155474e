//! The second act of `ferrosim demo`: carrier A fails in three of the
//! eight areas only; the devices there fail over and every one of them
//! returns, the devices elsewhere stay where they are.

#![allow(clippy::unwrap_used)]

use ferrosim_sim::{RunOptions, Scenario, simulate};

#[test]
fn an_outage_in_some_areas_moves_only_their_devices_and_every_one_returns() {
    let mut scenario = Scenario::builtin("outage").unwrap();
    for o in &mut scenario.outages {
        o.areas = vec!["loop".into(), "near-north-side".into(), "lake-view".into()];
    }
    let options = RunOptions {
        devices: Some(600),
        seed: Some(3),
        shards: 2,
        threads: 2,
    };
    let (_, _, s) = simulate(&scenario, &options, &mut |_| {}).unwrap();
    // About 30 % of the devices are on A, a half of them in those areas.
    assert!(s.failovers > 40, "{} failovers", s.failovers);
    // About 180 devices are on A; those outside the three areas stay.
    assert!(s.failovers < 150, "{} failovers", s.failovers);
    assert_eq!(
        s.returns, s.failovers,
        "every device that failed over returned"
    );
    assert_eq!(
        s.return_completion_s.count, s.returns,
        "every return completed"
    );
    assert!(s.failover_completion_s.count >= s.failovers * 9 / 10);
}
