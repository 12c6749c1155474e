//! `ferrosim demo`, small: the activation report, then the second act's
//! failover report (IoT devices with staged fallbacks riding out a carrier
//! outage, in virtual time through `ferrosim-sim`) with its failover and
//! return times next to the activation figures.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::process::Command;

/// The number after `label` on its line of `out`.
fn number_after(out: &str, label: &str) -> f64 {
    let line = out
        .lines()
        .find(|l| l.contains(label))
        .unwrap_or_else(|| panic!("no {label:?} in:\n{out}"));
    let rest = &line[line.find(label).unwrap() + label.len()..];
    rest.split_whitespace()
        .next()
        .and_then(|w| w.trim_end_matches(['%', '/']).parse().ok())
        .unwrap_or_else(|| panic!("no number after {label:?}: {line}"))
}

#[test]
fn demo_reports_failover_and_return_times_next_to_the_activations() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("demo.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_ferrosim"))
        .args([
            "demo",
            "--devices",
            "3",
            "--concurrency",
            "3",
            "--iot-devices",
            "400",
            "--quiet",
            "--database-url",
            &db,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // First the activations, then the act's report.
    let activations = stdout.find("Activation report").expect(&stdout);
    let act = stdout.find("Act two: 400 IoT devices").expect(&stdout);
    let failover = stdout.find("Failover report").expect(&stdout);
    assert!(activations < act && act < failover, "{stdout}");
    assert!(
        stdout.contains("activations succeeded:           3/3"),
        "{stdout}"
    );
    // Devices failed over and came back, with their times measured.
    let failovers = number_after(&stdout, "failovers decided:");
    let returns = number_after(&stdout, "returns decided:");
    assert!(failovers > 0.0 && returns > 0.0, "{stdout}");
    for label in [
        "failover (decision to registered on the fallback): p50",
        "return (decision to registered on the primary):   p50",
    ] {
        let p50 = number_after(&stdout, label);
        assert!(p50 >= 0.0, "{label}: {stdout}");
    }
    let registered = number_after(&stdout, "registration success:");
    assert!(registered > 0.0 && registered <= 100.0, "{stdout}");
}
