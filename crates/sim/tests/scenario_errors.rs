//! Bad scenario files and run parameters get a clear error naming what is
//! wrong, never a panic.

#![allow(clippy::unwrap_used)]

use ferrosim_sim::{RunOptions, Scenario, SimError, run};

const OUTAGE: &str = include_str!("../scenarios/outage.toml");

fn error_of(text: &str) -> String {
    Scenario::from_toml(text).unwrap_err().to_string()
}

#[test]
fn shipped_scenarios_parse() {
    for (name, _) in ferrosim_sim::scenario::BUILTIN {
        Scenario::builtin(name).unwrap();
    }
    assert!(matches!(
        Scenario::builtin("festival-2099"),
        Err(SimError::UnknownScenario { .. })
    ));
}

#[test]
fn garbage_and_wrong_fields_are_refused() {
    for text in ["", "garbage = [", "\u{0}\u{1}", "[scenario]\nname = 1"] {
        assert!(Scenario::from_toml(text).is_err(), "{text:?}");
    }
    let e = error_of(&OUTAGE.replacen("[scenario]", "[scenario]\ncolour = \"red\"", 1));
    assert!(e.contains("colour"), "{e}");
    let e = error_of(&OUTAGE.replacen(
        "carrier = \"carrier-a\"\nstart",
        "carrier = \"carrier-z\"\nstart",
        1,
    ));
    assert!(
        e.contains("carrier-z") || e.contains("no such [[carrier]]"),
        "{e}"
    );
    let e = error_of(&OUTAGE.replacen("end = \"40m\"", "end = \"5m\"", 1));
    assert!(e.contains("end must be after start"), "{e}");
    let e = error_of(&OUTAGE.replacen("severity = 1.0", "severity = 1.5", 1));
    assert!(e.contains("severity"), "{e}");
    let e = error_of(&OUTAGE.replacen("weight = 42", "weight = -1", 1));
    assert!(e.contains("weight"), "{e}");
    let e = error_of(&OUTAGE.replacen("duration = \"1h30m\"", "duration = \"90\"", 1));
    assert!(e.contains("unit") || e.contains("duration"), "{e}");
    // Consumer phones' parameters.
    let festival = ferrosim_sim::scenario::BUILTIN
        .iter()
        .find(|(n, _)| *n == "festival")
        .unwrap()
        .1;
    let e = error_of(&festival.replacen("scan_within = \"3m\"", "apdu_ms = 99999", 1));
    assert!(e.contains("apdu_ms"), "{e}");
    let e = error_of(&festival.replacen("kind = \"consumer\"", "kind = \"tablet\"", 1));
    assert!(e.contains("tablet") || e.contains("variant"), "{e}");
    let e = error_of(&festival.replacen("scan_within = \"3m\"", "scan_within = -3", 1));
    assert!(e.contains("scan_within") || e.contains("invalid"), "{e}");
}

#[test]
fn bad_fleet_and_run_parameters_are_refused() {
    let scenario =
        Scenario::from_toml(&OUTAGE.replacen("group = \"meters\"", "group = \"nobody\"", 1))
            .unwrap();
    let e = run(
        &scenario,
        &RunOptions {
            devices: Some(10),
            ..RunOptions::default()
        },
        &mut |_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("nobody"), "{e}");
    let scenario = Scenario::from_toml(&OUTAGE.replacen(
        "max_switches_per_hour = 4",
        "max_switches_per_hour = 99",
        1,
    ))
    .unwrap();
    let e = run(
        &scenario,
        &RunOptions {
            devices: Some(10),
            ..RunOptions::default()
        },
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(e, SimError::Fleet(_)), "{e}");
    let scenario = Scenario::builtin("outage").unwrap();
    for options in [
        RunOptions {
            devices: Some(0),
            ..RunOptions::default()
        },
        RunOptions {
            devices: Some(10),
            shards: 0,
            ..RunOptions::default()
        },
        RunOptions {
            devices: Some(10),
            shards: 65,
            ..RunOptions::default()
        },
    ] {
        assert!(matches!(
            run(&scenario, &options, &mut |_| {}),
            Err(SimError::Parameter(_))
        ));
    }
}
