//! The outage scenario at small scale: failovers and returns happen
//! through the fleet, eIM and eUICCs, the headline metrics come out, and
//! the same seed gives the same report (apart from the measured fields).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferrosim_sim::report::MEASURED_FIELDS;
use ferrosim_sim::{RunOptions, Scenario, simulate};

fn run(devices: u32, seed: u64, threads: usize) -> serde_json::Value {
    let scenario = Scenario::builtin("outage").unwrap();
    let options = RunOptions {
        devices: Some(devices),
        seed: Some(seed),
        shards: 2,
        threads,
    };
    let (collected, metrics, summary) = simulate(&scenario, &options, &mut |_| {}).unwrap();
    let text = ferrosim_sim::report::json(&summary, &metrics, &collected).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let s = value["summary"].as_object_mut().unwrap();
    for field in MEASURED_FIELDS {
        assert!(s.remove(*field).is_some(), "{field} is in the summary");
    }
    value
}

#[test]
fn outage_fails_over_returns_and_replays() {
    let first = run(600, 7, 2);
    let s = &first["summary"];
    println!("{}", serde_json::to_string_pretty(s).unwrap());
    let failovers = s["failovers"].as_u64().unwrap();
    // About 30 % of the devices are on carrier A.
    assert!(failovers > 100, "{failovers} failovers");
    assert!(s["returns"].as_u64().unwrap() > 100);
    assert!(s["failover_completion_s"]["count"].as_u64().unwrap() > 100);
    assert!(s["euiccs"].as_u64().unwrap() >= failovers);
    let ratio = s["activation_success_within_60s"].as_f64().unwrap();
    assert!(ratio > 0.5 && ratio <= 1.0, "{ratio}");
    assert!(s["ec_operations"][0].as_u64().unwrap() > 4 * failovers);
    // The same seed on one thread instead of two: the same report.
    let again = run(600, 7, 1);
    assert_eq!(first, again);
    // Another seed: another run.
    let other = run(600, 8, 2);
    assert_ne!(first["summary"], other["summary"]);
}
