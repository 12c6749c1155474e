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

#[test]
fn bad_rollouts_comparisons_and_new_fields_are_refused() {
    let rollout = include_str!("../scenarios/rollout.toml");
    let airport = include_str!("../scenarios/airport.toml");
    let cases = [
        (
            rollout.replacen("name = \"staged\"", "name = \"staged\"\nflavour = 1", 1),
            "flavour",
        ),
        (
            rollout.replacen("waves = [1, 10, 50, 100]", "waves = [50, 10]", 1),
            "waves must rise",
        ),
        (
            rollout.replacen("start = \"5m\"", "start = \"2h\"", 1),
            "start must lie within",
        ),
        (
            rollout.replacen("name = \"big-bang\"", "name = \"staged\"", 1),
            "declared twice",
        ),
        (
            rollout.replacen("a = \"staged\"", "a = \"ghost\"", 1),
            "no such [[rollout]] \"ghost\"",
        ),
        (
            rollout.replacen("b = \"big-bang\"", "b = \"staged\"", 1),
            "a and b must differ",
        ),
        (
            rollout.replacen("kind = \"rollout\"", "kind = \"vibes\"", 1),
            "vibes",
        ),
        (
            rollout.replacen(
                "apns = [\"iot.carrier-a.example\"]",
                "apns = \"iot.carrier-a.example\"",
                1,
            ),
            "expected a sequence",
        ),
        (
            airport.replacen("stay = \"45m\"", "stay = \"soon\"", 1),
            "soon",
        ),
    ];
    for (text, expected) in cases {
        let e = error_of(&text);
        assert!(e.contains(expected), "{expected:?} not in {e:?}");
    }
    let storm = include_str!("../scenarios/storm.toml");
    let e = error_of(&storm.replacen("b = \"meters-storm\"", "b = \"nobody\"", 1));
    assert!(e.contains("no such population.mix group \"nobody\""), "{e}");
    // A change the fleet cannot resolve is refused when the rollout starts.
    let scenario =
        Scenario::from_toml(&rollout.replacen("apn = \"iot-2027\" }", "apn = \"nope\" }", 1))
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
    assert!(
        matches!(e, SimError::Fleet(_)) && e.to_string().contains("staged"),
        "{e}"
    );
}
